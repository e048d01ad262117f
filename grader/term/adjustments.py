"""Adjustments by hand: a person's change of one item's points (or of the late penalty), kept in
``OUT/gradebook.sqlite`` and applied on every render (:func:`grader.term.finalise.finalise`), so that they
survive regrades.

Each adjustment keeps its *basis*: the item's points, check and params in the rubric it was made with, and the
submission's content digest. When the basis changes (the rubric's item or the handed-in content), the adjustment
is *stale* (:func:`stale_reason`): shown with the reason, not applied. A later adjustment of the same submission and
item replaces the earlier; every one is kept (:func:`history`), the newest counts (:func:`current`).

The item ``late`` (:data:`LATE`) stands for the late penalty: its points replace the penalty's (``points 0``: an
extension, no penalty).
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grader.results import SubmissionResult
from grader.rubric import Rubric
from grader.student_files import StudentFileError, TooLarge, read_bytes
from grader.term.database import open_gradebook

LATE = "late"
"""The item name of the late penalty: an adjustment of it replaces the penalty's points."""
RESULTS_FOLDER = "results"
CSV_COLUMNS = ("submission", "item", "points", "delta", "comment", "by")
"""The columns of ``grade adjust OUT --from FILE.csv``; one of points and delta per row."""
CSV_MAX_BYTES = 1 << 20
"""The most of an adjustments CSV read (1 MiB): a bigger file is refused, not cut."""
CSV_MAX_ROWS = 10_000

_SCHEMA = """CREATE TABLE IF NOT EXISTS adjustments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    submission TEXT NOT NULL,
    item TEXT NOT NULL,
    points REAL,
    delta REAL,
    comment TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    basis TEXT NOT NULL,
    digest TEXT NOT NULL
)"""


class AdjustmentError(ValueError):
    """An adjustment that cannot be made; the message names every problem (with its CSV line, where from one)."""


@dataclass(frozen=True)
class Request:
    """An adjustment asked for: exactly one of ``points`` (the new points) and ``delta`` (added to the automatic)."""

    submission: str
    item: str
    comment: str
    by: str
    points: float | None = None
    delta: float | None = None
    where: str = ""
    """Where it was asked ('FILE.csv:3'), for messages."""


@dataclass(frozen=True)
class Adjustment:
    """A stored adjustment and the basis it was made on."""

    submission: str
    item: str
    points: float | None
    delta: float | None
    comment: str
    by: str
    at: str
    basis: dict[str, Any] = field(default_factory=dict)
    """The rubric item's ``points``, ``check`` and ``params`` when it was made (empty for :data:`LATE`)."""
    digest: str = ""
    """The submission's content digest when it was made."""
    id: int = 0

    def applied_to(self, automatic: float, maximum: float) -> float:
        """The points after this adjustment of ``automatic`` points, clipped to 0..``maximum``."""
        value = self.points if self.points is not None else automatic + (self.delta or 0.0)
        return min(max(value, 0.0), maximum)

    def words(self) -> str:
        change = f"points {self.points:g}" if self.points is not None else f"delta {self.delta:+g}"
        return f"{self.submission} {self.item}: {change} by {self.by} at {self.at}: {self.comment}"


def basis_of(rubric: Rubric, item_id: str) -> dict[str, Any]:
    """The basis an adjustment of ``item_id`` is made on: the rubric item's points, check and params (JSON)."""
    if item_id == LATE:
        return {}
    item = next((i for i in rubric.items if i.id == item_id), None)
    if item is None:
        return {}
    return {"points": item.points, "check": item.check, "params": item.params.model_dump(mode="json")}


