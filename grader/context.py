"""What a check gets (:class:`CheckContext`) and what it gives back (:class:`Outcome`).

Adding a check kind is adding one module ``grader/checks/<kind>.py`` with:

- ``check(ctx: CheckContext, item: Item) -> Outcome``: the share of the item's points and why;
- ``NEEDS``: the artefacts the check reads, by name, each got with ``ctx.need(name)`` (asking for
  one it does not declare is an error, so the declaration stays true);
- ``SCORING``: the item parameters that only turn those artefacts into points (a tolerance, a
  bar). A change to one of them re-scores the class from what was kept (:mod:`grader.evidence`);
  a change to any other parameter makes the artefacts again. So what a check asks for must never
  depend on a ``SCORING`` parameter: ask for the artefacts first, then judge them.

An artefact the check needs and nothing makes yet gets a provider, declared where it is made
(:func:`grader.artefacts.provides`, which says how providers are registered)::

    @provides("reconstruct.metrics", needs=("reconstruct.run",), kept=Measured)
    def scored_clips(ctx: CheckContext) -> Measured: ...

:meth:`CheckContext.need` makes an artefact on its first need, after what its provider needs, and
returns the same value afterwards: every artefact is made once per submission, whichever item asks
first, so the rubric's order of items never changes a score. The pipeline grades the items in an
order made from these declarations (:func:`grader.pipeline.grading_order`) and lists the results
in rubric order; the quiz, graded after them, declares its ``NEEDS`` in checks/quiz.py. A check
reads kept artefacts only (``kept`` set): those are what a re-scoring restores, so that it makes
nothing again.

=======================  =======================================================  ====  =========================
artefact                 what                                                     kept  made in
=======================  =======================================================  ====  =========================
``student.file_sizes``   bytes of each file discovery gave a file role            yes   checks/files.py
``code.units``           the .py files and notebook cells, read and parsed once   no    code.py (for discovery)
``code.evidence``        static evidence that counts, and what was seen besides   yes   checks/static.py
``mfcc.outputs``         the ``mfcc`` entry's run and its MFCCs, measured         yes   checks/mfcc.py
``student.weights``      what each checkpoint file holds (never unpickled)        yes   checks/checkpoint.py
``reconstruct.run``      the ``reconstruct`` entry's run; its clips, each         no    context.py
                         decoded and validated once
``reconstruct.outputs``  the clips asked of it, as validated                      yes   context.py
``sample.run``           the ``sample`` entry's run; its clips, validated once    no    context.py
``sample.outputs``       the clips asked of it, as validated                      yes   context.py
``model.use``            whether the model made the audio                         yes   model_use.py
``reconstruct.metrics``  each clip's scores against the truth, and their means    yes   checks/reconstruct.py
``reconstruct.listen``   clips to listen to, re-encoded into the report's media   yes   checks/reconstruct.py
``sample.measures``      samples' novelty, diversity and Frechet MFCC distance    yes   checks/sample.py
``sample.dnsmos``        samples' mean DNSMOS overall quality                     yes   checks/sample.py
``samples.handed_in``    the samples handed in, judged and re-encoded             yes   checks/samples.py
``student.claims``       the PESQ and SNR figures the student reports             yes   checks/claims.py
``student.answers``      the quiz's answers as handed in                          yes   checks/quiz.py
=======================  =======================================================  ====  =========================

Student code runs only through :meth:`CheckContext.run_command` and :meth:`CheckContext.entry`,
on a fresh copy of the submission (so one run cannot leave anything for the next), with only the
inputs asked for mounted; each records the verdict for the report. An entry's runs take the
limits of the item :meth:`CheckContext.runner` names, whatever order the rubric lists its items
in. Both look in the run cache first (:mod:`grader.run_cache`): an identical earlier run stands
for the run, its output files put where the run would have written them, and student code does
not run again.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from grader import sandbox
from grader.artefacts import provider, provides
from grader.contract import OUTPUT_FOLDER
from grader.discovery import Discovery
from grader.environment import StudentEnvironment
from grader.heldout import HeldoutSet
from grader.imports import install_finding, missing_module, missing_package_finding
from grader.intake import Submission
from grader.limits import RunLimits
from grader.notebook import NotebookError, NotebookRun, merged_parameters, run_notebook
from grader.outputs import OutputClip, read_clips
from grader.results import RunEntry
from grader.rubric import Item, Rubric
from grader.run_cache import CachedRun, RunCache, restore, run_key
from grader.scratch import Scratch
from grader.scoring import Baseline
from grader.time_budget import TimeBudget

RUNNERS = {"reconstruct": ("reconstruct", "generation", "checkpoint"), "sample": ("sample", "generation", "checkpoint"),
           "mfcc": ("mfcc",)}
"""Per entry, the check kinds whose item its runs belong to, the first the rubric has (:meth:`CheckContext.runner`)."""


@dataclass
class Outcome:
    """A check's verdict: the share of the item's points (0..1), why, and what it saw; ``skipped``: the item could
    not be judged for a reason that is no one's fault yet (too few listening ratings): it counts neither way, its
    points left out of the result's maximum."""

    fraction: float
    explanation: str
    evidence: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: bool = False
    skipped: bool = False


