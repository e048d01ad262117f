"""Reconstruct log-mels, or generate new clips, by refining random noise until it "converges".

    python generate.py --mel-dir MELS --out-dir OUT      reconstruct every MELS/<id>.npy as OUT/<id>.wav
    python generate.py --num N --seed S --out-dir OUT    generate OUT/0.wav ... OUT/<N-1>.wav

(An example submission that misbehaves differently in each mode. Reconstructing keeps every refinement step of
a padded batch, 100 MB a step, to plot the convergence: it allocates memory until it passes memory_bytes
(4 GiB) some 40 steps in, within seconds: verdict out_of_memory. Generating first waits for the lab's shared GPU,
which never comes in the grader's sandbox (asleep, using no CPU), then would wait for a float to equal its target
exactly, which it never does: either way the run lasts until the time limit, verdict timeout.)
"""
import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
CLIP_SECONDS = 3
MAX_SECONDS = 10  # every clip of a batch is padded to this length
BATCH = 78  # clips refined at once: 78 x 10 s x 16 kHz in float64, 100 MB a step

parser = argparse.ArgumentParser()
parser.add_argument("--mel-dir")
parser.add_argument("--out-dir", required=True)
parser.add_argument("--num", type=int, default=1)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()


def wait_for_gpu(poll_seconds=5):
    """The lab's GPU is shared: wait until it shows up (forever, where there is none)."""
    while not Path("/dev/nvidia0").exists():
        print("waiting for the GPU ...", flush=True)
        time.sleep(poll_seconds)


def refine(wav, target_energy):
    """Nudge the energy toward the target; stops when it is exactly equal (it never is: floats)."""
    energy = float(np.mean(wav ** 2))
    while energy != target_energy:
        wav = wav * (1 + 1e-9 * (target_energy - energy))
        energy = float(np.mean(wav ** 2)) + 1e-12
    return wav


def reconstruct_batch(mels, steps=100):
    """Waveforms whose energy envelopes follow ``mels`` (log-mels, n_mels x frames), one per mel; every step's
    batch is kept in ``history`` to plot how the refinement converges."""
    envelopes = np.zeros((BATCH, SR * MAX_SECONDS))
    for row, mel in enumerate(mels):
        envelope = np.exp(mel).mean(axis=0)
        envelopes[row] = np.interp(np.arange(SR * MAX_SECONDS), np.linspace(0, SR * MAX_SECONDS, len(envelope)),
                                   envelope)
    history = [0.1 * np.random.default_rng(0).standard_normal(envelopes.shape)]
    for _ in range(steps):
        step = history[-1] + envelopes
        step *= 0.5
        history.append(step)
    return history[-1]


out = Path(args.out_dir)
if args.mel_dir:
    paths = sorted(Path(args.mel_dir).glob("*.npy"))
    for start in range(0, len(paths), BATCH):
        names = paths[start:start + BATCH]
        wavs = reconstruct_batch([np.load(p) for p in names])
        for path, wav in zip(names, wavs):
            sf.write(out / f"{path.stem}.wav", wav[:SR * CLIP_SECONDS], SR)
else:
    wait_for_gpu()
    rng = np.random.default_rng(args.seed)
    print(f"generating {args.num} clips", flush=True)
    for k in range(args.num):
        wav = refine(0.1 * rng.standard_normal(SR * CLIP_SECONDS), target_energy=0.01)
        sf.write(out / f"{k}.wav", wav, SR)
