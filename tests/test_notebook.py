"""Notebook entries: real nbclient and a real ipykernel, both inside the sandbox."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from grader import sandbox
from grader.limits import RunLimits
from grader.notebook import INJECTED_TAG, NotebookError, inject_parameters, run_notebook
from reference import PROJECT_ROOT

LIMITS = RunLimits(wall_seconds=60, cell_seconds=30, memory_bytes=2 * 2**30)
needs_sandbox = pytest.mark.skipif(sandbox.BWRAP is None, reason="bubblewrap (bwrap) is not installed")


def save(path: Path, *cells: nbformat.NotebookNode) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = list(cells)
    nbformat.write(notebook, path)
    return path.name


def code(source: str, *tags: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})


@needs_sandbox
def test_placeholders_are_injected_after_the_parameters_cell_and_the_kernel_runs_sandboxed(tmp_path):
    mels = tmp_path / "mels"
    mels.mkdir()
    (mels / "clip1.npy").write_bytes(b"")
    mels.chmod(0o755)
    workdir = tmp_path / "work"
    save(workdir / "nb" / "model.ipynb",
         nbformat.v4.new_markdown_cell("# My vocoder"),
         code("mel_dir = 'data/mels'\nout_dir = 'outputs'\nnum = 1", "parameters"),
         code("import os, socket\n"
              "os.makedirs(out_dir, exist_ok=True)\n"
              "for name in sorted(os.listdir(mel_dir)):\n"
              "    open(os.path.join(out_dir, name.replace('.npy', '.wav')), 'w').write(str(num))\n"
              "print(os.getcwd(), [n for _, n in socket.if_nameindex()])\n"
              f"print(os.path.exists({str(PROJECT_ROOT / 'rubrics')!r}))"))
    original = (workdir / "nb" / "model.ipynb").read_bytes()
    ran = run_notebook("nb/model.ipynb", workdir, {"mel_dir": "{mels}", "out_dir": "{workdir}/out", "num": 3},
                       inputs={"mels": mels}, limits=LIMITS)
    assert ran.ok, (ran.error, ran.run.stderr)
    assert sandbox.output_file(workdir, "out/clip1.wav").read_text() == "3"
    assert ran.outputs == {3: f"{sandbox.WORKDIR_INSIDE}/nb ['lo']\nFalse\n"}  # numbered as the student sees them
    executed = nbformat.read(workdir / ran.executed, as_version=4)
    assert executed.cells[2].metadata["tags"] == [INJECTED_TAG]
    assert "mel_dir = '/inputs/mels'" in executed.cells[2].source
    assert (workdir / "nb" / "model.ipynb").read_bytes() == original  # the student's notebook is untouched


@needs_sandbox
def test_an_error_names_its_cell(tmp_path):
    workdir = tmp_path / "work"
    save(workdir / "model.ipynb", code("x = 1"), code("print('before')"), code("1 / 0"), code("print('never')"))
    ran = run_notebook("model.ipynb", workdir, {"num": 2}, limits=LIMITS)
    assert not ran.ok
    assert ran.error == "cell 3 raised ZeroDivisionError: division by zero"
    assert ran.outputs[2] == "before\n" and 4 not in ran.outputs


@needs_sandbox
def test_a_cell_past_its_timeout_is_named(tmp_path):
    workdir = tmp_path / "work"
    save(workdir / "model.ipynb", code("x = 1"), code("import time\nwhile True: time.sleep(0.1)"))
    ran = run_notebook("model.ipynb", workdir, {}, limits=LIMITS.with_overrides({"cell_seconds": 2}))
    assert not ran.ok
    assert ran.error == "cell 2 timed out after 2 s (limit cell_seconds = 2)"


def test_malformed_notebooks_are_refused_with_what_to_do(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "broken.ipynb").write_text('{"cells": [')
    (workdir / "not-a-notebook.ipynb").write_text('{"hello": "world"}')
    for name in ("broken.ipynb", "not-a-notebook.ipynb", "missing.ipynb"):
        with pytest.raises(NotebookError) as caught:
            run_notebook(name, workdir, {}, limits=LIMITS)
        assert name in str(caught.value)
    assert "save it again" in str(caught.value) or "no such file" in str(caught.value)
    assert not (workdir / ".grader-notebooks").exists()  # nothing ran


def test_a_notebook_too_large_to_read_says_how_to_shrink_it(tmp_path, monkeypatch):
    import grader.notebook

    save(tmp_path / "work" / "model.ipynb", code("x = 1"), code("print('a' * 100)"))
    monkeypatch.setattr(grader.notebook, "MAX_NOTEBOOK_BYTES", 100)
    with pytest.raises(NotebookError, match=r"model.ipynb: is 0 MB, over the 0.0001 MB .* clear its outputs"):
        run_notebook("model.ipynb", tmp_path / "work", {}, limits=LIMITS)


def test_injected_values_are_literals_not_code():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [code("a = 1"), code("b = 2", "parameters"), code("c = 3")]
    hostile = "x'\nimport os; os.system('rm -rf /')\n'"
    index = inject_parameters(notebook, {"out_dir": hostile, "num": 4})
    assert index == 2
    tree = ast.parse(notebook.cells[index].source)
    assert [type(node) for node in tree.body] == [ast.Assign, ast.Assign]
    assert ast.literal_eval(tree.body[0].value) == hostile
    with pytest.raises(ValueError):
        inject_parameters(notebook, {"not a name": 1})


def test_without_a_parameters_cell_the_injection_comes_first():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [code("a = 1")]
    assert inject_parameters(notebook, {"seed": 0}) == 0
    assert notebook.cells[0].metadata["tags"] == [INJECTED_TAG]


@needs_sandbox
def test_a_notebook_printing_30_mb_is_stopped_at_output_bytes_and_its_executed_copy_stays_small(tmp_path):
    """What cells print reaches nbclient as kernel messages, which the sandbox's own count never sees.

    Outputs saved in the student's file (here an old error and 3 MB of text in a cell that
    never ran) are not taken for this run's.
    """
    workdir = tmp_path / "work"
    never_ran = code("open('after.txt', 'w').write('ran')")
    never_ran.outputs = [nbformat.v4.new_output("error", ename="OldError", evalue="from the student's session",
                                                traceback=[]),
                         nbformat.v4.new_output("stream", name="stdout", text="x" * 3_000_000)]
    save(workdir / "model.ipynb", code("x = 1"), code("chunk = 'x' * 1_000_000\nfor _ in range(30):\n    print(chunk)"),
         never_ran)
    ran = run_notebook("model.ipynb", workdir, {}, limits=LIMITS)
    limit = LIMITS.output_bytes
    assert ran.run.verdict is sandbox.Verdict.OUTPUT_LIMIT, (ran.run.message, ran.run.stderr)
    assert ran.error == (f"the notebook run stopped: the notebook's cells printed or displayed more than {limit} "
                         f"bytes (limit output_bytes = {limit})")
    assert not (workdir / "after.txt").exists()  # the notebook stopped in the cell that printed
    assert (workdir / ran.executed).stat().st_size < limit / 50  # at most 100 kB of a cell's outputs are kept
    executed = nbformat.read(workdir / ran.executed, as_version=4)
    assert f"stopped by the grader: the notebook sent more than {limit} bytes of output" in \
        executed.cells[2].outputs[-1].text
    assert executed.cells[3].outputs == []


def test_injected_values_keep_their_types():
    """The contract: num and seed are integers, paths strings, and what a mode does not use is None."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [code("mel_dir = 'mels'\nnum = 1", "parameters")]
    index = inject_parameters(notebook, {"mel_dir": None, "out_dir": "/work/out", "num": 4, "seed": 0})
    tree = ast.parse(notebook.cells[index].source)
    assert [(node.targets[0].id, ast.literal_eval(node.value)) for node in tree.body] == [
        ("mel_dir", None), ("out_dir", "/work/out"), ("num", 4), ("seed", 0)]
    with pytest.raises(TypeError, match="'num' is a list"):
        inject_parameters(notebook, {"num": [4]})