@dataclass
class EntryRun:
    """One run of a ``reconstruct`` or ``sample`` entry: its verdict, where its outputs are (host side), and a
    notebook entry's record of its cells."""

    ok: bool
    message: str
    out_dir: Path | None
    notebook: NotebookRun | None = None


class EntryOutputs:
    """An entry's run and the audio it wrote, each file validated once, on first need
    (:func:`grader.outputs.read_clips`). It names host paths: it lives while one submission is graded."""

    def __init__(self, run: EntryRun):
        self.run = run
        self._clips: dict[str, OutputClip] = {}
        self._written: list[str] | None = None

    def clips(self, names: list[str] | None = None) -> list[OutputClip]:
        """The clips ``names`` (a name not written is there, with the problem "not written"); None: every audio
        file the run wrote, by name. Empty when the entry did not run."""
        if self.run.out_dir is None:
            return []
        if names is None:
            if self._written is None:
                found = read_clips(self.run.out_dir.parent, OUTPUT_FOLDER)
                self._clips.update((clip.name, clip) for clip in found)
                self._written = [clip.name for clip in found]
            names = self._written
        unread = [name for name in names if name not in self._clips]
        if unread:
            self._clips.update((clip.name, clip) for clip in read_clips(self.run.out_dir.parent, OUTPUT_FOLDER, unread))
        return [self._clips[name] for name in names]


@dataclass(frozen=True)
class WrittenClip:
    """One clip an entry was asked for, as validated: ``usable`` (scored), ``valid`` (usable, without any finding)
    and ``finding`` (why it is not usable, else its validity findings, in words; '' when valid)."""

    name: str
    usable: bool
    valid: bool
    finding: str

    @classmethod
    def of(cls, clip: OutputClip) -> WrittenClip:
        problems = "; ".join(clip.validity.problems) if clip.validity is not None else ""
        return cls(clip.name, clip.usable, clip.usable and clip.validity.ok, clip.problem or problems)


@dataclass(frozen=True)
class EntryAudio:
    """What an entry wrote, kept: whether it ran (``ran``: a run folder to read), how it ended, and the clips
    asked of it (:meth:`CheckContext.entry_names`), validated."""

    ran: bool
    ok: bool
    message: str
    clips: tuple[WrittenClip, ...] = ()

    def of(self, names: list[str]) -> list[WrittenClip]:
        """The clips ``names``, in that order; one not asked of the entry counts as not written."""
        by_name = {clip.name: clip for clip in self.clips}
        return [by_name.get(name, WrittenClip(name, False, False, "not written")) for name in names]


