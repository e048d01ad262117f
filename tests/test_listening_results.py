"""``grade listen results`` (issue 18): raters screened after BS.1534-3 and P.808, scores with Student's t intervals
equal to a hand calculation, ``listening.csv`` exactly, the class page and a submission page drawing them, and the
rubric's ``listening`` item: points between its bars, skipped below ``min_ratings``, re-scored from new ratings
without running anything."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from grader import sandbox
from grader.cache import cache_key, content_digest
from grader.checks.listening import judge
from grader.intake import submission_id
from grader.listening.apply import apply_ratings
from grader.listening.model import Assignment, Plan, Rater, Rating, Stimulus, Trial
from grader.listening.results import (MAX_CSV_BYTES, Exclusion, Score, UnreadableScores, read_scores,
                                      score, score_test, scores_path, write_csv)
from grader.listening.store import RatingStore, database_path
from grader.pipeline import GradingSetup, grade_submission, item_result
from grader.report import render_all, student_audience
from grader.report.html import read_listening, render_submission
from grader.results import SubmissionResult
from grader.rubric import CLASS_SECTIONS, DEFAULT_RUBRIC, Rubric, load_rubric
from grader.rubric_params import ListeningParams
from tests import result_fixtures
from tests.helpers import write_submission

AT = "2026-01-10T12:00:00+00:00"
MUSHRA_SYSTEMS = ("hidden_reference", "anchor", "reference", "griffin_lim")


# --------------------------------------------------------------------------- plans and ratings made by hand

def plan_of(kind: str, trials: dict[str, list[str]], raters: dict[str, list[str]], traps: dict[str, int] = {}) -> Plan:
    """A plan whose trial ``id`` rates, per name in ``trials[id]``, one stimulus: a MUSHRA system's name (with an
    open reference beside), ``natural`` or ``trap`` (MOS), else a submission id; ``raters``: label -> trial ids."""
    stimuli, made = {}, {}
    for trial_id, names in trials.items():
        keys = []
        for name in names:
            key = f"{trial_id}-{name}"
            system = name if name in (*MUSHRA_SYSTEMS, "natural", "trap") else "submission"
            stimuli[key] = Stimulus(key=key, system=system, submission=name if system == "submission" else None,
                                    source=f"{name}.wav", seconds=2.0)
            keys.append(key)
        reference = None
        if kind == "mushra":
            reference = f"{trial_id}-open"
            stimuli[reference] = Stimulus(key=reference, system="open_reference", source="clip.wav", seconds=2.0)
        made[trial_id] = Trial(id=trial_id, kind=kind, reference=reference, stimuli=keys,
                               trap_answer=traps.get(trial_id))
    return Plan(kind=kind, created=AT, ratings_per_submission=1, secret="not secret", stimuli=stimuli, trials=made,
                raters=[Rater(token=f"token-{label}", label=label,
                              assignments=[Assignment(trial=t, order=made[t].stimuli) for t in rated])
                        for label, rated in raters.items()])


def rated(rater: str, trial: str, scores: dict[str, float]) -> list[Rating]:
    """``rater``'s (label) ratings of ``trial``, by the names :func:`plan_of` was given."""
    return [Rating(rater=f"token-{rater}", trial=trial, stimulus=f"{trial}-{name}", score=value, at=AT)
            for name, value in scores.items()]


def mushra(hidden: float, anchor: float, reference: float, griffin_lim: float, **submissions: float) -> dict:
    return {"hidden_reference": hidden, "anchor": anchor, "reference": reference, "griffin_lim": griffin_lim,
            **submissions}


def by_name(scores: list[Score]) -> dict[str, Score]:
    return {row.submission: row for row in scores}


# Three raters rate trial t1, one rates t2 (hand calculation below).
HAND = plan_of("mushra", {"t1": [*MUSHRA_SYSTEMS, "ada", "bob"], "t2": [*MUSHRA_SYSTEMS, "carl"]},
               {"r1": ["t1", "t2"], "r2": ["t1"], "r3": ["t1"]})
HAND_RATINGS = (rated("r1", "t1", mushra(100, 20, 70, 50, ada=70, bob=40))
                + rated("r2", "t1", mushra(90, 30, 80, 50, ada=80, bob=50))  # 90 is not below 90: r2 stays
                + rated("r3", "t1", mushra(95, 40, 90, 50, ada=90, bob=60))
                + rated("r1", "t2", mushra(95, 30, 80, 50, carl=55)))
