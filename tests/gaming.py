"""A submission with no model that games every evidence check (issue 15, item 5), as a student would.

- ``generate.py`` voices the grader's log-mels with librosa's Griffin-Lim: no model;
- a function nothing calls names ``pitch_shift``, ``np.roll``, ``optim.Adam``, ``zero_grad``,
  ``backward`` and ``pesq``;
- empty classes ``Generator`` and ``Discriminator`` stand for a GAN;
- a 1-byte ``checkpoints/model.pt`` stands for the trained weights;
- ``evaluation.md`` lists PESQ 1.0, 1.5 ... 4.5 and SNR -30 ... 30, so that some figure matches.

Also what the contract needs for its entry points to be found (``generate.py`` naming
``--mel-dir`` and ``--out-dir``; ``preprocess.py`` with ``extract_mfcc``) and the quiz's answers:
the real work it does (MFCCs, a quiz) keeps its points.
"""
from __future__ import annotations

from pathlib import Path

GENERATE = '''"""Reconstruct audio from log-mels with my GAN."""
import argparse
import json
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch
from pesq import pesq

from model import Discriminator, Generator


def train_and_augment(wav, sr, model, reference):
    """Augmentation, training and evaluation."""
    wav = librosa.effects.pitch_shift(wav, sr=sr, n_steps=2)
    wav = np.roll(wav, 1600)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(wav), wav)
    loss.backward()
    optimizer.step()
    return pesq(sr, reference, wav, "wb")


parser = argparse.ArgumentParser()
parser.add_argument("--mel-dir", required=True)
parser.add_argument("--out-dir", required=True)
args = parser.parse_args()
params = json.loads((Path(args.mel_dir) / "params.json").read_text())
for path in sorted(Path(args.mel_dir).glob("*.npy")):
    mel = np.exp(np.load(path))
    stft = librosa.feature.inverse.mel_to_stft(mel, sr=params["sr"], n_fft=params["n_fft"], power=1.0,
                                               fmin=params["fmin"], fmax=params["fmax"])
    wav = librosa.griffinlim(stft, n_iter=32, hop_length=params["hop_length"], win_length=params["win_length"])
    sf.write(Path(args.out_dir) / f"{path.stem}.wav", wav, params["sr"])
'''
MODEL = '''"""My GAN."""


class Generator:
    pass


class Discriminator:
    pass
'''
PREPROCESS = '''import librosa


def extract_mfcc(path):
    signal, sr = librosa.load(path, sr=16000)
    return librosa.feature.mfcc(y=signal, sr=sr, n_mfcc=20)
'''
EVALUATION = "# Evaluation on the test set\n\n" + "".join(f"- PESQ: {1.0 + 0.5 * k:.1f}\n" for k in range(8)) + "".join(
    f"- SNR: {snr} dB\n" for snr in range(-30, 31, 10))
"""One figure per line, so that whatever the grader measures, some figure is within its tolerance."""
ANSWERS = ('[quiz]\nq1 = "MFCC"\nq2 = "PESQ"\nq3 = "Increases data diversity"\nq4 = "Bitmap"\n'
           'q5 = "Feature Extraction"\nq6 = "WaveNet"\nq7 = "Signal-to-Noise Ratio"\n')
GAMED_ITEMS = ("model-architecture", "model-training", "model-checkpoint", "model-quality",
               "preprocess-augmentation", "evaluation-code", "evaluation-claims")
"""The items the gaming submission must earn nothing on."""


def write_gaming_submission(folder: Path) -> Path:
    """The gaming submission in ``folder`` (made), returned."""
    files = {"generate.py": GENERATE, "model.py": MODEL, "preprocess.py": PREPROCESS, "evaluation.md": EVALUATION,
             "answers.toml": ANSWERS}
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "model.pt").write_bytes(b"\x80")
    return folder