@dataclass
class CheckContext:
    """Everything a check may use: the submission's artefacts through :meth:`need` (see the module's notes)."""

    unpack: Callable[[], Submission]
    """Unpacks the submission (called once, on first use of :attr:`submission`)."""
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
    time_budget: TimeBudget = TimeBudget()
    """Caps on the runs' times beyond the rubric's (:mod:`grader.time_budget`)."""
    runs: list[RunEntry] = field(default_factory=list)
    artefacts: dict[str, Any] = field(default_factory=dict)
    """Artefacts made (or restored from a kept grading), by name."""
    needed: set[str] = field(default_factory=set)
    """The artefacts asked for while grading this submission."""
    provider_failed: bool = False
    """A provider raised: what this grading made is not kept for re-scoring."""
    _entries: dict[str, EntryRun] = field(default_factory=dict)
    _withheld: tuple[str, ...] = ()
    """Files left out of every fresh work folder while :meth:`entry_without_checkpoints` runs."""
    _granted: tuple[str, tuple[str, ...]] | None = None
    """Who is asking (a check kind or an artefact) and what it declares it needs; None: anything may be asked."""

    @functools.cached_property
    def submission(self) -> Submission:
        return self.unpack()

    @functools.cached_property
    def baseline(self) -> Baseline:
        return self.load_baseline()

    def need(self, name: str) -> Any:
        """The artefact ``name``, made by its provider on first need (see the module's notes).

        Raises:
            LookupError: the check or provider asking does not declare ``name``.
            KeyError: no provider makes ``name``.
            Whatever the provider raises: the item asking gets the error, and the next need tries again.
        """
        if self._granted is not None and name not in self._granted[1]:
            raise LookupError(f"{self._granted[0]} needs the artefact {name!r} without declaring it; declared: "
                              f"{', '.join(self._granted[1]) or 'none'}")
        self.needed.add(name)
        if name not in self.artefacts:
            maker = provider(name)
            with self.granted(f"the provider of {name!r}", maker.needs):
                try:
                    self.artefacts[name] = maker.make(self)
                except Exception:
                    self.provider_failed = True
                    raise
        return self.artefacts[name]

    @contextlib.contextmanager
    def granted(self, who: str, names: tuple[str, ...]) -> Iterator[None]:
        """Within the block, :meth:`need` hands out ``names`` only: what ``who`` (in words) declares it reads."""
        outer, self._granted = self._granted, (who, tuple(names))
        try:
            yield
        finally:
            self._granted = outer

    def kept_artefacts(self) -> dict[str, Any]:
        """The artefacts that are kept between gradings (their provider's ``kept`` is set), by name."""
        return {name: value for name, value in self.artefacts.items() if provider(name).kept is not None}

    def runner(self, entry: str) -> Item:
        """The rubric item an entry's runs belong to and take their limits from, whatever order the rubric lists
        its items in: of the check kinds :data:`RUNNERS` lists for ``entry``, the first the rubric has, and of
        its items the first by id; else the rubric's first item by id. A submission without ``reconstruct``
        runs ``sample`` under the ``generation`` item first: that item then judges ``sample``."""
        kinds = RUNNERS[entry]
        if entry == "sample" and self.discovery.findings["reconstruct"].status == "missing":
            kinds = ("generation", "sample", "checkpoint")
        for kind in kinds:
            items = [item for item in self.rubric.items if item.check == kind]
            if items:
                return min(items, key=lambda item: item.id)
        return min(self.rubric.items, key=lambda item: item.id)

    def sample_parameters(self) -> dict[str, int]:
        """``num`` and ``seed`` the ``sample`` entry is run with: its :meth:`runner`'s (4 and 0 where it has none)."""
        params = self.runner("sample").params
        return {"num": int(params.get("num", 4)), "seed": int(params.get("seed", 0))}

    def entry_names(self, role: str) -> list[str]:
        """The clips an entry is asked for: one per held-out log-mel for ``reconstruct``, ``0`` to ``num - 1``
        for ``sample``."""
        if role == "reconstruct":
            return [clip.path.stem for clip in self.heldout.clips]
        return [str(k) for k in range(self.sample_parameters()["num"])]

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
        rubric_limits = self.rubric.run_limits(item)
        limits = self.time_budget.bound(rubric_limits)
        if limits is None:
            self._record(item, purpose, self.time_budget.not_run([command]))
            return self.runs[-1].result
        key, cached = self._cached_run(command, workdir, inputs, limits)
        result = cached.result if cached is not None else self.time_budget.explain(sandbox.run(
            command, workdir, inputs, limits, allow_unsandboxed=self.allow_unsandboxed, environment=self.environment,
            mounts=self.mounts), rubric_limits, limits)
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

    def entry(self, role: str) -> EntryRun:
        """Run the ``reconstruct`` or ``sample`` entry once per submission, under :meth:`runner`'s item; later calls
        reuse the run.

        The contract's placeholders: ``{mel_dir}`` is the held-out log-mels, mounted read-only, when
        reconstructing; ``{num}`` and ``{seed}`` are :meth:`sample_parameters` when sampling; ``{out_dir}`` is
        the run's output folder. Every placeholder a role does not use is None. A notebook that serves both
        roles runs once for both (:func:`grader.notebook.merged_parameters`).
        """
        if role not in self._entries:
            finding = self.discovery.findings[role]
            if finding.status == "missing" or not finding.value:
                self._entries[role] = EntryRun(False, f"no `{role}` entry point found: {finding.how}", None)
            elif finding.value.endswith(".ipynb"):
                self._run_notebook_entry(role, finding.value)
            else:
                item = self.runner(role)
                workdir = self.fresh_workdir(role, item)
                inputs = {"mels": self.heldout.mel_dir} if role == "reconstruct" else {}
                values = {"mel_dir": "{mels}" if role == "reconstruct" else None,
                          **(self.sample_parameters() if role == "sample" else {}),
                          "out_dir": f"{{workdir}}/{OUTPUT_FOLDER}"}
                # The contract's placeholders become the sandbox's own ({mels}, {workdir}), which it fills in.
                text = {name: str(given) for name, given in values.items() if given is not None}
                result = self.run_command(item, role, sandbox.fill_placeholders(finding.value, text), workdir, inputs)
                self._entries[role] = EntryRun(result.ok, result.message, workdir / OUTPUT_FOLDER)
        return self._entries[role]

    def _run_notebook_entry(self, role: str, notebook: str) -> None:
        """Run a notebook entry once for every role it serves, under the first role's :meth:`runner`; each role's
        entry shares the run."""
        roles = [r for r in ("reconstruct", "sample") if r == role or (
            self.discovery.findings[r].status != "missing" and self.discovery.findings[r].value == notebook)]
        out = f"{{workdir}}/{OUTPUT_FOLDER}"
        values = {"reconstruct": {"mel_dir": "{mels}", "out_dir": out},
                  "sample": {**self.sample_parameters(), "out_dir": out}}
        item = self.runner(roles[0])
        workdir = self.fresh_workdir(role, item)
        merged = merged_parameters({r: values[r] for r in roles})
        inputs = {"mels": self.heldout.mel_dir} if "reconstruct" in roles else {}
        rubric_limits = self.rubric.run_limits(item)
        limits = self.time_budget.bound(rubric_limits)
        if limits is None:
            self._record(item, f"{' and '.join(roles)} (notebook {notebook})", self.time_budget.not_run([notebook]))
            for served in roles:
                self._entries[served] = EntryRun(False, self.runs[-1].result.message, None)
            return
        key, cached = self._cached_run({"notebook": notebook, "parameters": merged}, workdir, inputs, limits)
        try:
            run = cached.notebook if cached is not None else run_notebook(
                notebook, workdir, merged, inputs, limits, allow_unsandboxed=self.allow_unsandboxed,
                environment=self.environment, mounts=self.mounts)
        except NotebookError as error:
            entry = EntryRun(False, str(error), None)
        else:
            if cached is None:
                run = run.model_copy(update={"run": self.time_budget.explain(run.run, rubric_limits, limits)})
            self._record(item, f"{' and '.join(roles)} (notebook {notebook})", run.run, run,
                         reused=cached is not None)
            entry = EntryRun(run.ok, run.error or run.run.message, workdir / OUTPUT_FOLDER, run)
            if key is not None and cached is None:
                self.run_cache.store(key, run.run, run, workdir / OUTPUT_FOLDER, limits)
        for served in roles:
            self._entries[served] = entry

    def entry_without_checkpoints(self, role: str, files: list[str]) -> EntryRun:
        """Run the ``reconstruct`` or ``sample`` entry once more, as :meth:`entry` does (the same run paths, the
        run cache included: its key covers the work folder), in a work folder without ``files`` (relative
        paths: the submission's weights). The run is reported with "(checkpoints withheld)" after its purpose.
        :func:`grader.model_use.model_use` compares its outputs with the first run's."""
        saved, runs = self._entries, len(self.runs)
        self._entries, self._withheld = {}, tuple(files)
        try:
            entry = self.entry(role)
        finally:
            self._entries, self._withheld = saved, ()
        for run in self.runs[runs:]:
            run.purpose += " (checkpoints withheld)"
        return entry


