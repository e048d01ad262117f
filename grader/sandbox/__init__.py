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
  ``/opt/grader-site``, on ``PYTHONPATH``;
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
  groups of its own (:mod:`grader.sandbox.cgroups`), held and measured (process count,
  memory, CPU time) before it can fork. Without them, rlimits as below (RLIMIT_NPROC then
  counts every process of :data:`SANDBOX_UID` on the machine).
- a grader without root (a laptop): bubblewrap through an unprivileged user namespace
  (nested ones disabled), student code as uid :data:`INSIDE_UID` inside;
  ``RLIMIT_NPROC`` is set *inside* that namespace, where the kernel counts only the
  run's own processes, and ``RLIMIT_DATA`` bounds each process's memory.
  Without cgroups, CPU time and peak memory are not measured.
- the grader is root but bubblewrap cannot make namespaces (a Docker container without ``CAP_SYS_ADMIN``, such as
  Gradescope's): student code runs as a separate uid of its own per run, without namespaces
  (:mod:`grader.sandbox.separate_uid`: what holds and what does not, the network first), once the grader's files
  are unreadable by other users; :mod:`grader.sandbox.modes` finds which mode a machine allows, once per process.
- unsandboxed, bubblewrap is missing and the caller passed ``allow_unsandboxed``
  (``grade check`` on a student's own code): resource limits only, said plainly in the
  result. Otherwise the verdict is ``sandbox_unavailable``, naming :data:`UNSAFE_FLAG`.
Every mode sets per-process CPU time, file size and open files (rlimits) and installs the
system-call filter of :mod:`grader.sandbox.seccomp` (no keyrings, kernel modules, BPF, mounts, new
namespaces, ptrace...: per-user and host-wide kernel state that would outlive a run or
reach other submissions' runs); the grader itself watches wall time, bytes printed and
the work folder's disk use (:mod:`grader.sandbox.workdir`). The rlimits and the drop
from root are done by ``sandbox-init``, a few system calls in C that ``make setup`` builds
under ``.cache/sandbox`` (:mod:`grader.sandbox.init_program`), mounted read-only inside;
where it cannot be built, util-linux's ``setpriv`` and ``prlimit`` do the same with an exec
each (~1.5 ms more per run). A run ends with its whole process tree (:mod:`grader.sandbox.supervise`).

Not covered: the filter is a deny list, so the rest of the kernel's system calls (the
file systems, sockets, ``memfd``...) stays reachable from the sandbox. The private
``/tmp`` and ``/dev/shm`` are bounded in bytes but not in inodes (bubblewrap's ``--size``
has no inode count); their files are memory charged to the run and gone after it.

The package, one purpose a module. This one is the API: :func:`run` and what surrounds it. Light, loaded by
whatever reads results (reports, caches): :mod:`~grader.sandbox.types` (:class:`RunResult`, :class:`Verdict`),
:mod:`~grader.sandbox.inside` (where things appear inside, who runs there, which inputs and mounts are allowed),
:mod:`~grader.sandbox.process` (the command's environment variables and rlimits in every mode). Loaded by the
first run: :mod:`~grader.sandbox.host` (what this machine offers: tools, system mounts, the filter,
``sandbox-init``), :mod:`~grader.sandbox.bwrap` (bubblewrap's command line), :mod:`~grader.sandbox.cgroups`,
:mod:`~grader.sandbox.workdir` (the work folder from the host: mount points, hand-over, disk use),
:mod:`~grader.sandbox.launch` (starting, killing and releasing a run) and :mod:`~grader.sandbox.supervise`
(watching it to its end and saying what happened), with :mod:`~grader.sandbox.seccomp` and
:mod:`~grader.sandbox.init_program` (above).
"""
from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Mapping, Sequence

from grader.limits import RunLimits
from grader.sandbox.modes import Isolation, Kind
from grader.sandbox.inside import (CONTENT_INSIDE, INPUTS_INSIDE, INSIDE_GID, INSIDE_UID, SANDBOX_GID, SANDBOX_UID,
                                   WORKDIR_INSIDE, check_input, check_mount, mount_point_problem, mount_target)
from grader.sandbox.process import SITE_FOLDER
from grader.sandbox.types import UNSAFE_FLAG, RunResult, SandboxSetupError, Verdict

if TYPE_CHECKING:
    from grader.environment import StudentEnvironment

__all__ = ["BWRAP", "CONTENT_INSIDE", "INPUTS_INSIDE", "INSIDE_GID", "INSIDE_UID", "SANDBOX_GID", "SANDBOX_UID",
           "SITE_FOLDER", "UNSAFE_FLAG", "WORKDIR_INSIDE", "Kind", "RunResult", "Verdict", "fill_placeholders",
           "isolation_kind", "isolation_problem", "isolation_summary", "locations", "mount_point_problem",
           "mount_target", "output_file", "protect", "run"]

BWRAP: str | None = shutil.which("bwrap")
"""bubblewrap's executable; None where it is not installed (then runs are refused or unsandboxed). Read at each
run, here only: set it to None to run as a machine without bubblewrap would."""


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
    # The machinery is loaded by the first run, not with the package: what reads results (reports, caches) imports
    # grader.sandbox.types, and so this package, without it (tests/test_sandbox_package.py).
    from grader.environment import bundled
    from grader.sandbox.launch import Launch
    from grader.sandbox.supervise import supervise
    from grader.sandbox.workdir import disk_use, make_mount_points

    limits = limits or RunLimits()
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise NotADirectoryError(f"work folder {workdir} does not exist; unpack the submission first")
    argv = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    if not argv:
        raise ValueError("empty command: nothing to run")
    inputs = {name: Path(path).resolve() for name, path in (inputs or {}).items()}
    for name, path in inputs.items():
        check_input(name, path)
    mounts = {inside: Path(host).resolve() for inside, host in (mounts or {}).items()}
    for inside, host in mounts.items():
        check_mount(inside, host)
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
    mode = _isolation()
    sandboxed = mode.kind is not Kind.UNAVAILABLE
    problem = mode.reason if not sandboxed else None
    if mode.kind is Kind.SEPARATE_UID:
        from grader.sandbox.separate_uid import exposure_problem

        problem = exposure_problem(environment.python)
    if problem is not None and not (allow_unsandboxed and not sandboxed):
        return RunResult(verdict=Verdict.SANDBOX_UNAVAILABLE, command=argv, sandboxed=sandboxed,
                         message=problem if sandboxed else f"{problem}; or, for code you trust, pass {UNSAFE_FLAG} to "
                         "run it with resource limits only", environment=environment.describe())
    try:
        make_mount_points(workdir, mounts, sandboxed=mode.kind is Kind.BUBBLEWRAP)
    except SandboxSetupError as error:
        return RunResult(verdict=Verdict.SANDBOX_UNAVAILABLE, command=argv, message=str(error),
                         sandboxed=sandboxed, environment=environment.describe())
    disk_base = disk_use(workdir)
    try:
        if mode.kind is Kind.BUBBLEWRAP:
            launch = Launch.bubblewrap(BWRAP, argv, workdir, inputs, limits, env, environment, mounts, mode.privileged)
        elif mode.kind is Kind.SEPARATE_UID:
            launch = Launch.separate_uid(argv, workdir, inputs, limits, env, environment, mode.reason)
        else:
            launch = Launch.unsandboxed(argv, workdir, limits, env, environment)
    except SandboxSetupError as error:
        return RunResult(verdict=Verdict.SANDBOX_UNAVAILABLE, command=argv, message=str(error),
                         sandboxed=sandboxed, environment=environment.describe())
    return supervise(launch, limits, disk_base)


def _isolation() -> Isolation:
    """How runs are isolated here (:mod:`grader.sandbox.modes`); without bubblewrap, not at all."""
    from grader.sandbox.modes import Isolation, Kind, isolation

    if BWRAP is None:
        return Isolation(Kind.UNAVAILABLE, reason="bubblewrap (bwrap) is not installed")
    return isolation(BWRAP)


def isolation_kind() -> Kind:
    """How student code is isolated on this machine: bubblewrap's namespaces, a separate uid, or not at all."""
    return _isolation().kind


def isolation_summary() -> str:
    """What isolates student code on this machine, in a line for the instructor: empty where bubblewrap's
    namespaces do; else what holds and what does not (a separate uid), or why nothing does."""
    mode = _isolation()
    if mode.kind is Kind.BUBBLEWRAP:
        return ""
    if mode.kind is Kind.UNAVAILABLE:
        return f"student code cannot be isolated here: {mode.reason}"
    from grader.sandbox.separate_uid import GUARANTEES, NOT_GUARANTEED

    return (f"{mode.reason}, so student code runs as separate uids: {GUARANTEES}. NOT isolated: {NOT_GUARANTEED}")


def protect(*paths: str | os.PathLike) -> None:
    """Files and folders student code must never read beyond the project's (a rubric, held-out clips, the output
    folder). Where student code runs as a separate uid, runs are refused while any of them is readable by other
    users; elsewhere the sandbox never shows them anyway."""
    from grader.sandbox.separate_uid import protect as add

    add(Path(path) for path in paths)


def locations(workdir: str | os.PathLike, inputs: Mapping[str, str | os.PathLike] | None = None) -> dict[str, str]:
    """Where a run's command sees its work folder (key ``workdir``) and each input (by name).

    These are the values of the placeholders :func:`run` fills in (:func:`fill_placeholders`);
    use them to tell student code where things are (a notebook's injected variables, say).
    """
    kind = _isolation().kind
    if kind is Kind.UNAVAILABLE:  # unsandboxed: the host's own paths
        host_paths = {name: str(Path(path).resolve()) for name, path in (inputs or {}).items()}
        return {"workdir": str(Path(workdir).resolve()), **host_paths}
    if kind is Kind.SEPARATE_UID:  # the inputs' copies beside the work folder
        from grader.sandbox.launch import private_folder

        private = private_folder(Path(workdir).resolve())
        copies = {name: str(private / "inputs" / name) for name in inputs or {}}
        return {"workdir": str(Path(workdir).resolve()), **copies}
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

