"""How Canvas and Moodle read a grades file back, written down from their own source, so that the tests can say
whether an LMS accepts a file and what it would do with it (not only whether our own reader agrees with our writer).

Canvas: instructure/canvas-lms, app/models/gradebook_importer.rb (``GradebookImporter``: ``csv_stream``,
``identify_delimiter``, ``check_for_non_student_row``, ``process_header``, ``header?``, ``row_has_student_headers?``,
``update_column_count``, ``GRADEBOOK_IMPORTER_RESERVED_NAMES``, ``NON_ASSIGNMENT_COLUMN_HEADERS``,
``strip_non_assignment_columns``, ``parse_assignments``, ``process_pp``, ``process_student``,
``process_submissions``, ``no_score?``) and app/models/assignment.rb (``Assignment.title_and_id``:
``/\\A(.*)\\s\\((\\d+)\\)\\z/``). Custom gradebook columns, override columns and the LastName/FirstName header
(behind a feature flag) are not modelled.

Moodle: moodle/moodle, mod/assign/feedback/offline/importgradeslib.php (``assignfeedback_offline_grade_importer``:
``init`` finds the columns titled get_string('recordid', 'assign') = "Identifier", get_string('gradenoun') =
"Grade" and get_string('lastmodifiedgrade', 'assign') = "Last modified (grade)", and fails the import without any
of them; ``next`` strips strlen(get_string('hiddenuser', 'assign')) = strlen("Participant ") characters off the
identifier and keeps only rows of the assignment's participants), mod/assign/feedback/offline/locallib.php
(``process_import_grades``: a grade that is empty, below 0 or above the assignment's maximum is skipped, and so is
one changed in Moodle more than 60 s after the worksheet's "Last modified (grade)" unless "ignore modified" is
ticked) and mod/assign/gradingtable.php (``col_recordid``: "Participant " followed by the participant id).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime


class Refused(ValueError):
    """The LMS refuses the file as a whole (Canvas: "Invalid header row"; Moodle: "invalidgradeimport")."""


# --------------------------------------------------------------------------- Canvas

CANVAS_RESERVED = ("Student", "LastName", "FirstName", "ID", "SIS User ID", "SIS Login ID", "Section",
                   "Integration ID", "Root Account")
CANVAS_NON_ASSIGNMENT = ("Current Score", "Current Points", "Current Grade", "Final Score", "Final Points",
                         "Final Grade", "Override Score", "Override Grade", "Override Status")
TITLE_AND_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z")  # Ruby: /\A(.*)\s\((\d+)\)\z/, no /m


@dataclass
class CanvasAssignment:
    header: str
    title: str
    id: int | None
    """The course's assignment the column updates; None: Canvas creates a new assignment from it."""
    points_possible: str | None = None


@dataclass
class CanvasImport:
    assignments: list[CanvasAssignment]
    grades: dict[int, dict[int | None, str]] = field(default_factory=dict)
    """Known student id -> assignment id (None for a new one) -> the grade cell ('' or '-': no score)."""
    unknown_students: list[str] = field(default_factory=list)
    """Rows matched to no student of the course (Canvas lists them as students it will ignore)."""

    @property
    def new_assignments(self) -> list[str]:
        return [a.title for a in self.assignments if a.id is None]


def _canvas_delimiter(text: str) -> str:
    """``identify_delimiter`` on the first three lines: ';' where it gives more fields, consistently."""
    lines = text.splitlines()[:3]
    counts = {}
    for separator in (";", ","):
        sizes = {len(next(csv.reader([line], delimiter=separator), [])) for line in lines}
        counts[separator] = sizes.pop() if len(sizes) == 1 else 0
    return ";" if counts[";"] > counts[","] else ","


