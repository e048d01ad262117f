"""What a batch keeps of each submission: the one-line :class:`BatchEntry` of its result, the :class:`Pending`
submission still to grade, and the ``grader_error`` result of one that could not be graded.

Shared by the local batch (:mod:`grader.batch`) and the dask cluster (:mod:`grader.cluster`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grader.pipeline import RESULTS_FOLDER, GradingSetup
from grader.results import SubmissionResult


@dataclass(frozen=True)
class BatchEntry:
    """One submission's line in a batch's summary (the full result is on disk)."""

    submission_id: str
    source: str
    status: str
    total: float
    max_total: float
    seconds: float
    reused: bool
    """Taken from an earlier run's result (same cache key), not graded now."""
    message: str = ""

    @classmethod
    def of(cls, result: SubmissionResult, reused: bool) -> BatchEntry:
        first_line = result.message.strip().splitlines()[0] if result.message.strip() else ""
        return cls(result.submission_id, result.source, result.status, result.total, result.max_total,
                   result.seconds, reused, first_line if result.status != "graded" else "")

    @property
    def failed(self) -> bool:
        """Refused or a grader error: no grading of the work itself happened."""
        return self.status != "graded"


@dataclass(frozen=True)
class Pending:
    """A submission to grade now, with its id and the cache key its result will carry."""

    source: Path
    submission_id: str
    key: str
    earlier_seconds: float | None = None
    """How long its earlier grading took, where an earlier result (not reusable now) says."""
    rescoring: bool = False
    """Its kept evidence stands (:mod:`grader.evidence`): only re-scored, which takes a fraction of a second."""


def record_failure(item: Pending, setup: GradingSetup, error: BaseException) -> BatchEntry:
    """Write (and return the entry of) a ``grader_error`` result for ``item``, which a worker could not grade."""
    result = SubmissionResult.from_exception(item.submission_id, str(item.source), error, setup.max_total,
                                             setup.versions)
    result.write(setup.out_dir / RESULTS_FOLDER)
    return BatchEntry.of(result, reused=False)
