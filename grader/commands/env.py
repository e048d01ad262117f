"""``grade env build``: build the environment student code runs with (:mod:`grader.environment`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Build it (a no-op when built) and describe it; 1 for an invalid rubric or a failed build, else 0."""
    parser = argparse.ArgumentParser(prog="grade env", description="The environment student code runs with: the "
                                     "packages of the rubric's [environment] requirements file, built once.")
    parser.add_argument("action", choices=["build"], help="build: build it (a no-op when it is built)")
    parser.add_argument("--rubric", type=Path, default=None, help="rubric TOML (default: the bundled one)")
    parser.add_argument("--force", action="store_true", help="build it again even if it is built")
    args = parser.parse_args(argv)
    from grader.environment import StudentEnvironmentError, for_rubric
    from grader.rubric import DEFAULT_RUBRIC, RubricError, load_rubric

    try:
        environment = for_rubric(load_rubric(args.rubric or DEFAULT_RUBRIC))
        if not environment.ready or args.force:
            print(f"building the student environment {environment.name} from {environment.requirements} "
                  f"(minutes the first time)...", flush=True)
        report = environment.build(force=args.force)
    except (RubricError, StudentEnvironmentError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    state = f"built in {report.seconds:.0f} s" if report.built else f"already built (it took {report.seconds:.0f} s)"
    print(f"{environment.describe()}\n{environment.prefix}: {state}, {report.size_bytes / 1e9:.2f} GB on disk")
    for package, reason in environment.unavailable.items():
        print(f"unavailable: {package}: {reason}")
    return 0
