"""The grader end to end on real submissions, a small held-out set and the real sandbox.

A complete student-style submission (Griffin-Lim vocoder, WaveNet code, training loop,
evaluation, quiz) against variations: empty, noisier output, evidence removed,
notebook entry, unconditional only; and determinism.
"""
import json
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import soundfile as sf

from grader.pipeline import GradingSetup, grade_submission
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from reference import PROJECT_ROOT
from tests.helpers import items, write_submission, zip_folder


@pytest.fixture(scope="module")
def complete(setup_factory, tmp_path_factory):
    folder = write_submission(tmp_path_factory.mktemp("s") / "complete")
    return grade_submission(zip_folder(folder, folder.parent / "doe_12345_67890_hw3.zip"), setup_factory("out"))


def test_a_complete_submission_earns_nearly_everything(complete, setup_factory):
    assert complete.status == "graded" and complete.submission_id == "doe_12345"
    by_id = items(complete)
    assert all(item.status == "passed" for item in complete.items
               if item.id not in ("evaluation-claims", "samples-diversity", "model-quality")), \
        [(i.id, i.explanation) for i in complete.items if i.status != "passed"]
    assert items(complete)["samples-diversity"].points > 0
    # Griffin-Lim on the mel reaches part of the way to the reference vocoder, not all of it
    assert 0.4 * 12 <= items(complete)["model-quality"].points < 12
    assert complete.total >= 85 and complete.max_total == 100
    assert sum(q.correct for q in complete.quiz) == 7
    assert {run.result.verdict for run in complete.runs if "withheld" not in run.purpose} == {"ok"}
    withheld = [run for run in complete.runs if "withheld" in run.purpose]  # the model-use run: it needs its weights
    assert len(withheld) == 1 and withheld[0].result.verdict == "exit_code"
    assert complete.comparison["student"]["pesq_wb"] > complete.comparison["floor"]["pesq_wb"]
    assert complete.listen and complete.listen[0].student and complete.samples
    written = json.loads((setup_factory("out").out_dir / "results" / "doe_12345.json").read_text())
    assert written["total"] == complete.total and written["versions"]["heldout"]
    assert "evidence" in by_id["preprocess-mfcc-run"].model_dump()


def test_an_empty_submission_earns_almost_nothing(setup_factory, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "README.txt").write_text("I ran out of time.\n")
    result = grade_submission(folder, setup_factory("out-empty"))
    assert result.status == "graded" and result.total <= 5
    assert all(item.status in ("failed", "error") for item in result.items)
    assert not any(item.status == "error" for item in result.items), [i.explanation for i in result.items]


def test_hostile_nesting_in_any_file_is_reported_not_a_grader_failure(setup_factory, tmp_path):
    """Files nested past what Python's parsers take (they raise RecursionError or MemoryError), data
    posing as code (parsing 200 MB of it would take some 50 GB) and an hour of compressed silence."""
    folder = tmp_path / "nested"
    folder.mkdir()
    deep = "[" * 100_000
    files = {"answers.json": deep, "submission.toml": f"a = {deep}", "evaluation.ipynb": f'{{"cells": {deep}',
             "report.md": "PESQ 2.1", "generate.py": "x = " + "-" * 100_000 + "1\nimport librosa\nlibrosa.load(p)\n",
             "preprocess.py": "y = " + "a." * 5_000 + "b\n", "table.py": "row = [1, 2, 3]\n" * 200_000}
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "samples").mkdir()
    with sf.SoundFile(folder / "samples" / "hours.flac", "w", samplerate=16000, channels=1) as handle:
        for _ in range(6):  # an hour of silence: a few kB here, 230 MB of samples if read
            handle.write(np.zeros(16000 * 600, dtype=np.float32))
    result = grade_submission(folder, setup_factory("out-nested"))
    assert result.status == "graded", result.message
    assert not any(item.status == "error" for item in result.items), [i.explanation for i in result.items]
    assert "answers.json: cannot be read (it is nested too deeply)" in result.message
    assert "submission.toml is not valid TOML" in " ".join(result.discovery["manifest_errors"])
    assert "Not read: table.py (over 2 MB: data rather than code)" in items(result)["preprocess-mfcc-code"].explanation
    assert items(result)["samples-handed-in"].evidence == ["samples/hours.flac: 3600.0 s long, longer than 60 s (not read)"]
    assert not result.samples[0].audio  # not copied into the report either


