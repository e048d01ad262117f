"""Grading one submission, from its zip to its result JSON, as a declared list of steps.

intake -> discovery -> every rubric item's check -> quiz -> result, and what the grading made kept.

The checks run in the order their declarations make (:func:`grading_order`: an item after
the first item of every check kind whose module makes an artefact it needs, otherwise in rubric
order), each granted the artefacts it declares (:mod:`grader.context`);
the result lists the items in rubric order. A check that raises becomes an item with status
``error`` and the next item runs; a refused archive and a failure of the grader itself still
give a result.

When the submission's evidence was kept by an earlier grading under the same key
(:mod:`grader.evidence`: only the scoring changed since), it is restored instead: nothing is
unpacked, run or measured, and only the checks' judging runs again.
"""
from __future__ import annotations

import functools
import importlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grader import evidence
from grader.artefacts import CHECKS_PACKAGE, closure, needs_of, provider
from grader.cache import cache_key, content_digest, evidence_key, key as parts_digest, mounts_digest
from grader.checks import quiz as quiz_check
from grader.context import CheckContext, Outcome
from grader.code import read_code
from grader.discovery import discover
from grader.similarity.prints import keep_prints
from grader.environment import StudentEnvironment, for_rubric
from grader.heldout import HeldoutSet
from grader.intake import IntakeRefused, Submission, submission_id, unpack
from grader.listening.results import RATINGS_CHECKS, scores_path
from grader.results import ItemResult, QuestionOutcome, SubmissionResult, Versions, utc_now
from grader.rubric import CLASS_SECTIONS, Item, Rubric
from grader.run_cache import RUNS_FOLDER, RunCache
from grader.scoring import Baseline
from grader.scratch import Scratch
from grader.time_budget import TimeBudget
from reference.files import file_digest
from reference.parallel import one_blas_thread

RESULTS_FOLDER = "results"
MEDIA_FOLDER = "media"


