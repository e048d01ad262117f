"""``grade adjust``: change an item's points by hand, kept across regrades (:mod:`grader.term.adjustments`).

    grade adjust OUT SUBMISSION ITEM (--points X | --delta X) --comment "why" [--by NAME] [--rubric FILE]
    grade adjust OUT --from FILE.csv [--by NAME] [--rubric FILE]     columns submission,item,points,delta,comment,by
    grade adjust OUT --list

ITEM ``late`` is the late penalty: ``--points 0`` removes it (an extension). The adjustment is applied when pages
and exports are rendered next (``grade report OUT``).
"""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def main(argv: list[str]) -> int:
    """Store or list adjustments; 2 when an argument, the CSV or a submission or item named is wrong, else 0."""
    from grader.rubric import DEFAULT_RUBRIC, RubricError, load_rubric
    from grader.term.adjustments import LATE, AdjustmentError, Request, history, read_requests, record

    parser = argparse.ArgumentParser(prog="grade adjust", description="Change an item's points by hand (or, with "
                                     f"ITEM {LATE}, the late penalty's); kept in OUT/gradebook.sqlite and applied on "
                                     "every render, until the rubric's item or the submission's content changes.")
    parser.add_argument("out", type=Path, help="a grading's output folder (it holds results/)")
    parser.add_argument("submission", nargs="?", help="the submission id (its result is OUT/results/ID.json)")
    parser.add_argument("item", nargs="?", help=f"the rubric item's id, or {LATE} for the late penalty")
    change = parser.add_mutually_exclusive_group()
    change.add_argument("--points", type=float, help="the item's new points (clipped to 0..its maximum)")
    change.add_argument("--delta", type=float, help="points added to the automatic points (negative: taken off)")
    parser.add_argument("--comment", default="", help="why: shown on the submission's page")
    parser.add_argument("--by", default=None, help="who adjusts (default: the login name)")
    parser.add_argument("--rubric", type=Path, default=None, help="the rubric graded with (default: the bundled one)")
    parser.add_argument("--from", dest="from_csv", type=Path, default=None, metavar="FILE.csv",
                        help="adjustments from a CSV with columns submission,item,points,delta,comment,by; all "
                        "stored or, when any row is bad, none")
    parser.add_argument("--list", action="store_true", help="print every adjustment stored, oldest first")
    args = parser.parse_args(argv)

    if not (args.out / "results").is_dir():
        print(f"error: {args.out / 'results'}: no results folder; grade into {args.out} first", file=sys.stderr)
        return 2
    if args.list:
        made = history(args.out)
        for adjustment in made:
            print(adjustment.words())
        if not made:
            print(f"no adjustments in {args.out}")
        return 0
    by = args.by or _user()
    if args.from_csv is not None:
        if args.submission or args.item or args.points is not None or args.delta is not None:
            parser.error("--from takes no SUBMISSION, ITEM, --points or --delta: the CSV names them")
    elif not (args.submission and args.item):
        parser.error("name a SUBMISSION and an ITEM (or give --from FILE.csv, or --list)")
    try:
        rubric = load_rubric(args.rubric or DEFAULT_RUBRIC)
    except RubricError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        requests = (read_requests(args.from_csv, by) if args.from_csv is not None else
                    [Request(submission=args.submission, item=args.item, comment=args.comment, by=by,
                             points=args.points, delta=args.delta)])
        stored = record(args.out, requests, rubric)
    except AdjustmentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for adjustment in stored:
        print(f"stored: {adjustment.words()}")
    print(f"applied on the next render: grade report {args.out}")
    return 0
