"""Unconditional samples: ``sample`` runs, and its clips are valid, diverse and not copies of training clips."""
from __future__ import annotations

from grader.context import OUTPUT_FOLDER, CheckContext, Outcome
from grader.outputs import read_clips
from grader.rubric import Item
from reference.evaluation import MetricUnavailable, dnsmos
from reference.evaluation_unpaired import diversity, frechet_feature_distance, novelty
from reference.preprocess import load_audio


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``num``, ``seed``, ``diversity_share``, ``dnsmos``. Share: half for valid clips, a
    quarter for novelty, a quarter for diversity: full at or above ``diversity_share`` (default 0.5)
    of the held-out clips' own diversity, proportional below.

    Reported beside, without points: the Frechet distance between the samples' and the held-out
    clips' MFCC statistics, and, with ``dnsmos = true`` (about 0.4 s a clip), DNSMOS overall quality.
    """
    num, seed = int(item.params.get("num", 4)), int(item.params.get("seed", 0))
    if ctx.discovery.findings["sample"].status == "missing":
        return Outcome(0.0, "No `sample` entry point (unconditional generation) found: "
                            f"{ctx.discovery.findings['sample'].how}")
    entry = ctx.entry_once("sample", item, {"num": num, "seed": seed})
    if entry.out_dir is None:
        return Outcome(0.0, entry.message)
    clips = read_clips(entry.out_dir.parent, OUTPUT_FOLDER, [str(k) for k in range(num)])
    valid = [c for c in clips if c.usable and c.validity.ok]
    if not valid:
        return Outcome(0.0, f"`sample` wrote no valid clip ({entry.message}).",
                       [f"{c.name}: {c.problem or '; '.join(c.validity.problems)}" for c in clips])
    paths = [c.path for c in valid]
    known = ctx.heldout.known_clips
    copies = [(c, n) for c, n in zip(valid, novelty(paths, ctx.heldout.novelty_index())) if n.near_duplicate]
    spread = diversity(paths) if len(paths) > 1 else 0.0
    truth_spread = ctx.heldout.diversity
    target = float(item.params.get("diversity_share", 0.5)) * truth_spread
    metrics = {"frechet_mfcc": frechet_feature_distance(paths, [c.path for c in ctx.heldout.clips])}
    if item.params.get("dnsmos", False):
        scores = []
        for path in paths:
            try:
                scores.append(dnsmos(load_audio(path))["ovrl_mos"])
            except MetricUnavailable:
                continue
        metrics["dnsmos_ovrl"] = sum(scores) / len(scores) if scores else None
    share = 0.5 * len(valid) / num + 0.25 * (not copies) + 0.25 * min(1.0, spread / target)
    evidence = [f"{c.name}: copies {known[n.duplicate_of].split} clip {known[n.duplicate_of].path.name} "
                f"(correlation {n.correlation:.2f})" for c, n in copies]
    return Outcome(share, f"{len(valid)} of {num} samples valid; {len(copies)} copy a data set clip; diversity "
                          f"{spread:.2f} against {truth_spread:.2f} among the held-out clips; Frechet MFCC distance to the held-out "
                          f"clips {metrics['frechet_mfcc']:.0f} (context).", evidence,
                   {"valid": len(valid), "copies": len(copies), "diversity": spread, "heldout_diversity": truth_spread,
                    **metrics})
