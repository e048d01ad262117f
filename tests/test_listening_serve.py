"""The listening test's web app, ratings store and static export, with real parts: a plan of short tones written
here, the server on 127.0.0.1 in a thread (and once as ``serve`` in its own process, stopped by Ctrl-C), Debian's
Chromium driven by playwright playing every clip to its end, and the SQLite file read back with sqlite3.

What a rater's browser loads (every request URL, every page's HTML, every exported file) is searched for what would
unblind them: submission ids, system names, the instructor's labels, stimulus keys and sources.
"""
from __future__ import annotations

import contextlib
import json
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from grader.listening.export import ImportRefused, export_static, import_ratings
from grader.listening.model import Assignment, Plan, Rater, Stimulus, Trial, stimulus_path
from grader.listening.server import ListeningServer
from grader.listening.store import MAX_RANGES, RatingStore, database_path

SR = 16_000
CLIP_SECONDS = 0.6
SUBMISSIONS = ("hoppergrace_1003", "lovelaceada_1001")
SECRETS = (*SUBMISSIONS, "submission", "hidden_reference", "open_reference", "anchor", "griffin_lim", "natural", "trap",
           "rater one", "rater two", "heldout/clip")
"""What no page, URL or exported file may hold (with the plan's stimulus keys, added per plan)."""

LISTEN_FOR_END = """clip => {
  window.clipEnded = false;
  const audio = document.querySelector(`form.trial:not([hidden]) audio[data-clip="${clip}"]`);
  audio.addEventListener("ended", () => { window.clipEnded = true; }, {once: true});
}"""


# --------------------------------------------------------------------------- a plan of tones

def play_all(page) -> None:
    """Click each play button of the trial shown, as a rater does, and wait for its clip's 'ended' event."""
    for button in page.locator("form.trial:not([hidden]) button.play").all():
        page.evaluate(LISTEN_FOR_END, button.get_attribute("data-clip"))
        button.click()
        page.wait_for_function("() => window.clipEnded", timeout=5_000)


def make_plan(out: Path, kind: str, *, closes: datetime | None = None, trials: int = 2) -> Plan:
    """A plan of ``trials`` trials of ``kind`` for two raters, each stimulus a 0.6 s tone in ``out``'s stimuli."""
    stimuli: dict[str, Stimulus] = {}

    def stimulus(system: str, submission: str | None = None) -> str:
        key = secrets.token_hex(8)
        frequency = 220 * (1 + len(stimuli) / 4)
        t = np.arange(int(SR * CLIP_SECONDS)) / SR
        path = stimulus_path(out, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.3 * np.sin(2 * np.pi * frequency * t), SR, subtype="PCM_16")
        stimuli[key] = Stimulus(key=key, system=system, submission=submission, source=f"heldout/clip_{len(stimuli)}",
                                seconds=CLIP_SECONDS)
        return key

    plan_trials = {}
    for number in range(1, trials + 1):
        trial_id = f"t{number:03d}"
        if kind == "mushra":
            plan_trials[trial_id] = Trial(id=trial_id, kind="mushra", reference=stimulus("open_reference"),
                                          stimuli=[stimulus("hidden_reference"), stimulus("anchor"),
                                                   stimulus("submission", SUBMISSIONS[number % 2])])
        else:
            plan_trials[trial_id] = Trial(id=trial_id, kind="mos", stimuli=[stimulus("submission", SUBMISSIONS[0])])
    raters = [Rater(token=secrets.token_urlsafe(16), label=label,
                    assignments=[Assignment(trial=trial.id, order=trial.stimuli[::step])
                                 for trial in plan_trials.values()])
              for label, step in (("rater one", 1), ("rater two", -1))]
    plan = Plan(kind=kind, created=datetime.now(timezone.utc).isoformat(),
                closes=closes.isoformat() if closes else None, ratings_per_submission=1, secret=secrets.token_hex(16),
                stimuli=stimuli, trials=plan_trials, raters=raters)
    plan.write(out)
    return plan


