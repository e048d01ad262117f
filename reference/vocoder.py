"""Log-mel to waveform: Griffin-Lim alone, and the reference vocoder (a learned magnitude, then Griffin-Lim).

The contract's log-mel keeps 80 mel bands of the magnitude; a waveform needs the
513-bin linear magnitude and a phase. Two vocoders:

- :func:`griffin_lim`: no model. The mel's non-negative least-squares inverse, then
  32 Griffin-Lim iterations from a fixed random phase. What a model-free vocoder
  reaches; every report shows it ("Griffin-Lim on the true log-mel").
- :class:`MagnitudeVocoder` and :func:`vocode`: the reference vocoder. A non-causal
  dilated-convolution network predicts the linear magnitude from the log-mel, as a
  correction of the mel's pseudo-inverse (trained with an L1 loss on the magnitude
  compressed to the power 0.3, which weighs quiet bins as the ear does); Griffin-Lim
  then finds a phase.

The autoregressive WaveNet (:mod:`reference.wavenet`) stays the assignment's model and
voices unconditional samples.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from reference.preprocess import LogMelParams

GRIFFIN_LIM_ITERATIONS = 32
"""Iterations of Griffin-Lim on the true log-mel, everywhere it is the model-free baseline."""
GRIFFIN_LIM_SEED = 0
"""The random initial phase's seed: a log-mel always gives the same waveform."""
AUDIBLE = 1e-3
"""Magnitudes far below this (an STFT bin of full-scale audio is about 100) are silence to the loss."""


def griffin_lim(mel: np.ndarray, params: LogMelParams = LogMelParams(),
                n_iter: int = GRIFFIN_LIM_ITERATIONS) -> np.ndarray:
    """Waveform of a log-mel by mel inversion (NNLS) and ``n_iter`` Griffin-Lim iterations.

    librosa's ``mel_to_audio`` in its two steps, so that the random initial phase can
    take a fixed seed.

    Args:
        mel: float32 (n_mels, frames), natural log of the magnitude mel as
            :func:`reference.preprocess.logmel` computes it with ``params``.
        params: the log-mel's parameters (``params.json`` of the contract).
        n_iter: Griffin-Lim iterations (``librosa.griffinlim``).

    Returns:
        wav: float32 ((frames - 1) * hop_length,) at ``params.sr`` Hz, clipped to [-1, 1].
    """
    import librosa

    _check_shape(mel, params)
    stft_magnitude = librosa.feature.inverse.mel_to_stft(
        np.exp(mel.astype(np.float32)), sr=params.sr, n_fft=params.n_fft, power=params.power,
        fmin=params.fmin, fmax=params.fmax,
    )
    return phase_from_magnitude(stft_magnitude, mel.shape[1], params, n_iter)


def phase_from_magnitude(magnitude: np.ndarray, frames: int, params: LogMelParams, n_iter: int) -> np.ndarray:
    """Griffin-Lim from the fixed random phase: magnitude (1 + n_fft // 2, frames) -> float32
    ((frames - 1) * hop_length,) samples, clipped to [-1, 1]."""
    import librosa

    wav = librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=params.hop_length, win_length=params.win_length,
        length=(frames - 1) * params.hop_length, random_state=GRIFFIN_LIM_SEED,
    )
    return np.clip(wav, -1.0, 1.0).astype(np.float32)


def _check_shape(mel: np.ndarray, params: LogMelParams) -> None:
    if mel.ndim != 2 or mel.shape[0] != params.n_mels:
        raise ValueError(f"log-mel of shape {mel.shape}; expected ({params.n_mels}, frames)")


# --------------------------------------------------------------------------- the reference vocoder

@dataclass(frozen=True)
class MagnitudeConfig:
    """Hyperparameters of a :class:`MagnitudeVocoder`; saved in every checkpoint.

    ``dilations``: one residual block each (kernel ``kernel_size``, non-causal: every
    frame sees frames on both sides). ``griffin_lim_iterations``: the phase search after it.
    """

    sr: int = 16000
    n_fft: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    channels: int = 192
    head_channels: int = 384
    """Hidden width of the per-frame head that maps the features to the bins (harmonic combs need more than
    a linear map)."""
    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 2, 4, 1)
    clamp: float = 1e-5
    griffin_lim_iterations: int = 100
    max_log_magnitude: float = 6.0
    """Predicted log-magnitudes are capped here (e^6 is far above any full-scale bin), so exp never overflows."""

    @property
    def bins(self) -> int:
        return 1 + self.n_fft // 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MagnitudeConfig":
        return cls(**{**data, "dilations": tuple(data["dilations"])})

    @classmethod
    def for_logmel(cls, params: LogMelParams, **overrides) -> "MagnitudeConfig":
        return cls(sr=params.sr, n_fft=params.n_fft, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax,
                   clamp=params.clamp, **overrides)


