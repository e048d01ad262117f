"""The result of grading one submission: always serialisable, even after a crash.

One JSON file per submission, written atomically (a temporary file, then a rename),
so a reader never sees half a result. Reports and exports are rendered from these
files only. A refused archive and a grader error get a result too; ``status`` says which.
"""
from __future__ import annotations

import os
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from grader import __version__
from reference.files import atomic_write
from grader.identity import LmsIdentity, attempt_of, identify
from grader.notebook import NotebookRun
from grader.sandbox.types import RunResult
from grader.term.model import ItemAdjustment, TermGrade

ItemStatus = Literal["passed", "partial", "failed", "error", "skipped"]
"""passed: full points; partial: some; failed: none; error: the check itself broke; skipped: not run here."""
SubmissionStatus = Literal["graded", "refused", "grader_error"]
"""graded: every item ran (whatever the student's code did); refused: intake refused the archive;
grader_error: grading itself failed, the message says where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemResult(_Model):
    """One rubric item: points out of its maximum, and why."""

    id: str
    title: str
    checklist: str
    points: float
    max_points: float
    status: ItemStatus
    visibility: str = "visible"
    explanation: str = Field(description="Why these points, in sentences a student can act on.")
    evidence: list[str] = Field(default_factory=list, description="What the check saw: file:line, numbers, findings.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Numbers the points came from.")
    seconds: float = 0.0
    adjustment: ItemAdjustment | None = Field(None, description="A person's change of the points, applied when "
                                              "pages and exports are rendered (grader.term); never by grading.")


class RunEntry(_Model):
    """One run of student code: which item asked for it, what for, and the sandbox's verdict."""

    item_id: str
    purpose: str
    result: RunResult
    notebook: NotebookRun | None = Field(None, description="A notebook entry's run: every cell's status and time, "
                                         "the first error's traceback, the limit that stopped it, its installs.")
    findings: list[str] = Field(default_factory=list, description="What the grader read from the run's output "
                                "that explains its verdict (a package the course environment lacks, say).")
    reused: bool = Field(False, description="Taken from an earlier grading's identical run (grader.run_cache): the "
                         "same submission, inputs, command, limits, environment and run code; student code did "
                         "not run again.")


class QuestionOutcome(_Model):
    id: str
    answered: str | None
    correct: bool | None = Field(description="None: not revealed here (a student's self-check).")
    points: float
    max_points: float


class ListenClip(_Model):
    """A held-out clip to listen to and look at: audio files, relative to the output folder.

    A source the grader could not produce is None (e.g. ``student`` when the run failed).
    """

    name: str
    truth: str | None = None
    reference: str | None = None
    student: str | None = None
    griffin_lim: str | None = None
    metrics: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="source (student, reference, floor, griffin_lim) -> metric -> value.")


class HandedInSample(_Model):
    """A sample the student handed in: where the grader wrote its re-encoded copy (relative to the output folder),
    and findings."""

    name: str
    audio: str | None = None
    valid: bool
    findings: list[str] = Field(default_factory=list, description="Validity and novelty findings, in words.")


class Versions(_Model):
    grader: str = __version__
    rubric: str = ""
    heldout: str = Field("", description="Content hash of the held-out set the outputs were scored on.")


