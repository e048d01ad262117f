"""What a check gets (:class:`CheckContext`) and what it gives back (:class:`Outcome`).

Every rubric item's check is a module of ``grader/checks/`` with one function,
``check(ctx: CheckContext, item: Item) -> Outcome``. Student code runs only through
:meth:`CheckContext.run_entry`, which gives every run a fresh copy of the submission
(so one run cannot leave anything for the next), mounts only the inputs asked for,
and records the verdict for the report.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from grader import sandbox
from grader.discovery import Discovery
from grader.heldout import HeldoutSet
from grader.intake import Submission
from grader.notebook import NotebookError, run_notebook
from grader.results import HandedInSample, ListenClip, RunEntry
from grader.rubric import Item, Rubric
from grader.scratch import Scratch
from grader.scoring import Baseline

OUTPUT_FOLDER = "_grader_out"
"""Folder of a run's work folder where the grader asks student code to write its outputs."""


@dataclass
class Outcome:
    """A check's verdict: the share of the item's points (0..1), why, and what it saw."""

    fraction: float
    explanation: str
    evidence: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: bool = False


@dataclass
class EntryRun:
    """One run of a ``reconstruct`` or ``sample`` entry: its verdict and where its outputs are (host side)."""

    ok: bool
    message: str
    out_dir: Path | None


@dataclass
class CheckContext:
    """Everything a check may use; checks share run outputs through :meth:`entry_once`."""

    submission: Submission
    discovery: Discovery
    rubric: Rubric
    heldout: HeldoutSet
    load_baseline: Callable[[], Baseline]
    scratch: Scratch
    """This submission's private scratch space: each run's work folder is made there (removed after grading)."""
    media_dir: Path
    """``OUT/media/<submission id>``: audio the report plays is written here, re-encoded (``copy_media``)."""
    out_root: Path
    allow_unsandboxed: bool = False
    cores: int | None = None
    """Processes the grader's own work on this submission may use (a batch divides the machine); None: no cap.
    Student code's threads are the rubric's ``cpu_threads`` whatever this is, so results never depend on it."""
    runs: list[RunEntry] = field(default_factory=list)
    listen: list[ListenClip] = field(default_factory=list)
    samples: list[HandedInSample] = field(default_factory=list)
    clip_metrics: list[dict] = field(default_factory=list)
    comparison: dict[str, dict[str, float | None]] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)
    """What several checks would compute alike from the submission, computed once (keyed by name)."""
    _entries: dict[str, EntryRun] = field(default_factory=dict)

    @functools.cached_property
    def baseline(self) -> Baseline:
        return self.load_baseline()

    def fresh_workdir(self, name: str, item: Item) -> Path:
        """A new copy of the unpacked submission for one run of ``item``, with an empty output folder, bounded
        by the item's ``disk_bytes`` and ``disk_inodes`` (:meth:`Scratch.run_folder`)."""
        workdir = self.scratch.run_folder(f"run-{len(self.runs) + 1:02d}-{name}", self.submission.work_dir,
                                          self.rubric.run_limits(item))
        (workdir / OUTPUT_FOLDER).mkdir()
        return workdir

    def processes(self, wanted: int) -> int:
        """How many processes a check may use for its own work (scoring) when it would like ``wanted``."""
        return max(1, wanted if self.cores is None else min(wanted, self.cores))

    def run_command(self, item: Item, purpose: str, command: str, workdir: Path,
                    inputs: dict[str, Path]) -> sandbox.RunResult:
        """Run ``command`` in the sandbox under ``item``'s limits and record it."""
        result = sandbox.run(command, workdir, inputs, self.rubric.run_limits(item),
                             allow_unsandboxed=self.allow_unsandboxed)
        self.runs.append(RunEntry(item_id=item.id, purpose=purpose, result=result))
        return result

    def entry_once(self, role: str, item: Item, parameters: dict[str, int]) -> EntryRun:
        """Run the ``reconstruct`` or ``sample`` entry once per submission; later calls reuse the run.

        ``parameters`` are the contract's integer placeholders the role uses (``num``, ``seed``);
        ``{mel_dir}`` is the held-out log-mels, mounted read-only, when reconstructing, and
        ``{out_dir}`` the run's output folder. Every placeholder a role does not use is None.
        """
        if role in self._entries:
            return self._entries[role]
        finding = self.discovery.findings[role]
        if finding.status == "missing" or not finding.value:
            entry = EntryRun(False, f"no `{role}` entry point found: {finding.how}", None)
        else:
            workdir = self.fresh_workdir(role, item)
            inputs = {"mels": self.heldout.mel_dir} if role == "reconstruct" else {}
            values = {"mel_dir": "{mels}" if role == "reconstruct" else None, "num": None, "seed": None,
                      **parameters, "out_dir": f"{{workdir}}/{OUTPUT_FOLDER}"}
            entry = self._run_entry(role, item, finding.value, workdir, inputs, values)
        self._entries[role] = entry
        return entry

    def _run_entry(self, role: str, item: Item, value: str, workdir: Path, inputs: dict[str, Path],
                   values: dict[str, str | int | None]) -> EntryRun:
        """Run one entry: a notebook gets ``values`` as Python values (None included, the contract's
        typed placeholders); a command line gets them as text in its arguments, and a placeholder
        whose value is None stays as written."""
        out_dir = workdir / OUTPUT_FOLDER
        if value.endswith(".ipynb"):
            try:
                run = run_notebook(value, workdir, values, inputs, self.rubric.run_limits(item),
                                   allow_unsandboxed=self.allow_unsandboxed)
            except NotebookError as error:
                return EntryRun(False, str(error), None)
            self.runs.append(RunEntry(item_id=item.id, purpose=f"{role} (notebook {value})", result=run.run))
            return EntryRun(run.ok, run.error or run.run.message, out_dir)
        # The contract's placeholders become the sandbox's own ({mels}, {workdir}), which it fills in.
        text = {name: str(given) for name, given in values.items() if given is not None}
        result = self.run_command(item, role, sandbox.fill_placeholders(value, text), workdir, inputs)
        return EntryRun(result.ok, result.message, out_dir)
