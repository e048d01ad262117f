"""The class's roster from the LMS: who is enrolled, under which LMS id, read from the LMS's own export.

Two exports are read (:func:`read_roster`), each as its LMS writes it:

- Canvas's gradebook export (Grades > Export > CSV): ``Student, ID, SIS User ID, SIS Login ID, Section`` (the SIS
  columns, ``Integration ID`` and ``Root Account`` where the account has them), then one column per assignment
  headed ``<name> (<Canvas assignment id>)``, then totals (``Current Score``...). A second row whose first cell
  holds ``Points Possible`` gives each assignment's points; a row of ``Muted`` / ``Manual Posting`` marks is
  skipped, and so is Canvas's test student (``Student, Test``). ``ID`` is the Canvas user id, the number that
  Canvas's submission downloads put in each file name (:mod:`grader.identity`).
- Moodle's offline grading worksheet of the assignment (View all submissions > Download grading worksheet):
  ``Identifier`` = ``Participant <id>``, the participant id that Moodle's submission downloads put in each file
  name, with ``Full name``, ``Email address``, ``Grade``, ``Maximum Grade`` and ``Last modified (grade)``. A Moodle
  participants export (first name, last name, email) holds no participant id, so it cannot be matched to file
  names and is refused with a message saying to download the worksheet instead.

A roster is read bounded (:data:`MAX_ROSTER_BYTES`, :data:`MAX_ROWS`, :data:`MAX_COLUMNS`) and validated: UTF-8,
the LMS's header, one row per id, ids of the LMS's form, no cell that a spreadsheet would run as a formula (a
gradebook export never holds one). It is kept in ``OUT/gradebook.sqlite`` (:func:`store_roster`), the whole roster
replaced by each import, since an export is the enrollment as it is now.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grader.student_files import StudentFileError, TooLarge, read_bytes
from grader.term.database import gradebook_path, open_gradebook

RosterLms = Literal["canvas", "moodle"]

MAX_ROSTER_BYTES = 8 * 1024 * 1024
"""A roster file larger than this is refused (a 5000-student Canvas export with 100 assignments is about 3 MB)."""
MAX_ROWS = 50_000
MAX_COLUMNS = 2_000

CANVAS_STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Root Account", "Section")
"""Canvas's student information columns (its importer's ``GRADEBOOK_IMPORTER_RESERVED_NAMES`` without the
LastName/FirstName variant): never assignments."""
CANVAS_TOTAL_COLUMNS = ("Current Score", "Current Points", "Current Grade", "Final Score", "Final Points",
                        "Final Grade", "Override Score", "Override Grade", "Override Status")
"""Headers Canvas's importer strips as totals (also with ``Unposted`` before them): never assignments."""
CANVAS_ASSIGNMENT_HEADER = re.compile(r"\A(.*)\s\((\d+)\)\Z")  # Ruby's \z is Python's \Z
"""How Canvas reads an assignment column's header (``Assignment.title_and_id``): the title, then the id in the
last parentheses."""
CANVAS_TEST_STUDENT = "Student, Test"
"""The name of the test student Canvas adds to a course (Student View)."""

MOODLE_IDENTIFIER = "Identifier"
MOODLE_PARTICIPANT = "Participant "
"""What Moodle writes before the participant id in ``Identifier`` (its English string ``hiddenuser``)."""
MOODLE_GRADE = "Grade"
MOODLE_MAX_GRADE = "Maximum Grade"
MOODLE_MODIFIED = "Last modified (grade)"
MOODLE_NAME = "Full name"
MOODLE_EMAIL = "Email address"
MOODLE_PARTICIPANTS_HEADERS = ("First name", "Last name", "Surname", "Email address", "ID number")
"""Headers of Moodle's participants export (no participant id): refused, with what to download instead."""

_FORMULA = re.compile(r"\A[\t\r\n ]*(?:=|@|[+-](?![\d.]|\Z))")
"""A cell a spreadsheet would run as a formula: ``=``, ``@``, or ``+``/``-`` not starting a number (a lone ``-``
is Canvas's "no score")."""


class RosterError(ValueError):
    """A roster file that cannot be used, or a grades export that cannot be made; the message says which file,
    where, and what to do."""


