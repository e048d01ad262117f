"""``grade listen``: listening tests of a graded class's audio, rated blind, scored with confidence intervals.

    grade listen make OUT [--kind mushra|mos] [--raters N] [--per-rater N] [--peers] [--closes WHEN]
    grade listen serve OUT [--host 127.0.0.1] [--port 8000]
    grade listen export OUT --to DIR        the test as static pages, for raters without the server
    grade listen import OUT FILE...         ratings the static pages downloaded
    grade listen results OUT [--rubric FILE]

The test, its stimuli and its ratings live in ``OUT/listening/`` (:mod:`grader.listening.model`); the scores in
``OUT/listening.csv``, drawn on the class page and each submission's page.
"""
from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run one ``grade listen`` verb; 2 when OUT or an option is wrong, else 0."""
    from grader.rubric import DEFAULT_RUBRIC

    parser = argparse.ArgumentParser(
        prog="grade listen", description="Listening tests of a graded class's audio: MUSHRA (ITU-R BS.1534-3) for "
        "the reconstructions of held-out clips, MOS (ITU-T P.800 ACR, with P.808's trapping items) for unconditional "
        "samples; rated blind in a browser, scored with 95%% confidence intervals.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    make = verbs.add_parser("make", help="build a test from the class graded into OUT",
                            description="Build a blind listening test from the class graded into OUT: its stimuli "
                            "and each rater's trials, in OUT/listening/; the raters' links in "
                            "OUT/listening/links.csv.")
    make.add_argument("out", type=Path, help="the output folder a class was graded into")
    make.add_argument("--kind", choices=("mushra", "mos"), default="mushra",
                      help="mushra: reconstructions of held-out clips against the hidden reference, an anchor, the "
                      "reference solution and Griffin-Lim; mos: handed-in samples rated 1-5 (default: mushra)")
    make.add_argument("--raters", type=int, default=None, metavar="N",
                      help="how many raters (default: the fewest that give every submission its ratings)")
    make.add_argument("--per-rater", type=int, default=None, metavar="N", help="trials one rater rates at most")
    make.add_argument("--peers", action="store_true",
                      help="the students rate each other's audio, never their own: refused before the rubric's "
                      "[term] due date, since it plays the held-out clips to students")
    make.add_argument("--closes", type=datetime.fromisoformat, default=None, metavar="WHEN",
                      help="ISO 8601 with a UTC offset (2026-12-11T17:00:00+00:00): ratings after it are refused")
    make.add_argument("--base-url", default="http://127.0.0.1:8000", metavar="URL",
                      help="where `grade listen serve` will be reached, for the links (default: %(default)s)")
    make.add_argument("--replace", action="store_true", help="replace a test that already has ratings")
    make.add_argument("--seed", type=int, default=None, help="seed of the raters' orders (default: random)")
    _rubric_option(make, DEFAULT_RUBRIC)

    serve = verbs.add_parser("serve", help="serve the test to raters",
                             description="Serve OUT's listening test: each rater opens their link from "
                             "OUT/listening/links.csv; ratings are kept in OUT/listening/ratings.sqlite.")
    serve.add_argument("out", type=Path)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 for a network)")
    serve.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")

    export = verbs.add_parser("export", help="the test as static pages, one folder per rater",
                              description="Write the test as static pages (no server: a rater opens index.html); "
                              "each folder downloads its rater's ratings as a file for `grade listen import`.")
    export.add_argument("out", type=Path)
    export.add_argument("--to", type=Path, required=True, metavar="DIR", help="folder to write (one folder per rater)")

    import_ = verbs.add_parser("import", help="ratings downloaded by the static pages",
                               description="Store the ratings files the static pages downloaded.")
    import_.add_argument("out", type=Path)
    import_.add_argument("files", type=Path, nargs="+", metavar="FILE")

    results = verbs.add_parser("results", help="screen raters, score, write OUT/listening.csv and the pages",
                               description="Screen the raters (BS.1534-3: the hidden reference below 90 in more "
                               "than 15%% of trials; P.808: a trapping item answered otherwise), score each "
                               "submission and system with a 95%% confidence interval, write OUT/listening.csv, "
                               "apply a rubric `listening` item's points and re-render the pages.")
    results.add_argument("out", type=Path)
    _rubric_option(results, DEFAULT_RUBRIC)
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s")  # the plan's warnings: who gets no ratings, and why

    if not (args.out / "results").is_dir():
        print(f"error: {args.out} holds no graded class (no results folder); grade it first: "
              f"grade SUBMISSION... --out {args.out}", file=sys.stderr)
        return 2
    try:
        return {"make": _make, "serve": _serve, "export": _export, "import": _import, "results": _results}[
            args.verb](args)
    except (ValueError, FileNotFoundError) as error:  # the plan's, store's and rubric's refusals say what to do
        print(f"error: {error}", file=sys.stderr)
        return 2


def _rubric_option(parser: argparse.ArgumentParser, default: Path) -> None:
    parser.add_argument("--rubric", type=Path, default=default,
                        help="the rubric graded with (default: the bundled one): its [listening] and [term] sections "
                        "and a `listening` item")


def _make(args: argparse.Namespace) -> int:
    from grader.listening.plan import make_plan, write_links
    from grader.rubric import load_rubric

    plan = make_plan(args.out, load_rubric(args.rubric), kind=args.kind, raters=args.raters, per_rater=args.per_rater,
                     peers=args.peers, closes=args.closes, seed=args.seed, replace=args.replace)
    links = write_links(plan, args.out, args.base_url.rstrip("/"))
    rated = {plan.stimuli[key].submission for trial in plan.trials.values() for key in trial.stimuli} - {None}
    print(f"listening test ({plan.kind}): {len(plan.trials)} trials, {len(plan.stimuli)} stimuli, "
          f"{len(plan.raters)} raters, {len(rated)} submissions with at least {plan.ratings_per_submission} ratings "
          f"each; the raters' links: {links}")
    print(f"next: grade listen serve {args.out}   (or: grade listen export {args.out} --to DIR)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from grader.listening.model import Plan
    from grader.listening.server import serve

    Plan.read(args.out)  # a missing test is said before anything listens
    try:
        serve(args.out, args.host, args.port, ready=lambda url: print(
            f"serving the listening test on {url} (links: {args.out / 'listening' / 'links.csv'}); Ctrl-C stops "
            f"it, ratings are kept", file=sys.stderr))
    except KeyboardInterrupt:
        pass
    return 0


def _export(args: argparse.Namespace) -> int:
    from grader.listening.export import export_static

    from grader.listening.export import EXPORT_FOLDERS_NAME
    from grader.listening.model import FOLDER

    folders = export_static(args.out, args.to)
    print(f"{len(folders)} rater folders in {args.to}, whose is which in {args.out / FOLDER / EXPORT_FOLDERS_NAME}: "
          f"send each rater theirs (they open index.html), then: grade listen import {args.out} FILE...")
    return 0


def _import(args: argparse.Namespace) -> int:
    from grader.listening.export import import_ratings

    failed = 0
    for file in args.files:
        summary = import_ratings(args.out, file)
        print(f"{file}: {summary}")
        failed += not summary.stored and bool(summary.refused)
    return 2 if failed == len(args.files) else 0


def _results(args: argparse.Namespace) -> int:
    from grader.listening.apply import apply_ratings
    from grader.listening.results import score_test
    from grader.report import render_all
    from grader.rubric import load_rubric

    rubric = load_rubric(args.rubric)
    scored = score_test(args.out)
    print(scored.summary())
    changed = apply_ratings(args.out, rubric)
    index = render_all(args.out, rubric)
    print(f"{changed} result(s) re-scored by their listening item; class page: {index}")
    return 0
