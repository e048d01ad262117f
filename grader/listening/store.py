"""The ratings of a listening test, kept in SQLite (``OUT/listening/ratings.sqlite``), and what the server saw played.

Two tables:

- ``ratings``: one row per (rater token, trial, stimulus key) with its score and when it was submitted. A trial is
  submitted whole (all of its stimuli rated at once, in one transaction) and only once; every accepted trial is
  committed before :meth:`RatingStore.submit` returns, so a restarted server keeps it.
- ``plays``: per (rater token, stimulus key), the byte ranges of the stimulus's WAV the server has sent to that
  rater, the file's size, and when its first byte was sent.

"Played in full", as the server sees it (never the browser's word): a stimulus counts as played by a rater when the
byte ranges served to them cover the whole file and at least its duration (``Stimulus.seconds``, less
:data:`PLAY_TOLERANCE_SECONDS`) has passed since its first byte was served. A rater who downloads a clip and
submits at once is refused; one who waits out the clip's length after downloading it is not (the server cannot hear
the speakers). The static export (:mod:`grader.listening.export`) has no server: its page asks for the browser's
``ended`` event of every clip, and its imported ratings skip this check.

A submission is refused with a :class:`RatingRefused` subclass whose message a rater can act on:
:class:`UnknownTrial` (no such trial for that rater, or a stimulus that is not the trial's, or one missing),
:class:`AlreadySubmitted`, :class:`TestClosed` (after ``Plan.closes``), :class:`OutOfRange` (a score that is no
integer of :data:`grader.listening.model.SCALES`), :class:`NotPlayedInFull`.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Mapping

from grader.listening.model import DATABASE_NAME, FOLDER, PLAN_NAME, SCALES, Plan, Rating

PLAY_TOLERANCE_SECONDS = 0.25
"""How much shorter than the clip the time since its first byte was served may be, and the clip still count as
played (the browser starts playing before the last byte arrives; clocks are coarse)."""
MAX_RANGES = 64
"""Separate byte ranges kept per rater and stimulus: a browser asks for a few; past this many the later ones are
dropped (the clip then counts as played only once served whole), so that no rater can make each request costlier."""
BUSY_SECONDS = 10.0
"""How long a write waits for another process (an import while the server runs) to finish its own."""


class RatingRefused(ValueError):
    """A submission the store does not keep; the message says why, in words for the rater."""


class UnknownTrial(RatingRefused):
    """The trial is not the rater's, or the scores name stimuli other than the trial's (too many, too few)."""


class AlreadySubmitted(RatingRefused):
    """The rater has already submitted this trial."""


class TestClosed(RatingRefused):
    """The submission came after the plan's ``closes``."""


class OutOfRange(RatingRefused):
    """A score that is not an integer of the trial's scale."""


class NotPlayedInFull(RatingRefused):
    """A stimulus the server did not see played in full to this rater (see the module's docstring)."""


def database_path(out_dir: Path) -> Path:
    """``OUT/listening/ratings.sqlite``."""
    return Path(out_dir) / FOLDER / DATABASE_NAME


def closes_at(plan: Plan) -> datetime | None:
    """``plan.closes`` as an aware datetime; None when the test never closes. ``ValueError`` naming the fix when it
    is no ISO 8601 time with a UTC offset."""
    if plan.closes is None:
        return None
    moment = datetime.fromisoformat(plan.closes)
    if moment.tzinfo is None:
        raise ValueError(f"{PLAN_NAME}: closes {plan.closes!r} has no UTC offset; write it as "
                         f"{moment.isoformat()}+00:00 (or your own offset)")
    return moment


