"""What a check gets (:class:`CheckContext`) and what it gives back (:class:`Outcome`).

Every rubric item's check is a module of ``grader/checks/`` with one function,
``check(ctx: CheckContext, item: Item) -> Outcome``. Student code runs only through
:meth:`CheckContext.run_command` and :meth:`CheckContext.entry_once`, on a fresh copy of
the submission (so one run cannot leave anything for the next), with only the inputs asked
for mounted; each records the verdict for the report. Both look in the run cache first
(:mod:`grader.run_cache`): an identical earlier run stands for the run, its output files put
where the run would have written them, and student code does not run again.
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
from grader.environment import StudentEnvironment
from grader.imports import install_finding, missing_module, missing_package_finding
from grader.limits import RunLimits
from grader.notebook import NotebookError, NotebookRun, merged_parameters, run_notebook
from grader.results import HandedInSample, ListenClip, RunEntry
from grader.rubric import Item, Rubric
from grader.run_cache import CachedRun, RunCache, restore, run_key
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
    environment: StudentEnvironment | None = None
    """The environment student code runs with (None: the sandbox's default, the bundled course environment)."""
    mounts: dict[str, Path] = field(default_factory=dict)
    """The rubric's course data: ``{path as students write it: instructor folder}``, read-only in every run."""
    run_cache: RunCache | None = None
    """Where identical earlier runs are looked up and new ones kept; None: every run runs."""
    runs: list[RunEntry] = field(default_factory=list)
    listen: list[ListenClip] = field(default_factory=list)
    samples: list[HandedInSample] = field(default_factory=list)
    clip_metrics: list[dict] = field(default_factory=list)
    comparison: dict[str, dict[str, float | None]] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)
    """What several checks would compute alike from the submission, computed once (keyed by name)."""
    _entries: dict[str, EntryRun] = field(default_factory=dict)
    _withheld: tuple[str, ...] = ()
    """Files left out of every fresh work folder while :meth:`entry_without_checkpoints` runs."""

    @functools.cached_property
    def baseline(self) -> Baseline:
        return self.load_baseline()

    def fresh_workdir(self, name: str, item: Item) -> Path:
        """A new copy of the unpacked submission for one run of ``item``, with an empty output folder, bounded
        by the item's ``disk_bytes`` and ``disk_inodes`` (:meth:`Scratch.run_folder`)."""
        workdir = self.scratch.run_folder(f"run-{len(self.runs) + 1:02d}-{name}", self.submission.work_dir,
                                          self.rubric.run_limits(item))
        for withheld in self._withheld:
            (workdir / withheld).unlink(missing_ok=True)
        (workdir / OUTPUT_FOLDER).mkdir()
        return workdir

    def processes(self, wanted: int) -> int:
        """How many processes a check may use for its own work (scoring) when it would like ``wanted``."""
        return max(1, wanted if self.cores is None else min(wanted, self.cores))

    def run_command(self, item: Item, purpose: str, command: str, workdir: Path,
                    inputs: dict[str, Path]) -> sandbox.RunResult:
        """Run ``command`` in the sandbox under ``item``'s limits, with the course environment and mounts, and
        record it; its outputs are the files of ``workdir/_grader_out``. An identical earlier run stands for it
        (see the module's notes)."""
        limits = self.rubric.run_limits(item)
        key, cached = self._cached_run(command, workdir, inputs, limits)
        result = cached.result if cached is not None else sandbox.run(
            command, workdir, inputs, limits, allow_unsandboxed=self.allow_unsandboxed, environment=self.environment,
            mounts=self.mounts)
        self._record(item, purpose, result, reused=cached is not None)
        if key is not None and cached is None:
            self.run_cache.store(key, result, None, workdir / OUTPUT_FOLDER, limits)
        return result

    def _cached_run(self, what, workdir: Path, inputs: dict[str, Path],
                    limits: RunLimits) -> tuple[str | None, CachedRun | None]:
        """The run cache's key for running ``what`` (a command, or a notebook and its parameters) in ``workdir``,
        and the earlier run under it, whose outputs are then written into ``workdir/_grader_out``; (None, None)
        without a run cache."""
        if self.run_cache is None:
            return None, None
        key = run_key(what, workdir, inputs, limits, environment=self.environment, mounts=self.mounts,
                      allow_unsandboxed=self.allow_unsandboxed)
        cached = self.run_cache.load(key)
        if cached is not None:
            (workdir / OUTPUT_FOLDER).mkdir(exist_ok=True)
            restore(cached, workdir / OUTPUT_FOLDER)
        return key, cached

    def _record(self, item: Item, purpose: str, result: sandbox.RunResult, notebook: NotebookRun | None = None,
                reused: bool = False) -> None:
        """Keep a run for the report, with what its output says of packages the course environment lacks."""
        findings = []
        failed = not result.ok or (notebook is not None and notebook.error is not None)
        said = [result.stderr, result.stdout, *((notebook.traceback or "", notebook.error or "")
                                                if notebook is not None else ())]
        module = next(filter(None, map(missing_module, said)), None) if failed else None
        if module is not None:
            findings.append(missing_package_finding(module, self.environment))
        for install in notebook.installs if notebook is not None else ():
            findings.append(install_finding(install.cell, install.line, install.packages, self.environment))
        self.runs.append(RunEntry(item_id=item.id, purpose=purpose, result=result, notebook=notebook,
                                  findings=findings, reused=reused))

    def entry_once(self, role: str, item: Item, parameters: dict[str, int]) -> EntryRun:
        """Run the ``reconstruct`` or ``sample`` entry once per submission; later calls reuse the run.

        ``parameters`` are the contract's integer placeholders the role uses (``num``, ``seed``);
        ``{mel_dir}`` is the held-out log-mels, mounted read-only, when reconstructing, and
        ``{out_dir}`` the run's output folder. Every placeholder a role does not use is None. A notebook
        that serves both roles runs once for both (:func:`grader.notebook.merged_parameters`).
        """
        if role in self._entries:
            return self._entries[role]
        finding = self.discovery.findings[role]
        if finding.status == "missing" or not finding.value:
            self._entries[role] = EntryRun(False, f"no `{role}` entry point found: {finding.how}", None)
        elif finding.value.endswith(".ipynb"):
            self._run_notebook_entry(role, item, finding.value, parameters)
        else:
            workdir = self.fresh_workdir(role, item)
            inputs = {"mels": self.heldout.mel_dir} if role == "reconstruct" else {}
            values = {"mel_dir": "{mels}" if role == "reconstruct" else None, **parameters,
                      "out_dir": f"{{workdir}}/{OUTPUT_FOLDER}"}
            # The contract's placeholders become the sandbox's own ({mels}, {workdir}), which it fills in.
            text = {name: str(given) for name, given in values.items() if given is not None}
            result = self.run_command(item, role, sandbox.fill_placeholders(finding.value, text), workdir, inputs)
            self._entries[role] = EntryRun(result.ok, result.message, workdir / OUTPUT_FOLDER)
        return self._entries[role]

    def _run_notebook_entry(self, role: str, item: Item, notebook: str, parameters: dict[str, int]) -> None:
        """Run a notebook entry once for every role it serves; each role's entry shares the run."""
        roles = [r for r in ("reconstruct", "sample") if r == role or (
            self.discovery.findings[r].status != "missing" and self.discovery.findings[r].value == notebook)]
        out = f"{{workdir}}/{OUTPUT_FOLDER}"
        values = {"reconstruct": {"mel_dir": "{mels}", "out_dir": out},
                  "sample": {**self._sample_parameters(), **(parameters if role == "sample" else {}), "out_dir": out}}
        workdir = self.fresh_workdir(role, item)
        merged = merged_parameters({r: values[r] for r in roles})
        inputs = {"mels": self.heldout.mel_dir} if "reconstruct" in roles else {}
        limits = self.rubric.run_limits(item)
        key, cached = self._cached_run({"notebook": notebook, "parameters": merged}, workdir, inputs, limits)
        try:
            run = cached.notebook if cached is not None else run_notebook(
                notebook, workdir, merged, inputs, limits, allow_unsandboxed=self.allow_unsandboxed,
                environment=self.environment, mounts=self.mounts)
        except NotebookError as error:
            entry = EntryRun(False, str(error), None)
        else:
            self._record(item, f"{' and '.join(roles)} (notebook {notebook})", run.run, run,
                         reused=cached is not None)
            entry = EntryRun(run.ok, run.error or run.run.message, workdir / OUTPUT_FOLDER)
            if key is not None and cached is None:
                self.run_cache.store(key, run.run, run, workdir / OUTPUT_FOLDER, limits)
        for served in roles:
            self._entries[served] = entry

    def entry_without_checkpoints(self, role: str, item: Item, parameters: dict[str, int],
                                  files: list[str] | None = None) -> EntryRun:
        """Run the ``reconstruct`` or ``sample`` entry once more, as :meth:`entry_once` does (the same run paths,
        the run cache included: its key covers the work folder), in a work folder without the submission's
        checkpoint files (``files``, relative paths; default: discovery's ``checkpoints`` role); once per
        submission and role. The run is reported with "(checkpoints withheld)" after its purpose.
        :func:`grader.model_use.model_use` compares its outputs with the first run's."""
        key = f"{role} without checkpoints"
        if key not in self._entries:
            withheld = self.discovery.findings["checkpoints"].files if files is None else files
            saved, runs = self._entries, len(self.runs)
            self._entries, self._withheld = {}, tuple(withheld)
            try:
                entry = self.entry_once(role, item, parameters)
            finally:
                self._entries, self._withheld = saved, ()
            for run in self.runs[runs:]:
                run.purpose += " (checkpoints withheld)"
            self._entries[key] = entry
        return self._entries[key]

    def _sample_parameters(self) -> dict[str, int]:
        """``num`` and ``seed`` as the rubric's ``sample`` item asks for them (4 and 0 where it has none)."""
        params = next((i.params for i in self.rubric.items if i.check == "sample"), {})
        return {"num": int(params.get("num", 4)), "seed": int(params.get("seed", 0))}