@contextlib.contextmanager
def running(out: Path):
    """The app over ``out`` on a free port of 127.0.0.1, in a thread; yields its base URL, stops at the end."""
    server = ListeningServer(out, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def request(url: str, *, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """Status, headers and body of a plain HTTP request (errors included)."""
    try:
        sent = urllib.request.Request(url, data=data, headers=headers or {})
        with urllib.request.urlopen(sent, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post_scores(url: str, scores: dict[str, int]) -> tuple[int, dict]:
    status, _, body = request(url, data=json.dumps({"scores": scores}).encode(),
                              headers={"Content-Type": "application/json"})
    return status, json.loads(body)


def stored(out: Path) -> list[tuple]:
    """(rater, trial, stimulus, score) rows of the ratings database, read with sqlite3 itself."""
    with contextlib.closing(sqlite3.connect(database_path(out))) as db:
        return sorted(db.execute("SELECT rater, trial, stimulus, score FROM ratings").fetchall())


def assert_blind(plan: Plan, texts: list[str]) -> None:
    """None of ``texts`` (URLs, pages, files) holds a secret of ``plan``."""
    secrets_ = [*SECRETS, *plan.stimuli, plan.secret]
    for text in texts:
        for secret in secrets_:
            assert secret not in text, (secret, text[:200])


@pytest.fixture()
def mushra_out(tmp_path) -> tuple[Path, Plan]:
    return tmp_path, make_plan(tmp_path, "mushra")


# --------------------------------------------------------------------------- in a real browser

def test_rater_plays_rates_by_keyboard_and_the_ratings_survive_a_restart(mushra_out, browser):
    out, plan = mushra_out
    rater = plan.raters[0]
    context = browser.new_context()
    urls, pages, errors = [], [], []
    context.on("request", lambda sent: urls.append(sent.url))
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    with running(out) as base:
        page.goto(f"{base}t/{rater.token}/")
        pages.append(page.content())
        assert page.inner_text(".progress") == "Trial 1 of 2"
        assert page.locator("button.play").all_inner_texts() == ["Play the Reference R", "Play clip A A",
                                                                 "Play clip B B", "Play clip C C"]
        assert page.locator("button.submit").is_disabled()  # nothing played yet
        page.evaluate(LISTEN_FOR_END, page.get_attribute("button[data-key=r]", "data-clip"))
        page.keyboard.press("r")  # the documented key plays the Reference
        assert page.get_attribute("button[data-key=r]", "aria-pressed") == "true"
        page.wait_for_function("() => window.clipEnded", timeout=5_000)
        play_all(page)
        assert page.locator("button.submit").is_enabled()
        assert page.locator(".status").all_inner_texts() == ["played"] * 3
        # Sliders by keyboard: A to 100 (End), B to 30 (arrows), C to 73 (Tab over C's play button, Home, arrows).
        sliders = page.locator("input[type=range]")
        sliders.nth(0).focus()
        page.keyboard.press("End")
        sliders.nth(1).focus()
        for _ in range(30):
            page.keyboard.press("ArrowRight")
        page.keyboard.press("Tab")  # from B's slider, through C's play button, to C's slider
        page.keyboard.press("Tab")
        page.keyboard.press("Home")
        for _ in range(73):
            page.keyboard.press("ArrowUp")
        assert page.locator("output").all_inner_texts() == ["100 Excellent", "30 Poor", "73 Good"]
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
        page.click("button.submit")
        page.wait_for_selector("text=Trial 2 of 2")
        pages.append(page.content())

    order = rater.assignments[0].order
    assert stored(out) == sorted((rater.token, "t001", key, score) for key, score in zip(order, (100.0, 30.0, 73.0)))

    with running(out) as base:  # a new server on the same OUT
        page.goto(f"{base}t/{rater.token}/")
        assert page.inner_text(".progress") == "Trial 2 of 2"
        pages.append(page.content())
        play_all(page)
        page.click("button.submit")
        page.wait_for_selector(".done")
        assert "rated all 2 trials" in page.inner_text(".done")
        pages.append(page.content())
    assert len(stored(out)) == 6
    assert errors == []
    assert any("/a/" in url for url in urls)
    assert_blind(plan, urls + pages)
    context.close()


def test_mos_page_takes_a_score_by_its_digit(tmp_path, browser):
    plan = make_plan(tmp_path, "mos", trials=1)
    rater = plan.raters[1]
    page = browser.new_page()
    with running(tmp_path) as base:
        page.goto(f"{base}t/{rater.token}/")
        assert page.locator("input[type=radio]").count() == 5
        labels = [label.strip() for label in page.locator("fieldset label").all_inner_texts()]
        assert labels == ["5 Excellent", "4 Good", "3 Fair", "2 Poor", "1 Bad"]
        page.keyboard.press("p")  # plays the clip
        page.wait_for_function("() => document.querySelector('.status').textContent === 'played'")
        page.keyboard.press("4")
        assert page.locator("input[type=radio]:checked").get_attribute("value") == "4"
        page.keyboard.press("Enter")  # the focused radio submits its form
        page.wait_for_selector(".done")
        assert_blind(plan, [page.url, page.content()])
    assert stored(tmp_path) == [(rater.token, "t001", plan.trials["t001"].stimuli[0], 4.0)]
    page.close()


# --------------------------------------------------------------------------- over plain HTTP

def test_refusals_over_http(mushra_out):
    out, plan = mushra_out
    rater = plan.raters[1]
    trial = plan.trials["t001"]
    names = {key: plan.url_id(rater.token, key) for key in trial.stimuli}
    scores = {name: 50 for name in names.values()}
    with running(out) as base:
        submit_url = f"{base}t/{rater.token}/trial/t001"
        status, headers, body = request(f"{base}t/{rater.token}/")
        assert status == 200 and headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert headers["Referrer-Policy"] == "no-referrer"
        assert_blind(plan, [body.decode()])

        strangers = plan.url_id(plan.raters[0].token, trial.stimuli[0])
        for url in (f"{base}t/{'x' * 22}/", f"{base}t/{'x' * 22}/a/{'0' * 20}.wav",
                    f"{base}t/{rater.token}/a/{strangers}.wav", f"{base}", f"{base}static/offline.js"):
            assert request(url)[0] == 404, url  # unknown token, another rater's url id, no such path
        assert request(f"{base}t/{'x' * 22}/")[2] == b"Not found\n"
        assert request(f"{base}t/{'x' * 22}/trial/t001", data=b"a=1")[0] == 404

        status, answer = post_scores(submit_url, scores)
        assert status == 400 and "not played to the end" in answer["error"]

        # Each clip fetched whole (by ranges, as a browser does), then submitted at once: too soon to have played.
        for key, name in names.items():
            wav = f"{base}t/{rater.token}/a/{name}.wav"
            status, headers, part = request(wav, headers={"Range": "bytes=0-99"})
            size = int(headers["Content-Range"].removeprefix("bytes 0-99/"))
            assert status == 206 and len(part) == 100 and size == stimulus_path(out, key).stat().st_size
            status, _, rest = request(wav, headers={"Range": "bytes=100-"})
            assert status == 206 and len(rest) == size - 100
            assert request(wav, headers={"Range": f"bytes={size}-"})[0] == 416
        status, answer = post_scores(submit_url, scores)
        assert status == 400 and "not played to the end" in answer["error"]

        time.sleep(CLIP_SECONDS)
        assert post_scores(submit_url, {**scores, next(iter(scores)): 101})[0] == 400
        status, answer = post_scores(submit_url, {**scores, next(iter(scores)): 7.5})
        assert status == 400 and "whole number" in answer["error"]
        assert post_scores(submit_url, dict(list(scores.items())[:2]))[0] == 400  # a trial is submitted whole
        assert post_scores(submit_url, {**scores, names[trial.stimuli[0]][::-1]: 5})[0] == 400  # unknown url id
        assert post_scores(f"{base}t/{rater.token}/trial/t999", scores)[0] == 400
        assert request(submit_url, data=b"x" * 70_000)[0] == 413
        assert post_scores(submit_url, scores) == (200, {"stored": 3, "next": f"/t/{rater.token}/"})
        status, answer = post_scores(submit_url, scores)
        assert status == 409 and "already submitted" in answer["error"]
        form = "&".join(f"{name}=60" for name in names.values()).encode()
        status, _, page = request(submit_url, data=form)  # a form gets a page saying so
        assert status == 409 and b"already submitted" in page
    assert sorted(score for *_, score in stored(out)) == [50.0] * 3
    assert [rating.trial for rating in RatingStore(database_path(out)).ratings()] == ["t001"] * 3


def test_late_ratings_are_refused(tmp_path):
    plan = make_plan(tmp_path, "mos", closes=datetime.now(timezone.utc) - timedelta(hours=1), trials=1)
    rater = plan.raters[0]
    name = plan.url_id(rater.token, plan.trials["t001"].stimuli[0])
    with running(tmp_path) as base:
        assert b"closed" in request(f"{base}t/{rater.token}/")[2]
        status, answer = post_scores(f"{base}t/{rater.token}/trial/t001", {name: 3})
    assert status == 403 and "closed" in answer["error"]
    assert stored(tmp_path) == []


def test_serve_binds_where_asked_and_stops_on_ctrl_c(mushra_out):
    out, plan = mushra_out
    # Ctrl-C as an interactive shell delivers it: a library loaded by a test run before may leave SIGINT ignored or
    # blocked, and a child inherits both
    code = ("import signal, sys; from pathlib import Path; from grader.listening.server import serve; "
            "signal.signal(signal.SIGINT, signal.default_int_handler); "
            "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
            "serve(Path(sys.argv[1]), port=0, ready=lambda url: print(url, flush=True))")
    process = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        assert request(f"{url}t/{plan.raters[0].token}/")[0] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------- the static export

def test_static_export_rated_from_file_and_imported(tmp_path, browser):
    out = tmp_path / "out"
    plan = make_plan(out, "mushra", trials=2)
    folders = export_static(out, tmp_path / "export")
    assert [folder.name for folder in folders] == ["rater-01", "rater-02"]
    whose = (out / "listening" / "export-folders.csv").read_text().splitlines()  # for the instructor, beside the plan
    assert whose == ["rater,folder", *(f"{rater.label},{folder}" for rater, folder in zip(plan.raters, folders))]
    files = sorted(path for path in folders[1].rglob("*") if path.is_file())
    assert {path.name for path in files} >= {"index.html", "listen.css", "listen.js", "offline.js"}
    assert len([path for path in files if path.suffix == ".wav"]) == 2 * 4  # two trials, reference and three clips
    assert_blind(plan, [str(path.relative_to(tmp_path)) for path in files]
                 + [path.read_text() for path in files if path.suffix != ".wav"])

    rater = plan.raters[1]
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors, urls = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda sent: urls.append(sent.url))
    page.goto((folders[1] / "index.html").as_uri())
    assert page.inner_text("form.trial:not([hidden]) .progress") == "Trial 1 of 2"
    play_all(page)
    page.locator("form.trial:not([hidden]) input[type=range]").nth(0).focus()
    page.keyboard.press("End")
    page.click("form.trial:not([hidden]) button.submit")
    page.reload()  # kept in localStorage: the second trial comes next
    assert page.inner_text("form.trial:not([hidden]) .progress") == "Trial 2 of 2"
    play_all(page)
    with page.expect_download() as download:
        page.click("form.trial:not([hidden]) button.submit")
    ratings_file = tmp_path / "ratings.json"
    download.value.save_as(ratings_file)
    assert download.value.suggested_filename == "ratings-rater-02.json"
    assert page.is_visible("#done")
    assert errors == [] and all(url.startswith("file://") for url in urls)
    context.close()

    summary = import_ratings(out, ratings_file)
    assert (summary.stored, summary.trials, summary.refused) == (6, 2, [])
    assert str(summary) == "6 rating(s) of 2 trial(s) stored"
    rows = stored(out)
    assert len(rows) == 6 and {row[0] for row in rows} == {rater.token}
    first = rater.assignments[0].order[0]
    assert [row[3] for row in rows if row[2] == first] == [100.0]
    again = import_ratings(out, ratings_file)  # nothing stored twice
    assert again.stored == 0 and [why for _, why in again.refused] == [f"trial {trial} is already submitted; a trial "
                                                                      "is rated once" for trial in ("t001", "t002")]
    assert len(stored(out)) == 6


def test_tampered_ratings_files_are_refused(tmp_path):
    plan = make_plan(tmp_path, "mos", trials=2)
    rater = plan.raters[0]
    names = [plan.url_id(rater.token, plan.trials[trial].stimuli[0]) for trial in ("t001", "t002")]
    at = datetime.now(timezone.utc).isoformat()

    def file(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    def ratings(*trials: dict, **extra) -> str:
        return json.dumps({"format": "listening-ratings/1", "rater": rater.token, "trials": list(trials), **extra})

    summary = import_ratings(tmp_path, file("tampered.json", ratings(
        {"trial": "t001", "at": at, "scores": {names[0]: 6}},  # out of range
        {"trial": "t002", "at": at, "scores": {"0123456789abcdef0123": 3}})))  # an unknown url id
    assert summary.stored == 0
    assert [trial for trial, _ in summary.refused] == ["t001", "t002"]
    assert "from 1 to 5" in summary.refused[0][1] and "none of this rater's" in summary.refused[1][1]

    refusals = {
        "junk.json": (secrets.token_bytes(2_000_000), "over the 1 MB"),
        "deep.json": ("[" * 10_000 + "]" * 10_000, "not a ratings file"),
        "deep-inside.json": (ratings()[:-1] + ', "trials": ' + "[" * 10_000 + "]" * 10_000 + "}",
                             "not a ratings file"),
        "extra-key.json": (ratings(extra=1), "extra"),
        "float.json": (ratings({"trial": "t001", "at": at, "scores": {names[0]: 3.5}}), "valid integer"),
        "no-time-zone.json": (ratings({"trial": "t001", "at": "2030-01-01T00:00:00", "scores": {names[0]: 3}}),
                              "timezone"),
        "other-rater.json": (ratings().replace(rater.token, "someone-else"), "none of this listening test's"),
    }
    for name, (content, message) in refusals.items():
        with pytest.raises(ImportRefused, match=message):
            import_ratings(tmp_path, file(name, content))
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    summary = import_ratings(tmp_path, file("future.json", ratings({"trial": "t001", "at": future,
                                                                    "scores": {names[0]: 3}})))
    assert summary.stored == 0 and "in the future" in summary.refused[0][1]
    assert stored(tmp_path) == []


def test_a_rater_cannot_grow_the_served_ranges_without_bound(tmp_path):
    """A thousand one-byte requests keep at most MAX_RANGES ranges, none counts as played in full; the whole file
    served then does."""
    plan = make_plan(tmp_path, "mos", trials=1)
    rater, key = plan.raters[0].token, plan.trials["t001"].stimuli[0]
    with RatingStore(database_path(tmp_path)) as store:
        for start in range(0, 2000, 2):
            store.record_served(rater, key, start, start + 1, 4000, at=0.0)
        with contextlib.closing(sqlite3.connect(database_path(tmp_path))) as db:
            kept = db.execute("SELECT ranges FROM plays").fetchone()[0]
        assert len(json.loads(kept)) == MAX_RANGES
        assert not store.played_in_full(rater, key, CLIP_SECONDS, now=100.0)
        store.record_served(rater, key, 0, 4000, 4000)
        assert store.played_in_full(rater, key, CLIP_SECONDS, now=100.0)