T_2, T_3 = 4.302653, 3.182446
"""Student's t, 97.5th percentile, with 2 and 3 degrees of freedom (a table's figures)."""


# --------------------------------------------------------------------------- scores and screening

def test_scores_and_intervals_are_the_hand_calculation():
    scoring = score(HAND, HAND_RATINGS)
    rows = by_name(scoring.scores)
    # ada: 70, 80, 90 -> mean 80, sd 10, half-width t(0.975, 2) * 10 / sqrt(3) = 4.302653 * 5.773503 = 24.8414
    assert rows["ada"].score == pytest.approx(80) and rows["ada"].ratings == 3
    assert rows["ada"].ci_low == pytest.approx(80 - 24.8414, abs=1e-4)
    assert rows["ada"].ci_high == 100  # 80 + 24.8414 = 104.8414, cut to the scale
    assert T_2 * 10 / 3 ** 0.5 == pytest.approx(24.8414, abs=1e-4)
    # bob: 40, 50, 60 -> 50 +- 24.8414; carl: one rating, 55, no interval
    assert (rows["bob"].ci_low, rows["bob"].ci_high) == pytest.approx((25.1586, 74.8414), abs=1e-4)
    assert (rows["carl"].score, rows["carl"].ci_low, rows["carl"].ci_high, rows["carl"].ratings) == (55, None, None, 1)
    # hidden reference: 100, 90, 95, 95 -> mean 95, sd sqrt(50 / 3) = 4.082483, half-width 3.182446 * 4.082483 / 2
    assert T_3 * (50 / 3) ** 0.5 / 2 == pytest.approx(6.4961, abs=1e-4)
    hidden = rows["system:hidden_reference"]
    # its interval's top, 101.4961, is cut to the scale
    assert (hidden.score, hidden.ci_low, hidden.ci_high, hidden.ratings) == pytest.approx((95, 88.5039, 100, 4),
                                                                                           abs=1e-4)
    # anchor 20, 30, 40, 30 and reference 70, 80, 90, 80: sd sqrt(200 / 3) = 8.164966, half-width 12.9923
    assert (rows["system:anchor"].ci_low, rows["system:anchor"].ci_high) == pytest.approx((17.0077, 42.9923), abs=1e-4)
    assert rows["system:reference"].score == 80 and rows["system:reference"].ratings == 4
    griffin_lim = rows["system:griffin_lim"]  # four 50s: no spread, the interval is the mean
    assert (griffin_lim.score, griffin_lim.ci_low, griffin_lim.ci_high) == (50, 50, 50)
    assert scoring.screening.excluded == [] and scoring.screening.ratings == len(HAND_RATINGS)
    assert [row.submission for row in scoring.scores] == ["ada", "bob", "carl", "system:hidden_reference",
                                                          "system:anchor", "system:reference", "system:griffin_lim"]


def test_listening_csv_is_exactly_its_columns_and_rows_and_reads_back(tmp_path):
    path = write_csv(tmp_path, score(HAND, HAND_RATINGS).scores)
    assert path == tmp_path / "listening.csv"
    assert path.read_text() == (
        "submission,kind,score,ci_low,ci_high,ratings\n"
        "ada,mushra,80.000,55.159,100.000,3\n"
        "bob,mushra,50.000,25.159,74.841,3\n"
        "carl,mushra,55.000,,,1\n"
        "system:hidden_reference,mushra,95.000,88.504,100.000,4\n"
        "system:anchor,mushra,30.000,17.008,42.992,4\n"
        "system:reference,mushra,80.000,67.008,92.992,4\n"
        "system:griffin_lim,mushra,50.000,50.000,50.000,4\n")
    back = by_name(read_scores(tmp_path))
    assert back["ada"] == Score(submission="ada", kind="mushra", score=80, ci_low=55.159, ci_high=100, ratings=3)
    assert back["carl"].ci_low is None and back["system:reference"].system == "reference"
    assert read_scores(tmp_path / "nowhere") is None