HOSTILE_MFCC = """
import pathlib, sys
import numpy as np
from numpy.lib import format

def extract_mfcc(path):
    out = pathlib.Path(sys.argv[4])  # the harness's output folder: overwrite what it saves for every clip
    clips = sorted(pathlib.Path(path).parent.glob("*.wav"))
    for k, clip in enumerate(clips):
        target = out / (clip.stem + ".npy")
        kind = k % 3
        if kind == 0:
            target.write_bytes(b"")  # a run killed while saving
        elif kind == 1:
            with open(target, "wb") as handle:  # a header that promises 7 TB
                format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        else:
            np.save(target, np.array(["not", "numbers"]))
    raise RuntimeError("and no MFCC")
"""


def test_hostile_mfcc_outputs_earn_nothing_and_do_not_fail_the_grader(setup_factory, tmp_path):
    folder = tmp_path / "hostile-mfcc"
    folder.mkdir()
    (folder / "preprocess.py").write_text(HOSTILE_MFCC)
    result = grade_submission(folder, setup_factory("out-hostile-mfcc"))
    run = items(result)["preprocess-mfcc-run"]
    assert run.status == "failed" and run.points == 0, run.explanation
    seen = " ".join(run.evidence)
    assert "not a readable .npy file" in seen and "mmap length is greater than file size" in seen, seen
    assert "not real numbers" in seen  # three probe clips: the first three kinds; the others below


