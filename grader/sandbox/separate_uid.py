"""Isolation without namespaces: student code as a separate unprivileged uid, for a grader that is root where
bubblewrap cannot create namespaces (a Docker container without ``CAP_SYS_ADMIN``, as on Gradescope).

What holds, and what does not (:data:`GUARANTEES`):
- each run has a uid of its own from a pool (:data:`UID_POOL`), held with a lock file while it runs, so that no
  two runs at once share one (they could otherwise reach each other's work folders and processes);
- no supplementary group, no capability, ``no_new_privs``, the system-call filter, rlimits (``RLIMIT_NPROC``
  then counts exactly the run's processes, since the uid is the run's alone; ``RLIMIT_DATA`` per process);
- a private temporary folder (``TMPDIR`` and ``HOME``), its inputs copied into a folder of its own, the work
  folder the uid's alone (0700);
- after the run (and before, in case a grader was killed mid-run) every process of the uid is killed, whatever it
  did to hide (``kill(-1)`` sent as that uid, repeated until none is left), and what the uid left in the machine's
  shared temporary folders and System V IPC is removed;
- the grader's own files (held-out audio, answer keys, the reference solution, results) must be unreadable by
  other users: :func:`exposed` checks that as the uid itself before the first run, and ``python -m
  grader.sandbox.separate_uid lock`` makes the project so (Gradescope's ``setup.sh`` runs it).

Not isolated: the network; the rest of the file system as any local user sees it (world-readable system files);
other processes' listing in ``/proc``; disk space outside the work folder (the shared temporary folders are bounded
only by their file system). The run's record says so (:attr:`grader.sandbox.types.RunResult.isolation`).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import functools
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import reference
from grader.folders import remove_tree
from grader.sandbox.types import SandboxSetupError

UID_POOL = range(64500, 64564)
"""uids (and gids of the same numbers) runs take, one per run at a time: above ordinary users, below ``nobody``."""
LOCK_FOLDER = reference.PROJECT_ROOT / ".cache" / "sandbox-uids"
"""One lock file per uid of the pool; a run holds its uid's lock (``flock``) while it runs."""
SHARED_TEMPORARY = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path("/dev/mqueue"), Path("/run/lock"))
"""World-writable folders of the machine, where a run can leave files (POSIX message queues in ``/dev/mqueue``)
outside its own folders."""
KEPT_READABLE = {".cache": {"environments"}}
"""What :func:`lock` leaves readable in the project: ``.cache/environments`` (the student environment). Every other
entry of the project (and of ``.cache``) loses its permissions for other users; the two folders keep only search
permission (``o=x``), so that the student environment is reached by its path without either being listed."""
GUARANTEES = ("its own uid (one per run), no capability, no_new_privs, the system-call filter, limits on its processes, "
              "memory, CPU time, file size and open files, a private TMPDIR and HOME, every process of the uid killed "
              "after the run and its files in the shared temporary folders removed")
NOT_GUARANTEED = ("network isolation; a private view of the file system (student code reads what any local user may); "
                  "a private process listing; a bound on disk use outside the work folder")
_KILL_ROUNDS = 100
_PR_SET_CHILD_SUBREAPER = 36


class SeparateUidError(SandboxSetupError):
    """A uid of the pool cannot be used; the message says why and what to do."""


def kill_command() -> str:
    """util-linux's or procps's ``kill`` (sent as the run's uid: ``kill -9 -1``)."""
    return shutil.which("kill", path="/usr/bin:/bin") or "/bin/kill"


