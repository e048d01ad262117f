"""Run untrusted commands: bubblewrap isolation, resource limits, a verdict. The only
way student code runs.

What a run sees (bubblewrap, with new pid, network, ipc, uts and cgroup namespaces):
- no network: a network namespace of its own with only a loopback interface;
- a new root, read-only: ``/usr`` (and the ``/bin``, ``/lib``... links), an ``/etc`` of
  its own (``passwd``, ``group``, ``hosts``, ``nsswitch.conf``, a copy of the loader
  cache), ``/proc`` of its own PID namespace, a minimal ``/dev``;
- the student environment (:mod:`grader.environment`: the course's packages, built from
  the rubric's requirements file), read-only at its host path, its ``bin`` first in
  ``PATH`` (its interpreter's home too, where that lives outside ``/usr``), and never the
  grader's own virtual environment;
- the environment's warmed numba cache, read-only, behind a private writable layer of
  links (numba skips a cache directory it cannot write to, and would then recompile for
  ~16 s);
- :data:`SITE_FOLDER` (the grader's stand-ins, such as ``google.colab``) read-only at
  :data:`_SITE_INSIDE`, on ``PYTHONPATH``;
- writable: the work folder at :data:`WORKDIR_INSIDE` (also the working directory, and
  :data:`CONTENT_INSIDE` is a link to it, as Colab's working folder), a private ``/tmp``
  and ``/dev/shm`` (``disk_bytes`` each, gone after the run);
- inputs, read-only, at ``/inputs/<name>``; the rubric's mounts (an instructor's data
  folder, say) read-only where it puts them (:func:`mount_point_problem`).
Nothing else of the host: not the project's ``data/`` (held-out clips), ``rubrics/``
(answer keys), the ``reference`` solution (its code and trained checkpoints: a
submission must not be able to call the model solution), results, other submissions,
the grader's ``.venv``, nor any home directory. No file descriptor of the grader is inherited.

Who it runs as, and how it is limited (:class:`grader.limits.RunLimits`):
- the grader is root (this project's CI): bubblewrap sets the sandbox up as root, and
  the first thing run inside (``sandbox-init``, below) drops to uid :data:`SANDBOX_UID`
  with no supplementary group, no capability, an empty bounding set and ``no_new_privs``.
  Where cgroup v1 ``pids``, ``memory`` and ``cpuacct`` are writable, the run gets fresh
  groups of its own: the launching thread joins them just for the start, so bubblewrap
  is born in them and the whole tree is held and measured (process count, memory, CPU
  time) before it can fork; the groups are removed after the run. Without them, rlimits
  as below (RLIMIT_NPROC then counts every process of :data:`SANDBOX_UID` on the machine).
- a grader without root (a laptop): bubblewrap through an unprivileged user namespace
  (nested ones disabled), student code as uid :data:`INSIDE_UID` inside;
  ``RLIMIT_NPROC`` is set *inside* that namespace, where the kernel counts only the
  run's own processes, and ``RLIMIT_DATA`` bounds each process's memory.
  Without cgroups, CPU time and peak memory are not measured.
- unsandboxed, bubblewrap is missing and the caller passed ``allow_unsandboxed``
  (``grade check`` on a student's own code): resource limits only, said plainly in the
  result. Otherwise the verdict is ``sandbox_unavailable``, naming :data:`UNSAFE_FLAG`.
Every mode sets per-process CPU time, file size and open files (rlimits) and installs the
system-call filter of :mod:`grader.seccomp` (no keyrings, kernel modules, BPF, mounts, new
namespaces, ptrace...: per-user and host-wide kernel state that would outlive a run or
reach other submissions' runs); the grader itself watches wall time, bytes printed and
the work folder's disk use (:func:`_disk_use`). The rlimits and the drop
from root are done by ``sandbox-init``, a few system calls in C (:data:`_INIT_SOURCE`,
built with the machine's C compiler once, under ``.cache/sandbox``) mounted read-only
at :data:`_INIT_INSIDE`; where it cannot be built, util-linux's ``setpriv`` and
``prlimit`` do the same with an exec each (~1.5 ms more per run).

The process tree: the command runs in a PID namespace of its own under bubblewrap's
init; when the command exits, when the grader kills bubblewrap (timeout, output limit)
or when the grader dies (``--die-with-parent``), the kernel kills every process in that
namespace, and :func:`run` returns only once that init is gone.

The work folder's disk use is counted in allocated blocks (``st_blocks``: what
``fallocate`` holds or a sparse file takes, not ``st_size``) and in entries (inodes), and
only what the run adds counts (``disk_bytes``, ``disk_inodes``). Where the work folder is a
file system of its own (the root grader's size- and inode-limited tmpfs), the kernel
refuses a write past the limit (ENOSPC) and :func:`os.statvfs` reads its use in one call; a
run that fills it gets the disk verdict even if it then exits with a code of its own (an
``fallocate`` larger than the room left fails at once and fills nothing: the program's
own error stands).
Elsewhere (a plain folder) the grader walks it every :data:`_DISK_POLL_SECONDS` (0.1 s) and
stops the run past a limit. A walk costs 2-5 µs per entry (an ``lstat`` each; 5-25 ms for
a folder of 5,000 files on this project's 2-core CI machine, some 80 ms at the default
``disk_inodes`` plus a large submission) and stops early past a limit, so a run that fills
its folder with files costs the grader up to most of a core while it runs; the tmpfs of a
root grader costs one ``statvfs`` a poll. A run can thus overshoot by what it writes
between two polls (about 150 MB in 0.1 s at page-cache speed there) and by any amount in
one ``fallocate`` call (10 GB took 20 ms): those blocks are held until the next poll kills
the run and its folder is removed. Only the tmpfs bounds that. The polling walk cannot
see into a folder that student code made unreadable when the grader is not root, and a
run that keeps moving its folders can cut a poll short; the count after the run is whole.

Not covered: the filter is a deny list, so the rest of the kernel's system calls (the
file systems, sockets, ``memfd``...) stays reachable from the sandbox. The private
``/tmp`` and ``/dev/shm`` are bounded in bytes but not in inodes (bubblewrap's ``--size``
has no inode count); their files are memory charged to the run and gone after it.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import json
import os
import resource
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Iterator, Mapping, Sequence

from pydantic import BaseModel

import reference
from grader import seccomp
from grader.environment import StudentEnvironment, bundled, without_chatter
from grader.limits import RunLimits

BWRAP: str | None = shutil.which("bwrap")
"""bubblewrap's executable; None where it is not installed (then runs are refused or unsandboxed)."""

WORKDIR_INSIDE = PurePosixPath("/submission")
"""Where the work folder appears inside the sandbox; the command's working directory."""
INPUTS_INSIDE = PurePosixPath("/inputs")
"""Inputs appear read-only at ``/inputs/<name>``."""
CONTENT_INSIDE = PurePosixPath("/content")
"""A link to :data:`WORKDIR_INSIDE`: Colab's working folder, so that notebooks' ``/content/...`` paths work."""
SITE_FOLDER = Path(__file__).with_name("sandbox_site")
"""Modules the grader puts on student code's ``PYTHONPATH`` (the ``google.colab`` stand-in)."""
SANDBOX_UID = SANDBOX_GID = 65534
"""The uid/gid student code runs as when the grader is root ("nobody": owns nothing), inside and out."""
INSIDE_UID = INSIDE_GID = 1000
"""The uid/gid student code sees inside a user namespace (a grader without root); outside it is the user's."""
UNSAFE_FLAG = "--unsafe-no-sandbox"
"""The command-line flag that lets instructor grading run student code without bubblewrap."""