class SubmissionResult(_Model):
    """Everything known about one graded (or refused) submission.

    Who it belongs to is ``identity``, read from the source's file name; ``student`` is only
    what the submission declares about itself (see :mod:`grader.identity`).
    """

    submission_id: str
    source: str = Field(description="The file or folder graded, as given.")
    status: SubmissionStatus
    message: str = ""
    identity: LmsIdentity = Field(default_factory=LmsIdentity, description="The student the source's LMS file "
                                  "name names: the identity in every export. Its lms is None when the name is no "
                                  "LMS export's: the submission is unmatched, its ID empty.")
    attempt: int = Field(1, ge=1, description="Which of its student's files of one batch this is (1, 2, ...; "
                         "grader.batch.plan); a later attempt's submission id ends in ~<attempt>.")
    student: dict[str, str] = Field(default_factory=dict, description="What submission.toml's [student] table "
                                    "declares (name, id): shown as declared, never used as the identity.")
    total: float = 0.0
    max_total: float = 0.0
    items: list[ItemResult] = Field(default_factory=list)
    quiz: list[QuestionOutcome] = Field(default_factory=list)
    runs: list[RunEntry] = Field(default_factory=list)
    clip_metrics: list[dict[str, Any]] = Field(default_factory=list, description="Per held-out clip scores.")
    comparison: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="source (student, reference, floor, griffin_lim) -> metric -> mean over "
        "the held-out clips: the student against the reference solution, the untrained floor and Griffin-Lim "
        "on the true log-mel.")
    listen: list[ListenClip] = Field(default_factory=list)
    samples: list[HandedInSample] = Field(default_factory=list)
    discovery: dict[str, Any] = Field(default_factory=dict, description="Which file plays which part; what was guessed.")
    versions: Versions = Versions()
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds by phase: intake (unpack and "
                                      "discovery), student_code (sandboxed runs), grader (checks and scoring, "
                                      "without student code).")
    cache_key: str = Field("", description="What this result was graded from (grader.cache): a later run "
                           "with the same key reuses it instead of grading again.")
    content_digest: str = Field("", description="The submission's content digest (grader.cache.content_digest): "
                                "an adjustment made to it is stale once the content changes.")
    term: TermGrade | None = Field(None, description="Adjustments, lateness and attempts, applied when pages and "
                                   "exports are rendered (grader.term); never by grading.")

    @model_validator(mode="before")
    @classmethod
    def _identity_from_names(cls, data: Any) -> Any:
        """``identity`` from the source's file name and ``attempt`` from the submission id, where not given:
        so every result has them, refused and failed ones too, and results written before they existed."""
        if isinstance(data, dict):
            data = dict(data)
            if "identity" not in data and "source" in data:
                data["identity"] = identify(data["source"])
            if "attempt" not in data and "submission_id" in data:
                data["attempt"] = attempt_of(data["submission_id"])
        return data

    @property
    def student_label(self) -> str:
        """The student's name for titles and tables: the name in the LMS file name, else the submission id;
        never the declared name."""
        return self.identity.name or self.submission_id

    @classmethod
    def refused(cls, submission_id: str, source: str, reason: str, max_total: float, versions: Versions) -> "SubmissionResult":
        """The result of an archive intake refused: zero points and the reason."""
        now = utc_now()
        return cls(submission_id=submission_id, source=source, status="refused", message=reason, max_total=max_total,
                   versions=versions, started_at=now, finished_at=now)

    @classmethod
    def from_exception(cls, submission_id: str, source: str, error: BaseException, max_total: float,
                       versions: Versions, partial: "SubmissionResult | None" = None) -> "SubmissionResult":
        """A grader error as a result: what had been graded so far (if any) and the error with its traceback."""
        detail = "".join(traceback.format_exception(error)).strip()
        base = partial.model_dump() if partial else {"submission_id": submission_id, "source": source,
                                                    "max_total": max_total, "versions": versions.model_dump(),
                                                    "started_at": utc_now()}
        base.update(status="grader_error", message=f"the grader failed: {error!r}\n{detail}", finished_at=utc_now())
        return cls.model_validate(base)

    def media_files(self) -> list[str]:
        """The audio files this result names, relative to the output folder."""
        listened = [path for clip in self.listen
                    for path in (clip.truth, clip.reference, clip.student, clip.griffin_lim) if path]
        return listened + [sample.audio for sample in self.samples if sample.audio]

    def write(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/<submission_id>.json`` atomically and return its path."""
        return atomic_write(Path(folder) / f"{self.submission_id}.json", self.model_dump_json(indent=2))

    @classmethod
    def read(cls, path: str | os.PathLike) -> "SubmissionResult":
        return cls.model_validate_json(Path(path).read_text())


def utc_now() -> str:
    """The current time as an ISO 8601 string in UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
