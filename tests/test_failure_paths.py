"""Failures of the grader itself cost only what they hit: a check that raises costs its item, a grading process
that dies costs its submission, and a dask worker unfit to grade costs nothing but a retry; in every case each
submission still gets a result saying why, and the rest of the item list or the batch goes on.

The failures are injected into the grader's own code (a check module's ``check``, the build a dask worker
reports), never into student code: student code runs in the sandbox and cannot reach the grader. The
submissions are real zips of a complete student-style submission, graded on the small data set with three cheap
items (no student code runs): the middle item's check is the one made to fail.
"""
from __future__ import annotations

import importlib
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from grader.batch import grade_all
from grader.pipeline import GradingSetup, grade_submission
from grader.results import SubmissionResult
from tests.helpers import items, rubric_of, write_submission, zip_folder

ITEMS = ("preprocess-mfcc-code", "samples-handed-in", "evaluation-code")
"""In rubric order: a static check, the samples check (made to fail), and a static check after it."""
FAILING = "samples-handed-in"
FAILING_KIND = "samples"
CRASH = "crash-the-grader.txt"
"""A file whose presence in a submission makes the injected failure fire on it (and only on it)."""
WAIT = "wait-for-the-crash.txt"
"""A file that makes the injected check wait, mid-submission, until another submission's grader has died."""


def replace_check(monkeypatch, kind: str, replacement) -> list[str]:
    """Make ``grader.checks.<kind>.check`` call ``replacement(ctx, item, real)``; returns the submission ids it
    was called on (in this process), so that a test can tell the injection reached the pipeline."""
    module = importlib.import_module(f"grader.checks.{kind}")
    real, called = module.check, []

    def check(ctx, item):
        called.append(ctx.submission.id)
        return replacement(ctx, item, real)
    monkeypatch.setattr(module, "check", check)
    return called


def submission(root: Path, name: str, *markers: str, padding: int = 0) -> Path:
    """A complete submission zipped as ``root/<name>.zip``, with ``markers`` (empty files) and ``padding`` bytes
    of incompressible data (a larger zip starts earlier in a batch: :func:`grader.batch.longest_first`)."""
    folder = write_submission(root / "work" / name)
    for marker in markers:
        (folder / marker).write_text("")
    if padding:
        (folder / "data.bin").write_bytes(os.urandom(padding))
    return zip_folder(folder, root / f"{name}.zip")


def cheap_setup(out_dir: Path, heldout, baseline) -> GradingSetup:
    return GradingSetup(rubric=rubric_of(*ITEMS), heldout=heldout, load_baseline=baseline, out_dir=out_dir)


def by_id(entries) -> dict:
    return {entry.submission_id: entry for entry in entries}


def assert_graded_in_full(result: SubmissionResult) -> None:
    assert result.status == "graded", result.message[:2000]
    assert [item.id for item in result.items] == list(ITEMS)
    assert all(item.status == "passed" for item in result.items), [(i.id, i.explanation) for i in result.items]


# --- a check that raises --------------------------------------------------------------------------------------

@pytest.mark.parametrize("error", [RuntimeError("the metric table is empty"), KeyError("pesq_wb"),
                                   MemoryError("cannot allocate 40 GB"), RecursionError("maximum recursion depth")],
                         ids=lambda error: type(error).__name__)
