"""The generation entry point runs within its limits and writes valid audio for every input.

``reconstruct`` is judged when the submission has it (one clip per held-out log-mel),
else ``sample`` (``num`` clips); the run is shared with the quality items.
"""
from __future__ import annotations

from grader.context import CheckContext, Outcome
from grader.rubric import Item

NEEDS = ("reconstruct.outputs", "sample.outputs")
SCORING = ()


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``num``, ``seed`` for ``sample``. Share = valid clips / clips expected."""
    has_reconstruct = ctx.discovery.findings["reconstruct"].status != "missing"
    role = "reconstruct" if has_reconstruct or ctx.discovery.findings["sample"].status == "missing" else "sample"
    num = int(item.params.get("num", 4))
    outputs = ctx.need(f"{role}.outputs")
    if not outputs.ran:
        return Outcome(0.0, f"No generation entry point ran: {outputs.message}")
    expected = ctx.entry_names("reconstruct") if role == "reconstruct" else [str(k) for k in range(num)]
    clips = outputs.of(expected)
    valid = [c for c in clips if c.valid]
    evidence = [f"{c.name}: {c.finding}" for c in clips if not c.valid][:10]
    share = len(valid) / len(expected)
    explanation = f"`{role}` wrote {len(valid)} valid clip(s) of {len(expected)} expected."
    if not outputs.ok:
        explanation += f" The run ended badly: {outputs.message}"
    return Outcome(share, explanation, evidence, {"role": role, "valid": len(valid), "expected": len(expected)})
