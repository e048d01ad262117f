"""Quality of conditional generation: ``reconstruct`` on the held-out log-mels, scored against the truth.

Points run between the item's two bars on its metric (:mod:`grader.bars`: by default
from an untrained model, no points, to the reference solution, full points); a clip the
student did not write counts at the floor's value. The reference solution and Griffin-Lim
on the true log-mel are shown beside, whatever the bars. Audio that does not depend on the
submission's model (:mod:`grader.model_use`: Griffin-Lim alone is a vocoder, not a model)
keeps only the item's ``model_free_share`` of its points.
"""
from __future__ import annotations

from grader.bars import Bars, QualityParams, resolve
from grader.context import OUTPUT_FOLDER, CheckContext, Outcome
from grader.model_use import model_use
from grader.outputs import MediaRefused, copy_media, read_clips
from grader.rubric import Item
from grader.scoring import SOURCES, score_heldout
from reference.evaluation import INTRUSIVE_METRICS, SPEECH_METRICS, aggregate

LISTEN_CLIPS = 3
"""Held-out clips the report offers to listen to."""
LISTEN_METRICS = ("pesq_wb", "stoi", "snr", "lsd")
"""Scores shown beside each of those clips."""


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: :class:`grader.bars.QualityParams` (metric, curve, full_at, floor_at, model_free_share, jobs)."""
    params = QualityParams.model_validate(item.params)
    metric = params.metric
    bars = resolve(params, ctx.baseline.means, item.id)
    entry = ctx.entry_once("reconstruct", item, {})
    if entry.out_dir is None:
        return Outcome(0.0, f"Conditional generation could not be scored: {entry.message}")
    names = [clip.path.stem for clip in ctx.heldout.clips]
    clips = read_clips(entry.out_dir.parent, OUTPUT_FOLDER, names)
    usable = [c for c in clips if c.usable]
    rows = score_heldout(ctx.heldout, {c.name: c.path for c in usable}, ctx.processes(params.jobs))
    baseline = ctx.baseline
    scored = {row.name: row.to_dict() for row in rows}
    floor_rows = {row["name"]: row for row in baseline.rows["floor"]}
    counted = [clip.path.stem for clip in ctx.heldout.clips if clip.is_speech or metric not in SPEECH_METRICS]
    filled = [scored.get(name, {}).get(metric) for name in counted]
    filled = [value if value is not None else missing_value(floor_rows[name].get(metric), bars)
              for name, value in zip(counted, filled)]
    student_mean = sum(filled) / len(filled) if filled else None
    ctx.clip_metrics = [scored.get(c.name, {"name": c.name, "reasons": {"all": c.problem}}) for c in clips]
    ctx.comparison = {"student": {m: s["mean"] for m, s in aggregate(rows, INTRUSIVE_METRICS).items()},
                      **{source: baseline.means[source] for source in SOURCES}}
    unplayable = _listen(ctx, clips)
    share = bars.fraction(student_mean)
    missing = [c for c in clips if not c.usable]
    evidence = [f"{c.name}: {c.problem}" for c in missing[:6]] + unplayable
    evidence += [f"{row.name}: {metric} {row.values.get(metric)}" for row in rows[:6]]
    context = {source: baseline.means[source].get(metric) for source in SOURCES}
    explanation = (f"{bars.describe(student_mean)} Mean over the {len(counted)} held-out clips {metric} applies to "
                   f"(missing clips count at the floor); {len(usable)} of {len(names)} clips written and usable. "
                   f"For comparison: the reference solution {_fmt(context['reference'])}, Griffin-Lim on the true "
                   f"log-mel {_fmt(context['griffin_lim'])}, an untrained model {_fmt(context['floor'])}.")
    if not entry.ok:
        explanation += f" The run ended badly: {entry.message}"
    use = model_use(ctx, item)
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


def _listen(ctx: CheckContext, clips) -> list[str]:
    """Put a few clips' truth, reference, Griffin-Lim and student audio in the report's media (re-encoded).

    Returns why a student clip is not there although it was written and usable (e.g. it holds 0 samples).
    """
    from grader.results import ListenClip

    by_name = {c.name: c for c in clips}
    unplayable = []
    for clip in ctx.heldout.clips[:LISTEN_CLIPS]:
        name = clip.path.stem
        student = by_name.get(name)
        listen = ListenClip(name=name, truth=copy_media(clip.path, ctx.media_dir, f"{name}.truth", ctx.out_root))
        for source in ("reference", "griffin_lim"):
            setattr(listen, source, copy_media(ctx.baseline.audio(source, name), ctx.media_dir,
                                               f"{name}.{source}", ctx.out_root))
        if student is not None and student.usable:
            try:
                listen.student = copy_media(student.path, ctx.media_dir, f"{name}.student", ctx.out_root)
            except MediaRefused as refused:
                unplayable.append(f"{name}: not put in the report: {refused}")
        rows = {"student": ctx.clip_metrics, **{source: ctx.baseline.rows[source] for source in SOURCES}}
        for source, source_rows in rows.items():
            row = next((r for r in source_rows if r.get("name") == name), None)
            if row is not None:
                listen.metrics[source] = {m: row.get(m) for m in LISTEN_METRICS}
        ctx.listen.append(listen)
    return unplayable
