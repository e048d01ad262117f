"""Running a notebook entry: nbclient inside the sandbox, with the contract's placeholders.

A submission's ``reconstruct`` or ``sample`` entry may be a ``.ipynb``. The grader
reads it (a malformed notebook is a :class:`NotebookError` saying what to do), sets the
placeholders as Python variables in a new cell right after the cell tagged
``parameters`` (papermill's convention; a new first cell where none is tagged), and
executes the result with nbclient *inside* the sandbox, kernel included. The executed
notebook is written to the work folder; the report's per-cell record (status and
seconds from nbclient's execution timestamps), the first error with its traceback and
each cell's text output are read back from it.

Notebooks as students write them (Jupyter or Colab):

- **Training inside the notebook: one run, its own budget.** A notebook entry runs
  *once* per submission, for every mode it serves (:func:`merged_parameters`): with
  ``mel_dir``, ``num``, ``seed`` and ``out_dir`` all set when it serves both
  ``reconstruct`` and ``sample``, each mode's placeholders only (the others None) when
  it serves one. Both modes write into the one ``out_dir``: reconstructions as
  ``<id>.wav`` (held-out ids are never bare integers) and samples as ``<k>.wav``, so
  each mode's check reads its own names from that folder. Its cells may take
  ``notebook_seconds`` (900 s by default) together instead of the run's
  ``wall_seconds``, training included; ``cell_seconds`` still bounds each cell; the
  sandbox gets :data:`GRACE_SECONDS` more to start and stop the kernel, and CPU time to
  match. A notebook that loads weights handed in with it (``checkpoints/``) uses them.
- **The report says where the time went**: :class:`NotebookRun` lists every code cell
  (numbered as the student's notebook numbers it, markdown included) with its status
  (ok, error, timeout, not run) and seconds, the limit that stopped it, and the first
  error's traceback (plain text, its last :data:`TRACEBACK_CHARS` characters).
- **Colab**: ``google.colab`` is importable (``grader/sandbox_site``: ``drive.mount``
  finds the instructor's folders under ``/content/drive/MyDrive``, ``files.download``
  leaves the file in place); lines that install packages (``!pip``, ``%pip``,
  ``!apt-get``, ``!apt``, ``%conda``..., and those commands in ``%%bash`` cells) do not
  run, since there is no network: each becomes ``pass`` and is listed in
  :attr:`NotebookRun.installs` with the packages it asked for.
- **Any notebook format 4**: whatever kernel the notebook names, it runs with the
  sandbox's ``python3`` kernel; only the cells' type, source and tags are kept (Colab's
  metadata, widget state and saved outputs are dropped). The kernel starts in the
  notebook's folder: the work folder, which Colab's ``/content`` shows too, for a
  notebook at the top of the submission.

What the sandbox writes is the student's to forge: the executed notebook is read as
untrusted data, and only for the report.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import nbformat
from pydantic import BaseModel, ValidationError

from grader import sandbox
from grader.contract import PLACEHOLDERS
from grader.environment import StudentEnvironment
from grader.folders import remove_tree
from grader.limits import MAX_INSTALL_COMMAND_CHARS, MAX_INSTALL_PACKAGES, MAX_NOTEBOOK_BYTES, RunLimits
from grader.student_files import (NotebookCell, OverLimit, StudentFileError, TooLarge,
                                  joined_text, read_notebook)

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
RUN_FOLDER = ".grader-notebooks"
"""Folder of the work folder where the prepared and executed notebooks are written."""
GRACE_SECONDS = 30.0
"""Wall time a notebook run gets beyond ``notebook_seconds``: the runner's and the kernel's start and stop."""
TRACEBACK_CHARS = 3000
"""Characters of the first error's traceback kept for the report (its end: where the error is)."""
_OUTPUT_CHARS_PER_CELL = 2000

