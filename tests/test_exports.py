"""Exports: Gradescope's results.json against a JSON Schema of its specification, JUnit XML and the CSV parsed back,
Gradescope mode's results and the autograder zip."""
from __future__ import annotations

import csv
import json
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import jsonschema
import pytest

from grader.commands import gradescope
from grader.commands.export import Platform, entry_runs, platform_warnings, write_autograder_zip
from grader.commands.gradescope import run_gradescope
from grader.report import render_all
from grader.report.exports import gradescope_dict, junit_xml, write_exports
from grader.results import SubmissionResult
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from tests import result_fixtures
from tests.gradescope_schema import GRADESCOPE_SCHEMA


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, list[SubmissionResult]]:
    out = tmp_path_factory.mktemp("exports")
    results = result_fixtures.class_of_five(out)
    write_exports(results, out, result_fixtures.rubric())
    return out, sorted(results, key=lambda r: r.submission_id)


def test_the_schema_itself_is_valid_and_rejects_what_gradescope_would():
    jsonschema.Draft202012Validator.check_schema(GRADESCOPE_SCHEMA)
    good = {"score": 1, "execution_time": 2, "output": "", "visibility": "visible", "stdout_visibility": "hidden",
            "tests": [{"name": "a", "number": "1.1", "score": 1, "max_score": 1, "status": "passed", "output": "",
                       "tags": [], "visibility": "visible"}]}
    jsonschema.validate(good, GRADESCOPE_SCHEMA)
    for broken in ({**good, "tests": [{**good["tests"][0], "status": "partial"}]},
                   {**good, "visibility": "students"}, {**good, "score": "1"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, GRADESCOPE_SCHEMA)


def test_gradescope_json_follows_the_specification(graded):
    out, results = graded
    files = sorted((out / "gradescope").glob("*.json"))
    assert [f.stem for f in files] == [r.submission_id for r in results]
    rubric = result_fixtures.rubric()
    for path, result in zip(files, results):
        payload = json.loads(path.read_text())
        jsonschema.validate(payload, GRADESCOPE_SCHEMA)
        assert payload["score"] == pytest.approx(result.total)
        if result.status != "graded":
            assert payload["score"] == 0 and payload["tests"] == []
            continue
        assert sum(t["score"] for t in payload["tests"]) == pytest.approx(result.total, abs=1e-3)
        assert sum(t["max_score"] for t in payload["tests"]) == pytest.approx(rubric.rubric.total_points)
        by_name = {t["name"]: t for t in payload["tests"]}
        for item in rubric.items:
            test = by_name[item.title]
            assert test["visibility"] == item.visibility
            assert test["status"] == ("passed" if test["score"] == test["max_score"] else "failed")
        assert len({t["number"] for t in payload["tests"]}) == len(payload["tests"])
        assert "The answer:" not in path.read_text()  # the answer key is due later


def test_failed_runs_show_their_traceback_in_the_items_output(graded):
    out, results = graded
    payload = json.loads((out / "gradescope" / "hoppergrace_1003.json").read_text())
    timed_out = [t for t in payload["tests"] if "timeout" in t["output"]]
    assert timed_out and all("KeyError: 'x'" in t["output"] for t in timed_out)


def test_gradescope_shows_the_answer_key_only_when_the_rubric_says_visible(graded):
    _, results = graded
    rubric = result_fixtures.rubric()
    open_key = rubric.model_copy(update={"quiz": rubric.quiz.model_copy(update={"answers_visibility": "visible"})})
    poor = next(r for r in results if r.submission_id == "hoppergrace_1003")
    wrong = [q for q in poor.quiz if not q.correct]
    outputs = [t["output"] for t in gradescope_dict(poor, open_key)["tests"] if "Your answer" in t["output"]]
    assert sum("The answer:" in o for o in outputs) == len(wrong) > 0
    assert not any("The answer:" in t["output"] for t in gradescope_dict(poor, rubric)["tests"])


def test_junit_xml_has_a_case_per_item_and_a_failure_where_points_were_lost(graded):
    out, results = graded
    root = ET.parse(out / "junit.xml").getroot()
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert sorted(suites) == [r.submission_id for r in results]
    for result in results:
        suite = suites[result.submission_id]
        cases = suite.findall("testcase")
        if result.status != "graded":
            assert [c.get("name") for c in cases] == ["grading"] and cases[0].find("error") is not None
            continue
        assert [c.get("name") for c in cases] == [i.id for i in result.items] + [f"quiz-{q.id}" for q in result.quiz]
        lost = {i.id for i in result.items if i.points < i.max_points} | {f"quiz-{q.id}" for q in result.quiz
                                                                          if not q.correct}
        assert {c.get("name") for c in cases if c.find("failure") is not None} == lost
        assert int(suite.get("failures")) == len(lost) and int(suite.get("tests")) == len(cases)
    assert int(root.get("tests")) == sum(int(s.get("tests")) for s in suites.values())


def test_junit_xml_survives_what_student_code_prints(graded):
    _, results = graded
    noisy = results[0].model_copy(deep=True)
    noisy.items[0].explanation += " \x1b[31mred\x00 \ud800"
    noisy.items[0].points = 0
    root = ET.fromstring(junit_xml([noisy]))
    failure = root.find("testsuite/testcase/failure")
    assert "red" in failure.get("message") and "\x00" not in failure.text


def test_grades_csv_reads_back_in_a_spreadsheet_and_canvas_layout(graded):
    out, results = graded
    rubric = result_fixtures.rubric()
    with open(out / "grades.csv", newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert header[:5] == ["Name", "ID", "SIS User ID", "SIS Login ID", "Section"]  # Name: Canvas refuses the file
    assert header[5] == f"{rubric.rubric.title} (of 100)"
    points = header.index("quiz (of 14)")
    assert header[6:points] == [f"{i.id} (of {i.points:g})" for i in rubric.items]
    assert header[points + 1:] == ["Attempt", "Counts", "Late", "LMS", "Declared name", "Declared id"]
    assert len(body) == len(results)
    for row, result in zip(body, results):
        assert row[:2] == [result.identity.name or result.submission_id, result.identity.user_id]
        assert float(row[5]) == pytest.approx(result.total, abs=0.01)
        if result.status == "graded":
            parts = [float(cell) for cell in row[6:points + 1]]
            assert sum(parts) == pytest.approx(float(row[5]), abs=0.05)
        else:
            assert row[6:points + 1] == [""] * (points - 5)  # no items: empty, not a misleading zero
    identities = {row[1]: row[0] for row in body}
    assert identities == {"1001": "lovelaceada", "1002": "Alan Turing", "1003": "hoppergrace", "1004": "mallory",
                          "": "unlucky-hw3"}
    notes = {row[0]: row[points + 1:] for row in body}
    assert notes["hoppergrace"] == ["1", "yes", "late", "canvas", "Grace Hopper", "gh3"]
    assert notes["Alan Turing"] == ["1", "yes", "", "moodle", "Alan Turing", ""]
    assert notes["unlucky-hw3"] == ["1", "yes", "", "unmatched", "", ""]


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a ``grades.csv`` by column name, as a spreadsheet or an LMS reads them."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_the_lms_file_name_is_the_identity_and_the_manifest_is_only_declared(tmp_path):
    """Mallory hands in a zip whose manifest names another student: the credit goes to Mallory's LMS id."""
    result = result_fixtures.graded_result(tmp_path, "mallory_424242_999_hw3.zip", 0.9,
                                           declared={"name": "Victim Student", "id": "313131"})
    write_exports([result], tmp_path, result_fixtures.rubric())
    [row] = read_csv(tmp_path / "grades.csv")
    assert (row["Name"], row["ID"]) == ("mallory", "424242")
    assert (row["Declared name"], row["Declared id"]) == ("Victim Student", "313131")
    assert "313131" not in (row["Name"], row["ID"], row["SIS User ID"], row["SIS Login ID"])
    assert (row["LMS"], row["Attempt"], row["Late"]) == ("canvas", "1", "")
    suite = ET.fromstring(junit_xml([result])).find("testsuite/properties")
    properties = {p.get("name"): p.get("value") for p in suite}
    assert (properties["student"], properties["student_id"], properties["declared_name"]) == (
        "mallory", "424242", "Victim Student")


@pytest.mark.parametrize("text", ["=HYPERLINK(\"evil.example\",\"Victim\")", "+1+2", "-2+3", "@SUM(A1)",
                                  "\tcmd", "\rcmd"])
def test_student_text_cannot_become_a_spreadsheet_formula(tmp_path, text):
    """OWASP's advice: a single quote before a cell's formula character; the rest of the row as it was."""
    lms_named = result_fixtures.graded_result(tmp_path, f"{text}_777_1_hw3.zip", 0.5,
                                              declared={"name": text, "id": text})
    unmatched = result_fixtures.graded_result(tmp_path, "hw3 final.zip", 0.5, declared={"name": text, "id": text})
    write_exports([lms_named, unmatched], tmp_path, result_fixtures.rubric())
    rows = read_csv(tmp_path / "grades.csv")
    assert [row["Name"] for row in rows] == ["'" + text, "hw3-final"]
    assert [row["ID"] for row in rows] == ["777", ""]
    assert all(row["Declared name"] == row["Declared id"] == "'" + text for row in rows)
    assert [row["LMS"] for row in rows] == ["canvas", "unmatched"]
    total = next(column for column in rows[0] if column.startswith(result_fixtures.rubric().rubric.title))
    assert [float(row[total]) for row in rows] == pytest.approx([lms_named.total, unmatched.total], abs=0.01)


def test_results_written_before_identities_were_recorded_still_load_with_them(graded):
    out, results = graded
    late = next(r for r in results if r.identity.late)
    old = json.loads((out / "results" / f"{late.submission_id}.json").read_text())
    for added in ("identity", "attempt"):
        del old[added]
    loaded = SubmissionResult.model_validate(old)
    assert loaded.identity == late.identity and loaded.identity.user_id == "1003" and loaded.attempt == 1
    assert SubmissionResult.model_validate({**old, "submission_id": "hoppergrace_1003~2"}).attempt == 2


def test_run_gradescope_writes_results_json(graded, tmp_path):
    _, results = graded
    good = results[1]
    submission = tmp_path / "submission"
    submission.mkdir()
    seen = []

    def grade(source: Path, out_dir: Path) -> SubmissionResult:
        seen.append((source, out_dir))
        return good

    written = run_gradescope(grade, submission, tmp_path / "results" / "results.json",
                             rubric=result_fixtures.rubric())
    assert seen == [(submission, tmp_path / "results" / "grader")]
    on_disk = json.loads((tmp_path / "results" / "results.json").read_text())
    assert on_disk == written and on_disk["score"] == pytest.approx(good.total)
    jsonschema.validate(on_disk, GRADESCOPE_SCHEMA)


def test_run_gradescope_writes_a_result_even_when_grading_fails(tmp_path, capsys):
    def grade(source: Path, out_dir: Path) -> SubmissionResult:
        raise MemoryError("the grader ran out of memory")

    written = run_gradescope(grade, tmp_path, tmp_path / "results.json", rubric=result_fixtures.rubric())
    jsonschema.validate(written, GRADESCOPE_SCHEMA)
    assert written["score"] == 0 and "grader failed" in written["output"]
    assert "MemoryError" not in written["output"]  # tracebacks go to the instructor's log, not the student
    assert "MemoryError: the grader ran out of memory" in capsys.readouterr().out


def test_autograder_zip_has_gradescopes_layout_and_is_deterministic(tmp_path):
    first = write_autograder_zip(tmp_path / "a.zip", with_data=False)
    second = write_autograder_zip(tmp_path / "b.zip", with_data=False)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        assert names[:2] == ["setup.sh", "run_autograder"]
        for script in ("setup.sh", "run_autograder"):
            assert archive.getinfo(script).external_attr >> 16 & 0o111
            text = archive.read(script).decode()
            assert text.startswith("#!/usr/bin/env bash\n")
            subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # parses as bash
        run_autograder = archive.read("run_autograder").decode()
        assert ("exec .venv/bin/python -m grader.cli gradescope --submission /autograder/submission "
                "--results /autograder/results/results.json --timeout 600\n") in run_autograder
        setup = archive.read("setup.sh").decode().strip().splitlines()
        assert ".venv/bin/python -m grader.cli baseline" in setup
        assert setup[-1] == ".venv/bin/python -m grader.sandbox.separate_uid lock"  # last: after every cache is made
        for needed in ("pyproject.toml", "requirements.lock", "grader/commands/gradescope.py", "reference/generate.py",
                       "reference/checkpoints/wavenet.pt", "rubrics/audio-generative-models.toml"):
            assert needed in names
        assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".optimizer.pt"))]
        assert not [n for n in names if n.startswith("data/")]


