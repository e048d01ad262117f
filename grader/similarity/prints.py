"""One submission's fingerprints, made while it is graded and kept in ``OUT/fingerprints/<id>.json``.

What a class-level comparison (:mod:`grader.similarity.classwide`) needs of a submission, so that it never reads
a submission, its audio or its checkpoints again:

- code: the winnowed hashes of its ``.py`` files and notebook code cells (:mod:`grader.similarity.code`), from
  the code the grading read once (``code.units``), with the text of each unit for the pair pages;
- audio: the fingerprints (:mod:`grader.similarity.audio`) of the samples handed in (from the report's
  re-encoded copies) and of every clip its ``reconstruct`` and ``sample`` runs wrote (the waveforms decoded
  once for scoring), those the grading made;
- checkpoints: the sketches of its weight files' tensors (:mod:`grader.similarity.weights`): read here where
  the format allows it without unpickling, and HDF5 (Keras) inside the sandbox, whose output is untrusted.

A submission re-scored from kept evidence (:mod:`grader.evidence`) keeps the fingerprints of the grading that
made that evidence. A fingerprint that cannot be made is left empty and its ``problems`` say why: it never
fails a grading.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from grader.limits import RunLimits
from grader.similarity import weights_inside
from grader.similarity.audio import ClipFingerprint, clip_fingerprint, file_fingerprint
from grader.similarity.code import CodeFingerprint, fingerprint
from grader.similarity.weights import MAX_SKETCH_JSON_BYTES, WeightsFingerprint, fingerprint_weights
from reference import SAMPLE_RATE
from reference.files import atomic_write

if TYPE_CHECKING:
    from grader.context import CheckContext

FINGERPRINTS_FOLDER = "fingerprints"
"""Folder of an output folder holding one fingerprint file per submission id."""
MAX_SOURCE_CHARS = 1_000_000
"""Characters of code text kept for the pair pages, per submission (what :func:`grader.similarity.code.fingerprint`
reads at most)."""
INSIDE_LIMITS = RunLimits(wall_seconds=60.0, captured_bytes=MAX_SKETCH_JSON_BYTES)
"""The sandboxed sketching of HDF5 checkpoints: a minute at most, its JSON captured whole."""


@dataclass(frozen=True)
class SubmissionPrints:
    """One submission's fingerprints: code, audio by role and clip name, checkpoints; and what could not be made."""

    submission_id: str
    code: CodeFingerprint
    sources: dict[str, str]
    """Unit label -> its text (at most :data:`MAX_SOURCE_CHARS` in all), shown side by side on a pair's page."""
    audio: dict[str, dict[str, ClipFingerprint]]
    """Role (``handed_in``, ``reconstruct``, ``sample``) -> clip name -> fingerprint."""
    weights: WeightsFingerprint
    media: dict[str, str] = field(default_factory=dict)
    """``handed_in`` clip name -> its re-encoded copy in the report (relative to the output folder)."""
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"submission_id": self.submission_id, "code": self.code.to_dict(), "sources": self.sources,
                           "audio": {role: {name: clip.to_dict() for name, clip in clips.items()}
                                     for role, clips in self.audio.items()},
                           "weights": self.weights.to_json(), "media": self.media, "problems": self.problems})

    @classmethod
    def from_json(cls, text: str) -> SubmissionPrints:
        """The fingerprints :meth:`to_json` wrote (a file the grader wrote itself)."""
        data = json.loads(text)
        return cls(data["submission_id"], CodeFingerprint.from_dict(data["code"]), data["sources"],
                   {role: {name: ClipFingerprint.from_dict(clip) for name, clip in clips.items()}
                    for role, clips in data["audio"].items()},
                   WeightsFingerprint.from_json_value(data["weights"]), data["media"],
                   data["problems"])


def path_of(out_dir: Path, submission_id: str) -> Path:
    """Where the fingerprints of ``submission_id`` are kept."""
    return out_dir / FINGERPRINTS_FOLDER / f"{submission_id}.json"


def keep_prints(ctx: CheckContext, submission_id: str) -> None:
    """Fingerprint the submission ``ctx`` graded (see the module's notes) and write them, atomically."""
    try:
        prints = submission_prints(ctx, submission_id)
    except Exception as error:  # the grader's own failure: the grading stands, the class comparison lacks this one
        prints = SubmissionPrints(submission_id, fingerprint([]), {}, {}, WeightsFingerprint(()),
                                  problems=[f"no fingerprints were made ({type(error).__name__}: {error})"])
    atomic_write(path_of(ctx.out_root, submission_id), prints.to_json())


def submission_prints(ctx: CheckContext, submission_id: str) -> SubmissionPrints:
    """The fingerprints of the submission ``ctx`` has graded, from what its grading made."""
    problems: list[str] = []
    units, budget = [], MAX_SOURCE_CHARS
    for parsed in ctx.need("code.units").units:
        text = parsed.unit.source[:budget]
        budget -= len(text)
        units.append((parsed.unit.name, text))
    audio, media = _audio(ctx, problems)
    return SubmissionPrints(submission_id, fingerprint(units), dict(units), audio, _weights(ctx, problems), media,
                            problems)


def _audio(ctx: CheckContext, problems: list[str]) -> tuple[dict[str, dict[str, ClipFingerprint]], dict[str, str]]:
    """The clips the grading decoded or re-encoded, fingerprinted, by role; and the handed-in ones' report copies."""
    audio: dict[str, dict[str, ClipFingerprint]] = {}
    media: dict[str, str] = {}
    for sample in ctx.artefacts.get("samples.handed_in", []):
        if sample.audio:
            try:
                audio.setdefault("handed_in", {})[sample.name] = file_fingerprint(ctx.out_root / sample.audio)
                media[sample.name] = sample.audio
            except Exception as error:  # a clip the grader re-encoded itself: any failure is the grader's
                problems.append(f"{sample.name}: no fingerprint ({error})")
    for role in ("reconstruct", "sample"):
        outputs = ctx.artefacts.get(f"{role}.run")
        if outputs is None:
            continue
        for clip in outputs.clips(ctx.entry_names(role)):
            if clip.wave is not None and clip.wave.size:
                audio.setdefault(role, {})[clip.name] = clip_fingerprint(clip.wave, SAMPLE_RATE)
    return audio, media


def _weights(ctx: CheckContext, problems: list[str]) -> WeightsFingerprint:
    """The submission's weight files sketched: here, and in the sandbox for the formats only a C library reads."""
    from grader import sandbox
    from grader.model_use import withheld_files

    prints = fingerprint_weights(ctx.submission.work_dir, withheld_files(ctx))
    if not prints.pending_inside:
        return prints
    workdir = ctx.fresh_workdir("fingerprints", ctx.runner("reconstruct"))  # nothing run leaves anything behind
    result = sandbox.run(["python", "-I", "{inside}", *prints.pending_inside], workdir,
                         inputs={"inside": Path(weights_inside.__file__)}, limits=INSIDE_LIMITS,
                         allow_unsandboxed=ctx.allow_unsandboxed, environment=ctx.environment)
    try:
        if not result.ok:
            raise ValueError(result.message)
        return prints.with_inside(WeightsFingerprint.from_untrusted_json(result.stdout))
    except ValueError as error:
        problems.append(f"the checkpoints {', '.join(prints.pending_inside)} were not sketched: {error}")
        return prints
