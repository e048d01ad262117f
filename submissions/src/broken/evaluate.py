import numpy as np
from pesq import pesq


def snr(clean, generated):
    noise = clean - generated
    return 10 * np.log10(np.sum(clean ** 2) / np.sum(noise ** 2))


def evaluate(clean, generated, sr=16000):
    return {"pesq": pesq(sr, clean, generated, "wb"), "snr": snr(clean, generated)}
