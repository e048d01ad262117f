"""A class's submissions: planned against the results already on disk, then graded in
worker processes (or on a dask cluster, :mod:`grader.cluster`), with a progress bar.

- Resume and cache: before grading, each submission's cache key (:mod:`grader.cache`)
  is compared with the result already in ``OUT/results``; an equal key reuses it, so a
  batch stopped by Ctrl-C or ``kill -9`` grades only what is missing when started
  again, and an unchanged class is not graded twice. ``force`` regrades everything.
- Re-scoring: a submission regraded because only the rubric's scoring changed (points, bars,
  tolerances, the answer key) is re-scored from what its last grading kept (:mod:`grader.evidence`):
  nothing is unpacked, run or measured, so it is graded here, in this process, before the
  others start. One regraded because the grader changed (a metric fixed) takes its runs of
  student code from ``OUT/runs`` (:mod:`grader.run_cache`) instead of running them again.
  ``force`` does neither: everything is graded and run again.
- Results are written one by one as each submission finishes, atomically, by the
  process that graded it; this module keeps only a one-line :class:`BatchEntry` per
  submission, and at most ``jobs`` submissions are in flight, so memory stays flat
  however large the class.
- Cores: with ``jobs`` N, the grader's own scoring of each submission uses at most
  ``cores // N`` processes; student code runs with the rubric's ``cpu_threads`` (one by
  default) whatever N is, so results never depend on it.
- Attempts: files of one student (a resubmission beside the first in one LMS export, or
  one file name in two folders) are all graded, each into a result of its own: the
  student's attempts, in the order handed in (:func:`submission_ids`).
- A worker process that dies (the grader's own crash, never student code: that runs
  in the sandbox) costs only the submissions it was grading: they get a
  ``grader_error`` result (never reused, so the next run retries them) and the batch
  goes on in a new pool.
"""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterator

from grader import evidence
from grader.batch_entries import BatchEntry, Pending, record_failure
from grader.cache import read_result, reusable
from grader.folders import walk_files
from grader.identity import attempt_id
from grader.intake import submission_id
from grader.pipeline import RESULTS_FOLDER, GradingSetup, grade_submission, warm_up
from grader.report.spectrograms import draw_spectrograms, warm_up_drawing


