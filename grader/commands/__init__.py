"""The verbs of ``grade``, one module each (parse, call, print; nothing else).

``grader.commands.<verb>`` owns its argument parser and its ``main(argv) -> int``, the
verb's exit status; :mod:`grader.cli` dispatches to it, and :mod:`grader.commands.common`
holds what several verbs share (the grading options, the grading set-up, the batch's
summary). ``grade SUBMISSION...``, with no verb, is :mod:`grader.commands.grade`.
"""

COMMANDS = ("check", "kit", "baseline", "rubric", "report", "similarity", "listen", "roster", "adjust", "gradescope",
            "export", "env")
"""The verbs, in the order ``grade --help`` names them; each is the module ``grader.commands.<verb>``. A first
argument that is none of them is a submission to grade."""
