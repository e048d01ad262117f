"""When each submission was handed in: read from a file the LMS exports or from ``grade --submitted-at``, kept in
``OUT/gradebook.sqlite`` (table ``submission_times``) and read back by :mod:`grader.term.late` and the attempts
policy.

The files understood (:func:`read_times_file`, told apart by their header):

- Moodle's assignment grading worksheet ("Download grading worksheet"): columns ``Identifier``
  ("Participant 12345"), ``Full name``, ``Last modified (submission)`` ("Monday, 30 November 2026, 4:05 PM", in
  the Moodle site's time zone: pass it as ``timezone``, e.g. "Europe/Berlin"; "-" where nothing was handed in).
  A participant's time is kept for the student (key ``moodle:12345``), whom Moodle's file names name by the same
  participant id (:mod:`grader.identity`).
- A generic CSV ``submission,submitted_at``: ``submission`` is a zip's file name (as the LMS named it) or a
  submission id (``doe_12345``, ``doe_12345~2``); ``submitted_at`` ISO 8601 with a UTC offset
  ("2026-12-04T23:59:00-05:00", or Z for UTC).

Canvas's submission download carries no time, only ``_LATE`` in the file names of work handed in after Canvas's
due date (:attr:`grader.identity.LmsIdentity.late`), which :mod:`grader.term.late` flags for review. For Canvas,
write the generic CSV from the API's ``submitted_at`` of each submission (``GET /api/v1/courses/:course_id/
assignments/:assignment_id/submissions``), naming each row by the zip's file name.

Keys in the table: a file name without ``.zip`` (``file:doe_LATE_12345_67890_hw3``), a submission id
(``doe_12345``), or an LMS's student (``moodle:12345``); :func:`submission_time` looks a result up in that order.
The file comes from outside: it is read bounded (:data:`MAX_BYTES`, :data:`MAX_ROWS`, :data:`MAX_CELL`) and a cell
that a spreadsheet would run as a formula, a date it cannot read, or a row it cannot place is refused with its
line (:class:`SubmissionTimesError`).
"""
from __future__ import annotations

import contextlib
import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from grader.identity import identify
from grader.student_files import StudentFileError, TooLarge, read_bytes
from grader.term.database import gradebook_path, open_gradebook

if TYPE_CHECKING:
    from grader.results import SubmissionResult

MAX_BYTES = 5 * 1024 * 1024
"""The largest times file read (a worksheet of a few thousand students is well under 1 MiB)."""
MAX_ROWS = 20_000
"""The most rows (besides the header) a times file may have."""
MAX_CELL = 1_000
"""The longest cell read, in characters."""
MOODLE_FORMAT = "%A, %d %B %Y, %I:%M %p"
"""Moodle's date in its worksheet (its ``strftimedatetime``, English): "Monday, 30 November 2026, 4:05 PM"."""
MOODLE_COLUMNS = ("Identifier", "Last modified (submission)")
GENERIC_COLUMNS = ("submission", "submitted_at")
_FORMULA_START = ("=", "+", "@", "\t", "\r")
_SCHEMA = """CREATE TABLE IF NOT EXISTS submission_times (
    key TEXT PRIMARY KEY,      -- file:<zip name without .zip>, a submission id, or <lms>:<LMS user id>
    submitted_at TEXT NOT NULL, -- ISO 8601 with UTC offset
    origin TEXT NOT NULL       -- where it came from: "worksheet.csv:4", "--submitted-at"
)"""


class SubmissionTimesError(ValueError):
    """A times file or ``--submitted-at`` value the grader will not read; the message names the file and line."""


@dataclass(frozen=True)
class SubmissionTime:
    """One submission's (or one student's) time of handing in."""

    key: str
    """``file:<zip name without .zip>``, a submission id, or ``<lms>:<user id>`` (see the module's notes)."""
    submitted_at: datetime
    """Aware (with its UTC offset)."""
    origin: str
    """Where it was read: ``FILE:LINE`` or ``--submitted-at``."""


def key_of(submission: str) -> str:
    """The table's key for a name a person wrote: a zip's (or LMS file's) name gives ``file:<name without .zip>``,
    anything else is taken as a submission id."""
    name = submission.strip()
    if name.lower().endswith(".zip") or identify(name).matched:
        return "file:" + (name[:-4] if name.lower().endswith(".zip") else name)
    return name


