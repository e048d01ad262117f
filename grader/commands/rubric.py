"""``grade rubric check FILE``: validate a rubric (:func:`grader.rubric.load_rubric`) and say what it holds."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """1 with every problem of an invalid rubric printed to stderr, else 0 with its counts."""
    parser = argparse.ArgumentParser(prog="grade rubric", description="Rubric tools.")
    parser.add_argument("action", choices=["check"], help="check: validate a rubric file")
    parser.add_argument("file", type=Path, help="the rubric TOML")
    args = parser.parse_args(argv)
    from grader.rubric import RubricError, load_rubric

    try:
        rubric = load_rubric(args.file)
    except RubricError as error:
        print(error, file=sys.stderr)
        return 1
    quiz = len(rubric.quiz.questions) if rubric.quiz else 0
    print(f"{args.file}: valid: {len(rubric.items)} items and {quiz} quiz questions, "
          f"{rubric.rubric.total_points:g} points")
    return 0
