"""Notebook entries: real nbclient and a real ipykernel, both inside the sandbox."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from grader import sandbox
from grader.limits import RunLimits
from grader.notebook import (GRACE_SECONDS, INJECTED_TAG, TRACEBACK_CHARS, NotebookError, blank_installs,
                             inject_parameters, install_command, merged_parameters, run_notebook)
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
    assert [(cell.number, cell.status) for cell in ran.cells] == [(2, "ok"), (3, "ok")]
    executed = nbformat.read(workdir / ran.executed, as_version=4)
    assert executed.cells[2].metadata["tags"] == [INJECTED_TAG]
    assert "mel_dir = '/inputs/mels'" in executed.cells[2].source
    assert (workdir / "nb" / "model.ipynb").read_bytes() == original  # the student's notebook is untouched


@needs_sandbox
def test_an_error_names_its_cell_and_the_report_says_where_the_time_went(tmp_path):
    workdir = tmp_path / "work"
    save(workdir / "model.ipynb", code("x = 1"), code("import time\ntime.sleep(0.5)\nprint('before')"),
         nbformat.v4.new_markdown_cell("## Evaluation"), code(""),
         code("def evaluate(n):\n    return 1 / n\n\nevaluate(0)"), code("print('never')"))
    ran = run_notebook("model.ipynb", workdir, {"num": 2}, limits=LIMITS)
    assert not ran.ok and ran.stop is None
    assert ran.error == "cell 5 raised ZeroDivisionError: division by zero"
    assert ran.outputs[2] == "before\n" and 6 not in ran.outputs
    assert [(cell.number, cell.status) for cell in ran.cells] == [(1, "ok"), (2, "ok"), (5, "error"), (6, "not run")]
    assert 0.5 <= ran.cells[1].seconds < 5 and ran.cells[3].seconds is None
    assert ran.traceback.endswith("ZeroDivisionError: division by zero")  # plain text: colour codes removed
    assert "\x1b" not in ran.traceback and "----> 4 evaluate(0)" in ran.traceback and "return 1 / n" in ran.traceback
    assert type(ran).model_validate_json(ran.model_dump_json()) == ran  # the lead keeps it in the run's record


@needs_sandbox
def test_a_cell_past_its_timeout_is_named(tmp_path):
    workdir = tmp_path / "work"
    save(workdir / "model.ipynb", code("x = 1"), code("import time\nwhile True: time.sleep(0.1)"), code("y = 2"))
    ran = run_notebook("model.ipynb", workdir, {}, limits=LIMITS.with_overrides({"cell_seconds": 2}))
    assert not ran.ok and ran.run.verdict is sandbox.Verdict.TIMEOUT
    assert ran.error == "cell 2 timed out after 2 s (limit cell_seconds = 2)"
    assert ran.run.message == "stopped: cell 2 ran past 2 s (limit cell_seconds = 2)"
    assert (ran.stop.by, ran.stop.cell, ran.stop.seconds) == ("cell_seconds", 2, 2)
    assert [(cell.number, cell.status, cell.seconds) for cell in ran.cells[1:]] == [
        (2, "timeout", 2), (3, "not run", None)]


@needs_sandbox
def test_the_notebook_budget_bounds_its_cells_together_instead_of_wall_seconds(tmp_path):
    """Training in the notebook: its cells get notebook_seconds in all (here 4 s; wall_seconds 1 s does not
    apply), and the cell running when it runs out is named, with the limit to raise or the way round it."""
    workdir = tmp_path / "work"
    save(workdir / "model.ipynb", code("import time\ntime.sleep(1)"), code("import time\nwhile True: time.sleep(0.1)"))
    limits = LIMITS.with_overrides({"wall_seconds": 1, "notebook_seconds": 4})
    ran = run_notebook("model.ipynb", workdir, {}, limits=limits)
    assert ran.run.verdict is sandbox.Verdict.TIMEOUT and 4 < ran.run.wall_seconds < 4 + GRACE_SECONDS
    assert ran.error.startswith("cell 2 was still running when the notebook's 4 s ran out (limit notebook_seconds = 4)")
    assert "hand in trained weights and load them" in ran.error
    assert ran.stop.by == "notebook_seconds" and ran.stop.cell == 2 and ran.stop.seconds < 3
    assert [cell.status for cell in ran.cells] == ["ok", "timeout"] and ran.cells[0].seconds >= 1


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
    assert ran.error == (f"cell 2 was stopped: the notebook's cells printed or displayed more than {limit} "
                         f"bytes (limit output_bytes = {limit})")
    assert [(cell.number, cell.status) for cell in ran.cells] == [(1, "ok"), (2, "error"), (3, "not run")]
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
    index = inject_parameters(notebook, {"mel_dir": None, "out_dir": "/grading/out", "num": 4, "seed": 0})
    tree = ast.parse(notebook.cells[index].source)
    assert [(node.targets[0].id, ast.literal_eval(node.value)) for node in tree.body] == [
        ("mel_dir", None), ("out_dir", "/grading/out"), ("num", 4), ("seed", 0)]
    with pytest.raises(TypeError, match="'num' is a list"):
        inject_parameters(notebook, {"num": [4]})


def test_the_executed_notebook_is_read_back_as_untrusted_data(tmp_path):
    """What a run writes is the student's to forge: outputs and metadata of every wrong shape are read
    (bounded JSON, never nbformat), and what is reported of them is capped."""
    import json

    from grader.notebook import _cell_outputs, _cell_records, _first_failure, _first_traceback, _stop, _student_numbers
    from grader.student_files import read_notebook

    forged = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "source": "a", "metadata": {"execution": "not a dict"}, "outputs": [
            {"output_type": "stream", "text": ["a"] * 100_000}, 7, {"output_type": "display_data", "data": "no"}]},
        {"cell_type": "code", "source": "x = 1", "metadata": {"tags": [INJECTED_TAG]}, "outputs": []},
        {"cell_type": "code", "source": "b", "metadata": {"execution": {"iopub.execute_input": "now",
                                                                        "shell.execute_reply": 3}}, "outputs": [
            {"output_type": "error", "ename": "E", "evalue": "v" * 100_000, "traceback": "not a list"}]},
        {"cell_type": "code", "source": "c", "metadata": {"execution": {
            "iopub.execute_input": "2025-01-01T00:00:02Z", "shell.execute_reply": "2025-01-01T00:00:01Z"}},
         "outputs": [{"output_type": "error", "traceback": ["\x1b[31m" + "t" * 10_000 + "\x1b[0m", None]}]}]}
    (tmp_path / "run.executed.ipynb").write_text(json.dumps(forged))
    cells = _student_numbers(read_notebook(tmp_path / "run.executed.ipynb", outputs=True), 1)
    failed = sandbox.RunResult(verdict=sandbox.Verdict.EXIT_CODE, message="exited with 1", command=["python"],
                               exit_code=3, stderr='grader: the notebook was stopped: {"by": "cell_seconds", '
                                                   '"cell": 2, "seconds": 30}')
    stop = _stop(failed, 1)
    assert (stop.by, stop.cell) == ("cell_seconds", 2)
    assert _first_failure(cells, stop, failed, LIMITS) == "cell 2 timed out after 30 s (limit cell_seconds = 30)"
    assert _first_failure(cells, None, failed, LIMITS) == "cell 2 raised E: " + "v" * 1_983
    assert _first_traceback(cells) is None  # the first error's traceback is not a list
    assert _first_traceback(cells[2:]) == "..." + "t" * TRACEBACK_CHARS  # its end, without colour codes
    assert [(c.number, c.status, c.seconds) for c in _cell_records(cells, stop)] == [
        (1, "not run", None), (2, "timeout", 30), (3, "error", None)]  # forged timestamps give no seconds
    assert _cell_outputs(cells) == {1: "a" * 2_000, 3: "t" * 2_000}
    for stderr in ('grader: the notebook was stopped: {"by": "rm -rf", "cell": 2, "seconds": 1}',
                   "grader: the notebook was stopped: [", "grader: the notebook was stopped: 7"):
        assert _stop(failed.model_copy(update={"stderr": stderr}), 1) is None


def test_package_installs_are_blanked_keeping_the_cell_valid_python():
    """``!pip``/``%pip``/``!apt-get``/``%conda`` lines become ``pass`` (so an ``if`` or ``try`` around them still
    parses) or, in a %%bash cell, a comment; each is reported with its packages, numbered as the student sees it."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("!pip install not-code"),
                      code("if True:\n    !pip install -q a==1 b \\\n        c\nprint('x')"),
                      code("%conda install -c conda-forge librosa\n!ls -l\n!!sudo apt-get update\n%pip list"),
                      code("%%bash\npip install torch>=2\necho hi")]
    found = blank_installs(notebook)
    assert [(f.cell, f.tool, f.packages, f.line) for f in found] == [
        (2, "pip", ["a==1", "b", "c"], "pip install -q a==1 b c"), (3, "conda", ["librosa"], found[1].line),
        (3, "apt", [], "sudo apt-get update"), (3, "pip", [], "pip list"),
        (4, "pip", ["torch"], "pip install torch>=2")]
    assert notebook.cells[1].source == ("if True:\n    pass  # not run by the grader (no network): pip install -q "
                                        "a==1 b c\n\nprint('x')")
    ast.parse(notebook.cells[1].source)
    assert notebook.cells[2].source.splitlines()[1] == "!ls -l"  # not an install: it runs
    assert notebook.cells[3].source.splitlines()[1].startswith("# not run by the grader")
    assert notebook.cells[0].source == "!pip install not-code"
    assert install_command("python3 -m pip install --upgrade -r req.txt 'x>=1' y; ls") == ("pip", ["x>=1", "y"])
    assert install_command("{sys.executable} -m pip install z 2>&1 > log") == ("pip", ["z"])
    assert install_command("apt install -y ffmpeg && pip install q") == ("apt", ["ffmpeg"])
    assert install_command("git clone repo") is None


def test_a_notebook_serving_both_modes_gets_one_value_for_each_placeholder():
    with pytest.raises(ValueError, match="out_dir is 'a' for one mode and 'b' for sample"):
        merged_parameters({"reconstruct": {"out_dir": "a"}, "sample": {"out_dir": "b"}})
    with pytest.raises(ValueError, match="roles must be some of reconstruct, sample"):
        merged_parameters({"train": {}})
