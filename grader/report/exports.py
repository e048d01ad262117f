"""Exports of results for gradebooks and CI: a CSV, Gradescope's results.json, JUnit XML.

- ``grades.csv``: the instructor's spreadsheet: one row per submission, the identity columns (Name, ID, SIS User
  ID, SIS Login ID, Section), then the final total and one column per rubric item (and the quiz), each headed with
  its maximum, e.g. ``preprocess-mfcc-run (of 10)``, then the grader's notes on identity: the attempt, whether it is
  the attempt that counts, Canvas's late mark, the LMS whose file name gave the identity (``unmatched`` where none
  did) and what the submission's ``submission.toml`` declares. Name and ID come from the LMS file name only
  (:mod:`grader.identity`): an unmatched submission is listed under its submission id with an empty ID. It is not
  the file to upload to the LMS (``grade roster export`` writes that, :mod:`grader.term.lms`): its first column is
  ``Name``, not ``Student``, so that Canvas refuses it rather than read ``(of 100)`` columns as assignments. A
  spreadsheet opens it as it is (UTF-8 with a byte-order mark, so that Excel reads accents right). Text a student
  can choose (names, ids) is escaped against formulas (:func:`text_cell`).
- ``gradescope/<submission id>.json``: Gradescope's autograder results
  (https://gradescope-autograders.readthedocs.io/en/latest/specs/): one test per
  item and per quiz question, with the item's visibility.
- ``junit.xml``: one test suite per submission, one test case per item and quiz
  question; a case that did not get full points has a ``failure`` element, so CI
  systems list it.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable

from reference.files import atomic_write
from grader.results import ItemResult, SubmissionResult
from grader.rubric import Rubric

CSV_NAME = "grades.csv"
JUNIT_NAME = "junit.xml"
GRADESCOPE_FOLDER = "gradescope"
CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
SPREADSHEET_IDENTITY = ("Name", *CANVAS_IDENTITY[1:])
"""``grades.csv``'s first columns: Canvas's, but ``Name`` first, which Canvas's import refuses (see the notes)."""
IDENTITY_NOTES = ("Attempt", "Counts", "Late", "LMS", "Declared name", "Declared id")
"""The last columns of ``grades.csv``: the grader's notes on who a row is (see the module's notes)."""
UNMATCHED = "unmatched"
"""The ``LMS`` cell of a submission whose file name names no student."""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection)."""
RUN_OUTPUT_LINES = 20
"""Lines of a failed run's stderr (the end, where a traceback's error is) shown in an item's Gradescope output."""
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot hold (student output may print anything)."""


def _points(value: float) -> str:
    return f"{round(value, 2):g}"


def _passed(points: float, max_points: float) -> bool:
    return points >= max_points - 1e-9


def _item_columns(results: list[SubmissionResult]) -> list[tuple[str, float]]:
    """(item id, max points) of every item of any result, in the order first seen."""
    columns: dict[str, float] = {}
    for result in results:
        for item in result.items:
            columns.setdefault(item.id, item.max_points)
    return list(columns.items())


# --------------------------------------------------------------------------- CSV

def text_cell(text: str) -> str:
    """A CSV cell of text the grader did not make: a single quote before a first character in
    :data:`FORMULA_STARTS`, so that a spreadsheet shows the text instead of running it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def grades_csv(results: list[SubmissionResult], rubric: Rubric | None = None) -> str:
    """The gradebook CSV text: identity columns, total, one column per item, the quiz, the identity notes.

    A submission whose file name names no student is listed under its submission id with
    an empty ID; an item a result lacks (a refused archive) is empty, not zero, so the gap shows.
    """
    columns = _item_columns(results)
    quiz_max = max((sum(q.max_points for q in r.quiz) for r in results), default=0.0)
    if rubric and rubric.quiz:
        quiz_max = rubric.quiz.points
    max_total = rubric.rubric.total_points if rubric else max((r.max_total for r in results), default=0.0)
    title = rubric.rubric.title if rubric else "Total"
    header = [*SPREADSHEET_IDENTITY, f"{title} (of {_points(max_total)})",
              *(f"{item_id} (of {_points(points)})" for item_id, points in columns)]
    if quiz_max:
        header.append(f"quiz (of {_points(quiz_max)})")
    header += IDENTITY_NOTES
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for result in results:
        items = {item.id: item for item in result.items}
        row = [text_cell(result.student_label), text_cell(result.identity.user_id), "", "", "",
               _points(result.total),
               *(_points(items[item_id].points) if item_id in items else "" for item_id, _ in columns)]
        if quiz_max:
            row.append(_points(sum(q.points for q in result.quiz)) if result.quiz else "")
        row += [str(result.attempt), "no" if result.term and not result.term.counts else "yes",
                "late" if result.identity.late else "", result.identity.lms or UNMATCHED,
                text_cell(result.student.get("name", "")), text_cell(result.student.get("id", ""))]
        writer.writerow(row)
    return buffer.getvalue()


