"""Hostile files the grader parses on the host: each within 2 s and 256 MB, at the size that hurt before
this reader and at 2 MB, with what it still reads or the refusal it gives (grader/student_files.py).

Each input is built here. Time is measured on a plain call, memory (tracemalloc's peak) on a second.
"""
from __future__ import annotations

import json
import os
import struct
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from grader.checks import claims
from grader.checks.quiz import AnswersError, read_answers
from grader.checks.static import find_evidence
from grader.code import CodeUnit, code_units
from grader.discovery import MANIFEST, discover
from grader.notebook import NotebookError, load_notebook
from grader.limits import MAX_JSON_VALUES, MAX_PARSE_BYTES
from grader.student_files import (OverLimit, StudentFileError, parse_json,
                                  read_bytes, read_notebook, read_toml)

SECONDS = 2.0
MEMORY = 256 * 2**20
TWO_MB = 2_000_000


def bounded(call, *args, **kwargs):
    """``call(*args, **kwargs)``, asserted to take under 2 s and 256 MB (tracemalloc's peak); its result."""
    start = time.perf_counter()
    result = call(*args, **kwargs)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    try:
        call(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < SECONDS, f"{seconds:.2f} s"
    assert peak < MEMORY, f"{peak / 2**20:.0f} MiB"
    return result


def refused(error: type[Exception], call, *args) -> str:
    """The message of the ``error`` that ``call(*args)`` raises, within the bounds."""
    return str(bounded(pytest.raises, error, call, *args).value)


# --------------------------------------------------------------------------- notebooks

CODE = "import librosa\ndef extract_mfcc(path):\n    y, sr = librosa.load(path)\n"
EMPTY_STREAM = {"output_type": "stream", "name": "stdout", "text": ""}


def notebook(outputs: list, code: str = CODE) -> str:
    """A notebook whose one code cell has ``outputs``, then a markdown cell that reports a figure."""
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "c1", "metadata": {"tags": ["parameters"]}, "execution_count": None,
         "source": code, "outputs": outputs},
        {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": ["Our model: PESQ 3.1\n", "SNR 12 dB"]},
    ]}, separators=(",", ":"))