@pytest.mark.parametrize("text, problem", [
    ("submission,kind,score\n", r"listening.csv:1: the header is not submission,kind,score,ci_low,ci_high,ratings"),
    ("submission,kind,score,ci_low,ci_high,ratings\nada,mushra,80,85,90,3\n",
     r"listening.csv:2: the interval 85 to 90 does not hold the score"),
    ("submission,kind,score,ci_low,ci_high,ratings\nada,mushra,80,70,90,3\nsystem:natural,mushra,80,70,90,3\n",
     r"listening.csv:3: 'system:natural' is no system a mushra test scores"),
    ("submission,kind,score,ci_low,ci_high,ratings\nada,mushra,180,170,190,3\n", r":2: score 180 is off the mushra"),
    ("submission,kind,score,ci_low,ci_high,ratings\nada,mushra,80,,,3\n", r":2: an interval needs two ratings"),
    ("submission,kind,score,ci_low,ci_high,ratings\n=cmd(),mushra,80,,,1\n", r":2: '=cmd\(\)' is not a submission id"),
    ("submission,kind,score,ci_low,ci_high,ratings\nada,mushra,80,,,1\nada,mushra,80,,,1\n",
     r":3: a second row of ada"),
])
def test_a_listening_csv_not_as_written_is_refused_with_its_line(tmp_path, text, problem):
    (tmp_path / "listening.csv").write_text(text)
    with pytest.raises(UnreadableScores, match=problem):
        read_scores(tmp_path)


def test_a_listening_csv_is_read_within_a_bound(tmp_path):
    (tmp_path / "listening.csv").write_bytes(b"x" * (MAX_CSV_BYTES + 1))
    with pytest.raises(UnreadableScores, match="larger than"):
        read_scores(tmp_path)


def test_a_careless_rater_is_screened_out_and_the_scores_change_accordingly():
    trials = {f"t{k}": [*MUSHRA_SYSTEMS, "ada"] for k in range(1, 6)}
    plan = plan_of("mushra", trials, {name: list(trials) for name in ("good 1", "good 2", "careless")})
    ratings = []
    for trial in trials:
        ratings += rated("good 1", trial, mushra(100, 20, 90, 60, ada=80))
        ratings += rated("good 2", trial, mushra(100, 20, 90, 60, ada=80))
        ratings += rated("careless", trial, mushra(50 if trial in ("t1", "t2") else 100, 20, 90, 60, ada=20))
    scoring = score(plan, ratings)
    assert scoring.screening.excluded == [Exclusion(rater="careless", reason="rated the hidden reference below 90 in "
                                                    "2 of 5 MUSHRA trials (40%, more than 15%)")]
    assert (scoring.screening.rated, scoring.screening.ratings) == (3, 2 * 5 * 5)
    rows = by_name(scoring.scores)
    # With the careless rater ada would score (10 * 80 + 5 * 20) / 15 = 60 on 15 ratings; without, 80 on 10.
    assert (rows["ada"].score, rows["ada"].ci_low, rows["ada"].ci_high, rows["ada"].ratings) == (80, 80, 80, 10)
    assert (rows["system:hidden_reference"].score, rows["system:hidden_reference"].ratings) == (100, 10)
    assert "careless: rated the hidden reference below 90 in 2 of 5 MUSHRA trials" in scoring.summary()


@pytest.mark.parametrize("trials, low, kept", [(10, 1, True), (20, 3, True), (10, 2, False)],
                         ids=["1 of 10 (10%) kept", "3 of 20 (15%) kept", "2 of 10 (20%) left out"])
def test_more_than_15_percent_of_trials_leaves_a_rater_out(trials, low, kept):
    names = {f"t{k}": [*MUSHRA_SYSTEMS, "ada"] for k in range(trials)}
    plan = plan_of("mushra", names, {"steady": list(names)})
    ratings = [rating for k, trial in enumerate(names)
               for rating in rated("steady", trial, mushra(80 if k < low else 100, 20, 90, 60, ada=70))]
    scoring = score(plan, ratings)
    assert (scoring.screening.excluded == []) is kept
    hidden = by_name(scoring.scores)["system:hidden_reference"]
    assert hidden.ratings == (trials if kept else 0)
    if kept:
        assert hidden.score == pytest.approx((80 * low + 100 * (trials - low)) / trials)


