"""Time a grading may spend running student code beyond what the rubric allows each run: a cap on every run
(``grade --max-run-seconds``: a quick trial of a class, the demo) and a deadline for one submission's grading
(``grade gradescope --timeout``: the platform kills the container at its timeout, so grading stops 60 s before).

The rubric's limits (:meth:`grader.rubric.Rubric.run_limits`) stay what they are; :meth:`TimeBudget.bound` cuts a
run's ``wall_seconds``, ``notebook_seconds`` and ``cell_seconds`` to what the budget leaves, and a run that would
start with less than :data:`MIN_RUN_SECONDS` left is not started (:meth:`TimeBudget.not_run`: a ``timeout`` verdict
saying why). A run the cap or the deadline stopped says so in its message (:meth:`TimeBudget.explain`), so that
nobody raises the rubric's ``wall_seconds`` for it.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from grader.limits import RunLimits
from grader.sandbox.types import RunResult, Verdict

MIN_RUN_SECONDS = 5.0
"""A run is not started with less time than this left before the deadline (a Python start with TensorFlow takes
several seconds: it would only time out)."""

CUT_KEYS = ("wall_seconds", "notebook_seconds", "cell_seconds")
"""The run limits a budget cuts, in seconds."""
LIMIT_NAMED = re.compile(r"\(limit (\w+) = ")
"""How a timeout's message names the limit it reached ("(limit wall_seconds = 120)")."""


@dataclass(frozen=True)
class TimeBudget:
    """A cap on each run's wall time and a deadline for the whole grading; neither by default."""

    max_run_seconds: float | None = None
    """Each run's wall time (and a notebook's cells together) at most this, whatever the rubric allows."""
    deadline: float | None = None
    """``time.monotonic()`` after which no run may go on."""
    deadline_words: str = ""
    """Why the deadline is where it is, for messages ("Gradescope's timeout of 600 s, less 60 s")."""

    @classmethod
    def until(cls, seconds: float, words: str, max_run_seconds: float | None = None) -> TimeBudget:
        """A budget whose deadline is ``seconds`` from now, explained by ``words``."""
        return cls(max_run_seconds, time.monotonic() + seconds, words)

    @property
    def unlimited(self) -> bool:
        return self.max_run_seconds is None and self.deadline is None

    def left(self) -> float | None:
        """Seconds before the deadline (0 when past it); None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def bound(self, limits: RunLimits) -> RunLimits | None:
        """``limits`` with their times cut to what this budget leaves; None when a run should not start (less
        than :data:`MIN_RUN_SECONDS` before the deadline)."""
        if self.unlimited:
            return limits
        room = [value for value in (self.max_run_seconds, self.left()) if value is not None]
        most = min(room)
        if self.deadline is not None and (self.left() or 0.0) < MIN_RUN_SECONDS:
            return None
        cut = {name: min(getattr(limits, name), most) for name in CUT_KEYS}
        return limits.with_overrides(cut) if any(cut[name] < getattr(limits, name) for name in cut) else limits

    def not_run(self, command: list[str]) -> RunResult:
        """The result of a run the deadline left no time for."""
        return RunResult(verdict=Verdict.TIMEOUT, command=command,
                         message=f"not run: the grading's time is spent ({self.deadline_words})")

    def explain(self, result: RunResult, rubric_limits: RunLimits, bounded: RunLimits) -> RunResult:
        """``result`` with its timeout message naming the cap or the deadline where they, not the rubric, set the
        limit it reached: the key its message names (``wall_seconds``, or a notebook's ``notebook_seconds`` or
        ``cell_seconds``), where the budget cut that key below the rubric's value."""
        reached = LIMIT_NAMED.search(result.message) if result.verdict is Verdict.TIMEOUT else None
        name = reached.group(1) if reached else None
        if name not in CUT_KEYS or getattr(bounded, name) >= getattr(rubric_limits, name):
            return result
        seconds = getattr(bounded, name)
        why = (f"--max-run-seconds {self.max_run_seconds:g}" if self.max_run_seconds is not None
               and self.max_run_seconds <= seconds + 1e-6 else self.deadline_words)
        return result.model_copy(update={"message": f"{result.message}; the time was cut to {seconds:g} s by "
                                          f"{why} (the rubric allows {getattr(rubric_limits, name):g} s)"})
