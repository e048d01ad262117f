"""The names the submission contract fixes, as the grader reads them (docs: ../shared/design/submission-contract.md).

A light module (no imports) that every side of the grader takes these from: discovery
(which looks for each role), the rubric (whose items name roles), the notebook runner
(which fills the placeholders) and the checks (which ask for outputs in the output folder).
The reference side's counterpart is :class:`reference.preprocess.LogMelParams` (the log-mel a
``reconstruct`` entry is given).
"""

MANIFEST = "submission.toml"
"""The optional manifest at the submission's root (its ``[entry]`` and ``[files]`` tables)."""
ROLES = ("mfcc", "reconstruct", "sample", "samples", "answers", "evaluation", "checkpoints")
"""What a submission's files and commands can be for."""
PLACEHOLDERS = {
    "reconstruct": ("mel_dir", "out_dir"),
    "sample": ("num", "seed", "out_dir"),
}
"""The placeholders each command must use (``[entry]``)."""
OUTPUT_FOLDER = "_grader_out"
"""Folder of a run's work folder where the grader asks student code to write its outputs."""