def test_a_mos_rater_who_fails_a_trap_is_left_out_and_traps_are_never_scored():
    plan = plan_of("mos", {"m1": ["ada"], "m2": ["natural"], "m3": ["trap"]},
                   {"honest": ["m1", "m2", "m3"], "also honest": ["m1", "m2", "m3"], "liar": ["m1", "m2", "m3"]},
                   traps={"m3": 2})
    ratings = (rated("honest", "m1", {"ada": 4}) + rated("honest", "m2", {"natural": 5})
               + rated("honest", "m3", {"trap": 2})
               + rated("also honest", "m1", {"ada": 3}) + rated("also honest", "m2", {"natural": 4})
               + rated("also honest", "m3", {"trap": 2})
               + rated("liar", "m1", {"ada": 1}) + rated("liar", "m2", {"natural": 1})
               + rated("liar", "m3", {"trap": 5}))
    scoring = score(plan, ratings)
    assert scoring.screening.excluded == [Exclusion(rater="liar", reason="answered 1 of 1 trapping items otherwise "
                                                    "than asked (trial m3: asked for 2, answered 5)")]
    rows = by_name(scoring.scores)
    assert list(rows) == ["ada", "system:natural"]  # the trap is no system
    # ada: 4 and 3 -> 3.5, sd 0.707107, half-width t(0.975, 1) * 0.707107 / sqrt(2) = 12.706205 * 0.5 = 6.353102
    # the interval, -2.8531 to 9.8531, cut to the scale: 1 to 5
    assert (rows["ada"].score, rows["ada"].ci_low, rows["ada"].ci_high) == pytest.approx((3.5, 1, 5),
                                                                                           abs=1e-4)
    assert (rows["system:natural"].score, rows["system:natural"].ratings) == (4.5, 2)


def test_ratings_of_no_trial_of_the_plan_are_ignored_and_counted():
    stray = [Rating(rater="token-nobody", trial="t1", stimulus="t1-ada", score=0, at=AT),
             Rating(rater="token-r1", trial="t9", stimulus="t9-ada", score=0, at=AT)]
    scoring = score(HAND, HAND_RATINGS + stray)
    assert scoring.screening.ignored == 2 and by_name(scoring.scores)["ada"].score == 80


# --------------------------------------------------------------------------- the rubric item

def scores_of(**rows: tuple[float, int]) -> list[Score]:
    """MUSHRA rows, ``name=(score, ratings)``, with an interval of 5 on each side; ``system_x`` names system x."""
    return [Score(submission=name.replace("system_", "system:"), kind="mushra", score=value,
                  ci_low=None if n < 2 else value - 5, ci_high=None if n < 2 else value + 5, ratings=n)
            for name, (value, n) in rows.items()]


ITEM_SCORES = scores_of(ada=(80, 6), bob=(20, 6), carl=(70, 2), system_reference=(90, 30), system_anchor=(30, 30),
                        system_hidden_reference=(98, 30), system_griffin_lim=(60, 30))


@pytest.mark.parametrize("params, sid, fraction", [
    ({}, "ada", (80 - 30) / (90 - 30)),  # between the anchor and the reference solution of the same test
    ({}, "bob", 0.0),  # below the anchor
    ({"full_at": 70, "floor_at": 20}, "ada", 1.0),  # past full points
    ({"full_at": "reference", "floor_at": 40}, "ada", (80 - 40) / (90 - 40)),
])
def test_the_item_maps_a_score_to_points_between_its_bars(params, sid, fraction):
    outcome = judge(ListeningParams.model_validate(params), sid, ITEM_SCORES)
    assert not outcome.skipped and not outcome.error
    assert outcome.fraction == pytest.approx(fraction)
    assert outcome.metrics["ratings"] == 6 and outcome.metrics["full"] in (70, 90)
    assert "reference solution: 90.0 (95% CI 85.0 to 95.0, 30 ratings)" in outcome.evidence


def test_the_item_is_skipped_below_min_ratings_and_without_a_test(rubric_on):
    item = next(i for i in rubric_on.items if i.check == "listening")
    few = judge(ListeningParams.model_validate({"min_ratings": 3}), "carl", ITEM_SCORES)
    assert few.skipped and "2 ratings of this submission's audio" in few.explanation
    assert "fewer than the 3 it needs" in few.explanation
    result = item_result(item, few, 0.01)
    assert (result.status, result.points, result.max_points) == ("skipped", 0.0, 0.0)  # neither zero nor counted
    for scores, sid, words in ((None, "ada", "No MUSHRA listening test has been scored yet"),
                               (ITEM_SCORES, "dan", "not in the MUSHRA listening test")):
        outcome = judge(ListeningParams(), sid, scores)
        assert outcome.skipped and words in outcome.explanation
    mos = judge(ListeningParams.model_validate({"kind": "mos", "full_at": 4.5, "floor_at": 2}), "ada", ITEM_SCORES)
    assert mos.skipped and "not a MOS test" in mos.explanation