def test_render_all_writes_every_export(graded, tmp_path):
    out, results = graded
    index = render_all(out, result_fixtures.rubric())
    assert index == out / "index.html"
    for name in ("grades.csv", "junit.xml", *(f"gradescope/{r.submission_id}.json" for r in results),
                 *(f"pages/{r.submission_id}.html" for r in results)):
        assert (out / name).is_file(), name


def test_zip_passes_the_timeout_and_a_rubric_other_than_the_bundled_one(tmp_path):
    written = write_autograder_zip(tmp_path / "a.zip", with_data=False, timeout_seconds=1200,
                                   rubric=Path("rubrics/other.toml"))
    with zipfile.ZipFile(written) as archive:
        assert archive.read("run_autograder").decode().rstrip().endswith("--timeout 1200 --rubric rubrics/other.toml")
        setup = archive.read("setup.sh").decode()
        assert "env build --rubric rubrics/other.toml" in setup and "baseline --rubric rubrics/other.toml" in setup


def test_grade_gradescope_writes_a_result_when_grading_cannot_start(tmp_path, capsys):
    results = tmp_path / "results" / "results.json"
    status = gradescope.main(["--submission", str(tmp_path), "--results", str(results),
                              "--rubric", str(tmp_path / "no-such-rubric.toml")])
    payload = json.loads(results.read_text())
    jsonschema.validate(payload, GRADESCOPE_SCHEMA)
    assert status == 2 and payload["score"] == 0 and payload["output"] == gradescope.CANNOT_START_OUTPUT
    assert "no-such-rubric.toml" in capsys.readouterr().err  # the reason, for the staff


