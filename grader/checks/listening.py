"""A listening test's score: the submission's MUSHRA or MOS score in the class's test (``OUT/listening.csv``, written
by ``grade listen results``), between two bars.

The bars (:class:`grader.rubric_params.ListeningParams`): ``full_at``, the reference solution's score in the same
test (``"reference"``) or a score; ``floor_at``, the 3.5 kHz anchor's (``"anchor"``) or a score. Points are
proportional between them. A submission not in the test, with fewer than ``min_ratings`` ratings, or graded before
any test was scored, is skipped: the item's points are left out of its maximum until the ratings come.

Nothing of the submission is read or run: the check reads the class's scores, so it declares no artefact. New
scores re-score it: the result's cache key holds ``listening.csv``'s digest where a rubric has this check
(:meth:`grader.pipeline.GradingSetup.cache_key`), and ``grade listen results`` judges the results already graded
again with :func:`judge` (:func:`grader.listening.apply.apply_ratings`).
"""
from __future__ import annotations

from grader.context import CheckContext, Outcome
from grader.listening.results import KIND_WORDS, SYSTEM_PREFIX, SYSTEM_WORDS, Score, read_scores
from grader.rubric import Item
from grader.rubric_params import ListeningParams

NEEDS = ()
SCORING = ("kind", "full_at", "floor_at", "min_ratings")


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: :class:`grader.rubric_params.ListeningParams` (kind, full_at, floor_at, min_ratings)."""
    return judge(item.params, ctx.media_dir.name, read_scores(ctx.out_root))  # media_dir: OUT/media/<submission id>


def judge(params: ListeningParams, submission_id: str, scores: list[Score] | None) -> Outcome:
    """The outcome of a ``listening`` item for ``submission_id`` from the test's ``scores`` (the rows of
    ``listening.csv``; None where no test was scored): skipped, an error in the bars (a system the test did not
    score, bars that leave no room), or the share of the points between the bars."""
    kind = KIND_WORDS[params.kind]
    if scores is None:
        return _skipped(f"No {kind} listening test has been scored yet: this item's points wait for its ratings "
                        "(`grade listen results`).")
    rows = {row.submission: row for row in scores if row.kind == params.kind}
    if not rows:
        return _skipped(f"The listening test scored is not a {kind} test, which this item scores: its points wait "
                        f"for one.")
    own = rows.get(submission_id)
    if own is None:
        return _skipped(f"This submission's audio is not in the {kind} listening test: this item's points are left "
                        f"out of the total.")
    if own.ratings < params.min_ratings:
        return _skipped(f"{own.ratings} rating{'s' if own.ratings != 1 else ''} of this submission's audio in the "
                        f"{kind} listening test, fewer than the {params.min_ratings} it needs to be scored: this "
                        f"item's points are left out of the total until more ratings come.")
    systems = [row for row in scores if row.kind == params.kind and row.system is not None]
    evidence = [f"{SYSTEM_WORDS[row.system]}: {row.interval()}" for row in systems]
    bars = []
    for bar, written in (("full_at", params.full_at), ("floor_at", params.floor_at)):
        if isinstance(written, str):
            row = rows.get(SYSTEM_PREFIX + written)
            if row is None or row.score is None:
                return Outcome(0.0, f"The {kind} listening test has no score of the {SYSTEM_WORDS[written]}, "
                                    f"which the rubric's {bar} names: the instructor sets {bar} to a score.",
                               evidence, error=True)
            bars.append((row.score, f"the {SYSTEM_WORDS[written]}"))
        else:
            bars.append((float(written), "a score the rubric sets"))
    (full, full_words), (floor, floor_words) = bars
    between = f"no points at {floor:.1f} ({floor_words}), full points at {full:.1f} ({full_words})"
    metrics = {"kind": params.kind, "score": own.score, "ci_low": own.ci_low, "ci_high": own.ci_high,
               "ratings": own.ratings, "full": full, "floor": floor}
    if full <= floor:
        return Outcome(0.0, f"The bars leave no room for points: {between}; the instructor sets full_at or floor_at "
                            f"to a score.", evidence, metrics, error=True)
    position = (own.score - floor) / (full - floor)
    where = ("at or past full points" if position >= 1 else "at or below the floor" if position <= 0
             else f"{position:.0%} of the way from the floor to full points")
    return Outcome(min(1.0, max(0.0, position)), f"Listeners' {kind} score of this submission's audio, "
                   f"{own.interval()}, sits {where}: {between}.", evidence, metrics)


def _skipped(explanation: str) -> Outcome:
    return Outcome(0.0, explanation, skipped=True)