def test_a_bar_the_test_did_not_score_is_the_instructors_error():
    without = [row for row in ITEM_SCORES if row.submission != "system:reference"]
    outcome = judge(ListeningParams(), "ada", without)
    assert outcome.error
    assert "no score of the reference solution, which the rubric's full_at names" in outcome.explanation


@pytest.mark.parametrize("params, problem", [
    ({"kind": "mos"}, "a mos test has no reference; set full_at to a score from 1 to 5"),
    ({"full_at": 101}, "full_at = 101 is off the mushra scale, 0 to 100"),
    ({"full_at": 40, "floor_at": 60}, "full points must lie above the floor"),
    ({"floor_at": "reference"}, '"reference" is not a system of the test or a number; allowed: anchor'),
])
def test_bars_off_the_scale_or_without_room_are_rubric_errors(params, problem):
    with pytest.raises(ValueError, match=problem):
        ListeningParams.model_validate(params)


def listening_rubric(folder: Path) -> Rubric:
    """The bundled rubric with its listening item turned on as its comment says: the block uncommented, and its
    4 points taken from model-quality (12 -> 8); written into ``folder`` and loaded."""
    lines = DEFAULT_RUBRIC.read_text().splitlines()
    start = lines.index("# [[items]]")
    end = next(k for k in range(start, len(lines)) if not lines[k].startswith("# "))
    text = "\n".join(lines[:start] + [line.removeprefix("# ") for line in lines[start:end]] + lines[end:]) + "\n"
    quality = text.index('id = "model-quality"')
    assert text.index("points = 12\n", quality) < text.index("[[items]]", quality)
    path = folder / "listening.toml"
    path.write_text(text[:quality] + text[quality:].replace("points = 12\n", "points = 8\n", 1))
    return load_rubric(path)


@pytest.fixture(scope="module")
def rubric_on(tmp_path_factory) -> Rubric:
    return listening_rubric(tmp_path_factory.mktemp("rubric"))


def cut(rubric: Rubric, *item_ids: str) -> Rubric:
    """``rubric`` with only ``item_ids`` and no quiz, its total what they give."""
    items = [item for item in rubric.items if item.id in item_ids]
    info = rubric.rubric.model_copy(update={"total_points": sum(item.points for item in items)})
    return Rubric.model_validate({**rubric.model_dump(), "rubric": info.model_dump(), "quiz": None,
                                  "items": [item.model_dump() for item in items]})


def test_the_bundled_rubric_has_the_item_off_and_its_comment_turns_it_on(rubric_on):
    assert "listening" not in {item.check for item in load_rubric(DEFAULT_RUBRIC).items}
    item = next(item for item in rubric_on.items if item.check == "listening")
    assert (item.id, item.points, item.params) == ("model-listening", 4, ListeningParams(min_ratings=5))
    assert rubric_on.rubric.total_points == 100


# --------------------------------------------------------------------------- grading, the cache key, apply_ratings

def no_baseline():
    raise AssertionError("a static and a listening item never need the reference baseline")


def run_a_test(out: Path, sids: list[str], raters: int = 5, **scores: float) -> None:
    """A new MUSHRA test of ``sids`` in ``out`` (in place of any before), one trial rated by ``raters`` raters
    through the real store, scored (``listening.csv``, ``screening.json``); ``scores``: each name's rating."""
    shutil.rmtree(out / "listening", ignore_errors=True)
    plan = plan_of("mushra", {"t1": [*MUSHRA_SYSTEMS, *sids]}, {f"rater {k}": ["t1"] for k in range(raters)})
    plan.write(out)
    with RatingStore(database_path(out)) as store:
        for rater in plan.raters:
            store.submit(plan, rater.token, "t1", {f"t1-{name}": value for name, value in scores.items()},
                         require_played=False)
    score_test(out)


