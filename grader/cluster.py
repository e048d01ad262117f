"""Grading on a dask.distributed cluster: ``grade ... --scheduler tcp://HOST:PORT``.

What travels: each submission's bytes go to a worker, which grades it into a scratch
output folder of its own and sends back the result, the media files it wrote and the
evidence and fingerprints it kept (:mod:`grader.evidence`, :mod:`grader.similarity.prints`). They are written here, into the instructor's
output folder (media, evidence and fingerprints first, then the result, atomically), so resume, the
cache and re-scoring (:mod:`grader.batch`) work as with local jobs, and no worker ever
writes to the instructor's disk. The runs a worker kept (:mod:`grader.run_cache`) stay
with it.

What each worker machine needs: the project installed at the same path as here
(``make setup``: bubblewrap, the virtual environment, numba's cache, the student
environment; ``grade env build --rubric FILE`` for a rubric naming another), and the data
set folder graded on at the same path (a shared or copied folder). Before grading, a worker
checks that it runs the same grader build, sees the same held-out set (by content hash) and
has the rubric's student environment built from the same requirements (by digest); where
not, each submission sent to it gets a ``grader_error`` result saying what is missing, and
a later run retries them.

Each task grades one submission on one core (a worker runs as many at once as it has
threads). At most twice the cluster's threads are in flight, so the submissions'
bytes are read only shortly before they are sent.
"""
from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable

from grader import evidence
from grader.batch_entries import BatchEntry, Pending, record_failure
from grader.cache import build_digest
from grader.environment import StudentEnvironment
from grader.folders import walk_files
from grader.pipeline import MEDIA_FOLDER, RESULTS_FOLDER, GradingSetup, grade_submission
from grader.results import SubmissionResult
from grader.similarity.prints import path_of as prints_path
from reference.files import atomic_write

CONNECT_TIMEOUT_SECONDS = 30


class WorkerUnfit(RuntimeError):
    """A worker cannot grade as this client would: another grader build, held-out set or student environment."""


def grade_on_cluster(pending: list[Pending], setup: GradingSetup, address: str,
                     started: Callable[[Pending], None], finished: Callable[[BatchEntry], None]) -> None:
    """Grade ``pending`` on the cluster whose scheduler is at ``address``; ``finished`` gets each entry."""
    from distributed import Client, as_completed

    setup = dataclasses.replace(setup, cores=1)
    setup.load_baseline()  # on a worker sharing this machine's cache, read from it
    build = build_digest(), setup.environment.digest
    with Client(address, timeout=CONNECT_TIMEOUT_SECONDS) as client:
        window = max(2, 2 * sum(client.nthreads().values()))
        queue = iter(pending)
        items = {}
        completed = as_completed()

        def submit_next() -> None:
            item = next(queue, None)
            if item is None:
                return
            future = client.submit(grade_on_worker, item.source.name, _pack(item.source), item.key,
                                   item.submission_id, setup, build,
                                   key=f"grade-{item.submission_id}-{item.key[:12]}", pure=False)
            items[future.key] = item
            completed.add(future)
            started(item)

        for _ in range(window):
            submit_next()
        for future in completed:
            item = items.pop(future.key)
            try:
                finished(_write_back(item, setup, *future.result()))
            except Exception as error:  # the worker died, or is unfit: recorded, never fatal to the batch
                finished(record_failure(item, setup, error))
            future.release()
            submit_next()


def _pack(source: Path) -> bytes | dict[str, bytes]:
    """A zip's bytes, or a folder's files by relative path (links are left out, as intake would refuse them)."""
    if source.is_dir():
        return {path.relative_to(source).as_posix(): path.read_bytes() for path, _ in sorted(walk_files(source))}
    return source.read_bytes() if source.exists() else b""


