"""Resubmissions: every grading of every attempt, kept in ``OUT/gradebook.sqlite``, and which attempt counts.

A student's attempts are the submissions their LMS identity names (``identity.lms`` and ``user_id``); an unmatched
submission is a group of its own. The rubric's ``[term] attempts`` policy picks the one that counts
(:func:`choose`): ``last`` (the latest handed in where every time is known, else the highest attempt number),
``best`` (the highest final total), ``last_before_due`` (the latest handed in before the due date and its grace
period; where no time is known, or none is before, the last, and the note says so).
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Literal

from grader.identity import attempt_of
from grader.results import SubmissionResult
from grader.term.database import open_gradebook
from grader.term.model import Attempt, Lateness

log = logging.getLogger(__name__)

Policy = Literal["last", "best", "last_before_due"]

_SCHEMA = """CREATE TABLE IF NOT EXISTS gradings (
    submission_id TEXT NOT NULL,
    lms TEXT NOT NULL,
    user_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    graded_at TEXT NOT NULL,
    points REAL NOT NULL,
    max_points REAL NOT NULL,
    submitted_at TEXT,
    PRIMARY KEY (submission_id, digest, graded_at)
)"""


def group_of(result: SubmissionResult) -> tuple[str, str]:
    """Whose attempt ``result`` is: (lms, user id); an unmatched submission is its own group ('', submission id)."""
    if result.identity.matched:
        return result.identity.lms or "", result.identity.user_id
    return "", result.submission_id


def record_gradings(out_dir: str | Path, results: Iterable[SubmissionResult],
                    lateness: Callable[[SubmissionResult], Lateness | None]) -> None:
    """Keep every grading of ``results`` (submission id, LMS identity, content digest, graded time, the grading's
    points) in the gradebook; the same grading (id, digest, finished time) is one row, its submission time updated."""
    rows = []
    for result in results:
        late = lateness(result)
        lms, user = group_of(result)
        rows.append((result.submission_id, lms, user, result.content_digest, result.finished_at, result.total,
                     result.max_total, late.submitted_at if late else None))
    with contextlib.closing(open_gradebook(Path(out_dir))) as db, db:
        db.execute(_SCHEMA)
        db.executemany("INSERT INTO gradings VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (submission_id, digest, "
                       "graded_at) DO UPDATE SET submitted_at = COALESCE(excluded.submitted_at, submitted_at)", rows)


def gradings(out_dir: str | Path) -> list[tuple[str, str, str, str, str, float, float, str | None]]:
    """Every grading kept: (submission id, lms, user id, digest, graded at, points, max points, submitted at)."""
    with contextlib.closing(open_gradebook(Path(out_dir))) as db, db:
        db.execute(_SCHEMA)
        return db.execute("SELECT * FROM gradings ORDER BY graded_at, rowid").fetchall()


@dataclass(frozen=True)
class Counting:
    """A student's attempts (oldest first, ``counts`` set on the one counted) and, in words, how it was chosen
    where the policy could not be followed ('' otherwise)."""

    attempts: list[Attempt]
    note: str = ""


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _last(candidates: list[Attempt]) -> Attempt:
    times = [_when(a.submitted_at) for a in candidates]
    if all(times):
        return max(zip(times, candidates), key=lambda pair: (pair[0], attempt_of(pair[1].submission_id)))[1]
    return max(candidates, key=lambda a: (attempt_of(a.submission_id), a.graded_at))


def choose(attempts: list[Attempt], policy: Policy, on_time: set[str] = frozenset()) -> Counting:
    """The attempt ``policy`` counts among ``attempts`` (their ``counts`` ignored); ``on_time``: the submission ids
    known to be handed in before the due date and its grace period (for ``last_before_due``)."""
    if not attempts:
        return Counting([])
    note = ""
    if policy == "best":
        chosen = max(attempts, key=lambda a: (a.points, attempt_of(a.submission_id), a.graded_at))
    elif policy == "last_before_due":
        before = [a for a in attempts if a.submission_id in on_time and _when(a.submitted_at)]
        if before:
            chosen = max(before, key=lambda a: (_when(a.submitted_at), attempt_of(a.submission_id)))
        else:
            chosen = _last(attempts)
            known = any(_when(a.submitted_at) for a in attempts)
            note = ("no attempt was handed in before the due date: the last counts" if known else
                    "no submission time is known: the last attempt counts, not the last before the due date")
    else:
        chosen = _last(attempts)
    ordered = sorted(attempts, key=_order_key(attempts))
    return Counting([a.model_copy(update={"counts": a is chosen}) for a in ordered], note)


def _order_key(attempts: list[Attempt]):
    if all(_when(a.submitted_at) for a in attempts):
        return lambda a: (_when(a.submitted_at), attempt_of(a.submission_id))
    return lambda a: (attempt_of(a.submission_id), a.graded_at)


def attempts_by_submission(out_dir: str | Path, results: list[SubmissionResult], policy: Policy,
                           lateness: Callable[[SubmissionResult], Lateness | None]) -> dict[str, Counting]:
    """Each result's student's attempts, with the one ``policy`` counts, by submission id.

    The attempts are the latest grading of every submission of the student in the gradebook
    (:func:`record_gradings` first); a result's own shows its points as given (its final total). Only a result
    among ``results`` can count.
    """
    present = {r.submission_id: r for r in results}
    latest: dict[str, tuple] = {}
    for row in gradings(out_dir):
        latest[row[0]] = row  # ordered by graded time: the last one stays
    groups: dict[tuple[str, str], list[Attempt]] = {}
    on_time: set[str] = set()
    for submission_id, lms, user, digest, graded_at, points, max_points, submitted_at in latest.values():
        result = present.get(submission_id)
        if result is not None:
            late = lateness(result)
            lms, user = group_of(result)
            digest, graded_at, points, max_points = (result.content_digest, result.finished_at, result.total,
                                                     result.max_total)
            submitted_at = late.submitted_at if late else submitted_at
            if late and late.submitted_at and late.late_minutes == 0:
                on_time.add(submission_id)
        groups.setdefault((lms, user), []).append(Attempt(
            submission_id=submission_id, graded_at=graded_at, digest=digest, points=points, max_points=max_points,
            submitted_at=submitted_at, counts=False))
    counted: dict[str, Counting] = {}
    for key, attempts in groups.items():
        candidates = [a for a in attempts if a.submission_id in present]
        if not candidates:
            continue
        chosen = choose(candidates, policy, on_time)
        winner = next(a.submission_id for a in chosen.attempts if a.counts)
        listing = sorted(attempts, key=_order_key(attempts))
        listing = [a.model_copy(update={"counts": a.submission_id == winner}) for a in listing]
        if chosen.note:
            log.info("%s: %s", key, chosen.note)
        for attempt in candidates:
            counted[attempt.submission_id] = Counting(listing, chosen.note)
    return counted
