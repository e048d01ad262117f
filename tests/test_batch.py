"""Batch grading with real submissions and the real sandbox: serial and parallel give the
same results, a batch killed with SIGKILL resumes to the same results, unchanged work is
never graded twice (and --force regrades it), files of one student are graded as its
attempts and credited to its LMS identity, and a dask LocalCluster grades the same."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from grader.batch import grade_all, longest_first, plan, submission_ids
from grader.batch_entries import Pending
from grader.pipeline import GradingSetup
from grader.report import render_all
from grader.results import SubmissionResult
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from reference import PROJECT_ROOT
from tests.helpers import write_submission, zip_folder

VARYING = {"started_at", "finished_at", "seconds", "timings"}
"""Result fields that say when and how fast, not what: left out of comparisons."""


def comparable(out_dir) -> dict[str, dict]:
    """Every result of ``out_dir`` without its timings, by submission id."""
    results = {}
    for path in sorted((out_dir / "results").glob("*.json")):
        result = {k: v for k, v in json.loads(path.read_text()).items() if k not in VARYING}
        for item in result["items"]:
            item.pop("seconds")
        for run in result["runs"]:
            run.pop("reused")  # a resumed batch takes the runs of a submission it was grading when killed
            for key in ("wall_seconds", "cpu_seconds", "peak_memory_bytes"):
                run["result"].pop(key)
        results[path.stem] = result
    return results


@pytest.fixture(scope="module")
def classroom(tmp_path_factory, small_heldout, small_baseline):
    """A small held-out set and four submissions: two complete ones, an empty one and a non-zip."""
    root = tmp_path_factory.mktemp("batch")
    heldout, baseline = small_heldout, small_baseline
    rubric = load_rubric(DEFAULT_RUBRIC)
    sources = []
    for name, noise in (("ada_111_1_hw3", 0.0), ("bob_222_2_hw3", 0.05)):
        folder = write_submission(root / "work" / name, noise=noise)
        sources.append(zip_folder(folder, root / f"{name}.zip"))
    (root / "work" / "empty").mkdir()
    (root / "work" / "empty" / "notes.txt").write_text("nothing yet\n")
    sources.append(zip_folder(root / "work" / "empty", root / "cyd_333_3_hw3.zip"))
    (root / "dan_444_4_hw3.zip").write_text("not a zip")
    sources.append(root / "dan_444_4_hw3.zip")

    def setup(out_name: str, **changes) -> GradingSetup:
        return GradingSetup(rubric=changes.pop("rubric", rubric), heldout=heldout, load_baseline=baseline,
                            out_dir=root / out_name, **changes)
    return root, sources, setup


@pytest.fixture(scope="module")
def serial(classroom):
    root, sources, setup = classroom
    entries = grade_all(sources, setup("serial"), jobs=1, show_progress=False)
    return root / "serial", entries


def test_a_batch_grades_every_submission_and_lists_failures(serial):
    out_dir, entries = serial
    by_id = {entry.submission_id: entry for entry in entries}
    assert set(by_id) == {"ada_111", "bob_222", "cyd_333", "dan_444"}
    assert by_id["ada_111"].total >= 90 and by_id["ada_111"].total > by_id["cyd_333"].total
    assert by_id["dan_444"].failed and "zip" in by_id["dan_444"].message.lower()
    assert not any(entry.reused for entry in entries)
    assert len(list((out_dir / "results").glob("*.json"))) == 4


def test_parallel_grading_gives_the_same_results_as_serial(classroom, serial):
    root, sources, setup = classroom
    entries = grade_all(sources, setup("parallel"), jobs=2, show_progress=False)
    assert len(entries) == 4 and not any(entry.reused for entry in entries)
    assert comparable(root / "parallel") == comparable(serial[0])


def test_an_unchanged_batch_is_not_graded_again_and_force_regrades(classroom, serial):
    root, sources, setup = classroom
    out_dir = serial[0]
    written = {path: path.stat().st_mtime_ns for path in (out_dir / "results").glob("*.json")}
    started = time.perf_counter()
    entries = grade_all(sources, setup("serial"), jobs=2, show_progress=False)
    assert time.perf_counter() - started < 2.0
    assert all(entry.reused for entry in entries)
    assert {path: path.stat().st_mtime_ns for path in written} == written

    reused, pending = plan(sources, setup("serial"), force=True)
    assert not reused and len(pending) == 4
    forced = grade_all(sources[3:], setup("serial"), force=True, show_progress=False)
    assert [entry.reused for entry in forced] == [False]
    assert (out_dir / "results" / "dan_444.json").stat().st_mtime_ns != written[out_dir / "results" / "dan_444.json"]


def test_the_cache_key_follows_submission_rubric_and_mode(classroom, serial, tmp_path):
    root, sources, setup = classroom
    base = setup("serial")
    reused, pending = plan(sources, base)
    assert len(reused) == 4 and not pending
    first = base.rubric.items[0]
    rubric = base.rubric.model_copy(update={"items": [first.model_copy(update={"points": first.points + 1}),
                                                      *base.rubric.items[1:]]})
    assert len(plan(sources, setup("serial", rubric=rubric))[1]) == 4
    assert len(plan(sources, dataclasses.replace(base, allow_unsandboxed=True))[1]) == 4
    changed = tmp_path / "ada_111_1_hw3"
    shutil.copytree(root / "work" / "ada_111_1_hw3", changed)
    (changed / "extra.py").write_text("# a late change\n")
    reused, pending = plan([zip_folder(changed, tmp_path / "ada_111_1_hw3.zip"), *sources[1:]], base)
    assert [item.submission_id for item in pending] == ["ada_111"] and len(reused) == 3


def test_long_gradings_start_first(classroom, serial, tmp_path):
    root, sources, setup = classroom
    _, pending = plan(sources, setup("serial"), force=True)  # regraded: their earlier times are known
    earlier = {path.stem: json.loads(path.read_text())["seconds"] for path in (serial[0] / "results").glob("*.json")}
    assert {item.submission_id: item.earlier_seconds for item in pending} == earlier
    assert [item.submission_id for item in longest_first(pending)] == sorted(earlier, key=lambda sid: -earlier[sid])
    big, small = tmp_path / "big.zip", tmp_path / "small.zip"
    big.write_bytes(b"x" * 1000)
    small.write_bytes(b"x")
    never_graded = [Pending(small, "small", ""), Pending(big, "big", "")]
    order = longest_first([*pending, *never_graded])
    assert [item.submission_id for item in order[:2]] == ["big", "small"]  # unknown times first, largest first


def handed_in(path, files: dict[str, str], modified: float):
    """A zip at ``path`` holding ``files`` (name -> text), last modified at ``modified`` (seconds since the epoch)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    os.utime(path, (modified, modified))
    return path


