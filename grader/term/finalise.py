"""The final grade of every result: the grading's points, then adjustments by hand, the late penalty and which
attempt counts; applied whenever pages and exports are rendered (:func:`grader.report.render_all`), never written
into the results.

:func:`finalise` returns copies of the results in which what pages and exports read is final: each item's
``points`` (the automatic points kept in ``item.adjustment.automatic``) and the result's ``total`` (the grading's
kept in ``term.automatic_total``). It can be called again on its own output: the automatic points are read back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from grader.results import ItemResult, SubmissionResult
from grader.rubric import Rubric
from grader.term.adjustments import LATE, Adjustment, current, stale_reason
from grader.term.attempts import Policy, attempts_by_submission, record_gradings
from grader.term.model import ItemAdjustment, Lateness, TermGrade

Lateness_of = Callable[[SubmissionResult], Lateness | None]


def automatic(result: SubmissionResult) -> SubmissionResult:
    """``result`` as graded: a finalised copy's automatic points and total restored, its term left out."""
    if result.term is None and not any(item.adjustment for item in result.items):
        return result
    items = [item.model_copy(update={"points": item.adjustment.automatic, "adjustment": None}) if item.adjustment
             else item for item in result.items]
    total = result.term.automatic_total if result.term else result.total
    return result.model_copy(update={"items": items, "total": total, "term": None})


def _item(item: ItemResult, adjustment: Adjustment | None, reason: str) -> ItemResult:
    if adjustment is None:
        return item
    points = item.points if reason else adjustment.applied_to(item.points, item.max_points)
    return item.model_copy(update={"points": points, "adjustment": ItemAdjustment(
        automatic=item.points, points=points, comment=adjustment.comment, by=adjustment.by, at=adjustment.at,
        stale=reason)})


def _late(lateness: Lateness | None, adjustment: Adjustment | None, reason: str, max_total: float,
          stale: list[str]) -> Lateness | None:
    """The lateness with a ``late`` adjustment applied: its points replace the penalty, and late work refused is
    accepted (an extension)."""
    if adjustment is None or lateness is None:
        return lateness
    if reason:
        stale.append(f"{LATE}: {adjustment.comment} ({adjustment.by}, {adjustment.at}): not applied: {reason}")
        return lateness
    penalty = adjustment.applied_to(lateness.penalty, max_total)
    words = (f"{lateness.words}; adjusted by {adjustment.by} at {adjustment.at} to -{penalty:g} points"
             f"{' and accepted' if lateness.refused else ''}: {adjustment.comment}")
    return lateness.model_copy(update={"penalty": penalty, "refused": False, "words": words})


def finalise_one(result: SubmissionResult, adjustments: dict[tuple[str, str], Adjustment], rubric: Rubric | None,
                 lateness: Lateness | None) -> SubmissionResult:
    """``result`` with its adjustments and lateness applied (no attempts: :func:`finalise` adds them)."""
    graded = automatic(result)
    stale: list[str] = []
    items = []
    for item in graded.items:
        adjustment = adjustments.get((graded.submission_id, item.id))
        reason = stale_reason(adjustment, graded, rubric) if adjustment else ""
        if reason:
            stale.append(f"{item.id}: {adjustment.comment} ({adjustment.by}, {adjustment.at}): not applied: {reason}")
        items.append(_item(item, adjustment, reason))
    graded_ids = {item.id for item in graded.items}
    for (submission, item_id), adjustment in sorted(adjustments.items()):
        if submission == graded.submission_id and item_id != LATE and item_id not in graded_ids:
            stale.append(f"{item_id}: {adjustment.comment} ({adjustment.by}, {adjustment.at}): not applied: "
                         f"{stale_reason(adjustment, graded, rubric)}")
    late_adjustment = adjustments.get((graded.submission_id, LATE))
    late = _late(lateness, late_adjustment, stale_reason(late_adjustment, graded, rubric) if late_adjustment else "",
                 graded.max_total, stale)
    total = graded.total + sum(new.points - old.points for new, old in zip(items, graded.items))
    if late is not None:
        total = 0.0 if late.refused else total - late.penalty
    total = min(max(total, 0.0), graded.max_total) if graded.max_total else max(total, 0.0)
    term = TermGrade(automatic_total=graded.total, total=round(total, 4), lateness=late, stale=stale)
    return graded.model_copy(update={"items": items, "total": term.total, "term": term})


def finalise(results: list[SubmissionResult], out_dir: str | Path, rubric: Rubric | None,
             lateness: Lateness_of) -> list[SubmissionResult]:
    """Copies of ``results`` with their final grade: adjustments (stale ones shown, not applied), the late penalty
    and the student's attempts, ``counts`` set on the one the rubric's ``[term] attempts`` policy counts.

    Keeps every grading of ``results`` in the gradebook (:func:`grader.term.attempts.record_gradings`; the same
    grading again is no new row).

    Args:
        results: results as read (finalised ones are taken back to their automatic points first).
        out_dir: the grading's output folder, whose ``gradebook.sqlite`` holds the adjustments and gradings.
        rubric: the rubric graded with: an adjustment whose item's points, check or params differ from it is stale;
            None: only the item's maximum is compared, and the last attempt counts.
        lateness: the lateness of a result (:func:`grader.term.late.lateness_of`), None where on time or unknown.
    """
    out_dir = Path(out_dir)
    graded = [automatic(result) for result in results]
    record_gradings(out_dir, graded, lateness)
    adjustments = current(out_dir)
    final = [finalise_one(result, adjustments, rubric, lateness(result)) for result in graded]
    policy: Policy = rubric.term.attempts if rubric else "last"
    counting = attempts_by_submission(out_dir, final, policy, lateness)
    out = []
    for result in final:
        chosen = counting.get(result.submission_id)
        if chosen is None:
            out.append(result)
            continue
        counts = any(a.counts and a.submission_id == result.submission_id for a in chosen.attempts)
        out.append(result.model_copy(update={"term": result.term.model_copy(update={
            "attempts": chosen.attempts, "counts": counts})}))
    return out