def filling(size: int, output: dict) -> list:
    """As many copies of ``output`` as make the notebook about ``size`` bytes."""
    return [output] * ((size - len(notebook([]))) // (len(json.dumps(output, separators=(",", ":"))) + 1))


def every_reader(folder: Path, name: str) -> dict:
    """What each caller of the notebook reader makes of ``folder/name``: static evidence, discovery,
    claims, and the notebook prepared to run (or the refusal it gives)."""
    units, unread, _ = code_units([folder / name], folder)
    try:
        prepared = load_notebook(folder / name)
    except NotebookError as error:
        prepared = error
    ctx = SimpleNamespace(submission=SimpleNamespace(work_dir=folder),
                          discovery=SimpleNamespace(findings={"evaluation": SimpleNamespace(files=[name])}))
    return {"evidence": find_evidence(units), "unread": unread, "prepared": prepared,
            "mfcc": discover(folder).findings["mfcc"], "claims": claims.claimed_figures(ctx)}


@pytest.mark.parametrize("size", [60_000, TWO_MB])
def test_a_notebook_of_empty_outputs_is_read_without_nbformat(tmp_path, size):
    """20,000 empty outputs (60 kB) took nbformat 15 s and 1.2 GB (0.9 MB: 256 s, 13 GB); at 2 MB
    there are more JSON values than the reader takes, and every reader says so or reads nothing."""
    (tmp_path / "model.ipynb").write_text(notebook(filling(size, {})))
    assert abs((tmp_path / "model.ipynb").stat().st_size - size) < 1_000
    read = bounded(every_reader, tmp_path, "model.ipynb")
    if size < TWO_MB:
        assert [f.what for f in read["evidence"]["librosa_load"]] == ["librosa.load"] and not read["unread"]
        assert [(c.cell_type, c.source, c.outputs if c.cell_type == "code" else None, c.metadata)
                for c in read["prepared"].cells] == [("code", CODE, [], {"tags": ["parameters"]}),
                                                     ("markdown", "Our model: PESQ 3.1\nSNR 12 dB", None, {})]
        nbformat.validate(read["prepared"])
        assert read["mfcc"].value == "model.ipynb:extract_mfcc"  # found in a notebook cell
        assert [(c.file, c.metric, c.value) for c in read["claims"]] == [("model.ipynb", "pesq_wb", 3.1),
                                                                         ("model.ipynb", "snr", 12.0)]
    else:
        assert read["unread"] == [f"model.ipynb (holds more than {MAX_JSON_VALUES:,} JSON values: clear its outputs)"]
        assert str(read["prepared"]) == (f"model.ipynb: holds more than {MAX_JSON_VALUES:,} JSON values; clear its "
                                         "outputs (Edit > Clear Outputs of All Cells) and save it again")
        assert not read["mfcc"].problems and read["claims"] == []


def test_a_notebook_of_2_mb_of_empty_stream_outputs_is_read(tmp_path):
    (tmp_path / "model.ipynb").write_text(notebook(filling(TWO_MB, EMPTY_STREAM)))
    read = bounded(every_reader, tmp_path, "model.ipynb")
    assert [f.what for f in read["evidence"]["librosa_load"]] == ["librosa.load"]
    assert [c.outputs for c in read["prepared"].cells if c.cell_type == "code"] == [[]]
    assert [(c.file, c.value) for c in read["claims"] if c.metric == "pesq_wb"] == [("model.ipynb", 3.1)]


@pytest.mark.parametrize("text", [
    "[" * 100_000,  # json recursed until RecursionError
    '{"a": "' + '\\"' * (TWO_MB // 2),  # an unterminated string of escaped quotes: quadratic for a naive pattern
    "[" + '"",' * (TWO_MB // 3) + '""]',  # 666,000 strings
    "[" + "{}," * (TWO_MB // 3) + "{}]",  # 666,000 objects (some 50 MB of them)
    '{"a": [' + "[" * 90 + "]" * 90 + "," + "1," * (MAX_JSON_VALUES - 200) + "1]}",  # deep and wide, within bounds
    "]" * TWO_MB,
])
def test_hostile_json_is_refused_or_read_in_linear_time(text):
    data = text.encode()
    if text.startswith('{"a": ['):
        assert len(bounded(parse_json, data, "x.json")["a"]) == MAX_JSON_VALUES - 198
    else:
        message = refused(StudentFileError, parse_json, data, "x.json")
        assert message.startswith("x.json: ") and any(words in message for words in (
            "nested too deeply", "not valid JSON", f"more than {MAX_JSON_VALUES:,} JSON values"))


def test_the_executed_notebook_written_by_student_code_is_read_within_bounds(tmp_path):
    """A run's executed notebook is the student's to forge: 2 MB of outputs of every wrong shape."""
    junk = [{"output_type": "error", "ename": ["E"] * 3, "evalue": "x" * 100_000, "traceback": "not a list"},
            {"output_type": "stream", "text": ["a"] * 50_000}, {"output_type": "display_data", "data": "no"}, 7]
    path = tmp_path / "run.executed.ipynb"
    path.write_text(notebook(junk + filling(TWO_MB - 250_000, EMPTY_STREAM)))
    cells = bounded(read_notebook, path, outputs=True)
    assert len(cells[0].outputs) == len(junk) - 1 + len(filling(TWO_MB - 250_000, EMPTY_STREAM))


# --------------------------------------------------------------------------- answers and the manifest

@pytest.mark.parametrize("spaces", [80_000, TWO_MB])
def test_a_markdown_answer_with_a_long_run_of_spaces(tmp_path, spaces):
    """``- q2: a`` + 80,000 spaces + ``b`` (a 290-byte zip) took the answer pattern 46 s; 2 MB is refused."""
    (tmp_path / "answers.md").write_text("- q1: MFCC\n- q2: a" + " " * spaces + "b\n")
    if spaces < TWO_MB:
        assert bounded(read_answers, tmp_path / "answers.md") == {"q1": "MFCC", "q2": "a" + " " * spaces + "b"}
    else:
        assert refused(AnswersError, read_answers, tmp_path / "answers.md") == (
            "answers.md: cannot be read (it is 2,000,020 bytes, over the 128 kB an answers file may be). Start "
            "from the template that `grade kit` writes: a [quiz] table with lines like q1 = \"MFCC\".")


@pytest.mark.parametrize("name, text, problem", [
    ("answers.json", "[" * 100_000, "it is nested too deeply"),
    ("answers.json", '{"quiz": {"q1": "MFCC"}, "x": [' + "[]," * 40_000 + "[]]}", None),
    ("answers.toml", "a" + ".a" * 32_000 + " = 1", "more than 256 dots"),  # tomllib: 10 s and 4 GB
    ("answers.toml", "".join(f"k{i}" + ".a" * 256 + " = 1\n" for i in range(240)) + "[quiz]\nq1 = 'MFCC'\n", None),
    ("answers.toml", "q1 = " + "[" * 60_000, "nested too deeply"),
])
def test_hostile_answers_files(tmp_path, name, text, problem):
    for size in (len(text), TWO_MB):
        padded = text if size == len(text) else text + " " * (size - len(text))
        (tmp_path / name).write_text(padded)
        if size == TWO_MB:
            assert f"{name}: cannot be read (it is 2,000,000 bytes, over the 128 kB" in refused(
                AnswersError, read_answers, tmp_path / name)
        elif problem:
            assert problem in refused(AnswersError, read_answers, tmp_path / name)
        else:
            assert bounded(read_answers, tmp_path / name) == {"q1": "MFCC"}


@pytest.mark.parametrize("text, error", [
    ("a" + ".a" * 32_000 + " = 1", "more than 256 dots"),
    ("[entry]\nmfcc = 'features.py:extract_mfcc'\n" + "#" * (TWO_MB - 50) + "\n", "over the 128 kB a manifest"),
])
def test_a_hostile_manifest_is_refused_and_everything_guessed(tmp_path, text, error):
    (tmp_path / MANIFEST).write_text(text)
    (tmp_path / "features.py").write_text("def extract_mfcc(path): ...\n")
    found = bounded(discover, tmp_path)
    assert error in found.manifest_errors[0] and found.findings["mfcc"].status == "guessed"


def test_a_manifest_cannot_make_discovery_match_patterns_without_end(tmp_path):
    """10,000 patterns against 2,000 files would be 20 million matches."""
    (tmp_path / MANIFEST).write_text("[files]\nsamples = [\n" + "'*.wav',\n" * 10_000 + "]\n")
    for index in range(2_000):
        (tmp_path / f"{index}.wav").write_bytes(b"")
    found = bounded(discover, tmp_path).findings["samples"]
    assert len(found.files) == 2_000 and found.problems == ["10000 patterns are listed; only the first 20 were used"]


# --------------------------------------------------------------------------- code

LIBROSA = "\nimport librosa\ny = librosa.load(path)\n"


@pytest.mark.parametrize("shape", [
    lambda size: "x = [" + "1," * ((size - 6) // 2) + "]",  # data posing as code: 2 MB took ast 3 to 4 s and 500 MB
    lambda size: "(" * (size // 2) + ")" * (size // 2),  # nesting
    lambda size: "x = " + "'a' " * ((size - 4) // 4),  # string concatenation
    lambda size: "a\n" * (size // 2),  # the most memory per byte found: 0.9 kB
    lambda size: "f'" + "{1}" * ((size - 3) // 3) + "'",  # f-string fields: quadratic in Python 3.11 (120 kB: 1 s)
    lambda size: "def f(:\n" + "x\n" * ((size - 8) // 2),  # does not parse: searched line by line, 2 MB took 33 s
])
@pytest.mark.parametrize("size", [MAX_PARSE_BYTES, TWO_MB])
def test_hostile_python_is_parsed_or_searched_within_bounds(tmp_path, shape, size):
    source = shape(size - len(LIBROSA)) + LIBROSA
    assert size - 10 <= len(source) <= size
    evidence = bounded(find_evidence, [CodeUnit("data.py", source)])
    assert [f.what.split(" (")[0] for f in evidence["librosa_load"]] == ["librosa.load"]
    (tmp_path / "data.py").write_text(source)
    assert bounded(discover, tmp_path).findings["mfcc"].status == "missing"


def test_a_notebook_s_cells_share_one_file_s_parsing_budget(tmp_path):
    """Ten cells of 190 kB of the costliest code: parsed one by one, 5 s; now the first is parsed, the rest searched."""
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "source": "a\n" * 95_000 + "librosa.load(p)\n"}
             for _ in range(10)]
    (tmp_path / "big.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                                    "cells": cells}))
    units, unread, _ = code_units([tmp_path / "big.ipynb"], tmp_path)
    found = bounded(find_evidence, units)["librosa_load"]
    assert [f.what for f in found] == ["librosa.load"] + ["librosa.load (too large to parse)"] * 9


# --------------------------------------------------------------------------- files that are not files, audio

def test_a_fifo_or_a_link_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "answers.md")
    assert "answers.md: cannot be read (it is not a regular file)" in refused(
        AnswersError, read_answers, tmp_path / "answers.md")
    (tmp_path / "model.ipynb").symlink_to("/etc/passwd")
    assert refused(StudentFileError, read_bytes, tmp_path / "model.ipynb", 100) == (
        "model.ipynb: is a symbolic link, not a file")


@pytest.mark.parametrize("chunks", [
    [(b"junk", b"")] * (TWO_MB // 8),  # 250,000 chunks
    [(b"LIST", b"adtl" + (b"labl" + struct.pack("<I", 6) + b"\0\0\0\0ab") * (TWO_MB // 14))],
    [(b"cue ", struct.pack("<I", 0xFFFFFFF0) + b"\0" * TWO_MB)],  # claims 4 billion cue points
])
def test_a_hostile_audio_header_is_judged_quickly(tmp_path, chunks):
    """libsndfile reads headers in bounded time (the header check in reference/evaluation_unpaired.py)."""
    from reference.evaluation_unpaired import validity

    def chunk(name: bytes, data: bytes) -> bytes:
        return name + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)

    body = b"WAVE" + chunk(b"fmt ", struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)) + b"".join(
        chunk(name, data) for name, data in chunks) + chunk(b"data", b"\0" * 32000)
    (tmp_path / "clip.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    report = bounded(validity, tmp_path / "clip.wav")
    assert report.problems and (report.seconds is None or report.seconds <= 1.0)


def test_toml_dots_are_counted_on_tomls_own_lines(tmp_path):
    """str.splitlines() also breaks at U+2028 and other separators that TOML allows inside a quoted key part:
    counted that way, 4,000 dotted parts hid behind pieces of fewer than 256 dots (16 kB took tomllib 0.5 s,
    quadratic in the parts)."""
    key = ".".join(["a"] * 200 + ['"\u2028"'])
    path = tmp_path / "answers.toml"
    path.write_text(".".join([key] * 20) + ' = "x"\n', encoding="utf-8")
    with pytest.raises(OverLimit, match="dots"):
        read_toml(path, 128_000, "an answers file")
