"""The submission contract's entry points, with this submission's checkpoints.

    python generate.py --mel-dir MELS --out-dir OUT          reconstruct: OUT/<id>.wav for every MELS/<id>.npy
    python generate.py --num N --seed S --out-dir OUT        sample: OUT/0.wav .. OUT/<N-1>.wav

Log-mels are voiced by the WaveNet vocoder (checkpoints/wavenet.pt); samples are
log-mels drawn from the VAE (checkpoints/vae.pt), then voiced the same way.
"""
import sys
from pathlib import Path

from refsol.generate import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    checkpoints = ["--checkpoint", str(HERE / "checkpoints" / "wavenet.pt"),
                   "--vae-checkpoint", str(HERE / "checkpoints" / "vae.pt")]
    sys.exit(main(checkpoints + sys.argv[1:], "generate.py"))
