import librosa
import numpy as np


def extract_mfcc(path):
    y, sr = librosa.load(path, sr=16000)
    return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)


def add_noise(y, level=0.005):
    return y + level * np.random.randn(len(y))
