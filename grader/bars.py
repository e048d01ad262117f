"""Quality bars: where a quality item gives full points and where it gives none, as the instructor sets them.

A quality item (check ``reconstruct``) scores the student's mean of one metric over the
held-out clips. Its rubric parameters place two bars on that metric:

- ``full_at``: ``"reference"`` (the reference solution's own score, the default),
  ``"griffin_lim"`` (Griffin-Lim on the true log-mel: what a model-free vocoder reaches)
  or a number;
- ``floor_at``: ``"untrained"`` (an untrained model of the assignment: the reference
  WaveNet freshly initialised, whose output is noise; the default) or a number.

Between the bars, points follow ``curve``. A bar that leaves no room (full points at or
below the floor, in the metric's own direction, :data:`reference.evaluation.METRICS`) is a
rubric error naming the item: at rubric load when both bars are numbers (the item's
parameters, :class:`~grader.rubric_params.QualityParams`), and when the baseline is
computed, before any student is graded, for bars named by a source (:func:`check_bars`).
"""
from __future__ import annotations

from dataclasses import dataclass

from grader.rubric_params import CHECK_PARAMS, QualityParams, no_room
from reference.evaluation import METRICS

QUALITY_CHECKS = tuple(kind for kind, model in CHECK_PARAMS.items() if model is QualityParams)
"""Check kinds whose parameters are :class:`~grader.rubric_params.QualityParams`."""
BASELINE_SOURCE = {"reference": "reference", "griffin_lim": "griffin_lim", "untrained": "floor"}
"""A bar's name in the rubric -> the baseline source (:mod:`grader.scoring`) whose mean it takes."""
SOURCE_WORDS = {"reference": "the reference solution", "griffin_lim": "Griffin-Lim on the true log-mel",
                "untrained": "an untrained model", "number": "a figure the rubric sets"}


class BarsError(ValueError):
    """Bars that leave no room for points; the message names the item and what to change."""


@dataclass(frozen=True)
class Bars:
    """The two bars of an item on its metric, resolved to numbers, and where each came from."""

    metric: str
    full: float
    floor: float
    full_source: str
    """``reference``, ``griffin_lim`` or ``number``."""
    floor_source: str
    """``untrained`` or ``number``."""
    curve: str = "linear"

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better

    def fraction(self, value: float | None) -> float:
        """Share of the points (0..1) for ``value``; 0 for a missing value."""
        if value is None:
            return 0.0
        sign = 1.0 if self.higher_is_better else -1.0
        share = min(1.0, max(0.0, sign * (value - self.floor) / (sign * (self.full - self.floor))))
        return share ** 0.5 if self.curve == "sqrt" else share

    def summary(self) -> str:
        """The metric, the bars and their sources: "pesq_wb: no points at 1.05 (an untrained model), full ..."."""
        return f"{self.metric}: {self._bars()}"

    def _bars(self) -> str:
        return (f"no points at {self.floor:.2f} ({SOURCE_WORDS[self.floor_source]}), full points at {self.full:.2f} "
                f"({SOURCE_WORDS[self.full_source]})")

    def describe(self, value: float | None) -> str:
        """Where ``value`` sits between the bars, with their sources, in one sentence."""
        bars = self._bars()
        if value is None:
            return f"{self.metric}: no score; {bars}."
        position = (value - self.floor) / (self.full - self.floor)
        where = ("at or past full points" if position >= 1 else "at or below the floor" if position <= 0
                 else f"{position:.0%} of the way from the floor to full points")
        return f"{self.metric} {value:.2f} sits {where}: {bars}."

    def to_dict(self) -> dict:
        return {"metric": self.metric, "full": self.full, "floor": self.floor, "full_source": self.full_source,
                "floor_source": self.floor_source, "curve": self.curve}


def resolve(params: QualityParams, means: dict[str, dict[str, float | None]], item_id: str) -> Bars:
    """``params``' bars as numbers, sources' bars read from the baseline's ``means`` (source -> metric -> mean).

    Raises:
        BarsError: a source has no score on the metric, or the bars leave no room.
    """
    values, sources = [], []
    for bar, written in (("full_at", params.full_at), ("floor_at", params.floor_at)):
        if isinstance(written, str):
            value = means.get(BASELINE_SOURCE[written], {}).get(params.metric)
            if value is None:
                raise BarsError(f"rubric item {item_id!r}: {bar} = {written!r}, but {SOURCE_WORDS[written]} has no "
                                f"{params.metric} score on this held-out set; set {bar} to a number")
            values.append(float(value))
            sources.append(written)
        else:
            values.append(float(written))
            sources.append("number")
    full, floor = values
    problem = no_room(full, floor, METRICS[params.metric].higher_is_better)
    if problem:
        raise BarsError(f"rubric item {item_id!r}: full points at {full:.3f} ({params.full_at!r}) and the floor at "
                        f"{floor:.3f} ({params.floor_at!r}) on {params.metric}: {problem}. Set full_at or floor_at "
                        f"to a number in the rubric.")
    return Bars(params.metric, full, floor, sources[0], sources[1], params.curve)


def check_bars(items, means: dict[str, dict[str, float | None]]) -> dict[str, Bars]:
    """Every quality item's bars (item id -> :class:`Bars`), resolved before any student is graded.

    Raises:
        BarsError: listing every item whose bars leave no room.
    """
    bars, problems = {}, []
    for item in items:
        if item.check in QUALITY_CHECKS:
            try:
                bars[item.id] = resolve(item.params, means, item.id)
            except BarsError as error:
                problems.append(str(error))
    if problems:
        raise BarsError("; ".join(problems))
    return bars