def stale_reason(adjustment: Adjustment, result: SubmissionResult, rubric: Rubric | None) -> str:
    """Why ``adjustment`` no longer applies to ``result`` graded with ``rubric`` ('' where it applies): the
    submission's content changed, the item is no longer graded or no longer in the rubric, or its points, check
    or params changed. Without a rubric only the item's points (its maximum in the result) are compared."""
    if adjustment.digest != result.content_digest:
        return (f"the submission's content changed since the adjustment (digest {adjustment.digest[:12] or 'none'} "
                f"then, {result.content_digest[:12] or 'none'} now)")
    if adjustment.item == LATE:
        return ""
    item = next((i for i in result.items if i.id == adjustment.item), None)
    if item is None:
        return f"item {adjustment.item} is no longer graded"
    basis = adjustment.basis
    if rubric is None:
        if "points" in basis and abs(basis["points"] - item.max_points) > 1e-9:
            return f"the item's points changed from {basis['points']:g} to {item.max_points:g}"
        return ""
    now = basis_of(rubric, adjustment.item)
    if not now:
        return f"item {adjustment.item} is no longer in the rubric"
    if abs(basis.get("points", math.nan) - now["points"]) > 1e-9 or "points" not in basis:
        then = basis.get("points")
        return f"the item's points changed from {'?' if then is None else f'{then:g}'} to {now['points']:g}"
    if basis.get("check") != now["check"]:
        return f"the item's check changed from {basis.get('check')} to {now['check']}"
    if json.dumps(basis.get("params"), sort_keys=True) != json.dumps(now["params"], sort_keys=True):
        return (f"the item's params changed from {json.dumps(basis.get('params'), sort_keys=True)} to "
                f"{json.dumps(now['params'], sort_keys=True)}")
    return ""


# --------------------------------------------------------------------------- storing

def _table(db) -> None:
    db.execute(_SCHEMA)


def _result_of(out_dir: Path, submission: str) -> SubmissionResult | None:
    path = out_dir / RESULTS_FOLDER / f"{submission}.json"
    if "/" in submission or "\\" in submission or not path.is_file():
        return None
    return SubmissionResult.read(path)


def _problems(request: Request, out_dir: Path, rubric: Rubric, cache: dict[str, SubmissionResult | None]) -> list[str]:
    where = f"{request.where}: " if request.where else ""
    problems = []
    if (request.points is None) == (request.delta is None):
        given = "both" if request.points is not None else "neither"
        problems.append(f"{where}give one of points and delta, not {given}")
    for name, value in (("points", request.points), ("delta", request.delta)):
        if value is not None and not math.isfinite(value):
            problems.append(f"{where}{name} {value} is not a number")
    if not request.comment.strip():
        problems.append(f"{where}say why (a comment)")
    if request.submission not in cache:
        cache[request.submission] = _result_of(out_dir, request.submission)
    result = cache[request.submission]
    if result is None:
        known = sorted(p.stem for p in (out_dir / RESULTS_FOLDER).glob("*.json"))
        problems.append(f"{where}no submission {request.submission!r} in {out_dir / RESULTS_FOLDER}; there are: "
                        f"{', '.join(known) or '(none)'}")
        return problems
    items = [item.id for item in result.items]
    if request.item != LATE and (request.item not in items or not basis_of(rubric, request.item)):
        in_rubric = [i for i in items if basis_of(rubric, i)]
        problems.append(f"{where}no item {request.item!r} in {request.submission} graded with rubric "
                        f"{rubric.rubric.id}; its items: {', '.join(in_rubric) or '(none)'}, or {LATE} (the late "
                        "penalty)")
    return problems


def record(out_dir: str | Path, requests: list[Request], rubric: Rubric, *, at: str | None = None) -> list[Adjustment]:
    """Store ``requests`` in ``OUT/gradebook.sqlite``, each with its basis, all or none.

    Raises:
        AdjustmentError: any request names an unknown submission or item, gives both or neither of points and
            delta, or no comment; every problem is listed and nothing is stored.
    """
    out_dir = Path(out_dir)
    cache: dict[str, SubmissionResult | None] = {}
    problems = [problem for request in requests for problem in _problems(request, out_dir, rubric, cache)]
    if problems:
        raise AdjustmentError(f"nothing stored: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))
    when = at or datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    made = [Adjustment(submission=r.submission, item=r.item, points=r.points, delta=r.delta, comment=r.comment,
                       by=r.by, at=when, basis=basis_of(rubric, r.item), digest=cache[r.submission].content_digest)
            for r in requests]
    with contextlib.closing(open_gradebook(out_dir)) as db, db:
        _table(db)
        stored = []
        for a in made:
            cursor = db.execute("INSERT INTO adjustments (submission, item, points, delta, comment, by, at, basis, "
                                "digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (a.submission, a.item, a.points, a.delta, a.comment, a.by, a.at,
                                 json.dumps(a.basis, sort_keys=True), a.digest))
            stored.append(Adjustment(**{**a.__dict__, "id": cursor.lastrowid}))
    return stored


