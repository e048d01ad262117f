"""Quality of conditional generation: ``reconstruct`` on the held-out log-mels, scored against the truth.

Points run between the item's two bars on its metric (:mod:`grader.bars`: by default
from an untrained model, no points, to the reference solution, full points); a clip the
student did not write counts at the floor's value. The reference solution and Griffin-Lim
on the true log-mel are shown beside, whatever the bars. Audio that does not depend on the
submission's model (:mod:`grader.model_use`: Griffin-Lim alone is a vocoder, not a model)
keeps only the item's ``model_free_share`` of its points.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grader.artefacts import provides
from grader.bars import Bars, resolve
from grader.rubric_params import QualityParams
from grader.context import CheckContext, Outcome
from grader.outputs import MediaRefused, copy_media
from grader.results import ListenClip
from grader.rubric import Item
from grader.scoring import SOURCES, score_heldout
from reference import SAMPLE_RATE
from reference.evaluation import INTRUSIVE_METRICS, SPEECH_METRICS, aggregate

LISTEN_CLIPS = 3
"""Held-out clips the report offers to listen to."""
LISTEN_METRICS = ("pesq_wb", "stoi", "snr", "lsd")
"""Scores shown beside each of those clips."""
NEEDS = ("reconstruct.outputs", "reconstruct.metrics", "reconstruct.listen", "model.use")
SCORING = ("metric", "curve", "full_at", "floor_at", "model_free_share", "jobs")


@dataclass(frozen=True)
class Measured:
    """The ``reconstruct`` entry's clips scored against the truth: ``rows``, each usable clip's scores
    (:meth:`~reference.evaluation.ClipScores.to_dict`) in the held-out set's order; ``clip_metrics``, a row for
    every held-out clip (a clip not scored says why); ``comparison``, source (student, reference, floor,
    griffin_lim) -> metric -> mean over the held-out clips. Empty when the entry did not run."""

    rows: list[dict[str, Any]]
    clip_metrics: list[dict[str, Any]]
    comparison: dict[str, dict[str, float | None]]


@dataclass(frozen=True)
class Listening:
    """A few held-out clips to listen to in the report (their audio re-encoded into its media), and why a student
    clip written and usable is not among them (it holds 0 samples, say)."""

    clips: list[ListenClip]
    unplayable: list[str]


@provides("reconstruct.metrics", needs=("reconstruct.run",), kept=Measured)
def scored_clips(ctx: CheckContext) -> Measured:
    """Every usable clip of the ``reconstruct`` entry scored against its truth (:func:`grader.scoring.score_heldout`,
    with the rubric's quality items' ``jobs`` processes at most), beside the baseline's means."""
    outputs = ctx.need("reconstruct.run")
    if outputs.run.out_dir is None:
        return Measured([], [], {})
    clips = outputs.clips(ctx.entry_names("reconstruct"))
    jobs = max((int(item.params.get("jobs", 2)) for item in ctx.rubric.items if item.check == "reconstruct"), default=2)
    rows = score_heldout(ctx.heldout, {c.name: c.audio for c in clips if c.usable}, ctx.processes(jobs))
    scored = {row.name: row.to_dict() for row in rows}
    return Measured([row.to_dict() for row in rows],
                    [scored.get(c.name, {"name": c.name, "reasons": {"all": c.problem}}) for c in clips],
                    {"student": {m: s["mean"] for m, s in aggregate(rows, INTRUSIVE_METRICS).items()},
                     **{source: ctx.baseline.means[source] for source in SOURCES}})


