"""Class integrity end to end: a class graded with the real sandbox, its fingerprints kept, and ``grade
similarity``'s comparison: a disguised twin (code renamed and reordered, samples resampled, trimmed and quieter,
weights renamed and transposed in another container) is found in all three kinds; an independent submission is
not; a second comparison takes the pairs it made from the cache; the CSV and pages are written and linked."""
from __future__ import annotations

import csv
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from grader.batch import grade_all
from grader.pipeline import GradingSetup
from grader.report import render_all
from grader.similarity.classwide import compare_class, keep_references, write_csv
from grader.similarity.prints import FINGERPRINTS_FOLDER
from reference import PROJECT_ROOT
from tests.helpers import rubric_of, write_submission, zip_folder

RENAMES = {"augment": "apply_effects", "signal": "waveform", "sr": "rate", "channels": "width", "dilation": "spread",
           "model": "network", "batches": "loader", "optimizer": "opt", "ResidualBlock": "GatedUnit",
           "snr_db": "signal_to_noise", "ref": "clean", "deg": "noisy"}


def disguised(source: str) -> str:
    """``source`` with identifiers renamed, top-level definitions in reverse order and comments added."""
    for old, new in RENAMES.items():
        source = re.sub(rf"\b{old}\b", new, source)
    head, *definitions = re.split(r"\n(?=(?:def|class) )", source)
    return "\n".join([head, *reversed(definitions)]).replace("\n    ", "\n    # a comment of my own\n    ", 3)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, small_heldout, small_baseline):
    root = tmp_path_factory.mktemp("similarity")
    original = write_submission(root / "work" / "ada_111_1_hw3")
    mix = np.eye(80, dtype=np.float32) + 0.01 * np.random.default_rng(1).standard_normal((80, 80), dtype=np.float32)
    np.savez(original / "checkpoints" / "vocoder.npz", mel_mix=mix)  # trained: no longer symmetric
    twin = root / "work" / "eve_555_5_hw3"
    shutil.copytree(original, twin)
    for name in ("preprocess.py", "model.py", "evaluate.py"):
        (twin / name).write_text(disguised((original / name).read_text()))
    (twin / "checkpoints" / "vocoder.npz").unlink()
    np.savez(twin / "checkpoints" / "mixing.npz", projection=mix.T.copy() * 1.0001)
    for k in range(3):  # each sample at 22.05 kHz, 0.3 times as loud, its first 0.3 s cut
        wav, rate = sf.read(original / "samples" / f"{k}.wav")
        resampled = np.interp(np.arange(0, len(wav), rate / 22050), np.arange(len(wav)), wav)
        (twin / "samples" / f"{k}.wav").unlink()
        sf.write(twin / "samples" / f"take{k}.wav", 0.3 * resampled[int(0.3 * 22050):], 22050)
    sources = [zip_folder(original, root / "ada_111_1_hw3.zip"), zip_folder(twin, root / "eve_555_5_hw3.zip"),
               PROJECT_ROOT / "submissions" / "src" / "partial"]
    rubric = rubric_of("samples-handed-in", "model-quality", "samples-diversity", "model-checkpoint")
    setup = GradingSetup(rubric=rubric, heldout=small_heldout, load_baseline=small_baseline, out_dir=root / "out")
    entries = grade_all(sources, setup, jobs=1, show_progress=False)
    assert len(entries) == 3
    keep_references(setup)
    return setup, compare_class(setup.out_dir, starter=[PROJECT_ROOT / "rubrics" / "starter"])


def by_kind(comparison) -> dict[str, list]:
    found = {"code": [], "audio": [], "checkpoint": []}
    for pair in comparison.pairs:
        found[pair.kind].append(pair)
    return found


def test_a_disguised_twin_is_found_in_code_audio_and_checkpoint(graded):
    setup, comparison = graded
    found = by_kind(comparison)
    for kind in found:
        assert [(pair.a, pair.b) for pair in found[kind]] == [("ada_111", "eve_555")], (kind, comparison.pairs)
    code, audio, checkpoint = found["code"][0], found["audio"][0], found["checkpoint"][0]
    assert code.score >= 0.8 and {region[0] for region in code.detail} >= {"preprocess.py", "model.py", "evaluate.py"}
    copied = [(m["role_a"], m["role_b"]) for m in audio.detail if m["verdict"] == "copied"]
    assert audio.score == 1.0 and copied.count(("handed_in", "handed_in")) == 3  # resampled, trimmed, quieter
    assert copied.count(("sample", "sample")) == 4  # one generate.py: the same unconditional samples
    assert checkpoint.score >= 0.99 and "transposed" in checkpoint.evidence
    assert not comparison.problems, comparison.problems


