"""Running a notebook entry: nbclient inside the sandbox, with the contract's placeholders.

A submission's ``reconstruct`` or ``sample`` entry may be a ``.ipynb``. The grader
reads it (a malformed notebook is a :class:`NotebookError` saying what to do), sets the
placeholders as Python variables in a new cell right after the cell tagged
``parameters`` (papermill's convention; a new first cell where none is tagged), and
executes the result with nbclient *inside* the sandbox, kernel included, with a
per-cell timeout (``cell_seconds``). The executed notebook is written to the work
folder; its outputs and the first error are read back from it.

What the sandbox writes is the student's to forge: the executed notebook is read as
untrusted data, and only for the report.
"""
from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import nbformat
from pydantic import BaseModel

from grader import sandbox
from grader.limits import RunLimits
from grader.student_files import (MAX_NOTEBOOK_BYTES, NotebookCell, OverLimit, StudentFileError, TooLarge,
                                  joined_text, read_notebook)

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
RUN_FOLDER = ".grader-notebooks"
"""Folder of the work folder where the prepared and executed notebooks are written."""
_OUTPUT_CHARS_PER_CELL = 2000

_OUTPUT_LIMIT_EXIT = 3
"""The runner's exit status when it stopped the notebook for sending more than ``output_bytes`` of output."""
_OUTPUT_LIMIT_MARK = "grader: the notebook's output passed output_bytes"
"""The runner's last line on stderr in that case; with the exit status, what :func:`_output_limit` recognises."""

# Runs inside the sandbox with the venv's python: execute, and always save what ran. The
# kernel talks to nbclient over TCP on the loopback of the run's own network namespace.
# What cells print travels to nbclient as messages, not on the run's stdout, so the
# sandbox's own output_bytes count never sees it: the runner counts it (every message
# about a cell but its status and echoed source: streams, displays, errors, widget
# state) and stops the notebook past the limit, that cell's outputs ending with a note.
# The executed notebook holds only this run's outputs (those saved in the student's file
# are cleared first), at most KEEP bytes of each cell's (errors always kept).
_RUNNER = """
import json
import sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
source, executed, cwd, timeout, limit = sys.argv[1:6]
limit = int(limit)
KEEP = 100_000


class BoundedClient(NotebookClient):
    sent = 0
    over = False

    def process_message(self, msg, cell, cell_index):
        if self.over:
            return super().process_message(msg, cell, cell_index) if msg["msg_type"] == "status" else None
        if msg["msg_type"] not in ("status", "execute_input"):
            self.sent += len(json.dumps(msg["content"], default=str).encode())
            self.sent += sum(len(buffer) for buffer in msg.get("buffers") or [])
            if self.sent > limit:
                self.over, self.shutdown_kernel = True, "immediate"
                cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=(
                    f"[stopped by the grader: the notebook sent more than {limit} bytes of output "
                    f"(limit output_bytes = {limit})]")))
                self.task_poll_for_reply.cancel()  # ends the cell now (nbclient then raises DeadKernelError)
                return None
        return super().process_message(msg, cell, cell_index)


def trimmed(outputs):
    kept, size = [], 0
    for output in outputs:
        length = len(json.dumps(output))
        if output.output_type == "error" or size + length <= KEEP:
            kept.append(output)
            size += length
        elif size < KEEP:
            text = output.text[:KEEP - size] if output.output_type == "stream" else ""
            kept.append(nbformat.v4.new_output("stream", name="stderr", text=(
                f"{text}[the grader kept the first {KEEP} bytes of this cell's output]")))
            size = KEEP
    return kept


notebook = nbformat.read(source, as_version=4)
for cell in notebook.cells:
    if cell.cell_type == "code":
        cell.outputs = []
client = BoundedClient(notebook, timeout=int(timeout), kernel_name="python3",
                       resources={"metadata": {"path": cwd}})
try:
    client.execute()
except DeadKernelError:
    if not client.over:
        raise
finally:
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = trimmed(cell.outputs)
    nbformat.write(notebook, executed)
""" + f"""
if client.over:
    print({_OUTPUT_LIMIT_MARK!r}, file=sys.stderr)
    sys.exit({_OUTPUT_LIMIT_EXIT})
"""


def _output_limit(result: sandbox.RunResult, limits: RunLimits) -> sandbox.RunResult:
    """``result`` as the verdict ``output_limit`` when the runner stopped the notebook for its output."""
    stopped = (result.verdict is sandbox.Verdict.EXIT_CODE and result.exit_code == _OUTPUT_LIMIT_EXIT
               and result.stderr.rstrip().endswith(_OUTPUT_LIMIT_MARK))
    if not stopped:
        return result
    return result.model_copy(update=dict(
        verdict=sandbox.Verdict.OUTPUT_LIMIT, message=f"stopped: the notebook's cells printed or displayed more "
        f"than {limits.output_bytes} bytes (limit output_bytes = {limits.output_bytes})"))