def history(out_dir: str | Path) -> list[Adjustment]:
    """Every adjustment stored, oldest first (none where there is no gradebook)."""
    with contextlib.closing(open_gradebook(Path(out_dir))) as db, db:
        _table(db)
        rows = db.execute("SELECT submission, item, points, delta, comment, by, at, basis, digest, id "
                          "FROM adjustments ORDER BY id").fetchall()
    return [Adjustment(submission=s, item=i, points=p, delta=d, comment=c, by=b, at=at, basis=json.loads(basis),
                       digest=digest, id=row_id) for s, i, p, d, c, b, at, basis, digest, row_id in rows]


def current(out_dir: str | Path) -> dict[tuple[str, str], Adjustment]:
    """(submission, item) -> the newest adjustment of it: the one that counts."""
    return {(a.submission, a.item): a for a in history(out_dir)}


# --------------------------------------------------------------------------- CSV

def _number(text: str, name: str, where: str, problems: list[str]) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{where}: {name} {text!r} is not a number")
        return None
    if not math.isfinite(value):
        problems.append(f"{where}: {name} {text!r} is not a finite number")
        return None
    return value


def read_requests(path: str | Path, by: str = "") -> list[Request]:
    """The adjustments a CSV asks for (columns :data:`CSV_COLUMNS`; ``by`` fills an empty ``by`` cell).

    Raises:
        AdjustmentError: the file cannot be read, is over :data:`CSV_MAX_BYTES` or :data:`CSV_MAX_ROWS`, lacks a
            column, or a row is bad (each named by its line).
    """
    path = Path(path)
    try:
        data = read_bytes(path, CSV_MAX_BYTES, "an adjustments file")
    except StudentFileError as error:  # a link, a folder, or over the size
        if not isinstance(error, TooLarge):
            raise AdjustmentError(f"{path}: {error.problem}; give the file itself. Nothing stored") from None
        raise AdjustmentError(f"{path}: over {CSV_MAX_BYTES // 1024} KiB; split it. Nothing stored") from None
    except OSError as error:
        raise AdjustmentError(f"{path}: cannot read the file ({error.strerror}); nothing stored") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise AdjustmentError(f"{path}: not UTF-8 text (byte {error.start}); nothing stored") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or []) and c not in ("delta", "points", "by")]
    if missing or not ({"points", "delta"} & set(reader.fieldnames or [])):
        raise AdjustmentError(f"{path}: the header must name the columns {', '.join(CSV_COLUMNS)} (one of points and "
                              f"delta may be left out); it names {', '.join(reader.fieldnames or []) or 'nothing'}. "
                              "Nothing stored")
    requests, problems = [], []
    for row in reader:
        where = f"{path.name}:{reader.line_num}"
        if len(requests) >= CSV_MAX_ROWS:
            raise AdjustmentError(f"{path}: over {CSV_MAX_ROWS} rows; split it. Nothing stored")
        if None in row:
            problems.append(f"{where}: more cells than the header has columns")
            continue
        cells = {k: (v or "") for k, v in row.items()}
        points = _number(cells.get("points", ""), "points", where, problems)
        delta = _number(cells.get("delta", ""), "delta", where, problems)
        requests.append(Request(submission=cells["submission"].strip(), item=cells["item"].strip(),
                                comment=cells["comment"].strip(), by=cells.get("by", "").strip() or by,
                                points=points, delta=delta, where=where))
    if problems:
        raise AdjustmentError(f"nothing stored: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))
    return requests
