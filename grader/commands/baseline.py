"""``grade baseline``: compute and cache the reference baseline on the held-out set, and show the quality bars
the rubric sets on it (:mod:`grader.bars`). It says how long preparing the held-out set and computing the baseline
took, or that they were cached (``make demo`` prints it)."""
from __future__ import annotations

import argparse
import sys
import time

from grader.commands.common import add_grading_options


def main(argv: list[str]) -> int:
    """Print the time the held-out set and the baseline took, each source's mean scores, then each quality item's
    bars; 2 for a held-out folder that cannot serve, 1 for a rubric that is invalid or whose bars the baseline cannot
    meet, else 0."""
    parser = argparse.ArgumentParser(prog="grade baseline", description="Compute and cache the reference baseline "
                                     "(reference solution, untrained floor, Griffin-Lim) on the held-out set.")
    add_grading_options(parser)
    args = parser.parse_args(argv)
    from grader.heldout import HeldoutError, load_heldout
    from grader.scoring import CACHE_ROOT, baseline_key, load_baseline

    started, started_wall = time.perf_counter(), time.time()
    try:
        heldout = load_heldout(args.heldout, train_dir=args.train)
    except HeldoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    prepared_now = (heldout.folder / "ready").stat().st_mtime >= started_wall  # its preparation's last file
    print(_took("held-out set", "prepared" if prepared_now else None, time.perf_counter() - started), flush=True)
    started = time.perf_counter()
    cached = (CACHE_ROOT / baseline_key(heldout) / "baseline.json").is_file()
    baseline = load_baseline(heldout, jobs=max(1, args.jobs))
    print(_took("baseline", None if cached else "computed", time.perf_counter() - started), flush=True)
    for source, means in baseline.means.items():
        print(f"{source:<12} " + "  ".join(f"{m} {v:.3f}" for m, v in means.items() if v is not None))
    from grader.bars import BarsError, check_bars
    from grader.rubric import RubricError, load_rubric

    try:
        bars = check_bars(load_rubric(args.rubric).items, baseline.means)
    except (RubricError, BarsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for item_id, item_bars in bars.items():
        print(f"{item_id}: {item_bars.summary()}")
    return 0


def _took(what: str, done: str | None, seconds: float) -> str:
    """``"held-out set prepared in 12.3 s"``, or with ``done`` None (it was read from the cache)
    ``"held-out set: cached (0.4 s)"``."""
    return f"{what}: cached ({seconds:.1f} s)" if done is None else f"{what} {done} in {seconds:.1f} s"
