"""``grade check PATH``: a student's self-check before handing in: the visible items, on the kit's public clips,
with the student's own report page."""
from __future__ import annotations

import argparse
from pathlib import Path

from grader.commands.common import grading_setup, print_summary


def main(argv: list[str]) -> int:
    """Grade the one submission at ``PATH`` as a student sees it; 2 when grading cannot start, else 0."""
    parser = argparse.ArgumentParser(prog="grade check", description="Check your own submission before you hand "
                                     "it in: the visible items, on the public clips of the student kit.")
    parser.add_argument("path", type=Path, help="your zip, or your submission's folder")
    parser.add_argument("--out", type=Path, default=Path("grade-check"), help="output folder (default ./grade-check)")
    parser.add_argument("--rubric", type=Path, help="the kit's public rubric (default: the bundled one)")
    parser.add_argument("--data", type=Path, help="the kit's public clips (default: the embedded data set)")
    args = parser.parse_args(argv)
    from grader.heldout import DEFAULT_DATA
    from grader.rubric import DEFAULT_RUBRIC

    args.heldout, args.train, args.jobs = args.data or DEFAULT_DATA, None, 1
    args.rubric = args.rubric or DEFAULT_RUBRIC
    setup = grading_setup(args, args.out, student_mode=True, allow_unsandboxed=True, split="test")
    if setup is None:
        return 2
    from grader.batch_entries import BatchEntry
    from grader.pipeline import grade_submission

    from grader.report import render_all, student_audience

    result = grade_submission(args.path, setup)
    print_summary([BatchEntry.of(result, reused=False)], setup.out_dir)
    render_all(setup.out_dir, setup.rubric, audience=student_audience(setup.rubric))
    print(f"your report: {setup.out_dir / 'pages' / (result.submission_id + '.html')}")
    return 0