def test_the_cache_key_holds_the_ratings_only_where_an_item_grades_with_them(tmp_path, small_heldout, rubric_on):
    source = write_submission(tmp_path / "doe_1_2_hw3")
    bundled = GradingSetup(rubric=load_rubric(DEFAULT_RUBRIC), heldout=small_heldout, load_baseline=no_baseline,
                           out_dir=tmp_path / "out")
    before = bundled.cache_key(source)
    assert before == cache_key(content_digest(source), bundled.rubric.model_dump_json(exclude=set(CLASS_SECTIONS)),
                               small_heldout.digest, environment_digest=bundled.environment.digest,
                               student_mode=False, allow_unsandboxed=False)  # the key as it was
    on = GradingSetup(rubric=rubric_on, heldout=small_heldout, load_baseline=no_baseline, out_dir=tmp_path / "out")
    without_test = on.cache_key(source)
    sid = submission_id(source)
    run_a_test(tmp_path / "out", [sid], **mushra(100, 30, 90, 60, **{sid: 80}))
    assert bundled.cache_key(source) == before
    with_test = on.cache_key(source)
    run_a_test(tmp_path / "out", [sid], **mushra(100, 30, 90, 60, **{sid: 70}))
    assert len({without_test, with_test, on.cache_key(source)}) == 3


def test_new_ratings_rescore_the_results_graded_without_running_anything(tmp_path, small_heldout, rubric_on,
                                                                          monkeypatch):
    rubric = cut(rubric_on, "evaluation-code", "model-listening")
    out = tmp_path / "out"
    setup = GradingSetup(rubric=rubric, heldout=small_heldout, load_baseline=no_baseline, out_dir=out)
    source = write_submission(tmp_path / "lovelaceada_1001_5001_hw3")
    sid = submission_id(source)
    first = grade_submission(source, setup)
    listened = next(item for item in first.items if item.id == "model-listening")
    assert (listened.status, listened.points, listened.max_points) == ("skipped", 0, 0)
    assert "No MUSHRA listening test has been scored yet" in listened.explanation
    static = next(item for item in first.items if item.id == "evaluation-code")
    assert (first.total, first.max_total) == (static.points, 6)  # the skipped item's 4 points left out

    run_a_test(out, [sid], **mushra(100, 30, 90, 60, **{sid: 80}))
    for name in ("grade_submission", "unpack"):
        monkeypatch.setattr(f"grader.pipeline.{name}", lambda *a, **k: pytest.fail("nothing is graded again"))
    monkeypatch.setattr(sandbox, "run", lambda *a, **k: pytest.fail("no code runs"))
    assert apply_ratings(out, rubric) == 1
    after = SubmissionResult.read(out / "results" / f"{sid}.json")
    listened = next(item for item in after.items if item.id == "model-listening")
    # 80 between the anchor's 30 and the reference solution's 90: (80 - 30) / (90 - 30) of 4 points
    assert (listened.status, listened.points, listened.max_points) == ("partial", pytest.approx(4 * 50 / 60, abs=1e-4),
                                                                        4)
    assert "80.0 (95% CI 80.0 to 80.0, 5 ratings), sits 83% of the way" in listened.explanation
    assert after.total == pytest.approx(first.total + 4 * 50 / 60, abs=1e-4) and after.max_total == 10
    assert after.runs == first.runs and after.cache_key == first.cache_key
    assert apply_ratings(out, rubric) == 0  # nothing new

    monkeypatch.undo()
    assert setup.cache_key(source) != first.cache_key  # the ratings changed: the result is not reused
    again = grade_submission(source, setup)
    regraded = next(item for item in again.items if item.id == "model-listening")
    assert regraded.model_dump(exclude={"seconds"}) == listened.model_dump(exclude={"seconds"})  # the same judge
    assert (again.total, again.max_total) == (after.total, after.max_total)


# --------------------------------------------------------------------------- the pages

@pytest.fixture(scope="module")
def class_with_a_test(tmp_path_factory) -> tuple[Path, list[SubmissionResult]]:
    """The class of five graded, its three graded submissions rated in two MUSHRA trials by three raters, the third
    careless (the hidden reference at 40 in both); scored and rendered."""
    out = tmp_path_factory.mktemp("listening")
    results = result_fixtures.class_of_five(out)
    lovelace, turing, hopper = (result.submission_id for result in results[:3])
    trials = {trial: [*MUSHRA_SYSTEMS, lovelace, turing, hopper] for trial in ("t1", "t2")}
    plan = plan_of("mushra", trials, {f"rater {k}": list(trials) for k in (1, 2, 3)})
    plan.write(out)
    with RatingStore(database_path(out)) as store:
        for rater in plan.raters:
            for trial in trials:
                given = (mushra(100, 20, 90, 60, **{lovelace: 85 if trial == "t1" else 75, turing: 50, hopper: 30})
                         if rater.label != "rater 3" else mushra(40, 0, 0, 0, **{lovelace: 0, turing: 0, hopper: 0}))
                store.submit(plan, rater.token, trial, {f"{trial}-{name}": value for name, value in given.items()},
                             require_played=False)
    score_test(out)
    render_all(out, result_fixtures.rubric())
    return out, results