_STOPPED_EXIT = 3
"""The runner's exit status when it stopped the notebook (a time limit, output_bytes, a dead kernel)."""
_STOP_MARK = "grader: the notebook was stopped: "
"""Starts the runner's last line on stderr in that case, followed by the :class:`Stop` as JSON."""
_ANSI = re.compile(r"\x1b\[[0-9;?]*+[A-Za-z]")
"""A terminal colour or cursor code, as IPython writes in tracebacks; linear (possessive, then one letter)."""
_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# Runs inside the sandbox with the environment's python: execute, and always save what ran. The
# kernel talks to nbclient over TCP on the loopback of the run's own network namespace.
# Time: each cell may take cell_seconds, and all of them together notebook_seconds (the
# runner's start included); a cell's timeout is whichever ends first, and the limit that
# stopped it is named. What cells print travels to nbclient as messages, not on the run's
# stdout, so the sandbox's own output_bytes count never sees it: the runner counts it
# (every message about a cell but its status and echoed source: streams, displays, errors,
# widget state) and stops the notebook past the limit, that cell's outputs ending with a
# note. The executed notebook holds only this run's outputs (those saved in the student's
# file are cleared first), at most KEEP bytes of each cell's (errors always kept). A stop
# is told on the last line of stderr, as JSON after the mark, with exit status 3.
_RUNNER = """
import json
import sys
import time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
source, executed, cwd, cell_seconds, notebook_seconds, limit = sys.argv[1:7]
cell_seconds, notebook_seconds, limit = float(cell_seconds), float(notebook_seconds), int(limit)
deadline = time.monotonic() + notebook_seconds
KEEP = 100_000


class BoundedClient(NotebookClient):
    sent = 0
    stop = None
    cell = None
    started = 0.0
    timeout_limit = ("cell_seconds", cell_seconds)

    def starting(self, cell, cell_index):
        self.cell, self.started = cell_index, time.monotonic()

    def cell_timeout(self, cell):
        left = deadline - time.monotonic()
        if left < cell_seconds:
            self.timeout_limit = ("notebook_seconds", max(0.0, left))
        else:
            self.timeout_limit = ("cell_seconds", cell_seconds)
        return max(0.001, self.timeout_limit[1])

    def process_message(self, msg, cell, cell_index):
        if self.stop:
            return super().process_message(msg, cell, cell_index) if msg["msg_type"] == "status" else None
        if msg["msg_type"] not in ("status", "execute_input"):
            self.sent += len(json.dumps(msg["content"], default=str).encode())
            self.sent += sum(len(buffer) for buffer in msg.get("buffers") or [])
            if self.sent > limit:
                self.stop = "output_bytes"
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
client = BoundedClient(notebook, kernel_name="python3", shutdown_kernel="immediate",
                       resources={"metadata": {"path": cwd}})
client.timeout_func, client.on_cell_execute = client.cell_timeout, client.starting
failed = False
try:
    client.execute()
except CellTimeoutError:
    client.stop = client.timeout_limit[0]
except DeadKernelError:
    client.stop = client.stop or "kernel_died"
except CellExecutionError:
    failed = True
finally:
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = trimmed(cell.outputs)
    nbformat.write(notebook, executed)
if client.stop:
    timed = client.stop in ("cell_seconds", "notebook_seconds")
    seconds = client.timeout_limit[1] if timed else time.monotonic() - client.started
    stop = {"by": client.stop, "cell": client.cell, "seconds": round(seconds, 3)}
""" + f"""
    print({_STOP_MARK!r} + json.dumps(stop), file=sys.stderr)
    sys.exit({_STOPPED_EXIT})
sys.exit(1 if failed else 0)
"""

CellStatus = Literal["ok", "error", "timeout", "not run"]
StopReason = Literal["cell_seconds", "notebook_seconds", "output_bytes", "kernel_died"]


class CellRecord(BaseModel):
    """One code cell of the run: its number in the student's notebook, what became of it, and its seconds."""

    number: int
    status: CellStatus
    seconds: float | None = None
    """From the kernel's start of the cell to its reply (a stopped cell: until it was stopped); None when unknown."""


