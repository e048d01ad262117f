"""``grade listen make``'s plan (:mod:`grader.listening.plan`) on a real graded class: real result files, real audio,
real espeak-ng; every stimulus measured from the file written."""
from __future__ import annotations

import csv
import shutil
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from grader.heldout import HeldoutSet
from grader.listening.model import DATABASE_NAME, FOLDER, STIMULI_FOLDER, Plan, stimulus_path
from grader.listening.plan import LINKS_NAME, PlanError, make_plan, write_links
from grader.listening import stimuli
from grader.listening.stimuli import LEVEL_DBFS, active_rms, low_pass_anchor, read_audio
from grader.results import SubmissionResult
from grader.rubric import Term
from reference import SAMPLE_RATE
from reference.data import read_manifest
from tests.result_fixtures import class_of_five, rubric

NOW = datetime(2026, 12, 20, 12, 0, tzinfo=timezone.utc)
DUE = datetime(2026, 12, 4, 23, 59, tzinfo=timezone(timedelta(hours=-5)))
SYSTEMS = ("open_reference", "hidden_reference", "anchor", "reference", "griffin_lim", "natural", "trap",
           "submission")
RATINGS = rubric().listening.ratings_per_submission


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> tuple[Path, list[str]]:
    """class_of_five graded once: three graded (the third's last clip has no output), one refused, one failed."""
    out = tmp_path_factory.mktemp("class") / "out"
    graded = [r.submission_id for r in class_of_five(out) if r.status == "graded"]
    return out, graded


@pytest.fixture
def out(graded_class, tmp_path) -> Path:
    """A fresh copy of the graded class to make a test in."""
    return Path(shutil.copytree(graded_class[0], tmp_path / "out"))


@pytest.fixture(scope="module")
def public_set(embedded_data) -> HeldoutSet:
    """The embedded data set's held-out set as the grader names it, without preparing its inputs (not needed here)."""
    clips = read_manifest(embedded_data)
    split = {name: tuple(c for c in clips if c.split == name) for name in ("heldout", "test", "train")}
    return HeldoutSet("heldout", split["heldout"], split["test"][:6], split["train"], "0" * 64, embedded_data)


def ratings_of(plan: Plan) -> Counter:
    """Submission id -> ratings (a rater rating one of its stimuli)."""
    return Counter(plan.stimuli[key].submission for rater in plan.raters for assignment in rater.assignments
                   for key in assignment.order if plan.stimuli[key].submission)


def systems(plan: Plan, keys: list[str]) -> list[str]:
    return [plan.stimuli[key].system for key in keys]


def band_db(test: np.ndarray, truth: np.ndarray, low: float, high: float) -> float:
    """The level of ``test`` against ``truth`` in dB, between ``low`` and ``high`` Hz (Welch spectra)."""
    freqs, truth_power = signal.welch(truth, SAMPLE_RATE, nperseg=1024)
    _, test_power = signal.welch(test, SAMPLE_RATE, nperseg=1024)
    band = (freqs >= low) & (freqs < high)
    return float(10 * np.log10(test_power[band].sum() / truth_power[band].sum()))


