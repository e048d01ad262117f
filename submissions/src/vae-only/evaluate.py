"""PESQ and SNR of VAE + Griffin-Lim reconstructions of test clips.

    python evaluate.py --data DATA/test --out report.md
"""
import argparse
from pathlib import Path

import librosa
import numpy as np
from pesq import pesq

from vaemel.preprocess import LogMelParams, logmel
from vaemel.train import load_checkpoint
from vaemel.vocoder import griffin_lim

HERE = Path(__file__).resolve().parent

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--out", type=Path, default=Path("report.md"))
args = parser.parse_args()

params = LogMelParams()
vae, _ = load_checkpoint(HERE / "checkpoints" / "vae.pt")
files = sorted(args.data.glob("*.wav"))[::4][:6]
pesqs, snrs = [], []
for path in files:
    ref, _ = librosa.load(path, sr=16000)
    deg = griffin_lim(vae.reconstruct([logmel(ref, params)])[0], params)
    n = min(len(ref), len(deg))
    pesqs.append(pesq(16000, ref[:n], deg[:n], "wb"))
    snrs.append(10 * np.log10(np.sum(ref[:n] ** 2) / np.sum((ref[:n] - deg[:n]) ** 2)))

report = f"""# VAE results

Reconstruction of {len(files)} test clips (log-mel -> VAE -> Griffin-Lim):

- PESQ (wb): {np.mean(pesqs):.2f}
- SNR: {np.mean(snrs):.1f} dB

The VAE smooths the log-mel, so the reconstructions sound muffled; Griffin-Lim adds its
usual phasiness. I did not get to a neural vocoder.
"""
args.out.write_text(report)
print(report)