_NUMBA_CACHE_INSIDE = "/tmp/numba-cache"
_NUMBA_WARM_INSIDE = "/var/cache/numba-warm"
_SITE_INSIDE = "/opt/grader-site"
_RESERVED_TOPS = frozenset({"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "sys",
                            "tmp", "run", "var", "opt", INPUTS_INSIDE.name, reference.PROJECT_ROOT.parts[1],
                            Path(sys.base_prefix).resolve().parts[1]})
"""Top-level folders a mount may not go into: the sandbox's own, and those holding the environment."""
_PRIVILEGED_NAMESPACES = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")
_USER_NAMESPACES = ("--unshare-all", "--unshare-user", "--disable-userns",
                    "--uid", str(INSIDE_UID), "--gid", str(INSIDE_GID))
_ETC_COPIED = ("ld.so.cache",)
"""Host files copied into the sandbox's /etc (the loader cache makes every start faster)."""
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
"""``PATH`` after the student environment's ``bin``."""
_DISK_POLL_SECONDS = 0.1
"""How often the grader measures a run's work folder (see the module's notes for what that costs and allows)."""
_DRAIN_GRACE_SECONDS = 0.5


class Verdict(StrEnum):
    """What happened to a run, in words a student reads in the report."""

    OK = "ok"
    EXIT_CODE = "exit_code"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    KILLED_BY_SIGNAL = "killed_by_signal"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"


class RunResult(BaseModel):
    """One run's outcome; serialisable as it is (``model_dump_json``)."""

    verdict: Verdict
    message: str
    """One line for the report: what happened and, for a limit, which key to raise."""
    command: list[str]
    """The command as run, with input placeholders replaced."""
    exit_code: int | None = None
    signal: int | None = None
    wall_seconds: float = 0.0
    cpu_seconds: float | None = None
    """CPU time of every process of the run (cgroup mode, or unsandboxed); None where not measurable."""
    peak_memory_bytes: int | None = None
    """The memory cgroup's peak (page cache included), or unsandboxed the largest process's peak RSS;
    None where not measurable (user-namespace mode: bubblewrap's init is reaped by nobody we can ask)."""
    process_limit_hit: bool = False
    """A fork or thread start was refused because ``processes`` was reached (cgroup mode only)."""
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    output_bytes: int = 0
    """Bytes printed to stdout and stderr together (captured or not)."""
    sandboxed: bool = True
    isolation: str = ""
    """How this run was isolated and limited, in words (bubblewrap and cgroups, a user namespace, or none)."""
    environment: str = ""
    """The student environment it ran with: name, digest and the versions of torch, tensorflow and librosa
    (:meth:`grader.environment.StudentEnvironment.describe`)."""

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


def run(
    command: str | Sequence[str],
    workdir: str | os.PathLike,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    limits: RunLimits | None = None,
    *,
    env: Mapping[str, str] | None = None,
    allow_unsandboxed: bool = False,
    environment: StudentEnvironment | None = None,
    mounts: Mapping[str, str | os.PathLike] | None = None,
) -> RunResult:
    """Run ``command`` on the submission in ``workdir``, isolated and limited.

    Args:
        command: an argument list, or one string split as a POSIX shell would (no shell
            runs it). ``python`` is the student environment's. In any argument,
            ``{workdir}`` and ``{name}`` of an input become where the command sees them
            (:func:`locations`); other braces are left alone.
        workdir: the submission's work folder (from :func:`grader.intake.unpack`); the
            only place the command can write, and its working directory. Outputs are
            read from here afterwards, with :func:`output_file`. As root, its contents
            are handed to :data:`SANDBOX_UID` before the run.
        inputs: ``{name: host file or folder}``, each mounted read-only at
            ``/inputs/<name>`` (names: letters, digits, ``_``, ``-``, ``.``; not ``workdir``).
        limits: resources the run may use; :class:`RunLimits` defaults when None.
        env: extra environment variables (the host's environment is never passed on).
        allow_unsandboxed: where bubblewrap is missing, run with resource limits only
            (``grade check`` on a student's own code) instead of refusing.
        environment: the packages the command runs with (the rubric's,
            :func:`grader.environment.for_rubric`); None: the bundled course environment.
            One that is not built gives the verdict ``sandbox_unavailable``, saying what to run.
        mounts: ``{inside: host folder or file}`` shown read-only: ``inside`` relative to the
            work folder (``Data/fsdd``) or absolute (``/content/...`` lands in the work folder,
            as in Colab); see :func:`mount_point_problem`. Missing folders on the way are made.

    Returns:
        The verdict with exit code or signal, wall and CPU seconds, peak memory, and
        stdout/stderr capped at ``limits.captured_bytes`` each (TensorFlow's start-up
        notices left out of stderr: :func:`grader.environment.without_chatter`).
    """
    limits = limits or RunLimits()
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise NotADirectoryError(f"work folder {workdir} does not exist; unpack the submission first")
    argv = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    if not argv:
        raise ValueError("empty command: nothing to run")
    inputs = {name: Path(path).resolve() for name, path in (inputs or {}).items()}
    for name, path in inputs.items():
        _check_input(name, path)
    mounts = {inside: Path(host).resolve() for inside, host in (mounts or {}).items()}
    for inside, host in mounts.items():
        _check_mount(inside, host)
    where = locations(workdir, inputs)
    argv = [fill_placeholders(part, where) for part in argv]
    environment = environment if environment is not None else bundled()
    if not environment.ready:
        return RunResult(verdict=Verdict.SANDBOX_UNAVAILABLE, command=argv, sandboxed=BWRAP is not None,
                         message=environment.missing_message(), environment=environment.describe())
    if BWRAP is None and not allow_unsandboxed:
        return RunResult(
            verdict=Verdict.SANDBOX_UNAVAILABLE, command=argv, sandboxed=False,
            message="bubblewrap (bwrap) is not installed, so student code cannot be isolated: install it "
            "(Debian/Ubuntu: apt install bubblewrap) or, for code you trust, pass "
            f"{UNSAFE_FLAG} to run it with resource limits only",
        )
    try:
        _make_mount_points(workdir, mounts)
    except SandboxSetupError as error:
        return RunResult(verdict=Verdict.SANDBOX_UNAVAILABLE, command=argv, message=str(error),
                         sandboxed=BWRAP is not None, environment=environment.describe())
    disk_base = _disk_use(workdir)
    try:
        if BWRAP is None:
            launch = _Launch.unsandboxed(argv, workdir, limits, env, environment)
        else:
            launch = _Launch.bubblewrap(argv, workdir, inputs, limits, env, environment, mounts)
    except SandboxSetupError as error:
        return RunResult(verdict=Verdict.SANDBOX_UNAVAILABLE, command=argv, message=str(error),
                         sandboxed=BWRAP is not None, environment=environment.describe())
    return _supervise(launch, limits, disk_base)


