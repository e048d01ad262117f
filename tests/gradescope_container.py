"""A container like the one Gradescope grades each submission in, built here as root for
``tests/test_gradescope_emulation.py``.

What it reproduces: a user namespace with uids and gids 0-65535 mapped (root inside is root outside, as in a Docker
container without user remapping), in which no further user namespace can be made (``max_user_namespaces`` is 0
in it) and whose processes lack CAP_SYS_ADMIN (bubblewrap's ``--cap-drop`` drops it from what they hold, capsh's
``--drop`` from the bounding set, as Docker does): student
code can create no namespace, so bubblewrap cannot isolate it. Its root file system holds the host's ``/usr`` (read
only) with ``/bin``, ``/lib``, ``/lib64`` and ``/sbin`` links into it, ``/etc`` and dpkg's database read only, a new
``/proc`` and ``/dev``, a private ``/tmp`` and ``/root``, and ``/autograder`` (``source/``, ``submission/``,
``results/``) from a folder on the host. Its processes join a cgroup v1 memory group limited to ``memory_bytes``
and are pinned to one CPU.

What it does not reproduce: Gradescope's image (Ubuntu, its packages; the host's Debian ``/usr`` stands for it); the
network (none: no package is downloaded); half a CPU (the cpu cgroup is not writable here: one whole CPU); a fresh
container for each submission (``/autograder/source`` persists between runs, as the image would not). The host's
``.venv`` and built student environment are provided in ``/autograder/source`` through overlays, whose changes (such
as the lock command's) stay in the container's folder, rather than installed by setup.sh (minutes, and the network).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader.sandbox.cgroups import kill_members

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
ID_RANGE = 65536
"""uids and gids 0 to 65535 are mapped, each to itself."""
MEMORY_CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
CAPABILITY_SYS_ADMIN = 21
"""CAP_SYS_ADMIN's bit in /proc/PID/status's capability masks."""


@dataclass
class Overlay:
    """A host folder provided at ``inside`` (relative to /autograder/source) as an overlay: reads see the host's
    files, writes (chmod included) go to ``upper`` in the container's folder and never reach the host."""

    host: Path
    inside: str


