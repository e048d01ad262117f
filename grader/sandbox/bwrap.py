"""bubblewrap's command line for one run: namespaces, the read-only system, the sandbox's own ``/etc``, the
student environment, the work folder, inputs and mounts, environment variables, the system-call filter, and the
first program inside (``sandbox-init``, else util-linux's ``setpriv`` and ``prlimit``). What each part is for is in
:mod:`grader.sandbox`'s notes.

Host folders and files are passed as descriptors (``--ro-bind-fd``, ``--bind-fd``, ``--file``), and small texts as
pipes; :class:`Arguments` keeps them until bubblewrap has started.
"""
from __future__ import annotations

import os
import resource
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Mapping

from grader.limits import RunLimits
from grader.sandbox.host import Host
from grader.sandbox.inside import (CONTENT_INSIDE, INPUTS_INSIDE, INSIDE_GID, INSIDE_UID, SANDBOX_GID, SANDBOX_UID,
                                   WORKDIR_INSIDE, mount_target)
from grader.sandbox.process import SITE_FOLDER, SYSTEM_PATH, child_env, rlimits, warm_numba_entries

if TYPE_CHECKING:
    from grader.environment import StudentEnvironment

_NUMBA_CACHE_INSIDE = "/tmp/numba-cache"
_NUMBA_WARM_INSIDE = "/var/cache/numba-warm"
_SITE_INSIDE = "/opt/grader-site"
_INIT_INSIDE = "/run/sandbox-init"
PRIVILEGED_NAMESPACES = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")
USER_NAMESPACES = ("--unshare-all", "--unshare-user", "--disable-userns",
                    "--uid", str(INSIDE_UID), "--gid", str(INSIDE_GID))


class Arguments:
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


def sandbox_arguments(arguments: Arguments, bwrap: str, host: Host, argv: list[str], workdir: Path,
                      inputs: Mapping[str, Path], limits: RunLimits, env: Mapping[str, str] | None,
                      environment: StudentEnvironment, mounts: Mapping[str, Path],
                      status_fd: int, privileged: bool, cgroups: bool) -> None:
    """bubblewrap's command line for one run, added to ``arguments``: ``bwrap`` (its executable) first, ``argv``
    last.

    ``privileged``: bubblewrap runs as root, and the first program inside drops to
    :data:`SANDBOX_UID`; else bubblewrap goes through a user namespace. ``cgroups``: the
    run's cgroups hold processes and memory, so RLIMIT_NPROC and RLIMIT_DATA are not set.
    """
    add = arguments.args.extend
    add([bwrap, *(PRIVILEGED_NAMESPACES if privileged else USER_NAMESPACES), "--die-with-parent",
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
    for inside, path in mounts.items():  # those in the work folder have their mount points (workdir.make_mount_points)
        target = mount_target(inside)
        parents = [] if target.is_relative_to(WORKDIR_INSIDE) else _parent_folders(target, made)
        add([*parents, "--ro-bind-fd", arguments.folder(path), str(target)])
    add(["--chdir", str(WORKDIR_INSIDE), "--clearenv"])
    for key, value in child_env(limits, "/tmp", environment, _NUMBA_CACHE_INSIDE if warm_numba else None,
                                _SITE_INSIDE, f"{environment.prefix}/bin:{SYSTEM_PATH}", env).items():
        add(["--setenv", key, value])
    add(["--remount-ro", "/", "--seccomp", arguments.data(host.seccomp), "--"])
    run_rlimits = rlimits(limits, processes=not cgroups, memory=not cgroups)
    if host.init is not None:  # one small exec: rlimits, then (as root) the drop to SANDBOX_UID
        uid, gid = (str(SANDBOX_UID), str(SANDBOX_GID)) if privileged else ("-", "-")
        add([_INIT_INSIDE, uid, gid, *(str(number) for rlimit in run_rlimits for number in rlimit), "--"])
    else:  # util-linux's tools, one exec each
        if privileged:
            add([host.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--"])
        add([*_prlimit_args(host.prlimit, run_rlimits), "--"])
    add(argv)


def _etc_files(uid: int, gid: int) -> dict[str, str]:
    """The sandbox's own /etc files, for student code running as ``uid``: no host file is mounted."""
    return {
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nstudent:x:{uid}:{gid}:student:/tmp:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nstudent:x:{gid}:\n",
        "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }


def _prlimit_args(prlimit: str, rlimits: list[tuple[int, int, int]]) -> list[str]:
    """util-linux ``prlimit`` setting ``rlimits`` inside the sandbox, where ``sandbox-init``
    could not be built (:mod:`grader.sandbox.init_program`).

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
    """A writable cache directory in /tmp whose entries are links into the read-only warm cache: numba reads the
    warm entries through the links and writes anything new beside them, in the run's private /tmp."""
    args = ["--perms", "0777", "--dir", _NUMBA_CACHE_INSIDE]
    for name, entries in warm_numba_entries(cache):
        args += ["--perms", "0777", "--dir", f"{_NUMBA_CACHE_INSIDE}/{name}"]
        for entry in entries:
            args += ["--symlink", f"{_NUMBA_WARM_INSIDE}/{name}/{entry}", f"{_NUMBA_CACHE_INSIDE}/{name}/{entry}"]
    return args
