"""``OUT/gradebook.sqlite``: the one place that holds what the term adds to the grading (adjustments, every
grading of every attempt, submission times, the roster). Each module of :mod:`grader.term` creates its own tables
(``CREATE TABLE IF NOT EXISTS``) on the connection :func:`open_gradebook` gives."""
from __future__ import annotations

import sqlite3
from pathlib import Path

GRADEBOOK_NAME = "gradebook.sqlite"


def gradebook_path(out_dir: Path) -> Path:
    return Path(out_dir) / GRADEBOOK_NAME


def open_gradebook(out_dir: Path) -> sqlite3.Connection:
    """A connection to ``OUT/gradebook.sqlite`` (made if absent), in WAL mode, waiting up to 10 s for a writer; the
    caller commits and closes (``with contextlib.closing(open_gradebook(out)) as db, db: ...``)."""
    path = gradebook_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10)
    db.execute("PRAGMA journal_mode = WAL")
    return db
