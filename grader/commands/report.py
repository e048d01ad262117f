"""``grade report OUT``: re-render every page and export of a grading's output folder from its results
(:func:`grader.report.render_all`; nothing is re-graded)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Render ``OUT`` for the audience asked; 1 when it holds no results folder, else 0."""
    parser = argparse.ArgumentParser(prog="grade report", description="Re-render every page and export of OUT "
                                     "from its results (no re-grading).")
    parser.add_argument("out", type=Path, help="a grading's output folder (it holds results/)")
    parser.add_argument("--rubric", type=Path, default=None,
                        help="the rubric graded with (default: the bundled one): the quiz's texts, answer key "
                        "and visibility")
    parser.add_argument("--student", action="store_true", help="pages as a student may see them now")
    parser.add_argument("--after-due-date", action="store_true",
                        help="with --student: the due date has passed, so what the rubric shows after it shows too")
    parser.add_argument("--published", action="store_true",
                        help="with --student: the grades are published, so what the rubric shows once published shows too")
    parser.add_argument("--embed", action="store_true", help="audio and pictures inside each page")
    args = parser.parse_args(argv)
    from grader.report import INSTRUCTOR, ReportError, render_all, student_audience
    from grader.rubric import DEFAULT_RUBRIC, load_rubric

    rubric = load_rubric(args.rubric or DEFAULT_RUBRIC)
    audience = (student_audience(rubric, due_date_passed=args.after_due_date, published=args.published)
                if args.student else INSTRUCTOR)
    try:
        index = render_all(args.out, rubric, audience=audience, embed_media=args.embed)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"class page: {index}")
    return 0
