"""Handed-in samples: present, decodable, not silent, and not copies of the data."""
from __future__ import annotations

import re

from grader.context import CheckContext, Outcome
from grader.outputs import copy_media
from grader.results import HandedInSample
from grader.rubric import Item
from reference.evaluation_unpaired import novelty, validity

MAX_SAMPLES = 12
"""Samples examined (and copied for the report) at most."""


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``min_count``. Share = good samples / min_count, at most 1; a copy of a data clip is not good."""
    wanted = int(item.params.get("min_count", 3))
    finding = ctx.discovery.findings["samples"]
    files = finding.files[:MAX_SAMPLES]
    if not files:
        return Outcome(0.0, f"No generated samples found ({finding.how}). Put them in samples/*.wav.")
    known, index = ctx.heldout.known_clips, ctx.heldout.novelty_index()
    good, evidence = 0, []
    for name in files:
        path = ctx.submission.work_dir / name
        report = validity(path)
        problems = list(report.problems)
        if report.read and not report.nonfinite_ratio:
            match = novelty([path], index)[0]
            if match.near_duplicate:
                problems.append(f"a copy of {known[match.duplicate_of].path.name} from the data set "
                                f"(correlation {match.correlation:.2f})")
        fatal = [p for p in problems if not p.startswith("sample rate")]
        good += not fatal
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
        audio = copy_media(path, ctx.media_dir, f"sample-{safe}", ctx.out_root) if report.read else None
        ctx.samples.append(HandedInSample(name=name, audio=audio, valid=not fatal, findings=problems))
        evidence.append(f"{name}: {'; '.join(problems) or 'valid'}")
    return Outcome(min(1.0, good / wanted), f"{good} good sample(s) of {len(files)} handed in; {wanted} expected.",
                   evidence, {"good": good, "handed_in": len(finding.files)})
