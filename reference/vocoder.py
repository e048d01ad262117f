"""Log-mel to waveform without a model: Griffin-Lim phase reconstruction (librosa).

This is what a model-free vocoder reaches on the contract's log-mel; the grader
reports it beside every score. The WaveNet vocoder lives in :mod:`reference.wavenet`.
"""
from __future__ import annotations

import numpy as np

from reference.preprocess import LogMelParams


def griffin_lim(mel: np.ndarray, params: LogMelParams = LogMelParams(), n_iter: int = 32) -> np.ndarray:
    """Waveform of a log-mel by mel inversion (NNLS) and ``n_iter`` Griffin-Lim iterations.

    librosa's ``mel_to_audio`` in its two steps, so that the random initial phase can
    take a fixed seed: a log-mel always gives the same waveform.

    Args:
        mel: float32 (n_mels, frames), natural log of the magnitude mel as
            :func:`reference.preprocess.logmel` computes it with ``params``.
        params: the log-mel's parameters (``params.json`` of the contract).
        n_iter: Griffin-Lim iterations (``librosa.griffinlim``).

    Returns:
        wav: float32 ((frames - 1) * hop_length,) at ``params.sr`` Hz, clipped to [-1, 1].
    """
    import librosa

    if mel.ndim != 2 or mel.shape[0] != params.n_mels:
        raise ValueError(f"log-mel of shape {mel.shape}; expected ({params.n_mels}, frames)")
    stft_magnitude = librosa.feature.inverse.mel_to_stft(
        np.exp(mel.astype(np.float32)), sr=params.sr, n_fft=params.n_fft, power=params.power,
        fmin=params.fmin, fmax=params.fmax,
    )
    wav = librosa.griffinlim(
        stft_magnitude, n_iter=n_iter, hop_length=params.hop_length, win_length=params.win_length,
        length=(mel.shape[1] - 1) * params.hop_length, random_state=0,
    )
    return np.clip(wav, -1.0, 1.0).astype(np.float32)
