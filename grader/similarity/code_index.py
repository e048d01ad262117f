"""A class's code fingerprints held in SQLite rather than in memory: the hashes much of the class shares, and the
score of every pair of submissions that shares others, counted once and kept by content.

What a comparison holds in memory is a row per submission; the hashes (some 500 a submission) and the pairs'
counts live in the database the caller opens (``OUT/similarity.sqlite``), in three tables:

- ``code_hashes (digest, hash)``: each fingerprint's hashes, by the fingerprint's digest
  (:attr:`grader.similarity.code.CodeFingerprint.digest`): the same code is kept once, whoever hands it in;
- ``code_shared (a, b, shared)``: how many hashes two fingerprints share once the ignored ones are left out, by the
  two's *contexts* (``a < b``). A context is a fingerprint's digest with the ignored hashes it holds: all that the
  count depends on, so that a class compared again with one submission more counts only the pairs whose contexts
  are new (the new submission's, and those of submissions holding hashes that moved in or out of the common ones).
  Pairs that share nothing are kept too, with 0: a pair missing from the table has not been counted;
- ``code_contexts (context)``: the contexts counted against every other context of a comparison they were in;
- temporary, for one comparison: its members ``(sid, digest, current, context, own)`` and the ignored hashes.

Use: :meth:`CodeIndex.add` each submission, :meth:`CodeIndex.ignore` the starter code's hashes (the class's common
ones are added), then :meth:`CodeIndex.pairs`.
"""
from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from grader.similarity.code import CodeFingerprint, score

_SCHEMA = """
CREATE TABLE IF NOT EXISTS code_hashes (digest TEXT, hash INTEGER, PRIMARY KEY (digest, hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS code_shared (a TEXT, b TEXT, shared INTEGER, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS code_contexts (context TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS code_members (sid TEXT PRIMARY KEY, digest TEXT, current INTEGER, context TEXT,
                                              own INTEGER);
CREATE TEMP TABLE IF NOT EXISTS code_ignored (hash INTEGER PRIMARY KEY);
"""


class CodePair(NamedTuple):
    """Two submissions (``a < b``) that share code of their own: the score (:func:`grader.similarity.code.score`) and
    the two contexts, by which anything further made of the pair can be kept."""

    a: str
    b: str
    score: float
    context_a: str
    context_b: str