def test_a_check_that_raises_becomes_an_error_item_and_the_next_item_runs(error, small_heldout, small_baseline,
                                                                         monkeypatch, tmp_path):
    def raising(ctx, item, real):
        raise error
    called = replace_check(monkeypatch, FAILING_KIND, raising)
    setup = cheap_setup(tmp_path / "out", small_heldout, small_baseline)
    result = grade_submission(submission(tmp_path, "ada_111_1_hw3"), setup)

    assert called == ["ada_111"]  # the failure was injected into this grading
    assert result.status == "graded", result.message
    by_item = items(result)
    assert list(by_item) == list(ITEMS)
    failed = by_item[FAILING]
    assert failed.status == "error" and failed.points == 0 and failed.max_points > 0
    assert f"({type(error).__name__}: {error})" in failed.explanation, failed.explanation
    assert "not your fault, tell the instructor" in failed.explanation
    for other in ("preprocess-mfcc-code", "evaluation-code"):  # before and after it: graded as ever
        assert by_item[other].status == "passed" and by_item[other].points == by_item[other].max_points, \
            by_item[other].explanation
    assert result.total == sum(by_item[other].max_points for other in ("preprocess-mfcc-code", "evaluation-code"))
    written = SubmissionResult.read(setup.result_path("ada_111"))
    assert items(written)[FAILING].status == "error" and written.total == result.total


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_check_calling_sys_exit_costs_only_its_item_and_the_batch_goes_on(jobs, small_heldout, small_baseline,
                                                                           monkeypatch, tmp_path):
    def exiting(ctx, item, real):
        if CRASH in ctx.submission.files:
            raise SystemExit(2)
        return real(ctx, item)
    replace_check(monkeypatch, FAILING_KIND, exiting)
    sources = [submission(tmp_path, "ada_111_1_hw3", CRASH), submission(tmp_path, "bob_222_2_hw3")]
    setup = cheap_setup(tmp_path / "out", small_heldout, small_baseline)
    entries = by_id(grade_all(sources, setup, jobs=jobs, show_progress=False))

    assert set(entries) == {"ada_111", "bob_222"}
    ada = SubmissionResult.read(setup.result_path("ada_111"))
    assert ada.status == "graded" and items(ada)[FAILING].status == "error"
    assert "SystemExit" in items(ada)[FAILING].explanation
    assert_graded_in_full(SubmissionResult.read(setup.result_path("bob_222")))


# --- a grading process that dies (local worker processes) -----------------------------------------------------

def dying_check(flag: Path):
    """The samples check, except that on a submission holding CRASH its process dies (SIGKILL, after touching
    ``flag``), and on one holding WAIT it waits for ``flag`` and then a few seconds more (so it is surely still
    being graded when the batch sees the death)."""
    def check(ctx, item, real):
        if CRASH in ctx.submission.files:
            flag.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        if WAIT in ctx.submission.files:
            deadline = time.monotonic() + 60
            while not flag.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(3)
        return real(ctx, item)
    return check


@pytest.fixture(scope="module")
def process_batch(tmp_path_factory, small_heldout, small_baseline):
    """A batch of four graded in two worker processes, largest first: ``kim`` (whose grading process dies
    mid-submission) with ``ada`` (graded at the same time, in the other process), then ``bob`` and ``cyd``."""
    root = tmp_path_factory.mktemp("dead-process")
    sources = [submission(root, "kim_666_6_hw3", CRASH, padding=300_000),
               submission(root, "ada_111_1_hw3", WAIT, padding=200_000),
               submission(root, "bob_222_2_hw3", padding=100_000), submission(root, "cyd_333_3_hw3")]
    setup = cheap_setup(root / "out", small_heldout, small_baseline)
    with pytest.MonkeyPatch.context() as monkeypatch:  # the forked workers inherit the injected check
        replace_check(monkeypatch, FAILING_KIND, dying_check(root / "kim-died"))
        entries = grade_all(sources, setup, jobs=2, show_progress=False)
    return sources, setup, entries


def test_a_grading_process_that_dies_costs_only_its_submission_and_the_batch_goes_on(process_batch):
    sources, setup, entries = process_batch
    entries = by_id(entries)
    assert set(entries) == {"kim_666", "ada_111", "bob_222", "cyd_333"}
    assert (sources[0].parent / "kim-died").is_file()  # the injected death did happen
    kim = SubmissionResult.read(setup.result_path("kim_666"))
    assert kim.status == "grader_error" and entries["kim_666"].failed
    assert "terminated abruptly" in kim.message, kim.message[:500]  # says that its grading process died
    for sid in ("bob_222", "cyd_333"):  # started after the death, in a new pool
        assert_graded_in_full(SubmissionResult.read(setup.result_path(sid)))
        assert entries[sid].status == "graded"
    assert {path.stem for path in (setup.out_dir / "results").glob("*.json")} == set(entries)

    again = by_id(grade_all(sources, setup, jobs=2, show_progress=False))  # the failure injected no longer
    failed = {sid for sid, entry in entries.items() if entry.failed}
    assert {sid for sid, entry in again.items() if not entry.reused} == failed  # a grader_error is never reused
    for sid in entries:
        assert_graded_in_full(SubmissionResult.read(setup.result_path(sid)))


