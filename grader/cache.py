"""Cache keys and atomic writes: what every cache of the grader is keyed on, and how its entries are written.

A cached thing is named by a key over the content it was made from and the digest of the
code that made it (:func:`code_digest` of its grain, below), so a change to either gives a
new key and the old entry is never read again. Each grain is the code that makes the
thing, no more: a fix to a metric re-scores without re-running student code, a fix to the
sandbox re-runs it.

=====================  ====================================  ==============================================
cache                  where                                 keyed on
=====================  ====================================  ==============================================
results                ``OUT/results/<id>.json``             the submission, the rubric, the held-out set,
                       (its ``cache_key``)                   the student environment, the grader's whole
                                                             build (:func:`build_digest`), how it is graded
kept evidence          ``OUT/evidence/<id>.json``            as results, but the rubric without what only
                       (:mod:`grader.evidence`)              scores (:func:`evidence_key`), and the course
                                                             data mounts' listings
student runs           ``OUT/runs/<key>/``                   the unpacked submission, :data:`RUN_CODE`, the
                       (:mod:`grader.run_cache`)             environment, the inputs' content, the mounts,
                                                             the command, the limits, sandboxed or not
held-out preparation   ``.cache/heldout/<digest>/``          the clips' bytes and names, :data:`HELDOUT_CODE`,
                                                             the log-mel parameters
reference baseline     ``.cache/baseline/<key>/``            the held-out set, :data:`BASELINE_CODE`, the
                                                             reference checkpoints
mount verdicts         ``.cache/mounts/<key>.json``          the held-out set, :data:`MOUNT_CODE`
student environments   ``.cache/environments/<digest>/``     its requirements file and Python version
                                                             (:mod:`grader.environment`)
=====================  ====================================  ==============================================

Two caches are keyed where they live, not here: the report's spectrogram pictures
(:mod:`grader.report.spectrograms`: the audio's bytes, the drawing's settings and
:func:`code_digest` of the drawing code) and the feature cache of :mod:`reference.preprocess`
(the audio's bytes, the feature parameters, librosa's version and the module's own source;
``reference`` never imports ``grader``).

Every file or folder a cache holds is written under a temporary name and renamed into
place (:func:`atomic_write`; :func:`staged_folder`, or :func:`staging_folder` then
:func:`publish`): a reader sees the whole entry or none, however a grader is stopped, and
two graders making one entry at once both succeed.

A result is reused, not regraded, when its ``cache_key`` equals the key the grader would
give the submission now (:func:`cache_key`), it does not record a grader error and every
media file it names is in the output folder (:func:`reusable`). A result regraded while its
kept evidence's key (:func:`evidence_key`) is unchanged is only re-scored from it.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from grader import __version__
from grader.folders import remove_tree, walk_files
from reference import PROJECT_ROOT
from reference.files import file_digest, update_from_file

if TYPE_CHECKING:
    from grader.results import SubmissionResult

_CODE_SUFFIXES = (".py", ".c")

BUILD_CODE = ("grader", "reference")
"""The whole grader and reference solution: a result depends on all of it (every check, every score)."""
RUN_CODE = ("grader/sandbox", "grader/sandbox_init.c", "grader/sandbox_site", "grader/notebook.py",
            "grader/scratch.py", "grader/mounts.py", "grader/environment.py", "grader/limits.py", "grader/folders.py",
            "grader/student_files.py", "grader/run_cache.py")
"""The code that runs student code and keeps what it wrote; the commands themselves (a check's harness, the
contract's placeholders) are part of each run's key as text, and the scoring code is no part of it."""
HELDOUT_CODE = ("grader/heldout.py", "grader/folders.py", "reference/__init__.py", "reference/data.py",
                "reference/preprocess.py", "reference/evaluation_unpaired.py")
"""The code that reads a held-out folder and prepares its log-mels, probes, embeddings and diversity."""
BASELINE_CODE = ("reference", "grader/scoring.py")
"""The reference solution (its generation code, vocoders and metrics, ``reference/evaluation.py``) and the
scoring of its sources: the baseline's outputs and scores. The checkpoints are keyed apart, by content."""
MOUNT_CODE = ("grader/mounts.py", "reference/preprocess.py", "reference/evaluation_unpaired.py")
"""What decides whether a course data folder holds a held-out clip."""


def key(*parts: str) -> str:
    """sha256 (hex) of ``parts`` in order, each ended by a separator no part holds."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def content_digest(source: str | os.PathLike) -> str:
    """sha256 of a zip's bytes, or of a folder's files (relative path and bytes, in path order; links by target)."""
    source = Path(source)
    digest = hashlib.sha256()
    if source.is_dir():
        for path, state in sorted(walk_files(source, links=True)):
            digest.update(path.relative_to(source).as_posix().encode() + b"\0")
            if stat.S_ISLNK(state.st_mode):
                digest.update(b"link\0" + os.readlink(path).encode() + b"\0")
            else:
                update_from_file(digest, path)
                digest.update(b"\0")
    else:
        update_from_file(digest, source)
    return digest.hexdigest()


def listing_digest(source: str | os.PathLike) -> str:
    """sha256 (hex) of a file's or folder's listing: each file's relative path, size and modification time, not
    its bytes (a course data folder may hold gigabytes that every run would otherwise read); links by target."""
    source = Path(source)
    if not source.is_dir():
        state = source.stat()
        return key("file", str(state.st_size), str(state.st_mtime_ns))
    rows = []
    for path, state in sorted(walk_files(source, links=True)):
        target = os.readlink(path) if stat.S_ISLNK(state.st_mode) else ""
        rows.append(f"{path.relative_to(source).as_posix()}|{state.st_size}|{state.st_mtime_ns}|{target}")
    return key("folder", *rows)


@functools.cache
def code_digest(grain: tuple[str, ...]) -> str:
    """sha256 (hex) of the code files of ``grain``: paths relative to the project, a folder meaning every
    ``.py`` and ``.c`` file under it; each file's relative path and :func:`file_digest`, in path order.

    Computed once per process and grain (the code does not change under a running grader).
    """
    files: set[Path] = set()
    for part in grain:
        path = PROJECT_ROOT / part
        if path.is_dir():
            files.update(p for p, _ in walk_files(path) if p.suffix in _CODE_SUFFIXES and "__pycache__" not in p.parts)
        else:
            files.add(path)
    return key(*(f"{path.relative_to(PROJECT_ROOT).as_posix()}={file_digest(path)}" for path in sorted(files)))


@functools.cache
def build_digest() -> str:
    """The grader's build: ``<version>+<12 hex digits>`` over all its code and the reference checkpoints.

    Computed once per process. Report templates are left out: reports are re-rendered from results on every run anyway.
    """
    from reference.generate import COMMITTED_CHECKPOINTS

    checkpoints = [f"{path.relative_to(PROJECT_ROOT).as_posix()}={file_digest(path)}"
                   for path in COMMITTED_CHECKPOINTS]
    return f"{__version__}+{key(__version__, code_digest(BUILD_CODE), *checkpoints)[:12]}"


def cache_key(content: str, rubric_json: str, heldout_digest: str, *, environment_digest: str, student_mode: bool,
              allow_unsandboxed: bool, max_run_seconds: float | None = None) -> str:
    """The key a result of a submission with digest ``content`` carries (see the module's notes); ``max_run_seconds``:
    a cap on each run beyond the rubric's limits (``grade --max-run-seconds``), none by default (keys made without
    one stay as they were)."""
    cap = [] if max_run_seconds is None else [f"max_run_seconds={max_run_seconds:g}"]
    return hashlib.sha256("|".join([
        content, hashlib.sha256(rubric_json.encode()).hexdigest(), heldout_digest, environment_digest,
        build_digest(), f"student_mode={student_mode}", f"unsandboxed={allow_unsandboxed}", *cap]).encode()).hexdigest()


def mounts_digest(mounts: dict[str, Path]) -> str:
    """sha256 (hex) of course data mounts (``{path inside: host folder}``) by :func:`listing_digest` of each host
    folder ("absent" for one that is not there: grading refuses it before any submission is graded)."""
    return key(*(f"{inside}={listing_digest(host) if host.exists() else 'absent'}"
                 for inside, host in sorted(mounts.items())))


def evidence_key(content: str, making_rubric_json: str, heldout_digest: str, *, environment_digest: str,
                 mounts_digest: str, student_mode: bool, allow_unsandboxed: bool,
                 max_run_seconds: float | None = None) -> str:
    """The key of a submission's kept evidence (:mod:`grader.evidence`): :func:`cache_key` over the rubric without
    what only scores (:func:`grader.evidence.making_rubric`), and the course data mounts' listings."""
    return key("evidence", cache_key(content, making_rubric_json, heldout_digest, environment_digest=environment_digest,
                                     student_mode=student_mode, allow_unsandboxed=allow_unsandboxed,
                                     max_run_seconds=max_run_seconds), mounts_digest)


def staging_folder(folder: str | os.PathLike) -> Path:
    """A fresh, empty ``<folder>.<pid>.tmp`` beside ``folder``, to fill and then :func:`publish` as ``folder``."""
    folder = Path(folder)
    staging = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    remove_tree(staging)
    staging.mkdir(parents=True)
    return staging


def publish(staging: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Put the filled ``staging`` folder in place of ``folder`` with one rename.

    Another process may have made ``folder`` meanwhile (the same key gives the same content): its copy is
    replaced."""
    remove_tree(folder)
    Path(staging).rename(folder)


@contextlib.contextmanager
def staged_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """A :func:`staging_folder` to fill in the ``with`` block: published as ``folder`` when the block ends
    normally, removed when it raises."""
    staging = staging_folder(folder)
    try:
        yield staging
        publish(staging, folder)
    finally:
        if staging.exists():
            remove_tree(staging)


def read_result(result_path: Path) -> SubmissionResult | None:
    """The result at ``result_path``; None when there is no such file or it does not parse (never
    half-written: results are written atomically, but a person may have edited one)."""
    from grader.results import SubmissionResult

    try:
        return SubmissionResult.read(result_path)
    except (OSError, ValueError):
        return None


def reusable(result: SubmissionResult, key: str, out_root: Path) -> bool:
    """Whether ``result`` (read from ``out_root``) may stand for grading the submission with ``key`` now:
    not when its key differs, it records a grader error, or a media file it names is missing."""
    if result.cache_key != key or result.status == "grader_error":
        return False
    return all((out_root / media).is_file() for media in result.media_files())
