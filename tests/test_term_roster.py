"""Rosters both ways: a Canvas gradebook export and a Moodle grading worksheet in (``grade roster import``), the
grades file out (``grade roster export``), read back by the LMS's own import rules (:mod:`tests.lms_importers`),
not only by our reader; today's ``grades.csv`` header shown to be read by Canvas as assignment 100; hostile
rosters refused with messages."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from grader.commands import roster as roster_command
from grader.report.exports import grades_csv
from grader.results import ItemResult, SubmissionResult
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from grader.term.lms import canvas_grades_csv, match_roster, moodle_worksheet_csv
from grader.term.roster import MAX_ROSTER_BYTES, RosterError, load_roster, read_roster
from tests.lms_importers import Refused, canvas_import, canvas_no_score, moodle_import

RUBRIC = load_rubric(DEFAULT_RUBRIC)
TITLE = RUBRIC.rubric.title  # "Develop a Basic Audio Generative Model"
ASSIGNMENT_ID = 4711

CANVAS_EXPORT = f"""\
Student,ID,SIS User ID,SIS Login ID,Section,Week 1 reading quiz (100),{TITLE} ({ASSIGNMENT_ID}),Current Score,\
Unposted Current Score,Final Score
    Points Possible,,,,,5.00,100.00,(read only),(read only),(read only)
,,,,,,Manual Posting,,,
"Doe, Jane",12345,S001,jdoe,Audio ML 2026,5.00,,100,100,5.00
"Roe, Rick",23456,S002,rroe,Audio ML 2026,4.00,,80,80,4.00
"Poe, Ann",34567,S003,apoe,Audio ML 2026,,,,,
"Student, Test",99001,,,Audio ML 2026,,,,,
"""
CANVAS_STUDENTS = {
    12345: {"name": "Jane Doe", "sortable_name": "Doe, Jane", "sis_user_id": "S001", "sis_login_id": "jdoe"},
    23456: {"name": "Rick Roe", "sortable_name": "Roe, Rick", "sis_user_id": "S002", "sis_login_id": "rroe"},
    34567: {"name": "Ann Poe", "sortable_name": "Poe, Ann", "sis_user_id": "S003", "sis_login_id": "apoe"},
}
COURSE_ASSIGNMENTS = {100: "Week 1 reading quiz", ASSIGNMENT_ID: TITLE}

MOODLE_WORKSHEET = """\
Identifier,"Full name","Email address",Status,Grade,"Maximum Grade","Grade can be changed",\
"Last modified (submission)","Last modified (grade)","Feedback comments"
"Participant 4401","Jane Doe",jane@example.edu,"Submitted for grading",,100.00,Yes,"Monday, 4 May 2026, 9:00 AM",-,
"Participant 4402","Rick Roe",rick@example.edu,"No submission",,100.00,Yes,-,-,
"Participant 4403","Ann Poe",ann@example.edu,"Submitted for grading",,100.00,Yes,"Monday, 4 May 2026, 9:30 AM",\
"Monday, 4 May 2026, 10:00 AM",
"""


def make_result(out: Path, source: str, total: float, *, submission_id: str | None = None, attempt: int = 1,
                status: str = "graded") -> SubmissionResult:
    """A result written into OUT/results as grading writes it: the bundled rubric's items, scaled to ``total``."""
    share = total / RUBRIC.rubric.total_points
    items = [ItemResult(id=item.id, title=item.title, checklist=item.checklist, points=round(item.points * share, 2),
                        max_points=item.points, status="partial", explanation="scaled for the test")
             for item in RUBRIC.items]
    result = SubmissionResult(submission_id=submission_id or Path(source).stem, source=source, status=status,
                              attempt=attempt, total=total, max_total=RUBRIC.rubric.total_points, items=items)
    result.write(out / "results")
    return result


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = roster_command.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def canvas_class(tmp_path: Path) -> tuple[Path, Path]:
    """OUT with four results (one student's two attempts, one not on the roster) and a Canvas export beside it."""
    out = tmp_path / "out"
    make_result(out, "doejane_12345_67890_hw.zip", 87.5)
    make_result(out, "poeann_34567_70001_hw.zip", 40.0)
    make_result(out, "poeann_34567_70002_hw.zip", 72.0, submission_id="poeann_34567_70001_hw~2", attempt=2)
    # the rubric counts the last attempt: the second (export finalises the results as the pages do)
    make_result(out, "doejane_55555_70003_hw.zip", 99.0)  # the same name, another Canvas user: never matched
    export = tmp_path / "Grades-Audio_ML.csv"
    export.write_text(CANVAS_EXPORT, encoding="utf-8")
    return out, export


