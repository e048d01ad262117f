"""One submission graded end to end, with the time split into intake, student code, the grader's own work and writing.

Goal (issue 6): the grader's own share (everything but student code) under 2 s for the
12 held-out 3 s clips of the embedded data set. Each repeat's own share is its total less its
student code; the median is quoted, and the first repeat's (which pays the process's imports
and numba cache loads once) is printed too. The reference baseline is computed (or
read from its cache) before timing starts: it is paid once per held-out set, not per
submission.

Usage: .venv/bin/python bench/grade.py [SUBMISSION.zip] [--repeats N]
Default submission: submissions/reference-solution.zip (`make examples` builds it).
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

from grader.heldout import load_heldout
from grader.pipeline import GradingSetup, grade_submission
from grader.rubric import load_rubric
from grader.scoring import load_baseline
from reference import PROJECT_ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submission", nargs="?", type=Path, default=PROJECT_ROOT / "submissions" / "reference-solution.zip")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.submission.exists():
        raise SystemExit(f"{args.submission}: not found; run `make examples` first")
    heldout = load_heldout()
    baseline = load_baseline(heldout)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        setup = GradingSetup(rubric=load_rubric(), heldout=heldout, load_baseline=lambda: baseline, out_dir=Path(out))
        for _ in range(args.repeats):
            result = grade_submission(args.submission, setup)
            started = time.perf_counter()
            result.write(Path(out) / "again")
            writing = time.perf_counter() - started
            rows.append({**result.timings, "writing": writing, "total": result.seconds,
                         "own": result.seconds - result.timings["student_code"]})
    print(f"{args.submission.name}: {result.total:g} / {result.max_total:g} points, {len(heldout.clips)} held-out "
          f"clips, {len(result.runs)} sandboxed runs; median of {args.repeats}")
    median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    for key in ("intake", "student_code", "grader", "writing", "total"):
        print(f"  {key:<13} {median[key]:7.2f} s  {median[key] / median['total']:6.1%} of the total")
    own = median["own"]
    print(f"grader's own share (total - student code), median: {own:.2f} s; goal < 2 s: "
          f"{'met' if own < 2 else 'NOT met'}; own / student code = {own / median['student_code']:.2f}")
    print(f"the first submission of a process pays imports and numba cache loads once: "
          f"{rows[0]['own']:.2f} s own share")


if __name__ == "__main__":
    main()