def test_the_class_page_draws_the_scores_and_the_screening(class_with_a_test):
    out, results = class_with_a_test
    html = (out / "index.html").read_text()
    assert '<a href="#listening">listening test</a>' in html and '<h2 id="listening">Listening test</h2>' in html
    assert ("<li><strong>rater 3</strong>: rated the hidden reference below 90 in 2 of 2 MUSHRA trials (100%, more "
            "than 15%)</li>") in html
    assert "3 raters in the test, 3 rated; post-screening left out 1" in html
    assert "MUSHRA (0 to 100): 3 submissions scored" in html
    assert html.count('<a class="submission"') == 3 and html.count('<text class="system"') == 4
    # lovelace: 85, 75, 85, 75 -> 80, sd 5.773503, half-width 3.182446 * 5.773503 / 2 = 9.1869
    assert "<title>lovelaceada_1001: 80.0 (95% CI 70.8 to 89.2, 4 ratings)</title>" in html
    assert "reference solution 90.0" in html and "anchor 20.0" in html
    first = html.index('<a class="submission" href="pages/lovelaceada_1001.html">')
    assert first < html.index('<a class="submission" href="pages/Alan-Turing_1002.html">') < html.index(
        '<a class="submission" href="pages/hoppergrace_1003.html">')  # best first


def test_a_submission_page_shows_its_score_beside_the_systems(class_with_a_test):
    out, results = class_with_a_test
    html = (out / "pages" / "lovelaceada_1001.html").read_text()
    assert '<h2 id="listening">Listening test (MUSHRA, 0 to 100)</h2>' in html
    table = html[html.index('<table id="listening-scores">'):]
    table = table[:table.index("</table>")]
    rows = [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in table.split("<tr")[2:]]
    assert [[row[0], row[1], row[3], row[4]] for row in rows] == [
        ["this submission", "80.0", "70.8 to 89.2", "4"], ["hidden reference", "100.0", "100.0 to 100.0", "4"],
        ["anchor (3.5 kHz low-pass)", "20.0", "20.0 to 20.0", "4"], ["reference solution", "90.0", "90.0 to 90.0", "4"],
        ["Griffin-Lim (true log-mel)", "60.0", "60.0 to 60.0", "4"]]
    student = result_fixtures.rubric()  # without a listening item: a student sees no listening score
    listening, _ = read_listening(out)
    assert 'id="listening"' not in render_submission(results[0], out, rubric=student, listening=listening,
                                                     audience=student_audience(student))
    assert 'id="listening"' not in (out / "pages" / "mallory_1004.html").read_text()  # refused: in no test


def test_pages_without_a_test_or_with_a_broken_one_still_render(tmp_path):
    result_fixtures.class_of_five(tmp_path)
    index = render_all(tmp_path, result_fixtures.rubric())
    assert 'id="listening"' not in index.read_text()
    assert 'id="listening"' not in (tmp_path / "pages" / "lovelaceada_1001.html").read_text()
    scores_path(tmp_path).write_text("not,the,header\n")
    index = render_all(tmp_path, result_fixtures.rubric())
    assert "The listening test's scores could not be read:</strong>" in index.read_text()
    assert "listening.csv:1: the header is not" in index.read_text()


def test_the_class_page_with_a_test_opens_in_a_browser_and_fits_a_phone(class_with_a_test, browser):
    out, _ = class_with_a_test
    page = browser.new_page(viewport={"width": 375, "height": 812})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((out / "index.html").as_uri())
    assert page.locator("svg.listening-plot a.submission").count() == 3
    assert page.locator("svg.listening-plot circle").first.bounding_box()["width"] > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.click("svg.listening-plot a.submission >> nth=0")
    assert page.url.endswith("pages/lovelaceada_1001.html")
    assert errors == []
    page.close()