class Stop(BaseModel):
    """Why the runner stopped the notebook before its end, and in which cell."""

    by: StopReason
    """The limit that stopped it (``cell_seconds``, ``notebook_seconds``, ``output_bytes``), or ``kernel_died``."""
    cell: int | None
    """The cell that was running, numbered as in the student's notebook (None: outside any student cell)."""
    seconds: float
    """How long that cell had run (a time limit: the time it was given)."""


class InstallLine(BaseModel):
    """A line that would install packages (``!pip install``, ``%conda``, ``!apt-get``...): not run when graded."""

    cell: int
    """Numbered as in the student's notebook."""
    line: str
    """The command as written (its first 300 characters)."""
    tool: Literal["pip", "conda", "apt"]
    packages: list[str]
    """The packages it asks for, as written (``"a==1"``); empty for a command that installs none
    (``apt-get update``)."""


class NotebookError(ValueError):
    """A notebook that cannot be run as it is; the message names the file and the fix."""


class NotebookRun(BaseModel):
    """One notebook's execution in the sandbox; serialisable as it is (``model_dump_json``).

    Cells are numbered from 1 as the student's own notebook has them (markdown cells
    included); the injected parameter cell is not counted.
    """

    run: sandbox.RunResult
    executed: str | None
    """The executed notebook, relative to the work folder; None when it was not written."""
    parameters: dict[str, str | int | float | None]
    """The variables set in the injected cell, as the notebook saw them (paths inside the sandbox)."""
    error: str | None
    """The first failure in words (``cell 3 raised ValueError: ...``, ``cell 5 timed out ...``); None when all ran."""
    traceback: str | None = None
    """The first error's traceback as plain text, its last :data:`TRACEBACK_CHARS` characters."""
    stop: Stop | None = None
    """Set when a limit (or the kernel's death) stopped the notebook: which cell hit which limit."""
    cells: list[CellRecord] = []
    """Every non-empty code cell, in order (empty when the executed notebook could not be read back)."""
    installs: list[InstallLine] = []
    """Package installs the notebook asked for, which did not run (there is no network)."""
    outputs: dict[int, str] = {}
    """Text output of each code cell that printed something, capped, by cell number."""

    @property
    def ok(self) -> bool:
        return self.run.ok and self.error is None


def load_notebook(path: str | os.PathLike) -> nbformat.NotebookNode:
    """The notebook's cells, in order, as a new nbformat 4 notebook to run with the ``python3`` kernel: each
    cell's type, source and tags as the student wrote them, outputs and everything else left out (the
    kernel it named, Colab's metadata, widget state).

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
    return nbformat.v4.new_notebook(
        cells=[new_cell[cell.kind](cell.source, metadata={"tags": cell.tags} if cell.tags else {}) for cell in cells],
        metadata={"kernelspec": dict(_KERNELSPEC), "language_info": {"name": "python"}})


# --------------------------------------------------------------------------- package installs

_INSTALLERS = {"pip": "pip", "pip3": "pip", "conda": "conda", "mamba": "conda", "micromamba": "conda",
               "apt": "apt", "apt-get": "apt", "aptitude": "apt"}
"""Commands that install packages, by the tool they are reported as."""
_OPTIONS_WITH_VALUES = {
    "pip": {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f",
            "--find-links", "-t", "--target", "--prefix", "--root", "--src", "--upgrade-strategy", "--platform",
            "--python-version", "--implementation", "--abi", "--only-binary", "--no-binary", "--progress-bar",
            "--timeout", "--retries", "--cache-dir", "--log", "--proxy", "--trusted-host", "-C",
            "--config-settings", "--global-option", "--report", "--exists-action", "--cert", "--client-cert"},
    "conda": {"-c", "--channel", "-n", "--name", "-p", "--prefix"},
    "apt": {"-o", "--option", "-t", "--target-release", "-c", "--config-file"},
}
"""Options whose value is the next word (not a package)."""
_SHELL_CELL_MAGICS = ("%%bash", "%%sh", "%%script bash", "%%script sh")
_SHELL_OPERATOR_CHARS = set("();<>|&")
"""What :func:`shlex.shlex` splits off as operators (``punctuation_chars``): a word of only these ends a command."""


def _words(command: str) -> list[str]:
    """``command`` split as a shell would, its operators (``&&``, ``;``, ``>``) as words of their own."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    try:
        return list(lexer)
    except ValueError:  # an unclosed quote: plain words are close enough for a report
        return command.split()


