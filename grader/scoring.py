"""Scores relative to the reference: the baseline, the floor, Griffin-Lim, and the points curve.

On a held-out set, three sources are scored once against the truth and cached by
content hash (held-out set, reference checkpoints, metrics, grader version):
- ``reference``: the reference solution's own ``reconstruct`` (full points at or above it);
- ``floor``: the same WaveNet untrained (no points at or below it);
- ``griffin_lim``: Griffin-Lim on the true log-mel, what a model-free vocoder reaches
  (context for the report, not a bar).
Between floor and reference, points follow the rubric's curve (:func:`points_fraction`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from grader import __version__
from grader.heldout import HeldoutSet
from reference import PROJECT_ROOT
from reference.evaluation import INTRUSIVE_METRICS, aggregate, score_pairs

CACHE_ROOT = PROJECT_ROOT / ".cache" / "baseline"
SOURCES = ("reference", "floor", "griffin_lim")
HIGHER_IS_BETTER = {"pesq_wb": True, "pesq_nb": True, "snr": True, "seg_snr": True, "si_sdr": True, "stoi": True,
                    "estoi": True, "lsd": False, "mcd": False, "mel_l1": False}
CURVES = ("linear", "sqrt")


@dataclass(frozen=True)
class Baseline:
    """Per source: per-clip score rows and means over the held-out clips; outputs in ``folder/<source>/``."""

    rows: dict[str, list[dict]]
    means: dict[str, dict[str, float | None]]
    folder: Path

    def audio(self, source: str, clip_id: str) -> Path:
        return self.folder / source / f"{clip_id}.wav"


def reference_checkpoints() -> list[Path]:
    from reference.generate import DEFAULT_VAE, DEFAULT_WAVENET

    return [DEFAULT_WAVENET, DEFAULT_VAE]


def baseline_key(heldout: HeldoutSet) -> str:
    digest = hashlib.sha256(f"{heldout.digest}|{__version__}|{','.join(INTRUSIVE_METRICS)}".encode())
    for checkpoint in reference_checkpoints():
        digest.update(checkpoint.read_bytes())
    return digest.hexdigest()[:16]


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

    staging = folder.with_name(folder.name + f".{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    reconstruct(heldout.mel_dir, staging / "reference")
    saved = torch.load(DEFAULT_WAVENET, map_location="cpu", weights_only=True)
    from reference.wavenet import WaveNet, WaveNetConfig

    torch.manual_seed(0)
    untrained = WaveNet(WaveNetConfig.from_dict(saved["config"]))
    torch.save(dict(saved, model=untrained.state_dict()), staging / "untrained-wavenet.pt")
    reconstruct(heldout.mel_dir, staging / "floor", checkpoint=staging / "untrained-wavenet.pt")
    reconstruct(heldout.mel_dir, staging / "griffin_lim", vocoder="griffin-lim")
    rows, means = {}, {}
    for source in SOURCES:
        pairs = [(clip.path, staging / source / f"{clip.path.stem}.wav") for clip in heldout.clips]
        scored = score_pairs(pairs, names=[clip.path.stem for clip in heldout.clips], jobs=jobs)
        rows[source] = [row.to_dict() for row in scored]
        means[source] = {metric: stats["mean"] for metric, stats in aggregate(scored).items()}
    (staging / "baseline.json").write_text(json.dumps({"rows": rows, "means": means}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def points_fraction(value: float | None, floor: float | None, reference: float | None,
                    higher_is_better: bool = True, curve: str = "linear") -> float:
    """Share of an item's points (0..1) for ``value`` between ``floor`` (0) and ``reference`` (1).

    ``linear`` is proportional; ``sqrt`` rewards the first steps above the floor more.
    A missing value gets 0; a missing or degenerate baseline compares with the reference alone.
    """
    if value is None:
        return 0.0
    if curve not in CURVES:
        raise ValueError(f"unknown curve {curve!r}; use one of {CURVES}")
    if not higher_is_better:
        value, floor, reference = -value, None if floor is None else -floor, None if reference is None else -reference
    if reference is None:
        return 0.0
    if floor is None or reference <= floor:
        return 1.0 if value >= reference else 0.0
    share = min(1.0, max(0.0, (value - floor) / (reference - floor)))
    return share ** 0.5 if curve == "sqrt" else share
