"""Start one run, under bubblewrap (with cgroups where the grader is root and they are writable) or unsandboxed
(resource limits and the system-call filter only); kill it; read what it used; release what it held.
"""
from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from grader.limits import RunLimits
from grader.folders import remove_tree
from grader.sandbox import seccomp, separate_uid
from grader.sandbox.bwrap import Arguments, sandbox_arguments
from grader.sandbox.cgroups import Cgroups
from grader.sandbox.host import this_host
from grader.sandbox.inside import SANDBOX_GID, SANDBOX_UID
from grader.sandbox.process import SITE_FOLDER, SYSTEM_PATH, child_env, rlimits, warm_numba_entries
from grader.sandbox.types import SandboxSetupError
from grader.sandbox.workdir import entries, hand_over

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
    lease: separate_uid.UidLease | None = None
    """The separate uid a run without namespaces runs as (:mod:`grader.sandbox.separate_uid`), freed afterwards."""
    private: Path | None = None
    """That run's own folder beside its work folder (:func:`private_folder`), removed afterwards."""

    @property
    def through_bubblewrap(self) -> bool:
        """bubblewrap started it (its status pipe says whether the sandbox came up; exit status 128 + S is signal
        S)."""
        return self.status_fd is not None

    @classmethod
    def bubblewrap(cls, bwrap: str, argv: list[str], workdir: Path, inputs: Mapping[str, Path], limits: RunLimits,
                   env: Mapping[str, str] | None, environment: StudentEnvironment,
                   mounts: Mapping[str, Path], as_root: bool) -> Launch:
        """Start ``argv`` under ``bwrap`` (bubblewrap's executable), with cgroups where possible (see
        :mod:`grader.sandbox`'s notes); ``as_root``: bubblewrap runs privileged and student code drops to
        SANDBOX_UID inside, else it goes through a user namespace."""
        host = this_host()
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

    @classmethod
    def separate_uid(cls, argv: list[str], workdir: Path, inputs: Mapping[str, Path], limits: RunLimits,
                     env: Mapping[str, str] | None, environment: StudentEnvironment, reason: str) -> Launch:
        """Start ``argv`` as a uid of its own, without namespaces (:mod:`grader.sandbox.separate_uid`): its inputs
        and the grader's site folder copied into :func:`private_folder`, a private ``TMPDIR`` and ``HOME`` there,
        cgroups where writable, else rlimits; ``reason``: why bubblewrap's namespaces are not used."""
        host = this_host(require_sandbox_tools=False)
        separate_uid.adopt_orphans()
        lease = separate_uid.lease()
        private = private_folder(workdir)
        cgroups = None
        try:
            temporary = _prepare_private(private, inputs, lease.uid)
            _make_reachable(workdir)
            hand_over(workdir, lease.uid, lease.gid)
            os.chmod(workdir, 0o700)
            numba_cache = None
            if environment.numba_cache.is_dir():
                numba_cache = temporary / "numba-cache"
                _link_numba_cache(environment.numba_cache, numba_cache, lease.uid)
            variables = child_env(limits, str(temporary), environment,
                                  None if numba_cache is None else str(numba_cache), str(private / "site"),
                                  f"{environment.prefix}/bin:{SYSTEM_PATH}", env)
            variables["TMPDIR"] = str(temporary)
            cgroups = Cgroups.create(limits)
            run_rlimits = rlimits(limits, processes=cgroups is None, memory=cgroups is None)
            install_filter = seccomp.installer(host.seccomp)

            def limit() -> None:  # runs in the child, after the switch to the run's uid, before exec
                for rlimit, soft, hard in run_rlimits:
                    resource.setrlimit(rlimit, (soft, hard))
                install_filter()

            with cgroups.joined() if cgroups is not None else contextlib.nullcontext():
                process, started = _popen(argv, workdir, variables, preexec_fn=limit, start_new_session=True,
                                          user=lease.uid, group=lease.gid, extra_groups=[])
        except BaseException as error:
            if cgroups is not None:
                cgroups.remove()
            lease.release()
            remove_tree(private)
            if isinstance(error, subprocess.SubprocessError):
                raise SandboxSetupError(f"the command could not start as uid {lease.uid} with its limits and "
                                        f"system-call filter ({error})") from None
            if isinstance(error, OSError):
                raise SandboxSetupError(f"cannot run {argv[0]!r} as uid {lease.uid}: "
                                        f"{error.strerror or error}") from None
            raise
        limited = "cgroup v1 (pids, memory, cpuacct)" if cgroups is not None else "rlimits"
        isolation = (f"separate uid {lease.uid}, no namespaces ({reason}): {separate_uid.GUARANTEES}; {limited}. NOT "
                     f"isolated: {separate_uid.NOT_GUARANTEED}")
        return cls(process, argv, workdir, isolation, True, started, environment.describe(), cgroups,
                   lease=lease, private=private)

    def kill(self) -> None:
        """Kill the whole run now (bubblewrap's namespace dies with it; a separate uid's processes are all
        killed)."""
        try:
            if self.through_bubblewrap:
                self.process.kill()
            else:
                os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.cgroups is not None:
            self.cgroups.kill_all()
        if self.lease is not None:
            separate_uid.kill_all(self.lease.uid, waited_for=self.process.pid if self.process.returncode is None
                                  else None)

    def usage(self, rusage: resource.struct_rusage) -> tuple[float | None, int | None, int, bool]:
        """CPU seconds, peak memory bytes, OOM kills and whether the process limit was hit.

        Unsandboxed, ``rusage`` (from wait4) covers the command and its reaped children.
        Under bubblewrap it does not: bubblewrap leaves its PID-1 init, which reaps the
        command, to be reaped by the host's init; only the cgroups know.
        """
        if self.cgroups is not None:
            groups = self.cgroups
            return groups.cpu_seconds(), groups.peak_memory_bytes(), groups.oom_kills(), groups.process_limit_hit()
        if not self.through_bubblewrap:
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
        if self.lease is not None:
            self.lease.release()
            self.lease = None
        if self.private is not None:
            remove_tree(self.private)
            self.private = None


