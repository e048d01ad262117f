"""The baseline: what the reference, an untrained model and Griffin-Lim score on a held-out set.

On a held-out set, three sources are scored once against the truth and cached by
content hash and the digest of the code that makes them (:func:`baseline_key`):
- ``reference``: the reference solution's own ``reconstruct`` (its magnitude vocoder);
- ``floor``: the assignment's model untrained: the reference WaveNet freshly initialised;
- ``griffin_lim``: Griffin-Lim (32 iterations, a fixed seed) on the true log-mel, what a
  model-free vocoder reaches.
A quality item's bars name these sources or numbers (:mod:`grader.bars`). Every score of
a held-out clip, the baseline's and the students', comes from :func:`score_heldout`: PESQ
and STOI on spoken clips only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grader.cache import BASELINE_CODE, code_digest, key, publish, staging_folder
from grader.heldout import HeldoutSet
from reference import PROJECT_ROOT
from reference.evaluation import INTRUSIVE_METRICS, Audio, ClipScores, aggregate, score_pairs
from reference.files import file_digest
from reference.generate import COMMITTED_CHECKPOINTS

CACHE_ROOT = PROJECT_ROOT / ".cache" / "baseline"
SOURCES = ("reference", "floor", "griffin_lim")
HELDOUT_METRICS = INTRUSIVE_METRICS
"""The metrics :func:`score_heldout` computes for every held-out clip, the baseline's and the students' alike:
the metrics a quality item may score (``reference.evaluation.METRICS`` has their units and directions)."""


@dataclass(frozen=True)
class Baseline:
    """Per source: per-clip score rows and means over the held-out clips; outputs in ``folder/<source>/``."""

    rows: dict[str, list[dict]]
    means: dict[str, dict[str, float | None]]
    folder: Path

    def audio(self, source: str, clip_id: str) -> Path:
        return self.folder / source / f"{clip_id}.wav"


def baseline_key(heldout: HeldoutSet) -> str:
    """The baseline's cache key (16 hex digits): the held-out set, the code that makes and scores the sources
    (:data:`grader.cache.BASELINE_CODE`: the reference solution, its metrics included, and this module) and the
    reference checkpoints' bytes. A fix to a metric or to the reference gives a new baseline."""
    return key(heldout.digest, code_digest(BASELINE_CODE), *map(file_digest, COMMITTED_CHECKPOINTS))[:16]


def load_baseline(heldout: HeldoutSet, jobs: int = 2, cache_root: Path = CACHE_ROOT) -> Baseline:
    """The baseline of ``heldout``, computed on first use (about a minute) and cached."""
    folder = cache_root / baseline_key(heldout)
    if not (folder / "baseline.json").is_file():
        _compute(heldout, folder, jobs)
    saved = json.loads((folder / "baseline.json").read_text())
    return Baseline(saved["rows"], saved["means"], folder)


def _compute(heldout: HeldoutSet, folder: Path, jobs: int) -> None:
    import torch

    from reference.generate import DEFAULT_WAVENET, reconstruct

    staging = staging_folder(folder)
    reconstruct(heldout.mel_dir, staging / "reference")
    saved = torch.load(DEFAULT_WAVENET, map_location="cpu", weights_only=True)
    from reference.wavenet import WaveNet, WaveNetConfig

    torch.manual_seed(0)
    untrained = WaveNet(WaveNetConfig.from_dict(saved["config"]))
    torch.save(dict(saved, model=untrained.state_dict()), staging / "untrained-wavenet.pt")
    reconstruct(heldout.mel_dir, staging / "floor", vocoder="wavenet", checkpoint=staging / "untrained-wavenet.pt")
    reconstruct(heldout.mel_dir, staging / "griffin_lim", vocoder="griffin-lim")
    rows, means = {}, {}
    for source in SOURCES:
        scored = score_heldout(heldout, {clip.path.stem: staging / source / f"{clip.path.stem}.wav"
                                         for clip in heldout.clips}, jobs)
        rows[source] = [row.to_dict() for row in scored]
        means[source] = {metric: stats["mean"] for metric, stats in aggregate(scored).items()}
    (staging / "baseline.json").write_text(json.dumps({"rows": rows, "means": means}, indent=1))
    publish(staging, folder)


def score_heldout(heldout: HeldoutSet, outputs: dict[str, Audio], jobs: int) -> list[ClipScores]:
    """Rows of every held-out clip named in ``outputs`` (clip id -> the audio to score against its truth), in
    the held-out set's order; PESQ and STOI only where the clip is speech (:attr:`reference.data.Clip.is_speech`)."""
    clips = [clip for clip in heldout.clips if clip.path.stem in outputs]
    return score_pairs([(heldout.truth(clip.path.stem), outputs[clip.path.stem]) for clip in clips],
                       names=[clip.path.stem for clip in clips], metrics=HELDOUT_METRICS, jobs=jobs,
                       speech=[clip.is_speech for clip in clips])
