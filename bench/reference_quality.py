"""How good is the reference on clips it never heard? Baselines measured in the same run.

Each system voices the contract's log-mel of held-out clips and is scored against the
true clip with ``reference.evaluation`` (PESQ wide- and narrow-band, STOI, LSD; PESQ and
STOI on spoken clips only, LSD on every clip):

  reference vocoder     the reference's ``reconstruct``: the magnitude vocoder (reference/checkpoints/magnitude.pt)
  griffin-lim           Griffin-Lim (32 iterations, a fixed seed) on the true log-mel: no model at all
  wavenet               the assignment's autoregressive WaveNet (mu-law, incremental generation)
  untrained (floor)     the same WaveNet freshly initialised: the grader's default floor

Sets: the embedded data set's held-out split (data/embedded, `make data`: spoken and
piano clips) and "phone number" clips of the two FSDD speakers no model trained on
(../shared/data/fsdd). The goal: the reference vocoder above Griffin-Lim by at least
0.2 PESQ wb on both. Real-time factor: seconds of generation per second of audio, with
``--threads`` torch threads (1, as the sandbox runs student code).

    .venv/bin/python bench/reference_quality.py [--clips 12] [--jobs 2] [--threads 1]
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

METRICS = ("pesq_wb", "pesq_nb", "stoi", "lsd")
SHARED_DATA = Path(os.environ.get("SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
GOAL = 0.2
"""PESQ wb the reference vocoder must gain over Griffin-Lim on the true log-mel."""


def embedded_clips(limit: int):
    from reference.data import read_manifest

    return [c for c in read_manifest(PROJECT_ROOT / "data" / "embedded") if c.split == "heldout"][:limit]


def fsdd_clips(limit: int):
    """Phone-number clips of the two FSDD speakers of the held-out and test splits (built once, cached)."""
    from reference.data import build_from_recordings, read_manifest

    per_speaker = (limit + 1) // 2
    folder = PROJECT_ROOT / ".cache" / "bench" / f"fsdd-phone-numbers-{per_speaker}"
    if not (folder / "manifest.csv").is_file():
        build_from_recordings(SHARED_DATA / "fsdd", folder, seed=0, per_speaker=per_speaker)
    return [c for c in read_manifest(folder) if c.split in ("heldout", "test")][:limit]


def systems(mels: list[np.ndarray]) -> dict[str, callable]:
    """Each system: a function of no arguments giving the waveforms of ``mels``."""
    import torch

    from reference.generate import vocode
    from reference.preprocess import LogMelParams
    from reference.train import load_checkpoint
    from reference.wavenet import WaveNet, generate

    params = LogMelParams()
    wavenet, _ = load_checkpoint(PROJECT_ROOT / "reference" / "checkpoints" / "wavenet.pt")
    torch.manual_seed(0)
    untrained = WaveNet(wavenet.config).eval()
    return {
        "reference vocoder": lambda: vocode(mels, params, "magnitude"),
        "griffin-lim": lambda: vocode(mels, params, "griffin-lim"),
        "wavenet": lambda: generate(wavenet, mels, seed=0),
        "untrained (floor)": lambda: generate(untrained, mels, seed=0),
    }


def score_set(label: str, clips, jobs: int) -> dict[str, dict]:
    from reference.evaluation import aggregate, score_pairs
    from reference.preprocess import LogMelParams, load_audio, logmel

    params = LogMelParams()
    true_wavs, mels = [], []
    for clip in clips:
        wav = load_audio(clip.path, params.sr)
        mel = logmel(wav, params)
        true_wavs.append(wav[: (mel.shape[1] - 1) * params.hop_length])
        mels.append(mel)
    seconds = sum(len(w) for w in true_wavs) / params.sr
    spoken = [clip.is_speech for clip in clips]
    print(f"\n== {label}: {len(clips)} clips ({sum(spoken)} spoken), {seconds:.1f} s of audio")
    results = {}
    for name, run in systems(mels).items():
        started = time.perf_counter()
        wavs = run()
        took = time.perf_counter() - started
        rows = score_pairs(list(zip(true_wavs, wavs)), names=[c.path.stem for c in clips], metrics=METRICS,
                           jobs=jobs, speech=spoken)
        results[name] = aggregate(rows, METRICS) | {"rtf": took / seconds}
    print(f"{'system':<19}" + "".join(f"{m:>10}" for m in METRICS) + f"{'RTF':>8}")
    for name, summary in results.items():
        cells = "".join(f"{summary[m]['mean']:>10.3f}" if summary[m]["mean"] is not None else f"{'-':>10}"
                        for m in METRICS)
        print(f"{name:<19}{cells}{summary['rtf']:>8.3f}")
    ours, gl = results["reference vocoder"]["pesq_wb"], results["griffin-lim"]["pesq_wb"]
    margin = ours["mean"] - gl["mean"]
    print(f"PESQ wb, reference vocoder vs Griffin-Lim on the true log-mel: {ours['mean']:.3f} vs {gl['mean']:.3f} "
          f"(margin {margin:+.3f}, ratio {ours['mean'] / gl['mean']:.2f}; reference 95% CI "
          f"{ours['ci_low']:.2f}..{ours['ci_high']:.2f}) -> goal of +{GOAL} {'met' if margin >= GOAL else 'NOT met'}")
    return results


def main() -> int:
    from reference.train import load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12, help="clips per set (default 12; the embedded held-out "
                        "split has 12)")
    parser.add_argument("--jobs", type=int, default=2, help="scoring processes (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for generation (default 1)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    for name in ("magnitude", "wavenet"):
        path = PROJECT_ROOT / "reference" / "checkpoints" / f"{name}.pt"
        training = load_checkpoint(path)[1]["training"]
        print(f"reference/checkpoints/{name}.pt: {training['step']} steps, {training['seconds'] / 60:.1f} min of "
              f"training on {training.get('device', 'CPU')}, seed {training['seed']}")
    score_set("embedded held-out split", embedded_clips(args.clips), args.jobs)
    if (SHARED_DATA / "fsdd").is_dir():
        score_set("FSDD speakers unseen in training", fsdd_clips(args.clips), args.jobs)
    else:
        print(f"\nFSDD not found at {SHARED_DATA / 'fsdd'}: set SHARED_DATA to the folder holding fsdd/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
