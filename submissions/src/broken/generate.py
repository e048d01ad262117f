"""python generate.py --mel-dir MELS --out-dir OUT   or   python generate.py --num N --seed S --out-dir OUT"""
import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from dataset import mu_law_decode, upsample_mel
from model import WaveNet

parser = argparse.ArgumentParser()
parser.add_argument("--mel-dir")
parser.add_argument("--out-dir", required=True)
parser.add_argument("--num", type=int)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

model = WaveNet()
model.load_state_dict(torch.load("checkpoints/wavenet.pt"))
out = Path(args.out_dir)
for path in sorted(Path(args.mel_dir).glob("*.npy")):
    mel = upsample_mel(np.load(path))
    samples = torch.zeros(1, 1, dtype=torch.long)
    for t in range(mel.shape[-1]):
        logits = model(samples, mel[..., : t + 1])
        samples = torch.cat([samples, logits[:, :, -1:].argmax(1)], dim=1)
    sf.write(out / f"{path.stem}.wav", mu_law_decode(samples[0].numpy()), 16000)