def test_the_provisional_result_follows_the_specification(tmp_path):
    written = gradescope.write_placeholder(tmp_path / "results.json", gradescope.PROVISIONAL_OUTPUT)
    assert json.loads((tmp_path / "results.json").read_text()) == written
    jsonschema.validate(written, GRADESCOPE_SCHEMA)
    assert written["score"] == 0 and "did not finish" in written["output"]


def test_the_bundled_rubric_warns_on_gradescopes_defaults():
    rubric = load_rubric(DEFAULT_RUBRIC)
    assert [(run.what, run.script_seconds) for run in entry_runs(rubric)] == [
        ("reconstruct", 120), ("sample", 120), ("mfcc", 60), ("the model-use rerun", 120)]
    memory, time_limits, cpus = platform_warnings(rubric, Platform())
    assert "4096 MB" in memory and "--memory" in memory and "memory_bytes" in memory
    assert "420 s as scripts" in time_limits and "540 s" in time_limits and "--timeout" in time_limits
    assert "notebook_seconds" in time_limits and "0.5 CPU" in cpus and "--cpus" in cpus


def test_a_rubric_that_fits_the_container_gives_no_warning():
    rubric = load_rubric(DEFAULT_RUBRIC)
    small = rubric.limits.run.with_overrides({"memory_bytes": 512 * 2**20, "notebook_seconds": 100})
    fitting = rubric.model_copy(update={"limits": rubric.limits.model_copy(update={"run": small})})
    assert platform_warnings(fitting, Platform(memory_mb=2048, cpus=1, timeout_seconds=600)) == []
    assert len(platform_warnings(fitting, Platform(memory_mb=2048, cpus=1, timeout_seconds=400))) == 1
