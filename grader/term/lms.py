"""Grades files an LMS imports back, made from the results and the roster (:mod:`grader.term.roster`).

Results are matched to roster rows by LMS id only (:func:`match_roster`): the Canvas user id or Moodle participant
id in the submission's file name (:mod:`grader.identity`), never a name. A student on the roster without a result
that counts gets a blank grade (0 with ``missing_as_zero``); a result whose id is not on the roster is reported,
never written.

- Canvas (:func:`canvas_grades_csv`): ``Student, ID, SIS User ID, SIS Login ID, Section`` then one column named
  ``<assignment name> (<Canvas assignment id>)``: Canvas's importer reads the number in the last parentheses as
  the assignment's id, and makes a new assignment of any column whose id it does not know. The ``Points
  Possible`` row gives the assignment's points (Canvas sets the assignment's points from it).
- Moodle (:func:`moodle_worksheet_csv`): the assignment's offline grading worksheet, ``Identifier`` =
  ``Participant <id>``, ``Grade``, ``Maximum Grade`` and ``Last modified (grade)`` (as the imported worksheet gave
  it, so that Moodle still keeps a grade changed in Moodle since). No feedback column: Moodle would replace the
  feedback it holds with the column's text.
- The instructor's per-item points (:func:`items_csv`): one column per rubric item; never for an LMS (its header
  is no gradebook's, so Canvas refuses it rather than making an assignment of each item).

Text a student or an LMS chose (names, ids, sections) is escaped against formulas
(:func:`grader.report.exports.text_cell`).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Iterable

from grader.report.exports import CANVAS_IDENTITY, text_cell
from grader.results import SubmissionResult
from grader.rubric import Rubric
from grader.term.roster import (MOODLE_EMAIL, MOODLE_GRADE, MOODLE_IDENTIFIER, MOODLE_MAX_GRADE, MOODLE_MODIFIED,
                                MOODLE_NAME, MOODLE_PARTICIPANT, Roster, RosterError, RosterStudent)

CANVAS_GRADES_NAME = "canvas-grades.csv"
MOODLE_GRADES_NAME = "moodle-grades.csv"
ITEMS_NAME = "items.csv"
LMS_FOLDER = "lms"
"""``OUT/lms/``: the files these functions make (written by ``grade roster export``)."""


def points_text(value: float) -> str:
    """Points as both LMSs read them: a decimal point, at most two decimals, no exponent (``87.5``, ``100``)."""
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def final_total(result: SubmissionResult) -> float:
    """The points a result counts for: the term's total (adjustments, lateness) where finalised, else the grading's."""
    return result.term.total if result.term else result.total


def counts(result: SubmissionResult) -> bool:
    """Whether ``result`` is the attempt that counts for its student (every result does before finalising)."""
    return result.term.counts if result.term else True


@dataclass
class RosterMatch:
    """Results against the roster, by LMS id."""

    results: dict[str, SubmissionResult] = field(default_factory=dict)
    """LMS id -> the result that counts for that roster student."""
    missing: list[RosterStudent] = field(default_factory=list)
    """Roster students without a result that counts: a blank grade (0 with missing_as_zero)."""
    unmatched: list[SubmissionResult] = field(default_factory=list)
    """Counting results whose LMS id is not on the roster (or whose file name names no student): never written."""
    problems: list[str] = field(default_factory=list)
    """What else a person should know, in words (two counting results for one student, a grader error)."""

    def grade(self, student: RosterStudent, missing_as_zero: bool) -> str:
        """The grade cell of ``student``: the counting result's points; blank (or 0) without one or after a grader
        error, which is no grade."""
        result = self.results.get(student.user_id)
        if result is None or result.status == "grader_error":
            return "0" if missing_as_zero and result is None else ""
        return points_text(final_total(result))

    def summary(self) -> str:
        """One line: how many matched, missing and unmatched."""
        return (f"{len(self.results)} student(s) with a grade, {len(self.missing)} on the roster without a "
                f"submission, {len(self.unmatched)} result(s) not on the roster")


def match_roster(results: Iterable[SubmissionResult], roster: Roster) -> RosterMatch:
    """Match each counting result to the roster student with its LMS id (``result.identity``), never by name.

    Where two counting results name one student (attempts not finalised), the later attempt is taken and a
    problem says so.
    """
    match = RosterMatch()
    on_roster = {s.user_id for s in roster.students}
    for result in sorted(results, key=lambda r: (r.attempt, r.submission_id)):
        if not counts(result):
            continue
        identity = result.identity
        if identity.lms != roster.lms or identity.user_id not in on_roster:
            match.unmatched.append(result)
            continue
        earlier = match.results.get(identity.user_id)
        if earlier is not None:
            match.problems.append(f"{roster.lms} id {identity.user_id}: {earlier.submission_id} and "
                                  f"{result.submission_id} both count; {result.submission_id} (the later attempt) is "
                                  f"written. Finalise the attempts (the rubric's [term] attempts) to choose by policy.")
        match.results[identity.user_id] = result
    for user_id, result in match.results.items():
        if result.status == "grader_error":
            match.problems.append(f"{roster.lms} id {user_id} ({result.submission_id}): the grader failed on it, so "
                                  f"its grade is left blank; grade it again.")
    match.missing = [s for s in roster.students if s.user_id not in match.results]
    return match


def _csv(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def canvas_assignment_id(roster: Roster, title: str, given: str | None = None) -> str:
    """The Canvas assignment id to write: ``given`` (``--canvas-assignment``), else the roster export's column
    titled ``title``.

    Raises:
        RosterError: neither; the message lists the assignment columns the roster export has.
    """
    if given is not None:
        if not given.strip().isdigit():
            raise RosterError(f"--canvas-assignment {given!r}: a Canvas assignment id is a number (the one in the "
                              f"assignment's address, /courses/N/assignments/ID).")
        return given.strip()
    found = roster.assignment_id(title)
    if found is None:
        columns = ", ".join(f"'{name} ({id_})'" for name, id_ in roster.assignments.items()) or "none"
        raise RosterError(f"the Canvas roster ({roster.source}) has no assignment column titled {title!r}; its "
                          f"assignment columns: {columns}. Give the assignment's id with --canvas-assignment ID, or "
                          f"name the Canvas assignment as the rubric's title and export the gradebook again.")
    return found


def canvas_grades_csv(results: Iterable[SubmissionResult], roster: Roster, *, assignment_name: str,
                      assignment_id: str, points_possible: float, missing_as_zero: bool = False) -> str:
    """The CSV Canvas's gradebook import takes back: every roster student, one assignment column.

    Args:
        results: the graded results (only those that count are written).
        roster: a Canvas roster (:func:`grader.term.roster.read_roster`).
        assignment_name: the assignment's title (the roster's title for ``assignment_id`` is used where it has one).
        assignment_id: the Canvas assignment id (:func:`canvas_assignment_id`).
        points_possible: the assignment's points, for the Points Possible row.
        missing_as_zero: a student without a submission gets 0 instead of a blank.
    """
    if roster.lms != "canvas":
        raise RosterError(f"the roster ({roster.source}) is Moodle's; a Canvas grades file needs a Canvas roster: "
                          f"grade roster import OUT GRADEBOOK.csv --lms canvas")
    if not str(assignment_id).isdigit():
        raise RosterError(f"Canvas assignment id {assignment_id!r} is not a number.")
    title = next((name for name, id_ in roster.assignments.items() if id_ == str(assignment_id)), assignment_name)
    match = match_roster(results, roster)
    rows = [[*CANVAS_IDENTITY, f"{title} ({assignment_id})"],
            ["    Points Possible", "", "", "", "", points_text(points_possible)]]
    for student in roster.students:
        rows.append([text_cell(student.name), student.user_id, text_cell(student.sis_user_id),
                     text_cell(student.sis_login_id), text_cell(student.section),
                     match.grade(student, missing_as_zero)])
    return _csv(rows)


def moodle_worksheet_csv(results: Iterable[SubmissionResult], roster: Roster, *, max_grade: float,
                         missing_as_zero: bool = False) -> str:
    """The offline grading worksheet Moodle's assignment imports back: every roster participant.

    Args:
        results: the graded results (only those that count are written).
        roster: a Moodle roster (the assignment's grading worksheet).
        max_grade: the assignment's maximum grade (Moodle skips a grade above it).
        missing_as_zero: a participant without a submission gets 0 instead of a blank (which Moodle skips).

    Raises:
        RosterError: the roster is Canvas's, or a grade is above ``max_grade`` (Moodle would skip it silently).
    """
    if roster.lms != "moodle":
        raise RosterError(f"the roster ({roster.source}) is Canvas's; a Moodle worksheet needs a Moodle roster: "
                          f"grade roster import OUT WORKSHEET.csv --lms moodle")
    match = match_roster(results, roster)
    rows = [[MOODLE_IDENTIFIER, MOODLE_NAME, MOODLE_EMAIL, MOODLE_GRADE, MOODLE_MAX_GRADE, MOODLE_MODIFIED]]
    for student in roster.students:
        grade = match.grade(student, missing_as_zero)
        if grade and float(grade) > max_grade + 1e-9:
            raise RosterError(f"participant {student.user_id} ({student.name}): {grade} points, above the Moodle "
                              f"assignment's maximum grade {points_text(max_grade)}, which Moodle's import skips "
                              f"without a word. Set the assignment's maximum grade to the rubric's total.")
        rows.append([f"{MOODLE_PARTICIPANT}{student.user_id}", text_cell(student.name), text_cell(student.email),
                     grade, points_text(max_grade), text_cell(student.grade_modified)])
    return _csv(rows)


def items_csv(results: Iterable[SubmissionResult], roster: Roster, rubric: Rubric | None = None) -> str:
    """The instructor's per-item points: one row per roster student (then each result not on the roster), one column
    per rubric item headed ``<item id> (<max>)``, the total. Adjusted points where a person adjusted an item.

    Its first column is ``Name``, not Canvas's ``Student``, so that Canvas refuses the file if it is uploaded by
    mistake instead of creating an assignment per item.
    """
    results = list(results)
    match = match_roster(results, roster)
    if rubric is not None:
        columns = [(item.id, item.points) for item in rubric.items]
    else:
        seen: dict[str, float] = {}
        for result in results:
            for item in result.items:
                seen.setdefault(item.id, item.max_points)
        columns = list(seen.items())
    total_max = rubric.rubric.total_points if rubric else max((r.max_total for r in results), default=0.0)
    rows = [["Name", "LMS ID", "Submission", "Status", *(f"{i} ({points_text(p)})" for i, p in columns),
             f"Total ({points_text(total_max)})", "Note"]]

    def row(name: str, user_id: str, result: SubmissionResult | None, note: str) -> list[str]:
        if result is None:
            return [text_cell(name), text_cell(user_id), "", "", *([""] * len(columns)), "", note]
        items = {item.id: item for item in result.items}
        cells = []
        for item_id, _ in columns:
            item = items.get(item_id)
            cells.append("" if item is None else
                         points_text(item.adjustment.points if item.adjustment else item.points))
        total = "" if result.status == "grader_error" else points_text(final_total(result))
        return [text_cell(name), text_cell(user_id), result.submission_id, result.status, *cells, total, note]

    for student in roster.students:
        result = match.results.get(student.user_id)
        rows.append(row(student.name, student.user_id, result, "" if result else "no submission"))
    for result in match.unmatched:
        rows.append(row(result.student_label, result.identity.user_id, result,
                        "not on the roster" if result.identity.lms else "file name names no student"))
    return _csv(rows)