def test_mushra_plan_rates_every_submission_blind_and_spread(out, graded_class):
    graded = graded_class[1]
    plan = make_plan(out, rubric(), per_rater=2, now=NOW, closes=NOW + timedelta(days=7), seed=3)

    assert Plan.read(out) == plan
    assert plan.kind == "mushra" and plan.created == "2026-12-20T12:00:00+00:00"
    assert plan.closes == "2026-12-27T12:00:00+00:00"
    assert len(plan.raters) == 3  # 5 trials of all three at 2 trials a rater at most
    assert [r.label for r in plan.raters] == ["rater 1", "rater 2", "rater 3"]
    assert all(1 <= len(r.assignments) <= 2 for r in plan.raters)
    ratings = ratings_of(plan)
    assert set(ratings) == set(graded) and min(ratings.values()) >= RATINGS
    for trial in plan.trials.values():
        assert plan.stimuli[trial.reference].system == "open_reference" and trial.reference not in trial.stimuli
        assert sorted(s for s in systems(plan, trial.stimuli) if s != "submission") == [
            "anchor", "griffin_lim", "hidden_reference", "reference"]
        assert len({plan.stimuli[key].source for key in [trial.reference, *trial.stimuli]}) == 1  # one clip
    keys = [key for trial in plan.trials.values() for key in [trial.reference, *trial.stimuli]]
    assert len(keys) == len(set(keys)) == len(plan.stimuli)  # a key of its own for every stimulus of every trial
    assert sorted(p.stem for p in (out / FOLDER / STIMULI_FOLDER).iterdir()) == sorted(plan.stimuli)

    # spread: over clips and raters; the flawed submission never on the clip it has no output of
    heard = {sid: {"clips": set(), "raters": set()} for sid in graded}
    for rater in plan.raters:
        for assignment in rater.assignments:
            for key in assignment.order:
                stimulus = plan.stimuli[key]
                if stimulus.submission:
                    heard[stimulus.submission]["clips"].add(stimulus.source)
                    heard[stimulus.submission]["raters"].add(rater.label)
    assert all(len(h["clips"]) >= 2 and len(h["raters"]) >= 2 for h in heard.values())
    hopper = SubmissionResult.read(out / "results" / "hoppergrace_1003.json")
    assert [clip.name for clip in hopper.listen if clip.student is None][0] not in heard[hopper.submission_id]["clips"]

    # blind: every trial's stimuli shuffled, differently for different raters; nothing served names anyone
    orders = {tuple(systems(plan, a.order)) for r in plan.raters for a in r.assignments}
    assert len(orders) > 1
    assert any(a.order != plan.trials[a.trial].stimuli for r in plan.raters for a in r.assignments)
    served = [*plan.stimuli, *plan.trials, *(p.name for p in (out / FOLDER / STIMULI_FOLDER).iterdir()),
              *(a.model_dump_json() for r in plan.raters for a in r.assignments), *(r.token for r in plan.raters)]
    for word in (*graded, *SYSTEMS, "lovelace", "turing", "hopper"):
        assert not [text for text in served if word.lower() in text.lower()], word


def test_mushra_stimuli_are_loudness_matched_and_the_anchor_low_passed(out):
    plan = make_plan(out, rubric(), now=NOW, seed=1)
    trial = next(iter(plan.trials.values()))
    audio = {plan.stimuli[key].system: read_audio(stimulus_path(out, key)) for key in trial.stimuli}
    assert audio["hidden_reference"].size == read_audio(stimulus_path(out, trial.reference)).size
    for system, wav in audio.items():
        assert abs(20 * np.log10(active_rms(wav)) - LEVEL_DBFS) < 0.5, system
    anchor, truth = audio["anchor"], audio["hidden_reference"]
    assert abs(band_db(anchor, truth, 100, 3000)) < 0.5  # the pass band untouched
    assert band_db(anchor, truth, 3500, 4000) < -6  # the transition
    assert band_db(anchor, truth, 4000, SAMPLE_RATE / 2 + 1) < -40  # gone from 4 kHz, down to 16 bits' noise


def test_anchor_filter_meets_bs1534s_mask():
    """ITU-R BS.1534-3's 3.5 kHz low-pass: flat to 0.1 dB in the pass band, 25 dB down at 4 kHz, 50 dB at 4.5 kHz;
    measured on white noise, in floating point."""
    noise = np.random.default_rng(0).standard_normal(20 * SAMPLE_RATE).astype(np.float32) * 0.1
    filtered = low_pass_anchor(noise)
    freqs, before = signal.welch(noise, SAMPLE_RATE, nperseg=4096)
    _, after = signal.welch(filtered, SAMPLE_RATE, nperseg=4096)
    gain = 10 * np.log10(after / before)
    assert np.all(np.abs(gain[(freqs > 50) & (freqs < 2900)]) < 0.1)
    assert np.all(gain[freqs >= 4000] < -25) and np.all(gain[freqs >= 4500] < -50)