@dataclass(frozen=True)
class GradingSetup:
    """What every submission of a batch is graded with."""

    rubric: Rubric
    heldout: HeldoutSet
    load_baseline: Callable[[], Baseline]
    out_dir: Path
    student_mode: bool = False
    """``grade check``: visible items only, and no answer key in the result."""
    allow_unsandboxed: bool = False
    cores: int | None = None
    """Processes the grader's own checks may use per submission (scoring); a batch of N jobs gives each
    its share of the machine. None: as each check asks. Never changes a result, only its speed."""
    environment: StudentEnvironment | None = None
    """The environment student code runs with; None: the rubric's (:func:`grader.environment.for_rubric`)."""
    reuse_runs: bool = True
    """Let a submission's kept evidence stand for grading it again (:mod:`grader.evidence`) and identical earlier
    runs in ``OUT/runs`` for running student code (:mod:`grader.run_cache`); False (``grade --force``): grade and
    run everything again (what it makes is still kept)."""
    time_budget: TimeBudget = TimeBudget()
    """A cap on each run and a deadline for each submission's grading beyond the rubric's limits
    (:mod:`grader.time_budget`); none by default. A cap is part of the result's and the evidence's keys."""

    def __post_init__(self) -> None:
        if self.environment is None:
            object.__setattr__(self, "environment", for_rubric(self.rubric))

    def cache_key(self, source: str | Path) -> str:
        """The key a result of ``source`` graded with this setup carries (:mod:`grader.cache`); "" (never
        reused) where ``source`` cannot be read: intake then says what is wrong with it. Where an item grades
        with the listening test's ratings, the key holds :meth:`ratings_digest` too, so that new ratings re-score."""
        try:
            content = content_digest(source)
        except OSError:
            return ""
        graded = cache_key(content, self.rubric.model_dump_json(exclude=set(CLASS_SECTIONS)), self.heldout.digest,
                           environment_digest=self.environment.digest, student_mode=self.student_mode,
                           allow_unsandboxed=self.allow_unsandboxed, max_run_seconds=self.time_budget.max_run_seconds)
        ratings = self.ratings_digest()
        return graded if ratings is None else parts_digest(graded, "listening", ratings)

    def ratings_digest(self) -> str | None:
        """sha256 of ``OUT/listening.csv`` ("absent" when there is none) where an item grades with it (check
        ``listening``, :data:`grader.listening.results.RATINGS_CHECKS`); None where none does."""
        if not any(item.check in RATINGS_CHECKS for item in self.items()):
            return None
        path = scores_path(self.out_dir)
        return file_digest(path) if path.is_file() else "absent"

    def evidence_key(self, source: str | Path) -> str:
        """The key of ``source``'s kept evidence graded with this setup (:mod:`grader.evidence`); "" (never kept)
        where ``source`` cannot be read."""
        try:
            content = content_digest(source)
        except OSError:
            return ""
        return evidence_key(content, evidence.making_rubric(self.rubric, self.items()), self.heldout.digest,
                            environment_digest=self.environment.digest, mounts_digest=self.mounts_digest,
                            student_mode=self.student_mode, allow_unsandboxed=self.allow_unsandboxed,
                            max_run_seconds=self.time_budget.max_run_seconds)

    @functools.cached_property
    def mounts_digest(self) -> str:
        """The rubric's course data mounts, by their files' names, sizes and times (read once per setup)."""
        return mounts_digest(self.rubric.mount_paths())

    @property
    def run_cache(self) -> RunCache:
        """The runs of student code kept in the output folder (:mod:`grader.run_cache`)."""
        return RunCache(self.out_dir / RUNS_FOLDER, reuse=self.reuse_runs)

    def result_path(self, submission_id: str) -> Path:
        """Where the result of ``submission_id`` is written."""
        return self.out_dir / RESULTS_FOLDER / f"{submission_id}.json"

    def check_bars(self) -> None:
        """Resolve every quality item's bars against the baseline (computing it if it is not cached), so that
        bars that leave no room stop grading before any student is graded.

        Raises:
            grader.bars.BarsError: naming each such item and what to change.
        """
        from grader.bars import QUALITY_CHECKS, check_bars

        items = [item for item in self.items() if item.check in QUALITY_CHECKS]
        if items:
            check_bars(items, self.load_baseline().means)

    @property
    def versions(self) -> Versions:
        return Versions(rubric=f"{self.rubric.rubric.id}@{self.rubric.rubric.version}", heldout=self.heldout.digest[:16])

    def items(self) -> list[Item]:
        return [i for i in self.rubric.items if not self.student_mode or i.visibility == "visible"]

    @property
    def reveals_quiz(self) -> bool:
        """Whether quiz answers are marked right or wrong (never in a student's self-check)."""
        return not self.student_mode

    @property
    def max_total(self) -> float:
        quiz = self.rubric.quiz.points if self.rubric.quiz and self.reveals_quiz else 0.0
        return sum(i.points for i in self.items()) + quiz


def grading_order(items: list[Item]) -> list[Item]:
    """``items`` in the order their checks run: after the first item of every check kind whose module makes an
    artefact they need, directly or through providers (:mod:`grader.artefacts`: ``claims`` after ``reconstruct``),
    otherwise in the order given. Values never depend on that order (every artefact is made on first need, by
    its provider); the order says when, and under which item, the work happens.

    Raises:
        ValueError: check kinds that need each other's artefacts (no order serves them).
    """
    first_of: dict[str, Item] = {}
    for item in items:
        first_of.setdefault(f"{CHECKS_PACKAGE}.{item.check}", item)
    after: dict[str, set[str]] = {}
    for item in items:
        made_in = {provider(name).module for name in closure(needs_of(item.check))}
        after[item.id] = {first_of[module].id for module in made_in
                          if module in first_of and first_of[module].check != item.check}
    ordered: list[Item] = []
    done: set[str] = set()
    while len(ordered) < len(items):
        ready = next((item for item in items if item.id not in done and after[item.id] <= done), None)
        if ready is None:
            waiting = {item.id: sorted(after[item.id] - done) for item in items if item.id not in done}
            raise ValueError(f"rubric items whose checks need each other's artefacts: {waiting}")
        ordered.append(ready)
        done.add(ready.id)
    return ordered


def warm_up(setup: GradingSetup) -> None:
    """Load what grading any submission needs once (the checks' modules and libraries, numba's compiled
    code, the baseline), so that processes forked afterwards start with it instead of loading it each.

    What is loaded then lives as long as the process, so it is moved out of the garbage collector's
    sight (:func:`gc.freeze`): a full collection walks only what grading makes (about 0.1 s less each),
    and forked processes do not copy the pages the collector would otherwise touch.
    """
    import gc

    import numpy as np

    from reference.preprocess import logmel, mfcc

    grading_order(setup.items())  # imports every check module (and so every provider)
    second = np.zeros(16000, dtype=np.float32)
    mfcc(second), logmel(second)
    setup.load_baseline()
    gc.freeze()