class MagnitudeVocoder(nn.Module):
    """Log-mel (B, n_mels, frames) -> natural log of the linear magnitude (B, 1 + n_fft // 2, frames).

    The log of the mel's pseudo-inverse (the mel filter bank's Moore-Penrose inverse applied
    to the mel magnitude, floored at ``clamp``), plus a learned correction: an input
    convolution, residual blocks of (LeakyReLU, dilated convolution, LeakyReLU, 1x1
    convolution), and a per-frame head (1x1 convolution, LeakyReLU, 1x1 convolution to the
    STFT bins) whose last layer starts at zero. Frames in, frames out: padding keeps the length.

    The result never exceeds what the mel allows: a mel band holds ``sum_f W[m, f] * |X[f]|``,
    so bin ``f`` is at most ``mel[m] / W[m, f]`` for every band ``m`` that covers it. Without
    that bound, a speaker's low voice unseen in training drew spikes hundreds of times the
    true magnitude in the low bins (a boom that PESQ punishes).
    """

    def __init__(self, config: MagnitudeConfig = MagnitudeConfig()):
        super().__init__()
        from reference.preprocess import mel_filterbank

        self.config = config
        bank = mel_filterbank(LogMelParams(sr=config.sr, n_fft=config.n_fft, win_length=config.n_fft,
                                           n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax))
        self.register_buffer("pseudo_inverse", torch.from_numpy(np.linalg.pinv(bank).astype(np.float32)),
                             persistent=False)
        bands, log_weights = _covering_bands(bank)
        self.register_buffer("covering_bands", torch.from_numpy(bands), persistent=False)
        self.register_buffer("covering_log_weights", torch.from_numpy(log_weights), persistent=False)
        k, ch = config.kernel_size, config.channels
        self.input = nn.Conv1d(config.n_mels, ch, k, padding=k // 2)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LeakyReLU(0.2), nn.Conv1d(ch, ch, k, padding=d * (k // 2), dilation=d),
                          nn.LeakyReLU(0.2), nn.Conv1d(ch, ch, 1))
            for d in config.dilations)
        self.head = nn.Conv1d(ch, config.head_channels, 1)
        self.output = nn.Conv1d(config.head_channels, config.bins, 1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        floor = math.log(self.config.clamp)
        inverse = torch.einsum("fm,bmt->bft", self.pseudo_inverse, torch.exp(mel))
        h = self.input(1.0 - 2.0 * mel / floor)  # [log(clamp), 0] -> [-1, 1]
        for block in self.blocks:
            h = h + block(h)
        correction = self.output(nn.functional.leaky_relu(self.head(nn.functional.leaky_relu(h, 0.2)), 0.2))
        estimate = torch.log(inverse.clamp(min=self.config.clamp)) + correction
        return torch.minimum(estimate, self.mel_bound(mel)).clamp(max=self.config.max_log_magnitude)

    def mel_bound(self, mel: torch.Tensor) -> torch.Tensor:
        """The largest log-magnitude (B, bins, frames) each bin may have under the log-mel (B, n_mels, frames):
        ``min_m (mel[m] - log W[m, f])`` over the bands covering bin ``f`` (no bound where none does)."""
        bounds = [mel[:, self.covering_bands[k], :] - self.covering_log_weights[k][None, :, None]
                  for k in range(self.covering_bands.shape[0])]
        return torch.stack(bounds).amin(dim=0)

    def loss(self, mel: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
        """L1 between predicted and true magnitudes (B, bins, frames) compressed to the power 0.3, plus a tenth
        of the L1 between their logs above an audibility floor (1e-3): the first weighs quiet bins as the ear
        does, the second keeps energy out of silences, which PESQ punishes."""
        predicted = torch.exp(self(mel))
        compressed = (predicted.clamp(min=1e-7) ** 0.3 - magnitude.clamp(min=1e-7) ** 0.3).abs().mean()
        relative = (torch.log(predicted + AUDIBLE) - torch.log(magnitude + AUDIBLE)).abs().mean()
        return compressed + 0.1 * relative

    @torch.no_grad()
    def magnitude(self, mel: np.ndarray) -> np.ndarray:
        """float32 (n_mels, frames) log-mel -> float32 (bins, frames) linear magnitude."""
        return torch.exp(self(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None]))[0].numpy()


def _covering_bands(bank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each STFT bin, the mel bands whose filters cover it and the logs of their weights.

    Args:
        bank: float32 (n_mels, bins), the mel filter bank.

    Returns:
        bands: int64 (k, bins), k the most bands any bin lies in; log_weights: float32 (k, bins),
        -1e9 where a bin lies in fewer than k bands (a bound of +1e9 above any magnitude: no bound).
    """
    covered = bank > 0
    k = max(1, int(covered.sum(axis=0).max()))
    bands = np.zeros((k, bank.shape[1]), np.int64)
    log_weights = np.full((k, bank.shape[1]), -1e9, np.float32)
    for f in range(bank.shape[1]):
        for slot, m in enumerate(np.flatnonzero(covered[:, f])):
            bands[slot, f], log_weights[slot, f] = m, np.log(bank[m, f])
    return bands, log_weights


def vocode(model: MagnitudeVocoder, mels: list[np.ndarray], params: LogMelParams = LogMelParams()) -> list[np.ndarray]:
    """Waveforms float32 ((frames_i - 1) * hop,) of log-mels (n_mels, frames_i): the predicted magnitude,
    then ``model.config.griffin_lim_iterations`` of Griffin-Lim from the fixed random phase."""
    model.eval()
    wavs = []
    for mel in mels:
        _check_shape(mel, params)
        wavs.append(phase_from_magnitude(model.magnitude(mel), mel.shape[1], params,
                                         model.config.griffin_lim_iterations))
    return wavs