def test_fingerprints_are_kept_for_every_graded_submission_and_say_what_they_hold(graded):
    setup, comparison = graded
    kept = {path.stem for path in (setup.out_dir / FINGERPRINTS_FOLDER).glob("*.json") if not path.stem.startswith("_")}
    assert kept == {"ada_111", "eve_555", "partial"} and comparison.submissions == 3
    text = (setup.out_dir / FINGERPRINTS_FOLDER / "ada_111.json").read_text()
    assert '"reconstruct"' in text and '"sample"' in text and '"handed_in"' in text and "mel_mix" in text


def test_a_second_comparison_takes_its_pairs_from_the_cache(graded):
    setup, first = graded
    again = compare_class(setup.out_dir, starter=[PROJECT_ROOT / "rubrics" / "starter"])
    assert again.cached >= 2 and [(p.a, p.b, p.kind, p.score) for p in again.pairs] == \
        [(p.a, p.b, p.kind, p.score) for p in first.pairs]


def test_the_csv_and_the_pages_are_written_and_the_class_page_links_them(graded):
    setup, comparison = graded
    write_csv(setup.out_dir, comparison)
    from grader.report.similarity import write_similarity_pages

    page = write_similarity_pages(comparison, setup.out_dir, 0.5)
    with open(setup.out_dir / "similarity.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["a", "b", "kind", "score", "evidence"] and len(rows) == 4
    assert all(0.0 <= float(row[3]) <= 1.0 and row[2] in ("code", "audio", "checkpoint") for row in rows[1:])
    html = page.read_text()
    assert html.count('href="similarity/ada_111--eve_555--') == 3
    code_page = (setup.out_dir / "similarity" / "ada_111--eve_555--code.html").read_text()
    assert code_page.count('class="line match"') >= 10 and "GatedUnit" in code_page and "ResidualBlock" in code_page
    audio_page = (setup.out_dir / "similarity" / "ada_111--eve_555--audio.html").read_text()
    assert audio_page.count("<audio") == 14 and audio_page.count("alt=\"log-mel spectrogram") == 14  # 7 clip pairs
    render_all(setup.out_dir, setup.rubric)
    assert 'href="similarity.html"' in (setup.out_dir / "index.html").read_text()


def test_an_earlier_terms_zips_are_compared_from_their_files(graded, tmp_path):
    """``--against`` a folder of last term's zips: fingerprinted from their files alone (code, samples handed in,
    checkpoints), and only pairs with this term's submissions are reported."""
    setup, _ = graded
    earlier = tmp_path / "term-2025"
    earlier.mkdir()
    twin = setup.out_dir.parent / "eve_555_5_hw3.zip"
    shutil.copy(twin, earlier / "zoe_999_9_hw3.zip")
    shutil.copy(twin, earlier / "yan_888_8_hw3.zip")  # two copies in the earlier term: their pair is not this term's
    comparison = compare_class(setup.out_dir, against=[earlier], starter=[PROJECT_ROOT / "rubrics" / "starter"])
    assert comparison.earlier == 2 and not comparison.problems
    pairs = {(pair.a, pair.b, pair.kind) for pair in comparison.pairs}
    for kind in ("code", "audio", "checkpoint"):
        assert ("ada_111", "term-2025/zoe_999", kind) in pairs and ("eve_555", "term-2025/zoe_999", kind) in pairs
    assert not any(pair.a.startswith("term-2025/") for pair in comparison.pairs)


def test_grade_similarity_refuses_a_folder_with_no_graded_class(tmp_path, capsys):
    from grader.commands.similarity import main

    assert main([str(tmp_path)]) == 2
    assert "holds no graded class" in capsys.readouterr().err


def test_a_keras_checkpoint_is_sketched_in_the_sandbox_while_graded(small_heldout, tmp_path):
    """HDF5 is not opened on the host: grading runs weights_inside.py in the sandbox with the course environment,
    and the fingerprint holds its sketches (matched here against the same kernel transposed in an .npz)."""
    import json
    import subprocess

    from grader.environment import bundled
    from grader.similarity.weights import WeightsFingerprint, compare, fingerprint_weights
    from tests.helpers import grade

    environment = bundled()
    if not environment.ready or not environment.has_module("h5py"):
        pytest.skip("the course environment (with h5py) is not built: make setup")
    folder = tmp_path / "keras"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "preprocess.py").write_text("import numpy as np\n\ndef extract_mfcc(path):\n    return np.zeros((20, 9))\n")
    kernel = np.random.default_rng(3).standard_normal((80, 64)).astype(np.float32)
    np.save(tmp_path / "kernel.npy", kernel)
    subprocess.run([environment.python, "-c", "import sys, h5py, numpy as np\n"
                    "with h5py.File(sys.argv[2], 'w') as f:\n    f['layers/dense/vars/0'] = np.load(sys.argv[1])\n",
                    tmp_path / "kernel.npy", folder / "checkpoints" / "model.weights.h5"], check=True)
    grade(zip_folder(folder, tmp_path / "kim_123_1_hw3.zip"), small_heldout, tmp_path / "out", "model-checkpoint")
    kept = json.loads((tmp_path / "out" / FINGERPRINTS_FOLDER / "kim_123.json").read_text())
    weights = WeightsFingerprint.from_untrusted_json(json.dumps(kept["weights"]))
    assert not kept["problems"] and [len(file.tensors) for file in weights.files] == [1]
    np.savez(tmp_path / "other.npz", w=kernel.T.copy())
    assert compare(weights, fingerprint_weights(tmp_path, ["other.npz"])).score == 1.0