def install_command(command: str) -> tuple[str, list[str]] | None:
    """The tool and packages of a shell command that installs packages; None for any other command.

    ``pip install -q a==1 b`` gives ``("pip", ["a==1", "b"])``; ``python -m pip``, ``sudo``, conda,
    mamba, apt and apt-get are recognised too; a command that installs nothing (``apt-get update``,
    ``pip list``) gives an empty list. Only the first command of a line (up to ``&&``, ``;``, a pipe or a
    redirection) is read for packages.
    """
    words = _words(command)
    while words and words[0] == "sudo":
        words = words[1:]
    if len(words) >= 3 and words[1:3] == ["-m", "pip"]:  # python -m pip, {sys.executable} -m pip
        tool, words = "pip", words[3:]
    elif words and words[0] in _INSTALLERS:
        tool, words = _INSTALLERS[words[0]], words[1:]
    else:
        return None
    arguments = []
    for word in words:
        if word.startswith("#") or (word and set(word) <= _SHELL_OPERATOR_CHARS):
            if word[:1] in "<>" and arguments and arguments[-1].isdigit():  # 2>&1: the 2 was no package
                arguments.pop()
            break
        arguments.append(word)
    if not arguments or arguments[0] not in ("install", "create"):
        return tool, []
    packages, skip = [], False
    for word in arguments[1:]:
        if skip:
            skip = False
        elif word in _OPTIONS_WITH_VALUES[tool]:
            skip = True
        elif not word.startswith("-"):
            packages.append(word[:200])
    return tool, packages[:MAX_INSTALL_PACKAGES]


def blank_installs(notebook: nbformat.NotebookNode) -> list[InstallLine]:
    """Replace each line of ``notebook`` that installs packages by one that does nothing; returns them.

    A shell escape or magic (``!pip install x``, ``%pip``, ``!apt-get``, ``%conda``, with ``\\``
    continuations) becomes ``pass`` at its indentation, so that an ``if`` or ``try`` around it
    still parses; in a ``%%bash`` or ``%%sh`` cell the command becomes a comment. Cells are
    numbered as in the student's notebook: call this before :func:`inject_parameters`.
    """
    found = []
    for number, cell in enumerate(notebook.cells, 1):
        if cell.cell_type != "code":
            continue
        lines = cell.source.split("\n")
        shell = lines[0].strip().startswith(_SHELL_CELL_MAGICS)
        index = 1 if shell else 0
        while index < len(lines):
            line = lines[index]
            indent, text = line[:len(line) - len(line.lstrip())], line.strip()
            end = index
            if shell or text.startswith("!") or text.startswith("%") and not text.startswith("%%"):
                while lines[end].rstrip().endswith("\\") and end + 1 < len(lines):  # continued on the next line
                    end += 1
                command = " ".join(part.strip().removesuffix("\\").strip() for part in lines[index:end + 1])
                install = install_command((command if shell else command.lstrip("!%"))[:MAX_INSTALL_COMMAND_CHARS])
                if install is not None:
                    found.append(InstallLine(cell=number, line=command.lstrip("!%")[:300], tool=install[0],
                                             packages=install[1]))
                    note = f"# not run by the grader (no network): {command.lstrip('!%')[:200]}"
                    blank = f"{indent}{note}" if shell else f"{indent}pass  {note}"
                    lines[index:end + 1] = [blank] + [""] * (end - index)
            index = end + 1
        cell.source = "\n".join(lines)
    return found


# --------------------------------------------------------------------------- parameters

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


