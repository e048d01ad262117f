import librosa


def extract_mfcc(path):
    signal, sr = librosa.load(path, sr=16000)
    return librosa.feature.mfcc(y=signal, sr=sr, n_mfcc=20)


def stretch(signal, rate=1.1):
    return librosa.effects.time_stretch(signal, rate=rate)