def test_peer_mode_never_plays_a_student_their_own_work(out, graded_class, caplog):
    graded = graded_class[1]
    again = SubmissionResult.read(out / "results" / "lovelaceada_1001.json")
    again.model_copy(update={"submission_id": "lovelaceada_1001~2", "attempt": 2}).write(out / "results")
    with_due = rubric().model_copy(update={"term": Term(due=DUE)})
    plan = make_plan(out, with_due, peers=True, now=NOW, seed=2)

    assert plan.peers and sorted(r.label for r in plan.raters) == sorted(graded)  # one rater a student
    assert all(r.submission == r.label for r in plan.raters)
    for rater in plan.raters:
        own = {rater.submission, f"{rater.submission}~2"}
        for assignment in rater.assignments:
            trial = plan.trials[assignment.trial]
            assert not own & {plan.stimuli[key].submission for key in [trial.reference, *trial.stimuli]}
    assert min(ratings_of(plan)[sid] for sid in [*graded, "lovelaceada_1001~2"]) >= RATINGS
    assert "held-out set is disclosed" in caplog.text


def test_peer_mode_waits_for_the_due_date(out):
    with pytest.raises(PlanError, match=r"set `\[term\] due` in the rubric"):
        make_plan(out, rubric(), peers=True, now=NOW)
    with_due = rubric().model_copy(update={"term": Term(due=DUE)})
    with pytest.raises(PlanError, match="before the due date 2026-12-04T23:59:00-05:00"):
        make_plan(out, with_due, peers=True, now=DUE - timedelta(hours=1))
    assert not (out / FOLDER / "plan.json").exists()


def test_mos_plan_has_traps_and_natural_clips_for_every_rater(out, graded_class, public_set):
    graded = graded_class[1]
    plan = make_plan(out, rubric(), kind="mos", now=NOW, seed=4, heldout=public_set)

    # each submission handed in one valid sample: its ratings need as many different raters
    assert len(plan.raters) == RATINGS
    ratings = ratings_of(plan)
    assert set(ratings) == set(graded) and min(ratings.values()) >= RATINGS
    sources = {plan.stimuli[key].source for trial in plan.trials.values() for key in trial.stimuli
               if plan.stimuli[key].system == "submission"}
    assert sources == {"sample_0.wav"}  # not the silent one, not the garbage bytes
    held_out = {str(clip.path) for clip in public_set.clips}
    for rater in plan.raters:
        trials = [plan.trials[a.trial] for a in rater.assignments]
        assert len({t.id for t in trials}) == len(trials)
        kinds = Counter(plan.stimuli[t.stimuli[0]].system for t in trials)
        assert kinds["trap"] >= 1 and kinds["natural"] >= 1
        for trial in trials:
            assert len(trial.stimuli) == 1 and trial.reference is None
            assert (trial.trap_answer is not None) == (plan.stimuli[trial.stimuli[0]].system == "trap")
    for stimulus in plan.stimuli.values():
        assert stimulus.source not in held_out
        if stimulus.system == "trap":
            natural = stimulus.source.split(",")[0]
            assert stimulus.seconds > read_audio(Path(natural)).size / SAMPLE_RATE + 1  # the spoken request
    answers = [t.trap_answer for t in plan.trials.values() if t.trap_answer is not None]
    assert answers and all(1 <= answer <= 5 for answer in answers)


