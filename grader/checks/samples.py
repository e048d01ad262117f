"""Handed-in samples: present, decodable, not silent, and not copies of the data."""
from __future__ import annotations

from grader.artefacts import provides
from grader.context import CheckContext, Outcome
from grader.outputs import MediaRefused, copy_media
from grader.results import HandedInSample
from grader.rubric import Item
from grader.limits import MAX_SAMPLES
from reference.evaluation_unpaired import novelty, read_judged
from reference.preprocess import conform

NEEDS = ("samples.handed_in",)
SCORING = ("min_count",)


@provides("samples.handed_in", kept=list[HandedInSample])
def handed_in(ctx: CheckContext) -> list[HandedInSample]:
    """The first :data:`MAX_SAMPLES` samples discovery found, each judged on its own: one that is empty,
    unreadable or too long has a finding beside its name, and the others still count. Samples are re-encoded
    into the report (:func:`copy_media`), never copied."""
    known, index = ctx.heldout.known_clips, ctx.heldout.novelty_index()
    samples = []
    for number, name in enumerate(ctx.discovery.findings["samples"].files[:MAX_SAMPLES], start=1):
        path = ctx.submission.work_dir / name
        report, decoded, rate = read_judged(path)  # decoded once: judged, compared, re-encoded
        problems = list(report.problems)
        audio = None
        if report.read and not report.seconds:
            problems = ["0 samples: the file holds no audio"]
        elif report.read:
            if not report.nonfinite_ratio:
                match = novelty([conform(decoded, rate, path=path)], index)[0]
                if match.near_duplicate:
                    problems.append(f"a copy of {known[match.duplicate_of].path.name} from the data set "
                                    f"(correlation {match.correlation:.2f})")
            try:
                audio = copy_media(path, ctx.media_dir, f"sample-{number:02d}", ctx.out_root, (decoded, rate))
            except MediaRefused as refused:
                problems.append(f"not put in the report: {refused}")
        fatal = [p for p in problems if not p.startswith("sample rate")]
        samples.append(HandedInSample(name=name, audio=audio, valid=not fatal, findings=problems))
    return samples


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``min_count``. Share = good samples / min_count, at most 1; a copy of a data clip is not good."""
    wanted = int(item.params.get("min_count", 3))
    finding = ctx.discovery.findings["samples"]
    if not finding.files:
        return Outcome(0.0, f"No generated samples found ({finding.how}). Put them in samples/*.wav.")
    samples = ctx.need("samples.handed_in")
    good = sum(sample.valid for sample in samples)
    evidence = [f"{sample.name}: {'; '.join(sample.findings) or 'valid'}" for sample in samples]
    return Outcome(min(1.0, good / wanted), f"{good} good sample(s) of {len(samples)} handed in; {wanted} expected.",
                   evidence, {"good": good, "handed_in": len(finding.files)})