# --------------------------------------------------------------------------- running

def merged_parameters(roles: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The one set of placeholders a notebook entry runs with for every mode in ``roles`` (the policy in the
    module's notes): what each mode sets, the rest None.

    Args:
        roles: each mode the notebook serves (``reconstruct``, ``sample``) with its placeholders,
            e.g. ``{"reconstruct": {"mel_dir": "{mels}", "out_dir": "{workdir}/_grader_out"},
            "sample": {"num": 4, "seed": 0, "out_dir": "{workdir}/_grader_out"}}``. Two modes may not
            give one placeholder different values (both write into one ``out_dir``).

    Raises:
        ValueError: no mode, an unknown mode, or two values for one placeholder.
    """
    unknown = sorted(set(roles) - set(PLACEHOLDERS))
    if not roles or unknown:
        raise ValueError(f"roles must be some of {', '.join(PLACEHOLDERS)} (got {', '.join(roles) or 'none'})")
    parameters: dict[str, Any] = {"mel_dir": None, "out_dir": None, "num": None, "seed": None}
    for role, values in roles.items():
        for name, value in values.items():
            if value is None:
                continue
            if parameters.get(name) is not None and parameters[name] != value:
                raise ValueError(f"{name} is {parameters[name]!r} for one mode and {value!r} for {role}: "
                                 f"a notebook runs once, with one value each")
            parameters[name] = value
    return parameters


def run_notebook(
    notebook: str,
    workdir: str | os.PathLike,
    parameters: Mapping[str, str | int | float | None],
    inputs: Mapping[str, str | os.PathLike] | None = None,
    limits: RunLimits | None = None,
    *,
    allow_unsandboxed: bool = False,
    environment: StudentEnvironment | None = None,
    mounts: Mapping[str, str | os.PathLike] | None = None,
) -> NotebookRun:
    """Execute the submission's ``notebook`` in the sandbox with ``parameters`` injected.

    Args:
        notebook: the notebook's path relative to ``workdir`` (as discovery found it).
        workdir: the submission's work folder; the kernel starts in the notebook's folder.
        parameters: the contract's placeholders (``mel_dir``, ``out_dir``, ``num``,
            ``seed``) with their values; in a string value, ``{workdir}`` and ``{name}``
            of an input become where the notebook sees them (:func:`sandbox.locations`).
        inputs: host files or folders mounted read-only for the run, as in :func:`sandbox.run`.
        limits: the run's limits; ``notebook_seconds`` bounds the cells together (it replaces
            ``wall_seconds``), ``cell_seconds`` each cell.
        allow_unsandboxed: as in :func:`sandbox.run`.
        environment, mounts: passed on to :func:`sandbox.run` when given (the course's
            Python environment; the instructor's read-only folders).

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
    installs = blank_installs(prepared)
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
               str(limits.cell_seconds), str(limits.notebook_seconds), str(limits.output_bytes)]
    wall = limits.notebook_seconds + GRACE_SECONDS
    run_limits = limits.with_overrides({"wall_seconds": wall,
                                        "cpu_seconds": max(limits.cpu_seconds, math.ceil(wall * limits.cpu_threads))})
    result = sandbox.run(command, workdir, inputs, run_limits, allow_unsandboxed=allow_unsandboxed,
                         environment=environment, mounts=mounts)

    executed_relative = f"{RUN_FOLDER}/{executed_name}"
    try:  # written by student code: bounded JSON, whatever it holds
        executed = read_notebook(sandbox.output_file(workdir, executed_relative), outputs=True)
    except (OSError, StudentFileError):  # missing, or whatever student code left there: no outputs to show
        executed = None
    stop = _stop(result, injected)
    result = _verdict(result, stop, limits)
    cells = _student_numbers(executed, injected) if executed is not None else []
    return NotebookRun(run=result, executed=executed_relative if executed is not None else None, parameters=filled,
                       error=_first_failure(cells, stop, result, limits, executed is not None),
                       traceback=_first_traceback(cells),
                       stop=stop, cells=_cell_records(cells, stop), installs=installs, outputs=_cell_outputs(cells))


