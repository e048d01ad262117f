"""Files present: a role of the contract (samples, checkpoints, answers...) has enough files."""
from __future__ import annotations

from grader.artefacts import provides
from grader.context import CheckContext, Outcome
from grader.contract import ROLES
from grader.rubric import Item

NEEDS = ("student.file_sizes",)
SCORING = ("role", "min_count")


@provides("student.file_sizes", kept=dict[str, int])
def file_sizes(ctx: CheckContext) -> dict[str, int]:
    """Bytes of each file discovery gave a role of files (relative path -> bytes)."""
    work_dir = ctx.submission.work_dir
    return {name: (work_dir / name).stat().st_size for role in ROLES for name in ctx.discovery.findings[role].files}


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``role`` (a discovery role), ``min_count`` (default 1). Share = found / min_count, at most 1."""
    role, wanted = item.params["role"], int(item.params.get("min_count", 1))
    finding = ctx.discovery.findings[role]
    sizes = ctx.need("student.file_sizes")
    files = [f for f in finding.files if sizes[f] > 0]
    empty = sorted(set(finding.files) - set(files))
    evidence = [f"{f} ({sizes[f] / 1e6:.2f} MB)" for f in files]
    evidence += [f"{f} is empty" for f in empty]
    if not files:
        return Outcome(0.0, f"No {role} found ({finding.how}). Hand in the files, or name them in submission.toml "
                            f"under [files].", evidence)
    share = min(1.0, len(files) / wanted)
    return Outcome(share, f"{len(files)} {role} file(s) found ({finding.how})"
                          + ("" if share == 1 else f"; {wanted} expected") + ".", evidence)
