"""Batch grading with real submissions and the real sandbox: serial and parallel give the
same results, a batch killed with SIGKILL resumes to the same results, unchanged work is
never graded twice (and --force regrades it), and a dask LocalCluster grades the same."""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from grader.batch import DuplicateSubmissions, Pending, grade_all, longest_first, plan
from grader.heldout import load_heldout
from grader.pipeline import GradingSetup
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from grader.scoring import load_baseline
from reference import PROJECT_ROOT
from reference.data import build_embedded
from tests.test_grading import SMALL, write_submission, zip_folder

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
            for key in ("wall_seconds", "cpu_seconds", "peak_memory_bytes"):
                run["result"].pop(key)
        results[path.stem] = result
    return results


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """A small held-out set and four submissions: two complete ones, an empty one and a non-zip."""
    root = tmp_path_factory.mktemp("batch")
    build_embedded(root / "data", seed=5, spec=SMALL)
    heldout = load_heldout(root / "data", cache_root=root / "heldout")
    baseline = functools.partial(load_baseline, heldout, jobs=1, cache_root=root / "baseline")
    baseline()
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


def test_two_files_of_one_student_are_refused_before_grading(classroom, tmp_path):
    root, sources, setup = classroom
    late = tmp_path / "ada_LATE_111_9_hw3.zip"
    late.write_bytes(sources[0].read_bytes())
    with pytest.raises(DuplicateSubmissions, match="ada_111"):
        plan([sources[0], late], setup("serial"))


RESUMABLE_BATCH = """
import functools, sys
from pathlib import Path
from grader.batch import grade_all
from grader.heldout import load_heldout
from grader.pipeline import GradingSetup
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from grader.scoring import load_baseline

root = Path(sys.argv[1])
heldout = load_heldout(root / "data", cache_root=root / "heldout")
setup = GradingSetup(rubric=load_rubric(DEFAULT_RUBRIC), heldout=heldout, out_dir=root / "resumed",
                     load_baseline=functools.partial(load_baseline, heldout, jobs=1, cache_root=root / "baseline"))
grade_all([Path(s) for s in sys.argv[2:]], setup, jobs=1, show_progress=False)
"""


def test_a_killed_batch_resumes_to_the_same_results(classroom, serial, tmp_path):
    root, sources, setup = classroom
    script = tmp_path / "batch.py"
    script.write_text(textwrap.dedent(RESUMABLE_BATCH))
    command = [sys.executable, str(script), str(root), *map(str, sources)]
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
