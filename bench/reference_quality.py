"""How good are the reference models on clips they never heard? Baselines measured in the same run.

Each system voices the contract's log-mel of held-out clips, and is scored against
the true clip with ``reference.evaluation`` (PESQ wide-band at 16 kHz, STOI, SNR, LSD):

  true audio            the clip itself (the ceiling)
  griffin-lim           Griffin-Lim (32 iterations) on the true log-mel: no model at all
  wavenet               the committed WaveNet vocoder on the true log-mel
  vae + griffin-lim     the committed VAE's reconstruction of the log-mel, then Griffin-Lim
  vae + wavenet         the VAE's reconstruction, then the WaveNet vocoder
  untrained wavenet     the same WaveNet freshly initialised (the floor)

Sets: the embedded data set's held-out split (data/embedded, `make data`) and
"phone number" clips of FSDD speakers (../shared/data/fsdd) that no model trained on.
The goal: the WaveNet vocoder beats Griffin-Lim on the true log-mel on PESQ on both.

    .venv/bin/python bench/reference_quality.py [--clips 12] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference import PROJECT_ROOT  # noqa: E402  (sets numba's cache folder first)

METRICS = ("pesq_wb", "stoi", "snr", "lsd")
SHARED_DATA = Path(os.environ.get("SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def embedded_clips(limit: int) -> list[Path]:
    from reference.data import read_manifest

    folder = PROJECT_ROOT / "data" / "embedded"
    clips = [c.path for c in read_manifest(folder) if c.split == "heldout"]
    return clips[:limit]


def fsdd_clips(limit: int) -> list[Path]:
    """Phone-number clips of the two FSDD speakers of the held-out and test splits (built once, cached)."""
    from reference.data import build_from_recordings, read_manifest

    folder = PROJECT_ROOT / ".cache" / "bench" / "fsdd-phone-numbers"
    if not (folder / "manifest.csv").is_file():
        build_from_recordings(SHARED_DATA / "fsdd", folder, seed=0, per_speaker=(limit + 1) // 2)
    clips = [c.path for c in read_manifest(folder) if c.split in ("heldout", "test")]
    return clips[:limit]


def systems(true_wavs: list[np.ndarray], mels: list[np.ndarray], args) -> dict[str, tuple[list[np.ndarray], float]]:
    """Each system's waveforms for the clips and the seconds it took."""
    import torch

    from reference.preprocess import LogMelParams
    from reference.train import load_checkpoint
    from reference.vocoder import griffin_lim
    from reference.wavenet import WaveNet, generate

    params = LogMelParams()
    wavenet, _ = load_checkpoint(args.checkpoint)
    vae, _ = load_checkpoint(args.vae_checkpoint)
    torch.manual_seed(0)
    untrained = WaveNet(wavenet.config).eval()
    vae_mels = vae.reconstruct(mels)
    runs = {
        "true audio": lambda: true_wavs,
        "griffin-lim": lambda: [griffin_lim(m, params) for m in mels],
        "wavenet": lambda: generate(wavenet, mels, seed=0, temperature=args.temperature),
        "vae + griffin-lim": lambda: [griffin_lim(m, params) for m in vae_mels],
        "vae + wavenet": lambda: generate(wavenet, vae_mels, seed=0, temperature=args.temperature),
        "untrained wavenet": lambda: generate(untrained, mels, seed=0),
    }
    out = {}
    for name, run in runs.items():
        started = time.perf_counter()
        out[name] = (run(), time.perf_counter() - started)
    return out


def score_set(label: str, paths: list[Path], args) -> dict[str, dict]:
    from reference.evaluation import aggregate, score_pairs
    from reference.preprocess import LogMelParams, load_audio, logmel

    params = LogMelParams()
    true_wavs, mels = [], []
    for path in paths:
        wav = load_audio(path, params.sr)
        mel = logmel(wav, params)
        true_wavs.append(wav[: (mel.shape[1] - 1) * params.hop_length])
        mels.append(mel)
    seconds = sum(len(w) for w in true_wavs) / params.sr
    print(f"\n== {label}: {len(paths)} clips, {seconds:.1f} s of audio")
    results = {}
    for name, (wavs, took) in systems(true_wavs, mels, args).items():
        rows = score_pairs(list(zip(true_wavs, wavs)), names=[p.stem for p in paths], metrics=METRICS,
                           jobs=args.jobs)
        results[name] = aggregate(rows, METRICS) | {"seconds": took}
    header = f"{'system':<19}" + "".join(f"{m:>14}" for m in METRICS) + f"{'time s':>9}"
    print(header)
    for name, summary in results.items():
        cells = "".join(f"{summary[m]['mean']:>14.3f}" if summary[m]["mean"] is not None else f"{'-':>14}"
                        for m in METRICS)
        print(f"{name:<19}{cells}{summary['seconds']:>9.1f}")
    wavenet, gl = results["wavenet"]["pesq_wb"], results["griffin-lim"]["pesq_wb"]
    margin = wavenet["mean"] - gl["mean"]
    print(f"PESQ wb, WaveNet vocoder vs Griffin-Lim on the true log-mel: {wavenet['mean']:.3f} vs {gl['mean']:.3f} "
          f"(margin {margin:+.3f}, ratio {wavenet['mean'] / gl['mean']:.2f}; WaveNet 95% CI "
          f"{wavenet['ci_low']:.2f}..{wavenet['ci_high']:.2f}) -> {'beats' if margin > 0 else 'does NOT beat'} it")
    return results


def main() -> int:
    from reference.generate import DEFAULT_VAE, DEFAULT_WAVENET
    from reference.train import load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12, help="clips per set (default 12)")
    parser.add_argument("--jobs", type=int, default=2, help="scoring processes (default 2)")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_WAVENET)
    parser.add_argument("--vae-checkpoint", type=Path, default=DEFAULT_VAE)
    parser.add_argument("--temperature", type=float, default=1.0, help="WaveNet sampling temperature")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    for path in (args.checkpoint, args.vae_checkpoint):
        training = load_checkpoint(path)[1]["training"]
        print(f"{path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}: "
              f"{training['step']} steps, {training['seconds'] / 60:.1f} min of CPU training, seed {training['seed']}")
    score_set("embedded held-out split", embedded_clips(args.clips), args)
    if (SHARED_DATA / "fsdd").is_dir():
        score_set("FSDD speakers unseen in training", fsdd_clips(args.clips), args)
    else:
        print(f"\nFSDD not found at {SHARED_DATA / 'fsdd'}: set SHARED_DATA to the folder holding fsdd/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
