"""Watch a started run to its end and say what happened: its output (captured within limits), its wall time, the
work folder's disk use, the end of its whole process tree, and the verdict with its message.

The process tree: the command runs in a PID namespace of its own under bubblewrap's
init; when the command exits, when the grader kills bubblewrap (timeout, output limit)
or when the grader dies (``--die-with-parent``), the kernel kills every process in that
namespace, and :func:`supervise` returns only once that init is gone.
"""
from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import time

from grader.environment import without_chatter
from grader.limits import RunLimits
from grader.sandbox.launch import Launch
from grader.sandbox.types import UNSAFE_FLAG, RunResult, Verdict
from grader.sandbox.workdir import DiskUse, disk_use

DISK_POLL_SECONDS = 0.1
"""How often the grader measures a run's work folder (see :mod:`grader.sandbox.workdir` for what that costs and
allows)."""
_DRAIN_GRACE_SECONDS = 0.5


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


def supervise(launch: Launch, limits: RunLimits, disk_base: DiskUse) -> RunResult:
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

    def __init__(self, launch: Launch, limits: RunLimits, disk_base: DiskUse):
        self.launch = launch
        self.limits = limits
        self.disk_base = disk_base
        self.disk_ceiling = DiskUse(disk_base.bytes + limits.disk_bytes, disk_base.inodes + limits.disk_inodes)
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
        next_disk_check = self.launch.started + DISK_POLL_SECONDS
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
                next_disk_check = now + DISK_POLL_SECONDS
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
        return disk_use(self.launch.workdir, self.disk_ceiling).problem(self.disk_base, self.limits)

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
        if launch.through_bubblewrap and b"\n" not in self.status and self.stopped is None:  # bubblewrap failed
            reason = self.stderr.text().strip() or f"exit status {launch.process.returncode}"
            return result.model_copy(update=dict(
                verdict=Verdict.SANDBOX_UNAVAILABLE,
                message=f"the sandbox could not start ({reason}); on a machine without root, unprivileged user "
                f"namespaces must be enabled (sysctl kernel.unprivileged_userns_clone=1), or pass {UNSAFE_FLAG} "
                "to run trusted code with resource limits only"))
        update = _verdict(launch.process.returncode, launch.through_bubblewrap, self.stopped, self.stop_message, oom_kills,
                          launch.cgroups is None, limits, result)
        if not launch.sandboxed:
            update["message"] = "UNSANDBOXED (resource limits only): " + update["message"]
        return result.model_copy(update=update)


def _verdict(returncode: int, through_bubblewrap: bool, stopped: Verdict | None, stop_message: str, oom_kills: int,
             memory_by_rlimit: bool, limits: RunLimits, result: RunResult) -> dict:
    """The verdict fields: what the grader stopped (``stopped``, said by ``stop_message``), else what the
    kernel or the command did (``through_bubblewrap``: its exit status is bubblewrap's)."""
    if stopped is not None:
        return dict(verdict=stopped, message=stop_message)
    if returncode < 0:
        code, number = None, -returncode
    elif through_bubblewrap and 128 < returncode < 128 + signal.NSIG:
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
