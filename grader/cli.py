"""`grade ...`: the grader's command line, a dispatcher to one module per verb in :mod:`grader.commands`.

    grade SUBMISSION... [--rubric FILE] [--heldout DIR] [--train DIR] [--out DIR] [--jobs N] [--force]
                        [--scheduler tcp://HOST:PORT]
    grade check PATH            a student's self-check: visible items, public clips
    grade kit --out DIR         the student kit
    grade baseline              compute and cache the reference baseline
    grade rubric check FILE     validate a rubric
    grade report OUT            re-render every page and export of OUT from its results
    grade similarity OUT        pairs of submissions sharing code, audio or a checkpoint
    grade listen make|serve|export|import|results OUT   a blind listening test of the class's audio
    grade roster import|export OUT ...   the class's roster from the LMS, and the grades file it imports back
    grade adjust OUT SUBMISSION ITEM (--points X | --delta X) --comment "..."   a person's change of the points
    grade gradescope            grade inside Gradescope's autograder
    grade export gradescope --out FILE.zip   the autograder zip to upload to Gradescope
    grade env build [--rubric FILE]          build the environment student code runs with
"""
from __future__ import annotations

import importlib
import sys

from grader.commands import COMMANDS


def main(argv: list[str] | None = None) -> int:
    """Run ``grade VERB ARGS...`` with ``grader.commands.VERB`` and anything else as ``grade SUBMISSION...``
    (:mod:`grader.commands.grade`); returns the command's exit status. Only the chosen verb's module is imported."""
    argv = sys.argv[1:] if argv is None else argv
    verb, rest = (argv[0], argv[1:]) if argv and argv[0] in COMMANDS else ("grade", argv)
    return importlib.import_module(f"grader.commands.{verb}").main(rest)


if __name__ == "__main__":
    sys.exit(main())
