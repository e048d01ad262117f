"""Part 1: load audio and extract MFCCs (the assignment's recipe), and the augmentation used in training.

The model itself trains on the log-mel (refsol/preprocess.py: ``logmel``), the input
the WaveNet vocoder is conditioned on.
"""
import librosa
import numpy as np

from refsol.preprocess import add_noise, pitch_shift, time_shift, time_stretch

SAMPLE_RATE = 16000


def extract_mfcc(path):
    """MFCCs (20, frames) of the audio file at ``path``, loaded at 16 kHz."""
    signal, sr = librosa.load(path, sr=SAMPLE_RATE)
    return librosa.feature.mfcc(y=signal, sr=sr, n_mfcc=20)


def augment(wav, sr=SAMPLE_RATE, rng=None):
    """One random augmentation of ``wav`` (samples,): pitch shift, added noise, time shift or time stretch."""
    rng = np.random.default_rng(rng)
    choice = rng.integers(4)
    if choice == 0:
        return pitch_shift(wav, sr, semitones=float(rng.uniform(-2, 2)))
    if choice == 1:
        return add_noise(wav, snr_db=float(rng.uniform(15, 30)), rng=rng)
    if choice == 2:
        return time_shift(wav, int(rng.integers(-sr // 10, sr // 10)))
    return time_stretch(wav, rate=float(rng.uniform(0.9, 1.1)))