def parse_iso(text: str, where: str) -> datetime:
    """An ISO 8601 time with its UTC offset; :class:`SubmissionTimesError` naming ``where`` otherwise."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SubmissionTimesError(f"{where}: {text[:80]!r} is not an ISO 8601 time; write it as e.g. "
                                   "\"2026-12-04T23:59:00-05:00\" (or with Z for UTC)") from None
    if when.tzinfo is None:
        raise SubmissionTimesError(f"{where}: {text[:80]!r} has no UTC offset; write it as e.g. "
                                   "\"2026-12-04T23:59:00-05:00\" (or with Z for UTC)")
    return when


def parse_moodle_time(text: str, zone: ZoneInfo, where: str) -> datetime:
    """A Moodle worksheet date ("Monday, 30 November 2026, 4:05 PM") in the site's time zone ``zone``."""
    try:
        return datetime.strptime(" ".join(text.split()), MOODLE_FORMAT).replace(tzinfo=zone)
    except ValueError:
        raise SubmissionTimesError(f"{where}: {text[:80]!r} is not a Moodle date like \"Monday, 30 November 2026, "
                                   "4:05 PM\" (set the Moodle user's language to English before downloading the "
                                   "worksheet, or write a generic submission,submitted_at CSV)") from None


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` ("UTC", "Europe/Berlin"); :class:`SubmissionTimesError` naming it otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SubmissionTimesError(f"{name!r} is not a time zone name; give an IANA name such as \"UTC\", "
                                   "\"America/Toronto\" or \"Europe/Berlin\"") from None


def parse_assignment(text: str) -> SubmissionTime:
    """``NAME=WHEN`` of ``--submitted-at``: a zip's file name (or a submission id) and an ISO 8601 time with its
    UTC offset."""
    name, sep, when = text.rpartition("=")
    if not sep or not name.strip():
        raise SubmissionTimesError(f"--submitted-at {text[:80]!r}: write NAME=WHEN, e.g. "
                                   "doe_12345_67890_hw3.zip=2026-12-05T10:00:00-05:00, or give a CSV file")
    return SubmissionTime(key_of(name), parse_iso(when, f"--submitted-at {name.strip()[:80]!r}"), "--submitted-at")


def read_times_file(path: Path, timezone_name: str = "UTC") -> list[SubmissionTime]:
    """Every time in a Moodle grading worksheet or a generic ``submission,submitted_at`` CSV (module notes).

    Args:
        path: the CSV (UTF-8, with or without a byte order mark).
        timezone_name: the Moodle site's time zone, in which the worksheet's dates are written (IANA name).
    Raises:
        SubmissionTimesError: the file is too large, has too many rows, an unknown header, a formula cell, a date
            that cannot be read or a row without a submission; the message names the file and line.
    """
    path = Path(path)
    zone = time_zone(timezone_name)
    try:
        raw = read_bytes(path, MAX_BYTES, "a times file")
    except StudentFileError as error:  # a link, a folder, or over the size
        if not isinstance(error, TooLarge):
            raise SubmissionTimesError(f"{path}: {error.problem}; give the exported file itself") from None
        raise SubmissionTimesError(f"{path}: larger than {MAX_BYTES:,} bytes; a times file lists one line per "
                                   "submission, so this is not one") from None
    except OSError as error:
        raise SubmissionTimesError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise SubmissionTimesError(f"{path}:{line}: not UTF-8 text; save the file as CSV UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if len(rows) > MAX_ROWS:
                raise SubmissionTimesError(f"{path}:{reader.line_num}: more than {MAX_ROWS} rows; a times file "
                                           "lists one line per submission")
            rows.append((reader.line_num, row))
    except csv.Error as error:
        raise SubmissionTimesError(f"{path}:{reader.line_num}: not a CSV row ({error})") from None
    rows = [(line, row) for line, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise SubmissionTimesError(f"{path}: empty; expected a Moodle grading worksheet or a CSV with the header "
                                   "submission,submitted_at")
    header_line, header = rows[0]
    header = [cell.strip() for cell in header]
    if all(column in header for column in MOODLE_COLUMNS):
        return _moodle_times(path, header, rows[1:], zone)
    if all(column in header for column in GENERIC_COLUMNS):
        return _generic_times(path, header, rows[1:])
    raise SubmissionTimesError(
        f"{path}:{header_line}: header {', '.join(header)[:200]!r} is neither a Moodle grading worksheet's (with "
        f"{' and '.join(repr(c) for c in MOODLE_COLUMNS)}) nor a generic times file's (submission,submitted_at)")


def _cells(path: Path, line: int, header: list[str], row: list[str], columns: tuple[str, ...]) -> dict[str, str]:
    """The named cells of one row, checked: present, not too long, not a formula."""
    if len(row) != len(header):
        raise SubmissionTimesError(f"{path}:{line}: {len(row)} cells where the header has {len(header)}")
    cells = {}
    for column in columns:
        cell = row[header.index(column)]
        if len(cell) > MAX_CELL:
            raise SubmissionTimesError(f"{path}:{line}: column {column!r} is longer than {MAX_CELL} characters")
        if cell.startswith(_FORMULA_START) or re.match(r"-\s*[^\d\s]", cell):
            raise SubmissionTimesError(f"{path}:{line}: column {column!r} holds a spreadsheet formula "
                                       f"({cell[:40]!r}); a times file holds names and dates only")
        cells[column] = cell.strip()
    return cells


def _moodle_times(path: Path, header: list[str], rows: list[tuple[int, list[str]]],
                  zone: ZoneInfo) -> list[SubmissionTime]:
    columns = ("Identifier", "Last modified (submission)") + (("Full name",) if "Full name" in header else ())
    times = []
    for line, row in rows:
        cells = _cells(path, line, header, row, columns)
        match = re.fullmatch(r"Participant\s+(\d+)", cells["Identifier"])
        if not match:
            raise SubmissionTimesError(f"{path}:{line}: Identifier {cells['Identifier'][:80]!r} is not "
                                       "\"Participant <number>\" as Moodle writes it")
        when = cells["Last modified (submission)"]
        if when in ("", "-"):  # nothing handed in
            continue
        times.append(SubmissionTime(f"moodle:{match.group(1)}", parse_moodle_time(when, zone, f"{path}:{line}"),
                                    f"{path.name}:{line}"))
    return times


def _generic_times(path: Path, header: list[str], rows: list[tuple[int, list[str]]]) -> list[SubmissionTime]:
    times = []
    for line, row in rows:
        cells = _cells(path, line, header, row, GENERIC_COLUMNS)
        if not cells["submission"]:
            raise SubmissionTimesError(f"{path}:{line}: no submission named; write the zip's file name or the "
                                       "submission id")
        times.append(SubmissionTime(key_of(cells["submission"]), parse_iso(cells["submitted_at"], f"{path}:{line}"),
                                    f"{path.name}:{line}"))
    return times


def store_times(out_dir: Path, times: list[SubmissionTime]) -> int:
    """Keep ``times`` in ``OUT/gradebook.sqlite``, each replacing an earlier time of its key; the number kept."""
    with contextlib.closing(open_gradebook(out_dir)) as db, db:
        db.execute(_SCHEMA)
        db.executemany("INSERT OR REPLACE INTO submission_times (key, submitted_at, origin) VALUES (?, ?, ?)",
                       [(t.key, t.submitted_at.isoformat(), t.origin) for t in times])
    return len(times)


def submitted_at(out_dir: Path) -> dict[str, datetime]:
    """Every stored time by its key (``file:<zip name>``, submission id, ``<lms>:<user id>``); empty where
    ``OUT`` has no gradebook. Look a result up with :func:`submission_time`."""
    if not gradebook_path(out_dir).is_file():
        return {}
    with contextlib.closing(open_gradebook(out_dir)) as db, db:
        db.execute(_SCHEMA)
        rows = db.execute("SELECT key, submitted_at FROM submission_times").fetchall()
    return {key: datetime.fromisoformat(when) for key, when in rows}


def submission_time(times: dict[str, datetime], result: SubmissionResult) -> datetime | None:
    """When ``result``'s submission was handed in, from :func:`submitted_at`'s ``times``: by its zip's file name,
    else its submission id, else its LMS student's (Moodle's worksheet gives one time per student, its latest
    change, which then holds for each of the student's files); None where unknown."""
    name = Path(result.source).name
    stem = name[:-4] if name.lower().endswith(".zip") else name
    for key in (f"file:{stem}", result.submission_id):
        if key in times:
            return times[key]
    identity = result.identity
    if identity.matched:
        return times.get(f"{identity.lms}:{identity.user_id}")
    return None
