"""``grade similarity OUT``: the pairs of a graded class's submissions that share code, audio or a checkpoint,
written to ``OUT/similarity.csv`` and ``OUT/similarity.html`` (linked from the class page). ``grade`` runs it at
the end of every batch of two or more submissions."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.rubric import Rubric


def main(argv: list[str]) -> int:
    """Compare the class graded into OUT; 2 when OUT holds no graded class or an option is wrong, else 0."""
    from grader.rubric import DEFAULT_RUBRIC

    parser = argparse.ArgumentParser(
        prog="grade similarity", description="Find pairs of submissions that share code (renamed, reordered or "
        "recommented), audio (the same clip after resampling, gain or trimming) or a checkpoint's tensors (under "
        "other names or in another container), for the instructor to review; no grade changes. Writes "
        "OUT/similarity.csv (a,b,kind,score,evidence) and OUT/similarity.html.")
    parser.add_argument("out", type=Path, help="the output folder a class was graded into (grade ... --out OUT)")
    parser.add_argument("--against", type=Path, nargs="+", default=[], metavar="DIR",
                        help="earlier classes to compare with: their output folders, or folders of their zips")
    parser.add_argument("--starter", type=Path, action="append", default=[], metavar="DIR",
                        help="code every student was given (.py files and notebooks), left out of code pairs; "
                        "adds to the rubric's [similarity] starter")
    parser.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC,
                        help="the rubric whose [similarity] section applies (default: the bundled one)")
    args = parser.parse_args(argv)
    from grader.rubric import RubricError, load_rubric

    if not (args.out / "results").is_dir():
        print(f"error: {args.out} holds no graded class (no results folder); grade it first: "
              f"grade SUBMISSION... --out {args.out}", file=sys.stderr)
        return 2
    missing = [folder for folder in (*args.against, *args.starter) if not folder.is_dir()]
    if missing:
        print(f"error: {missing[0]} is not a folder", file=sys.stderr)
        return 2
    try:
        rubric = load_rubric(args.rubric)
    except RubricError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    compare_and_write(args.out, rubric, against=args.against, starter=args.starter)
    from grader.report import render_all

    render_all(args.out, rubric)
    return 0


def compare_and_write(out_dir: Path, rubric: Rubric, *, against: list[Path] = (), starter: list[Path] = ()) -> None:
    """Compare the class in ``out_dir``, write the CSV and the pages, and say in a line what was found."""
    from grader.report.similarity import write_similarity_pages
    from grader.similarity.classwide import compare_class, write_csv

    started = time.perf_counter()
    print("comparing the class's code, audio and checkpoints ...", file=sys.stderr)
    comparison = compare_class(out_dir, against=against, starter=[*rubric.starter_folders(), *starter],
                               report_from=rubric.similarity.report_from,
                               workers=max(1, min(4, len(os.sched_getaffinity(0)))))
    write_csv(out_dir, comparison)
    page = write_similarity_pages(comparison, out_dir, rubric.similarity.report_from)
    kinds = {kind: sum(pair.kind == kind for pair in comparison.pairs) for kind in ("code", "audio", "checkpoint")}
    print(f"similarity: {len(comparison.pairs)} pair(s) to review ({', '.join(f'{n} {k}' for k, n in kinds.items())}) "
          f"among {comparison.submissions} submission(s) in {time.perf_counter() - started:.1f} s: {page}",
          file=sys.stderr)
    for problem in comparison.problems:
        print(f"similarity: {problem}", file=sys.stderr)