def test_canvas_round_trip_is_accepted_by_canvas_rules(canvas_class, capsys):
    out, export = canvas_class
    code, said, _ = run(capsys, "import", out, export)
    assert code == 0 and "canvas roster of 3 student(s)" in said and "test student" in said
    code, said, warned = run(capsys, "export", out, "--lms", "canvas")
    assert code == 0, warned
    assert "doejane_55555_70003_hw" in warned and "not on the roster" in warned  # reported, not written

    text = (out / "lms" / "canvas-grades.csv").read_text(encoding="utf-8")
    read = canvas_import(text, course_assignments=COURSE_ASSIGNMENTS, students=CANVAS_STUDENTS)
    assert read.new_assignments == [] and read.unknown_students == []
    assert [(a.id, a.points_possible) for a in read.assignments] == [(ASSIGNMENT_ID, "100")]
    assert read.grades[12345] == {ASSIGNMENT_ID: "87.5"}
    assert read.grades[34567] == {ASSIGNMENT_ID: "72"}  # the attempt that counts
    assert canvas_no_score(read.grades[23456][ASSIGNMENT_ID])  # no submission: blank, Canvas leaves it ungraded
    assert set(read.grades) == set(CANVAS_STUDENTS)  # the test student and the stranger are not in the file

    items = (out / "lms" / "items.csv").read_text(encoding="utf-8")
    with pytest.raises(Refused):  # uploaded by mistake, Canvas refuses it instead of making an assignment per item
        canvas_import(items, course_assignments=COURSE_ASSIGNMENTS, students=CANVAS_STUDENTS)
    rows = list(csv.DictReader(io.StringIO(items)))
    assert [row["LMS ID"] for row in rows] == ["12345", "23456", "34567", "55555"]
    assert rows[1]["Note"] == "no submission" and rows[3]["Note"] == "not on the roster"
    first = RUBRIC.items[0]
    assert rows[0][f"{first.id} ({first.points:g})"] == f"{round(first.points * 0.875, 2):g}"
    assert rows[0][f"Total ({RUBRIC.rubric.total_points:g})"] == "87.5"


def test_missing_as_zero_and_a_given_assignment_id(canvas_class, capsys):
    out, export = canvas_class
    run(capsys, "import", out, export, "--lms", "canvas")
    code, _, warned = run(capsys, "export", out, "--lms", "canvas", "--missing-as-zero", "--canvas-assignment", "100")
    assert code == 0, warned
    read = canvas_import((out / "lms" / "canvas-grades.csv").read_text(), course_assignments=COURSE_ASSIGNMENTS,
                         students=CANVAS_STUDENTS)
    assert [a.id for a in read.assignments] == [100]
    assert read.grades[23456] == {100: "0"}
    assert "worth 5 points" in warned  # the roster's Points Possible differs from the rubric's total


def test_grades_csv_is_refused_by_canvas_and_its_old_header_was_read_as_assignment_100(tmp_path):
    """The bug of issue 19: `<title> (100)` named the points, but Canvas read the number as the assignment id, and
    made a new assignment of every rubric item's column. grades.csv (the per-item spreadsheet) now starts with Name,
    which Canvas's import refuses; the file for Canvas is `grade roster export`'s, one assignment column."""
    results = [make_result(tmp_path, "doejane_12345_67890_hw.zip", 87.5)]
    with pytest.raises(Refused, match="Invalid header row"):
        canvas_import(grades_csv(results, RUBRIC), course_assignments=COURSE_ASSIGNMENTS, students=CANVAS_STUDENTS)
    old = grades_csv(results, RUBRIC).replace("Name,", "Student,", 1).replace(f"{TITLE} (of 100)", f"{TITLE} (100)")
    old = re.sub(r" \(of (\d+)\)", r" (\1)", old)  # the header as it was written before
    read = canvas_import(old, course_assignments=COURSE_ASSIGNMENTS, students=CANVAS_STUDENTS)
    first = read.assignments[0]
    assert first.header == f"{TITLE} (100)" and first.id == 100  # the reading quiz's grade overwritten with 87.5
    assert read.grades[12345][100] == "87.5"
    assert len(read.new_assignments) >= len(RUBRIC.items)  # one new Canvas assignment per item column


