"""Discovery on real submission folders: the manifest when present, else the contract's guesses."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from grader.contract import MANIFEST, ROLES
from grader.discovery import discover

GENERATE_BOTH = textwrap.dedent('''
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--mel-dir")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--num", type=int)
    parser.add_argument("--seed", type=int, default=0)
''')


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def notebook(*sources: str) -> str:
    cells = [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}
             for source in sources]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_without_a_manifest_the_documented_guesses_decide(tmp_path):
    write(tmp_path, {
        "preprocess.py": "import librosa\ndef extract_mfcc(path):\n    return librosa.feature.mfcc(y=None)\n",
        "features.py": "def mfcc_of(path): ...\n",
        "generate.py": GENERATE_BOTH,
        "samples/1.wav": "", "samples/2.flac": "", "samples/notes.txt": "",
        "answers.json": "{}", "quiz/answers.toml": "",
        "evaluation.md": "", "checkpoints/wavenet.ckpt": "", "model.pth": "",
    })
    found = discover(tmp_path)
    assert found.manifest is None and found.manifest_errors == []
    assert set(found.findings) == set(ROLES)
    assert all(finding.status == "guessed" for finding in found.findings.values())
    mfcc = found.findings["mfcc"]
    assert mfcc.value == "preprocess.py:extract_mfcc" and "features.py:mfcc_of" not in mfcc.how
    assert found.findings["reconstruct"].value == "python generate.py --mel-dir {mel_dir} --out-dir {out_dir}"
    assert found.findings["sample"].value == "python generate.py --num {num} --seed {seed} --out-dir {out_dir}"
    assert found.findings["samples"].files == ["samples/1.wav", "samples/2.flac"]
    assert found.findings["answers"].files == ["quiz/answers.toml"]  # TOML before JSON, even deeper
    assert found.findings["evaluation"].files == ["evaluation.md"]
    assert found.findings["checkpoints"].files == ["checkpoints/wavenet.ckpt", "model.pth"]
    assert len(found.guessed()) == len(ROLES)


def test_a_function_whose_name_contains_mfcc_is_the_second_choice(tmp_path):
    write(tmp_path, {"src/audio.py": "def compute_MFCC_features(path): ...\n", "broken.py": "def (:\n"})
    mfcc = discover(tmp_path).findings["mfcc"]
    assert (mfcc.status, mfcc.value) == ("guessed", "src/audio.py:compute_MFCC_features")


def test_code_is_read_never_run(tmp_path):
    marker = tmp_path / "ran"
    write(tmp_path, {"generate.py": f"open({str(marker)!r}, 'w')\nimport sys\nsys.exit(1)\n# --mel-dir --out-dir\n",
                     "preprocess.py": f"open({str(marker)!r}, 'w')\ndef extract_mfcc(p): ...\n"})
    found = discover(tmp_path)
    assert not marker.exists()
    assert found.findings["mfcc"].value == "preprocess.py:extract_mfcc"
    reconstruct = found.findings["reconstruct"]  # flags in a comment are not flags
    assert reconstruct.status == "missing" and "does not name --mel-dir" in reconstruct.how


def test_a_single_notebook_is_the_entry_when_generate_py_does_not_fit(tmp_path):
    write(tmp_path, {
        "generate.py": "import argparse\np = argparse.ArgumentParser()\np.add_argument('--mel-dir')\n"
                       "p.add_argument('--out-dir')\n",
        "work/model.ipynb": notebook("import librosa", "def extract_mfcc(path):\n    pass", "def extract_mfcc(p): 1"),
    })
    found = discover(tmp_path)
    assert found.findings["reconstruct"].value == "python generate.py --mel-dir {mel_dir} --out-dir {out_dir}"
    sample = found.findings["sample"]
    assert (sample.status, sample.value) == ("guessed", "work/model.ipynb")
    assert "generate.py does not name --num, --seed" in sample.how
    mfcc = found.findings["mfcc"]  # defined only in a notebook's cell: that function, said to be in a notebook
    assert (mfcc.status, mfcc.value, mfcc.problems) == ("guessed", "work/model.ipynb:extract_mfcc", [])
    assert "(a notebook: the grader runs its imports and that function's cell only)" in mfcc.how
    write(tmp_path, {"features.py": "def my_mfcc(path): ...\n"})  # a .py file's function comes first
    assert discover(tmp_path).findings["mfcc"].value == "features.py:my_mfcc"
    write(tmp_path, {MANIFEST: "[entry]\nmfcc = 'work/model.ipynb:extract'\n"})
    assert discover(tmp_path).findings["mfcc"].problems == [
        "no code cell of work/model.ipynb defines a function 'extract' (at the cell's top level)"]


def test_a_notebook_declared_for_one_mode_is_not_guessed_for_the_other(tmp_path):
    """A notebook entry runs once for every mode it serves: declared for sample alone, it is not also
    taken for reconstruct (it would then run with mel_dir set)."""
    write(tmp_path, {MANIFEST: "[entry]\nsample = 'model.ipynb'\n", "model.ipynb": notebook("x = 1")})
    found = discover(tmp_path).findings
    assert (found["sample"].status, found["sample"].value) == ("declared", "model.ipynb")
    assert found["reconstruct"].status == "missing" and found["reconstruct"].problems == [
        "if model.ipynb also does reconstruct, declare it too: [entry] reconstruct = 'model.ipynb'"]
    write(tmp_path, {MANIFEST: "[entry]\nsample = 'model.ipynb'\nreconstruct = 'model.ipynb'\n"})
    assert discover(tmp_path).findings["reconstruct"].value == "model.ipynb"


def test_two_notebooks_cannot_be_chosen_between(tmp_path):
    write(tmp_path, {"a.ipynb": notebook("x = 1"), "b.ipynb": notebook("y = 2")})
    found = discover(tmp_path)
    assert found.findings["sample"].status == "missing"
    assert "2 notebooks" in found.findings["sample"].how and MANIFEST in found.findings["sample"].problems[0]
    assert found.findings["evaluation"].files == ["a.ipynb", "b.ipynb"]
    assert found.findings["answers"].status == "missing"


def test_the_manifest_decides_where_present(tmp_path):
    write(tmp_path, {
        MANIFEST: '''
            [student]
            name = "Ada Lovelace"
            id = "al123"
            [entry]
            mfcc = "lib/features.py:my_mfcc"
            reconstruct = "python vocoder.py {mel_dir} {out_dir}"
            sample = "model.ipynb"
            [files]
            samples = "out/*.wav"
            answers = "quiz.md"
            evaluation = ["results/*.csv"]
            checkpoints = "weights/*"
        ''',
        "lib/features.py": "def my_mfcc(path): ...\n", "vocoder.py": "", "model.ipynb": notebook("x = 1"),
        "out/a.wav": "", "samples/ignored.wav": "", "quiz.md": "", "results/pesq.csv": "", "weights/w.bin": "",
        "generate.py": GENERATE_BOTH,
    })
    found = discover(tmp_path)
    assert found.manifest == MANIFEST and found.manifest_errors == []
    assert (found.student_name, found.student_id) == ("Ada Lovelace", "al123")
    assert all(finding.status == "declared" and not finding.problems for finding in found.findings.values())
    assert found.findings["mfcc"].value == "lib/features.py:my_mfcc"
    assert found.findings["reconstruct"].value == "python vocoder.py {mel_dir} {out_dir}"
    assert found.findings["sample"].value == "model.ipynb"
    assert found.findings["samples"].files == ["out/a.wav"]
    assert found.guessed() == []


def test_declarations_that_do_not_hold_are_problems_the_student_can_fix(tmp_path):
    write(tmp_path, {
        MANIFEST: '''
            [entry]
            mfcc = "features.py:extract"
            reconstruct = "python gen.py --mels {mels} --out {out_dir}"
            sample = "python gen.py --num {num} --out-dir {out_dir}"
            [files]
            samples = "samples/*.wav"
        ''',
        "features.py": "def extract_mfcc(path): ...\n",
    })
    findings = discover(tmp_path).findings
    assert findings["mfcc"].problems == ["features.py defines no top-level function 'extract'"]
    reconstruct = " | ".join(findings["reconstruct"].problems)
    assert "{mels} is not a placeholder" in reconstruct and "never uses {mel_dir}" in reconstruct
    assert "gen.py is not in the submission" in reconstruct
    assert any("never uses {seed}" in problem for problem in findings["sample"].problems)
    assert findings["samples"].problems == ["no file matches samples/*.wav"]
    assert findings["answers"].status == "missing"  # not declared, not found


def test_a_broken_manifest_is_reported_and_everything_is_guessed(tmp_path):
    write(tmp_path, {MANIFEST: "[entry]\nmfcc = preprocess.py:extract_mfcc\n",
                     "preprocess.py": "def extract_mfcc(path): ...\n"})
    found = discover(tmp_path)
    assert found.manifest == MANIFEST
    assert "not valid TOML" in found.manifest_errors[0] and "line 2" in found.manifest_errors[0]
    assert found.findings["mfcc"].status == "guessed"


def test_unknown_keys_and_wrong_types_in_the_manifest_name_the_key(tmp_path):
    write(tmp_path, {MANIFEST: "[entry]\nrecon = 'python x.py'\nmfcc = 3\n"})
    errors = discover(tmp_path).manifest_errors
    assert any(error.startswith(f"{MANIFEST}: entry.recon: unknown key") for error in errors)
    assert any(error.startswith(f"{MANIFEST}: entry.mfcc:") for error in errors)


def test_an_empty_submission_has_every_role_missing(tmp_path):
    write(tmp_path, {"README.md": "nothing here"})
    found = discover(tmp_path)
    assert all(finding.status == "missing" for finding in found.findings.values())


def test_hostile_sources_do_not_break_discovery(tmp_path):
    write(tmp_path, {
        "deep.py": "x = " + "+".join(["1"] * 200_000) + "\ndef extract_mfcc(p): ...\n",  # RecursionError in ast
        "deep.ipynb": "[" * 100_000 + "]" * 100_000,  # RecursionError in json
        MANIFEST: "a = " + "[" * 30_000 + "]" * 30_000,  # RecursionError in tomllib
        "features.py": "def extract_mfcc(path): ...\n",
    })
    found = discover(tmp_path)
    assert found.manifest_errors == [f"{MANIFEST} is not valid TOML (nested too deeply); everything was guessed "
                                     "instead"]
    assert found.findings["mfcc"].value == "features.py:extract_mfcc"


def test_code_is_parsed_within_a_budget(tmp_path, monkeypatch):
    """Past the budget, a file is not read (parsing takes time and, for a while, hundreds of times the
    source in memory), and the reason is kept for the report."""
    import grader.code

    sources = {name: f"def extract_mfcc(path):\n    return '{name}' * 100\n" for name in ("a.py", "b.py", "c.py")}
    write(tmp_path, sources)
    monkeypatch.setattr(grader.code, "MAX_CODE_BYTES", 2 * len(sources["a.py"]))
    code = grader.code.read_code(tmp_path, sorted(sources))
    assert [bool(code.functions(name)) for name in ("a.py", "b.py", "c.py")] == [True, True, False]
    assert code.refusal("c.py").startswith("c.py comes after the 0.096 kB of code the grader reads; keep data")
