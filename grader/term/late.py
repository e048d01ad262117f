"""Late work: when each result was handed in against the rubric's ``[term] due`` and what its late policy costs
(:class:`grader.term.model.Lateness`), applied when pages and exports are rendered, never by grading.

The policy (``[term]``, :class:`grader.rubric.Term`): ``grace_minutes`` after ``due`` still count as on time; past
that, ``late = { per = "day" | "hour", percent = 10, cap_percent = 50 }`` takes ``percent`` of the result's
maximum (``max_total``, the items' and quiz's points) off for every started day or hour, at most ``cap_percent``;
``late = "not_accepted"`` gives late work 0; without ``late``, late work is shown as late and nothing is taken off.

The time of handing in comes from ``OUT/gradebook.sqlite`` (:mod:`grader.term.times`: a Moodle worksheet, a
generic CSV, ``grade --submitted-at``). Canvas's download carries no time, only ``_LATE`` in a late file's name:
such a result without a stored time is flagged for review (``review``), nothing taken off. A stored time overrides
the mark either way.
"""
from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from grader.term.model import Lateness
from grader.term.times import submission_time, submitted_at

if TYPE_CHECKING:
    from grader.results import SubmissionResult
    from grader.rubric import Rubric, Term

__all__ = ["lateness", "lateness_of", "submitted_at", "duration_words"]

UNIT_MINUTES = {"day": 24 * 60, "hour": 60}


def lateness_of(out_dir: Path, rubric: Rubric | None) -> Callable[[SubmissionResult], Lateness | None]:
    """A function giving each result its :class:`Lateness` under ``rubric``'s ``[term]``, with the times stored
    in ``OUT/gradebook.sqlite`` (read once, here); it gives None for every result where the rubric (or its
    absence) sets no due date."""
    term = rubric.term if rubric is not None else None
    if term is None or term.due is None:
        return lambda result: None
    times = submitted_at(out_dir)
    return lambda result: lateness(result, term, submission_time(times, result))


def lateness(result: SubmissionResult, term: Term, when: datetime | None) -> Lateness:
    """``result``'s lateness under ``term`` (which has a due date) when handed in at ``when`` (aware; None:
    unknown). The penalty is in points of ``result.max_total``; late work not accepted loses all of them."""
    assert term.due is not None, "lateness needs [term] due"
    due = term.due.isoformat()
    grace = f" (grace {duration_words(term.grace_minutes)})" if term.grace_minutes else ""
    if when is None:
        if result.identity.late:
            return Lateness(submitted_at=None, due=due, late_minutes=0, penalty=0, review=True,
                            words="marked late by Canvas (_LATE), time unknown: flagged for review, no points off "
                            "(give the time with grade --submitted-at)")
        on_time = ("on time (Canvas did not mark it late)" if result.identity.lms == "canvas"
                   else "time handed in unknown: counted as on time")
        return Lateness(submitted_at=None, due=due, late_minutes=0, penalty=0, words=on_time)
    after_due = (when - term.due).total_seconds() / 60
    late_minutes = max(0.0, after_due - term.grace_minutes)
    if late_minutes <= 0:
        words = ("handed in on time" if after_due <= 0
                 else f"handed in {duration_words(after_due)} after the due date, within the "
                       f"{duration_words(term.grace_minutes)} grace: on time")
        return Lateness(submitted_at=when.isoformat(), due=due, late_minutes=0, penalty=0, words=words)
    late = f"handed in {duration_words(after_due)} late{grace}"
    policy = term.late
    if policy is None:
        return Lateness(submitted_at=when.isoformat(), due=due, late_minutes=late_minutes, penalty=0,
                        words=f"{late}: no late policy, no points off")
    if policy == "not_accepted":
        return Lateness(submitted_at=when.isoformat(), due=due, late_minutes=late_minutes,
                        penalty=result.max_total, refused=True, words=f"{late}: late work not accepted, 0 points")
    units = math.ceil(late_minutes / UNIT_MINUTES[policy.per] - 1e-9)
    percent = min(policy.cap_percent, policy.percent * units)
    penalty = round(result.max_total * percent / 100, 4)
    capped = " (the cap)" if percent < policy.percent * units else ""
    return Lateness(submitted_at=when.isoformat(), due=due, late_minutes=late_minutes, penalty=penalty,
                    words=f"{late}: \u2212{percent:g}%{capped} ({penalty:g} points)")


def duration_words(minutes: float) -> str:
    """``minutes`` (> 0) in words, its two largest units that are not 0, minutes rounded up: "1 day 3 hours",
    "2 hours 5 min", "45 min"."""
    total = math.ceil(minutes - 1e-9)
    days, rest = divmod(total, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}" if days else "",
             f"{hours} hour{'s' if hours != 1 else ''}" if hours else "",
             f"{mins} min" if mins else ""]
    return " ".join([part for part in parts if part][:2]) or "0 min"
