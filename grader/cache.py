"""When a result already on disk can stand for a new grading: content digests and the cache key.

A result is reused, not regraded, when its ``cache_key`` equals the key the grader
would give the submission now. The key is a sha256 over:
- the submission's content (a zip's bytes; a folder's relative paths and file bytes),
  not its name or modification time;
- the rubric (its validated content, not its file's formatting);
- the held-out set (:attr:`grader.heldout.HeldoutSet.digest`);
- the student environment student code ran with (:attr:`grader.environment.StudentEnvironment.digest`:
  its requirements file and Python version);
- the grader's build (:func:`code_digest`: its version, the code of ``grader`` and
  ``reference`` and the reference checkpoints the baseline comes from);
- how it is graded (a student's self-check or not; sandboxed or not).
Anything else (the number of jobs, the machine, the output folder) does not change a
result, so it is not in the key. A result is also not reused when its status is
``grader_error`` (the grader failed: maybe a passing cause) or when a media file it
names is missing from the output folder.
"""
from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path

from grader import __version__
from grader.folders import walk_files
from grader.results import SubmissionResult
from reference import PROJECT_ROOT

_CHUNK = 1 << 20
_CODE_FOLDERS = ("grader", "reference")
_CODE_SUFFIXES = (".py", ".c")


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
                _update_from_file(digest, path)
    else:
        _update_from_file(digest, source)
    return digest.hexdigest()


def _update_from_file(digest, path: Path) -> None:
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    digest.update(b"\0")


@functools.cache
def code_digest() -> str:
    """The grader's build: ``<version>+<12 hex digits>`` over its code and the reference checkpoints.

    Computed once per process. Report templates are left out: reports are re-rendered
    from results on every run anyway.
    """
    from grader.scoring import reference_checkpoints

    digest = hashlib.sha256(__version__.encode())
    files = [path for folder in _CODE_FOLDERS for path in (PROJECT_ROOT / folder).rglob("*")
             if path.suffix in _CODE_SUFFIXES and "__pycache__" not in path.parts]
    for path in sorted(files) + reference_checkpoints():
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0")
        _update_from_file(digest, path)
    return f"{__version__}+{digest.hexdigest()[:12]}"


def cache_key(content: str, rubric_json: str, heldout_digest: str, *, environment_digest: str, student_mode: bool,
              allow_unsandboxed: bool) -> str:
    """The key a result of a submission with digest ``content`` carries (see the module's notes)."""
    parts = [content, hashlib.sha256(rubric_json.encode()).hexdigest(), heldout_digest, environment_digest,
             code_digest(), f"student_mode={student_mode}", f"unsandboxed={allow_unsandboxed}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def read_result(result_path: Path) -> SubmissionResult | None:
    """The result at ``result_path``; None when there is no such file or it does not parse (never
    half-written: results are written atomically, but a person may have edited one)."""
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