def _unpack(target: Path, packed: bytes | dict[str, bytes]) -> None:
    if isinstance(packed, bytes):
        target.write_bytes(packed)
        return
    target.mkdir()
    for relative, content in packed.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def grade_on_worker(name: str, packed: bytes | dict[str, bytes], key: str, sid: str, setup: GradingSetup,
                    build: tuple[str, str]) -> tuple[str, dict[str, bytes], dict[str, bytes]]:
    """On a worker: grade the submission ``name`` from its bytes; return the result's JSON, its media files and the
    evidence and fingerprints kept of its grading.

    ``build``: the client's grader build (:func:`build_digest`) and student environment digest.

    Media files, evidence and fingerprints are keyed by their path relative to the output folder
    (``media/<id>/...``, ``evidence/<id>.json``, ``fingerprints/<id>.json``).
    """
    _check_fit(setup, build)
    with tempfile.TemporaryDirectory(prefix="grade-on-worker-") as scratch:
        source = Path(scratch) / "in" / name
        source.parent.mkdir()
        _unpack(source, packed)
        out_dir = Path(scratch) / "out"
        result = grade_submission(source, dataclasses.replace(setup, out_dir=out_dir), key, sid)
        media = {path.relative_to(out_dir).as_posix(): path.read_bytes()
                 for path in (out_dir / MEDIA_FOLDER / result.submission_id).rglob("*") if path.is_file()}
        kept = {path.relative_to(out_dir).as_posix(): path.read_bytes()
                for path in (evidence.path_of(out_dir, result.submission_id), prints_path(out_dir, result.submission_id))
                if path.is_file()}
        return result.model_dump_json(), media, kept


def _check_fit(setup: GradingSetup, build: tuple[str, str]) -> None:
    here = socket.gethostname()
    code, environment_digest = build
    if build_digest() != code:
        raise WorkerUnfit(f"worker {here} runs grader {build_digest()}, the client {code}: install the same "
                          "version of the project on every worker")
    environment = StudentEnvironment.of(setup.environment.requirements, setup.environment.legacy_keras)
    if environment.digest != environment_digest:
        raise WorkerUnfit(f"worker {here} has another {environment.requirements} (environment "
                          f"{environment.digest[:12]}, the client's {environment_digest[:12]}): install the same "
                          "version of the project on every worker")
    if not environment.ready:
        raise WorkerUnfit(f"worker {here}: {environment.missing_message()}")
    heldout = setup.heldout
    missing = [clip.path for clip in heldout.clips + heldout.training if not clip.path.is_file()]
    if not (heldout.folder / "ready").is_file() or missing:
        raise WorkerUnfit(f"worker {here} does not see the held-out set {heldout.digest[:16]} (missing: "
                          f"{(missing or [heldout.folder])[0]}): workers need the project and the data set "
                          "folder at the same paths as the client")
    absent = [str(host) for host in setup.rubric.mount_paths().values() if not host.exists()]
    if absent:
        raise WorkerUnfit(f"worker {here} does not see the rubric's course data {absent[0]}: workers need the "
                          "rubric's [[mounts]] folders at the same paths as the client")


def _write_back(item: Pending, setup: GradingSetup, result_json: str, media: dict[str, bytes],
                kept: dict[str, bytes]) -> BatchEntry:
    """Write a worker's media, kept evidence and fingerprints, then its result (atomically), into the output folder;
    the result's entry."""
    result = SubmissionResult.model_validate_json(result_json)
    result.source = str(item.source)
    media_dir = setup.out_dir / MEDIA_FOLDER / result.submission_id
    shutil.rmtree(media_dir, ignore_errors=True)
    for relative, content in media.items():
        target = (setup.out_dir / relative).resolve()
        if not target.is_relative_to(media_dir.resolve()):
            raise ValueError(f"a worker sent media outside {media_dir}: {relative}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    expected = {path.relative_to(setup.out_dir).as_posix(): path for path in
                (evidence.path_of(setup.out_dir, result.submission_id), prints_path(setup.out_dir, result.submission_id))}
    for relative, content in kept.items():
        if relative not in expected:
            raise ValueError(f"a worker sent a file the grader does not keep: {relative}")
        atomic_write(expected[relative], content)
    result.write(setup.out_dir / RESULTS_FOLDER)
    return BatchEntry.of(result, reused=False)

