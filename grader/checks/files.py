"""Files present: a role of the contract (samples, checkpoints, answers...) has enough files."""
from __future__ import annotations

from grader.context import CheckContext, Outcome
from grader.rubric import Item


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``role`` (a discovery role), ``min_count`` (default 1). Share = found / min_count, at most 1."""
    role, wanted = item.params["role"], int(item.params.get("min_count", 1))
    finding = ctx.discovery.findings[role]
    files = [f for f in finding.files if (ctx.submission.work_dir / f).stat().st_size > 0]
    empty = sorted(set(finding.files) - set(files))
    evidence = [f"{f} ({(ctx.submission.work_dir / f).stat().st_size / 1e6:.2f} MB)" for f in files]
    evidence += [f"{f} is empty" for f in empty]
    if not files:
        return Outcome(0.0, f"No {role} found ({finding.how}). Hand in the files, or name them in submission.toml "
                            f"under [files].", evidence)
    share = min(1.0, len(files) / wanted)
    return Outcome(share, f"{len(files)} {role} file(s) found ({finding.how})"
                          + ("" if share == 1 else f"; {wanted} expected") + ".", evidence)
