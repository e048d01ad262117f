"""The hostile corpus (tests/hostile_corpus.py) graded as one batch with the `grade` command, as an
instructor would: the batch exits 0, every submission gets a result and a page, each hostile row
gets the answer it should, and the grader's peak memory and the machine's free disk stay bounded."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from grader import sandbox
from grader.scratch import PREFIX
from reference import PROJECT_ROOT
from tests.hostile_corpus import SCRIPT_MARKER, SECRET, build

PEAK_MEMORY_BYTES = 768 * 2**20
"""The most memory any one grader process (the batch's own or a worker) may reach on the corpus."""
DISK_BYTES = 100 * 10**6
"""The most the corpus may take of the machine's free disk while it is graded (results, pages, media)."""

pytestmark = pytest.mark.skipif(sandbox.BWRAP is None, reason="bubblewrap (bwrap) is not installed")

# Runs the batch as a child and prints the largest resident set of it and of every process it waited for.
MEASURED = ("import json, resource, subprocess, sys\n"
            "code = subprocess.run(sys.argv[1:]).returncode\n"
            "print(json.dumps({'code': code, 'peak': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))\n")


def free_disk(folders: list[Path]) -> int:
    """Free bytes of the file systems holding ``folders`` (each counted once)."""
    seen, free = set(), 0
    for folder in folders:
        state = os.statvfs(folder)
        if state.f_fsid not in seen:
            seen.add(state.f_fsid)
            free += state.f_bavail * state.f_frsize
    return free


@pytest.fixture(scope="module")
def graded(tmp_path_factory, small_data):
    root = tmp_path_factory.mktemp("hostile")
    rows = build(root / "zips")
    out = root / "out"
    temporary = Path(tempfile.gettempdir())
    scratch_before = set(temporary.glob(f"{PREFIX}*"))
    folders = [temporary, root]
    free_before, lowest = free_disk(folders), [free_disk(folders)]
    done = threading.Event()

    def watch_disk() -> None:
        while not done.wait(0.05):
            lowest.append(free_disk(folders))

    watcher = threading.Thread(target=watch_disk)
    watcher.start()
    started = time.monotonic()
    try:
        ran = subprocess.run([sys.executable, "-c", MEASURED, sys.executable, "-m", "grader.cli",
                              *(str(row.zip) for row in rows), "--out", str(out), "--heldout", str(small_data),
                              "--jobs", "2"], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=900)
    finally:
        done.set()
        watcher.join()
    seconds = time.monotonic() - started
    measured = json.loads(ran.stdout.strip().splitlines()[-1])
    results = {path.stem: json.loads(path.read_text()) for path in (out / "results").glob("*.json")}
    print(f"\nhostile corpus: {len(rows)} zips in {seconds:.1f} s; grader peak {measured['peak'] / 2**20:.0f} MiB; "
          f"free disk fell by at most {(free_before - min(lowest)) / 1e6:.1f} MB")
    for result in sorted(results.values(), key=lambda r: r["submission_id"]):
        print(f"  {result['submission_id']:<22} {result['status']:<12} {result['seconds']:6.2f} s  "
              f"{result['total']:g}/{result['max_total']:g}")
    return {"rows": rows, "out": out, "ran": ran, "measured": measured, "results": results,
            "disk_used": free_before - min(lowest), "scratch_left": set(temporary.glob(f"{PREFIX}*")) - scratch_before}


def by_source(graded, name: str) -> dict:
    """The result graded from the zip named ``name`` (the first, where two share it)."""
    matches = [r for r in graded["results"].values() if Path(r["source"]).name == name]
    assert matches, f"no result for {name}"
    return sorted(matches, key=lambda r: r["source"])[0]


def runs_of(result: dict) -> list[dict]:
    return [run["result"] for run in result["runs"]]


def test_the_batch_ends_well_and_every_submission_has_a_result_and_a_page(graded):
    assert graded["ran"].returncode == 0 and graded["measured"]["code"] == 0, graded["ran"].stderr[-3000:]
    sources = {str(row.zip) for row in graded["rows"]}
    assert {r["source"] for r in graded["results"].values()} == sources
    for result in graded["results"].values():
        assert (graded["out"] / "pages" / f"{result['submission_id']}.html").is_file()
        assert result["status"] != "grader_error", result["message"][:2000]
    assert (graded["out"] / "index.html").is_file() and (graded["out"] / "grades.csv").is_file()


def test_the_grader_stays_within_its_memory_and_the_machine_keeps_its_disk(graded):
    assert graded["measured"]["peak"] <= PEAK_MEMORY_BYTES
    assert graded["disk_used"] <= DISK_BYTES
    assert not graded["scratch_left"], "scratch folders were left behind"


def test_deep_trees_are_refused_or_removed(graded):
    deep = by_source(graded, "deep_1001_1_hw3.zip")
    assert deep["status"] == "refused" and "2000 folders deep" in deep["message"]
    tree = by_source(graded, "tree_1002_1_hw3.zip")
    assert tree["status"] == "graded" and any("1200 folders deep" in run["stdout"] for run in runs_of(tree))


def test_hostile_notebooks_and_answers_cost_seconds(graded):
    for name in ("outputs_1003_1_hw3.zip", "outputs2mb_1004_1_hw3.zip", "regex_1006_1_hw3.zip",
                 "regex2mb_1007_1_hw3.zip"):
        result = by_source(graded, name)
        assert result["status"] == "graded" and result["seconds"] < 30, (name, result["seconds"])
    quiz = {q["id"]: q for q in by_source(graded, "regex_1006_1_hw3.zip")["quiz"]}
    assert quiz["q1"]["correct"] is True  # the line before the hostile one is still read
    assert "over the 128 kB an answers file may be" in by_source(graded, "regex2mb_1007_1_hw3.zip")["message"]


def test_a_run_filling_the_disk_is_stopped_with_a_named_verdict(graded):
    runs = runs_of(by_source(graded, "filler_1005_1_hw3.zip"))
    assert runs and all(run["verdict"] == "output_limit" for run in runs), [r["message"] for r in runs]
    assert all("disk_bytes" in run["message"] or "disk_inodes" in run["message"] for run in runs)


def test_no_run_reads_what_another_run_left_in_the_keyring(graded):
    runs = runs_of(by_source(graded, "keys_1008_1_hw3.zip")) + runs_of(by_source(graded, "keyreader_1009_1_hw3.zip"))
    assert len(runs) == 4
    for run in runs:
        assert "no key found" in run["stdout"] and "add_key: Operation not permitted" in run["stdout"], run["stdout"]
        assert SECRET not in run["stdout"]


def test_report_media_are_re_encoded_and_run_no_script(graded):
    result = by_source(graded, "polyglot_1010_1_hw3.zip")
    media = graded["out"] / "media" / result["submission_id"]
    files = sorted(media.iterdir())
    assert files and all(path.suffix == ".wav" for path in files), files
    for path in files:
        assert SCRIPT_MARKER.encode() not in path.read_bytes()
    chromium = Path("/usr/bin/chromium")
    if not chromium.is_file():
        pytest.skip("chromium is not installed (`make setup` installs it)")
    from playwright.sync_api import sync_playwright

    from tests.helpers import CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            for path in [*files, graded["out"] / "pages" / f"{result['submission_id']}.html"]:
                page = browser.new_page()
                page.goto(path.as_uri())
                page.wait_for_timeout(200)
                assert page.title() != SCRIPT_MARKER and SCRIPT_MARKER not in page.content(), path
                page.close()
        finally:
            browser.close()


def test_the_lms_identity_wins_over_the_manifest_and_no_cell_is_a_formula(graded):
    with open(graded["out"] / "grades.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    mallory = next(row for row in rows if "424242" in row.values())
    assert "313131" not in (mallory.get("ID"), mallory.get("SIS User ID"))
    for row in rows:
        for value in row.values():
            assert not (value or "").startswith(("=", "+", "@")), row


def test_notebook_parameters_keep_their_types_and_printing_is_bounded(graded):
    params = runs_of(by_source(graded, "params_1011_1_hw3.zip"))
    assert params and all(run["verdict"] == "ok" for run in params), [r["message"] for r in params]
    loud = runs_of(by_source(graded, "loud_1012_1_hw3.zip"))
    assert loud and all(run["verdict"] == "output_limit" for run in loud), [r["message"] for r in loud]


def test_a_nested_archive_is_named_and_an_empty_sample_is_only_a_finding(graded):
    nested = by_source(graded, "nested_1013_1_hw3.zip")
    assert "hw3.zip" in nested["message"] and "not expanded" in nested["message"]
    samples = next(item for item in by_source(graded, "emptywav_1014_1_hw3.zip")["items"]
                   if item["id"] == "samples-handed-in")
    assert samples["status"] != "error" and samples["points"] > 0, samples


def test_a_resubmission_is_graded_as_a_second_attempt(graded):
    attempts = [r for r in graded["results"].values() if Path(r["source"]).name == "twice_1015_1_hw3.zip"]
    assert len(attempts) == 2 and len({r["submission_id"] for r in attempts}) == 2
