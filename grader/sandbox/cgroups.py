"""A root grader's cgroup v1 groups for one run (``pids``, ``memory``, ``cpuacct``): they hold the run's process
count and memory, and measure its CPU time and peak memory.

Where these controllers are writable, each run gets fresh groups of its own, made under the
grader's own: the launching thread joins them just for the start (:meth:`Cgroups.joined`),
so bubblewrap is born in them and the whole tree is held and measured before it can fork;
the groups are removed after the run. Elsewhere (no root, cgroup v2 only) there are none,
and rlimits hold processes and memory instead (:func:`grader.sandbox.process.rlimits`).
"""
from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import signal
import time
from pathlib import Path

from grader.limits import RunLimits


def _write_file(path: Path, text: str) -> None:
    """Write ``text`` to an existing (kernel) file in one system call."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)


class Cgroups:
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
    def create(cls, limits: RunLimits) -> Cgroups | None:
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
        kill_members(self.folders["pids"] / "cgroup.procs")

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


def kill_members(procs: Path, rounds: int = 200, pause_seconds: float = 0.005) -> None:
    """SIGKILL every process a cgroup's ``cgroup.procs`` file ``procs`` lists, again while any is left (one forked
    between two rounds), for at most ``rounds`` rounds ``pause_seconds`` apart."""
    for _ in range(rounds):
        pids = procs.read_text().split()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(pause_seconds)