def test_the_executed_notebook_is_read_back_as_untrusted_data(tmp_path):
    """What a run writes is the student's to forge: outputs and metadata of every wrong shape are read
    (bounded JSON, never nbformat), and what is reported of them is capped."""
    import json

    from grader.notebook import _cell_outputs, _first_failure
    from grader.student_files import read_notebook

    forged = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "source": "", "metadata": {"execution": "not a dict"}, "outputs": [
            {"output_type": "stream", "text": ["a"] * 100_000}, 7, {"output_type": "display_data", "data": "no"}]},
        {"cell_type": "code", "source": "x = 1", "metadata": {"tags": [INJECTED_TAG]}, "outputs": []},
        {"cell_type": "code", "source": "", "metadata": {"execution": {"iopub.execute_input": "now"}}, "outputs": [
            {"output_type": "error", "ename": "E", "evalue": "v" * 100_000, "traceback": "not a list"}]}]}
    (tmp_path / "run.executed.ipynb").write_text(json.dumps(forged))
    cells = read_notebook(tmp_path / "run.executed.ipynb", outputs=True)
    failed = sandbox.RunResult(verdict=sandbox.Verdict.EXIT_CODE, message="exited with 1", command=["python"],
                               stderr="CellTimeoutError")
    assert _first_failure(cells, 1, failed, LIMITS) == "cell 2 timed out after 30 s (limit cell_seconds = 30)"
    assert _first_failure(cells, 1, failed.model_copy(update={"stderr": ""}), LIMITS) == (
        "cell 2 raised E: " + "v" * 1_983)
    assert _cell_outputs(cells, 1) == {1: "a" * 2_000}
