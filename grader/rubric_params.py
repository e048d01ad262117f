"""The parameters of each check kind: one pydantic model per kind, validated when the rubric loads.

A rubric item's ``params = { ... }`` is validated against the model of its ``check``
(:data:`CHECK_PARAMS`): a key the model does not have (a misspelling), a value of the wrong
type or out of range, a metric the grader does not score, a discovery role or an evidence
kind that does not exist are rubric errors naming the item, the key and what is allowed,
before any student is graded. A key left out takes the model's default, the check's own.

A validated model reads as the mapping the checks read (``item.params["role"]``,
``item.params.get("num", 4)``: a field's value, written or default) and serialises as what
the rubric wrote, defaults left out, so that the rubric's JSON (part of every result's
cache key) and the student kit's rubric are the same as the file's.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any, Literal, get_args

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_serializer,
                      model_validator)
from pydantic_core import PydanticCustomError

from grader.evidence_kinds import EVIDENCE
from grader.contract import ROLES
from grader.heldout import PROBE_COUNT
from grader.listening.model import SCALES, Kind
from grader.scoring import HELDOUT_METRICS
from reference.evaluation import METRICS


def one_of(value: str, allowed: Iterable[str], what: str) -> str:
    """``value`` when it is one of ``allowed``.

    Raises:
        PydanticCustomError: ``not_allowed``, e.g. ``"quiz" is not a check kind; allowed: checkpoint, claims, ...``
            (``what`` is "a check kind").
    """
    allowed = sorted(allowed)
    if value not in allowed:
        raise PydanticCustomError("not_allowed", "{value} is not {what}; allowed: {allowed}",
                                  {"value": json.dumps(value), "what": what, "allowed": ", ".join(allowed)})
    return value


def _discovery_role(value: str) -> str:
    return one_of(value, ROLES, "a discovery role")


def _evidence_kind(value: str) -> str:
    return one_of(value, EVIDENCE, "an evidence kind")


def _heldout_metric(value: str) -> str:
    return one_of(value, HELDOUT_METRICS, "a metric the grader scores on held-out clips")


Role = Annotated[str, AfterValidator(_discovery_role)]
"""A role of the submission contract (:data:`grader.contract.ROLES`: samples, checkpoints...)."""
FullAt = Literal["reference", "griffin_lim"]
"""Baseline sources full points may sit at (:mod:`grader.bars`)."""
FloorAt = Literal["untrained"]
"""Baseline sources the floor may sit at (:mod:`grader.bars`)."""


class CheckParams(BaseModel):
    """The parameters of one check kind: every key known, typed and with the check's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __getitem__(self, key: str) -> Any:
        """A parameter's value (written or default), as ``params[key]`` of the dict the checks once read."""
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """A parameter's value (written or default); ``default`` for a key the model does not have."""
        return getattr(self, key) if key in type(self).model_fields else default

    def keys(self) -> list[str]:
        """Every parameter's name, so that ``{**params}`` is a dict of every value, written or default."""
        return list(type(self).model_fields)

    @model_serializer(mode="wrap")
    def _as_written(self, handler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if key in self.model_fields_set}


class StaticParams(CheckParams):
    """``static``: evidence found in the code (:mod:`grader.checks.static`)."""

    evidence: list[Annotated[str, AfterValidator(_evidence_kind)]] = Field(
        min_length=1, description="Evidence kinds asked for (grader.evidence_kinds.EVIDENCE); share = kinds found / "
        "kinds asked.")


class MfccParams(CheckParams):
    """``mfcc``: the student's MFCC function against librosa's on unseen clips (:mod:`grader.checks.mfcc`)."""

    clips: int = Field(PROBE_COUNT, description="The probe clips the function runs on: fixed by the held-out set "
                       "(grader.heldout.PROBE_COUNT); written only to say so.")
    tolerance_db: float = Field(1.0, ge=0.0, description="Mean absolute difference from librosa's MFCC accepted, "
                                "in dB.")

    @field_validator("clips")
    @classmethod
    def _the_probe_count(cls, value: int) -> int:
        if value != PROBE_COUNT:
            raise ValueError(f"the mfcc check runs on the held-out set's {PROBE_COUNT} probe clips; write "
                             f"clips = {PROBE_COUNT} or leave the key out")
        return value


class FilesParams(CheckParams):
    """``files``: a role of the contract has enough non-empty files (:mod:`grader.checks.files`)."""

    role: Role = Field(description="The discovery role whose files count.")
    min_count: int = Field(1, ge=1, description="Files for full points; share = files found / min_count.")


class CheckpointParams(CheckParams):
    """``checkpoint``: loadable trained weights that the entry point uses (:mod:`grader.checks.checkpoint`)."""

    role: Role = Field("checkpoints", description="The discovery role of the weight files.")
    min_count: int = Field(1, ge=1, description="Weight files for full points.")
    min_bytes: int = Field(10_000, ge=0, description="Bytes of weights a file holds at least to count (the course's "
                           "smallest model has some 100 kB).")
    needs_model_use: bool = Field(True, description="Count the weights only when the entry point's audio depends on "
                                  "them (grader.model_use).")