def cores_per_job(jobs: int) -> int:
    """Cores each of ``jobs`` concurrent submissions gets on this machine (at least one)."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, jobs))


def plan(sources: list[Path], setup: GradingSetup, force: bool = False) -> tuple[list[BatchEntry], list[Pending]]:
    """Split ``sources`` into results reused from ``setup.out_dir`` and submissions to grade.

    A file given twice is one source; files of one student are its attempts (:func:`submission_ids`).
    """
    sources = _once_each(sources)
    for folder in (RESULTS_FOLDER, evidence.EVIDENCE_FOLDER):
        _remove_stale_temporaries(setup.out_dir / folder)
    reused, pending = [], []
    for source, sid in zip(sources, submission_ids(sources)):
        key = setup.cache_key(source)
        earlier = read_result(setup.result_path(sid))
        if earlier is not None and not force and key and reusable(earlier, key, setup.out_dir):
            reused.append(BatchEntry.of(earlier, reused=True))
        else:
            took = earlier.seconds if earlier is not None and earlier.status != "grader_error" else None
            kept = not force and evidence.stands(setup.out_dir, sid, setup.evidence_key(source))
            pending.append(Pending(Path(source), sid, key, took, kept))
    return reused, pending


def _once_each(sources: list[Path]) -> list[Path]:
    """``sources`` without a file or folder named again (by its resolved path), in their order."""
    seen: set[Path] = set()
    unique = []
    for source in map(Path, sources):
        if source.resolve() not in seen:
            seen.add(source.resolve())
            unique.append(source)
    return unique


def submission_ids(sources: list[Path]) -> list[str]:
    """Each source's submission id: its student's (:func:`grader.intake.submission_id`), marked as a later attempt
    where sources share it.

    Sources sharing a student's id are that student's attempts, numbered in the order they were handed in: by
    file modification time, then by path where times are equal; a source whose time cannot be read counts as
    the oldest. The first keeps the student's id, a later one gets ``<id>~<n>``
    (:func:`grader.identity.attempt_id`). The same files give the same ids on every run, so results are reused.
    """
    students = [submission_id(source) for source in sources]
    handed_in = sorted(range(len(sources)), key=lambda index: (_modified(sources[index]), str(sources[index])))
    counted: Counter[str] = Counter()
    ids = [""] * len(sources)
    for index in handed_in:
        counted[students[index]] += 1
        ids[index] = attempt_id(students[index], counted[students[index]])
    return ids


def _modified(source: Path) -> int:
    """The modification time of ``source`` in nanoseconds; 0 where it cannot be read (intake will say why)."""
    try:
        return source.stat().st_mtime_ns
    except OSError:
        return 0


def _remove_stale_temporaries(folder: Path) -> None:
    """Remove half-written result or evidence files (``.<id>.json.<pid>.tmp``) of graders that were killed."""
    for leftover in folder.glob(".*.json.*.tmp"):
        pid = leftover.name.rsplit(".", 2)[-2]
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            leftover.unlink(missing_ok=True)


def grade_all(sources: list[Path], setup: GradingSetup, jobs: int = 1, *, force: bool = False,
              scheduler: str | None = None, show_progress: bool = True) -> list[BatchEntry]:
    """Grade what is not graded yet (see the module's notes) and return every source's entry.

    Args:
        sources: zips or folders; several of one student are graded as its attempts (:func:`plan`).
        jobs: submissions graded at once in local worker processes (ignored with ``scheduler``).
        force: regrade even where an earlier result could be reused, and run student code again even where an
            identical earlier run is kept (:mod:`grader.run_cache`).
        scheduler: a dask.distributed scheduler's address; grading happens on its workers.
        show_progress: draw the progress bar (on standard error).
    """
    reused, pending = plan(sources, setup, force)
    if force:
        setup = dataclasses.replace(setup, reuse_runs=False)
    if scheduler is None and jobs > 1 and setup.cores is None:
        setup = dataclasses.replace(setup, cores=cores_per_job(jobs))
    graded: list[BatchEntry] = []
    with BatchProgress(len(pending), enabled=show_progress) as progress:
        def finished(entry: BatchEntry) -> None:
            graded.append(entry)
            progress.finished(entry)

        rescored = [item for item in pending if item.rescoring]  # cheap: here, without starting workers
        pending = [item for item in pending if not item.rescoring]
        for item in rescored:
            progress.started(item)
            finished(_grade_one(item, setup))
        if scheduler is not None:
            from grader.cluster import grade_on_cluster

            grade_on_cluster(pending, setup, scheduler, progress.started, finished)
        elif jobs <= 1 or len(pending) <= 1:
            for item in pending:
                progress.started(item)
                finished(_grade_one(item, setup))
        else:
            _grade_in_processes(pending, setup, jobs, progress.started, finished)
    return reused + graded


def _grade_one(item: Pending, setup: GradingSetup) -> BatchEntry:
    """Grade one submission here, and draw its spectrograms (so the report at the end only links them).

    Never raises for the submission: what fails around its grading (writing its result, drawing) becomes its
    ``grader_error`` result, and the batch goes on."""
    try:
        result = grade_submission(item.source, setup, item.key, sid=item.submission_id)
        draw_spectrograms(result, setup.out_dir)
    except (Exception, SystemExit) as error:
        return record_failure(item, setup, error)
    return BatchEntry.of(result, reused=False)


def _grade_in_processes(pending: list[Pending], setup: GradingSetup, jobs: int, started, finished) -> None:
    """Grade ``pending`` in ``jobs`` forked processes, at most ``jobs`` in flight; a broken pool is replaced.

    Long gradings go first, so that none started last ends alone on one core while the others idle
    (:func:`longest_first`). A dying worker breaks the whole pool, failing every submission in flight with it;
    those are graded again afterwards, each alone in a pool of its own, so that only one that kills its worker by
    itself gets a ``grader_error`` result.
    """
    warm_up(setup)  # once here, inherited by every forked worker
    warm_up_drawing()
    queue: Iterator[Pending] = iter(longest_first(pending))
    suspects: list[Pending] = []
    while _grade_in_pool(queue, setup, jobs, started, finished, suspects):
        pass
    for item in suspects:
        _grade_in_pool(iter([item]), setup, 1, lambda _: None, finished, None)


def _grade_in_pool(queue: Iterator[Pending], setup: GradingSetup, jobs: int, started, finished,
                   suspects: list[Pending] | None) -> bool:
    """Grade from ``queue`` in one pool of ``jobs`` processes until it is empty or the pool breaks (True).

    A submission in flight when the pool broke goes to ``suspects`` (None: gets its ``grader_error`` result)."""
    in_flight: dict = {}
    broken = False
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        def submit_next() -> None:
            item = next(queue, None)
            if item is not None:
                in_flight[pool.submit(_grade_one, item, setup)] = item
                started(item)

        for _ in range(jobs):
            submit_next()
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                item = in_flight.pop(future)
                try:
                    entry = future.result()
                except BrokenProcessPool as error:
                    broken = True
                    if suspects is not None:
                        suspects.append(item)
                        continue
                    entry = record_failure(item, setup, error)
                except Exception as error:  # the entry could not come back from the worker
                    entry = record_failure(item, setup, error)
                finished(entry)
                if not broken:
                    submit_next()
    return broken


def longest_first(pending: list[Pending]) -> list[Pending]:
    """``pending`` in the order to start them: first those never graded, largest first (a checkpoint makes a
    zip large, and its model runs make the grading long), then the others by the time their earlier grading
    took, longest first. A small submission that runs until its time limits is only known by that time."""
    return sorted(pending, key=lambda item: (0, -_bytes(item.source)) if item.earlier_seconds is None
                  else (1, -item.earlier_seconds))


def _bytes(source: Path) -> int:
    """Size of a zip, or of the files in a folder; 0 where it cannot be read (intake will say why)."""
    try:
        if source.is_dir():
            return sum(state.st_size for _, state in walk_files(source))
        return source.stat().st_size
    except OSError:
        return 0


class BatchProgress:
    """The progress bar: done of total, failed, running, and the time left (rich, on standard error)."""

    def __init__(self, total: int, enabled: bool = True):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.running: set[str] = set()
        self.failed = 0
        self.enabled = enabled and total > 0
        self.progress = Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[state]}"), TimeElapsedColumn(), TextColumn("left"),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                                 disable=not self.enabled)
        self.task = self.progress.add_task("grading", total=total, state=self._state())

    def _state(self) -> str:
        return f"{self.failed} failed, {len(self.running)} running"

    def started(self, item: Pending) -> None:
        self.running.add(item.submission_id)
        self.progress.update(self.task, state=self._state())

    def finished(self, entry: BatchEntry) -> None:
        self.running.discard(entry.submission_id)
        if entry.failed:
            self.failed += 1
            if self.enabled:
                self.progress.console.print(f"[red]{entry.status}[/red] {entry.submission_id}: {entry.message}")
        self.progress.update(self.task, advance=1, state=self._state())

    def __enter__(self) -> BatchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