def _audio(ctx: CheckContext, role: str) -> EntryAudio:
    outputs = ctx.need(f"{role}.run")
    return EntryAudio(outputs.run.out_dir is not None, outputs.run.ok, outputs.run.message,
                      tuple(map(WrittenClip.of, outputs.clips(ctx.entry_names(role)))))


@provides("reconstruct.run")
def reconstruct_run(ctx: CheckContext) -> EntryOutputs:
    """The ``reconstruct`` entry's run (:meth:`CheckContext.entry`) and its clips."""
    return EntryOutputs(ctx.entry("reconstruct"))


@provides("sample.run")
def sample_run(ctx: CheckContext) -> EntryOutputs:
    """The ``sample`` entry's run (:meth:`CheckContext.entry`) and its clips."""
    return EntryOutputs(ctx.entry("sample"))


@provides("reconstruct.outputs", needs=("reconstruct.run",), kept=EntryAudio)
def reconstruct_outputs(ctx: CheckContext) -> EntryAudio:
    """The ``reconstruct`` entry's clips, one per held-out log-mel, as validated."""
    return _audio(ctx, "reconstruct")


@provides("sample.outputs", needs=("sample.run",), kept=EntryAudio)
def sample_outputs(ctx: CheckContext) -> EntryAudio:
    """The ``sample`` entry's clips ``0`` to ``num - 1``, as validated."""
    return _audio(ctx, "sample")
