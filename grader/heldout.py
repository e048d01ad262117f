"""The clips a submission is graded on, prepared once per set and kept outside the sandbox.

A :class:`HeldoutSet` comes from a data set folder (``reference.data`` layout):
- ``clips``: the truth of ``reconstruct``. Only their log-mels (``mels/<id>.npy`` and
  ``params.json``) are ever mounted into the sandbox, never the audio;
- ``probes``: other unseen clips the ``mfcc`` entry point reads (their audio does enter
  the sandbox, so they are never the truth of ``reconstruct``);
- ``training``: the training split, for novelty (copies of training clips are found).

Preparation (once per set, cached by content hash) also computes what every submission
would otherwise recompute: the probes' reference MFCCs, the embeddings of every known
clip for novelty, and the held-out clips' own diversity.

Instructors grade on the ``heldout`` split; students' ``grade check`` on the public
``test`` split (shipped in the student kit), with probes from the same split.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reference import PROJECT_ROOT
from reference.data import Clip, read_manifest
from reference.evaluation_unpaired import TrainingIndex, diversity
from reference.preprocess import LogMelParams, load_audio, logmel, mfcc_from_file

DEFAULT_DATA = PROJECT_ROOT / "data" / "embedded"
CACHE_ROOT = PROJECT_ROOT / ".cache" / "heldout"
PROBE_COUNT = 6
PREPARATION_VERSION = "2"
"""Part of every set's digest: change it when :func:`_prepare` writes something new."""
PUBLIC_SPLIT = "test"
"""The split students see (the kit's public clips) and ``grade check`` grades on."""


@dataclass(frozen=True)
class HeldoutSet:
    """Clips to grade on and their prepared inputs (see the module's docstring)."""

    name: str
    clips: tuple[Clip, ...]
    probes: tuple[Clip, ...]
    training: tuple[Clip, ...]
    digest: str
    """sha256 over the clips' and probes' own hashes and the log-mel parameters: the set's version."""
    folder: Path
    """Prepared inputs: ``mels/`` (mounted for reconstruct) and ``probes/`` (mounted for mfcc)."""

    @property
    def mel_dir(self) -> Path:
        return self.folder / "mels"

    @property
    def probe_dir(self) -> Path:
        return self.folder / "probes"

    def truth(self, clip_id: str) -> Path:
        """The audio of held-out clip ``clip_id`` (host side only)."""
        return next(c.path for c in self.clips if c.path.stem == clip_id)

    @property
    def known_clips(self) -> tuple[Clip, ...]:
        """The clips a generated sample must not copy: training and held-out, in :meth:`novelty_index` order."""
        return self.training + self.clips

    def novelty_index(self) -> TrainingIndex:
        """Embeddings of :attr:`known_clips` for novelty checks, computed once and kept in the folder."""
        return TrainingIndex(tuple(c.path for c in self.known_clips), np.load(self.folder / "known-embeddings.npy"))

    def reference_mfcc(self, probe: Clip) -> np.ndarray:
        """The reference MFCC (20, frames) of a probe clip, computed once at preparation."""
        return np.load(self.folder / "probe-mfcc" / f"{probe.path.stem}.npy")

    @property
    def diversity(self) -> float:
        """Mean pairwise embedding distance among the held-out clips (what a varied set of samples reaches)."""
        return float((self.folder / "diversity.txt").read_text())


class HeldoutError(ValueError):
    """The data folder cannot give a held-out set; the message says how to make one."""


def load_heldout(data_dir: str | os.PathLike = DEFAULT_DATA, split: str = "heldout", probe_split: str = "test",
                 cache_root: Path = CACHE_ROOT) -> HeldoutSet:
    """The ``split`` clips of ``data_dir`` as a held-out set, prepared (once) under ``cache_root``."""
    data_dir = Path(data_dir)
    try:
        manifest = read_manifest(data_dir)
    except Exception as exc:
        raise HeldoutError(f"{data_dir}: {exc}") from None
    clips = tuple(c for c in manifest if c.split == split)
    if not clips:
        raise HeldoutError(f"{data_dir}: no clips in the {split!r} split; splits there: "
                           f"{sorted({c.split for c in manifest})}")
    others = [c for c in manifest if c.split == probe_split and c not in clips] or [
        c for c in manifest if c.split not in (split, "train")]
    if not others and split == PUBLIC_SPLIT:
        others = list(clips)  # public clips may be read by student code: they are in the kit anyway
    if not others:
        raise HeldoutError(f"{data_dir}: no clips outside the {split!r} split for the mfcc check to read")
    probes = tuple(others[:: max(1, len(others) // PROBE_COUNT)][:PROBE_COUNT])
    training = tuple(c for c in manifest if c.split == "train")
    digest = hashlib.sha256("|".join([PREPARATION_VERSION, *(c.sha256 for c in clips), "probes",
                                      *(c.sha256 for c in probes), "training", *(c.sha256 for c in training),
                                      LogMelParams().to_json()]).encode()).hexdigest()
    heldout = HeldoutSet(split, clips, probes, training, digest, cache_root / digest[:16])
    if not (heldout.folder / "ready").is_file():
        _prepare(heldout)
    return heldout


def _prepare(heldout: HeldoutSet) -> None:
    """Write the log-mels and the probe copies, world-readable (the sandbox runs as another user)."""
    staging = heldout.folder.with_name(heldout.folder.name + f".{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "mels").mkdir(parents=True)
    (staging / "probes").mkdir()
    params = LogMelParams()
    for clip in heldout.clips:
        np.save(staging / "mels" / f"{clip.path.stem}.npy", logmel(load_audio(clip.path), params))
    (staging / "mels" / "params.json").write_text(params.to_json())
    (staging / "probe-mfcc").mkdir()
    for clip in heldout.probes:
        shutil.copyfile(clip.path, staging / "probes" / clip.path.name)
        np.save(staging / "probe-mfcc" / f"{clip.path.stem}.npy", mfcc_from_file(clip.path))
    np.save(staging / "known-embeddings.npy", TrainingIndex.build([c.path for c in heldout.known_clips]).embeddings)
    (staging / "diversity.txt").write_text(repr(diversity([c.path for c in heldout.clips])) if len(heldout.clips) > 1
                                           else "0.0")
    for folder, _, files in os.walk(staging):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    (staging / "ready").touch()
    shutil.rmtree(heldout.folder, ignore_errors=True)
    heldout.folder.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(heldout.folder.parent, 0o755)
    staging.rename(heldout.folder)