def locations(workdir: str | os.PathLike, inputs: Mapping[str, str | os.PathLike] | None = None) -> dict[str, str]:
    """Where a run's command sees its work folder (key ``workdir``) and each input (by name).

    These are the values of the placeholders :func:`run` fills in (:func:`fill_placeholders`);
    use them to tell student code where things are (a notebook's injected variables, say).
    """
    if BWRAP is None:  # unsandboxed: the host's own paths
        host_paths = {name: str(Path(path).resolve()) for name, path in (inputs or {}).items()}
        return {"workdir": str(Path(workdir).resolve()), **host_paths}
    return {"workdir": str(WORKDIR_INSIDE), **{name: str(INPUTS_INSIDE / name) for name in inputs or {}}}


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each ``{name}`` of ``values`` replaced; other braces are left as they are."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def output_file(workdir: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """The host path of a file a run wrote, refused unless it is a plain file inside ``workdir``.

    Student code controls the work folder: a "generated" clip can be a symbolic link to
    a held-out clip, or a FIFO that blocks the grader. Read outputs only through this.

    Raises:
        FileNotFoundError: missing, a link (anywhere on the way), or not a regular file.
    """
    workdir = Path(workdir).resolve()
    path = workdir
    for part in PurePosixPath(relative).parts:
        if part in ("/", "..", "."):
            raise FileNotFoundError(f"{relative}: output paths are relative to the work folder, without '..'")
        path = path / part
        if path.is_symlink():
            raise FileNotFoundError(f"{relative}: is a symbolic link; write the file itself, not a link")
    if not path.is_file():
        raise FileNotFoundError(f"{relative}: no such file in the work folder")
    return path


def isolation_problem(environment: StudentEnvironment | None = None) -> str | None:
    """None when student code can be sandboxed on this machine with ``environment`` (None: the bundled one); else
    why not and what to do (install bubblewrap, build the environment...).

    Runs ``true`` in the sandbox once (a few milliseconds), in an empty folder of its own.
    """
    with tempfile.TemporaryDirectory(prefix="grader-sandbox-probe-") as folder:
        result = run(["true"], folder, environment=environment)
    return result.message if result.verdict is Verdict.SANDBOX_UNAVAILABLE else None


# --------------------------------------------------------------------------- arguments

def _check_input(name: str, path: Path) -> None:
    if not name or name in (".", "..", "workdir") or not all(c.isalnum() or c in "_-." for c in name):
        raise ValueError(f"input name {name!r}: use letters, digits, '_', '-' or '.' (and not 'workdir')")
    if not path.exists():
        raise FileNotFoundError(f"input {name!r}: {path} does not exist")
    if os.geteuid() == 0 and path.stat().st_mode & 0o004 == 0:
        raise PermissionError(f"input {name!r}: {path} is not readable by other users, and student code runs as "
                              f"uid {SANDBOX_UID}; make it readable (chmod o+rX) before the run")


def mount_target(inside: str) -> PurePosixPath:
    """Where a mount's ``inside`` lands in the sandbox: relative ones, and those under :data:`CONTENT_INSIDE`
    (Colab's working folder, a link to the work folder), in :data:`WORKDIR_INSIDE`; other absolute ones as written."""
    path = PurePosixPath(inside)
    for base in (CONTENT_INSIDE, WORKDIR_INSIDE):
        if path.is_relative_to(base):
            return WORKDIR_INSIDE / path.relative_to(base)
    return path if path.is_absolute() else WORKDIR_INSIDE / path


def mount_point_problem(inside: str) -> str | None:
    """Why ``inside`` cannot be a mount point (in words), or None: it must name a place below the work folder, or an
    absolute one outside the sandbox's own folders (:data:`_RESERVED_TOPS`), without ``..``."""
    path = PurePosixPath(inside)
    if not inside.strip() or ".." in path.parts:
        return f"{inside!r}: a mount point is a path without '..' (relative to the submission, or absolute)"
    target = mount_target(inside)
    if target == WORKDIR_INSIDE:
        return f"{inside!r}: a mount point must be a folder inside the submission, not the submission itself"
    if not target.is_relative_to(WORKDIR_INSIDE) and (len(target.parts) < 2 or target.parts[1] in _RESERVED_TOPS):
        return (f"{inside!r}: the sandbox's own folders ({', '.join('/' + top for top in sorted(_RESERVED_TOPS))}) "
                "cannot hold a mount; use a path in the submission or under /content")
    return None


def _check_mount(inside: str, host: Path) -> None:
    problem = mount_point_problem(inside)
    if problem:
        raise ValueError(problem)
    if not host.exists():
        raise FileNotFoundError(f"mount {inside!r}: {host} does not exist")
    if os.geteuid() == 0 and host.stat().st_mode & 0o004 == 0:
        raise PermissionError(f"mount {inside!r}: {host} is not readable by other users, and student code runs as "
                              f"uid {SANDBOX_UID}; make it readable (chmod -R o+rX) before the run")


def _make_mount_points(workdir: Path, mounts: Mapping[str, Path]) -> None:
    """Make the places of ``mounts`` that lie in the work folder: under bubblewrap a folder (or an empty file) to
    mount on, unsandboxed a link to the host folder. Folders on the way are made as needed; nothing is followed.

    Raises:
        SandboxSetupError: the submission has a file or link where a folder must be, or (unsandboxed) the mount
            point is outside the work folder, where only bubblewrap can put it.
    """
    for inside, host in mounts.items():
        target = mount_target(inside)
        if not target.is_relative_to(WORKDIR_INSIDE):
            if BWRAP is None:
                raise SandboxSetupError(f"mount {inside!r}: without bubblewrap, folders can be shown only inside the "
                                        "submission; install bubblewrap to run this")
            continue
        *parents, last = target.relative_to(WORKDIR_INSIDE).parts
        fd = os.open(workdir, _FOLDER_FLAGS)
        try:
            for part in parents:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
                except OSError:
                    raise SandboxSetupError(f"mount {inside!r}: the submission has a file or link at {part!r} where "
                                            "the mount needs a folder; rename it") from None
                os.close(fd)
                fd = child
            try:
                if BWRAP is None:
                    os.symlink(host, last, dir_fd=fd)
                elif host.is_dir():
                    os.mkdir(last, 0o755, dir_fd=fd)
                else:
                    os.close(os.open(last, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd))
            except FileExistsError:
                pass
            except OSError:  # a folder where a file goes, a link in the way...
                raise SandboxSetupError(f"mount {inside!r}: the submission has a file, folder or link of its own "
                                        f"there; rename it") from None
            found = stat.S_IFMT(os.stat(last, dir_fd=fd, follow_symlinks=False).st_mode)
            if BWRAP is not None and found != stat.S_IFMT(os.stat(host).st_mode):
                raise SandboxSetupError(f"mount {inside!r}: the submission has a file, folder or link of its own "
                                        f"there; rename it")
        finally:
            os.close(fd)


def _child_env(limits: RunLimits, home: str, environment: StudentEnvironment, numba_cache: str | None,
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


@dataclass
class _Launch:
    """A started run: the process, what limits it, and what to release afterwards."""

    process: subprocess.Popen
    argv: list[str]
    workdir: Path
    isolation: str
    sandboxed: bool
    started: float
    environment: str
    """:meth:`StudentEnvironment.describe` of the environment it runs with."""
    cgroups: _Cgroups | None = None
    status_fd: int | None = None
    """Read end of bubblewrap's ``--json-status-fd``: names its init once the command is starting."""
    home: Path | None = None
    """The unsandboxed run's temporary home folder, removed afterwards."""

    @classmethod
    def bubblewrap(cls, argv: list[str], workdir: Path, inputs: Mapping[str, Path], limits: RunLimits,
                   env: Mapping[str, str] | None, environment: StudentEnvironment,
                   mounts: Mapping[str, Path]) -> _Launch:
        """Start ``argv`` under bubblewrap, with cgroups where possible (see the module's notes)."""
        host = _host()
        as_root = os.geteuid() == 0
        if as_root:
            _hand_over(workdir, SANDBOX_UID, SANDBOX_GID)
        cgroups = _Cgroups.create(limits) if as_root else None
        status_read, status_write = os.pipe()
        arguments = _Arguments([status_write])
        try:
            _sandbox_arguments(arguments, host, argv, workdir, inputs, limits, env, environment, mounts, status_write,
                               privileged=as_root, cgroups=cgroups is not None)
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
                    environment: StudentEnvironment) -> _Launch:
        """Start ``argv`` with resource limits and the filter only (mounts are links in the work folder:
        :func:`_make_mount_points`)."""
        host = _host(require_sandbox_tools=False)
        home = Path(tempfile.mkdtemp(prefix="grader-unsandboxed-home-"))
        numba_cache = str(environment.numba_cache) if environment.numba_cache.is_dir() else None
        child_env = _child_env(limits, str(home), environment, numba_cache, str(SITE_FOLDER),
                               f"{environment.prefix}/bin:{_SYSTEM_PATH}", env)
        install_filter = seccomp.installer(host.seccomp)

        def limit() -> None:  # runs in the child between fork and exec
            for rlimit, soft, hard in _rlimits(limits, processes=False, memory=True):
                resource.setrlimit(rlimit, (soft, hard))
            install_filter()

        try:
            process, started = _popen(argv, workdir, child_env, preexec_fn=limit, start_new_session=True)
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
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, close_fds=True, **kwargs)
    return process, started