class RosterStudent(BaseModel):
    """One student on the roster, as the LMS export names them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str = Field(description="Canvas: the user id (column ID); Moodle: the participant id (the number in "
                         "Identifier 'Participant <id>'). The only key results are matched by.")
    name: str = Field(description="Canvas: Student (sortable name, 'Doe, Jane'); Moodle: Full name. Shown, never "
                      "matched on.")
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    email: str = Field("", description="Moodle: Email address.")
    grade_modified: str = Field("", description="Moodle: Last modified (grade), written back as read, so that "
                                "Moodle still skips a grade changed in Moodle after the worksheet was downloaded.")


class Roster(BaseModel):
    """The class as an LMS export lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lms: RosterLms
    source: str = Field(description="The file's name, as imported.")
    imported_at: str = Field(description="ISO 8601 in UTC.")
    students: list[RosterStudent]
    assignments: dict[str, str] = Field(default_factory=dict, description="Canvas: assignment title -> "
                                        "assignment id, from the headers '<title> (<id>)'.")
    points_possible: dict[str, float] = Field(default_factory=dict, description="Canvas: assignment id -> its "
                                              "points, from the Points Possible row.")
    max_grade: float | None = Field(None, description="Moodle: the assignment's Maximum Grade.")
    skipped: list[str] = Field(default_factory=list, description="Rows left out, in words (Canvas's test "
                               "student).")

    def student(self, user_id: str) -> RosterStudent | None:
        """The student with LMS id ``user_id``, or None."""
        return next((s for s in self.students if s.user_id == user_id), None)

    def assignment_id(self, title: str) -> str | None:
        """Canvas: the id of the assignment column titled ``title`` (compared without case or surrounding
        spaces), or None."""
        wanted = title.strip().casefold()
        return next((id_ for name, id_ in self.assignments.items() if name.strip().casefold() == wanted), None)


# --------------------------------------------------------------------------- reading

def read_roster(path: str | os.PathLike, lms: RosterLms | None = None) -> Roster:
    """Read and validate a Canvas gradebook export or a Moodle grading worksheet.

    Args:
        path: the CSV file the LMS exported.
        lms: which LMS's export it is; None: told from its header.

    Raises:
        RosterError: the file is too large, not UTF-8 CSV, not the named LMS's export, lacks a column, repeats an
            id, holds an id of the wrong form or a formula cell; the message names the file, row and column.
    """
    path = Path(path)
    rows = _read_rows(path)
    header = [cell.strip() for cell in rows[0]]
    found = _lms_of(header)
    if lms is None:
        if found is None:
            raise RosterError(f"{path}: neither a Canvas gradebook export (its header starts 'Student, ID') nor a "
                              f"Moodle grading worksheet (a column '{MOODLE_IDENTIFIER}'); the header is "
                              f"{_shown(header)}. {_moodle_hint(header)}".rstrip())
        lms = found
    _refuse_formulas(path, rows)
    if lms == "canvas":
        return _read_canvas(path, header, rows[1:])
    return _read_moodle(path, header, rows[1:])


