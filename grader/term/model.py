"""What the term adds to a result when pages and exports are rendered (:attr:`grader.results.ItemResult.adjustment`,
:attr:`grader.results.SubmissionResult.term`); never written by grading."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemAdjustment(_Model):
    """A person's change of one item's automatic points."""

    automatic: float = Field(description="The check's points.")
    points: float = Field(description="The points after the adjustment (what pages and exports count), 0 to the "
                          "item's maximum; the automatic points where the adjustment is stale.")
    comment: str
    by: str
    at: str = Field(description="ISO 8601 with UTC offset.")
    stale: str = Field("", description="Why the adjustment no longer applies (the item's points, check or "
                       "parameters changed, or the submission's content did); '' where it applies.")


class Lateness(_Model):
    """When the work came in against the rubric's due date, and what that costs."""

    submitted_at: str | None = Field(description="ISO 8601 with UTC offset; None: unknown (Canvas's _LATE mark "
                                     "alone).")
    due: str
    late_minutes: float = Field(ge=0, description="Past the due date and its grace period; 0: on time.")
    penalty: float = Field(ge=0, description="Points taken off the total.")
    refused: bool = Field(False, description="Late work not accepted: the total is 0.")
    review: bool = Field(False, description="Flagged for a person to review, no penalty computed (Canvas's _LATE "
                         "mark without a time).")
    words: str = Field(description="The line the page shows, e.g. 'handed in 1 day 3 hours late: -10%'.")


class Attempt(_Model):
    """One grading of one of a student's attempts, as the gradebook keeps it."""

    submission_id: str
    graded_at: str
    digest: str = Field(description="The submission's content digest.")
    points: float
    max_points: float
    submitted_at: str | None = None
    counts: bool = Field(description="The attempt the rubric's policy counts for the student.")


class TermGrade(_Model):
    """A result's final grade for the term."""

    automatic_total: float = Field(description="The grading's total, before adjustments and lateness.")
    total: float = Field(description="After adjustments and lateness: what pages and exports count.")
    lateness: Lateness | None = None
    attempts: list[Attempt] = Field(default_factory=list, description="The student's attempts, oldest first.")
    counts: bool = Field(True, description="Whether this result is the attempt the policy counts for its student.")
    stale: list[str] = Field(default_factory=list, description="Adjustments that no longer apply, in words.")