def test_files_of_one_student_are_graded_as_attempts_and_credited_to_the_lms_identity(classroom, tmp_path):
    """A first file, a late resubmission and a file of the same name in another folder: three attempts of one
    student; and Mallory's manifest naming another student credits Mallory's LMS id all the same."""
    root, _, setup = classroom
    first = handed_in(tmp_path / "a" / "eve_555_5_hw3.zip", {"notes.txt": "a first draft\n"}, 1_700_000_000)
    late = handed_in(tmp_path / "b" / "eve_LATE_555_6_hw3.zip", {"notes.txt": "a late draft\n"}, 1_700_000_100)
    copied = tmp_path / "a2" / "eve_555_5_hw3.zip"  # as old as the late one: before it by path ("a2" < "b")
    copied.parent.mkdir()
    copied.write_text("not a zip")
    os.utime(copied, (1_700_000_100, 1_700_000_100))
    formula = '=HYPERLINK("evil.example","Victim Student")'
    manifest = f"[student]\nname = '{formula}'\nid = \"313131\"\n"
    mallory = handed_in(tmp_path / "mallory_424242_999_hw3.zip",
                        {"notes.txt": "nothing yet\n", "submission.toml": manifest}, 1_700_000_000)
    sources = [late, copied, first, mallory, first]  # a file named twice is graded once
    assert submission_ids(sources[:4]) == ["eve_555~3", "eve_555~2", "eve_555", "mallory_424242"]

    entries = grade_all(sources, setup("attempts"), jobs=1, show_progress=False)
    assert sorted(entry.submission_id for entry in entries) == ["eve_555", "eve_555~2", "eve_555~3", "mallory_424242"]
    results = {path.stem: SubmissionResult.read(path) for path in (root / "attempts" / "results").glob("*.json")}
    assert {sid: (r.attempt, r.status, Path(r.source)) for sid, r in results.items()} == {
        "eve_555": (1, "graded", first), "eve_555~2": (2, "refused", copied), "eve_555~3": (3, "graded", late),
        "mallory_424242": (1, "graded", mallory)}
    assert {(r.identity.lms, r.identity.user_id) for sid, r in results.items() if sid.startswith("eve")} == {
        ("canvas", "555")}
    assert [sid for sid, r in sorted(results.items()) if r.identity.late] == ["eve_555~3"]
    assert results["mallory_424242"].identity.user_id == "424242"
    assert results["mallory_424242"].student == {"name": formula, "id": "313131"}  # declared, kept as such

    again = grade_all(sources, setup("attempts"), jobs=1, show_progress=False)
    assert len(again) == 4 and all(entry.reused for entry in again)

    render_all(root / "attempts", setup("attempts").rubric)
    with open(root / "attempts" / "grades.csv", newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    [credited] = [row for row in rows if row["Name"] == "mallory"]
    assert (credited["ID"], credited["Declared id"], credited["Declared name"]) == ("424242", "313131", "'" + formula)
    assert not [row for row in rows if "313131" in (row["ID"], row["SIS User ID"])]
    assert sorted((row["Name"], row["ID"], row["Attempt"], row["Late"]) for row in rows if row["ID"] == "555") == [
        ("eve", "555", "1", ""), ("eve", "555", "2", ""), ("eve", "555", "3", "late")]
    assert {path.name for path in (root / "attempts" / "pages").glob("eve*")} == {
        "eve_555.html", "eve_555~2.html", "eve_555~3.html"}


RESUMABLE_BATCH = """
import functools, sys
from pathlib import Path
from grader.batch import grade_all
from grader.heldout import load_heldout
from grader.pipeline import GradingSetup
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from grader.scoring import load_baseline

root, data = Path(sys.argv[1]), Path(sys.argv[2])  # the small data set: its held-out set and baseline beside it
heldout = load_heldout(data, cache_root=data.parent / "heldout")
setup = GradingSetup(rubric=load_rubric(DEFAULT_RUBRIC), heldout=heldout, out_dir=root / "resumed",
                     load_baseline=functools.partial(load_baseline, heldout, jobs=1, cache_root=data.parent / "baseline"))
grade_all([Path(s) for s in sys.argv[3:]], setup, jobs=1, show_progress=False)
"""


def test_a_killed_batch_resumes_to_the_same_results(classroom, serial, small_data, tmp_path):
    root, sources, setup = classroom
    script = tmp_path / "batch.py"
    script.write_text(textwrap.dedent(RESUMABLE_BATCH))
    command = [sys.executable, str(script), str(root), str(small_data), *map(str, sources)]
    results = root / "resumed" / "results"
    batch = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(results.glob("*.json")) and time.monotonic() < deadline and batch.poll() is None:
        time.sleep(0.05)
    os.kill(batch.pid, signal.SIGKILL)  # mid-batch: one result written, the next one being graded
    batch.wait()
    first = {path: path.stat().st_mtime_ns for path in results.glob("*.json")}
    assert 1 <= len(first) < 4, batch.stderr.read().decode()

    resumed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert {path: path.stat().st_mtime_ns for path in first} == first  # what was done was not graded again
    assert comparable(root / "resumed") == comparable(serial[0])
    assert not list(results.glob(".*.tmp"))


def test_a_dask_cluster_grades_the_same(classroom, serial):
    from distributed import LocalCluster

    root, sources, setup = classroom
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        entries = grade_all(sources, setup("dask"), scheduler=cluster.scheduler_address, show_progress=False)
    assert len(entries) == 4 and not any(entry.reused for entry in entries)
    assert comparable(root / "dask") == comparable(serial[0])
    media = sorted(p.relative_to(root / "dask").as_posix() for p in (root / "dask" / "media").rglob("*.wav"))
    assert media == sorted(p.relative_to(serial[0]).as_posix() for p in (serial[0] / "media").rglob("*.wav"))
    assert media  # the listening clips came back from the workers
    kept = sorted(p.name for p in (root / "dask" / "evidence").glob("*.json"))
    assert kept == sorted(p.name for p in (serial[0] / "evidence").glob("*.json")) and kept  # so was the evidence


def test_memory_stays_flat_with_the_size_of_the_batch(classroom, tmp_path):
    """The batch keeps a one-line entry per submission, never the submissions or their results."""
    import tracemalloc

    root, sources, setup = classroom
    peaks = {}
    for count in (20, 200):
        folder = tmp_path / str(count)
        folder.mkdir()
        files = []
        for index in range(count):  # refused at once (not zips): the batch's own costs, not grading's
            files.append(folder / f"s{index:03d}_{count}_1_hw3.zip")
            files[-1].write_bytes(os.urandom(100_000))
        tracemalloc.start()
        entries = grade_all(files, setup(f"flat-{count}"), jobs=1, show_progress=False)
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(entries) == count and all(entry.status == "refused" for entry in entries)
    # 200 submissions of 100 kB each would be 20 MB if they were kept; an entry is a few hundred bytes
    assert peaks[200] < peaks[20] + 1_000_000, peaks


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failure_after_grading_costs_only_its_submission(classroom, monkeypatch, jobs):
    """Writing a result or drawing its pictures can fail too (a full disk, a bug): that submission gets a
    grader_error result, the others are graded, and the batch ends normally."""
    root, sources, setup = classroom
    from grader import batch

    def draw(result, out_dir):
        if result.submission_id == "bob_222":
            raise OSError(28, "No space left on device")
    monkeypatch.setattr(batch, "draw_spectrograms", draw)
    entries = grade_all(sources, setup(f"after-{jobs}"), jobs=jobs, show_progress=False)
    by_id = {entry.submission_id: entry for entry in entries}
    assert len(by_id) == len(sources)
    assert by_id["bob_222"].status == "grader_error" and "No space left" in by_id["bob_222"].message
    assert by_id["ada_111"].status == "graded"
