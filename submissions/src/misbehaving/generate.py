"""Generate audio by refining random noise until it "converges".

    python generate.py --mel-dir MELS --out-dir OUT
    python generate.py --num N --seed S --out-dir OUT
"""
import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

parser = argparse.ArgumentParser()
parser.add_argument("--mel-dir")
parser.add_argument("--out-dir", required=True)
parser.add_argument("--num", type=int, default=1)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()


def refine(wav, target_energy):
    """Nudge the energy toward the target; stops when it is exactly equal (it never is: floats)."""
    energy = float(np.mean(wav ** 2))
    while energy != target_energy:
        wav = wav * (1 + 1e-9 * (target_energy - energy))
        energy = float(np.mean(wav ** 2)) + 1e-12
    return wav


rng = np.random.default_rng(args.seed)
names = [p.stem for p in sorted(Path(args.mel_dir).glob("*.npy"))] if args.mel_dir else [str(k) for k in range(args.num)]
print(f"generating {len(names)} clips", flush=True)
for name in names:
    wav = refine(0.1 * rng.standard_normal(48000), target_energy=0.01)
    sf.write(Path(args.out_dir) / f"{name}.wav", wav, 16000)