def test_a_submission_graded_beside_a_dying_process_is_still_graded(process_batch):
    _, _, entries = process_batch  # the first batch's entries (a later test may have regraded ada since)
    assert by_id(entries)["ada_111"].status == "graded", by_id(entries)["ada_111"].message


# --- dask workers: one that dies, one that is unfit -----------------------------------------------------------

DYING_WORKER = f'''
"""Preloaded into each dask worker: the samples check kills the worker on a submission holding {CRASH}."""
import os, signal
import grader.checks.samples as samples

real = samples.__dict__.setdefault("real_check", samples.check)  # the same if dask runs this file again

def check(ctx, item):
    if {CRASH!r} in ctx.submission.files:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(ctx, item)

samples.check = check
'''

UNFIT_WORKER = '''
"""Preloaded into each dask worker: while {flag} exists, the worker runs (it says) another grader build."""
from pathlib import Path
import grader.cluster as cluster

real = cluster.__dict__.setdefault("real_build_digest", cluster.build_digest)  # the same if run again

def build_digest():
    return "another-build" if Path({flag!r}).exists() else real()

cluster.build_digest = build_digest
'''


def local_cluster(preload: Path):
    from distributed import LocalCluster

    return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                        preload=[str(preload)])


@pytest.mark.slow
def test_a_dask_worker_that_dies_costs_only_its_submission(small_heldout, small_baseline, tmp_path):
    """dask retries a task whose worker died on other workers (``distributed.scheduler.allowed-failures``, 3):
    the submission that kills every worker it reaches ends as a grader_error naming the deaths, the others are
    graded."""
    preload = tmp_path / "dying_worker.py"
    preload.write_text(textwrap.dedent(DYING_WORKER))
    sources = [submission(tmp_path, "kim_666_6_hw3", CRASH), submission(tmp_path, "ada_111_1_hw3"),
               submission(tmp_path, "bob_222_2_hw3")]
    setup = cheap_setup(tmp_path / "out", small_heldout, small_baseline)
    with local_cluster(preload) as cluster:
        entries = by_id(grade_all(sources, setup, scheduler=cluster.scheduler_address, show_progress=False))
    assert set(entries) == {"kim_666", "ada_111", "bob_222"}
    kim = SubmissionResult.read(setup.result_path("kim_666"))
    assert kim.status == "grader_error" and "KilledWorker" in kim.message
    assert "workers died while running it" in kim.message, kim.message[:500]
    for sid in ("ada_111", "bob_222"):
        assert_graded_in_full(SubmissionResult.read(setup.result_path(sid)))


@pytest.mark.slow
def test_an_unfit_dask_worker_grades_nothing_says_why_and_a_later_run_retries(small_heldout, small_baseline,
                                                                             tmp_path):
    """Workers that run another grader build refuse every submission with a grader_error saying so (never a
    result graded by other code); the batch ends, and once the workers are fit a run grades exactly those."""
    flag = tmp_path / "unfit"
    flag.touch()
    preload = tmp_path / "unfit_worker.py"
    preload.write_text(textwrap.dedent(UNFIT_WORKER).format(flag=str(flag)))
    sources = [submission(tmp_path, "ada_111_1_hw3"), submission(tmp_path, "bob_222_2_hw3")]
    setup = cheap_setup(tmp_path / "out", small_heldout, small_baseline)
    with local_cluster(preload) as cluster:
        first = by_id(grade_all(sources, setup, scheduler=cluster.scheduler_address, show_progress=False))
        assert set(first) == {"ada_111", "bob_222"}
        for sid, entry in first.items():
            result = SubmissionResult.read(setup.result_path(sid))
            assert entry.status == result.status == "grader_error" and not result.items
            assert "WorkerUnfit" in result.message and "runs grader another-build, the client " in result.message
            assert "install the same version of the project on every worker" in entry.message, entry.message

        flag.unlink()  # the workers are fit now
        second = by_id(grade_all(sources, setup, scheduler=cluster.scheduler_address, show_progress=False))
    assert not any(entry.reused for entry in second.values())
    for sid in ("ada_111", "bob_222"):
        assert_graded_in_full(SubmissionResult.read(setup.result_path(sid)))
