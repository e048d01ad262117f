"""Late work (grader.term.late, grader.term.times): the rubric's late policy, submission times from real CSV files
and from grade --submitted-at, and the lateness each result gets."""
from __future__ import annotations

import argparse
import csv
from datetime import datetime, timedelta, timezone

import pytest

from grader.commands.common import add_submitted_at_options, read_submitted_at, store_submitted_at
from grader.commands.grade import main as grade_main
from grader.rubric import DEFAULT_RUBRIC, RubricError, Term, load_rubric
from grader.term.late import duration_words, lateness, lateness_of
from grader.term.times import (MAX_ROWS, SubmissionTimesError, read_times_file, store_times, submission_time,
                               submitted_at)
from tests.result_fixtures import graded_result

CANVAS_LATE = "doe_LATE_12345_67890_hw3.zip"
CANVAS_ON_TIME = "roe_23456_67891_hw3.zip"
MOODLE = "Ada Lovelace_1234567_assignsubmission_file_hw3.zip"
DUE = "2026-12-04T23:59:00-05:00"
MOODLE_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                 "Grade can be changed", "Last modified (submission)", "Online text", "Last modified (grade)",
                 "Feedback comments"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("graded")
    return {name: graded_result(out, name, 0.8, seed=k) for k, name in enumerate((CANVAS_LATE, CANVAS_ON_TIME, MOODLE))}


def rubric_with(tmp_path, term: str):
    path = tmp_path / "rubric.toml"
    path.write_text(DEFAULT_RUBRIC.read_text() + "\n[term]\n" + term + "\n")
    return load_rubric(path)


def at(minutes_after_due: float) -> datetime:
    return datetime.fromisoformat(DUE) + timedelta(minutes=minutes_after_due)