class QualityParams(CheckParams):
    """``reconstruct``: the quality of conditional generation, between two bars on one metric (:mod:`grader.bars`)."""

    metric: Annotated[str, AfterValidator(_heldout_metric)] = Field(
        "pesq_wb", description="The metric scored: one of grader.scoring.HELDOUT_METRICS.")
    curve: Literal["linear", "sqrt"] = Field("linear", description="linear: proportional between the bars; sqrt: "
                                             "the first steps above the floor earn more.")
    full_at: FullAt | float = Field(
        "reference", description="Full points at the reference solution's score, at Griffin-Lim's, or at a number.")
    floor_at: FloorAt | float = Field(
        "untrained", description="No points at or below an untrained model's score (the reference WaveNet "
        "freshly initialised), or a number.")
    model_free_share: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of the points kept when the audio does not depend on the "
        "submission's model (Griffin-Lim alone is a vocoder, not a model): 0 by default.")
    jobs: int = Field(2, ge=1, description="Scoring processes.")

    @field_validator("full_at", "floor_at", mode="before")
    @classmethod
    def _a_source_or_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        sources = get_args(FullAt if info.field_name == "full_at" else FloorAt)
        return one_of(value, sources, "a baseline source or a number") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _room_between_numbers(self) -> "QualityParams":
        if not isinstance(self.full_at, str) and not isinstance(self.floor_at, str):
            problem = no_room(self.full_at, self.floor_at, METRICS[self.metric].higher_is_better)
            if problem:
                raise ValueError(f"full_at {self.full_at:g} and floor_at {self.floor_at:g}: {problem}")
        return self


class SamplesParams(CheckParams):
    """``samples``: handed-in samples, decodable and not copies of the data (:mod:`grader.checks.samples`)."""

    min_count: int = Field(3, ge=1, description="Good samples for full points.")


class GenerationParams(CheckParams):
    """``generation``: the generation entry point runs and writes valid audio (:mod:`grader.checks.generation`)."""

    num: int = Field(4, ge=1, description="Clips ``sample`` is asked for.")
    seed: int = Field(0, description="The seed ``sample`` is given.")


class SampleParams(GenerationParams):
    """``sample``: unconditional samples, valid, diverse and novel (:mod:`grader.checks.sample`)."""

    dnsmos: bool = Field(False, description="Report DNSMOS overall quality beside, without points (about 0.4 s a "
                         "clip).")
    diversity_share: float = Field(0.5, gt=0.0, description="Full diversity points at this share of the held-out "
                                   "clips' own diversity.")


class ClaimsParams(CheckParams):
    """``claims``: PESQ and SNR figures the student reports, against the grader's (:mod:`grader.checks.claims`)."""

    pesq_tolerance: float = Field(0.5, ge=0.0, description="A reported PESQ agrees within this much of the grader's.")
    snr_tolerance_db: float = Field(3.0, ge=0.0, description="A reported SNR agrees within this many dB.")


class ListeningParams(CheckParams):
    """``listening``: the submission's score in the class's listening test (``OUT/listening.csv``, ``grade listen
    results``), between two bars (:mod:`grader.checks.listening`)."""

    kind: Kind = Field("mushra", description="The test scored: mushra (reconstructions of held-out clips, 0-100) "
                       "or mos (samples, 1-5).")
    full_at: Literal["reference"] | float = Field(
        "reference", description="Full points at the reference solution's MUSHRA score in the same test, or at a "
        "score (a MOS test has no reference solution: write a number).")
    floor_at: Literal["anchor"] | float = Field(
        "anchor", description="No points at or below the 3.5 kHz anchor's MUSHRA score in the same test, or a score "
        "(a MOS test has no anchor: write a number).")
    min_ratings: int = Field(5, ge=1, description="Ratings of the submission's audio (from the raters kept) it "
                             "needs to be scored; with fewer the item is skipped, its points left out of the "
                             "maximum, until more ratings come.")

    @field_validator("full_at", "floor_at", mode="before")
    @classmethod
    def _a_system_or_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        system = "reference" if info.field_name == "full_at" else "anchor"
        return one_of(value, (system,), "a system of the test or a number") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _bars_on_the_scale(self) -> "ListeningParams":
        low, high = SCALES[self.kind]
        numbers = {}
        for bar, value in (("full_at", self.full_at), ("floor_at", self.floor_at)):
            if isinstance(value, str):
                if self.kind != "mushra":
                    raise ValueError(f"{bar} = {value!r}: a {self.kind} test has no {value}; set {bar} to a score "
                                     f"from {low} to {high}")
            elif not low <= value <= high:
                raise ValueError(f"{bar} = {value:g} is off the {self.kind} scale, {low} to {high}")
            else:
                numbers[bar] = value
        if len(numbers) == 2:
            problem = no_room(numbers["full_at"], numbers["floor_at"], higher_is_better=True)
            if problem:
                raise ValueError(f"full_at {self.full_at:g} and floor_at {self.floor_at:g}: {problem}")
        return self


CHECK_PARAMS: dict[str, type[CheckParams]] = {
    "checkpoint": CheckpointParams, "claims": ClaimsParams, "files": FilesParams, "generation": GenerationParams,
    "listening": ListeningParams, "mfcc": MfccParams, "reconstruct": QualityParams, "sample": SampleParams,
    "samples": SamplesParams, "static": StaticParams}
"""Every check kind (a module of grader/checks/ with a ``check(ctx, item)`` function) and its parameters' model."""


def no_room(full: float, floor: float, higher_is_better: bool) -> str:
    """Why bars ``full`` and ``floor`` leave no room for points ('' when they do)."""
    if full == floor or (full < floor) == higher_is_better:
        return (f"full points must lie {'above' if higher_is_better else 'below'} the floor "
                f"({'higher' if higher_is_better else 'lower'} is better on this metric), or no score earns part "
                f"of the points")
    return ""
