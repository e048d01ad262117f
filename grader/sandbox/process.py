"""What the command's process gets in every mode, sandboxed or not: its environment variables and its
per-process rlimits (:class:`grader.limits.RunLimits`).
"""
from __future__ import annotations

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