def canvas_import(text: str, *, course_assignments: dict[int, str],
                  students: dict[int, dict[str, str]]) -> CanvasImport:
    """What Canvas's gradebook import makes of ``text``.

    Args:
        course_assignments: the course's assignments, id -> title.
        students: the course's students, id -> {"name", "sortable_name", "sis_user_id", "sis_login_id"}.

    Raises:
        Refused: Canvas's "Invalid header row" (or a malformed CSV, which fails its job).
    """
    delimiter = _canvas_delimiter(text)
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
                if row and not re.fullmatch(r"[;, ]+", delimiter.join(row))]  # skip_lines: /^[;, ]+$/
    except csv.Error as error:
        raise Refused(f"did not parse cleanly: {error}") from None
    if not rows:
        raise Refused("Invalid header row")
    header = rows[0]
    # header? / row_has_student_headers?
    if not (len(header) > 3 and "Student" in header[0] and "ID" in header[1]):
        raise Refused("Invalid header row")
    # update_column_count: name, ID, then the SIS columns, then Section
    student_columns = 3
    sis_user_column = sis_login_column = None
    if re.search(r"SIS\s+Login\s+ID", header[2]):
        sis_login_column = 2
        student_columns += 1
    elif re.search(r"SIS\s+User\s+ID", header[2]) and len(header) > 3 and re.search(r"SIS\s+Login\s+ID", header[3]):
        extra = 1 if len(header) > 4 and re.search(r"Integration\s+ID", header[4]) else 0
        sis_user_column, sis_login_column = 2, 3
        student_columns += 2 + extra
        if len(header) > 4 + extra and re.search(r"Root\s+Account", header[4 + extra]):
            student_columns += 1
    if "Section" not in header[student_columns - 1]:
        raise Refused("Invalid header row")
    # strip_non_assignment_columns: the student columns, then any header containing a total's name
    non_assignment = re.compile("|".join(map(re.escape, CANVAS_NON_ASSIGNMENT)))
    assignments: list[CanvasAssignment] = []
    index_of: list[int] = []
    for index, name in enumerate(header[student_columns:], start=student_columns):
        if non_assignment.search(name):
            continue
        match = TITLE_AND_ID.match(name)
        title, assignment_id = (match.group(1), int(match.group(2))) if match else (name, None)
        if assignment_id not in course_assignments:  # parse_assignments: by id, then by the whole header as a title
            assignment_id = next((id_ for id_, t in course_assignments.items() if t == name), None)
        assignments.append(CanvasAssignment(header=name, title=title if match else name, id=assignment_id))
        index_of.append(index)
    result = CanvasImport(assignments=assignments)
    for row in rows[1:]:
        if "Points Possible" in row[0]:  # process_pp
            for assignment, index in zip(assignments, index_of):
                if index < len(row) and row[index]:
                    assignment.points_possible = row[index]
            continue
        if all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", cell, re.IGNORECASE) for cell in row):
            continue
        student_id = _canvas_student(row, students, sis_user_column, sis_login_column)
        if student_id is None:
            result.unknown_students.append(row[0])
            continue
        result.grades[student_id] = {a.id: (row[i].strip() if i < len(row) else "")
                                     for a, i in zip(assignments, index_of)}
    return result


def _canvas_student(row: list[str], students: dict[int, dict[str, str]], sis_user_column: int | None,
                    sis_login_column: int | None) -> int | None:
    """``process_student``: by ID, then SIS User ID, then SIS Login ID, then the name or sortable name."""
    cell = row[1].strip()
    if cell.isdigit() and int(cell) in students:
        return int(cell)
    for column, key in ((sis_user_column, "sis_user_id"), (sis_login_column, "sis_login_id")):
        if column is not None and column < len(row) and row[column]:
            found = next((id_ for id_, s in students.items() if s.get(key) and s[key] == row[column]), None)
            if found is not None:
                return found
    return next((id_ for id_, s in students.items() if row[0] in (s.get("name"), s.get("sortable_name"))), None)


def canvas_no_score(value: str) -> bool:
    """``no_score?``: blank or '-'."""
    return not value.strip() or value.strip() == "-"


# --------------------------------------------------------------------------- Moodle

MOODLE_PARTICIPANT = "Participant "


@dataclass
class MoodleImport:
    grades: dict[int, float] = field(default_factory=dict)
    """Participant id -> the grade Moodle sets."""
    skipped: dict[int, str] = field(default_factory=dict)
    """Participant id -> why Moodle keeps its grade (no value, out of range, modified since)."""
    ignored_rows: list[str] = field(default_factory=list)
    """Identifiers of no participant of the assignment: Moodle passes over them without a word."""


def moodle_import(text: str, *, participants: set[int], max_grade: float,
                  modified_in_moodle: dict[int, datetime] | None = None, ignore_modified: bool = False) -> MoodleImport:
    """What Moodle's offline grading worksheet import makes of ``text``.

    Raises:
        Refused: no Identifier, Grade or Last modified (grade) column ("invalidgradeimport").
    """
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    header = [name.strip() for name in rows[0]] if rows else []
    try:
        id_index, grade_index, modified_index = (header.index(name) for name in
                                                 ("Identifier", "Grade", "Last modified (grade)"))
    except ValueError:
        raise Refused("invalidgradeimport") from None
    result = MoodleImport()
    for row in rows[1:]:
        identifier = row[id_index]
        rest = identifier[len(MOODLE_PARTICIPANT):]  # substr($idstr, strlen(get_string('hiddenuser', 'assign')))
        if not rest.isdigit() or int(rest) not in participants:
            result.ignored_rows.append(identifier)
            continue
        participant = int(rest)
        text_grade = row[grade_index].strip()
        modified = _strtotime(row[modified_index])
        changed = (modified_in_moodle or {}).get(participant)
        stale = changed is not None and (modified is None or changed.timestamp() > modified.timestamp() + 60)
        grade = float(text_grade.replace(",", ".")) if re.fullmatch(r"-?\d+(?:[.,]\d+)?", text_grade) else None
        if grade is None or grade < 0:
            result.skipped[participant] = "no value"
        elif not ignore_modified and stale:
            result.skipped[participant] = "modified in Moodle since"
        elif grade > max_grade:
            result.skipped[participant] = "out of range"
        else:
            result.grades[participant] = grade
    return result


def _strtotime(text: str) -> datetime | None:
    """Enough of PHP's strtotime for the worksheet: '' (false) or Moodle's userdate, e.g. 'Monday, 5 May 2025,
    10:00 AM'."""
    text = text.strip()
    for pattern in ("%A, %d %B %Y, %I:%M %p", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None
