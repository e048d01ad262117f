"""Adjustments by hand that survive regrades, the late penalty overridden, and which attempt counts
(:mod:`grader.term.adjustments`, :mod:`grader.term.attempts`, :mod:`grader.term.finalise`), on real results,
real pages and real exports."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from grader.commands import adjust
from grader.report import read_results, render_all
from grader.results import SubmissionResult
from grader.rubric import DEFAULT_RUBRIC, Term
from grader.term.adjustments import AdjustmentError, Request, current, history, read_requests, record
from grader.term.finalise import finalise
from grader.term.model import Lateness
from tests import result_fixtures
from tests.result_fixtures import CLASS_FILES, class_of_five, graded_result

ADA = "Alan-Turing_1002"
ITEM = "preprocess-mfcc-run"
DIGEST = "a" * 64


def on_time(result: SubmissionResult) -> Lateness | None:
    return None


def _with(out: Path, submission: str, **update) -> SubmissionResult:
    """The result of ``submission`` written again with ``update`` (a regrade)."""
    result = SubmissionResult.read(out / "results" / f"{submission}.json").model_copy(update=update)
    result.write(out / "results")
    return result


def _adjust(out: Path, *args: str) -> int:
    return adjust.main([str(out), *args, "--rubric", str(DEFAULT_RUBRIC)])


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    class_of_five(tmp_path)
    _with(tmp_path, ADA, content_digest=DIGEST)
    return tmp_path


def _final(out: Path, rubric=None, lateness=on_time) -> dict[str, SubmissionResult]:
    results, _ = read_results(out)
    return {r.submission_id: r for r in finalise(results, out, rubric or result_fixtures.rubric(), lateness)}


def _item(result: SubmissionResult, item_id: str = ITEM):
    return next(item for item in result.items if item.id == item_id)


def test_an_adjustment_shows_on_the_page_and_changes_every_export(out: Path, capsys):
    automatic = SubmissionResult.read(out / "results" / f"{ADA}.json")
    before = _item(automatic).points
    assert before < 10
    assert _adjust(out, ADA, ITEM, "--points", "10", "--comment", "MFCCs right, tolerance too strict",
                   "--by", "Prof. Babbage") == 0
    render_all(out, result_fixtures.rubric(), lateness=on_time)

    page = (out / "pages" / f"{ADA}.html").read_text()
    assert 'id="adjustment-preprocess-mfcc-run"' in page
    assert "MFCCs right, tolerance too strict" in page and "Prof. Babbage" in page
    assert f"from the automatic {round(before, 2):g} to 10 points" in page
    final_total = round(automatic.total - before + 10, 4)

    grades = (out / "grades.csv").read_text(encoding="utf-8-sig").splitlines()
    header = grades[0].split(",")
    row = next(line.split(",") for line in grades if line.startswith("Alan Turing"))
    assert float(row[5]) == pytest.approx(final_total, abs=0.01)
    assert float(row[header.index(f"{ITEM} (of 10)")]) == 10

    gradescope = json.loads((out / "gradescope" / f"{ADA}.json").read_text())
    assert gradescope["score"] == pytest.approx(final_total)
    test = next(t for t in gradescope["tests"] if ITEM in t["tags"])
    assert test["score"] == 10 and test["status"] == "passed" and "Prof. Babbage" in test["output"]

    suite = next(s for s in ET.parse(out / "junit.xml").getroot() if s.get("name") == ADA)
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert float(properties["total"]) == pytest.approx(final_total, abs=0.01)
    assert float(properties["automatic_total"]) == pytest.approx(automatic.total, abs=0.01)
    case = next(c for c in suite if c.get("name") == ITEM)
    assert case.find("failure") is None

    index = (out / "index.html").read_text()
    assert "badge adjusted" in index and f"{round(final_total, 2):g}" in index


def test_a_regrade_keeps_the_adjustment_and_a_later_one_replaces_it(out: Path):
    record(out, [Request(ADA, ITEM, "first look", "ta", delta=-2)], result_fixtures.rubric())
    automatic = _item(SubmissionResult.read(out / "results" / f"{ADA}.json")).points
    _with(out, ADA, finished_at="2025-02-01T09:00:00+00:00")  # same content, same rubric
    final = _final(out)[ADA]
    assert _item(final).points == pytest.approx(max(0, automatic - 2))
    assert _item(final).adjustment.stale == "" and final.term.stale == []

    record(out, [Request(ADA, ITEM, "second look", "prof", points=7)], result_fixtures.rubric())
    final = _final(out)[ADA]
    assert _item(final).points == 7 and _item(final).adjustment.comment == "second look"
    assert [a.comment for a in history(out)] == ["first look", "second look"]
    assert current(out)[(ADA, ITEM)].comment == "second look"
    again = finalise(list(_final(out).values()), out, result_fixtures.rubric(), on_time)  # idempotent
    assert _item(next(r for r in again if r.submission_id == ADA)).adjustment.automatic == automatic


@pytest.mark.parametrize("change, reason", [
    ({"points": 12.0}, "the item's points changed from 10 to 12"),
    ({"params": {"clips": 6, "tolerance_db": 2.0}}, "the item's params changed"),
])
def test_a_changed_rubric_item_makes_the_adjustment_stale(out: Path, change: dict, reason: str):
    rubric = result_fixtures.rubric()
    record(out, [Request(ADA, ITEM, "generous", "ta", points=10)], rubric)
    items = []
    for item in rubric.items:
        if item.id == ITEM:
            params = item.params.model_validate(change["params"]) if "params" in change else item.params
            item = item.model_copy(update={**change, "params": params})
        items.append(item)
    changed = rubric.model_copy(update={"items": items})
    automatic = SubmissionResult.read(out / "results" / f"{ADA}.json")
    render_all(out, changed, lateness=on_time)
    final = _final(out, changed)[ADA]
    assert reason in _item(final).adjustment.stale
    assert _item(final).points == _item(automatic).points and final.total == pytest.approx(automatic.total)
    assert any(reason in line for line in final.term.stale)
    page, index = (out / "pages" / f"{ADA}.html").read_text(), (out / "index.html").read_text()
    assert "Adjustment not applied" in page and 'id="stale"' in page
    assert 'id="stale"' in index and reason.split("'s ")[-1] in index


def test_changed_content_makes_the_adjustment_stale(out: Path):
    record(out, [Request(ADA, ITEM, "generous", "ta", points=10)], result_fixtures.rubric())
    _with(out, ADA, content_digest="b" * 64, finished_at="2025-03-01T00:00:00+00:00")
    final = _final(out)[ADA]
    assert "content changed" in _item(final).adjustment.stale
    assert _item(final).points == _item(SubmissionResult.read(out / "results" / f"{ADA}.json")).points


def test_an_adjustment_of_an_item_no_longer_graded_is_listed_stale(out: Path):
    record(out, [Request(ADA, ITEM, "generous", "ta", points=10)], result_fixtures.rubric())
    result = SubmissionResult.read(out / "results" / f"{ADA}.json")
    _with(out, ADA, items=[item for item in result.items if item.id != ITEM])
    final = _final(out)[ADA]
    assert any(line.startswith(ITEM) and "no longer graded" in line for line in final.term.stale)


def test_a_csv_with_a_bad_row_stores_nothing_and_names_the_line(out: Path, tmp_path: Path, capsys):
    sheet = tmp_path / "adjustments.csv"
    sheet.write_text("submission,item,points,delta,comment,by\n"
                     f"{ADA},{ITEM},9,,fine,ta\n"
                     f"{ADA},model-training,,x,bad number,ta\n"
                     f"{ADA},no-such-item,1,,unknown item,ta\n"
                     f"{ADA},model-quality,1,2,both,ta\n")
    assert _adjust(out, "--from", str(sheet)) == 2
    error = capsys.readouterr().err
    assert "adjustments.csv:3: delta 'x' is not a number" in error and "nothing stored" in error
    assert history(out) == []
    sheet.write_text("submission,item,points,delta,comment,by\n"
                     f"{ADA},{ITEM},9,,fine,ta\n"
                     f"{ADA},no-such-item,1,,unknown item,ta\n"
                     f"{ADA},model-quality,1,2,both,ta\n"
                     f"nobody,{ITEM},1,,unknown submission,ta\n")
    with pytest.raises(AdjustmentError) as raised:
        record(out, read_requests(sheet), result_fixtures.rubric())
    assert "adjustments.csv:3: no item 'no-such-item'" in str(raised.value)
    assert "adjustments.csv:4: give one of points and delta, not both" in str(raised.value)
    assert "adjustments.csv:5: no submission 'nobody'" in str(raised.value)
    assert history(out) == []

    sheet.write_text("submission,item,points,delta,comment,by\n"
                     f"{ADA},{ITEM},9,,fine,ta\n"
                     f"{ADA},late,0,,extension,\n")
    assert _adjust(out, "--from", str(sheet), "--by", "prof") == 0
    assert [(a.item, a.points, a.by) for a in history(out)] == [(ITEM, 9, "ta"), ("late", 0, "prof")]


def _late(penalty: float = 10.0, refused: bool = False):
    def lateness(result: SubmissionResult) -> Lateness | None:
        if result.submission_id != ADA:
            return None
        return Lateness(submitted_at="2025-01-02T10:00:00+00:00", due="2025-01-01T23:59:00+00:00",
                        late_minutes=601.0, penalty=penalty, refused=refused,
                        words=f"handed in 10 hours late: -{penalty:g} points")
    return lateness


def test_a_late_adjustment_overrides_the_penalty(out: Path):
    automatic = SubmissionResult.read(out / "results" / f"{ADA}.json").total
    assert _final(out, lateness=_late())[ADA].total == pytest.approx(automatic - 10)
    assert _final(out, lateness=_late(refused=True))[ADA].total == 0
    render_all(out, result_fixtures.rubric(), lateness=_late())
    assert "handed in 10 hours late: -10 points" in (out / "pages" / f"{ADA}.html").read_text()

    assert _adjust(out, ADA, "late", "--points", "0", "--comment", "medical extension", "--by", "dean") == 0
    final = _final(out, lateness=_late())[ADA]
    assert final.total == pytest.approx(automatic) and final.term.lateness.penalty == 0
    assert "medical extension" in final.term.lateness.words
    accepted = _final(out, lateness=_late(refused=True))[ADA]
    assert accepted.total == pytest.approx(automatic) and not accepted.term.lateness.refused
    render_all(out, result_fixtures.rubric(), lateness=_late())
    assert "medical extension" in (out / "pages" / f"{ADA}.html").read_text()
    gradescope = json.loads((out / "gradescope" / f"{ADA}.json").read_text())
    assert gradescope["score"] == pytest.approx(automatic) and "medical extension" in gradescope["output"]


def _attempts(tmp_path: Path) -> dict[str, str]:
    """One Canvas student's three attempts (the second the best), another student, and an unmatched file."""
    later = {}
    for attempt, quality in ((2, 0.95), (3, 0.6)):
        result = graded_result(tmp_path, CLASS_FILES["lovelace"], quality, seed=attempt)
        (tmp_path / "results" / f"{result.submission_id}.json").unlink()
        later[attempt] = result.model_copy(update={"submission_id": f"{result.submission_id}~{attempt}",
                                                   "attempt": attempt})
        later[attempt].write(tmp_path / "results")
    first = graded_result(tmp_path, CLASS_FILES["lovelace"], 0.4, seed=1)
    second, third = later[2], later[3]
    graded_result(tmp_path, CLASS_FILES["turing"], 0.5, seed=4)
    graded_result(tmp_path, CLASS_FILES["unlucky"], 0.5, seed=5)
    return {"first": first.submission_id, "second": second.submission_id, "third": third.submission_id}


