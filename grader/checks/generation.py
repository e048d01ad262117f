"""The generation entry point runs within its limits and writes valid audio for every input.

``reconstruct`` is judged when the submission has it (one clip per held-out log-mel),
else ``sample`` (``num`` clips); the run is shared with the quality items.
"""
from __future__ import annotations

from grader.context import OUTPUT_FOLDER, CheckContext, Outcome
from grader.outputs import read_clips
from grader.rubric import Item


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``num``, ``seed`` for ``sample``. Share = valid clips / clips expected."""
    has_reconstruct = ctx.discovery.findings["reconstruct"].status != "missing"
    role = "reconstruct" if has_reconstruct or ctx.discovery.findings["sample"].status == "missing" else "sample"
    num, seed = int(item.params.get("num", 4)), int(item.params.get("seed", 0))
    entry = ctx.entry_once(role, item, {} if role == "reconstruct" else {"num": num, "seed": seed})
    if entry.out_dir is None:
        return Outcome(0.0, f"No generation entry point ran: {entry.message}")
    expected = [c.path.stem for c in ctx.heldout.clips] if role == "reconstruct" else [str(k) for k in range(num)]
    clips = read_clips(entry.out_dir.parent, OUTPUT_FOLDER, expected)
    valid = [c for c in clips if c.usable and c.validity is not None and c.validity.ok]
    evidence = [f"{c.name}: {c.problem or '; '.join(c.validity.problems)}" for c in clips
                if c not in valid][:10]
    share = len(valid) / len(expected)
    explanation = f"`{role}` wrote {len(valid)} valid clip(s) of {len(expected)} expected."
    if not entry.ok:
        explanation += f" The run ended badly: {entry.message}"
    return Outcome(share, explanation, evidence, {"role": role, "valid": len(valid), "expected": len(expected)})
