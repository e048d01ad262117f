"""What a sandboxed run returns: its :class:`Verdict` and :class:`RunResult`; the error of a machine that cannot
sandbox (:class:`SandboxSetupError`) and the flag that runs code without the sandbox (:data:`UNSAFE_FLAG`).

A light module (pydantic and the standard library only): results, reports and caches read runs through it without
loading the sandbox's machinery (:mod:`grader.sandbox`'s other modules).
"""
from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

UNSAFE_FLAG = "--unsafe-no-sandbox"
"""The command-line flag that lets instructor grading run student code without bubblewrap (named in the messages
of ``sandbox_unavailable`` verdicts)."""


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


class SandboxSetupError(RuntimeError):
    """This machine lacks something the sandbox needs; the message says what to install."""
