"""Reconstruct audio from log-mels: each log-mel goes through my VAE, then Griffin-Lim makes the waveform.

    python generate.py --mel-dir MELS --out-dir OUT
"""
import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from vaemel.preprocess import LogMelParams
from vaemel.train import load_checkpoint
from vaemel.vocoder import griffin_lim

HERE = Path(__file__).resolve().parent

parser = argparse.ArgumentParser(description="VAE reconstruction + Griffin-Lim")
parser.add_argument("--mel-dir", required=True)
parser.add_argument("--out-dir", required=True)
args = parser.parse_args()

mel_dir, out_dir = Path(args.mel_dir), Path(args.out_dir)
params_file = mel_dir / "params.json"
params = LogMelParams(**json.loads(params_file.read_text())) if params_file.exists() else LogMelParams()
vae, _ = load_checkpoint(HERE / "checkpoints" / "vae.pt")
names = sorted(mel_dir.glob("*.npy"))
mels = vae.reconstruct([np.load(path).astype(np.float32) for path in names])
out_dir.mkdir(parents=True, exist_ok=True)
for path, mel in zip(names, mels):
    sf.write(out_dir / f"{path.stem}.wav", griffin_lim(mel, params), params.sr)
print(f"reconstructed {len(names)} clips")