class CodeIndex:
    """The code fingerprints of one comparison, in the database ``db`` (an open connection the caller commits)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        db.executescript(_SCHEMA)
        db.execute("DELETE FROM code_members")
        self.reused = 0
        """Pairs listed by the last :meth:`pairs` whose count was kept from an earlier comparison."""

    def add(self, sid: str, fingerprint: CodeFingerprint, *, current: bool) -> None:
        """Take submission ``sid``'s code ``fingerprint`` (``current``: of the class compared, else an earlier
        class's, compared only with the current ones); its hashes are stored unless that code already is."""
        digest = fingerprint.digest
        self.db.executemany("INSERT OR IGNORE INTO code_hashes VALUES (?, ?)",
                            ((digest, h) for h in fingerprint.hashes))
        self.db.execute("INSERT OR REPLACE INTO code_members VALUES (?, ?, ?, NULL, NULL)", (sid, digest, int(current)))

    def ignore(self, starter: Iterable[int], min_fraction: float = 0.2, min_count: int = 3) -> int:
        """Leave out of every count the ``starter`` hashes and those of code much of the class has: in at least
        ``min_fraction`` of the current submissions and in at least ``min_count`` of them (common idioms, code from
        the course's notebooks or a popular tutorial). Returns how many hashes are left out."""
        db = self.db
        db.execute("DELETE FROM code_ignored")
        db.executemany("INSERT OR IGNORE INTO code_ignored VALUES (?)", ((h,) for h in starter))
        current = db.execute("SELECT COUNT(*) FROM code_members WHERE current").fetchone()[0]
        needed = max(min_count, math.ceil(min_fraction * current))
        db.execute("INSERT OR IGNORE INTO code_ignored SELECT h.hash FROM code_members m JOIN code_hashes h "
                   "ON h.digest = m.digest WHERE m.current GROUP BY h.hash HAVING COUNT(*) >= ?", (needed,))
        for sid, digest in db.execute("SELECT sid, digest FROM code_members").fetchall():
            held = [h for (h,) in db.execute("SELECT h.hash FROM code_hashes h JOIN code_ignored i ON i.hash = h.hash "
                                              "WHERE h.digest = ? ORDER BY h.hash", (digest,))]
            total = db.execute("SELECT COUNT(*) FROM code_hashes WHERE digest = ?", (digest,)).fetchone()[0]
            context = hashlib.sha256(f"{digest}:{','.join(map(str, held))}".encode()).hexdigest()
            db.execute("UPDATE code_members SET context = ?, own = ? WHERE sid = ?", (context, total - len(held), sid))
        return db.execute("SELECT COUNT(*) FROM code_ignored").fetchone()[0]

    def ignored_hashes(self) -> set[int]:
        """The hashes :meth:`ignore` left out."""
        return {h for (h,) in self.db.execute("SELECT hash FROM code_ignored")}

    def pairs(self) -> Iterator[CodePair]:
        """Every pair with a current submission that shares a hash left in, with its score, in the order of the two
        ids. New contexts are counted first against all of the comparison's, :data:`COUNTED_AT_ONCE` at a time; a
        pair of two known contexts that never met (they were in different comparisons) is counted alone."""
        db = self.db
        ignored = self.ignored_hashes()
        known = {context for (context,) in db.execute(
            "SELECT DISTINCT m.context FROM code_members m JOIN code_contexts c ON c.context = m.context")}
        new = [row for row in db.execute("SELECT DISTINCT context, digest FROM code_members").fetchall()
               if row[0] not in known]
        for start in range(0, len(new), COUNTED_AT_ONCE):
            self._count_against_all(new[start:start + COUNTED_AT_ONCE], ignored)
        counted = {context for context, _ in new}
        for a, digest_a, b, digest_b in db.execute(
                "SELECT DISTINCT x.context, x.digest, y.context, y.digest FROM code_members x JOIN code_members y "
                "ON x.context < y.context LEFT JOIN code_shared s ON s.a = x.context AND s.b = y.context "
                "WHERE s.a IS NULL AND (x.current OR y.current)").fetchall():
            shared = len((self._hashes(digest_a) - ignored) & self._hashes(digest_b))
            db.execute("INSERT OR REPLACE INTO code_shared VALUES (?, ?, ?)", (a, b, shared))
            counted.update((a, b))
        self.reused = 0
        for a, b, shared, own_a, own_b, context_a, context_b in db.execute(
                "SELECT x.sid, y.sid, CASE WHEN x.context = y.context THEN x.own ELSE s.shared END AS counted, x.own, "
                "y.own, x.context, y.context FROM code_members x JOIN code_members y ON x.sid < y.sid "
                "LEFT JOIN code_shared s ON s.a = min(x.context, y.context) AND s.b = max(x.context, y.context) "
                "WHERE (x.current OR y.current) AND counted > 0 ORDER BY x.sid, y.sid"):
            self.reused += context_a not in counted and context_b not in counted
            yield CodePair(a, b, score(shared, own_a, own_b), context_a, context_b)

    def _count_against_all(self, new: list[tuple[str, str]], ignored: set[int]) -> None:
        """Count each ``(context, digest)`` of ``new`` against every other context of the comparison: the new ones'
        hashes held, every other fingerprint's read once."""
        db = self.db
        own = {context: self._hashes(digest) - ignored for context, digest in new}
        for other, digest in db.execute("SELECT DISTINCT context, digest FROM code_members").fetchall():
            theirs = self._hashes(digest)
            db.executemany("INSERT OR REPLACE INTO code_shared VALUES (?, ?, ?)",
                           ((min(context, other), max(context, other), len(hashes & theirs))
                            for context, hashes in own.items() if context != other))
        db.executemany("INSERT OR IGNORE INTO code_contexts VALUES (?)", ((context,) for context in own))

    def _hashes(self, digest: str) -> frozenset[int]:
        """The hashes of the fingerprint ``digest``."""
        return frozenset(h for (h,) in self.db.execute("SELECT hash FROM code_hashes WHERE digest = ?", (digest,)))


COUNTED_AT_ONCE = 64
"""New contexts whose hashes are held at once while every fingerprint of the comparison is read against them."""