def test_only_real_arrays_of_a_sensible_size_are_read_back(tmp_path):
    from grader.checks.mfcc import read_array

    with open(tmp_path / "archive.npy", "wb") as handle:
        np.savez(handle, a=np.zeros(3))
    np.save(tmp_path / "complex.npy", np.zeros(3, dtype=np.complex64))
    np.save(tmp_path / "large.npy", np.zeros(1000))
    np.save(tmp_path / "good.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    for name, problem in (("archive", "an .npz archive"), ("complex", "not real numbers"), ("large", "more than")):
        with pytest.raises(ValueError, match=problem):
            read_array(tmp_path / f"{name}.npy", max_bytes=4000)
    good = read_array(tmp_path / "good.npy")
    assert good.dtype == np.float32 and good.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_more_noise_never_scores_higher(setup_factory, tmp_path, complete):
    noisy = grade_submission(write_submission(tmp_path / "noisy", noise=0.05), setup_factory("out-noisy"))
    assert items(noisy)["model-quality"].points <= items(complete)["model-quality"].points
    assert noisy.comparison["student"]["pesq_wb"] < complete.comparison["student"]["pesq_wb"]


def test_removing_evidence_removes_its_points(setup_factory, tmp_path):
    result = grade_submission(write_submission(tmp_path / "less", drop=("augmentation", "answers.toml", "model.py")),
                              setup_factory("out-less"))
    by_id = items(result)
    assert by_id["preprocess-augmentation"].points == 0
    assert by_id["model-architecture"].points == 0 and by_id["model-training"].points == 0
    assert sum(q.points for q in result.quiz) == 0
    assert by_id["preprocess-mfcc-run"].points == by_id["preprocess-mfcc-run"].max_points


VAE = '''
import torch
from torch import nn

class MelVAE(nn.Module):
    def __init__(self, latent=16):
        super().__init__()
        self.encoder = nn.Conv1d(80, 2 * latent, 3, padding=1)
        self.decoder = nn.Conv1d(latent, 80, 3, padding=1)

    def encode(self, mel):
        return self.encoder(mel).chunk(2, dim=1)
    def reparameterize(self, mean, logvar):
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    def decode(self, z):
        return self.decoder(z)

def train(model, batches):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for mel in batches:
        optimizer.zero_grad()
        mean, logvar = model.encode(mel)
        loss = (model.decode(model.reparameterize(mean, logvar)) - mel).pow(2).mean()
        loss.backward()
        optimizer.step()
'''


def test_a_vae_only_submission_is_recognised(setup_factory, tmp_path):
    folder = write_submission(tmp_path / "vae")
    (folder / "model.py").write_text(VAE)
    by_id = items(grade_submission(folder, setup_factory("out-vae")))
    assert by_id["model-architecture"].status == "passed" and "VAE" in by_id["model-architecture"].explanation
    assert by_id["model-training"].status == "passed"


def test_grading_twice_gives_the_same_result(setup_factory, tmp_path):
    folder = write_submission(tmp_path / "twice")
    first = grade_submission(folder, setup_factory("out-a")).model_dump()
    second = grade_submission(folder, setup_factory("out-b")).model_dump()
    assert first["total"] >= 90  # the runs worked: a deterministic failure would prove nothing
    for result in (first, second):
        for key in ("started_at", "finished_at", "seconds", "timings"):
            result.pop(key)
        for item in result["items"]:
            item.pop("seconds")
        for run in result["runs"]:
            for key in ("wall_seconds", "cpu_seconds", "peak_memory_bytes"):
                run["result"].pop(key)
    assert first == second


NOTEBOOK_CELL = """import pathlib
import numpy as np, librosa, soundfile as sf
mix = np.load("checkpoints/vocoder.npz")["mel_mix"]
for path in sorted(pathlib.Path(mel_dir).glob("*.npy")):
    stft = librosa.feature.inverse.mel_to_stft(mix @ np.exp(np.load(path)), sr=16000, n_fft=1024, power=1.0, fmax=8000)
    wav = librosa.griffinlim(stft, n_iter=16, hop_length=256, random_state=0)
    sf.write(pathlib.Path(out_dir) / (path.stem + ".wav"), wav, 16000)
"""
SAMPLER = """import argparse, pathlib
import numpy as np, soundfile as sf
parser = argparse.ArgumentParser()
parser.add_argument("--num", type=int); parser.add_argument("--seed", type=int); parser.add_argument("--out-dir")
args = parser.parse_args()
rng = np.random.default_rng(args.seed)
for k in range(args.num):
    t = np.arange(48000) / 16000
    wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) * rng.uniform(0.2, 1, 48000)
    sf.write(pathlib.Path(args.out_dir) / f"{k}.wav", wav, 16000)
"""


def test_notebook_entry(setup_factory, tmp_path):
    folder = write_submission(tmp_path / "nb")
    (folder / "generate.py").unlink()
    cells = [nbformat.v4.new_code_cell("mel_dir = 'mels'\nout_dir = 'out'", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell(NOTEBOOK_CELL)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / "model.ipynb")
    (folder / "submission.toml").write_text('[entry]\nreconstruct = "model.ipynb"\n')
    result = grade_submission(folder, setup_factory("out-nb"))
    by_id = items(result)
    assert by_id["samples-generation-runs"].status == "passed", by_id["samples-generation-runs"].explanation
    assert by_id["model-quality"].points > 0 and any("notebook" in run.purpose for run in result.runs)


def write_unconditional(folder):
    """A complete submission whose only generation is unconditional (``sample``), declared in its manifest."""
    write_submission(folder)
    (folder / "generate.py").unlink()
    (folder / "sample.py").write_text(SAMPLER)
    (folder / "submission.toml").write_text(
        '[entry]\nsample = "python sample.py --num {num} --seed {seed} --out-dir {out_dir}"\n')
    return folder


def test_unconditional_only(setup_factory, tmp_path):
    folder = write_unconditional(tmp_path / "gan")
    result = grade_submission(folder, setup_factory("out-gan"))
    by_id = items(result)
    assert by_id["samples-generation-runs"].metrics["role"] == "sample"
    assert by_id["samples-generation-runs"].status == "passed", by_id["samples-generation-runs"].explanation
    assert by_id["samples-diversity"].points > 0, by_id["samples-diversity"].explanation
    assert by_id["samples-diversity"].metrics["frechet_mfcc"] > 0


def test_dnsmos_on_request(setup_factory, tmp_path):
    from grader.context import CheckContext
    from grader.checks import sample
    from grader.discovery import discover
    from grader.intake import unpack
    from grader.scratch import Scratch

    folder = write_unconditional(tmp_path / "gan")
    setup = setup_factory("out-dnsmos")
    submission = unpack(folder, tmp_path / "work")
    item = next(i for i in setup.rubric.items if i.id == "samples-diversity")
    with Scratch("dnsmos") as scratch:
        ctx = CheckContext(unpack=lambda: submission, discovery=discover(submission.work_dir), rubric=setup.rubric,
                           heldout=setup.heldout, load_baseline=setup.load_baseline, scratch=scratch,
                           media_dir=tmp_path / "media", out_root=tmp_path)
        outcome = sample.check(ctx, item.model_copy(update={"params": {**item.params, "dnsmos": True}}))
    assert 1 <= outcome.metrics["dnsmos_ovrl"] <= 5


def test_student_self_check_hides_hidden_items_and_the_key(setup_factory, tmp_path):
    result = grade_submission(write_submission(tmp_path / "mine"), setup_factory("out-check", student_mode=True))
    assert {item.visibility for item in result.items} == {"visible"}
    assert all(q.correct is None and q.points == 0 for q in result.quiz)
    text = result.model_dump_json()
    for question in load_rubric(DEFAULT_RUBRIC).quiz.questions:
        assert '"correct":true' not in text
    assert "samples-diversity" not in text and "evaluation-claims" not in text


def test_refused_archives_and_grader_errors_still_give_a_result(setup_factory, tmp_path):
    bad = tmp_path / "notazip.zip"
    bad.write_text("not a zip")
    result = grade_submission(bad, setup_factory("out-bad"))
    assert result.status == "refused" and "zip" in result.message.lower() and result.total == 0
    assert (setup_factory("out-bad").out_dir / "results" / "notazip.json").is_file()


def test_the_rubric_bars_set_the_quality_points(complete, setup_factory, tmp_path):
    """The same audio, three rubrics: halfway between numeric bars, full at Griffin-Lim, and the report's words."""
    default = setup_factory("out")
    first = items(complete)["model-quality"]
    student, bars = first.metrics["student"], first.metrics["bars"]
    assert (bars["full_source"], bars["floor_source"], bars["metric"]) == ("reference", "untrained", "pesq_wb")
    assert "sits" in first.explanation and "the reference solution" in first.explanation
    rubric = default.rubric
    for params, expected in (({"floor_at": 1.0, "full_at": 1.0 + 2 * (student - 1.0)}, 0.5),
                             ({"full_at": "griffin_lim"}, None)):
        changed = rubric.model_copy(update={"items": [
            i.model_copy(update={"params": {**i.params, **params}}) if i.id == "model-quality" else i
            for i in rubric.items]})
        setup = GradingSetup(rubric=changed, heldout=default.heldout, load_baseline=default.load_baseline,
                             out_dir=tmp_path / f"out-{len(params)}-{expected}")
        graded = items(grade_submission(complete.source, setup))["model-quality"]
        assert graded.metrics["student"] == pytest.approx(student)
        if expected is not None:
            assert graded.points == pytest.approx(expected * graded.max_points, abs=0.01)
            assert graded.metrics["bars"]["full_source"] == "number"
        else:
            gl = default.load_baseline().means["griffin_lim"]["pesq_wb"]
            floor = default.load_baseline().means["floor"]["pesq_wb"]
            share = min(1.0, max(0.0, (student - floor) / (gl - floor)))
            assert graded.points == pytest.approx(share * graded.max_points, abs=0.01)
            assert "Griffin-Lim on the true log-mel" in graded.explanation


def test_grade_command_and_rubric_check(tmp_path):
    result = subprocess.run([sys.executable, "-m", "grader.cli", "rubric", "check", str(DEFAULT_RUBRIC)],
                            capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0 and "100 points" in result.stdout
    broken = tmp_path / "r.toml"
    broken.write_text(DEFAULT_RUBRIC.read_text().replace("points = 4\n", "points = -4\n", 1))
    result = subprocess.run([sys.executable, "-m", "grader.cli", "rubric", "check", str(broken)],
                            capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 1 and "items[0].points" in result.stderr


def test_an_mfcc_function_defined_in_a_notebook_cell_earns_the_mfcc_check(setup_factory, tmp_path):
    """Only the notebook's imports (one that fails is skipped) and the function's cell run, and of that cell
    only its definitions and constants: the call on the student's own file and the training never run."""
    import dataclasses

    folder = tmp_path / "nb-mfcc"
    folder.mkdir()
    cells = [nbformat.v4.new_markdown_cell("# Part 1: MFCC"),
             nbformat.v4.new_code_cell("!pip install -q pydub\nimport librosa\nimport pydub\n"
                                       "from google.colab import drive\ndrive.mount('/content/drive')"),
             nbformat.v4.new_code_cell("SR = 16000\nN_MFCC = 4 * 5\n\ndef extract_mfcc(path):\n"
                                       "    y, sr = librosa.load(path, sr=SR)\n"
                                       "    return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC)\n\n"
                                       "mfccs = extract_mfcc('Data/Piano/Piano29.wav')\nsns.heatmap(mfccs)"),
             nbformat.v4.new_code_cell("import torch\nwhile True:\n    pass  # training")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / "model.ipynb")
    setup = setup_factory("out-nb-mfcc")
    item = next(item for item in setup.rubric.items if item.check == "mfcc")
    setup = dataclasses.replace(setup, rubric=setup.rubric.model_copy(update={"items": [item], "quiz": None}))
    result = grade_submission(folder, setup)
    assert result.discovery["findings"]["mfcc"]["value"] == "model.ipynb:extract_mfcc"
    assert result.items[0].status == "passed", (result.items[0].explanation, result.items[0].evidence)
    assert "`import pydub` raised ModuleNotFoundError" in result.runs[0].result.stderr


def test_an_mfcc_function_may_use_constants_and_helpers_of_earlier_cells(setup_factory, tmp_path):
    """``SR, N_MFCC = 16000, 20`` and a loading helper in cells before the function's are defined for it (a failing
    definition is noted and skipped); the earlier cell's training and the later cells never run."""
    import dataclasses

    folder = tmp_path / "nb-mfcc-earlier"
    folder.mkdir()
    cells = [nbformat.v4.new_code_cell("import librosa\nSR, N_MFCC = 16000, 4 * 5\nwhile True:\n    pass  # training"),
             nbformat.v4.new_code_cell("def load(path):\n    return librosa.load(path, sr=SR)\n\n"
                                       "class Broken(Missing):\n    pass"),
             nbformat.v4.new_code_cell("def extract_mfcc(path):\n    y, sr = load(path)\n"
                                       "    return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC)"),
             nbformat.v4.new_code_cell("SR = 8000")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / "model.ipynb")
    setup = setup_factory("out-nb-mfcc-earlier")
    item = next(item for item in setup.rubric.items if item.check == "mfcc")
    setup = dataclasses.replace(setup, rubric=setup.rubric.model_copy(update={"items": [item], "quiz": None}))
    result = grade_submission(folder, setup)
    assert result.items[0].status == "passed", (result.items[0].explanation, result.items[0].evidence)
    assert "model.ipynb, cell 2: defining `Broken` raised NameError" in result.runs[0].result.stderr