class NotebookError(ValueError):
    """A notebook that cannot be run as it is; the message names the file and the fix."""


class NotebookRun(BaseModel):
    """One notebook's execution in the sandbox.

    Cells are numbered from 1 as the student's own notebook has them (markdown cells
    included); the injected parameter cell is not counted.
    """

    run: sandbox.RunResult
    executed: str | None
    """The executed notebook, relative to the work folder; None when it was not written."""
    error: str | None
    """The first failure in words (``cell 3 raised ValueError: ...``, ``cell 5 timed out ...``); None when all ran."""
    outputs: dict[int, str]
    """Text output of each code cell that printed something, capped, by cell number."""

    @property
    def ok(self) -> bool:
        return self.run.ok and self.error is None


def load_notebook(path: str | os.PathLike) -> nbformat.NotebookNode:
    """The notebook's cells, in order, as a new nbformat 4 notebook to run: each cell's type, source
    and tags as the student wrote them, outputs and everything else left out.

    The student's file is read with :func:`~grader.student_files.read_notebook` (bounded JSON), never
    with nbformat, whose reader and validator take seconds and gigabytes on a hostile file; the
    notebook built here is valid by construction.

    Raises:
        NotebookError: not a readable nbformat 4 notebook (the reason says why), or over :data:`MAX_NOTEBOOK_BYTES`
            or the JSON values the reader takes (then: clear its outputs).
    """
    path = Path(path)
    fix = "open it in Jupyter, check that it runs, and save it again (File > Save Notebook)"
    shrink = "clear its outputs (Edit > Clear Outputs of All Cells) and save it again"
    try:
        cells = read_notebook(path, max_bytes=MAX_NOTEBOOK_BYTES)
    except TooLarge as error:
        raise NotebookError(f"{path.name}: is {error.size / 10**6:.0f} MB, over the {MAX_NOTEBOOK_BYTES / 10**6:g} MB "
                            f"a notebook may be; {shrink}") from None
    except OverLimit as error:
        raise NotebookError(f"{path.name}: {error.problem}; {shrink}") from None
    except OSError as error:
        raise NotebookError(f"{path.name}: cannot be read ({error.strerror}); {fix}") from error
    except StudentFileError as error:
        raise NotebookError(f"{path.name}: is not a valid Jupyter notebook ({error.problem}); {fix}") from None
    new_cell = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
                "raw": nbformat.v4.new_raw_cell}
    return nbformat.v4.new_notebook(cells=[new_cell[cell.kind](cell.source, metadata={"tags": cell.tags} if cell.tags
                                                               else {}) for cell in cells])