# --------------------------------------------------------------------------- Gradescope

def _runs_text(result: SubmissionResult, item_id: str) -> list[str]:
    """The item's runs in words; a run that did not end well with the end of its stderr."""
    lines = []
    for run in result.runs:
        if run.item_id != item_id:
            continue
        lines.append(f"Run for {run.purpose}: {run.result.verdict} ({run.result.wall_seconds:.1f} s). {run.result.message}")
        if run.result.verdict != "ok" and run.result.stderr.strip():
            tail = run.result.stderr.rstrip().splitlines()[-RUN_OUTPUT_LINES:]
            lines += ["stderr (end):", *("    " + line for line in tail)]
    return lines


def gradescope_dict(result: SubmissionResult, rubric: Rubric | None = None,
                    stdout_visibility: str = "hidden") -> dict[str, Any]:
    """Gradescope's results.json for one result: score, execution time, output and one test per item.

    Points are the result's as given: a finalised result's (:func:`grader.term.finalise.finalise`) are final, an
    item's adjustment by hand said in its output, the late line in the whole output.

    Quiz questions checked (all but in a self-check) are tests too, with the quiz's visibility; the answer key is named
    only when the rubric makes it ``visible`` (a test has one visibility, so an answer
    key due later is left out). A refused or failed grading is a score of 0 with the
    reason as the output.
    """
    questions = {q.id: q for q in rubric.quiz.questions} if rubric and rubric.quiz else {}
    quiz_visibility = rubric.quiz.visibility if rubric and rubric.quiz else "visible"
    show_key = bool(rubric and rubric.quiz and rubric.quiz.answers_visibility == "visible")
    tests = []
    checklists: list[str] = []
    counts: dict[str, int] = {}
    for item in result.items:
        if item.checklist not in checklists:
            checklists.append(item.checklist)
        counts[item.checklist] = counts.get(item.checklist, 0) + 1
        output = [*_adjustment_text(item), item.explanation, *(f"- {line}" for line in item.evidence),
                  *_runs_text(result, item.id)]
        tests.append({
            "name": item.title,
            "number": f"{checklists.index(item.checklist) + 1}.{counts[item.checklist]}",
            "score": round(item.points, 4),
            "max_score": round(item.max_points, 4),
            "status": "passed" if _passed(item.points, item.max_points) else "failed",
            "output": "\n".join(output),
            "tags": [item.checklist, item.id],
            "visibility": item.visibility,
        })
    checked = [q for q in result.quiz if q.correct is not None]  # a self-check answers no quiz question
    for index, question in enumerate(checked, start=1):
        known = questions.get(question.id)
        answered = question.answered if question.answered is not None else "(no answer)"
        output = f"Your answer: {answered}. " + ("Right." if question.correct else "Not right.")
        if show_key and known and not question.correct:
            output += f" The answer: {known.answer}."
        tests.append({
            "name": known.text if known else f"Quiz question {question.id}",
            "number": f"{len(checklists) + 1}.{index}",
            "score": round(question.points, 4),
            "max_score": round(question.max_points, 4),
            "status": "passed" if question.correct else "failed",
            "output": output,
            "tags": ["Check for understanding", question.id],
            "visibility": quiz_visibility,
        })
    return {
        "score": round(result.total, 4),
        "execution_time": max(0, round(result.seconds)),
        "output": _overall_output(result),
        "visibility": "visible",
        "stdout_visibility": stdout_visibility,
        "tests": tests,
    }


def _adjustment_text(item: ItemResult) -> list[str]:
    """An item's adjustment by hand, in words (none where it has none, or it no longer applies)."""
    adjustment = item.adjustment
    if adjustment is None or adjustment.stale:
        return []
    return [f"Adjusted by {adjustment.by} from {_points(adjustment.automatic)} to {_points(adjustment.points)} "
            f"points: {adjustment.comment}"]


def _overall_output(result: SubmissionResult) -> str:
    """What the whole submission's output says: the status, the late line, and what discovery guessed."""
    late = result.term.lateness.words if result.term and result.term.lateness else ""
    text = _status_output(result)
    return f"{text}\n{late[:1].upper()}{late[1:]}." if late else text