@provides("reconstruct.listen", needs=("reconstruct.run", "reconstruct.metrics"), kept=Listening)
def clips_to_listen(ctx: CheckContext) -> Listening:
    """Put a few clips' truth, reference, Griffin-Lim and student audio in the report's media (re-encoded). The
    student's is written as it was scored (:attr:`grader.outputs.OutputClip.wave`: mono, at the contract's rate)."""
    outputs = ctx.need("reconstruct.run")
    student_rows = ctx.need("reconstruct.metrics").clip_metrics
    by_name = {c.name: c for c in outputs.clips(ctx.entry_names("reconstruct"))}
    clips, unplayable = [], []
    for clip in ctx.heldout.clips[:LISTEN_CLIPS]:
        name = clip.path.stem
        student = by_name.get(name)
        listen = ListenClip(name=name, truth=copy_media(clip.path, ctx.media_dir, f"{name}.truth", ctx.out_root))
        for source in ("reference", "griffin_lim"):
            setattr(listen, source, copy_media(ctx.baseline.audio(source, name), ctx.media_dir,
                                               f"{name}.{source}", ctx.out_root))
        if student is not None and student.usable:
            try:
                listen.student = copy_media(student.path, ctx.media_dir, f"{name}.student", ctx.out_root,
                                            None if student.wave is None else (student.wave, SAMPLE_RATE))
            except MediaRefused as refused:
                unplayable.append(f"{name}: not put in the report: {refused}")
        rows = {"student": student_rows, **{source: ctx.baseline.rows[source] for source in SOURCES}}
        for source, source_rows in rows.items():
            row = next((r for r in source_rows if r.get("name") == name), None)
            if row is not None:
                listen.metrics[source] = {m: row.get(m) for m in LISTEN_METRICS}
        clips.append(listen)
    return Listening(clips, unplayable)


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: :class:`grader.rubric_params.QualityParams` (metric, curve, full_at, floor_at, model_free_share, jobs)."""
    outputs = ctx.need("reconstruct.outputs")
    if outputs.ran:
        measured, listening, use = (ctx.need("reconstruct.metrics"), ctx.need("reconstruct.listen"),
                                    ctx.need("model.use"))
    params = QualityParams.model_validate(item.params)
    metric = params.metric
    bars = resolve(params, ctx.baseline.means, item.id)
    if not outputs.ran:
        return Outcome(0.0, f"Conditional generation could not be scored: {outputs.message}")
    names = ctx.entry_names("reconstruct")
    clips = outputs.of(names)
    usable = [c for c in clips if c.usable]
    rows = measured.rows
    baseline = ctx.baseline
    scored = {row["name"]: row for row in rows}
    floor_rows = {row["name"]: row for row in baseline.rows["floor"]}
    counted = [clip.path.stem for clip in ctx.heldout.clips if clip.is_speech or metric not in SPEECH_METRICS]
    filled = [scored.get(name, {}).get(metric) for name in counted]
    filled = [value if value is not None else missing_value(floor_rows[name].get(metric), bars)
              for name, value in zip(counted, filled)]
    student_mean = sum(filled) / len(filled) if filled else None
    share = bars.fraction(student_mean)
    missing = [c for c in clips if not c.usable]
    evidence = [f"{c.name}: {c.finding}" for c in missing[:6]] + listening.unplayable
    evidence += [f"{row['name']}: {metric} {row.get(metric)}" for row in rows[:6]]
    context = {source: baseline.means[source].get(metric) for source in SOURCES}
    explanation = (f"{bars.describe(student_mean)} Mean over the {len(counted)} held-out clips {metric} applies to "
                   f"(missing clips count at the floor); {len(usable)} of {len(names)} clips written and usable. "
                   f"For comparison: the reference solution {_fmt(context['reference'])}, Griffin-Lim on the true "
                   f"log-mel {_fmt(context['griffin_lim'])}, an untrained model {_fmt(context['floor'])}.")
    if not outputs.ok:
        explanation += f" The run ended badly: {outputs.message}"
    if use.model_free:
        share *= params.model_free_share
        explanation += (f" {use.explanation} Audio that does not depend on the model keeps "
                        f"{params.model_free_share:.0%} of these points (the rubric's model_free_share).")
    elif use.verdict == "trained_in_run":
        explanation += f" {use.explanation} A run that trains its model is exempt: these points stand."
    evidence += use.evidence
    return Outcome(share, explanation, evidence, {"metric": metric, "student": student_mean, "bars": bars.to_dict(),
                                                  "model_use": use.verdict, **context})


def missing_value(untrained: float | None, bars: Bars) -> float:
    """What a clip the student did not write (or that could not be scored) counts as: the untrained model's
    score on that clip when the floor is the untrained model, else the floor bar (never more than no points)."""
    return untrained if bars.floor_source == "untrained" and untrained is not None else bars.floor


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