@dataclass
class Container:
    """One container's description: its folder on the host (``root/autograder``, the overlays' layers), its memory
    limit and CPU, and what it provides from the host."""

    root: Path
    """The container's own files on the host: ``autograder/`` (source, submission, results) and the overlays'
    layers."""
    memory_bytes: int
    """The memory cgroup's limit for all the container's processes together."""
    cpu: int = 0
    """The one CPU its processes run on."""
    overlays: list[Overlay] = field(default_factory=list)

    @property
    def autograder(self) -> Path:
        return self.root / "autograder"

    def run(self, command: str, timeout_seconds: float, kill_after_seconds: float | None = None,
            on_poll=None) -> Completed:
        """Run ``command`` (bash) in a new container on this folder, as root inside, from /autograder.

        Args:
            timeout_seconds: the container is killed after this long (the test's own bound; the run then fails).
            kill_after_seconds: kill every process of the container after this long, as the platform does at its
                timeout (the run then counts as completed, with ``killed`` set).
            on_poll: called with the memory group's folder about every 0.2 s while the command runs (to measure).

        Returns:
            its exit status, output and time.
        """
        group = MEMORY_CGROUP_ROOT / f"gradescope-emulation-{os.getpid()}-{time.monotonic_ns()}"
        group.mkdir()
        try:
            (group / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
            return self._run_in_group(command, group, timeout_seconds, kill_after_seconds, on_poll)
        finally:
            _kill_group(group)
            group.rmdir()

    def _run_in_group(self, command: str, group: Path, timeout_seconds: float, kill_after_seconds: float | None,
                      on_poll) -> Completed:
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        output = self.root / "output.log"
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the container's first process: it never returns
            os.close(to_child_write)
            os.close(from_child_read)
            self._become_container(command, group, to_child_read, from_child_write, output)
        os.close(to_child_read)
        os.close(from_child_write)
        if os.read(from_child_read, 1) != b"u":  # it has made its user namespace
            os.waitpid(pid, 0)
            raise RuntimeError(f"the container could not be made: {output.read_text()[-2000:]}")
        for name in ("uid_map", "gid_map"):  # as real root: the full range, with no newuidmap
            Path(f"/proc/{pid}/{name}").write_text(f"0 0 {ID_RANGE}\n")
        os.write(to_child_write, b"m")
        os.close(to_child_write)
        os.close(from_child_read)
        killed = False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            elapsed = time.monotonic() - started
            if kill_after_seconds is not None and elapsed > kill_after_seconds and not killed:
                _kill_group(group)
                killed = True
            if elapsed > timeout_seconds:
                _kill_group(group)
                os.waitpid(pid, 0)
                raise TimeoutError(f"{command!r} ran past {timeout_seconds:g} s:\n{output.read_text()[-3000:]}")
            if on_poll is not None:
                on_poll(group)
            time.sleep(0.2)
        return Completed(os.waitstatus_to_exitcode(status), output.read_text(errors="replace"),
                         time.monotonic() - started, killed,
                         int((group / "memory.max_usage_in_bytes").read_text()))

    def _become_container(self, command: str, group: Path, from_parent: int, to_parent: int, output: Path) -> None:
        """In the forked child: join the memory group and the CPU, mount the overlays in a mount namespace of its
        own, make the user namespace (the parent maps it), forbid further ones, and exec bubblewrap."""
        try:
            log = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            (group / "cgroup.procs").write_text(str(os.getpid()))
            os.sched_setaffinity(0, {self.cpu})
            libc = ctypes.CDLL(None, use_errno=True)
            _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            subprocess.run(["mount", "--make-rprivate", "/"], check=True)
            binds = []
            for overlay in self.overlays:
                binds += ["--bind", str(self._mount_overlay(overlay)), f"/autograder/source/{overlay.inside}"]
            _check(libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
            os.write(to_parent, b"u")
            if os.read(from_parent, 1) != b"m":
                os._exit(70)
            Path("/proc/sys/user/max_user_namespaces").write_text("0")
            os.execvp("bwrap", ["bwrap", *self._bwrap_arguments(), *binds, "--chdir", "/autograder",
                                "--cap-drop", "CAP_SYS_ADMIN", "--", "capsh", "--drop=cap_sys_admin", "--",
                                "-c", command])
        except BaseException as error:  # noqa: BLE001  (a forked child must never return into the test)
            os.write(2, f"container set-up failed: {error!r}\n".encode())
        os._exit(70)

    def _mount_overlay(self, overlay: Overlay) -> Path:
        """Mount ``overlay`` in this process's own mount namespace; its merged folder."""
        layers = self.root / "overlays" / overlay.inside.replace("/", "_")
        upper, work, merged = layers / "upper", layers / "work", layers / "merged"
        for folder in (upper, work, merged):
            folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={overlay.host},upperdir={upper},workdir={work},metacopy=on", str(merged)],
                       check=True)
        (self.autograder / "source" / overlay.inside).mkdir(parents=True, exist_ok=True)
        return merged

    def _bwrap_arguments(self) -> list[str]:
        """The root file system, namespaces and environment of the container (bubblewrap runs as root in the new
        user namespace, so it keeps the capabilities it is not told to drop)."""
        system = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
                  "--ro-bind", "/var/lib/dpkg", "/var/lib/dpkg"]
        for link in ("bin", "lib", "lib64", "sbin"):
            if Path(f"/{link}").is_symlink():
                system += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        return [*system, "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/root",
                "--bind", str(self.autograder), "/autograder",
                "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--die-with-parent",
                "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "--setenv", "HOME", "/root", "--setenv", "LANG", "C.UTF-8"]


@dataclass
class Completed:
    """A command's run in the container."""

    returncode: int
    output: str
    """stdout and stderr together."""
    seconds: float
    killed: bool
    """Its processes were killed at ``kill_after_seconds``."""
    peak_memory_bytes: int
    """The memory group's peak (the container's processes together, page cache included)."""


def root_processes_memory_bytes(group: Path) -> int:
    """The memory of the memory group's processes that run as root (the grader, bash; not student code, which runs
    as other uids), summed as proportional set sizes (``Pss`` of ``/proc/PID/smaps_rollup``): a page shared by N
    processes (a forked worker's, a library's) counts 1/N in each, so the sum is what they hold together."""
    total = 0
    for pid in (group / "cgroup.procs").read_text().split():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # it ended
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == ["0"]:
            total += sum(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
    return total


def _kill_group(group: Path) -> None:
    """SIGKILL every process of the memory group until none is left."""
    kill_members(group / "cgroup.procs", rounds=100, pause_seconds=0.05)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def remove_container(container: Container) -> None:
    """Remove the container's folder (the overlays were mounted only in its processes' mount namespaces)."""
    shutil.rmtree(container.root, ignore_errors=True)
