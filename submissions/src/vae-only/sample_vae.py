"""New clips from the VAE: decode random latents into log-mels, then Griffin-Lim.

    python sample_vae.py --num 3 --seed 1 --out-dir samples
"""
import argparse
from pathlib import Path

import soundfile as sf

from vaemel.preprocess import LogMelParams
from vaemel.train import load_checkpoint
from vaemel.vocoder import griffin_lim

HERE = Path(__file__).resolve().parent

parser = argparse.ArgumentParser()
parser.add_argument("--num", type=int, default=3)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out-dir", default="samples")
args = parser.parse_args()

params = LogMelParams()
vae, _ = load_checkpoint(HERE / "checkpoints" / "vae.pt")
frames = 1 + 3 * params.sr // params.hop_length  # 3 seconds
out_dir = Path(args.out_dir)
out_dir.mkdir(parents=True, exist_ok=True)
for k, mel in enumerate(vae.sample(args.num, frames, seed=args.seed)):
    sf.write(out_dir / f"{k}.wav", griffin_lim(mel, params), params.sr)
