"""``grade roster``: the class's roster in from the LMS, its grades out in the file the LMS imports back.

    grade roster import OUT FILE [--lms canvas|moodle]
    grade roster export OUT --lms canvas|moodle [--canvas-assignment ID] [--missing-as-zero] [--rubric FILE]

``import`` keeps a Canvas gradebook export or a Moodle grading worksheet as OUT's roster
(:mod:`grader.term.roster`, in ``OUT/gradebook.sqlite``). ``export`` writes ``OUT/lms/canvas-grades.csv`` and
``OUT/lms/items.csv`` (the per-item points, for the instructor), or ``OUT/lms/moodle-grades.csv``
(:mod:`grader.term.lms`), matching results to the roster by LMS id only, and names every result it could not
place.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run one ``grade roster`` verb; 2 when the roster, OUT or an option is wrong, else 0."""
    parser = argparse.ArgumentParser(
        prog="grade roster", description="The class's roster from the LMS in, and the grades out as the LMS imports "
        "them back, matched by LMS id (the number in each submission's file name), never by name.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    import_ = verbs.add_parser("import", help="keep an LMS export as OUT's roster",
                               description="Keep a Canvas gradebook export (Grades > Export > CSV) or a Moodle "
                               "grading worksheet (the assignment > View all submissions > Download grading "
                               "worksheet) as OUT's roster, replacing any before it.")
    import_.add_argument("out", type=Path, help="the output folder a class was graded into")
    import_.add_argument("file", type=Path, metavar="FILE", help="the CSV file the LMS exported")
    import_.add_argument("--lms", choices=("canvas", "moodle"), default=None,
                         help="which LMS exported FILE (default: told from its header)")

    export = verbs.add_parser("export", help="write the grades file the LMS imports",
                              description="Write OUT/lms/canvas-grades.csv (one assignment column) and "
                              "OUT/lms/items.csv (per-item points, not for the LMS), or OUT/lms/moodle-grades.csv "
                              "(the offline grading worksheet), for every student on the roster.")
    export.add_argument("out", type=Path)
    export.add_argument("--lms", choices=("canvas", "moodle"), required=True)
    export.add_argument("--canvas-assignment", default=None, metavar="ID",
                        help="the Canvas assignment id (default: the roster's column titled as the rubric)")
    export.add_argument("--missing-as-zero", action="store_true",
                        help="a student on the roster without a submission gets 0 (default: a blank grade)")
    export.add_argument("--rubric", type=Path, default=None,
                        help="the rubric graded with (default: the bundled one): the assignment's title and points")
    args = parser.parse_args(argv)

    from grader.report import ReportError
    from grader.term.roster import RosterError

    try:
        return _import(args) if args.verb == "import" else _export(args)
    except (RosterError, ReportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _import(args: argparse.Namespace) -> int:
    from grader.term.roster import import_roster

    if not args.out.is_dir():
        print(f"error: {args.out} is no folder; grade the class into it first: grade SUBMISSION... --out {args.out}",
              file=sys.stderr)
        return 2
    roster = import_roster(args.out, args.file, args.lms)
    print(f"{args.file}: {roster.lms} roster of {len(roster.students)} student(s) kept in {args.out}")
    if roster.assignments:
        print("assignment columns: " + ", ".join(f"{name} ({id_})" for name, id_ in roster.assignments.items()))
    for line in roster.skipped:
        print(f"left out: {line}")
    print(f"next: grade roster export {args.out} --lms {roster.lms}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from reference.files import atomic_write
    from grader.report import final_results
    from grader.rubric import DEFAULT_RUBRIC, load_rubric
    from grader.term import lms
    from grader.term.roster import RosterError, load_roster

    roster = load_roster(args.out)
    if roster is None:
        raise RosterError(f"{args.out} has no roster; import the LMS's export first: grade roster import {args.out} "
                          f"FILE (a Canvas gradebook export or a Moodle grading worksheet)")
    if roster.lms != args.lms:
        raise RosterError(f"{args.out}'s roster is {roster.lms}'s ({roster.source}), not {args.lms}'s; import "
                          f"{args.lms}'s export first (grade roster import {args.out} FILE --lms {args.lms})")
    rubric = load_rubric(args.rubric or DEFAULT_RUBRIC)
    results, problems = final_results(args.out, rubric)  # the grades the pages show
    match = lms.match_roster(results, roster)
    folder = args.out / lms.LMS_FOLDER
    points = rubric.rubric.total_points
    if args.lms == "canvas":
        assignment_id = lms.canvas_assignment_id(roster, rubric.rubric.title, args.canvas_assignment)
        canvas_points = roster.points_possible.get(assignment_id)
        if canvas_points is not None and abs(canvas_points - points) > 1e-9:
            problems.append(f"Canvas's assignment {assignment_id} is worth {lms.points_text(canvas_points)} points, "
                            f"the rubric {lms.points_text(points)}; the file says {lms.points_text(points)}, which "
                            f"Canvas's import sets as the assignment's points")
        written = [atomic_write(folder / lms.CANVAS_GRADES_NAME, lms.canvas_grades_csv(
            results, roster, assignment_name=rubric.rubric.title, assignment_id=assignment_id,
            points_possible=points, missing_as_zero=args.missing_as_zero).encode("utf-8"))]
    else:
        max_grade = roster.max_grade if roster.max_grade is not None else points
        if abs(max_grade - points) > 1e-9:
            problems.append(f"Moodle's maximum grade is {lms.points_text(max_grade)}, the rubric's total "
                            f"{lms.points_text(points)}; grades are written as the rubric's points")
        written = [atomic_write(folder / lms.MOODLE_GRADES_NAME, lms.moodle_worksheet_csv(
            results, roster, max_grade=max_grade, missing_as_zero=args.missing_as_zero).encode("utf-8"))]
    written.append(atomic_write(folder / lms.ITEMS_NAME, lms.items_csv(results, roster, rubric).encode("utf-8")))
    for result in match.unmatched:
        who = (f"{result.identity.lms} id {result.identity.user_id}" if result.identity.lms
               else "its file name names no student")
        problems.append(f"{result.submission_id} ({result.source}): {who} is not on the roster; not written")
    print(match.summary() + (" (blank)" if match.missing and not args.missing_as_zero else ""))
    for line in problems + match.problems:
        print(f"warning: {line}", file=sys.stderr)
    for path in written:
        print(path)
    return 0
