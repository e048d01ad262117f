"""What several commands share: the options that say what to grade with, the grading set-up made from them,
and the summary table of a batch."""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.batch_entries import BatchEntry
    from grader.pipeline import GradingSetup
    from grader.term.times import SubmissionTime
    from grader.time_budget import TimeBudget


def add_grading_options(parser: argparse.ArgumentParser, jobs_help: str = "processes (default 1)",
                        jobs_default: int = 1) -> None:
    """Add ``--rubric``, ``--heldout``, ``--train`` and ``--jobs`` to ``parser``: the rubric and the clips to
    grade with, and how many processes may do it."""
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
    parser.add_argument("--max-run-seconds", type=_positive_seconds, default=None, metavar="S",
                        help="cap every run of student code at S seconds of wall time, whatever the rubric allows "
                        "(a quick trial of a class; the demo); a run stopped by it says so")


def _positive_seconds(text: str) -> float:
    """A number of seconds above 0, for argparse."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return seconds


def grading_setup(args: argparse.Namespace, out_dir: Path, *, student_mode: bool, allow_unsandboxed: bool,
                  split: str = "heldout", time_budget: TimeBudget | None = None) -> GradingSetup | None:
    """The set-up every submission is graded with, from ``args.rubric``, ``args.heldout`` and ``args.train``.

    Args:
        args: parsed options holding ``rubric``, ``heldout`` and ``train`` (:func:`add_grading_options`).
        out_dir: the output folder; created here.
        student_mode: a student's self-check (visible items only, no answer key).
        allow_unsandboxed: run student code with resource limits only where bubblewrap cannot isolate it.
        split: the data set's split graded on (``test`` for a self-check on the kit's public clips).
        time_budget: a deadline for each submission's grading (:mod:`grader.time_budget`); its cap on each run
            is ``args.max_run_seconds`` where that is given.

    Returns:
        the set-up, or None after printing to stderr what stops grading (an invalid rubric or data folder,
        the student environment not built, a mount that holds a held-out clip, no isolation, bars the
        baseline cannot meet); the command then exits with 2. Notes (a mount's, running unsandboxed) are
        printed to stderr too.
    """
    from grader.bars import BarsError
    from grader.environment import StudentEnvironmentError, for_rubric
    from grader.heldout import HeldoutError, load_heldout
    from grader.mounts import MountError, check_mounts
    from grader.pipeline import GradingSetup
    from grader.rubric import RubricError, load_rubric
    from grader.sandbox import UNSAFE_FLAG, Kind, isolation_kind, isolation_problem, isolation_summary, protect
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
    out_dir.mkdir(parents=True, exist_ok=True)
    protect(args.rubric, args.heldout, *([args.train] if args.train else []), out_dir)
    if isolation_kind() is Kind.SEPARATE_UID:
        out_dir.chmod(out_dir.stat().st_mode & ~0o007)  # student code runs as other users: results are not theirs
        print(f"note: {isolation_summary()}", file=sys.stderr)
    problem = isolation_problem(environment)
    if problem and isolation_kind() is Kind.SEPARATE_UID:
        print(f"error: {problem}", file=sys.stderr)
        return None
    if problem and not allow_unsandboxed:
        print(f"error: student code cannot be isolated here: {problem}\nInstall bubblewrap, or pass {UNSAFE_FLAG} "
              f"to run it with resource limits only (trusted code only).", file=sys.stderr)
        return None
    if problem:
        print(f"note: running WITHOUT a sandbox (resource limits only): {problem}", file=sys.stderr)
    setup = GradingSetup(rubric=rubric, heldout=heldout, load_baseline=functools.partial(load_baseline, heldout),
                         out_dir=out_dir.resolve(), student_mode=student_mode, allow_unsandboxed=allow_unsandboxed,
                         environment=environment, time_budget=_budget(args, time_budget))
    try:
        setup.check_bars()
    except BarsError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    return setup


def _budget(args: argparse.Namespace, time_budget: TimeBudget | None) -> TimeBudget:
    """``time_budget`` (none: no deadline) with ``args.max_run_seconds`` as its cap on each run, where given."""
    from grader.time_budget import TimeBudget

    budget = time_budget or TimeBudget()
    cap = getattr(args, "max_run_seconds", None)
    return budget if cap is None else TimeBudget(cap, budget.deadline, budget.deadline_words)


def add_submitted_at_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--submitted-at`` (repeatable) and ``--timezone``: when the submissions were handed in, for late work
    (:mod:`grader.term.late`)."""
    parser.add_argument("--submitted-at", action="append", default=[], metavar="FILE|NAME=WHEN",
                        help="when submissions were handed in, kept in OUT/gradebook.sqlite for the rubric's late "
                        "policy ([term] due, late): a Moodle grading worksheet CSV, a CSV with the header "
                        "submission,submitted_at (a zip's file name or submission id; ISO 8601 with UTC offset), or "
                        "one zip's NAME=WHEN (e.g. doe_12345_67890_hw3.zip=2026-12-05T10:00:00-05:00); repeatable. "
                        "Canvas's download has no times (only _LATE in file names): write the CSV from its API's "
                        "submitted_at")
    parser.add_argument("--timezone", default="UTC", metavar="ZONE",
                        help="the Moodle site's time zone, in which its worksheet's dates are written (an IANA name "
                        "such as Europe/Berlin; default UTC)")


def read_submitted_at(values: list[str], timezone_name: str = "UTC") -> list[SubmissionTime]:
    """The times ``--submitted-at`` gives, in order (a later one of a key wins): each value an existing file
    (:func:`grader.term.times.read_times_file`, its dates in ``timezone_name`` where it is a Moodle worksheet) or
    ``NAME=WHEN`` (:func:`grader.term.times.parse_assignment`).

    Raises:
        grader.term.times.SubmissionTimesError: a file or value that cannot be read, named with its line.
    """
    from grader.term.times import SubmissionTimesError, parse_assignment, read_times_file, time_zone

    time_zone(timezone_name)  # a wrong zone is refused even where no worksheet needs it
    times: list[SubmissionTime] = []
    for value in values:
        if Path(value).is_file():
            times.extend(read_times_file(Path(value), timezone_name))
        elif "=" in value:
            times.append(parse_assignment(value))
        else:
            raise SubmissionTimesError(f"--submitted-at {value[:80]!r}: no such file, and not NAME=WHEN")
    return times


def store_submitted_at(args: argparse.Namespace, out_dir: Path) -> bool:
    """Keep ``args.submitted_at``'s times in ``OUT/gradebook.sqlite``; False after printing to stderr what is wrong
    with them (the command then exits with 2, before grading)."""
    if not args.submitted_at:
        return True
    from grader.term.times import SubmissionTimesError, store_times

    try:
        times = read_submitted_at(args.submitted_at, args.timezone)
    except SubmissionTimesError as error:
        print(f"error: {error}", file=sys.stderr)
        return False
    print(f"submission times: {store_times(out_dir, times)} kept in {out_dir / 'gradebook.sqlite'}", file=sys.stderr)
    return True


def print_summary(entries: list[BatchEntry], out_dir: Path, final: dict[str, float] | None = None) -> None:
    """Print the batch's table, failures first, and a line of counts; ``final``: each submission's total for the
    term (:func:`grader.term.finalise.finalise`), shown with the graded one where adjustments or lateness moved it."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Results in {out_dir}")
    for column in ("submission", "status", "points", "seconds", "graded"):
        table.add_column(column, justify="right" if column in ("points", "seconds") else "left")
    for entry in sorted(entries, key=lambda e: (not e.failed, e.submission_id)):
        status = f"[red]{entry.status}[/red]: {entry.message[:80]}" if entry.failed else entry.status
        total = (final or {}).get(entry.submission_id, entry.total)
        points = (f"{total:g} / {entry.max_total:g}" if abs(total - entry.total) < 5e-3 else
                  f"{round(total, 2):g} / {entry.max_total:g} (graded {round(entry.total, 2):g})")
        table.add_row(entry.submission_id, status, points, f"{entry.seconds:.1f}",
                      "earlier (reused)" if entry.reused else "now")
    console = Console()
    console.print(table)
    reused = sum(entry.reused for entry in entries)
    failed = sum(entry.failed for entry in entries)
    console.print(f"{len(entries) - reused} graded now, {reused} reused from earlier results"
                  f"{' (--force grades them again)' if reused else ''}, {failed} failed")
