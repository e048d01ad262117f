"""Loading, MFCCs and augmentation for the VAE's training clips."""
import librosa
import numpy as np

SR = 16000


def extract_mfcc(path):
    y, sr = librosa.load(path, sr=SR)
    return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)


def augment(y, rng):
    """Stretch in time a little and add some noise."""
    y = librosa.effects.time_stretch(y, rate=rng.uniform(0.9, 1.1))
    return y + 0.003 * rng.standard_normal(len(y))
