"""Quality of conditional generation: ``reconstruct`` on the held-out log-mels, scored against the truth.

Points run from the floor (the untrained reference model, no points) to the reference
solution (full points) on the rubric's metric; a clip the student did not write counts
at the floor's value. Griffin-Lim on the true log-mel is shown beside, as context.
"""
from __future__ import annotations

from grader.context import OUTPUT_FOLDER, CheckContext, Outcome
from grader.outputs import MediaRefused, copy_media, read_clips
from grader.rubric import Item
from grader.scoring import HIGHER_IS_BETTER, SOURCES, points_fraction
from reference.evaluation import INTRUSIVE_METRICS, aggregate, score_pairs

LISTEN_CLIPS = 3
"""Held-out clips the report offers to listen to."""
LISTEN_METRICS = ("pesq_wb", "stoi", "snr", "lsd")
"""Scores shown beside each of those clips."""


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``metric`` (default pesq_wb), ``curve`` (linear or sqrt), ``jobs`` (scoring processes)."""
    metric = item.params.get("metric", "pesq_wb")
    entry = ctx.entry_once("reconstruct", item, {})
    if entry.out_dir is None:
        return Outcome(0.0, f"Conditional generation could not be scored: {entry.message}")
    names = [clip.path.stem for clip in ctx.heldout.clips]
    clips = read_clips(entry.out_dir.parent, OUTPUT_FOLDER, names)
    usable = [c for c in clips if c.usable]
    rows = score_pairs([(ctx.heldout.truth(c.name), c.path) for c in usable], names=[c.name for c in usable],
                       jobs=ctx.processes(int(item.params.get("jobs", 2))))
    baseline = ctx.baseline
    scored = {row.name: row.to_dict() for row in rows}
    floor_rows = {row["name"]: row for row in baseline.rows["floor"]}
    student_values = [scored.get(name, {}).get(metric) for name in names]
    filled = [value if value is not None else floor_rows[name][metric] for name, value in zip(names, student_values)]
    filled = [v for v in filled if v is not None]
    student_mean = sum(filled) / len(filled) if filled else None
    ctx.clip_metrics = [scored.get(c.name, {"name": c.name, "reasons": {"all": c.problem}}) for c in clips]
    ctx.comparison = {"student": {m: s["mean"] for m, s in aggregate(rows, INTRUSIVE_METRICS).items()},
                      **{source: baseline.means[source] for source in SOURCES}}
    unplayable = _listen(ctx, clips)
    floor, reference = baseline.means["floor"].get(metric), baseline.means["reference"].get(metric)
    share = points_fraction(student_mean, floor, reference, HIGHER_IS_BETTER[metric], item.params.get("curve", "linear"))
    missing = [c for c in clips if not c.usable]
    evidence = [f"{c.name}: {c.problem}" for c in missing[:6]] + unplayable
    evidence += [f"{row.name}: {metric} {row.values.get(metric)}" for row in rows[:6]]
    gl = baseline.means["griffin_lim"].get(metric)
    explanation = (f"{metric} {_fmt(student_mean)} over {len(names)} held-out clips (missing clips count at the floor); "
                   f"untrained floor {_fmt(floor)}, reference solution {_fmt(reference)}; Griffin-Lim on the true "
                   f"log-mel reaches {_fmt(gl)} (context). {len(usable)} of {len(names)} clips written and usable.")
    if not entry.ok:
        explanation += f" The run ended badly: {entry.message}"
    return Outcome(share, explanation, evidence, {"metric": metric, "student": student_mean, "floor": floor,
                                                  "reference": reference, "griffin_lim": gl})


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