def test_too_few_raters_says_how_many_are_needed(out, public_set):
    with pytest.raises(PlanError, match=r"1 rater\(s\) of at most 2 trials each can rate 2 MUSHRA trials, but .* "
                                        r"need 5: give 3 raters, or allow 5 trials per rater"):
        make_plan(out, rubric(), raters=1, per_rater=2, now=NOW)
    with pytest.raises(PlanError, match=r"its 5 ratings need 5 different raters .* there are 2 rater\(s\): "
                                        r"give 5 raters"):
        make_plan(out, rubric(), kind="mos", raters=2, now=NOW, heldout=public_set)
    with pytest.raises(PlanError, match=r"6 rater\(s\) of at most 3 trials each \(1 of them samples, .*\) can give 6 "
                                        r"ratings, but 3 submissions with 5 ratings each need 15: give 15 raters, or "
                                        r"allow 5 trials per rater"):
        make_plan(out, rubric(), kind="mos", raters=6, per_rater=3, now=NOW, heldout=public_set)


def test_a_test_with_ratings_is_replaced_only_when_asked(out):
    first = make_plan(out, rubric(), now=NOW, seed=1)
    write_links(first, out, "https://listen.example.edu:8000/")
    (out / FOLDER / DATABASE_NAME).write_bytes(b"ratings")
    with pytest.raises(PlanError, match="already has ratings"):
        make_plan(out, rubric(), now=NOW)
    assert Plan.read(out) == first

    second = make_plan(out, rubric(), now=NOW, replace=True)
    assert not (out / FOLDER / DATABASE_NAME).exists() and not (out / FOLDER / LINKS_NAME).exists()
    assert [p.read_bytes() for p in (out / FOLDER).glob("ratings-replaced-*.sqlite")] == [b"ratings"]
    assert sorted(p.stem for p in (out / FOLDER / STIMULI_FOLDER).iterdir()) == sorted(second.stimuli)


def test_unreadable_results_and_silent_submissions_are_named(out, caplog):
    (out / "results" / "broken.json").write_text("{not json")
    lovelace = SubmissionResult.read(out / "results" / "lovelaceada_1001.json")
    lovelace.model_copy(update={"submission_id": "quiet_1009", "samples": [],
                                "listen": [c.model_copy(update={"student": None}) for c in lovelace.listen]}
                        ).write(out / "results")
    plan = make_plan(out, rubric(), now=NOW)
    assert "results/broken.json: not a readable result" in caplog.text
    assert "get no ratings: quiet_1009" in caplog.text
    assert "quiet_1009" not in ratings_of(plan)


def test_links_file_gives_each_rater_their_link(out):
    plan = make_plan(out, rubric(), per_rater=2, now=NOW)
    path = write_links(plan, out, "https://listen.example.edu:8000/")
    rows = list(csv.DictReader(path.open()))
    assert rows == [{"rater": r.label, "link": f"https://listen.example.edu:8000/t/{r.token}/"} for r in plan.raters]
    with pytest.raises(PlanError, match="not a web address"):
        write_links(plan, out, "listen.example.edu")


def test_options_that_cannot_work_are_refused_before_anything_is_written(out, tmp_path):
    for options, message in [(dict(raters=3, peers=True), "leave out the number of raters"),
                             (dict(per_rater=0), "trials per rater must be at least 1"),
                             (dict(closes=NOW - timedelta(days=1)), "would close .* before it is made"),
                             (dict(closes=datetime(2027, 1, 1)), "has no UTC offset"),
                             (dict(kind="abx"), "not a kind of listening test")]:
        with pytest.raises(PlanError, match=message):
            make_plan(out, rubric(), now=NOW, **options)
    assert not (out / FOLDER).exists()
    with pytest.raises(PlanError, match="no results folder"):
        make_plan(tmp_path / "empty", rubric(), now=NOW)


def test_a_mos_test_without_espeak_ng_names_the_package(out, public_set, monkeypatch, tmp_path):
    monkeypatch.setattr(stimuli, "ESPEAK", tmp_path / "espeak-ng")  # as on a machine without the package
    with pytest.raises(PlanError, match="Install the Debian package espeak-ng"):
        make_plan(out, rubric(), kind="mos", now=NOW, heldout=public_set)
    assert not (out / FOLDER / "plan.json").exists() and not list((out / FOLDER).glob(".stimuli-*"))
