"""Whether a submission's model is what made its audio: the entry run once more without the model's weights.

Griffin-Lim alone is a vocoder, not a model: a ``generate.py`` that voices the log-mel with it
and hands in a checkpoint it never reads writes the same audio with or without that checkpoint.
So the ``reconstruct`` entry (``sample`` where there is none) runs a second time, in a fresh work
folder without the submission's weight files (:meth:`CheckContext.entry_without_checkpoints`),
and the two runs' clips are compared:

- ``used``: without its weights the entry fails (a missing-file error, any exit with an error),
  or writes different audio;
- ``not_used``: it writes the same audio (the same samples, or a log-mel within
  :data:`NEAR_IDENTICAL_MEL_L1` of it: two Griffin-Lim runs from different random phases differ
  by 0.10-0.11), or the submission holds no weights at all and its run trains nothing;
- ``trained_in_run``: a notebook whose cells that ran train a model (a training loop reachable
  in them, :mod:`grader.checks.static`): it needs no weights handed in, so none are withheld;
- ``unknown``: nothing to compare (the first run wrote no clip, the second was stopped by a
  limit): the quality item is left as its own scores make it.

The verdict is the artefact ``model.use`` (:mod:`grader.context`): the quality and checkpoint items share one
second run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal

import numpy as np

from grader.artefacts import provides
from grader.checks.static import count_evidence
from grader.context import CheckContext, EntryOutputs
from grader.notebook import NotebookRun
from grader.outputs import OutputClip
from reference import SAMPLE_RATE

Verdict = Literal["used", "not_used", "trained_in_run", "unknown"]
NEAR_IDENTICAL_MEL_L1 = 0.2
"""Mean absolute log-mel difference (natural log) under which two clips are the same audio. Measured on the
embedded held-out speech: Griffin-Lim run twice from random phases, 0.10-0.11; Griffin-Lim 32 against 8
iterations, 0.13-0.14; Griffin-Lim against the truth, 0.16-0.21; noise 35 dB below, 0.8-1.2."""
COMPARED_CLIPS = 4
"""Clips compared between the two runs (each a log-mel of at most 60 s)."""
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".h5", ".hdf5", ".keras", ".safetensors", ".npz", ".npy",
                   ".pkl", ".pickle", ".joblib", ".onnx", ".index", ".pb", ".tflite", ".msgpack")
"""Files withheld beside discovery's ``checkpoints`` (weights saved where the contract's patterns miss them)."""
LIMIT_VERDICTS = ("timeout", "out_of_memory", "killed_by_signal", "output_limit", "sandbox_unavailable")
"""Ways a run ends that say nothing about the code (a limit, the machine): the verdict is then unknown."""


@dataclass(frozen=True)
class ModelUse:
    """Whether the model made the audio: ``verdict`` (see the module's notes), why in words, and what was seen."""

    verdict: Verdict
    explanation: str
    evidence: list[str] = field(default_factory=list)

    @property
    def model_free(self) -> bool:
        """The audio does not depend on a model: the quality item keeps only its ``model_free_share``."""
        return self.verdict == "not_used"


@provides("model.use", needs=("reconstruct.run", "sample.run", "code.units"), kept=ModelUse)
def model_use(ctx: CheckContext) -> ModelUse:
    """The :class:`ModelUse` of the submission: its ``reconstruct`` entry (``sample`` where it has none) run
    again without its weights, under the entry's own item (:meth:`CheckContext.runner`)."""
    role = "reconstruct" if ctx.discovery.findings["reconstruct"].status != "missing" else "sample"
    if ctx.discovery.findings[role].status == "missing":
        return ModelUse("unknown", "No generation entry point: nothing shows what made the audio.")
    first = ctx.need(f"{role}.run")
    names = _written(first)
    if not names:
        return ModelUse("unknown", f"The `{role}` entry wrote no clip to compare: nothing shows what made the audio.")
    trains = _trains_in_run(ctx, ctx.discovery.findings[role].value, first.run.notebook)
    weights = withheld_files(ctx)
    if not weights:
        if trains:
            return ModelUse("trained_in_run", f"The notebook's cells that ran train the model ({trains}); no "
                            "weights are handed in, and none are needed.")
        return ModelUse("not_used", "No weights are handed in and the run trains no model: the audio cannot come "
                        "from a trained model (Griffin-Lim alone is a vocoder, not a model). Hand in the trained "
                        "weights and load them in the entry point.")
    runs = len(ctx.runs)
    second = ctx.entry_without_checkpoints(role, weights)
    shown = ", ".join(weights[:4]) + (f" and {len(weights) - 4} more" if len(weights) > 4 else "")
    if not second.ok or second.out_dir is None:
        ended = [run.result.verdict for run in ctx.runs[runs:]]
        if any(str(verdict) in LIMIT_VERDICTS for verdict in ended):
            return ModelUse("unknown", f"Run again without {shown}, the `{role}` entry was stopped by a limit "
                            f"({second.message}): whether it needs its weights is not known.")
        return ModelUse("used", f"Without {shown}, the `{role}` entry fails: it needs its weights. ({second.message})")
    same, evidence = _compare(first, EntryOutputs(second), names)
    if same is None:
        return ModelUse("used", f"Without {shown}, the `{role}` entry writes other clips than with them: "
                        "it depends on its weights.", evidence)
    if not same:
        return ModelUse("used", f"Without {shown}, the `{role}` entry writes different audio: its model makes "
                        "the audio.", evidence)
    if trains:
        return ModelUse("trained_in_run", f"The audio is the same without {shown}, but the notebook's cells that "
                        f"ran train the model ({trains}): it needs no weights handed in.", evidence)
    return ModelUse("not_used", f"Run again without {shown}, the `{role}` entry writes the same audio: the "
                    "weights handed in are not what made it, so no trained model did (Griffin-Lim alone is a "
                    "vocoder, not a model).", evidence)


def withheld_files(ctx: CheckContext) -> list[str]:
    """The submission's weight files: discovery's ``checkpoints`` and every file named like weights."""
    samples = set(ctx.discovery.findings["samples"].files)
    named = [name for name in ctx.submission.files if PurePosixPath(name).suffix.lower() in WEIGHT_SUFFIXES
             or ".data-" in PurePosixPath(name).name]
    return sorted((set(ctx.discovery.findings["checkpoints"].files) | set(named)) - samples)


def _written(outputs: EntryOutputs) -> list[str]:
    """Names of the usable clips a run wrote (at most :data:`COMPARED_CLIPS`)."""
    if outputs.run.out_dir is None or not outputs.run.out_dir.is_dir():
        return []
    return [clip.name for clip in outputs.clips() if clip.usable][:COMPARED_CLIPS]


def _compare(first: EntryOutputs, second: EntryOutputs, names: list[str]) -> tuple[bool | None, list[str]]:
    """Whether every clip of ``names`` is the same audio in both runs (None: the second run lacks one)."""
    from reference.evaluation import MetricUnavailable, mel_l1
    from reference.preprocess import AudioLoadError

    ours = {clip.name: clip for clip in first.clips(names)}
    theirs = {clip.name: clip for clip in second.clips(names)}
    evidence = []
    for name in names:
        clip = theirs.get(name)
        if clip is None or not clip.usable:
            return None, [f"{name}: not written without the weights"]
        try:
            a, b = _wave(ours[name]), _wave(clip)
            distance = 0.0 if len(a) == len(b) and np.array_equal(a, b) else mel_l1(a, b)
        except (AudioLoadError, MetricUnavailable) as error:
            return False, [f"{name}: cannot be compared ({error})"]
        evidence.append(f"{name}: log-mel difference with and without the weights {distance:.3f} "
                        f"(the same audio under {NEAR_IDENTICAL_MEL_L1})")
        if distance >= NEAR_IDENTICAL_MEL_L1:
            return False, evidence
    return True, evidence


def _wave(clip: OutputClip) -> np.ndarray:
    """The usable clip's waveform at the contract's rate, as decoded once (one with no samples is read again, for
    :func:`~reference.preprocess.load_audio` to say so)."""
    from reference.preprocess import load_audio

    return clip.wave if clip.wave is not None else load_audio(clip.path, SAMPLE_RATE)


def _trains_in_run(ctx: CheckContext, entry: str | None, run: NotebookRun | None) -> str:
    """Where a notebook entry's cells that ran (in the grader's ``run`` of it) train a model, in words; '' when
    they do not, or the entry is not a notebook. Its cells are read from the code parsed once (``code.units``)."""
    if not entry or not entry.endswith(".ipynb") or run is None:
        return ""
    ran = {cell.number for cell in run.cells if cell.status != "not run"}
    cells = [dataclasses.replace(unit, summary=dataclasses.replace(unit.summary, ran=unit.unit.cell in ran
                                                                   if run.cells else True))
             if unit.summary is not None else unit for unit in ctx.need("code.units").units if unit.unit.file == entry]
    found = count_evidence(cells)["training_loop"]
    return "; ".join(str(finding) for finding in found[:3])