def inject_parameters(notebook: nbformat.NotebookNode, parameters: Mapping[str, str | int | float | None]) -> int:
    """Insert a cell setting ``parameters`` as variables; returns its index.

    It goes right after the first cell tagged ``parameters`` (so that it overrides the
    student's defaults), or first when no cell is tagged. Values keep their types, as the
    contract says (``num = 4``, ``mel_dir = None``, paths as strings): each is written as a
    Python literal (``repr``) of a string, a number or None, so no value can inject code.
    """
    for name in parameters:
        if not name.isidentifier():
            raise ValueError(f"parameter {name!r} is not a Python variable name")
    for name, value in parameters.items():
        if value is not None and type(value) not in (str, int, float):
            raise TypeError(f"parameter {name!r} is a {type(value).__name__}, not a string, a number or None")
    source = "# Parameters injected by the grader\n" + "".join(f"{name} = {value!r}\n"
                                                             for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    index = 0
    for position, existing in enumerate(notebook.cells):
        if PARAMETERS_TAG in existing.get("metadata", {}).get("tags", []):
            index = position + 1
            break
    notebook.cells.insert(index, cell)
    return index


def run_notebook(
    notebook: str,
    workdir: str | os.PathLike,
    parameters: Mapping[str, str | int | float | None],
    inputs: Mapping[str, str | os.PathLike] | None = None,
    limits: RunLimits | None = None,
    *,
    allow_unsandboxed: bool = False,
) -> NotebookRun:
    """Execute the submission's ``notebook`` in the sandbox with ``parameters`` injected.

    Args:
        notebook: the notebook's path relative to ``workdir`` (as discovery found it).
        workdir: the submission's work folder; the kernel starts in the notebook's folder.
        parameters: the contract's placeholders (``mel_dir``, ``out_dir``, ``num``,
            ``seed``) with their values; in a string value, ``{workdir}`` and ``{name}``
            of an input become where the notebook sees them (:func:`sandbox.locations`).
        inputs: host files or folders mounted read-only for the run, as in :func:`sandbox.run`.
        limits: the run's limits; ``cell_seconds`` bounds each cell, ``wall_seconds`` the whole.
        allow_unsandboxed: as in :func:`sandbox.run`.

    Raises:
        NotebookError: the notebook is missing or malformed (nothing was run).
    """
    limits = limits or RunLimits()
    workdir = Path(workdir)
    relative = PurePosixPath(notebook)
    try:
        source_path = sandbox.output_file(workdir, relative)
    except FileNotFoundError as error:
        raise NotebookError(f"{notebook}: {error}") from error
    prepared = load_notebook(source_path)
    where = sandbox.locations(workdir, inputs)
    filled = {name: sandbox.fill_placeholders(value, where) if isinstance(value, str) else value
              for name, value in parameters.items()}
    injected = inject_parameters(prepared, filled)

    stem = relative.stem
    prepared_name, executed_name = f"{stem}.prepared.ipynb", f"{stem}.executed.ipynb"
    _write_new(_fresh_folder(workdir / RUN_FOLDER) / prepared_name, nbformat.writes(prepared))

    inside = where["workdir"]
    command = ["python", "-c", _RUNNER, f"{inside}/{RUN_FOLDER}/{prepared_name}",
               f"{inside}/{RUN_FOLDER}/{executed_name}", f"{inside}/{relative.parent}",
               str(math.ceil(limits.cell_seconds)), str(limits.output_bytes)]
    result = _output_limit(sandbox.run(command, workdir, inputs, limits, allow_unsandboxed=allow_unsandboxed), limits)

    executed_relative = f"{RUN_FOLDER}/{executed_name}"
    try:  # written by student code: bounded JSON, whatever it holds
        executed = read_notebook(sandbox.output_file(workdir, executed_relative), outputs=True)
    except (OSError, StudentFileError):  # missing, or whatever student code left there: no outputs to show
        executed = None
    error = _first_failure(executed, injected, result, limits) if executed is not None else _runner_failure(result)
    outputs = _cell_outputs(executed, injected) if executed is not None else {}
    return NotebookRun(run=result, executed=executed_relative if executed is not None else None,
                       error=error, outputs=outputs)


def _fresh_folder(folder: Path) -> Path:
    """An empty real folder at ``folder``: whatever an earlier run left there (a link?) goes."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir()
    return folder


def _write_new(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def _student_numbers(executed: list[NotebookCell], injected: int) -> list[tuple[int, NotebookCell]]:
    """(number, cell) of the executed notebook's code cells, numbered as in the student's notebook."""
    return [(index + (index < injected), cell) for index, cell in enumerate(executed)
            if index != injected and cell.kind == "code"]


def _first_failure(executed: list[NotebookCell], injected: int, result: sandbox.RunResult,
                   limits: RunLimits) -> str | None:
    """The cell that timed out, or else the first that raised, in words; else the run's own message."""
    cells = _student_numbers(executed, injected)
    if "CellTimeoutError" in result.stderr:  # nbclient stopped: the last cell that started is the one
        started = [number for number, cell in cells
                   if isinstance(execution := cell.metadata.get("execution"), dict)
                   and "iopub.execute_input" in execution]
        if started:
            return (f"cell {started[-1]} timed out after {limits.cell_seconds:g} s "
                    f"(limit cell_seconds = {limits.cell_seconds:g})")
    for number, cell in cells:
        for output in cell.outputs:
            if output.get("output_type") == "error":
                error = f"cell {number} raised {output.get('ename', 'an error')}: {output.get('evalue', '')}".strip()
                return error[:_OUTPUT_CHARS_PER_CELL]
    return None if result.ok else _runner_failure(result)


def _runner_failure(result: sandbox.RunResult) -> str:
    """Why the notebook did not run to the end when no executed notebook says so."""
    if result.ok:
        return "the executed notebook was not written back (deleted or replaced by the notebook's code?)"
    last = result.stderr.strip().splitlines()[-1:] if result.stderr.strip() else []
    detail = f": {last[0]}" if last and result.verdict is sandbox.Verdict.EXIT_CODE else ""
    return f"the notebook run {result.message}{detail}"


def _cell_outputs(executed: list[NotebookCell], injected: int) -> dict[int, str]:
    """Text each code cell printed (streams, plain-text results, tracebacks), its first characters only."""
    outputs = {}
    for number, cell in _student_numbers(executed, injected):
        text = ""
        for output in cell.outputs:
            kind, data, traceback = output.get("output_type"), output.get("data"), output.get("traceback")
            if kind == "stream":
                text += joined_text(output.get("text"))
            elif kind in ("execute_result", "display_data") and isinstance(data, dict):
                text += joined_text(data.get("text/plain"))
            elif kind == "error" and isinstance(traceback, list):
                text += "\n".join(line for line in traceback if isinstance(line, str))
            if len(text) >= _OUTPUT_CHARS_PER_CELL:
                break
        if text:
            outputs[number] = text[:_OUTPUT_CHARS_PER_CELL]
    return outputs

