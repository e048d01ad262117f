"""``grade baseline``: compute and cache the reference baseline on the held-out set, and show the quality bars
the rubric sets on it (:mod:`grader.bars`)."""
from __future__ import annotations

import argparse
import sys

from grader.commands.common import add_grading_options


def main(argv: list[str]) -> int:
    """Print each source's mean scores, then each quality item's bars; 2 for a held-out folder that cannot serve,
    1 for a rubric that is invalid or whose bars the baseline cannot meet, else 0."""
    parser = argparse.ArgumentParser(prog="grade baseline", description="Compute and cache the reference baseline "
                                     "(reference solution, untrained floor, Griffin-Lim) on the held-out set.")
    add_grading_options(parser)
    args = parser.parse_args(argv)
    from grader.heldout import HeldoutError, load_heldout
    from grader.scoring import load_baseline

    try:
        heldout = load_heldout(args.heldout, train_dir=args.train)
    except HeldoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    baseline = load_baseline(heldout, jobs=max(1, args.jobs))
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