def _handed_in(times: dict[str, str], due_minute: str = "2025-01-10T00:00:00+00:00"):
    def lateness(result: SubmissionResult) -> Lateness | None:
        when = times.get(result.submission_id)
        if when is None:
            return None
        late = max(0.0, (_dt(when) - _dt(due_minute)).total_seconds() / 60)
        return Lateness(submitted_at=when, due=due_minute, late_minutes=late, penalty=0.0,
                        words=f"handed in {late:g} minutes late" if late else "on time")
    return lateness


def _dt(text: str):
    from datetime import datetime
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("policy, times, counted", [
    ("last", {}, "third"),  # no times: the highest attempt number
    ("last", {"first": "2025-01-09T00:00:00+00:00", "second": "2025-01-12T00:00:00+00:00",
              "third": "2025-01-11T00:00:00+00:00"}, "second"),  # times known: the latest handed in
    ("best", {}, "second"),
    ("last_before_due", {"first": "2025-01-08T00:00:00+00:00", "second": "2025-01-09T00:00:00+00:00",
                         "third": "2025-01-11T00:00:00+00:00"}, "second"),
    ("last_before_due", {}, "third"),  # no time known: the last, said so
])
def test_the_policy_picks_the_attempt_that_counts(tmp_path: Path, policy: str, times: dict, counted: str):
    ids = _attempts(tmp_path)
    rubric = result_fixtures.rubric().model_copy(update={"term": Term(attempts=policy)})
    lateness = _handed_in({ids[k]: v for k, v in times.items()})
    results, _ = read_results(tmp_path)
    final = {r.submission_id: r for r in finalise(results, tmp_path, rubric, lateness)}
    ada = final[ids["first"]].term
    assert [a.submission_id for a in ada.attempts] == [ids[k] for k in
                                                       (sorted(times, key=times.get) if times else
                                                        ("first", "second", "third"))]
    assert [a.submission_id for a in ada.attempts if a.counts] == [ids[counted]]
    assert {k: final[ids[k]].term.counts for k in ids} == {k: k == counted for k in ids}
    for alone in ("Alan-Turing_1002", "unlucky-hw3"):  # another student; an unmatched file, a group of its own
        assert final[alone].term.counts and len(final[alone].term.attempts) == 1
    render_all(tmp_path, rubric, lateness=lateness)
    page = (tmp_path / "pages" / f"{ids['first']}.html").read_text()
    assert 'id="attempts-table"' in page
    assert ('id="not-counted"' in page) == (counted != "first")
    if policy == "last_before_due" and not times:
        assert "No submission time is known: the last attempt counts" in page
    assert "does not count" in (tmp_path / "index.html").read_text()


