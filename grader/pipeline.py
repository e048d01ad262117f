"""Grading one submission, from its zip to its result JSON, as a declared list of steps.

intake -> discovery -> every rubric item's check, in order -> quiz -> result.
A check that raises becomes an item with status ``error`` and the next item runs; a
refused archive and a failure of the grader itself still give a result.
"""
from __future__ import annotations

import importlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grader.cache import cache_key, content_digest
from grader.checks.quiz import AnswersError, grade_quiz, read_answers
from grader.context import CheckContext, Outcome
from grader.discovery import discover
from grader.environment import StudentEnvironment, for_rubric
from grader.heldout import HeldoutSet
from grader.intake import IntakeRefused, submission_id, unpack
from grader.results import ItemResult, QuestionOutcome, SubmissionResult, Versions, utc_now
from grader.rubric import Item, Rubric
from grader.run_cache import RUNS_FOLDER, RunCache
from grader.scoring import Baseline
from grader.scratch import Scratch
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
    """Let identical earlier runs in ``OUT/runs`` stand for running student code (:mod:`grader.run_cache`);
    False (``grade --force``): run it again (what it makes is still kept)."""

    def __post_init__(self) -> None:
        if self.environment is None:
            object.__setattr__(self, "environment", for_rubric(self.rubric))

    def cache_key(self, source: str | Path) -> str:
        """The key a result of ``source`` graded with this setup carries (:mod:`grader.cache`); "" (never
        reused) where ``source`` cannot be read: intake then says what is wrong with it."""
        try:
            content = content_digest(source)
        except OSError:
            return ""
        return cache_key(content, self.rubric.model_dump_json(), self.heldout.digest,
                         environment_digest=self.environment.digest, student_mode=self.student_mode,
                         allow_unsandboxed=self.allow_unsandboxed)

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

    for item in setup.items():
        importlib.import_module(f"grader.checks.{item.check}")
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
                result = _grade(source, sid, setup, scratch)
        finally:
            leftover = scratch.close()
        if leftover:
            result.message = "; ".join(filter(None, [result.message, leftover]))
    except IntakeRefused as refusal:
        result = SubmissionResult.refused(sid, str(source), refusal.reason, setup.max_total, setup.versions)
    except Exception as error:  # the grader's own failure: recorded, never fatal to a batch
        result = SubmissionResult.from_exception(sid, str(source), error, setup.max_total, setup.versions)
    result.started_at, result.finished_at = started_at, utc_now()
    result.seconds = round(time.perf_counter() - started, 3)
    result.cache_key = key
    result.write(setup.out_dir / RESULTS_FOLDER)
    return result


def _grade(source: Path, sid: str, setup: GradingSetup, scratch: Scratch) -> SubmissionResult:
    started = time.perf_counter()
    submission = unpack(source, scratch.path / "submission", setup.rubric.limits.intake)
    discovery = discover(submission.work_dir)
    intake_seconds = time.perf_counter() - started
    media = setup.out_dir / MEDIA_FOLDER / sid
    shutil.rmtree(media, ignore_errors=True)
    ctx = CheckContext(submission=submission, discovery=discovery, rubric=setup.rubric, heldout=setup.heldout,
                       load_baseline=setup.load_baseline, scratch=scratch, media_dir=media,
                       out_root=setup.out_dir, allow_unsandboxed=setup.allow_unsandboxed, cores=setup.cores,
                       environment=setup.environment, mounts=setup.rubric.mount_paths(), run_cache=setup.run_cache)
    checks_started = time.perf_counter()
    items = [_run_item(ctx, item) for item in setup.items()]
    quiz = _quiz(ctx, setup)
    student_code = sum(run.result.wall_seconds for run in ctx.runs if not run.reused)
    timings = {"intake": round(intake_seconds, 4), "student_code": round(student_code, 4),
               "grader": round(time.perf_counter() - checks_started - student_code, 4)}
    student = {k: v for k, v in {"name": discovery.student_name, "id": discovery.student_id}.items() if v}
    total = sum(i.points for i in items) + sum(q.points for q in quiz)
    return SubmissionResult(
        submission_id=sid, source=str(source), status="graded", student=student, total=round(total, 4),
        max_total=setup.max_total, items=items, quiz=quiz, runs=ctx.runs, clip_metrics=ctx.clip_metrics,
        comparison=ctx.comparison, listen=ctx.listen, samples=ctx.samples,
        discovery=discovery.model_dump(mode="json"), versions=setup.versions, timings=timings,
        message="; ".join(submission.notes))


def _run_item(ctx: CheckContext, item: Item) -> ItemResult:
    started = time.perf_counter()
    try:
        outcome = importlib.import_module(f"grader.checks.{item.check}").check(ctx, item)
    except Exception as error:
        outcome = Outcome(0.0, f"The check failed inside the grader ({type(error).__name__}: {error}); "
                               f"this is not your fault, tell the instructor.", error=True)
    fraction = min(1.0, max(0.0, outcome.fraction))
    status = "error" if outcome.error else "passed" if fraction >= 1 else "partial" if fraction > 0 else "failed"
    return ItemResult(id=item.id, title=item.title, checklist=item.checklist, points=round(item.points * fraction, 4),
                      max_points=item.points, status=status, visibility=item.visibility,
                      explanation=outcome.explanation, evidence=outcome.evidence,
                      metrics=outcome.metrics, seconds=round(time.perf_counter() - started, 3))


def _quiz(ctx: CheckContext, setup: GradingSetup) -> list[QuestionOutcome]:
    quiz = setup.rubric.quiz
    if quiz is None:
        return []
    files = ctx.discovery.findings["answers"].files
    answers: dict[str, str] = {}
    if files:
        try:
            answers = read_answers(ctx.submission.work_dir / files[0], quiz)
        except AnswersError as error:
            ctx.submission.notes.append(str(error))
    return [QuestionOutcome(id=r.id, answered=r.answered, correct=r.correct, points=r.points, max_points=r.max_points)
            for r in grade_quiz(quiz, answers, reveal=setup.reveals_quiz)]
