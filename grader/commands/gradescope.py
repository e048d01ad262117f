"""``grade gradescope``: grade the one submission inside Gradescope's autograder and write its ``results.json``.

Gradescope (https://gradescope-autograders.readthedocs.io/en/latest/specs/) runs the
autograder zip's ``run_autograder`` (:mod:`grader.commands.export`) for every submission,
with the student's files in :data:`SUBMISSION_DIR`; the grade must be written to
:data:`RESULTS_PATH`, in the format of :func:`grader.report.exports.gradescope_dict`.

A results.json is always there: a provisional one (a score of 0 saying grading did not finish) is written before
anything else, so that a container the platform stops (its timeout, its memory) still shows the student why; a
grading that cannot start (an autograder set up wrongly) writes one saying so; the grade replaces it at the end.
Grading stops :data:`TIMEOUT_MARGIN_SECONDS` before the platform's per-submission timeout (``--timeout``): runs
of student code are cut to what is left (:mod:`grader.time_budget`), and the margin is for scoring what they made.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from reference.files import atomic_write
from grader.commands.common import add_grading_options, grading_setup
from grader.report.exports import gradescope_dict
from grader.results import SubmissionResult, Versions
from grader.rubric import Rubric

SUBMISSION_DIR = Path("/autograder/submission")
RESULTS_PATH = Path("/autograder/results/results.json")
DEFAULT_TIMEOUT_SECONDS = 600.0
"""Gradescope's per-submission timeout unless the assignment's settings raise it (10 minutes; at most 40)."""
TIMEOUT_MARGIN_SECONDS = 60.0
"""Grading stops this long before the platform's timeout: the time to score the runs' outputs and write the grade."""
PROVISIONAL_OUTPUT = (
    "Grading did not finish, so this submission has no grade yet (0 points for now). The autograder was most "
    "likely stopped by Gradescope at its time or memory limit. The staff can see what happened and regrade it.")
"""The output of the results.json written before grading starts; the grade replaces it."""
CANNOT_START_OUTPUT = (
    "The autograder could not start grading (a problem with the autograder's set-up, not with your submission), "
    "so this submission has no grade yet (0 points for now). The staff have been shown the reason and will "
    "regrade it.")
"""The output of the results.json written when grading cannot start; what stops it is printed for the staff."""
GradeFunction = Callable[[Path, Path], SubmissionResult]
"""``grade_fn(source, out_dir)``: grade the submission at ``source`` into the output folder ``out_dir``."""


def main(argv: list[str]) -> int:
    """Grade ``--submission`` into ``--results``; 2 when grading cannot start (a results.json saying so is written),
    else 0 (a submission that could not be graded still gets a results.json: see :func:`run_gradescope`)."""
    parser = argparse.ArgumentParser(prog="grade gradescope", description="Grade inside Gradescope's autograder.")
    parser.add_argument("--submission", type=Path, default=SUBMISSION_DIR,
                        help=f"the student's files (default {SUBMISSION_DIR}, where Gradescope puts them)")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH,
                        help=f"the results.json to write (default {RESULTS_PATH}, where Gradescope reads it); "
                        "the grading's output folder is a 'grader' folder beside it")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
                        help=f"the platform's per-submission timeout in seconds (default {DEFAULT_TIMEOUT_SECONDS:g}, "
                        f"Gradescope's unless the assignment raises it); grading stops {TIMEOUT_MARGIN_SECONDS:g} s "
                        "before it")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="where bubblewrap cannot run (each Gradescope submission has its own container)")
    add_grading_options(parser, jobs_help="processes the grader's own scoring may use (default 1: Gradescope's "
                        "container has half a CPU and 768 MB, and a pool of workers would only add memory)")
    args = parser.parse_args(argv)
    if args.timeout <= TIMEOUT_MARGIN_SECONDS:
        parser.error(f"--timeout {args.timeout:g}: give more than {TIMEOUT_MARGIN_SECONDS:g} seconds")
    write_placeholder(args.results, PROVISIONAL_OUTPUT)
    from grader.time_budget import TimeBudget

    spent = seconds_since_process_start()
    budget = TimeBudget.until(args.timeout - TIMEOUT_MARGIN_SECONDS - spent,
                              f"Gradescope's timeout of {args.timeout:g} s, less {TIMEOUT_MARGIN_SECONDS:g} s")
    setup = grading_setup(args, args.results.parent / "grader", student_mode=False,
                          allow_unsandboxed=args.unsafe_no_sandbox, time_budget=budget)
    if setup is None:
        write_placeholder(args.results, CANNOT_START_OUTPUT, round(seconds_since_process_start()))
        return 2
    setup = dataclasses.replace(setup, cores=max(1, args.jobs))
    from grader.pipeline import grade_submission

    run_gradescope(lambda source, out_dir: grade_submission(source, setup), args.submission, args.results,
                   out_dir=setup.out_dir, rubric=setup.rubric)
    return 0


def seconds_since_process_start() -> float:
    """Seconds since this process started (its interpreter's start and imports included): ``run_autograder`` execs
    it, so this is about the time the platform has counted."""
    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


def placeholder_payload(output: str, execution_seconds: int = 0) -> dict[str, Any]:
    """A results.json without a grade: a score of 0, ``output`` for the student, no tests."""
    return {"score": 0, "execution_time": execution_seconds, "output": output, "visibility": "visible",
            "stdout_visibility": "hidden", "tests": []}


def write_placeholder(results_path: str | os.PathLike, output: str, execution_seconds: int = 0) -> dict[str, Any]:
    """Write :func:`placeholder_payload` to ``results_path`` (its folder is created) and return it."""
    payload = placeholder_payload(output, execution_seconds)
    atomic_write(Path(results_path), json.dumps(payload, indent=2, ensure_ascii=False))
    return payload


def run_gradescope(grade_fn: GradeFunction, submission_dir: str | os.PathLike = SUBMISSION_DIR,
                   results_path: str | os.PathLike = RESULTS_PATH, out_dir: str | os.PathLike | None = None,
                   rubric: Rubric | None = None) -> dict[str, Any]:
    """Grade the submission in ``submission_dir`` with ``grade_fn`` and write Gradescope's ``results.json``.

    Args:
        grade_fn: grades one submission (the pipeline's entry point).
        submission_dir: the student's files (Gradescope unpacks the upload there).
        results_path: where Gradescope reads the grade from.
        out_dir: the grading's output folder (results, media); default: a ``grader``
            folder beside ``results_path``.
        rubric: the rubric graded with (the quiz's texts and visibility in the output).

    Returns:
        the results.json written. It is written even when ``grade_fn`` raises: a
        score of 0 with a message, since Gradescope shows nothing at all without it.
        A refusal's reason or the grader's traceback is printed, which Gradescope
        shows to instructors only.
    """
    submission_dir, results_path = Path(submission_dir), Path(results_path)
    out_dir = Path(out_dir) if out_dir is not None else results_path.parent / "grader"
    started = time.monotonic()
    try:
        result = grade_fn(submission_dir, out_dir)
    except Exception as error:  # noqa: BLE001  (any failure must still give Gradescope a result)
        result = SubmissionResult.from_exception("submission", str(submission_dir), error,
                                                 rubric.rubric.total_points if rubric else 0.0, Versions())
    # Gradescope shows what is printed here to instructors only: the summary, and what went wrong.
    print(f"{result.submission_id}: {result.status}, {result.total:g} / {result.max_total:g} points", flush=True)
    if result.status != "graded":
        print(result.message, flush=True)
    payload = gradescope_dict(result, rubric)
    payload["execution_time"] = max(payload["execution_time"], round(time.monotonic() - started))
    atomic_write(results_path, json.dumps(payload, indent=2, ensure_ascii=False))
    return payload