def _status_output(result: SubmissionResult) -> str:
    if result.status == "refused":
        return f"The archive was refused: {result.message}"
    if result.status == "grader_error":
        return ("The grader failed on this submission; the staff have been shown the error. "
                "Your code was not at fault unless an item below says so.")
    lines = [f"{_points(result.total)} of {_points(result.max_total)} points."]
    findings = (result.discovery.get("findings") or {}).values()
    guessed = [f for f in findings if isinstance(f, dict) and f.get("status") == "guessed"]
    if guessed:
        lines.append("The grader guessed (add a submission.toml to say otherwise):")
        lines += [f"- {f.get('role')}: {f.get('value') or ', '.join(f.get('files') or [])}" for f in guessed]
    missing = [f.get("role") for f in findings if isinstance(f, dict) and f.get("status") == "missing"]
    if missing:
        lines.append(f"Not found: {', '.join(missing)}.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- JUnit

def junit_xml(results: list[SubmissionResult]) -> bytes:
    """JUnit XML: a suite per submission, a case per item and quiz question, a failure where points were lost.

    A refused or failed grading is a suite with one ``grading`` case holding an ``error``.
    """
    root = ET.Element("testsuites", name="grades")
    all_tests = all_failures = all_errors = 0
    for result in results:
        suite = ET.SubElement(root, "testsuite", name=result.submission_id, timestamp=result.finished_at or "",
                              time=f"{result.seconds:.3f}")
        properties = ET.SubElement(suite, "properties")
        term = result.term
        for name, value in (("total", _points(result.total)), ("max_total", _points(result.max_total)),
                            ("automatic_total", _points(term.automatic_total if term else result.total)),
                            ("late", term.lateness.words if term and term.lateness else ""),
                            ("counts", "false" if term and not term.counts else "true"),
                            ("status", result.status), ("student", result.student_label),
                            ("student_id", result.identity.user_id), ("attempt", str(result.attempt)),
                            ("declared_name", result.student.get("name", "")),
                            ("declared_id", result.student.get("id", ""))):
            ET.SubElement(properties, "property", name=name, value=_xml_text(value))
        tests = failures = errors = 0
        if result.status != "graded":
            case = ET.SubElement(suite, "testcase", name="grading", classname=result.submission_id, time="0")
            ET.SubElement(case, "error", message=_xml_text(result.message.splitlines()[0] if result.message else
                                                           result.status), type=result.status).text = _xml_text(result.message)
            tests, errors = 1, 1
        for item in result.items:
            case = ET.SubElement(suite, "testcase", name=item.id, classname=f"{result.submission_id}.{item.checklist}",
                                 time=f"{item.seconds:.3f}")
            tests += 1
            if item.status == "skipped":
                ET.SubElement(case, "skipped", message=_xml_text(item.explanation))
            elif not _passed(item.points, item.max_points):
                failures += 1
                failure = ET.SubElement(case, "failure", type=item.status,
                                        message=_xml_text(f"{_points(item.points)} / {_points(item.max_points)} points: "
                                                          f"{' '.join(_adjustment_text(item)) or item.explanation}"))
                failure.text = _xml_text("\n".join([*_adjustment_text(item), item.explanation, *item.evidence]))
            if item.adjustment and not item.adjustment.stale:
                ET.SubElement(case, "system-out").text = _xml_text(" ".join(_adjustment_text(item)))
        for question in result.quiz:
            case = ET.SubElement(suite, "testcase", name=f"quiz-{question.id}",
                                 classname=f"{result.submission_id}.Check for understanding", time="0")
            tests += 1
            if question.correct is None:
                ET.SubElement(case, "skipped", message="not checked here (a self-check)")
            elif not question.correct:
                failures += 1
                ET.SubElement(case, "failure", type="failed", message=_xml_text(
                    f"0 / {_points(question.max_points)} points: answered {question.answered!r}"))
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        all_tests, all_failures, all_errors = all_tests + tests, all_failures + failures, all_errors + errors
    root.set("tests", str(all_tests))
    root.set("failures", str(all_failures))
    root.set("errors", str(all_errors))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


# --------------------------------------------------------------------------- files

def write_exports(results: Iterable[SubmissionResult], out_dir: str | os.PathLike,
                  rubric: Rubric | None = None) -> list[Path]:
    """Write ``grades.csv``, ``junit.xml`` and ``gradescope/<id>.json`` into ``out_dir``; returns the paths.

    ``results`` as :func:`grader.term.finalise.finalise` made them carry final points (what
    :func:`grader.report.render_all` passes); results as read carry the grading's.

    A Gradescope file of a submission no longer among ``results`` is removed, so the
    folder always matches the results.
    """
    out_dir = Path(out_dir)
    results = sorted(results, key=lambda r: r.submission_id)
    written = [atomic_write(out_dir / CSV_NAME, ("\ufeff" + grades_csv(results, rubric)).encode("utf-8")),
               atomic_write(out_dir / JUNIT_NAME, junit_xml(results))]
    folder = out_dir / GRADESCOPE_FOLDER
    for result in results:
        payload = json.dumps(gradescope_dict(result, rubric), indent=2, ensure_ascii=False)
        written.append(atomic_write(folder / f"{result.submission_id}.json", payload.encode("utf-8")))
    for stale in set(folder.glob("*.json")) - set(written):
        stale.unlink()
    return written
