"""Unconditional samples: ``sample`` runs, and its clips are valid, diverse and not copies of training clips."""
from __future__ import annotations

from dataclasses import dataclass

from grader.artefacts import provides
from grader.context import CheckContext, Outcome
from grader.outputs import OutputClip
from grader.rubric import Item
from reference.evaluation import MetricUnavailable, dnsmos
from reference.evaluation_unpaired import diversity, frechet_feature_distance, novelty

NEEDS = ("sample.outputs", "sample.measures", "sample.dnsmos")
SCORING = ("diversity_share",)


@dataclass(frozen=True)
class SampleMeasures:
    """What the ``sample`` entry's valid clips are like: ``copies``, one line per clip that copies a data set clip;
    ``diversity`` (:func:`~reference.evaluation_unpaired.diversity`, 0 for one clip); ``frechet_mfcc``, the
    Frechet distance between their MFCC statistics and the held-out clips'."""

    copies: list[str]
    diversity: float
    frechet_mfcc: float


def _valid_clips(ctx: CheckContext) -> list[OutputClip]:
    """The ``sample`` entry's valid clips (of those asked of it)."""
    clips = ctx.need("sample.run").clips(ctx.entry_names("sample"))
    return [clip for clip in clips if clip.usable and clip.validity.ok]


@provides("sample.measures", needs=("sample.run",), kept=SampleMeasures)
def measures(ctx: CheckContext) -> SampleMeasures:
    """Novelty against the data set's clips, diversity, and the Frechet MFCC distance of the valid samples."""
    valid = _valid_clips(ctx)
    waves = [clip.audio for clip in valid]
    known = ctx.heldout.known_clips
    copies = [f"{clip.name}: copies {known[n.duplicate_of].split} clip {known[n.duplicate_of].path.name} "
              f"(correlation {n.correlation:.2f})"
              for clip, n in zip(valid, novelty(waves, ctx.heldout.novelty_index())) if n.near_duplicate]
    return SampleMeasures(copies, diversity(waves) if len(waves) > 1 else 0.0,
                          frechet_feature_distance(waves, [c.path for c in ctx.heldout.clips]))


@provides("sample.dnsmos", needs=("sample.run",), kept=float | None)
def mean_dnsmos(ctx: CheckContext) -> float | None:
    """DNSMOS overall quality of the valid samples, averaged (about 0.4 s a clip); None where none is scored."""
    scores = []
    for clip in _valid_clips(ctx):
        try:
            scores.append(dnsmos(clip.wave)["ovrl_mos"])
        except MetricUnavailable:
            continue
    return sum(scores) / len(scores) if scores else None


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``num``, ``seed``, ``diversity_share``, ``dnsmos``. Share: half for valid clips, a
    quarter for novelty, a quarter for diversity: full at or above ``diversity_share`` (default 0.5)
    of the held-out clips' own diversity, proportional below.

    Reported beside, without points: the Frechet distance between the samples' and the held-out
    clips' MFCC statistics, and, with ``dnsmos = true`` (about 0.4 s a clip), DNSMOS overall quality.
    """
    num = int(item.params.get("num", 4))
    if ctx.discovery.findings["sample"].status == "missing":
        return Outcome(0.0, "No `sample` entry point (unconditional generation) found: "
                            f"{ctx.discovery.findings['sample'].how}")
    outputs = ctx.need("sample.outputs")
    if not outputs.ran:
        return Outcome(0.0, outputs.message)
    clips = outputs.of([str(k) for k in range(num)])
    valid = [c for c in clips if c.valid]
    if not valid:
        return Outcome(0.0, f"`sample` wrote no valid clip ({outputs.message}).",
                       [f"{c.name}: {c.finding}" for c in clips])
    measured = ctx.need("sample.measures")
    truth_spread = ctx.heldout.diversity
    target = float(item.params.get("diversity_share", 0.5)) * truth_spread
    metrics = {"frechet_mfcc": measured.frechet_mfcc}
    if item.params.get("dnsmos", False):
        metrics["dnsmos_ovrl"] = ctx.need("sample.dnsmos")
    share = 0.5 * len(valid) / num + 0.25 * (not measured.copies) + 0.25 * min(1.0, measured.diversity / target)
    return Outcome(share, f"{len(valid)} of {num} samples valid; {len(measured.copies)} copy a data set clip; "
                          f"diversity {measured.diversity:.2f} against {truth_spread:.2f} among the held-out clips; "
                          f"Frechet MFCC distance to the held-out clips {metrics['frechet_mfcc']:.0f} (context).",
                   measured.copies, {"valid": len(valid), "copies": len(measured.copies),
                                     "diversity": measured.diversity, "heldout_diversity": truth_spread, **metrics})