def grade_submission(source: str | Path, setup: GradingSetup, key: str | None = None,
                     sid: str | None = None) -> SubmissionResult:
    """Grade ``source`` (a zip or a folder) and write ``OUT/results/<id>.json``; never raises for the submission.

    ``key``: the result's cache key, when the caller has computed it already (else computed here).
    ``sid``: the submission id a batch gave it (a student's later attempt, :func:`grader.batch.plan`); else
    :func:`grader.intake.submission_id` of its file name.
    """
    source = Path(source)
    sid = submission_id(source) if sid is None else sid
    key = setup.cache_key(source) if key is None else key
    started, started_at = time.perf_counter(), utc_now()
    try:  # everything a submission can reach, its scratch space's making and removal included, is inside
        scratch = Scratch(sid)
        try:
            with one_blas_thread():  # the same sums in any process, however its BLAS was set up (a dask worker's is 1)
                result = _grade(source, sid, setup, scratch, setup.evidence_key(source))
        finally:
            leftover = scratch.close()
        if leftover:
            result.message = "; ".join(filter(None, [result.message, leftover]))
    except IntakeRefused as refusal:
        result = SubmissionResult.refused(sid, str(source), refusal.reason, setup.max_total, setup.versions)
    except (Exception, SystemExit) as error:  # the grader's own failure (a library's sys.exit too): recorded, never
        # fatal to a batch
        result = SubmissionResult.from_exception(sid, str(source), error, setup.max_total, setup.versions)
    result.started_at, result.finished_at = started_at, utc_now()
    result.seconds = round(time.perf_counter() - started, 3)
    result.cache_key = key
    try:
        result.content_digest = content_digest(source)
    except OSError:  # a source that cannot be read: intake said so
        pass
    result.write(setup.out_dir / RESULTS_FOLDER)
    return result


def _grade(source: Path, sid: str, setup: GradingSetup, scratch: Scratch, kept_as: str) -> SubmissionResult:
    """Grade ``source`` (from its evidence kept under ``kept_as``, where there is some); keep what the grading made
    under ``kept_as`` (not when a provider failed, nor when it is "")."""
    started = time.perf_counter()
    ctx, notes, fresh = _context(source, sid, setup, scratch, kept_as)
    intake_seconds = time.perf_counter() - started
    checks_started = time.perf_counter()
    graded = {item.id: _run_item(ctx, item) for item in grading_order(setup.items())}
    items = [graded[item.id] for item in setup.items()]
    left_out = sum(item.points for item in setup.items() if graded[item.id].status == "skipped")
    quiz, problem = _quiz(ctx, setup)
    student_code = sum(run.result.wall_seconds for run in ctx.runs if not run.reused)
    timings = {"intake": round(intake_seconds, 4), "student_code": round(student_code, 4),
               "grader": round(time.perf_counter() - checks_started - student_code, 4)}
    discovery = ctx.discovery
    student = {k: v for k, v in {"name": discovery.student_name, "id": discovery.student_id}.items() if v}
    total = sum(i.points for i in items) + sum(q.points for q in quiz)
    made = {name: ctx.artefacts[name] for name in ctx.needed if name in ctx.artefacts}
    measured = made.get("reconstruct.metrics")
    result = SubmissionResult(
        submission_id=sid, source=str(source), status="graded", student=student, total=round(total, 4),
        max_total=setup.max_total - left_out, items=items, quiz=quiz, runs=ctx.runs,
        clip_metrics=measured.clip_metrics if measured else [], comparison=measured.comparison if measured else {},
        listen=made["reconstruct.listen"].clips if "reconstruct.listen" in made else [],
        samples=made.get("samples.handed_in", []),
        discovery=discovery.model_dump(mode="json"), versions=setup.versions, timings=timings,
        message="; ".join(notes + ([problem] if problem else [])))
    if fresh and not setup.student_mode:  # re-scored from kept evidence: the fingerprints of the grading that
        keep_prints(ctx, sid)                # kept it stand; a student's self-check has no class to compare with
    if kept_as and not ctx.provider_failed:
        evidence.keep(setup.out_dir, sid, kept_as, evidence.KeptGrading(discovery, notes, ctx.runs,
                                                                         ctx.kept_artefacts()), result.media_files())
    return result