def test_an_earlier_terms_sample_over_the_contract_s_length_is_not_read(tmp_path):
    """An earlier term's zip is read as grading reads one: a sample longer than 60 s is named, not decoded."""
    from grader.similarity.classwide import files_prints

    folder = write_submission(tmp_path / "old")
    sf.write(folder / "samples" / "long.wav", np.zeros(8000 * 120, dtype=np.float32), 8000)
    prints = files_prints(zip_folder(folder, tmp_path / "old_777_7_hw3.zip"))
    assert sorted(prints.audio["handed_in"]) == ["samples/0.wav", "samples/1.wav", "samples/2.wav"]
    assert any("samples/long.wav" in problem and "longer than 60 s" in problem for problem in prints.problems)


def test_a_checkpoint_candidate_key_survives_any_axis_order_and_a_cast_and_parts_independent_tensors():
    """Checkpoints are compared only where a tensor's key (sorted lengths, signs of sampled values) is shared."""
    import itertools

    from grader.similarity.classwide import _tensor_key
    from grader.similarity.weights_inside import tensor_sketch

    rng = np.random.default_rng(4)
    for shape in ((5, 40, 70), (128, 64, 1), (300,), (3, 3, 64, 32)):
        tensor = rng.standard_normal(shape).astype(np.float32)
        key = _tensor_key(tensor_sketch(tensor))
        for order in itertools.permutations(range(len(shape))):
            assert _tensor_key(tensor_sketch(np.ascontiguousarray(tensor.transpose(order)))) == key
        assert _tensor_key(tensor_sketch(tensor.astype(np.float16).astype(np.float32))) == key
        others = [_tensor_key(tensor_sketch(rng.standard_normal(shape).astype(np.float32))) for _ in range(20)]
        assert key not in others


def test_fingerprints_this_grader_cannot_read_are_named_not_fatal(graded, tmp_path):
    """An output folder graded by an earlier version (fingerprints written otherwise): the others are compared, and
    the comparison says which were not and how to make them."""
    setup, _ = graded
    out = tmp_path / "out"
    shutil.copytree(setup.out_dir, out, ignore=shutil.ignore_patterns("similarity.sqlite"))
    (out / FINGERPRINTS_FOLDER / "partial.json").write_text('{"submission_id": "partial", "code": []}')
    comparison = compare_class(out, starter=[PROJECT_ROOT / "rubrics" / "starter"])
    assert comparison.submissions == 2 and {(p.a, p.b) for p in comparison.pairs} == {("ada_111", "eve_555")}
    assert "partial" in comparison.problems[0] and "--force" in comparison.problems[0]


def test_a_refused_submission_is_not_taken_for_one_that_lacks_fingerprints(graded, tmp_path):
    """A zip refused at intake has no fingerprints and nothing to compare: its page says why, and the comparison
    does not ask for a regrade."""
    import json

    setup, _ = graded
    out = tmp_path / "out"
    shutil.copytree(setup.out_dir, out, ignore=shutil.ignore_patterns("similarity.sqlite"))
    (out / "results" / "mal_666.json").write_text(json.dumps({"submission_id": "mal_666", "status": "refused"}))
    comparison = compare_class(out, starter=[PROJECT_ROOT / "rubrics" / "starter"])
    assert comparison.submissions == 3 and not comparison.problems