def _fresh_folder(folder: Path) -> Path:
    """An empty real folder at ``folder``: whatever an earlier run left there (a link?) goes."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.is_dir():
        remove_tree(folder)
    folder.mkdir()
    return folder


def _write_new(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


# --------------------------------------------------------------------------- reading the run back

def _student_number(index: int, injected: int) -> int | None:
    """The number the student's notebook gives the prepared notebook's cell ``index`` (None: the injected cell)."""
    return None if index == injected else index + (index < injected)


def _student_numbers(executed: list[NotebookCell], injected: int) -> list[tuple[int, NotebookCell]]:
    """(number, cell) of the executed notebook's code cells, numbered as in the student's notebook."""
    return [(number, cell) for index, cell in enumerate(executed)
            if (number := _student_number(index, injected)) is not None and cell.kind == "code"]


def _stop(result: sandbox.RunResult, injected: int) -> Stop | None:
    """The stop the runner told on its last line of stderr, its cell numbered as the student's; None if none."""
    lines = result.stderr.rstrip().splitlines()
    if result.exit_code != _STOPPED_EXIT or not lines or not lines[-1].startswith(_STOP_MARK):
        return None
    try:
        told = json.loads(lines[-1][len(_STOP_MARK):])
        index = told.get("cell")
        return Stop(by=told["by"], seconds=told["seconds"],
                    cell=_student_number(index, injected) if isinstance(index, int) and index >= 0 else None)
    except (ValueError, TypeError, KeyError, AttributeError, ValidationError):  # student output can end like it
        return None


def _verdict(result: sandbox.RunResult, stop: Stop | None, limits: RunLimits) -> sandbox.RunResult:
    """``result`` with the verdict of the limit that stopped the notebook (``timeout``, ``output_limit``).

    Only a run that ended with the runner's own exit status is changed: what the sandbox saw
    first (out of memory, its own wall time) stands.
    """
    if stop is None or result.verdict is not sandbox.Verdict.EXIT_CODE:
        return result
    where = f"cell {stop.cell}" if stop.cell is not None else "the notebook"
    if stop.by == "output_bytes":
        verdict, message = sandbox.Verdict.OUTPUT_LIMIT, (
            f"stopped: the notebook's cells printed or displayed more than {limits.output_bytes} bytes "
            f"(limit output_bytes = {limits.output_bytes})")
    elif stop.by == "cell_seconds":
        verdict, message = sandbox.Verdict.TIMEOUT, (
            f"stopped: {where} ran past {limits.cell_seconds:g} s (limit cell_seconds = {limits.cell_seconds:g})")
    elif stop.by == "notebook_seconds":
        verdict, message = sandbox.Verdict.TIMEOUT, (
            f"stopped: the notebook's cells ran past {limits.notebook_seconds:g} s in all, in {where} "
            f"(limit notebook_seconds = {limits.notebook_seconds:g})")
    else:
        verdict, message = sandbox.Verdict.EXIT_CODE, f"stopped: the kernel died while {where} ran"
    return result.model_copy(update=dict(verdict=verdict, message=message))


