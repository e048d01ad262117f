"""Start one run, under bubblewrap (with cgroups where the grader is root and they are writable) or unsandboxed
(resource limits and the system-call filter only); kill it; read what it used; release what it held.
"""
from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from grader.limits import RunLimits
from grader.sandbox import seccomp
from grader.sandbox.bwrap import Arguments, sandbox_arguments
from grader.sandbox.cgroups import Cgroups
from grader.sandbox.host import this_host
from grader.sandbox.inside import SANDBOX_GID, SANDBOX_UID
from grader.sandbox.process import SITE_FOLDER, SYSTEM_PATH, child_env, rlimits
from grader.sandbox.types import SandboxSetupError
from grader.sandbox.workdir import hand_over

if TYPE_CHECKING:
    from grader.environment import StudentEnvironment


@dataclass
class Launch:
    """A started run: the process, what limits it, and what to release afterwards."""

    process: subprocess.Popen
    argv: list[str]
    workdir: Path
    isolation: str
    sandboxed: bool
    started: float
    environment: str
    """:meth:`StudentEnvironment.describe` of the environment it runs with."""
    cgroups: Cgroups | None = None
    status_fd: int | None = None
    """Read end of bubblewrap's ``--json-status-fd``: names its init once the command is starting."""
    home: Path | None = None
    """The unsandboxed run's temporary home folder, removed afterwards."""

    @classmethod
    def bubblewrap(cls, bwrap: str, argv: list[str], workdir: Path, inputs: Mapping[str, Path], limits: RunLimits,
                   env: Mapping[str, str] | None, environment: StudentEnvironment,
                   mounts: Mapping[str, Path]) -> Launch:
        """Start ``argv`` under ``bwrap`` (bubblewrap's executable), with cgroups where possible (see
        :mod:`grader.sandbox`'s notes)."""
        host = this_host()
        as_root = os.geteuid() == 0
        if as_root:
            hand_over(workdir, SANDBOX_UID, SANDBOX_GID)
        cgroups = Cgroups.create(limits) if as_root else None
        status_read, status_write = os.pipe()
        arguments = Arguments([status_write])
        try:
            sandbox_arguments(arguments, bwrap, host, argv, workdir, inputs, limits, env, environment, mounts,
                              status_write, privileged=as_root, cgroups=cgroups is not None)
            if cgroups is not None:
                isolation = (f"bubblewrap (no network, read-only system, private /tmp, system-call filter) as uid "
                             f"{SANDBOX_UID}, cgroup v1 (pids, memory, cpuacct)")
            elif as_root:
                isolation = (f"bubblewrap (no network, read-only system, private /tmp, system-call filter) as uid "
                             f"{SANDBOX_UID}, rlimits (RLIMIT_NPROC counts every process of uid {SANDBOX_UID}, "
                             "RLIMIT_DATA)")
            else:
                isolation = ("bubblewrap in a user namespace (no network, read-only system, private /tmp, "
                             "system-call filter), rlimits (RLIMIT_NPROC in the namespace, RLIMIT_DATA)")
            with cgroups.joined() if cgroups is not None else contextlib.nullcontext():
                process, started = _popen(arguments.args, Path("/"), os.environ, pass_fds=arguments.fds)
        except BaseException:
            os.close(status_read)
            if cgroups is not None:
                cgroups.remove()
            raise
        finally:
            arguments.close()  # bubblewrap has its own copies now
        return cls(process, argv, workdir, isolation, True, started, environment.describe(), cgroups, status_read)

    @classmethod
    def unsandboxed(cls, argv: list[str], workdir: Path, limits: RunLimits, env: Mapping[str, str] | None,
                    environment: StudentEnvironment) -> Launch:
        """Start ``argv`` with resource limits and the filter only (mounts are links in the work folder:
        :func:`grader.sandbox.workdir.make_mount_points`)."""
        host = this_host(require_sandbox_tools=False)
        home = Path(tempfile.mkdtemp(prefix="grader-unsandboxed-home-"))
        numba_cache = str(environment.numba_cache) if environment.numba_cache.is_dir() else None
        variables = child_env(limits, str(home), environment, numba_cache, str(SITE_FOLDER),
                              f"{environment.prefix}/bin:{SYSTEM_PATH}", env)
        install_filter = seccomp.installer(host.seccomp)

        def limit() -> None:  # runs in the child between fork and exec
            for rlimit, soft, hard in rlimits(limits, processes=False, memory=True):
                resource.setrlimit(rlimit, (soft, hard))
            install_filter()

        try:
            process, started = _popen(argv, workdir, variables, preexec_fn=limit, start_new_session=True)
        except subprocess.SubprocessError as error:  # the limits or the filter could not be set in the child
            shutil.rmtree(home, ignore_errors=True)
            raise SandboxSetupError(f"the command could not start with its limits and system-call filter ({error}); "
                                    "this kernel may lack seccomp") from None
        except OSError as error:
            shutil.rmtree(home, ignore_errors=True)
            raise SandboxSetupError(f"cannot run {argv[0]!r}: {error.strerror or error}") from None
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        isolation = ("none: resource limits and the system-call filter only (bubblewrap not found); the command "
                     "could read and write anything your user can")
        return cls(process, argv, workdir, isolation, False, started, environment.describe(), home=home)

    def kill(self) -> None:
        """Kill the whole run now (bubblewrap's namespace dies with it)."""
        try:
            if self.sandboxed:
                self.process.kill()
            else:
                os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.cgroups is not None:
            self.cgroups.kill_all()

    def usage(self, rusage: resource.struct_rusage) -> tuple[float | None, int | None, int, bool]:
        """CPU seconds, peak memory bytes, OOM kills and whether the process limit was hit.

        Unsandboxed, ``rusage`` (from wait4) covers the command and its reaped children.
        Under bubblewrap it does not: bubblewrap leaves its PID-1 init, which reaps the
        command, to be reaped by the host's init; only the cgroups know.
        """
        if self.cgroups is not None:
            groups = self.cgroups
            return groups.cpu_seconds(), groups.peak_memory_bytes(), groups.oom_kills(), groups.process_limit_hit()
        if not self.sandboxed:
            return rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss * 1024, 0, False
        return None, None, 0, False

    def release(self) -> None:
        if self.status_fd is not None:
            os.close(self.status_fd)
            self.status_fd = None
        if self.cgroups is not None:
            self.cgroups.remove()
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


def _popen(argv: list[str], cwd: Path, env: Mapping[str, str], **kwargs) -> tuple[subprocess.Popen, float]:
    """Start ``argv`` with no input and its output piped; the process and when it started (monotonic seconds)."""
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, close_fds=True, **kwargs)
    return process, started