def private_folder(workdir: Path) -> Path:
    """A separate-uid run's own folder, beside its work folder: ``inputs/`` (copies, read-only to it), ``site/``
    (:data:`SITE_FOLDER`'s copy) and ``tmp/`` (its ``TMPDIR`` and ``HOME``, its alone)."""
    return workdir.parent / f".{workdir.name}.run"


def _prepare_private(private: Path, inputs: Mapping[str, Path], uid: int) -> Path:
    """Fill :func:`private_folder` for a run as ``uid``; its temporary folder."""
    if os.path.lexists(private):
        remove_tree(private)
    private.mkdir(mode=0o711)
    (private / "inputs").mkdir(mode=0o755)
    for name, source in {**{f"inputs/{name}": path for name, path in inputs.items()}, "site": SITE_FOLDER}.items():
        if source.is_dir():
            shutil.copytree(source, private / name, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copyfile(source, private / name)
    for folder, entry in entries(private):
        os.chmod(entry.name, 0o755 if entry.is_dir(follow_symlinks=False) else 0o644, dir_fd=folder)  # copies: no links
    temporary = private / "tmp"
    temporary.mkdir(mode=0o700)
    os.chown(temporary, uid, uid)
    return temporary


def _make_reachable(workdir: Path) -> None:
    """Give other users search permission (``o+x``: not listing) on each folder above ``workdir`` that lacks it, so
    that a run as another uid reaches its work folder by path."""
    for folder in reversed(workdir.parents):
        mode = stat.S_IMODE(os.stat(folder).st_mode)
        if not mode & 0o001:
            os.chmod(folder, mode | 0o001)


def _link_numba_cache(cache: Path, target: Path, uid: int) -> None:
    """A writable numba cache folder at ``target`` for ``uid`` whose entries are links into the warm, read-only
    ``cache`` (:func:`grader.sandbox.process.warm_numba_entries`)."""
    target.mkdir(mode=0o700)
    os.chown(target, uid, uid)
    for name, names in warm_numba_entries(cache):
        linked = target / name
        linked.mkdir(mode=0o700)
        os.chown(linked, uid, uid)
        for entry in names:
            os.symlink(cache / name / entry, linked / entry)


def _popen(argv: list[str], cwd: Path, env: Mapping[str, str], **kwargs) -> tuple[subprocess.Popen, float]:
    """Start ``argv`` with no input and its output piped; the process and when it started (monotonic seconds)."""
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, close_fds=True, **kwargs)
    return process, started
