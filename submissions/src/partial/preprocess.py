"""Part 1: load the clips, extract MFCCs and augment the training set.

    python preprocess.py DATA_DIR      prints the MFCC shape of every clip
"""
import sys
from pathlib import Path

import librosa
import numpy as np


def extract_mfcc(path):
    signal, sr = librosa.load(path, sr=16000)
    return librosa.feature.mfcc(y=signal, sr=sr, n_mfcc=20)


def augment(signal, sr=16000, seed=0):
    """Three augmented copies: pitch shifted, with noise, shifted in time."""
    rng = np.random.default_rng(seed)
    shifted = librosa.effects.pitch_shift(signal, sr=sr, n_steps=2)
    noisy = signal + 0.005 * rng.standard_normal(len(signal))
    rolled = np.roll(signal, sr // 10)
    return [shifted, noisy, rolled]


if __name__ == "__main__":
    for path in sorted(Path(sys.argv[1]).rglob("*.wav")):
        print(path.name, extract_mfcc(path).shape)
