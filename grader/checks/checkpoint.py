"""Trained weights handed in: loadable weight files of a plausible size, which the entry point uses.

Each checkpoint file (discovery's ``checkpoints`` role) is read without unpickling
(:mod:`grader.weights`): its format, its tensors and their bytes. A file counts when it parses as
weights and holds at least ``min_bytes`` of them. With ``needs_model_use`` (the default), the
weights must also be what made the audio (:func:`grader.model_use.model_use`: the entry run again
without them); weights the entry does not use earn nothing, and the report says so.
"""
from __future__ import annotations

from grader.artefacts import provides
from grader.context import CheckContext, Outcome
from grader.rubric import Item
from grader.weights import WeightFile, weight_files

DEFAULT_MIN_BYTES = 10_000
"""Bytes of weights a checkpoint holds at least: the smallest model of the course (a VAE of two small
convolutions) has some 100 kB; a 1-byte or empty file is no trained model."""
NEEDS = ("student.weights", "model.use")
SCORING = ("min_count", "min_bytes")


@provides("student.weights", kept=dict[str, list[WeightFile]])
def weights_handed_in(ctx: CheckContext) -> dict[str, list[WeightFile]]:
    """What the files of each role the rubric's checkpoint items name hold as weights (role -> files)."""
    roles = {item.params.get("role", "checkpoints") for item in ctx.rubric.items if item.check == "checkpoint"}
    return {role: weight_files(ctx.submission.work_dir, ctx.discovery.findings[role].files) for role in sorted(roles)}


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``role`` (default ``checkpoints``), ``min_count`` (default 1), ``min_bytes`` (default
    :data:`DEFAULT_MIN_BYTES`), ``needs_model_use`` (default true).

    Share = weight files that count / ``min_count``, at most 1; 0 when the entry does not use them.
    """
    role = item.params.get("role", "checkpoints")
    wanted, min_bytes = int(item.params.get("min_count", 1)), int(item.params.get("min_bytes", DEFAULT_MIN_BYTES))
    finding = ctx.discovery.findings[role]
    weights = ctx.need("student.weights")[role]
    counted = [w for w in weights if w.readable and w.tensor_bytes >= min_bytes]
    evidence = [w.describe() + ("" if w in counted or not w.readable else f" (under the {min_bytes:,} expected)")
                for w in weights]
    if not finding.files:
        return Outcome(0.0, f"No {role} found ({finding.how}). Hand in the trained weights, or name them in "
                            "submission.toml under [files].", evidence)
    if not counted:
        return Outcome(0.0, f"{len(finding.files)} {role} file(s) found ({finding.how}), but none holds at least "
                            f"{min_bytes:,} bytes of weights the grader can read (PyTorch's torch.save, Keras "
                            ".keras or .weights.h5, safetensors, NumPy .npz, TensorFlow checkpoints).", evidence)
    explanation = f"{len(counted)} weight file(s) found ({finding.how})"
    share = min(1.0, len(counted) / wanted)
    if share < 1:
        explanation += f"; {wanted} expected"
    if item.params.get("needs_model_use", True):
        use = ctx.need("model.use")
        evidence += use.evidence
        if use.model_free:
            return Outcome(0.0, f"{explanation}, but the entry point does not use them: {use.explanation}", evidence,
                           {"model_use": use.verdict})
        explanation += f". {use.explanation}"
        return Outcome(share, explanation, evidence, {"model_use": use.verdict})
    return Outcome(share, explanation + ".", evidence)