def test_names_never_match(tmp_path):
    roster = read_roster(_write(tmp_path, "g.csv", CANVAS_EXPORT))
    stranger = make_result(tmp_path, "doejane_55555_70003_hw.zip", 99.0)  # Canvas name 'doejane', another id
    unnamed = make_result(tmp_path, "Doe, Jane.zip", 99.0)  # no LMS file name at all
    match = match_roster([stranger, unnamed], roster)
    assert match.results == {} and {r.submission_id for r in match.unmatched} == {stranger.submission_id,
                                                                                unnamed.submission_id}
    text = canvas_grades_csv([stranger, unnamed], roster, assignment_name=TITLE, assignment_id="4711",
                             points_possible=100)
    assert "99" not in text.split("\r\n", 2)[2]


def test_moodle_round_trip_is_accepted_by_moodle_rules(tmp_path, capsys):
    out = tmp_path / "out"
    make_result(out, "Jane Doe_4401_assignsubmission_file_hw.zip", 91.25)
    make_result(out, "Ann Poe_4403_assignsubmission_file_hw.zip", 64.0)
    make_result(out, "Bob Stray_4999_assignsubmission_file_hw.zip", 50.0)
    worksheet = _write(tmp_path, "Grades-Audio-ML-worksheet.csv", MOODLE_WORKSHEET)
    code, said, _ = run(capsys, "import", out, worksheet)
    assert code == 0 and "moodle roster of 3" in said
    code, _, warned = run(capsys, "export", out, "--lms", "moodle")
    assert code == 0 and "4999" in warned and "not on the roster" in warned

    text = (out / "lms" / "moodle-grades.csv").read_text(encoding="utf-8")
    read = moodle_import(text, participants={4401, 4402, 4403}, max_grade=100)
    assert read.grades == {4401: 91.25, 4403: 64.0} and read.ignored_rows == []
    assert read.skipped == {4402: "no value"}  # no submission: blank, Moodle keeps what it has

    # "Last modified (grade)" is the worksheet's, so a grade changed in Moodle since then is still protected
    from datetime import datetime
    later = {4403: datetime(2026, 5, 4, 12, 0)}
    assert moodle_import(text, participants={4401, 4402, 4403}, max_grade=100,
                         modified_in_moodle=later).skipped[4403] == "modified in Moodle since"

    code, _, _ = run(capsys, "export", out, "--lms", "moodle", "--missing-as-zero")
    read = moodle_import((out / "lms" / "moodle-grades.csv").read_text(), participants={4401, 4402, 4403},
                         max_grade=100)
    assert read.grades[4402] == 0.0


def test_moodle_identifier_without_the_space_is_lost_by_moodle(tmp_path):
    """Why the writer keeps Moodle's 'Participant <id>' exactly: Moodle cuts strlen('Participant ') characters."""
    text = 'Identifier,Grade,"Last modified (grade)"\nParticipant4401,50,\n'
    assert moodle_import(text, participants={4401, 401}, max_grade=100).grades == {401: 50.0}  # another student's
    roster = read_roster(_write(tmp_path, "w.csv", MOODLE_WORKSHEET))
    written = moodle_worksheet_csv([], roster, max_grade=100)
    assert all(line.startswith('Participant 44') for line in written.splitlines()[1:])


def test_moodle_grade_above_the_maximum_is_refused(tmp_path):
    roster = read_roster(_write(tmp_path, "w.csv", MOODLE_WORKSHEET))
    result = make_result(tmp_path, "Jane Doe_4401_assignsubmission_file_hw.zip", 95.0)
    with pytest.raises(RosterError, match="maximum grade 90"):
        moodle_worksheet_csv([result], roster, max_grade=90)


def test_export_without_a_roster_says_to_import_one(tmp_path, capsys):
    out = tmp_path / "out"
    make_result(out, "doejane_12345_67890_hw.zip", 87.5)
    code, _, warned = run(capsys, "export", out, "--lms", "canvas")
    assert code == 2 and "grade roster import" in warned
    assert load_roster(out) is None