class _Arguments:
    """A growing bubblewrap argument list and the descriptors it names (closed after the start)."""

    def __init__(self, fds: list[int]):
        self.args: list[str] = []
        self.fds = fds

    def folder(self, path: Path) -> str:
        """A descriptor of a host folder or file to mount (``--ro-bind-fd``, ``--bind-fd``)."""
        self.fds.append(os.open(path, os.O_PATH | os.O_CLOEXEC))
        return str(self.fds[-1])

    def content(self, path: str) -> str:
        """A descriptor bubblewrap copies a host file's content from (``--file``)."""
        self.fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        return str(self.fds[-1])

    def text(self, text: str) -> str:
        """A pipe holding ``text``, for ``--file`` (small texts: they fit the pipe's buffer)."""
        return self.data(text.encode())

    def data(self, data: bytes) -> str:
        """A pipe holding ``data``, for ``--file`` or ``--seccomp`` (under 64 KiB: the pipe's buffer)."""
        read_end, write_end = os.pipe()
        os.write(write_end, data)
        os.close(write_end)
        self.fds.append(read_end)
        return str(read_end)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _sandbox_arguments(arguments: _Arguments, host: _Host, argv: list[str], workdir: Path,
                       inputs: Mapping[str, Path], limits: RunLimits, env: Mapping[str, str] | None,
                       environment: StudentEnvironment, mounts: Mapping[str, Path],
                       status_fd: int, privileged: bool, cgroups: bool) -> None:
    """bubblewrap's command line for one run (see the module's notes for what each part is for).

    ``privileged``: bubblewrap runs as root, and the first program inside drops to
    :data:`SANDBOX_UID`; else bubblewrap goes through a user namespace. ``cgroups``: the
    run's cgroups hold processes and memory, so RLIMIT_NPROC and RLIMIT_DATA are not set.
    """
    add = arguments.args.extend
    add([BWRAP, *(_PRIVILEGED_NAMESPACES if privileged else _USER_NAMESPACES), "--die-with-parent",
         "--new-session", "--hostname", "sandbox", "--json-status-fd", str(status_fd), *host.system_mounts])
    uid, gid = (SANDBOX_UID, SANDBOX_GID) if privileged else (INSIDE_UID, INSIDE_GID)
    for name, text in _etc_files(uid, gid).items():
        add(["--file", arguments.text(text), f"/etc/{name}"])
    for name in host.etc_copied:
        add(["--file", arguments.content(f"/etc/{name}"), f"/etc/{name}"])
    add(["--proc", "/proc", "--dev", "/dev"])
    for scratch in ("/tmp", "/dev/shm"):  # writable by whoever runs inside, bounded in size
        add(["--perms", "1777", "--size", str(limits.disk_bytes), "--tmpfs", scratch])
    made: set[PurePosixPath] = set()
    code = [environment.prefix]
    if not environment.interpreter_home.is_relative_to("/usr"):
        code.append(environment.interpreter_home)  # an interpreter outside /usr (pyenv, conda): mount it too
    for path in code:
        add([*_parent_folders(path, made), "--ro-bind-fd", arguments.folder(path), str(path)])
    if SITE_FOLDER.is_dir():
        add([*_parent_folders(_SITE_INSIDE, made), "--ro-bind-fd", arguments.folder(SITE_FOLDER), _SITE_INSIDE])
    if host.init is not None:
        add([*_parent_folders(_INIT_INSIDE, made), "--ro-bind-fd", arguments.folder(host.init), _INIT_INSIDE])
    warm_numba = environment.numba_cache.is_dir()
    if warm_numba:
        add([*_parent_folders(_NUMBA_WARM_INSIDE, made),
             "--ro-bind-fd", arguments.folder(environment.numba_cache), _NUMBA_WARM_INSIDE])
        add(_numba_cache_links(environment.numba_cache))
    add(["--bind-fd", arguments.folder(workdir), str(WORKDIR_INSIDE), "--symlink", str(WORKDIR_INSIDE),
         str(CONTENT_INSIDE)])
    for name, path in inputs.items():
        inside = INPUTS_INSIDE / name
        add([*_parent_folders(inside, made), "--ro-bind-fd", arguments.folder(path), str(inside)])
    made.add(WORKDIR_INSIDE)
    for inside, path in mounts.items():  # those in the work folder have their mount points (_make_mount_points)
        target = mount_target(inside)
        parents = [] if target.is_relative_to(WORKDIR_INSIDE) else _parent_folders(target, made)
        add([*parents, "--ro-bind-fd", arguments.folder(path), str(target)])
    add(["--chdir", str(WORKDIR_INSIDE), "--clearenv"])
    for key, value in _child_env(limits, "/tmp", environment, _NUMBA_CACHE_INSIDE if warm_numba else None,
                                 _SITE_INSIDE, f"{environment.prefix}/bin:{_SYSTEM_PATH}", env).items():
        add(["--setenv", key, value])
    add(["--remount-ro", "/", "--seccomp", arguments.data(host.seccomp), "--"])
    rlimits = _rlimits(limits, processes=not cgroups, memory=not cgroups)
    if host.init is not None:  # one small exec: rlimits, then (as root) the drop to SANDBOX_UID
        uid, gid = (str(SANDBOX_UID), str(SANDBOX_GID)) if privileged else ("-", "-")
        add([_INIT_INSIDE, uid, gid, *(str(number) for rlimit in rlimits for number in rlimit), "--"])
    else:  # util-linux's tools, one exec each
        if privileged:
            add([host.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--"])
        add([*_prlimit_args(host.prlimit, rlimits), "--"])
    add(argv)


def _etc_files(uid: int, gid: int) -> dict[str, str]:
    """The sandbox's own /etc files, for student code running as ``uid``: no host file is mounted."""
    return {
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nstudent:x:{uid}:{gid}:student:/tmp:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nstudent:x:{gid}:\n",
        "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }


def _rlimits(limits: RunLimits, processes: bool, memory: bool) -> list[tuple[int, int, int]]:
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


def _prlimit_args(prlimit: str, rlimits: list[tuple[int, int, int]]) -> list[str]:
    """util-linux ``prlimit`` setting ``rlimits`` inside the sandbox, where :data:`_INIT_SOURCE`
    could not be built.

    In bubblewrap's user namespace RLIMIT_NPROC counts the run's own processes only (the
    kernel counts per user namespace), so it binds without counting the user's other processes.
    """
    names = {resource.RLIMIT_CPU: "cpu", resource.RLIMIT_FSIZE: "fsize", resource.RLIMIT_NOFILE: "nofile",
             resource.RLIMIT_NPROC: "nproc", resource.RLIMIT_DATA: "data"}
    return [prlimit, *(f"--{names[rlimit]}={soft}:{hard}" for rlimit, soft, hard in rlimits)]


def _parent_folders(path: str | os.PathLike, made: set[PurePosixPath]) -> list[str]:
    """``--dir`` for each missing parent of a mount point, so they are 0755 (bubblewrap's own are 0700)."""
    args = []
    for parent in reversed(PurePosixPath(path).parents[:-1]):
        if parent not in made:
            made.add(parent)
            args += ["--dir", str(parent)]
    return args


def _numba_cache_links(cache: Path) -> list[str]:
    """A writable cache directory in /tmp whose entries are links into the read-only warm cache.

    numba skips a cache directory it cannot write to; here it reads the warm entries
    through the links and writes anything new beside them, in the run's private /tmp.
    Folders without entries are left out (numba makes them itself). The list is kept while
    no folder of the cache changes (an entry added or removed changes its folder's mtime).
    """
    folders = tuple(sorted((entry.name, entry.stat(follow_symlinks=False).st_mtime_ns)
                           for entry in os.scandir(cache) if entry.is_dir(follow_symlinks=False)))
    return _numba_links_of(cache, folders)


@functools.lru_cache(maxsize=4)
def _numba_links_of(cache: Path, folders: tuple[tuple[str, int], ...]) -> list[str]:
    args = ["--perms", "0777", "--dir", _NUMBA_CACHE_INSIDE]
    for name, _ in folders:
        entries = sorted(entry.name for entry in os.scandir(cache / name)
                         if entry.is_file(follow_symlinks=False) and ".tmp." not in entry.name)
        if entries:
            args += ["--perms", "0777", "--dir", f"{_NUMBA_CACHE_INSIDE}/{name}"]
        for entry in entries:
            args += ["--symlink", f"{_NUMBA_WARM_INSIDE}/{name}/{entry}", f"{_NUMBA_CACHE_INSIDE}/{name}/{entry}"]
    return args


def _hand_over(workdir: Path, uid: int, gid: int) -> None:
    """Make the work folder and everything in it the sandbox user's (root grading only), without following links."""
    if os.lstat(workdir).st_uid != uid:
        os.lchown(workdir, uid, gid)
    with contextlib.closing(_entries(workdir)) as entries:
        for folder, entry in entries:
            if entry.stat(follow_symlinks=False).st_uid != uid:
                os.chown(entry.name, uid, gid, dir_fd=folder, follow_symlinks=False)


@dataclass(frozen=True)
class _DiskUse:
    """What a work folder holds, the folder itself included."""

    bytes: int
    """Bytes of allocated blocks (``st_blocks`` * 512, not ``st_size``: blocks that ``fallocate`` holds count,
    the holes of a sparse file do not)."""
    inodes: int
    """Files, folders, links and other entries."""
    no_space: bool = False
    """The work folder is a file system of its own and no block is free: a write failed (ENOSPC)."""
    no_inodes: bool = False
    """The work folder is a file system of its own and no inode is free: a file could not be created."""

    def problem(self, before: _DiskUse, limits: RunLimits) -> str | None:
        """None, or what the run did past ``disk_bytes`` or ``disk_inodes`` (measured from ``before``), in words."""
        added_bytes, added_inodes = self.bytes - before.bytes, self.inodes - before.inodes
        if added_bytes > limits.disk_bytes:
            return (f"stopped: the run added {added_bytes} bytes of disk blocks to the work folder (limit "
                    f"disk_bytes = {limits.disk_bytes}; blocks reserved with fallocate count too)")
        if added_inodes > limits.disk_inodes:
            return (f"stopped: the run added {added_inodes} files and folders to the work folder (limit "
                    f"disk_inodes = {limits.disk_inodes})")
        if self.no_space:
            return (f"the work folder is full: the run added {added_bytes} bytes of disk blocks and writes past the "
                    f"limit fail with 'No space left on device' (limit disk_bytes = {limits.disk_bytes})")
        if self.no_inodes:
            return (f"the work folder is full: the run added {added_inodes} files and folders and new ones fail "
                    f"with 'No space left on device' (limit disk_inodes = {limits.disk_inodes})")
        return None


def _disk_use(folder: Path, stop_above: _DiskUse | None = None) -> _DiskUse:
    """What ``folder`` holds now.

    A folder that is a file system of its own, limited in both blocks and inodes (the root
    grader's tmpfs work folders), is read from :func:`os.statvfs`: one system call, and it
    tells whether the file system is full. Any other folder is walked (:func:`_entries`):
    one ``lstat`` per entry (2-5 µs each with Python's share), a file with several links
    counted once; the walk stops as soon as either count is above ``stop_above``'s.
    """
    if os.path.ismount(folder):
        state = os.statvfs(folder)
        if state.f_blocks and state.f_files:  # a tmpfs without a limit reports zeros
            return _DiskUse((state.f_blocks - state.f_bfree) * state.f_frsize, state.f_files - state.f_ffree,
                            no_space=state.f_bfree == 0, no_inodes=state.f_ffree == 0)
    allocated, inodes = os.lstat(folder).st_blocks * 512, 1
    linked: set[int] = set()
    with contextlib.closing(_entries(folder)) as entries:
        for _, entry in entries:
            try:
                state = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if state.st_nlink > 1 and not stat.S_ISDIR(state.st_mode):
                if state.st_ino in linked:
                    continue
                linked.add(state.st_ino)
            allocated += state.st_blocks * 512
            inodes += 1
            if stop_above is not None and (allocated > stop_above.bytes or inodes > stop_above.inodes):
                break
    return _DiskUse(allocated, inodes)


_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _entries(root: Path) -> Iterator[tuple[int, os.DirEntry]]:
    """Every entry under ``root`` (not ``root`` itself) with a descriptor of its folder, valid until the next.

    No recursion and no long path: one folder is open at a time, entered from its parent's
    descriptor and left through its ``..`` (checked to be the folder it came from, as
    ``fts`` does), so neither depth nor ``PATH_MAX`` hides anything. No link is followed.
    A folder that cannot be opened is passed over; one moved away while it is walked ends
    the walk early. Close the iterator when stopping early (its descriptor).
    """
    fd = os.open(root, _FOLDER_FLAGS)
    try:
        # each folder from root down to the current one: its (device, inode), its subfolders not yet walked
        above: list[tuple[tuple[int, int], list[str]]] = []
        while True:
            try:
                listing = list(os.scandir(fd))
            except OSError:
                listing = []
            subfolders = []
            for entry in listing:
                yield fd, entry
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subfolders.append(entry.name)
                except OSError:
                    continue
            state = os.fstat(fd)
            above.append(((state.st_dev, state.st_ino), subfolders))
            while True:  # into the next subfolder of this folder or of one above it
                if above[-1][1]:
                    try:
                        child = os.open(above[-1][1].pop(), _FOLDER_FLAGS, dir_fd=fd)
                    except OSError:
                        continue
                    os.close(fd)
                    fd = child
                    break
                above.pop()
                if not above:
                    return
                try:
                    parent = os.open("..", _FOLDER_FLAGS, dir_fd=fd)
                except OSError:
                    return
                os.close(fd)
                fd = parent
                state = os.fstat(fd)
                if (state.st_dev, state.st_ino) != above[-1][0]:
                    return
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the host

@dataclass(frozen=True)
class _Host:
    """What this machine offers a sandbox: tools, the Python environment, numba's cache."""

    prlimit: str
    setpriv: str
    system_mounts: tuple[str, ...]
    """bubblewrap arguments for ``/usr``, the top-level links into it, ``/etc/localtime`` and ``/etc/fonts``."""
    etc_copied: tuple[str, ...]
    init: Path | None
    """:data:`_INIT_SOURCE` built for this machine; None where no C compiler could build it."""
    seccomp: bytes
    """The system-call filter for this machine (:func:`grader.seccomp.program`)."""

    @classmethod
    def detect(cls, require_sandbox_tools: bool) -> _Host:
        prlimit, setpriv = shutil.which("prlimit") or "", shutil.which("setpriv") or ""
        if require_sandbox_tools and not (prlimit.startswith("/usr/") and setpriv.startswith("/usr/")):
            raise SandboxSetupError("util-linux's prlimit and setpriv were not found under /usr; install util-linux")
        try:
            filter_program = seccomp.program()
        except seccomp.UnsupportedMachine as error:
            raise SandboxSetupError(str(error)) from None
        system_mounts = ["--ro-bind", "/usr", "/usr", "--dir", "/etc"]  # /etc 0755: bubblewrap makes parents 0700
        for top in (Path("/") / name for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32")):
            if top.is_symlink():
                system_mounts += ["--symlink", os.readlink(top), str(top)]
            elif top.is_dir():
                system_mounts += ["--ro-bind", str(top), str(top)]
        localtime = Path("/etc/localtime")
        if localtime.is_symlink() and localtime.resolve().is_relative_to("/usr"):
            system_mounts += ["--symlink", str(localtime.resolve()), str(localtime)]
        if Path("/etc/fonts").is_dir():  # fontconfig's settings: matplotlib's font list asks fc-list, which needs them
            system_mounts += ["--ro-bind", "/etc/fonts", "/etc/fonts"]
        return cls(prlimit, setpriv, tuple(system_mounts),
                   tuple(name for name in _ETC_COPIED if Path("/etc", name).is_file()),
                   _built_init() if require_sandbox_tools else None, filter_program)


_INIT_SOURCE = Path(__file__).with_name("sandbox_init.c").read_text()
"""The C source of ``sandbox-init`` (grader/sandbox_init.c)."""
"""The first program of every sandboxed run, in place of util-linux's ``setpriv`` and ``prlimit``
(an exec each, ~1.5 ms more per run): a few system calls between bubblewrap and the command."""
_INIT_INSIDE = "/run/sandbox-init"


def _built_init() -> Path | None:
    """:data:`_INIT_SOURCE` compiled (statically where possible) under ``.cache/sandbox``, once per
    machine and source; None where it cannot be built (no C compiler) or the build is not to be
    trusted (not ours or root's, or writable by others): then ``setpriv`` and ``prlimit`` run instead."""
    folder = reference.PROJECT_ROOT / ".cache" / "sandbox"
    program = folder / f"sandbox-init-{hashlib.sha256(_INIT_SOURCE.encode()).hexdigest()[:16]}"
    if not program.is_file():
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            return None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as scratch:
                source, built = Path(scratch, "sandbox-init.c"), Path(scratch, "sandbox-init")
                source.write_text(_INIT_SOURCE)
                for static in (["-static"], []):  # static: no dynamic loader at each start
                    compiled = subprocess.run([compiler, "-O2", "-s", *static, "-o", str(built), str(source)],
                                              capture_output=True)
                    if compiled.returncode == 0:
                        break
                else:
                    return None
                built.chmod(0o755)
                os.replace(built, program)  # atomic: concurrent graders each build, one wins
        except OSError:
            return None
    state = program.stat()
    if state.st_uid not in (0, os.geteuid()) or state.st_mode & 0o022:
        return None
    return program


class SandboxSetupError(RuntimeError):
    """This machine lacks something the sandbox needs; the message says what to install."""


@functools.cache
def _host(require_sandbox_tools: bool = True) -> _Host:
    """The host's sandbox facts, found once per process."""
    return _Host.detect(require_sandbox_tools)


# --------------------------------------------------------------------------- cgroups

def _write_file(path: Path, text: str) -> None:
    """Write ``text`` to an existing (kernel) file in one system call."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)


class _Cgroups:
    """One run's cgroup v1 groups (``pids``, ``memory``, ``cpuacct``), made under the grader's own."""

    CONTROLLERS = ("pids", "memory", "cpuacct")
    _counter = itertools.count()
    _swept = False

    def __init__(self, folders: dict[str, Path], parents: dict[str, Path]):
        self.folders = folders
        """controller -> the run's group folder (co-mounted controllers share one)."""
        self.parents = parents
        """controller -> the grader's own group folder, where the run's are made."""

    @classmethod
    def create(cls, limits: RunLimits) -> _Cgroups | None:
        """The run's groups with ``processes`` and ``memory_bytes`` set; None where they cannot be made."""
        parents = cls._own_groups(Path("/proc/self/cgroup").read_text())
        if parents is None:
            return None
        if not cls._swept:
            cls._sweep(parents)
        name = f"grader-sandbox-{os.getpid()}-{next(cls._counter)}"
        groups = cls({controller: parent / name for controller, parent in parents.items()}, parents)
        try:
            for folder in groups._unique_folders():
                os.mkdir(folder)
            groups._write("pids", "pids.max", limits.processes)
            groups._write("memory", "memory.limit_in_bytes", limits.memory_bytes)
            if (groups.folders["memory"] / "memory.memsw.limit_in_bytes").exists():
                groups._write("memory", "memory.memsw.limit_in_bytes", limits.memory_bytes)  # no swap either
        except OSError:
            groups.remove()
            return None
        return groups

    @classmethod
    @functools.cache
    def _own_groups(cls, membership: str) -> dict[str, Path] | None:
        """The grader's own v1 group folder for each controller, where all are writable.

        ``membership``: the text of ``/proc/self/cgroup`` (the answer is kept for each).
        """
        mounts = {}
        for line in Path("/proc/self/mounts").read_text().splitlines():
            _, mount_point, kind, options, *_ = line.split()
            if kind == "cgroup":
                for option in options.split(","):
                    if option in cls.CONTROLLERS:
                        mounts[option] = Path(mount_point)
        parents = {}
        for line in membership.splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                if controller in mounts:
                    parents[controller] = mounts[controller] / path.lstrip("/")
        if set(parents) != set(cls.CONTROLLERS) or not all(os.access(p, os.W_OK) for p in parents.values()):
            return None
        return parents

    @classmethod
    def _sweep(cls, parents: dict[str, Path]) -> None:
        """Remove empty groups left by graders that were killed before cleaning up."""
        cls._swept = True
        for parent in set(parents.values()):
            for folder in parent.glob("grader-sandbox-*-*"):
                owner = folder.name.split("-")[2]
                if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                    try:
                        folder.rmdir()
                    except OSError:
                        pass

    def _unique_folders(self) -> list[Path]:
        return list(dict.fromkeys(self.folders.values()))

    @contextlib.contextmanager
    def joined(self):
        """The calling thread in the run's groups for the duration: a process it starts is born
        there, so the run is held before its first fork. Only this thread moves (cgroup v1
        ``tasks``), and it moves back to the grader's own groups at the end.

        The thread is named as ``0`` ("the writer itself"), not by its id: for that one case
        the kernel skips its global threadgroup lock, whose RCU grace period otherwise
        stalls one start in ten by 10-15 ms."""
        thread = "0"
        try:
            for folder in self._unique_folders():
                _write_file(folder / "tasks", thread)
            yield
        finally:
            for folder in dict.fromkeys(self.parents.values()):
                _write_file(folder / "tasks", thread)

    def _write(self, controller: str, name: str, value: int) -> None:
        _write_file(self.folders[controller] / name, str(value))

    def _read(self, controller: str, name: str) -> str:
        try:
            descriptor = os.open(self.folders[controller] / name, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return ""
        try:
            return os.read(descriptor, 65536).decode()
        except OSError:
            return ""
        finally:
            os.close(descriptor)

    def _counter_value(self, controller: str, name: str, key: str) -> int:
        for line in self._read(controller, name).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
        return 0

    def oom_kills(self) -> int:
        return self._counter_value("memory", "memory.oom_control", "oom_kill")

    def process_limit_hit(self) -> bool:
        return self._counter_value("pids", "pids.events", "max") > 0

    def peak_memory_bytes(self) -> int | None:
        value = self._read("memory", "memory.max_usage_in_bytes").strip()
        return int(value) if value.isdigit() else None

    def cpu_seconds(self) -> float | None:
        value = self._read("cpuacct", "cpuacct.usage").strip()
        return int(value) / 1e9 if value.isdigit() else None

    def kill_all(self) -> None:
        """SIGKILL every process left in the run's groups, until none is left."""
        for _ in range(200):
            pids = self._read("pids", "cgroup.procs").split()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)

    def remove(self) -> None:
        """Remove the groups, waiting for the last processes of a killed tree to leave (EBUSY)."""
        for folder in self._unique_folders():
            for _ in range(200):
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY:
                        break
                    self.kill_all()
                    time.sleep(0.005)


# --------------------------------------------------------------------------- supervision

class _Capture:
    """The head and tail of one output stream within ``cap`` bytes; counts every byte."""

    def __init__(self, cap: int):
        self.half = max(cap // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.half:
                del self.tail[: len(self.tail) - self.half]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + min(len(self.tail), self.half)

    def text(self) -> str:
        tail = bytes(self.tail[-self.half:]) if self.tail else b""
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode(errors="replace")
        cut = self.total - len(self.head) - len(tail)
        return (self.head.decode(errors="replace") + f"\n[... {cut} bytes cut ...]\n"
                + tail.decode(errors="replace"))


def _supervise(launch: _Launch, limits: RunLimits, disk_base: _DiskUse) -> RunResult:
    """Watch a started run to its end and say what happened.

    ``disk_base`` is what the work folder held before the run.
    """
    watch = _Watch(launch, limits, disk_base)
    try:
        watch.to_the_end()
        return watch.result()  # before close(): the cgroups hold the measurements
    finally:
        watch.close()


class _Watch:
    """One run's supervision: its output, its limits, and the end of its whole process tree.

    Events come from one selector: stdout and stderr, a pidfd of the launched process,
    bubblewrap's status pipe (which names its PID-1 init) and a pidfd of that init: the
    run is over when the init is gone, since the kernel then has killed its namespace.
    """

    def __init__(self, launch: _Launch, limits: RunLimits, disk_base: _DiskUse):
        self.launch = launch
        self.limits = limits
        self.disk_base = disk_base
        self.disk_ceiling = _DiskUse(disk_base.bytes + limits.disk_bytes, disk_base.inodes + limits.disk_inodes)
        self.stdout, self.stderr = _Capture(limits.captured_bytes), _Capture(limits.captured_bytes)
        self.status = b""
        self.stopped: Verdict | None = None
        self.stop_message = ""
        self.wait_status: int | None = None
        self.rusage: resource.struct_rusage | None = None
        self.exited_at = launch.started
        self.pidfds: list[int] = []
        self.selector = selectors.DefaultSelector()
        self.selector.register(launch.process.stdout, selectors.EVENT_READ, "stdout")
        self.selector.register(launch.process.stderr, selectors.EVENT_READ, "stderr")
        self._watch_pid(launch.process.pid, "exit")
        if launch.status_fd is not None:
            self.selector.register(launch.status_fd, selectors.EVENT_READ, "status")

    def _watch_pid(self, pid: int, event: str) -> None:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        self.pidfds.append(pidfd)
        self.selector.register(pidfd, selectors.EVENT_READ, event)

    def to_the_end(self) -> None:
        deadline = self.launch.started + self.limits.wall_seconds
        next_disk_check = self.launch.started + _DISK_POLL_SECONDS
        while not self._finished():
            now = time.monotonic()
            if self.wait_status is not None:
                timeout = max(0.0, self.exited_at + _DRAIN_GRACE_SECONDS - now)
            elif self.stopped is not None:
                timeout = 0.1  # killed: its exit is on the way
            elif now >= deadline:
                self._stop(Verdict.TIMEOUT, f"stopped after {self.limits.wall_seconds:g} s of wall time "
                           f"(limit wall_seconds = {self.limits.wall_seconds:g})")
                continue
            elif now >= next_disk_check:
                problem = self._disk_problem()
                next_disk_check = now + _DISK_POLL_SECONDS
                if problem is not None:
                    self._stop(Verdict.OUTPUT_LIMIT, problem)
                continue
            else:
                timeout = min(deadline, next_disk_check) - now
            for key, _ in self.selector.select(timeout):
                self._handle(key)

    def _finished(self) -> bool:
        """The command has exited and its pipes, its init and the status pipe are done (or took too long)."""
        if self.wait_status is None:
            return False
        return not self.selector.get_map() or time.monotonic() - self.exited_at > _DRAIN_GRACE_SECONDS

    def _stop(self, verdict: Verdict, message: str) -> None:
        self.stopped, self.stop_message = verdict, message
        self.launch.kill()

    def _disk_problem(self) -> str | None:
        """What the run has done past ``disk_bytes`` or ``disk_inodes`` so far, in words; else None."""
        return _disk_use(self.launch.workdir, self.disk_ceiling).problem(self.disk_base, self.limits)

    def _handle(self, key: selectors.SelectorKey) -> None:
        if key.data == "exit":
            _, self.wait_status, self.rusage = os.wait4(self.launch.process.pid, 0)
            self.exited_at = time.monotonic()
            self.selector.unregister(key.fileobj)
        elif key.data == "init":
            self.selector.unregister(key.fileobj)
        elif key.data == "status":  # JSON lines; the first, {"child-pid": N, ...}, names the init
            chunk = os.read(key.fd, 65536)
            if not chunk:
                self.selector.unregister(key.fileobj)
                return
            had_first_line = b"\n" in self.status
            self.status += chunk
            if not had_first_line and b"\n" in self.status:
                self._watch_pid(json.loads(self.status.split(b"\n")[0])["child-pid"], "init")
        else:
            chunk = os.read(key.fd, 65536)
            if not chunk:
                self.selector.unregister(key.fileobj)
                return
            (self.stdout if key.data == "stdout" else self.stderr).add(chunk)
            if self.stopped is None and self.stdout.total + self.stderr.total > self.limits.output_bytes:
                self._stop(Verdict.OUTPUT_LIMIT, f"stopped: printed more than {self.limits.output_bytes} bytes "
                           f"to stdout and stderr (limit output_bytes = {self.limits.output_bytes})")

    def close(self) -> None:
        self.selector.close()
        for pidfd in self.pidfds:
            os.close(pidfd)
        self.launch.process.stdout.close()
        self.launch.process.stderr.close()
        self.launch.kill()  # whatever is left: unsandboxed, the rest of its session
        self.launch.release()

    def result(self) -> RunResult:
        launch, limits = self.launch, self.limits
        launch.process.returncode = os.waitstatus_to_exitcode(self.wait_status)
        if self.stopped is None:  # past a limit between two polls, or filled its own file system
            problem = self._disk_problem()
            if problem is not None:
                self.stopped, self.stop_message = Verdict.OUTPUT_LIMIT, problem
        cpu, peak, oom_kills, process_limit_hit = launch.usage(self.rusage)
        result = RunResult(
            verdict=Verdict.OK, message="", command=launch.argv, wall_seconds=round(self.exited_at - launch.started, 4),
            cpu_seconds=None if cpu is None else round(cpu, 4), peak_memory_bytes=peak,
            process_limit_hit=process_limit_hit, stdout=self.stdout.text(), stderr=without_chatter(self.stderr.text()),
            stdout_truncated=self.stdout.truncated, stderr_truncated=self.stderr.truncated,
            output_bytes=self.stdout.total + self.stderr.total, sandboxed=launch.sandboxed, isolation=launch.isolation,
            environment=launch.environment,
        )
        if launch.sandboxed and b"\n" not in self.status and self.stopped is None:  # bubblewrap failed
            reason = self.stderr.text().strip() or f"exit status {launch.process.returncode}"
            return result.model_copy(update=dict(
                verdict=Verdict.SANDBOX_UNAVAILABLE,
                message=f"the sandbox could not start ({reason}); on a machine without root, unprivileged user "
                f"namespaces must be enabled (sysctl kernel.unprivileged_userns_clone=1), or pass {UNSAFE_FLAG} "
                "to run trusted code with resource limits only"))
        update = _verdict(launch.process.returncode, launch.sandboxed, self.stopped, self.stop_message, oom_kills,
                          launch.cgroups is None, limits, result)
        if not launch.sandboxed:
            update["message"] = "UNSANDBOXED (resource limits only): " + update["message"]
        return result.model_copy(update=update)


def _verdict(returncode: int, sandboxed: bool, stopped: Verdict | None, stop_message: str, oom_kills: int,
             memory_by_rlimit: bool, limits: RunLimits, result: RunResult) -> dict:
    """The verdict fields: what the grader stopped (``stopped``, said by ``stop_message``), else what the
    kernel or the command did."""
    if stopped is not None:
        return dict(verdict=stopped, message=stop_message)
    if returncode < 0:
        code, number = None, -returncode
    elif sandboxed and 128 < returncode < 128 + signal.NSIG:
        # bubblewrap reports a command killed by signal S as exit status 128 + S, like a shell
        # does, so an exit(130) of the command's own reads as signal 2 too
        code, number = None, returncode - 128
    else:
        code, number = returncode, None
    memory_words = (f"ran out of memory: the run needed more than {limits.memory_bytes} bytes "
                    f"(limit memory_bytes = {limits.memory_bytes})")
    if oom_kills and code != 0:
        return dict(verdict=Verdict.OUT_OF_MEMORY, exit_code=code, signal=number, message=memory_words)
    if number is not None:
        cpu_spent = result.cpu_seconds is not None and result.cpu_seconds >= limits.cpu_seconds
        if number == signal.SIGXCPU or (number == signal.SIGKILL and cpu_spent):
            return dict(verdict=Verdict.TIMEOUT, signal=number, message=f"stopped: a process used more than "
                        f"{limits.cpu_seconds} s of CPU time (limit cpu_seconds = {limits.cpu_seconds})")
        if number == signal.SIGXFSZ:
            return dict(verdict=Verdict.OUTPUT_LIMIT, signal=number, message=f"stopped: wrote a file larger "
                        f"than {limits.file_size_bytes} bytes (limit file_size_bytes = {limits.file_size_bytes})")
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else "unknown"
        return dict(verdict=Verdict.KILLED_BY_SIGNAL, signal=number, message=f"killed by signal {number} ({name})")
    if code != 0 and memory_by_rlimit and _looks_out_of_memory(result.stderr):
        # rlimit mode: an allocation past RLIMIT_DATA fails inside the program instead
        return dict(verdict=Verdict.OUT_OF_MEMORY, exit_code=code, message=memory_words)
    if code != 0:
        return dict(verdict=Verdict.EXIT_CODE, exit_code=code, message=f"exited with exit code {code}")
    return dict(verdict=Verdict.OK, exit_code=0, message="finished (exit code 0)")


def _looks_out_of_memory(stderr: str) -> bool:
    """A failed allocation's last words in Python, numpy, torch or C++."""
    last_lines = "\n".join(stderr.strip().splitlines()[-3:])
    return any(words in last_lines for words in (
        "MemoryError", "Unable to allocate", "std::bad_alloc", "DefaultCPUAllocator: can't allocate memory",
        "Cannot allocate memory"))
