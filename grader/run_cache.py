"""What student runs produced, kept so that grading a submission again does not run its code again.

A change to the grader (a metric fixed) regrades every submission, but what its code does
has not changed: each run (an entry point, the ``mfcc`` harness, a notebook) is looked up
here first by a key (:func:`run_key`) over everything that decides what it does (a change of
the rubric's scoring alone does not even get here: the submission is re-scored from what its
grading kept, :mod:`grader.evidence`):
- the work folder it runs in, by content (the unpacked submission as the run gets it);
- the code that runs student code (:data:`grader.cache.RUN_CODE`: the sandbox, its init,
  seccomp, the notebook runner...), not the scoring code;
- the student environment's digest;
- every input mounted for it, by content (the held-out log-mels, the probe clips), and the
  rubric's course data mounts, by their files' names, sizes and times (:func:`grader.cache.listing_digest`);
- the command as the sandbox gets it (or a notebook's path and parameters), the run's
  limits, and whether it could run unsandboxed.

An entry is the run's verdict (:class:`grader.sandbox.RunResult`, and a notebook's
:class:`grader.notebook.NotebookRun`) and the plain files the run left at the top of its
output folder, which is all the grader reads of a run. They are copied from the work folder
without following a link, at most the run's own ``disk_bytes`` and ``disk_inodes``; read
back, they are written into the new run's output folder and read from there as any run's
outputs are (:func:`grader.sandbox.output_file`, then validated).

Not kept, so the run happens again next time:
- a run the sandbox could not start (``sandbox_unavailable``: a problem of the machine, not
  of the submission);
- a run whose output folder holds anything but plain files (a folder, a link, a FIFO): what
  a reader makes of those could not be given back as it was.
A run stopped by a limit (a timeout, say) is kept like any other: its limits are part of its
key, so raising one runs it again, and ``grade --force`` runs everything again (after a batch
on an overloaded machine, say).

Where: ``OUT/runs/<key[:2]>/<key>/`` (:data:`RUNS_FOLDER` of the output folder), beside the
results it serves, so ``grade submissions/*.zip --out OUT`` run again after a change to the
grader's scoring code re-scores every submission from it; another output folder starts empty, and a
dask cluster's workers, which grade into folders of their own, run everything. Entries are
never removed by the grader: delete ``OUT/runs`` to free the space (the next grading runs
everything again). ``grade --force`` runs student code again and stores what it made.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from grader import sandbox
from grader.cache import RUN_CODE, code_digest, content_digest, key, listing_digest, staged_folder
from grader.environment import StudentEnvironment
from grader.limits import RunLimits
from grader.notebook import NotebookRun

RUNS_FOLDER = "runs"
"""Folder of an output folder that holds the run cache."""
_VERDICT = "run.json"
_OUTPUTS = "outputs"


@dataclass(frozen=True)
class CachedRun:
    """A run read back from the cache: its verdict, and the folder of the output files it wrote."""

    result: sandbox.RunResult
    notebook: NotebookRun | None
    outputs: Path


def run_key(what: Sequence[str] | str | Mapping[str, object], workdir: Path, inputs: Mapping[str, Path],
            limits: RunLimits, *, environment: StudentEnvironment | None, mounts: Mapping[str, Path],
            allow_unsandboxed: bool) -> str:
    """The key of a run of ``what`` (a command, or a notebook's path and parameters) in ``workdir`` before it runs.

    ``inputs`` and ``mounts`` as given to :func:`grader.sandbox.run`; ``environment`` None is the sandbox's
    bundled one. Host paths are no part of the key, so a run in another scratch folder finds it.
    """
    return key(
        "run", json.dumps(what, sort_keys=True, default=str), content_digest(workdir), code_digest(RUN_CODE),
        environment.digest if environment is not None else "bundled",
        *(f"input {name}={content_digest(path)}" for name, path in sorted(inputs.items())),
        *(f"mount {inside}={listing_digest(host)}" for inside, host in sorted(mounts.items())),
        limits.model_dump_json(), f"unsandboxed={allow_unsandboxed}")


@dataclass(frozen=True)
class RunCache:
    """The run cache under ``root`` (``OUT/runs``); ``reuse`` False stores runs but never reads them back."""

    root: Path
    reuse: bool = True

    def _folder(self, run: str) -> Path:
        return self.root / run[:2] / run

    def load(self, run: str) -> CachedRun | None:
        """The run stored under key ``run``; None when there is none (or ``reuse`` is off, or it does not parse)."""
        folder = self._folder(run)
        if not self.reuse or not (folder / _VERDICT).is_file():
            return None
        try:
            saved = json.loads((folder / _VERDICT).read_text())
            notebook = None if saved["notebook"] is None else NotebookRun.model_validate(saved["notebook"])
            return CachedRun(sandbox.RunResult.model_validate(saved["result"]), notebook, folder / _OUTPUTS)
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            return None

    def store(self, run: str, result: sandbox.RunResult, notebook: NotebookRun | None, out_dir: Path,
              limits: RunLimits) -> bool:
        """Keep ``result`` (and ``notebook``) and the plain files in ``out_dir`` (a run's output folder) under key
        ``run``; whether it was kept (see the module's notes for what is not; a full disk is not kept either)."""
        if result.verdict is sandbox.Verdict.SANDBOX_UNAVAILABLE:
            return False
        files = _plain_files(out_dir, limits)
        if files is None:
            return False
        try:
            with staged_folder(self._folder(run)) as staging:
                (staging / _OUTPUTS).mkdir()
                for name in files:
                    if not _copy_plain(out_dir / name, staging / _OUTPUTS / name, limits.disk_bytes):
                        raise _NotKept(name)
                (staging / _VERDICT).write_text(json.dumps({
                    "result": result.model_dump(mode="json"),
                    "notebook": None if notebook is None else notebook.model_dump(mode="json")}))
        except (_NotKept, OSError):
            return False
        return True


class _NotKept(Exception):
    """An output file was no longer a plain file when copied, or had grown past the run's limits."""


def restore(cached: CachedRun, out_dir: Path) -> None:
    """Write the cached run's output files into ``out_dir`` (a new run's empty output folder)."""
    for entry in os.scandir(cached.outputs):
        if entry.is_file(follow_symlinks=False):
            shutil.copyfile(entry.path, out_dir / entry.name, follow_symlinks=False)


def _plain_files(out_dir: Path, limits: RunLimits) -> list[str] | None:
    """Names of the files at the top of ``out_dir``; None when it holds anything else, more than ``disk_inodes``
    entries or more than ``disk_bytes`` bytes (a run cannot, but the copy must not trust that), or is no folder."""
    try:
        state = os.lstat(out_dir)
        if not stat.S_ISDIR(state.st_mode):
            return None
        names, total = [], 0
        with os.scandir(out_dir) as entries:
            for entry in entries:
                state = entry.stat(follow_symlinks=False)
                total += state.st_size
                names.append(entry.name)
                if not stat.S_ISREG(state.st_mode) or len(names) > limits.disk_inodes or total > limits.disk_bytes:
                    return None
    except OSError:
        return None
    return sorted(names)


def _copy_plain(source: Path, target: Path, max_bytes: int) -> bool:
    """Copy ``source`` to ``target`` if it is a plain file (opened without following a link, checked once open)
    of at most ``max_bytes``; whether it was."""
    try:
        descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with open(descriptor, "rb") as stream:
        state = os.fstat(stream.fileno())
        if not stat.S_ISREG(state.st_mode) or state.st_size > max_bytes:
            return False
        with open(target, "xb") as copy:
            copied = 0
            while chunk := stream.read(min(1 << 20, max_bytes + 1 - copied)):
                copied += len(chunk)
                if copied > max_bytes:
                    return False
                copy.write(chunk)
    return True