def _first_failure(cells: list[tuple[int, NotebookCell]], stop: Stop | None, result: sandbox.RunResult,
                   limits: RunLimits, read_back: bool = True) -> str | None:
    """The limit that stopped a cell, or else the first cell that raised, in words; else the run's own failure.

    ``read_back``: whether the executed notebook was read (``cells`` are its code cells).
    """
    if stop is not None:
        where = f"cell {stop.cell}" if stop.cell is not None else "the notebook"
        if stop.by == "cell_seconds":
            return f"{where} timed out after {limits.cell_seconds:g} s (limit cell_seconds = {limits.cell_seconds:g})"
        if stop.by == "notebook_seconds":
            return (f"{where} was still running when the notebook's {limits.notebook_seconds:g} s ran out (limit "
                    f"notebook_seconds = {limits.notebook_seconds:g}); hand in trained weights and load them "
                    f"instead of training while the notebook is graded")
        if stop.by == "output_bytes":
            return f"{where} was {result.message}"
        if result.verdict is sandbox.Verdict.OUT_OF_MEMORY:
            return f"{where} {result.message}"
        return f"the kernel died while {where} ran (the process crashed or exited)"
    for number, cell in cells:
        for output in cell.outputs:
            if output.get("output_type") == "error":
                error = f"cell {number} raised {output.get('ename', 'an error')}: {output.get('evalue', '')}".strip()
                return error[:_OUTPUT_CHARS_PER_CELL]
    if result.ok:
        return None if read_back else ("the executed notebook was not written back (deleted or replaced by the "
                                       "notebook's code?)")
    last = result.stderr.strip().splitlines()[-1:] if result.stderr.strip() else []
    detail = f": {last[0]}" if last and result.verdict is sandbox.Verdict.EXIT_CODE else ""
    return f"the notebook run {result.message}{detail}"


def _first_traceback(cells: list[tuple[int, NotebookCell]]) -> str | None:
    """The first error output's traceback, colour codes removed, its last :data:`TRACEBACK_CHARS` characters."""
    for _, cell in cells:
        for output in cell.outputs:
            if output.get("output_type") == "error":
                lines = output.get("traceback")
                text = "\n".join(line for line in lines if isinstance(line, str)) if isinstance(lines, list) else ""
                text = _ANSI.sub("", text[-4 * TRACEBACK_CHARS:]).strip()
                return (text if len(text) <= TRACEBACK_CHARS else "..." + text[-TRACEBACK_CHARS:]) or None
    return None


def _seconds(execution: Any) -> float | None:
    """A cell's seconds from nbclient's timestamps (execute_input to execute_reply); None when not there."""
    if not isinstance(execution, dict):
        return None
    start, end = execution.get("iopub.execute_input"), execution.get("shell.execute_reply")
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):  # missing, or not timestamps (student code can write anything there)
        return None
    return round(seconds, 3) if seconds >= 0 else None


def _cell_records(cells: list[tuple[int, NotebookCell]], stop: Stop | None) -> list[CellRecord]:
    """Status and seconds of each non-empty code cell (nbclient skips empty ones)."""
    records = []
    for number, cell in cells:
        if not cell.source.strip():
            continue
        execution = cell.metadata.get("execution")
        if stop is not None and number == stop.cell:
            timed = stop.by in ("cell_seconds", "notebook_seconds")
            records.append(CellRecord(number=number, status="timeout" if timed else "error", seconds=stop.seconds))
        elif any(output.get("output_type") == "error" for output in cell.outputs):
            records.append(CellRecord(number=number, status="error", seconds=_seconds(execution)))
        elif isinstance(execution, dict) and "shell.execute_reply" in execution:
            records.append(CellRecord(number=number, status="ok", seconds=_seconds(execution)))
        else:
            records.append(CellRecord(number=number, status="not run"))
    return records


def _cell_outputs(cells: list[tuple[int, NotebookCell]]) -> dict[int, str]:
    """Text each code cell printed (streams, plain-text results, tracebacks without colour codes), its first
    characters only."""
    outputs = {}
    for number, cell in cells:
        text = ""
        for output in cell.outputs:
            kind, data, traceback = output.get("output_type"), output.get("data"), output.get("traceback")
            if kind == "stream":
                text += joined_text(output.get("text"))
            elif kind in ("execute_result", "display_data") and isinstance(data, dict):
                text += joined_text(data.get("text/plain"))
            elif kind == "error" and isinstance(traceback, list):
                text += _ANSI.sub("", "\n".join(line for line in traceback if isinstance(line, str)))
            if len(text) >= _OUTPUT_CHARS_PER_CELL:
                break
        if text:
            outputs[number] = text[:_OUTPUT_CHARS_PER_CELL]
    return outputs
