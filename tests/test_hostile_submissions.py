"""One hostile or clumsy submission never stops a class: the real pipeline, sandbox and notebooks.

Each test grades a real submission with the bundled rubric cut down to the items it is
about (on a small embedded held-out set, no baseline needed): an empty sample among good
ones, notebook placeholders that must keep their types, and a zip inside the zip.
"""
from __future__ import annotations

import io
import zipfile

import nbformat
import numpy as np
import pytest
import soundfile as sf

from grader import sandbox
from grader.heldout import HeldoutSet
from grader.intake import unpack
from grader.report.html import render_submission, student_audience
from tests.helpers import grade, rubric_of, sine

needs_sandbox = pytest.mark.skipif(sandbox.BWRAP is None, reason="bubblewrap (bwrap) is not installed")


@pytest.fixture(scope="module")
def heldout(small_heldout) -> HeldoutSet:
    return small_heldout


def test_an_empty_sample_is_a_finding_and_the_good_ones_still_count(heldout, tmp_path):
    folder = tmp_path / "empty-sample"
    for k, frequency in enumerate((220, 330, 440)):
        sine(folder / "samples" / f"{k}.wav", frequency)
    sf.write(folder / "samples" / "empty.wav", np.zeros(0), 16000)  # a valid WAV header, 0 samples
    (folder / "README.md").write_text("My samples.\n")
    result = grade(folder, heldout, tmp_path / "out", "samples-handed-in")
    item = result.items[0]
    assert item.status == "passed" and item.points == item.max_points, item.explanation
    assert "samples/empty.wav: 0 samples: the file holds no audio" in item.evidence
    assert item.explanation == "3 good sample(s) of 4 handed in; 3 expected."
    empty = next(sample for sample in result.samples if sample.name == "samples/empty.wav")
    assert not empty.valid and empty.audio is None  # nothing to play: not put in the report
    assert all(sample.audio for sample in result.samples if sample is not empty)


NOTEBOOK_PARAMETERS = "mel_dir = 'data/mels'\nout_dir = 'outputs'\nnum = 2\nseed = 1"
"""The student's defaults, as a notebook written for the contract has them (the grader's cell follows)."""
NOTEBOOK_GENERATES = """
import pathlib
import numpy as np, soundfile as sf
print(type(mel_dir).__name__, type(num).__name__, type(seed).__name__)
t = np.arange(16000) / 16000
if mel_dir is None:  # sampling
    rng = np.random.default_rng(seed)
    names = [str(k) for k in range(num)]
else:  # reconstructing
    assert num is None and seed is None, (num, seed)
    rng = np.random.default_rng(0)
    names = [path.stem for path in sorted(pathlib.Path(mel_dir).glob("*.npy"))]
for name in names:
    sf.write(pathlib.Path(out_dir) / f"{name}.wav", 0.3 * np.sin(2 * np.pi * rng.uniform(150, 600) * t), 16000)
"""


@needs_sandbox
@pytest.mark.parametrize("role", ["sample", "reconstruct"])
def test_notebook_placeholders_keep_their_types(heldout, tmp_path, role):
    """num and seed are integers, the placeholders a mode does not use are None (the contract).

    ``sample`` is the diversity item's run (the notebook would also be guessed as ``reconstruct``,
    which the generation item prefers); ``reconstruct`` the generation item's.
    """
    folder = tmp_path / role
    folder.mkdir()
    cells = [nbformat.v4.new_code_cell(NOTEBOOK_PARAMETERS, metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell(NOTEBOOK_GENERATES)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / "model.ipynb")
    (folder / "submission.toml").write_text(f'[entry]\n{role} = "model.ipynb"\n')
    item_id = "samples-diversity" if role == "sample" else "samples-generation-runs"
    result = grade(folder, heldout, tmp_path / "out", item_id)
    item, run = result.items[0], result.runs[0]
    assert run.purpose == f"{role} (notebook model.ipynb)" and run.result.ok, (run.result.message, run.result.stderr)
    assert item.status != "error" and item.metrics["valid"] == (4 if role == "sample" else len(heldout.clips)), \
        (item.explanation, item.evidence)  # the rubric's num = 4


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_inside_the_zip_is_named_on_the_students_page(heldout, tmp_path):
    inner = zip_bytes({"hw3/generate.py": b"print('hello')\n", "hw3/samples/0.wav": b"RIFF"})
    outer = tmp_path / "doe_12345_67890_hw3.zip"
    outer.write_bytes(zip_bytes({"hw3.zip": inner}))
    note = ("hw3.zip inside your submission was not expanded: nested archives are not opened; zip your files "
            "directly (one archive)")

    assert unpack(outer, tmp_path / "unpacked").notes == [note]
    result = grade(outer, heldout, tmp_path / "out", "samples-handed-in")
    assert result.status == "graded" and result.total == 0 and note in result.message
    page = render_submission(result, tmp_path / "out", rubric=rubric_of("samples-handed-in"),
                             audience=student_audience(rubric_of("samples-handed-in")))
    assert note in page


def test_nested_archives_are_known_by_name_or_by_content_but_checkpoints_are_not(tmp_path):
    """A file without an extension is judged by its first bytes; a .pt or .npz (zips inside) is not an archive."""
    import tarfile

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("empty.txt"))
    inner = zip_bytes({"a.py": b"x = 1\n"})
    files = {"code/hw3.ZIP": inner, "code/hw3 (1)": inner, "backup.tar.gz": b"not even gzip", "old": tar.getvalue(),
             "model.pt": inner, "weights.npz": inner, "README": b"# my project\n", "main.py": b"print(1)\n"}
    source = tmp_path / "submission.zip"
    source.write_bytes(zip_bytes(files))
    notes = unpack(source, tmp_path / "unpacked").notes
    named = [note.split(" inside your submission")[0] for note in notes]
    assert named == ["backup.tar.gz", "code/hw3 (1)", "code/hw3.ZIP", "old"]
