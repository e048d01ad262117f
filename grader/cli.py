"""`grade ...`: the grader's command line (thin: parses, calls the pipeline, prints).

    grade SUBMISSION... [--rubric FILE] [--heldout DIR] [--train DIR] [--out DIR] [--jobs N] [--force]
                        [--scheduler tcp://HOST:PORT]
    grade check PATH            a student's self-check: visible items, public clips
    grade kit --out DIR         the student kit
    grade baseline              compute and cache the reference baseline
    grade rubric check FILE     validate a rubric
    grade report OUT            re-render every page and export of OUT from its results
    grade gradescope            grade inside Gradescope's autograder
    grade export gradescope --out FILE.zip   the autograder zip to upload to Gradescope
    grade env build [--rubric FILE]          build the environment student code runs with
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from grader import __version__

COMMANDS = ("check", "kit", "baseline", "rubric", "report", "gradescope", "export", "env")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return {"check": check_main, "kit": kit_main, "baseline": baseline_main, "rubric": rubric_main,
                "report": report_main, "gradescope": gradescope_main, "export": export_main,
                "env": env_main}[argv[0]](argv[1:])
    return grade_main(argv)


def _common(parser: argparse.ArgumentParser, jobs_help: str = "processes (default 1)", jobs_default: int = 1) -> None:
    from grader.heldout import DEFAULT_DATA
    from grader.rubric import DEFAULT_RUBRIC

    parser.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC, help="rubric TOML (default: the bundled one)")
    parser.add_argument("--heldout", type=Path, default=DEFAULT_DATA, metavar="DIR",
                        help="the clips graded on: a folder of audio files (WAV, FLAC or OGG; any names, rate and "
                        "channels; clips of 1 to 60 s), or a data set folder with a manifest.csv, whose heldout "
                        "split is graded on (default: the embedded data set)")
    parser.add_argument("--train", type=Path, default=None, metavar="DIR",
                        help="the clips the mfcc check reads and the training clips generated samples must not copy: "
                        "a data set folder or a folder of audio files (default: the --heldout data set, or the "
                        "embedded data set when --heldout is a folder of audio files)")
    parser.add_argument("--jobs", type=int, default=jobs_default, help=jobs_help)


def grade_main(argv: list[str]) -> int:
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
    _common(parser, jobs_help="submissions graded at once in local processes (default: one per core, "
            f"{_cores()} here)", jobs_default=_cores())
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    setup = _setup(args, args.out, student_mode=False, allow_unsandboxed=args.unsafe_no_sandbox)
    if setup is None:
        return 2
    from grader.batch import grade_all

    from grader.report import render_all

    entries = grade_all(args.submissions, setup, jobs=args.jobs, force=args.force, scheduler=args.scheduler)
    _summary(entries, setup.out_dir)
    print(f"class page: {render_all(setup.out_dir, setup.rubric)}")
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def check_main(argv: list[str]) -> int:
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
    setup = _setup(args, args.out, student_mode=True, allow_unsandboxed=True, split="test")
    if setup is None:
        return 2
    from grader.batch import BatchEntry
    from grader.pipeline import grade_submission

    from grader.report import render_all, student_audience

    result = grade_submission(args.path, setup)
    _summary([BatchEntry.of(result, reused=False)], setup.out_dir)
    render_all(setup.out_dir, setup.rubric, audience=student_audience(setup.rubric))
    print(f"your report: {setup.out_dir / 'pages' / (result.submission_id + '.html')}")
    return 0


def kit_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grade kit", description="Write the student kit: the contract, templates, "
                                     "the public clips and the public rubric.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--rubric", type=Path, default=None)
    args = parser.parse_args(argv)
    from grader.kit import write_kit
    from grader.rubric import DEFAULT_RUBRIC, load_rubric

    write_kit(args.out, load_rubric(args.rubric or DEFAULT_RUBRIC))
    print(f"student kit written to {args.out}")
    return 0


def baseline_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grade baseline", description="Compute and cache the reference baseline "
                                     "(reference solution, untrained floor, Griffin-Lim) on the held-out set.")
    _common(parser)
    args = parser.parse_args(argv)
    from grader.heldout import HeldoutError, load_heldout
    from grader.scoring import load_baseline

    try:
        heldout = load_heldout(args.heldout, train_dir=args.train)
    except HeldoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    baseline = load_baseline(heldout, jobs=max(1, args.jobs))
    for source, means in baseline.means.items():
        print(f"{source:<12} " + "  ".join(f"{m} {v:.3f}" for m, v in means.items() if v is not None))
    from grader.bars import BarsError, check_bars
    from grader.rubric import RubricError, load_rubric

    try:
        bars = check_bars(load_rubric(args.rubric).items, baseline.means)
    except (RubricError, BarsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for item_id, item_bars in bars.items():
        print(f"{item_id}: {item_bars.summary()}")
    return 0


def rubric_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grade rubric", description="Rubric tools.")
    parser.add_argument("action", choices=["check"], help="check: validate a rubric file")
    parser.add_argument("file", type=Path)
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


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grade report", description="Re-render every page and export of OUT "
                                     "from its results (no re-grading).")
    parser.add_argument("out", type=Path)
    parser.add_argument("--rubric", type=Path, default=None)
    parser.add_argument("--student", action="store_true", help="pages as a student may see them now")
    parser.add_argument("--after-due-date", action="store_true")
    parser.add_argument("--published", action="store_true")
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


def gradescope_main(argv: list[str]) -> int:
    from grader.report.gradescope import RESULTS_PATH, SUBMISSION_DIR, run_gradescope

    parser = argparse.ArgumentParser(prog="grade gradescope", description="Grade inside Gradescope's autograder.")
    parser.add_argument("--submission", type=Path, default=SUBMISSION_DIR)
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="where bubblewrap cannot run (each Gradescope submission has its own container)")
    _common(parser)
    args = parser.parse_args(argv)
    setup = _setup(args, args.results.parent / "grader", student_mode=False, allow_unsandboxed=args.unsafe_no_sandbox)
    if setup is None:
        return 2
    from grader.pipeline import grade_submission

    run_gradescope(lambda source, out_dir: grade_submission(source, setup), args.submission, args.results,
                   out_dir=setup.out_dir, rubric=setup.rubric)
    return 0


def export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grade export", description="Write the autograder zip for Gradescope.")
    parser.add_argument("target", choices=["gradescope"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--without-data", action="store_true", help="setup.sh builds data/embedded instead")
    args = parser.parse_args(argv)
    from grader.report.gradescope import write_autograder_zip

    print(write_autograder_zip(args.out, with_data=not args.without_data))
    return 0


def env_main(argv: list[str]) -> int:
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


def _setup(args, out_dir: Path, *, student_mode: bool, allow_unsandboxed: bool, split: str = "heldout"):
    from grader.bars import BarsError
    from grader.environment import StudentEnvironmentError, for_rubric
    from grader.heldout import HeldoutError, load_heldout
    from grader.mounts import MountError, check_mounts
    from grader.pipeline import GradingSetup
    from grader.rubric import RubricError, load_rubric
    from grader.sandbox import UNSAFE_FLAG, isolation_problem
    from grader.scoring import load_baseline

    try:
        rubric = load_rubric(args.rubric)
        heldout = load_heldout(args.heldout, split=split, train_dir=args.train)
        environment = for_rubric(rubric)
        notes = check_mounts(rubric.mount_paths(), heldout)
    except (RubricError, HeldoutError, StudentEnvironmentError, MountError) as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    if not environment.ready:
        print(f"error: {environment.missing_message()}", file=sys.stderr)
        return None
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    problem = isolation_problem(environment)
    if problem and not allow_unsandboxed:
        print(f"error: student code cannot be isolated here: {problem}\nInstall bubblewrap, or pass {UNSAFE_FLAG} "
              f"to run it with resource limits only (trusted code only).", file=sys.stderr)
        return None
    if problem:
        print(f"note: running WITHOUT a sandbox (resource limits only): {problem}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    setup = GradingSetup(rubric=rubric, heldout=heldout, load_baseline=functools.partial(load_baseline, heldout),
                         out_dir=out_dir.resolve(), student_mode=student_mode, allow_unsandboxed=allow_unsandboxed,
                         environment=environment)
    try:
        setup.check_bars()
    except BarsError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    return setup


def _summary(entries, out_dir: Path) -> None:
    """The batch's table, failures first, and a line of counts."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Results in {out_dir}")
    for column in ("submission", "status", "points", "seconds", "graded"):
        table.add_column(column, justify="right" if column in ("points", "seconds") else "left")
    for entry in sorted(entries, key=lambda e: (not e.failed, e.submission_id)):
        status = f"[red]{entry.status}[/red]: {entry.message[:80]}" if entry.failed else entry.status
        table.add_row(entry.submission_id, status, f"{entry.total:g} / {entry.max_total:g}", f"{entry.seconds:.1f}",
                      "earlier (reused)" if entry.reused else "now")
    console = Console()
    console.print(table)
    reused = sum(entry.reused for entry in entries)
    failed = sum(entry.failed for entry in entries)
    console.print(f"{len(entries) - reused} graded now, {reused} reused from earlier results"
                  f"{' (--force grades them again)' if reused else ''}, {failed} failed")


if __name__ == "__main__":
    sys.exit(main())