def _tasks_of(uid: int) -> list[tuple[int, str, int]]:
    """(pid, state letter, parent pid) of each process whose real uid is ``uid``. A process's ``/proc`` folder is
    owned by its effective uid, so only those of ``uid`` are read (a run cannot change its uids: no privilege)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            found.append((int(entry.name), fields.get("State", "?").strip()[:1], int(fields.get("PPid", "0"))))
    return found


def processes_of(uid: int) -> list[int]:
    """Live processes whose real uid is ``uid`` (zombies left out: they are gone but for their exit status)."""
    return [pid for pid, state, _ in _tasks_of(uid) if state != "Z"]


@functools.cache
def adopt_orphans() -> None:
    """Make this process the reaper of its descendants' orphans (``PR_SET_CHILD_SUBREAPER``), so that
    :func:`kill_all` can reap a run's daemons: a zombie of the uid still counts against its ``RLIMIT_NPROC``, and a
    container's first process may never reap it."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def kill_all(uid: int, waited_for: int | None = None) -> None:
    """Kill every process of ``uid``: ``kill -9 -1`` sent as that uid (every process it may signal, i.e. its own),
    again while any is left (one forked between two rounds, say); then reap those left to this process
    (:func:`adopt_orphans`) but ``waited_for`` (the run's own process, which its supervisor waits for).

    Raises:
        SeparateUidError: processes of ``uid`` are still alive after :data:`_KILL_ROUNDS` rounds.
    """
    tasks = _tasks_of(uid)
    for _ in range(_KILL_ROUNDS):
        if all(state == "Z" for _, state, _ in tasks):
            break
        subprocess.run([kill_command(), "-9", "-1"], user=uid, group=uid, extra_groups=[], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={}, close_fds=True)
        time.sleep(0.005)
        tasks = _tasks_of(uid)
    else:
        raise SeparateUidError(f"processes of uid {uid} survived {_KILL_ROUNDS} rounds of kill -9 -1: "
                               f"{[pid for pid, state, _ in tasks if state != 'Z']}")
    for pid, state, parent in tasks:
        if state == "Z" and parent == os.getpid() and pid != waited_for:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def remove_leftovers(uid: int, folders: Iterable[Path] = SHARED_TEMPORARY) -> None:
    """Remove what ``uid`` made in the machine's shared temporary folders (their entries, and those of the
    world-writable folders in them) and its System V IPC objects."""
    pending = [folder for folder in folders if folder.is_dir()]
    while pending:
        folder = pending.pop()
        with contextlib.suppress(OSError), os.scandir(folder) as listing:
            for entry in listing:
                with contextlib.suppress(OSError):
                    state = entry.stat(follow_symlinks=False)
                    if state.st_uid == uid:
                        if stat.S_ISDIR(state.st_mode):
                            remove_tree(entry.path)
                        else:
                            os.unlink(entry.path)
                    elif stat.S_ISDIR(state.st_mode) and state.st_mode & 0o002 and len(pending) < 64:
                        pending.append(Path(entry.path))
    _remove_ipc(uid)