def test_every_grading_is_kept_once(tmp_path: Path):
    from grader.term.attempts import gradings
    ids = _attempts(tmp_path)
    for _ in range(2):
        render_all(tmp_path, result_fixtures.rubric(), lateness=on_time)
    assert len(gradings(tmp_path)) == 5
    _with(tmp_path, ids["first"], finished_at="2025-05-01T00:00:00+00:00")
    render_all(tmp_path, result_fixtures.rubric(), lateness=on_time)
    kept = gradings(tmp_path)
    assert len(kept) == 6 and sum(row[0] == ids["first"] for row in kept) == 2


def test_the_command_refuses_unknown_names_and_lists(out: Path, capsys):
    assert _adjust(out, "nobody", ITEM, "--points", "1", "--comment", "x") == 2
    error = capsys.readouterr().err
    assert "no submission 'nobody'" in error and ADA in error and history(out) == []
    assert _adjust(out, ADA, "nothing", "--points", "1", "--comment", "x") == 2
    error = capsys.readouterr().err
    assert "no item 'nothing'" in error and ITEM in error and "late" in error
    assert _adjust(out, ADA, ITEM, "--points", "1") == 2
    assert "say why" in capsys.readouterr().err
    assert _adjust(out, ADA, ITEM, "--delta", "-1.5", "--comment", "sloppy plot", "--by", "ta") == 0
    stored = current(out)[(ADA, ITEM)]
    assert stored.delta == -1.5 and stored.digest == DIGEST and stored.basis["points"] == 10
    assert stored.basis["params"] == {"clips": 6, "tolerance_db": 1.0}
    capsys.readouterr()
    assert adjust.main([str(out), "--list"]) == 0
    assert f"{ADA} {ITEM}: delta -1.5 by ta" in capsys.readouterr().out