class RatingStore:
    """The ratings database at ``path``, created when missing; safe to share between the threads of one server (one
    connection behind a lock) and with another process (write-ahead log, writes wait up to :data:`BUSY_SECONDS`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS ratings (rater TEXT NOT NULL, trial TEXT NOT NULL, stimulus TEXT NOT NULL,
                                                score REAL NOT NULL, at TEXT NOT NULL,
                                                PRIMARY KEY (rater, trial, stimulus));
            CREATE TABLE IF NOT EXISTS plays (rater TEXT NOT NULL, stimulus TEXT NOT NULL, size INTEGER NOT NULL,
                                              first_byte_at REAL NOT NULL, ranges TEXT NOT NULL,
                                              PRIMARY KEY (rater, stimulus));
        """)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RatingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------- plays

    def record_served(self, rater: str, stimulus: str, start: int, end: int, size: int,
                      *, at: float | None = None) -> None:
        """Note that bytes ``[start, end)`` of stimulus ``stimulus``'s WAV (``size`` bytes) were sent to ``rater``
        (their token); ``at`` (Unix time, s; default now) counts only for the first bytes sent."""
        if end <= start:
            return
        at = time.time() if at is None else at
        with self._lock, self._transaction():
            row = self._db.execute("SELECT ranges FROM plays WHERE rater = ? AND stimulus = ?",
                                   (rater, stimulus)).fetchone()
            ranges = _merged(json.loads(row[0]) + [[start, end]] if row else [[start, end]])[:MAX_RANGES]
            self._db.execute("""INSERT INTO plays (rater, stimulus, size, first_byte_at, ranges) VALUES (?, ?, ?, ?, ?)
                                ON CONFLICT (rater, stimulus) DO UPDATE SET size = excluded.size,
                                                                            ranges = excluded.ranges""",
                             (rater, stimulus, size, at, json.dumps(ranges)))

    def played_in_full(self, rater: str, stimulus: str, seconds: float, *, now: float | None = None) -> bool:
        """Whether the server saw ``rater`` play stimulus ``stimulus`` (a clip of ``seconds`` s) in full: every byte
        served, and the clip's duration (less :data:`PLAY_TOLERANCE_SECONDS`) passed since the first (Unix time
        ``now``, default now)."""
        with self._lock:
            row = self._db.execute("SELECT size, first_byte_at, ranges FROM plays WHERE rater = ? AND stimulus = ?",
                                   (rater, stimulus)).fetchone()
        if row is None:
            return False
        size, first_byte_at, ranges = row
        now = time.time() if now is None else now
        return json.loads(ranges) == [[0, size]] and now - first_byte_at >= seconds - PLAY_TOLERANCE_SECONDS

    # ------------------------------------------------------------------- ratings

    def submit(self, plan: Plan, rater: str, trial: str, scores: Mapping[str, int | float], *,
               at: datetime | None = None, require_played: bool = True) -> list[Rating]:
        """Keep ``rater``'s (token) scores of trial ``trial``, ``scores`` by stimulus key, all of the trial's stimuli
        at once; ``at`` (aware; default now) is when they were given. ``require_played=False`` skips the played-in-full
        check (the static export's import: only a server sees plays). Returns the ratings kept, committed.

        Raises:
            RatingRefused: one of its subclasses (see the module's docstring), nothing kept.
        """
        at = datetime.now(timezone.utc) if at is None else at
        self._check(plan, rater, trial, scores, at)
        if require_played:
            silent = [key for key in plan.trials[trial].stimuli
                      if not self.played_in_full(rater, key, plan.stimuli[key].seconds, now=at.timestamp())]
            if silent:
                raise NotPlayedInFull(f"{_counted(len(silent), 'clip')} of this trial not played to the end yet: "
                                      "play every clip to its end, then submit again")
        ratings = [Rating(rater=rater, trial=trial, stimulus=key, score=scores[key], at=at.isoformat())
                   for key in plan.trials[trial].stimuli]
        with self._lock, self._transaction():
            if self._submitted(rater, trial):  # another thread or process got there first
                raise AlreadySubmitted(_already(trial))
            self._db.executemany("INSERT INTO ratings (rater, trial, stimulus, score, at) VALUES (?, ?, ?, ?, ?)",
                                 [(r.rater, r.trial, r.stimulus, r.score, r.at) for r in ratings])
        return ratings

    def submitted_trials(self, rater: str) -> set[str]:
        """The trials ``rater`` (token) has submitted."""
        with self._lock:
            return {trial for (trial,) in self._db.execute("SELECT DISTINCT trial FROM ratings WHERE rater = ?",
                                                           (rater,))}

    def ratings(self) -> list[Rating]:
        """Every rating kept, in the order submitted."""
        with self._lock:
            rows = self._db.execute("SELECT rater, trial, stimulus, score, at FROM ratings ORDER BY rowid").fetchall()
        return [Rating(rater=rater, trial=trial, stimulus=stimulus, score=score, at=at)
                for rater, trial, stimulus, score, at in rows]

    # ------------------------------------------------------------------- inside

    def _check(self, plan: Plan, rater: str, trial: str, scores: Mapping[str, int | float], at: datetime) -> None:
        """Raise the :class:`RatingRefused` a submission earns, if any, but for plays."""
        person = plan.rater(rater)
        if person is None or trial not in {assignment.trial for assignment in person.assignments}:
            raise UnknownTrial(f"there is no trial {trial!r} in this rater's test")
        closes = closes_at(plan)
        if closes is not None and at > closes:
            raise TestClosed(f"this listening test closed at {closes.isoformat(timespec='minutes')}; ratings are no "
                             "longer accepted")
        with self._lock:
            if self._submitted(rater, trial):
                raise AlreadySubmitted(_already(trial))
        expected = set(plan.trials[trial].stimuli)
        if set(scores) != expected:
            missing, extra = len(expected - set(scores)), len(set(scores) - expected)
            raise UnknownTrial(f"a trial is submitted whole: {_counted(missing, 'clip')} of this trial unrated, "
                               f"{_counted(extra, 'score')} for clips not in it")
        low, high = SCALES[plan.trials[trial].kind]
        for score in scores.values():
            if isinstance(score, bool) or not isinstance(score, (int, float)) or score != int(score) \
                    or not low <= score <= high:
                raise OutOfRange(f"score {score!r} is not a whole number from {low} to {high}")

    def _submitted(self, rater: str, trial: str) -> bool:
        return self._db.execute("SELECT 1 FROM ratings WHERE rater = ? AND trial = ? LIMIT 1",
                                (rater, trial)).fetchone() is not None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """A block that holds the database's write lock (BEGIN IMMEDIATE) and commits at its end, or rolls back."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _merged(ranges: list[list[int]]) -> list[list[int]]:
    """Half-open byte ranges ``[[start, end], ...]`` as the fewest sorted, disjoint ones covering the same bytes."""
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _already(trial: str) -> str:
    return f"trial {trial} is already submitted; a trial is rated once"


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