def _remove_ipc(uid: int) -> None:
    """Remove ``uid``'s System V shared memory segments, semaphore sets and message queues (they outlive
    processes)."""
    for kind, option in (("shm", "-m"), ("sem", "-s"), ("msg", "-q")):
        try:
            header, *rows = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        names = header.split()
        ident = {"shm": "shmid", "sem": "semid", "msg": "msqid"}[kind]
        for row in rows:
            values = dict(zip(names, row.split()))
            if values.get("uid") == str(uid) or values.get("cuid") == str(uid):
                subprocess.run(["ipcrm", option, values[ident]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass
class UidLease:
    """One uid of the pool, held (its lock file open and locked) until :meth:`release`."""

    uid: int
    lock_fd: int

    @property
    def gid(self) -> int:
        return self.uid

    def release(self) -> None:
        """Kill what is left of the run, remove what it left behind, and free the uid."""
        try:
            kill_all(self.uid)
            remove_leftovers(self.uid)
        finally:
            os.close(self.lock_fd)


def lease(wait_seconds: float = 60.0) -> UidLease:
    """A free uid of the pool, cleared of whatever an earlier run (of a grader that was killed) left.

    Raises:
        SeparateUidError: every uid stayed busy for ``wait_seconds`` (more runs at once than the pool holds).
    """
    LOCK_FOLDER.mkdir(mode=0o700, parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        for uid in UID_POOL:
            fd = os.open(LOCK_FOLDER / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                kill_all(uid)
                remove_leftovers(uid)
            except BaseException:
                os.close(fd)
                raise
            return UidLease(uid, fd)
        if time.monotonic() > deadline:
            raise SeparateUidError(f"all {len(UID_POOL)} sandbox uids ({UID_POOL.start}-{UID_POOL.stop - 1}) stayed "
                                   f"busy for {wait_seconds:g} s; grade with fewer --jobs")
        time.sleep(0.1)


def switch_problem(uid: int = UID_POOL.start) -> str | None:
    """None when this process can start a program as ``uid`` (root with ``CAP_SETUID``, ``uid`` mapped); else why
    not."""
    try:
        subprocess.run(["/bin/true"], user=uid, group=uid, extra_groups=[], check=True, env={}, close_fds=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        return (f"the grader cannot run programs as uid {uid} ({error}): it is root only in a user namespace that "
                "maps no other user, or lacks CAP_SETUID")
    return None


def exposed(paths: Iterable[Path], uid: int = UID_POOL.start) -> list[Path]:
    """The ``paths`` that ``uid`` can read or search, asked as that uid (``test -r`` / ``-x``)."""
    return _ask(paths, uid, '[ -r "$p" ] || { [ -d "$p" ] && [ -x "$p" ]; }')


def unreachable(programs: Iterable[Path], uid: int = UID_POOL.start) -> list[Path]:
    """The ``programs`` that ``uid`` cannot run (``test -x``: a folder above one without search permission, say)."""
    return _ask(programs, uid, '! [ -x "$p" ]')


def _ask(paths: Iterable[Path], uid: int, condition: str) -> list[Path]:
    """The ``paths`` for which the shell ``condition`` on ``$p`` holds, asked as ``uid`` (one ``sh`` run)."""
    paths = [Path(path) for path in paths if os.path.lexists(path)]
    if not paths:
        return []
    script = f'for p; do if {condition}; then printf "%s\\0" "$p"; fi; done'
    found = subprocess.run(["/bin/sh", "-c", script, "sh", *map(str, paths)], user=uid, group=uid, extra_groups=[],
                           capture_output=True, env={"PATH": "/usr/bin:/bin"}, close_fds=True, check=True)
    return [Path(os.fsdecode(name)) for name in found.stdout.split(b"\0") if name]


_PROTECTED: set[Path] = set()
"""What the grading protects beyond the project (:func:`protect`)."""


def protect(paths: Iterable[Path]) -> None:
    """Add ``paths`` (a rubric, held-out folders, the output folder) to what a run as a separate uid must not be
    able to read (:func:`exposure_problem`)."""
    _PROTECTED.update(Path(path).resolve() for path in paths)


def exposure_problem(python: Path) -> str | None:
    """None when nothing protected (the project's :func:`project_secrets` and what :func:`protect` added) is
    readable by the pool's uids and they can run the student environment's ``python``; else what is wrong, and the
    commands that mend it."""
    return _exposure_problem(frozenset(project_secrets()) | frozenset(_PROTECTED), python)


@functools.cache
def _exposure_problem(paths: frozenset[Path], python: Path) -> str | None:
    if unreachable([python]):
        folders = reversed(python.parent.resolve().parents)  # links followed: where the environment really is
        above = [str(folder) for folder in folders if not os.stat(folder).st_mode & 0o001]
        return (f"student code runs as another user here (no namespaces), who cannot run the student environment's "
                f"{python}: give the folders above it search permission (chmod o+x {' '.join(above) or '...'})")
    left = sorted(exposed(paths))
    if not left:
        return None
    inside = [path for path in left if path.is_relative_to(reference.PROJECT_ROOT)]
    outside = [path for path in left if path not in inside]
    fixes = ([f"{sys.executable} -m grader.sandbox.separate_uid lock {reference.PROJECT_ROOT}"] if inside else []) + (
        [f"chmod -R o-rwx {' '.join(map(str, outside[:8]))}"] if outside else [])
    return (f"student code runs as another user here (no namespaces), and {len(left)} of the grader's files and "
            f"folders are readable by other users ({', '.join(map(str, left[:4]))}{', ...' if len(left) > 4 else ''});"
            f" close them first: {' && '.join(fixes)}")


def project_secrets(root: Path = reference.PROJECT_ROOT) -> list[Path]:
    """What :func:`lock` closes in the project ``root``: every entry but those :data:`KEPT_READABLE`."""
    closed = []
    with os.scandir(root) as listing:
        for entry in listing:
            if entry.name not in KEPT_READABLE:
                closed.append(Path(entry.path))
    for name, kept in KEPT_READABLE.items():
        if (root / name).is_dir():
            closed += [Path(entry.path) for entry in os.scandir(root / name) if entry.name not in kept]
    return sorted(closed)


def lock(root: Path = reference.PROJECT_ROOT) -> list[Path]:
    """Take other users' permissions off the project's files (:func:`project_secrets`) and leave ``root`` and the
    folders of :data:`KEPT_READABLE` searchable only (``o=x``); the paths closed."""
    closed = project_secrets(root)
    for path in closed:
        state = os.lstat(path)
        if not stat.S_ISLNK(state.st_mode):
            os.chmod(path, stat.S_IMODE(state.st_mode) & ~0o007)
    for folder in (root, *(root / name for name in KEPT_READABLE if (root / name).is_dir())):
        os.chmod(folder, (stat.S_IMODE(os.stat(folder).st_mode) & ~0o007) | 0o001)
    return closed


def main(argv: list[str] | None = None) -> int:
    """``python -m grader.sandbox.separate_uid lock [ROOT]``: :func:`lock` the project, then check it as a uid of
    the pool; 1 where something stays readable."""
    parser = argparse.ArgumentParser(prog="python -m grader.sandbox.separate_uid",
                                     description="Make the grader's files unreadable to the sandbox's uids (for "
                                     "hosts where student code runs as a separate uid: a container without "
                                     "namespaces, such as Gradescope's).")
    parser.add_argument("action", choices=["lock"])
    parser.add_argument("root", nargs="?", type=Path, default=reference.PROJECT_ROOT, help="the project (default: this one)")
    args = parser.parse_args(argv)
    closed = lock(args.root.resolve())
    left = exposed(closed) if os.geteuid() == 0 else []
    print(f"closed {len(closed)} entries of {args.root} to other users; the student environment stays readable")
    for path in left:
        print(f"still readable by uid {UID_POOL.start}: {path}")
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())
