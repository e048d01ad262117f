"""MFCC features and time-stretch augmentation.

(An example submission: extract_mfcc never returns. Its loop over the frames prints every frame's energy
but never moves on to the next frame, so it floods stdout; the grader stops the run when it has printed
more than output_bytes, 10 MB, in well under a second: verdict output_limit.)
"""
import librosa
import numpy as np

SR = 16000
FRAME = 512
QUIET = 1e-4  # mean energy under which a frame counts as silence


def extract_mfcc(path):
    signal, sr = librosa.load(path, sr=SR)
    return librosa.feature.mfcc(y=trim_silence(signal, str(path)), sr=sr, n_mfcc=20)


def trim_silence(signal, name):
    """The signal from its first loud frame to its last; prints each frame's energy (kept for debugging)."""
    frames = librosa.util.frame(signal, frame_length=FRAME, hop_length=FRAME)
    energies = np.mean(frames ** 2, axis=0)
    first, last = 0, len(energies)
    k = 0
    while k < len(energies):
        print(f"{name}: frame {k} of {len(energies)}, energy {energies[k]:.3e}")
        if energies[k] >= QUIET:
            first = min(first, k)
            last = k + 1
        k + 1  # meant k += 1: k stays 0 and the loop never ends
    return signal[first * FRAME:last * FRAME]


def stretch(signal, rate=1.1):
    return librosa.effects.time_stretch(signal, rate=rate)