def test_unknown_canvas_assignment_lists_the_columns(tmp_path, capsys):
    out = tmp_path / "out"
    make_result(out, "doejane_12345_67890_hw.zip", 87.5)
    export = _write(tmp_path, "g.csv", CANVAS_EXPORT.replace(f"{TITLE} ({ASSIGNMENT_ID})", "Project 1 (4711)"))
    run(capsys, "import", out, export)
    code, _, warned = run(capsys, "export", out, "--lms", "canvas")
    assert code == 2 and "'Project 1 (4711)'" in warned and "'Week 1 reading quiz (100)'" in warned
    assert "--canvas-assignment" in warned
    code, _, _ = run(capsys, "export", out, "--lms", "moodle")
    assert code == 2  # the roster is Canvas's


def test_roster_is_kept_and_replaced(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    run(capsys, "import", out, _write(tmp_path, "g.csv", CANVAS_EXPORT))
    assert [s.user_id for s in load_roster(out).students] == ["12345", "23456", "34567"]
    assert load_roster(out).assignment_id(TITLE.upper()) == "4711"
    run(capsys, "import", out, _write(tmp_path, "w.csv", MOODLE_WORKSHEET))
    kept = load_roster(out)
    assert kept.lms == "moodle" and kept.max_grade == 100 and [s.user_id for s in kept.students] == [
        "4401", "4402", "4403"]


@pytest.mark.parametrize("name, text, message", [
    ("formula", CANVAS_EXPORT.replace('"Roe, Rick"', '"=HYPERLINK(""http://x"",""Rick"")"'), "formula"),
    ("at-formula", CANVAS_EXPORT.replace("S002", "@SUM(A1)"), "formula"),
    ("no section", CANVAS_EXPORT.replace(",Section,", ",Group,"), "Section"),
    ("duplicate id", CANVAS_EXPORT.replace("23456", "12345"), "both have ID 12345"),
    ("not an id", CANVAS_EXPORT.replace("23456", "rick"), "not a Canvas user id"),
    ("no student", CANVAS_EXPORT.split('"Doe')[0], "without a single student"),
    ("moodle duplicate", MOODLE_WORKSHEET.replace("Participant 4402", "Participant 4401"), "both Participant 4401"),
    ("moodle no grade column", MOODLE_WORKSHEET.replace(",Grade,", ",Mark,"), "'Grade'"),
    ("moodle bad identifier", MOODLE_WORKSHEET.replace("Participant 4402", "Rick Roe"), "not 'Participant <id>'"),
    ("moodle participants export", "First name,Last name,Email address\nJane,Doe,jane@example.edu\n",
     "grading worksheet"),
    ("empty", "", "empty"),
])
def test_hostile_rosters_are_refused(tmp_path, capsys, name, text, message):
    out = tmp_path / "out"
    out.mkdir()
    path = _write(tmp_path, "roster.csv", text)
    with pytest.raises(RosterError, match=message):
        read_roster(path)
    code, _, warned = run(capsys, "import", out, path)
    assert code == 2 and str(path) in warned
    assert load_roster(out) is None


def test_too_large_and_binary_rosters_are_refused(tmp_path):
    large = tmp_path / "large.csv"
    with open(large, "w") as file:
        file.write(CANVAS_EXPORT)
        file.write(("x" * 1023 + "\n") * (MAX_ROSTER_BYTES // 1024 + 1))
    with pytest.raises(RosterError, match="larger than"):
        read_roster(large)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(CANVAS_EXPORT.replace("Doe", "Do\u00eb").encode("latin-1"))
    with pytest.raises(RosterError, match="not UTF-8"):
        read_roster(latin)


def test_semicolon_export_and_written_names_are_escaped(tmp_path):
    """Canvas exports with ';' in some locales; names a student chose are written escaped against formulas."""
    text = CANVAS_EXPORT.replace(",", ";").replace('"Doe; Jane"', '"Doe, Jane"')
    roster = read_roster(_write(tmp_path, "g.csv", text))
    assert roster.assignment_id(TITLE) == "4711" and roster.points_possible["4711"] == 100
    hostile = roster.model_copy(update={"students": [roster.students[0].model_copy(update={"section": "-cmd|x"})]})
    written = canvas_grades_csv([], hostile, assignment_name=TITLE, assignment_id="4711", points_possible=100)
    assert "'-cmd|x" in written


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
