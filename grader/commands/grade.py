"""``grade SUBMISSION...``: grade a class in local processes or on a dask cluster, print its summary and render
its pages and exports."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from grader import __version__
from grader.commands import COMMANDS
from grader.commands.common import (add_grading_options, add_submitted_at_options, grading_setup, print_summary,
                                    store_submitted_at)


def main(argv: list[str]) -> int:
    """Grade every submission into ``--out``; 2 when grading cannot start (what stops it is printed), else 0
    (a submission that failed is a result too, listed first in the summary)."""
    parser = argparse.ArgumentParser(
        prog="grade", description="Grade submissions of 'Develop a Basic Audio Generative Model'. "
        f"Other commands: {', '.join(COMMANDS)} (grade COMMAND --help).")
    parser.add_argument("submissions", nargs="+", type=Path, help="zips (or folders) to grade")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder (default ./out)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run student code without bubblewrap, with resource limits only (trusted code only)")
    parser.add_argument("--force", action="store_true",
                        help="grade every submission again, even those whose result in OUT is up to date, and run "
                        "student code again (by default a result is reused while the submission, rubric, held-out "
                        "set and grader are unchanged, so an interrupted batch resumes where it stopped; and a "
                        "submission regraded for a change of the scoring takes its runs from OUT/runs)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="grade on the workers of this dask.distributed scheduler instead of local processes; "
                        "workers need the project (make setup) and the data folder at the same paths as here")
    parser.add_argument("--version", action="version", version=f"grade {__version__}")
    add_grading_options(parser, jobs_help="submissions graded at once in local processes (default: one per core, "
                        f"{_cores()} here)", jobs_default=_cores())
    add_submitted_at_options(parser)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if not store_submitted_at(args, args.out):
        return 2
    setup = grading_setup(args, args.out, student_mode=False, allow_unsandboxed=args.unsafe_no_sandbox)
    if setup is None:
        return 2
    from grader.batch import grade_all

    from grader.report import final_results, render_all

    entries = grade_all(args.submissions, setup, jobs=args.jobs, force=args.force, scheduler=args.scheduler)
    final = final_results(setup.out_dir, setup.rubric)  # read and finalised once: the summary's totals, the pages
    print_summary(entries, setup.out_dir, {result.submission_id: result.total for result in final[0]})
    if len(entries) >= 2:
        from grader.commands.similarity import compare_and_write
        from grader.similarity.classwide import keep_references

        keep_references(setup)
        compare_and_write(setup.out_dir, setup.rubric)
    print(f"class page: {render_all(setup.out_dir, setup.rubric, final=final)}")
    return 0


def _cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or ``taskset`` may narrow)."""
    return len(os.sched_getaffinity(0))
