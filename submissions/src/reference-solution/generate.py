"""The submission contract's entry points, with this submission's checkpoints.

    python generate.py --mel-dir MELS --out-dir OUT          reconstruct: OUT/<id>.wav for every MELS/<id>.npy
    python generate.py --num N --seed S --out-dir OUT        sample: OUT/0.wav .. OUT/<N-1>.wav

Log-mels are voiced by the magnitude vocoder (checkpoints/magnitude.pt: a network that
predicts the linear magnitude, then Griffin-Lim); samples are log-mels drawn from the
VAE (checkpoints/vae.pt), voiced by the autoregressive WaveNet (checkpoints/wavenet.pt).
"""
import sys
from pathlib import Path

from refsol.generate import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.exit(main(["--checkpoint-dir", str(HERE / "checkpoints")] + sys.argv[1:], "generate.py"))
