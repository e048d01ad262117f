"""What the command's process gets in every mode, sandboxed or not: its environment variables and its
per-process rlimits (:class:`grader.limits.RunLimits`), and the warm numba cache's entries it reads through links.
"""
from __future__ import annotations

import functools
import os
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from grader.limits import RunLimits

if TYPE_CHECKING:
    from grader.environment import StudentEnvironment

SITE_FOLDER = Path(__file__).parents[1] / "sandbox_site"
"""Modules the grader puts on student code's ``PYTHONPATH`` (the ``google.colab`` stand-in)."""
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
"""``PATH`` after the student environment's ``bin``."""

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def child_env(limits: RunLimits, home: str, environment: StudentEnvironment, numba_cache: str | None,
              site: str, path: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    """A run's environment variables: the sandbox's, then ``environment``'s, then the caller's ``extra``."""
    env = {
        "PATH": path, "HOME": home, "TMPDIR": "/tmp", "USER": "student", "LOGNAME": "student",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{home}/.config/matplotlib", "PYTHONPATH": site,
    }
    env.update({variable: str(limits.cpu_threads) for variable in _THREAD_VARIABLES})
    if numba_cache:
        env["NUMBA_CACHE_DIR"] = numba_cache
    env.update(environment.variables(limits.cpu_threads))
    env.update(extra or {})
    return env


def rlimits(limits: RunLimits, processes: bool, memory: bool) -> list[tuple[int, int, int]]:
    """The per-process rlimits of a run as (resource, soft, hard).

    RLIMIT_NPROC and RLIMIT_DATA only where no cgroup holds processes and memory.
    """
    values = [
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),  # SIGXCPU first, SIGKILL a second later
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
    ]
    if processes:
        values.append((resource.RLIMIT_NPROC, limits.processes, limits.processes))
    if memory:
        values.append((resource.RLIMIT_DATA, limits.memory_bytes, limits.memory_bytes))
    return values


def warm_numba_entries(cache: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The entries of the environment's warm numba ``cache``, as (folder, its entry names), for the links a run's
    own writable cache folder holds (numba skips a cache folder it cannot write to). Folders without entries and
    numba's temporary files are left out. The answer is kept while no folder of the cache changes (an entry added or
    removed changes its folder's mtime)."""
    folders = tuple(sorted((entry.name, entry.stat(follow_symlinks=False).st_mtime_ns)
                           for entry in os.scandir(cache) if entry.is_dir(follow_symlinks=False)))
    return _entries_of(cache, folders)


@functools.lru_cache(maxsize=4)
def _entries_of(cache: Path, folders: tuple[tuple[str, int], ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    found = []
    for name, _ in folders:
        entries = tuple(sorted(entry.name for entry in os.scandir(cache / name)
                               if entry.is_file(follow_symlinks=False) and ".tmp." not in entry.name))
        if entries:
            found.append((name, entries))
    return tuple(found)