def _read_rows(path: Path) -> list[list[str]]:
    """The file's rows, read bounded, as Canvas and Moodle read them (comma or semicolon, UTF-8, a BOM allowed)."""
    try:
        data = read_bytes(path, MAX_ROSTER_BYTES, "a roster export")
    except StudentFileError as error:  # a link, a folder, or over the size
        if not isinstance(error, TooLarge):
            raise RosterError(f"{path}: {error.problem}; give the exported file itself.") from None
        raise RosterError(f"{path}: larger than {MAX_ROSTER_BYTES // (1024 * 1024)} MiB, more than any class's "
                          f"export; is it the right file? Export the gradebook (Canvas) or the grading worksheet "
                          f"(Moodle) again.") from None
    except OSError as error:
        raise RosterError(f"{path}: cannot be read ({error.strerror or error}).") from None
    if b"\0" in data:
        raise RosterError(f"{path}: holds NUL bytes, so it is no CSV export; export the roster from the LMS again.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RosterError(f"{path}: not UTF-8 (byte {error.start}); Canvas and Moodle export UTF-8: export it "
                          f"again, or save it as 'CSV UTF-8' if a spreadsheet opened it.") from None
    if not text.strip():
        raise RosterError(f"{path}: empty; export the roster from the LMS again.")
    if not text.splitlines()[0].strip(" ,;"):
        raise RosterError(f"{path}: its first line is empty, where an LMS export has its header; export the roster "
                          f"from the LMS again.")
    first = text.splitlines()[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","  # Canvas exports with ';' in some locales
    csv.field_size_limit(64 * 1024)
    try:
        rows = []
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            if len(rows) >= MAX_ROWS:
                raise RosterError(f"{path}: more than {MAX_ROWS} rows; is it the right file?")
            if len(row) > MAX_COLUMNS:
                raise RosterError(f"{path}: row {len(rows) + 1} has {len(row)} columns, more than {MAX_COLUMNS}.")
            rows.append(row)  # empty ones too, so that row numbers in messages are the file's
    except csv.Error as error:
        raise RosterError(f"{path}: not a readable CSV ({error}); export the roster from the LMS again.") from None
    return rows


def _lms_of(header: list[str]) -> RosterLms | None:
    if len(header) > 3 and "Student" in header[0] and "ID" in header[1]:
        return "canvas"
    if MOODLE_IDENTIFIER in header:
        return "moodle"
    return None


def _moodle_hint(header: list[str]) -> str:
    if any(name in header for name in MOODLE_PARTICIPANTS_HEADERS):
        return ("It looks like a Moodle participants export, which holds no participant ids (the number Moodle puts "
                "in each submission's file name, and the only thing results are matched by). Download the "
                "assignment's grading worksheet instead (the assignment > View all submissions > Grading action > "
                "Download grading worksheet) and import that.")
    return ""


def _refuse_formulas(path: Path, rows: list[list[str]]) -> None:
    header = rows[0]
    for number, row in enumerate(rows, start=1):
        for index, cell in enumerate(row):
            if _FORMULA.match(cell):
                column = header[index] if index < len(header) else f"column {index + 1}"
                raise RosterError(f"{path}: row {number}, column '{column}' holds {cell[:40]!r}, which a spreadsheet "
                                  f"runs as a formula; an LMS export never holds one. Export the roster from the LMS "
                                  f"again instead of editing it in a spreadsheet.")


def _shown(cells: list[str], most: int = 12) -> str:
    return ", ".join(f"'{c}'" for c in cells[:most]) + (f" and {len(cells) - most} more" if len(cells) > most else "")


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _number(text: str) -> float | None:
    """A number as Canvas's and Moodle's exports write it (a decimal comma allowed); None where not a number."""
    text = text.strip()
    if re.fullmatch(r"-?\d+(?:[.,]\d+)?", text):
        return float(text.replace(",", "."))
    return None


def _read_canvas(path: Path, header: list[str], rows: list[list[str]]) -> Roster:
    if not (len(header) > 3 and "Student" in header[0] and "ID" in header[1]):
        raise RosterError(f"{path}: not a Canvas gradebook export: its header must start 'Student, ID' "
                          f"(it is {_shown(header, 5)}). Export it from the course's Grades > Export > CSV.")
    if "Section" not in header:
        raise RosterError(f"{path}: no 'Section' column, which every Canvas gradebook export has (the header is "
                          f"{_shown(header)}); export it again from Grades > Export > CSV.")
    column = {name: header.index(name) for name in CANVAS_STUDENT_COLUMNS if name in header}
    last_info = max(column.values())
    assignments: dict[str, str] = {}
    assignment_index: dict[str, int] = {}
    totals = re.compile("|".join(map(re.escape, CANVAS_TOTAL_COLUMNS)))
    for index, name in enumerate(header[last_info + 1:], start=last_info + 1):
        match = CANVAS_ASSIGNMENT_HEADER.match(name)
        if match and not totals.search(name):
            title, assignment_id = match.group(1).strip(), match.group(2)
            if assignment_id in assignment_index or title in assignments:
                raise RosterError(f"{path}: the assignment column {name!r} appears twice; export it again.")
            assignments[title] = assignment_id
            assignment_index[assignment_id] = index
    points: dict[str, float] = {}
    students: list[RosterStudent] = []
    skipped: list[str] = []
    seen: dict[str, int] = {}

    def cell(row: list[str], name: str) -> str:
        return row[column[name]].strip() if name in column and column[name] < len(row) else ""

    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        if "Points Possible" in row[0]:
            for assignment_id, index in assignment_index.items():
                value = _number(row[index]) if index < len(row) else None
                if value is not None:
                    points[assignment_id] = value
            continue
        if all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", c, re.IGNORECASE) for c in row):
            continue
        name, user_id = cell(row, "Student"), cell(row, "ID")
        if name == CANVAS_TEST_STUDENT:
            skipped.append(f"row {number}: Canvas's test student (ID {user_id or 'none'})")
            continue
        if not re.fullmatch(r"\d{1,20}", user_id):
            raise RosterError(f"{path}: row {number} ({name or 'no name'}): ID is {user_id!r}, not a Canvas user "
                              f"id (digits); every student row of a Canvas export has one. Export it again.")
        if user_id in seen:
            raise RosterError(f"{path}: rows {seen[user_id]} and {number} both have ID {user_id}; a Canvas export "
                              f"lists each student once. Export it again.")
        seen[user_id] = number
        students.append(RosterStudent(user_id=user_id, name=name, sis_user_id=cell(row, "SIS User ID"),
                                      sis_login_id=cell(row, "SIS Login ID"), section=cell(row, "Section")))
    if not students:
        raise RosterError(f"{path}: a Canvas gradebook export without a single student row.")
    return Roster(lms="canvas", source=path.name, imported_at=_now(), students=students, assignments=assignments,
                  points_possible=points, skipped=skipped)


def _read_moodle(path: Path, header: list[str], rows: list[list[str]]) -> Roster:
    required = (MOODLE_IDENTIFIER, MOODLE_GRADE, MOODLE_MODIFIED)  # the columns Moodle's import needs
    absent = [name for name in required if name not in header]
    if absent:
        raise RosterError(f"{path}: not a Moodle grading worksheet: no {', '.join(repr(a) for a in absent)} "
                          f"column (the header is {_shown(header)}). {_moodle_hint(header)} The worksheet is "
                          f"read in English: set your Moodle language to English before downloading it.".rstrip())
    index = {name: header.index(name) for name in
             (MOODLE_IDENTIFIER, MOODLE_NAME, MOODLE_EMAIL, MOODLE_MAX_GRADE, MOODLE_MODIFIED) if name in header}

    def cell(row: list[str], name: str) -> str:
        return row[index[name]].strip() if name in index and index[name] < len(row) else ""

    students: list[RosterStudent] = []
    seen: dict[str, int] = {}
    maxima: set[float] = set()
    for number, row in enumerate(rows, start=2):
        if not any(c.strip() for c in row):  # an empty line
            continue
        identifier = cell(row, MOODLE_IDENTIFIER)
        match = re.fullmatch(re.escape(MOODLE_PARTICIPANT.strip()) + r"\s(\d{1,20})", identifier)
        if not match:
            raise RosterError(f"{path}: row {number}: Identifier is {identifier!r}, not 'Participant <id>' as "
                              f"Moodle's worksheet writes it. Download the grading worksheet again.")
        user_id = match.group(1)
        if user_id in seen:
            raise RosterError(f"{path}: rows {seen[user_id]} and {number} are both {identifier}; Moodle lists each "
                              f"participant once. Download the grading worksheet again.")
        seen[user_id] = number
        maximum = _number(cell(row, MOODLE_MAX_GRADE))
        if maximum is not None:
            maxima.add(maximum)
        students.append(RosterStudent(user_id=user_id, name=cell(row, MOODLE_NAME), email=cell(row, MOODLE_EMAIL),
                                      grade_modified=cell(row, MOODLE_MODIFIED)))
    if not students:
        raise RosterError(f"{path}: a Moodle grading worksheet without a single participant.")
    if len(maxima) > 1:
        raise RosterError(f"{path}: the rows give different Maximum Grades ({sorted(maxima)}); one assignment has "
                          f"one. Download the grading worksheet again.")
    return Roster(lms="moodle", source=path.name, imported_at=_now(), students=students,
                  max_grade=maxima.pop() if maxima else None)


# --------------------------------------------------------------------------- the gradebook

_SCHEMA = """
CREATE TABLE IF NOT EXISTS roster (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    roster TEXT NOT NULL            -- the Roster as JSON
);
CREATE TABLE IF NOT EXISTS roster_students (
    user_id TEXT PRIMARY KEY,       -- Canvas user id or Moodle participant id
    lms TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL       -- the row's place in the export
);
"""


def store_roster(out_dir: str | os.PathLike, roster: Roster) -> None:
    """Keep ``roster`` in ``OUT/gradebook.sqlite``, replacing any roster before it (in one transaction)."""
    with contextlib.closing(open_gradebook(Path(out_dir))) as db, db:
        db.executescript(_SCHEMA)
        db.execute("DELETE FROM roster_students")
        db.execute("INSERT OR REPLACE INTO roster (id, roster) VALUES (1, ?)", (roster.model_dump_json(),))
        db.executemany("INSERT INTO roster_students (user_id, lms, name, position) VALUES (?, ?, ?, ?)",
                       [(s.user_id, roster.lms, s.name, n) for n, s in enumerate(roster.students)])


def load_roster(out_dir: str | os.PathLike) -> Roster | None:
    """The roster kept in ``OUT/gradebook.sqlite``; None where none was imported."""
    path = Path(out_dir)
    if not gradebook_path(path).is_file():
        return None
    with contextlib.closing(open_gradebook(path)) as db:
        try:
            row = db.execute("SELECT roster FROM roster WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # no roster table: none imported
            return None
    return Roster.model_validate(json.loads(row[0])) if row else None


def import_roster(out_dir: str | os.PathLike, path: str | os.PathLike, lms: RosterLms | None = None) -> Roster:
    """Read ``path`` (:func:`read_roster`) and keep it as OUT's roster; returns it. Raises :class:`RosterError`."""
    roster = read_roster(path, lms)
    store_roster(out_dir, roster)
    return roster