def write_csv(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


# The rubric's [term]


def test_the_late_policy_is_read_from_the_rubric(tmp_path):
    rubric = rubric_with(tmp_path, f'due = "{DUE}"\ngrace_minutes = 15\nlate = {{ per = "day", percent = 10, '
                         'cap_percent = 50 }')
    assert rubric.term.grace_minutes == 15
    assert (rubric.term.late.per, rubric.term.late.percent, rubric.term.late.cap_percent) == ("day", 10, 50)
    assert rubric_with(tmp_path, f'due = "{DUE}"\nlate = "not_accepted"').term.late == "not_accepted"
    assert rubric_with(tmp_path, f'due = "{DUE}"').term.late is None


@pytest.mark.parametrize("term, message", [
    ('due = "2026-12-04T23:59:00"', r"term\.due: .*has no UTC offset"),
    (f'due = "{DUE}"\nlate = {{ per = "week", percent = 10 }}',
     r"rubric.toml:\d+: term\.late: per: Input should be 'day' or 'hour' \(got \"week\"\)"),
    (f'due = "{DUE}"\nlate = {{ per = "day", percent = 0 }}', r"term\.late.*percent.*greater than 0"),
    (f'due = "{DUE}"\nlate = {{ per = "day", percent = 10, cap = 50 }}',
     r"term\.late: unknown key cap; allowed: per, percent, cap_percent"),
    (f'due = "{DUE}"\nlate = "sometimes"',
     r"term\.late: write late = \"not_accepted\", or late = \{ per = .*got \"sometimes\""),
    (f'due = "{DUE}"\ngrace_minutes = -5', r"term\.grace_minutes.*greater than or equal to 0"),
    ('late = "not_accepted"', r"late and grace_minutes need a due date"),
])
def test_a_wrong_term_is_refused_with_its_key(tmp_path, term, message):
    with pytest.raises(RubricError, match=message):
        rubric_with(tmp_path, term)


def test_the_term_stays_out_of_grading_keys(tmp_path):
    """[term] is a class section: a late policy changes no result's cache key (grader.rubric.CLASS_SECTIONS)."""
    from grader.rubric import CLASS_SECTIONS

    assert "term" in CLASS_SECTIONS


# The lateness of a result


def test_penalty_per_started_day_capped(results):
    term = Term(due=DUE, late={"per": "day", "percent": 10, "cap_percent": 25})
    result = results[CANVAS_ON_TIME]
    one = lateness(result, term, at(27 * 60))  # 1 day 3 hours: 2 started days
    assert (one.late_minutes, one.penalty, one.refused, one.review) == (27 * 60, 20, False, False)
    assert one.words == "handed in 1 day 3 hours late: \u221220% (20 points)"
    assert one.submitted_at == at(27 * 60).isoformat() and one.due == datetime.fromisoformat(DUE).isoformat()
    capped = lateness(result, term, at(5 * 24 * 60))
    assert capped.penalty == 25 and "\u221225% (the cap)" in capped.words
    on_time = lateness(result, term, at(-1))
    assert (on_time.late_minutes, on_time.penalty, on_time.words) == (0, 0, "handed in on time")


def test_penalty_per_started_hour_of_the_maximum(results):
    term = Term(due=DUE, late={"per": "hour", "percent": 5, "cap_percent": 50})
    result = results[CANVAS_ON_TIME]
    assert lateness(result, term, at(1)).penalty == pytest.approx(result.max_total * 0.05)
    assert lateness(result, term, at(61)).penalty == pytest.approx(result.max_total * 0.10)
    assert lateness(result, term, at(60)).penalty == pytest.approx(result.max_total * 0.05)  # exactly one hour
    assert lateness(result, term, at(30 * 60)).penalty == pytest.approx(result.max_total * 0.50)


def test_grace_counts_as_on_time_and_lateness_starts_after_it(results):
    term = Term(due=DUE, grace_minutes=15, late={"per": "day", "percent": 10, "cap_percent": 50})
    result = results[CANVAS_ON_TIME]
    within = lateness(result, term, at(10))
    assert (within.late_minutes, within.penalty) == (0, 0)
    assert within.words == "handed in 10 min after the due date, within the 15 min grace: on time"
    late = lateness(result, term, at(24 * 60 + 3 * 60 + 15))  # one day 3 hours past due+grace: 2 started days
    assert late.late_minutes == 27 * 60
    assert late.words == "handed in 1 day 3 hours late (grace 15 min): \u221220% (20 points)"
    assert late.penalty == 20
    just = lateness(result, term, at(24 * 60 + 15))  # exactly one day past due+grace
    assert just.penalty == 10 and just.words == "handed in 1 day 15 min late (grace 15 min): \u221210% (10 points)"


def test_late_work_not_accepted_and_late_work_without_a_policy(results):
    result = results[CANVAS_ON_TIME]
    refused = lateness(result, Term(due=DUE, late="not_accepted"), at(2))
    assert refused.refused and refused.penalty == result.max_total
    assert refused.words == "handed in 2 min late: late work not accepted, 0 points"
    flagged = lateness(result, Term(due=DUE), at(2))
    assert (flagged.late_minutes, flagged.penalty, flagged.refused) == (2, 0, False)
    assert flagged.words == "handed in 2 min late: no late policy, no points off"


def test_canvas_late_mark_alone_is_flagged_for_review(tmp_path, results):
    rubric = rubric_with(tmp_path, f'due = "{DUE}"\nlate = {{ per = "day", percent = 10, cap_percent = 50 }}')
    of = lateness_of(tmp_path / "out", rubric)
    late = of(results[CANVAS_LATE])
    assert (late.review, late.penalty, late.late_minutes, late.submitted_at, late.refused) == (True, 0, 0, None, False)
    assert "flagged for review" in late.words and "time unknown" in late.words
    on_time = of(results[CANVAS_ON_TIME])
    assert (on_time.review, on_time.penalty) == (False, 0) and "Canvas did not mark it late" in on_time.words
    assert not (tmp_path / "out").exists(), "reading times made a gradebook"


def test_canvas_late_mark_with_a_time_from_a_generic_csv_is_charged(tmp_path, results):
    rubric = rubric_with(tmp_path, f'due = "{DUE}"\ngrace_minutes = 15\n'
                         'late = { per = "day", percent = 10, cap_percent = 50 }')
    times = write_csv(tmp_path / "canvas-times.csv", [
        ["submission", "submitted_at"],
        [CANVAS_LATE, "2026-12-06T07:14:00Z"],        # 1 day 2 h 15 min after due: 2 started days past the grace
        ["roe_23456", "2026-12-05T04:50:00+00:00"],  # by submission id: before due (04:59Z)
    ])
    out = tmp_path / "out"
    store_times(out, read_times_file(times))
    assert set(submitted_at(out)) == {"file:" + CANVAS_LATE[:-4], "roe_23456"}
    of = lateness_of(out, rubric)
    late = of(results[CANVAS_LATE])
    assert (late.review, late.penalty, late.late_minutes) == (False, 20, 24 * 60 + 2 * 60)
    assert late.words == "handed in 1 day 2 hours late (grace 15 min): \u221220% (20 points)"
    assert late.submitted_at == "2026-12-06T07:14:00+00:00"
    on_time = of(results[CANVAS_ON_TIME])
    assert (on_time.penalty, on_time.words) == (0, "handed in on time")
    # a known time overrides the mark: the late-marked file handed in before the due date is on time
    store_times(out, read_times_file(write_csv(tmp_path / "fix.csv", [["submission", "submitted_at"],
                                                                      [CANVAS_LATE, "2026-12-04T20:00:00-05:00"]])))
    assert lateness_of(out, rubric)(results[CANVAS_LATE]).words == "handed in on time"


def test_no_due_date_gives_no_lateness(tmp_path, results):
    assert lateness_of(tmp_path, None)(results[CANVAS_LATE]) is None
    assert lateness_of(tmp_path, load_rubric(DEFAULT_RUBRIC))(results[CANVAS_LATE]) is None


# Times from Moodle's grading worksheet


def moodle_worksheet(path, rows):
    return write_csv(path, [MOODLE_HEADER, *rows])


def test_moodle_grading_worksheet_is_read_in_the_site_time_zone(tmp_path, results):
    worksheet = moodle_worksheet(tmp_path / "Grades-HW3.csv", [
        ["Participant 1234567", "Ada Lovelace", "ada@example.edu", "Submitted for grading - Graded", "", "100.00",
         "Yes", "Saturday, 5 December 2026, 11:30 AM", "", "-", ""],
        ["Participant 7654321", "Charles Babbage", "cb@example.edu", "No submission", "", "100.00", "Yes", "-", "",
         "-", "- see me"],
        ["Participant 2222222", "Mary Somerville", "ms@example.edu", "Submitted for grading", "", "100.00", "Yes",
         "Monday, 30 November 2026, 4:05 PM", "", "-", ""],
    ])
    times = read_times_file(worksheet, "America/Toronto")
    assert [(t.key, t.submitted_at.isoformat(), t.origin) for t in times] == [
        ("moodle:1234567", "2026-12-05T11:30:00-05:00", "Grades-HW3.csv:2"),
        ("moodle:2222222", "2026-11-30T16:05:00-05:00", "Grades-HW3.csv:4"),
    ]
    out = tmp_path / "out"
    store_times(out, times)
    result = results[MOODLE]
    assert submission_time(submitted_at(out), result) == datetime(2026, 12, 5, 16, 30, tzinfo=timezone.utc)
    rubric = rubric_with(tmp_path, f'due = "{DUE}"\nlate = {{ per = "hour", percent = 2, cap_percent = 50 }}')
    late = lateness_of(out, rubric)(result)
    assert late.late_minutes == 11 * 60 + 31 and late.penalty == pytest.approx(result.max_total * 0.24)
    assert late.words == f"handed in 11 hours 31 min late: \u221224% ({result.max_total * 0.24:g} points)"


def test_moodle_dates_in_utc_by_default_and_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "worksheet.csv"
    moodle_worksheet(path, [["Participant 1", "A B", "", "", "", "", "", "Tuesday, 1 December 2026, 9:05 AM", "", "",
                             ""]])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_times_file(path)[0].submitted_at.isoformat() == "2026-12-01T09:05:00+00:00"


# --submitted-at on the grade command


def test_submitted_at_option_parsing(tmp_path):
    parser = argparse.ArgumentParser()
    add_submitted_at_options(parser)
    generic = write_csv(tmp_path / "times.csv", [["submission", "submitted_at"], ["roe_23456", "2026-12-05T01:00Z"]])
    args = parser.parse_args(["--submitted-at", f"{CANVAS_LATE}=2026-12-05T10:00:00-05:00", "--submitted-at",
                              str(generic), "--submitted-at", "lee_34567=2026-12-04T12:00:00+01:00"])
    times = read_submitted_at(args.submitted_at, args.timezone)
    assert [(t.key, t.submitted_at.isoformat(), t.origin) for t in times] == [
        ("file:doe_LATE_12345_67890_hw3", "2026-12-05T10:00:00-05:00", "--submitted-at"),
        ("roe_23456", "2026-12-05T01:00:00+00:00", "times.csv:2"),
        ("lee_34567", "2026-12-04T12:00:00+01:00", "--submitted-at"),
    ]
    assert store_submitted_at(args, tmp_path / "out")
    assert submitted_at(tmp_path / "out")["lee_34567"] == datetime(2026, 12, 4, 11, tzinfo=timezone.utc)
    for wrong, message in [("doe.zip=yesterday", r"'yesterday' is not an ISO 8601 time"),
                           ("doe.zip=2026-12-05T10:00:00", "has no UTC offset"),
                           ("=2026-12-05T10:00:00Z", "write NAME=WHEN"),
                           (str(tmp_path / "missing.csv"), "no such file, and not NAME=WHEN")]:
        with pytest.raises(SubmissionTimesError, match=message):
            read_submitted_at([wrong])
    with pytest.raises(SubmissionTimesError, match="'Mars/Olympus' is not a time zone name"):
        read_submitted_at([], "Mars/Olympus")


def test_the_grade_command_keeps_times_and_stops_on_a_bad_one(tmp_path, capsys):
    out = tmp_path / "out"
    missing_rubric = tmp_path / "no-rubric.toml"  # grading stops at once after the times are kept
    assert grade_main([CANVAS_LATE, "--out", str(out), "--rubric", str(missing_rubric),
                       "--submitted-at", f"{CANVAS_LATE}=2026-12-05T10:00:00-05:00"]) == 2
    assert submitted_at(out) == {"file:doe_LATE_12345_67890_hw3": datetime.fromisoformat("2026-12-05T10:00:00-05:00")}
    assert "submission times: 1 kept" in capsys.readouterr().err
    assert grade_main([CANVAS_LATE, "--out", str(tmp_path / "other"), "--submitted-at", "doe.zip=soon"]) == 2
    assert "--submitted-at 'doe.zip': 'soon' is not an ISO 8601 time" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


# Hostile files


def test_hostile_times_files_are_refused_with_their_line(tmp_path, monkeypatch):
    generic = [["submission", "submitted_at"]]
    cases = {
        "formula.csv": (generic + [["doe_12345", "2026-12-05T01:00Z"],
                                   ["=HYPERLINK(\"http://x\")", "2026-12-05T01:00Z"]],
                        r"formula.csv:3: column 'submission' holds a spreadsheet formula"),
        "minus-formula.csv": (generic + [["doe_12345", "-cmd|' /C calc'!A0"]],
                              r"minus-formula.csv:2: column 'submitted_at' holds a spreadsheet formula"),
        "bad-date.csv": (generic + [["doe_12345", "2026-12-05T01:00Z"], ["roe_1", "5/12/2026 10:00"]],
                         r"bad-date.csv:3: '5/12/2026 10:00' is not an ISO 8601 time"),
        "no-offset.csv": (generic + [["doe_12345", "2026-12-05T01:00"]], r"no-offset.csv:2: .*has no UTC offset"),
        "short-row.csv": (generic + [["doe_12345"]], r"short-row.csv:2: 1 cells where the header has 2"),
        "unknown.csv": ([["student", "time"], ["a", "b"]], r"unknown.csv:1: header 'student, time' is neither"),
        "moodle-date.csv": ([MOODLE_HEADER, ["Participant 1", "A", "", "", "", "", "", "30/11/2026 16:05", "", "", ""]],
                            r"moodle-date.csv:2: '30/11/2026 16:05' is not a Moodle date"),
        "moodle-id.csv": ([MOODLE_HEADER, ["Student 1", "A", "", "", "", "", "", "-", "", "", ""]],
                          r"moodle-id.csv:2: Identifier 'Student 1' is not \"Participant <number>\""),
        "moodle-formula.csv": ([MOODLE_HEADER, ["Participant 1", "@SUM(A1)", "", "", "", "", "", "-", "", "", ""]],
                               r"moodle-formula.csv:2: column 'Full name' holds a spreadsheet formula"),
    }
    for name, (rows, message) in cases.items():
        with pytest.raises(SubmissionTimesError, match=message):
            read_times_file(write_csv(tmp_path / name, rows))
    many = write_csv(tmp_path / "many.csv", generic + [[f"s{k}", "2026-12-05T01:00Z"] for k in range(MAX_ROWS + 5)])
    with pytest.raises(SubmissionTimesError, match=rf"many.csv:{MAX_ROWS + 2}: more than {MAX_ROWS} rows"):
        read_times_file(many)
    import grader.term.times as times_module

    monkeypatch.setattr(times_module, "MAX_BYTES", 1024)
    large = write_csv(tmp_path / "large.csv", generic + [[f"s{k}", "2026-12-05T01:00Z"] for k in range(100)])
    with pytest.raises(SubmissionTimesError, match=r"large.csv: larger than"):
        read_times_file(large)
    (tmp_path / "binary.csv").write_bytes(b"submission,submitted_at\n\xff\xfe,x\n")
    with pytest.raises(SubmissionTimesError, match=r"binary.csv:2: not UTF-8"):
        read_times_file(tmp_path / "binary.csv")


def test_duration_words():
    assert [duration_words(m) for m in (0.2, 45, 125, 24 * 60, 27 * 60 + 59.5, 3 * 24 * 60 + 5)] == [
        "1 min", "45 min", "2 hours 5 min", "1 day", "1 day 4 hours", "3 days 5 min"]