def _context(source: Path, sid: str, setup: GradingSetup, scratch: Scratch,
             kept_as: str) -> tuple[CheckContext, list[str], bool]:
    """The context the checks grade ``source`` in, intake's notes on it, and whether it was unpacked now: restored
    from the evidence kept under ``kept_as`` where there is some (and ``setup.reuse_runs``), else from the
    submission, unpacked and discovered now (so that a refused archive is refused before anything else) with its
    old media removed."""
    unpacking = functools.partial(unpack, source, scratch.submission, setup.rubric.limits.intake)
    kept = evidence.restore(setup.out_dir, sid, kept_as) if kept_as and setup.reuse_runs else None
    media = setup.out_dir / MEDIA_FOLDER / sid
    code = None
    if kept is None:
        submission = unpacking()
        code = read_code(submission.work_dir, submission.files)  # read once: discovery's, then the checks'
        kept = evidence.KeptGrading(discover(submission.work_dir, code), submission.notes, [], {})
        shutil.rmtree(media, ignore_errors=True)
        unpacking = functools.partial(_unpacked, submission)
    ctx = CheckContext(unpack=unpacking, discovery=kept.discovery, rubric=setup.rubric, heldout=setup.heldout,
                       load_baseline=setup.load_baseline, scratch=scratch, media_dir=media,
                       out_root=setup.out_dir, allow_unsandboxed=setup.allow_unsandboxed, cores=setup.cores,
                       environment=setup.environment, mounts=setup.rubric.mount_paths(), run_cache=setup.run_cache,
                       time_budget=setup.time_budget, runs=kept.runs, artefacts=kept.artefacts)
    if code is not None:
        ctx.artefacts["code.units"] = code
    return ctx, kept.notes, code is not None


def _unpacked(submission: Submission) -> Submission:
    """``submission``, unpacked already (what :class:`CheckContext` unpacks with when grading afresh)."""
    return submission


def _run_item(ctx: CheckContext, item: Item) -> ItemResult:
    """Grade ``item`` with its check, granted the artefacts the check declares it needs."""
    started = time.perf_counter()
    try:
        with ctx.granted(f"check {item.check!r}", needs_of(item.check)):
            outcome = importlib.import_module(f"grader.checks.{item.check}").check(ctx, item)
    except (Exception, SystemExit) as error:  # SystemExit: a library the check calls may call sys.exit
        outcome = Outcome(0.0, f"The check failed inside the grader ({type(error).__name__}: {error}); "
                               f"this is not your fault, tell the instructor.", error=True)
    return item_result(item, outcome, time.perf_counter() - started)


def item_result(item: Item, outcome: Outcome, seconds: float) -> ItemResult:
    """``item``'s result from its check's ``outcome`` (judged in ``seconds``): the share of its points, clipped to
    0..1, and the status it earns; a skipped item has no points out of none (the result's maximum leaves its points
    out)."""
    fraction = min(1.0, max(0.0, outcome.fraction))
    status = ("skipped" if outcome.skipped else "error" if outcome.error else "passed" if fraction >= 1
              else "partial" if fraction > 0 else "failed")
    points, max_points = (0.0, 0.0) if outcome.skipped else (round(item.points * fraction, 4), item.points)
    return ItemResult(id=item.id, title=item.title, checklist=item.checklist, points=points, max_points=max_points,
                      status=status, visibility=item.visibility, explanation=outcome.explanation,
                      evidence=outcome.evidence, metrics=outcome.metrics, seconds=round(seconds, 3))


def _quiz(ctx: CheckContext, setup: GradingSetup) -> tuple[list[QuestionOutcome], str]:
    """The quiz's outcomes, and why the answers file could not be read ('' when it could, or there is none)."""
    quiz = setup.rubric.quiz
    if quiz is None:
        return [], ""
    with ctx.granted("the quiz", quiz_check.NEEDS):
        handed = ctx.need("student.answers")
    return [QuestionOutcome(id=r.id, answered=r.answered, correct=r.correct, points=r.points, max_points=r.max_points)
            for r in quiz_check.grade_quiz(quiz, handed.answers, reveal=setup.reveals_quiz)], handed.problem
