"""A convolutional VAE on the contract's log-mel, after the seed notebook's CNN VAE.

Encoder: a stride-1 Conv2d then stride-2 Conv2d layers (ReLU) over the log-mel as a
one-channel image, and 1x1 heads for the mean and log-variance of a latent map;
reparameterisation ``z = mean + exp(logvar / 2) * eps``; decoder: ConvTranspose2d
layers back to the log-mel. Loss: mean squared error of the normalised log-mel plus
``beta`` times the KL divergence to N(0, I) (per log-mel value, like the MSE).

The latent is a map (latent_channels, n_mels / f, frames / f) with f = 2**strides,
so any length reconstructs; ``sample`` decodes N(0, I) noise of a chosen length.
Log-mels are (n_mels, frames) float32 as :func:`reference.preprocess.logmel` makes them;
the VAE sees them mapped from [log(clamp), 0] to [-1, 1].
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reference.wavenet import normalize_logmel


@dataclass(frozen=True)
class VAEConfig:
    """Hyperparameters of a :class:`MelVAE`; saved in every checkpoint."""

    n_mels: int = 80
    channels: tuple[int, ...] = (16, 32, 64, 128)
    """Conv2d widths: the first keeps the size, each later one halves both axes."""
    latent_channels: int = 8
    beta: float = 0.02
    clamp: float = 1e-5

    @property
    def factor(self) -> int:
        """How much the encoder shrinks each axis."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VAEConfig":
        data = dict(data)
        data["channels"] = tuple(data["channels"])
        return cls(**data)


class MelVAE(nn.Module):
    """Convolutional VAE of log-mel spectrograms."""

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        if config.n_mels % config.factor:
            raise ValueError(f"n_mels={config.n_mels} must be a multiple of {config.factor} for {config.channels}")
        self.config = config
        widths = config.channels
        encoder: list[nn.Module] = [nn.Conv2d(1, widths[0], 3, padding=1), nn.ReLU()]
        for c_in, c_out in zip(widths, widths[1:]):
            encoder += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*encoder)
        self.to_mean = nn.Conv2d(widths[-1], config.latent_channels, 1)
        self.to_logvar = nn.Conv2d(widths[-1], config.latent_channels, 1)
        decoder: list[nn.Module] = [nn.Conv2d(config.latent_channels, widths[-1], 1), nn.ReLU()]
        for c_in, c_out in zip(widths[::-1], widths[-2::-1]):
            decoder += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        decoder.append(nn.Conv2d(widths[0], 1, 3, padding=1))
        self.decoder = nn.Sequential(*decoder)

    # ---- normalised tensors (B, 1, n_mels, frames), frames a multiple of `factor`

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, n_mels, frames) normalised log-mel -> mean, logvar (B, latent, n_mels / f, frames / f)."""
        h = self.encoder(x)
        return self.to_mean(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent, n_mels / f, frames / f) -> (B, 1, n_mels, frames) normalised log-mel."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction of ``x`` through a sampled latent, with the latent's mean and logvar."""
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mean, logvar

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """total, reconstruction MSE, KL (both per log-mel value) of a batch ``x`` (B, 1, n_mels, frames)."""
        reconstruction, mean, logvar = self(x, generator)
        mse = F.mse_loss(reconstruction, x)
        kl = kl_divergence(mean, logvar) / x[0].numel()
        return mse + self.config.beta * kl, mse, kl

    # ---- log-mel arrays as the contract has them

    def to_input(self, mels: list[np.ndarray]) -> torch.Tensor:
        """Log-mels (n_mels, frames_i) -> one normalised batch (B, 1, n_mels, frames), silence-padded to a multiple of f."""
        floor = math.log(self.config.clamp)
        longest = max(mel.shape[1] for mel in mels)
        frames = -(-longest // self.config.factor) * self.config.factor
        batch = np.full((len(mels), 1, self.config.n_mels, frames), floor, np.float32)
        for i, mel in enumerate(mels):
            if mel.ndim != 2 or mel.shape[0] != self.config.n_mels:
                raise ValueError(f"log-mel {i} has shape {mel.shape}; expected ({self.config.n_mels}, frames)")
            batch[i, 0, :, : mel.shape[1]] = mel
        return normalize_logmel(torch.from_numpy(batch), self.config.clamp)

    def to_logmel(self, x: torch.Tensor) -> np.ndarray:
        """Normalised (B, 1, n_mels, frames) -> log-mels (B, n_mels, frames), clamped to [log(clamp), ...)."""
        floor = math.log(self.config.clamp)
        mel = (1.0 - x[:, 0]) * floor / 2.0
        return np.maximum(mel.detach().numpy(), floor).astype(np.float32)

    def reconstruct(self, mels: list[np.ndarray]) -> list[np.ndarray]:
        """Each log-mel (n_mels, frames_i) through the encoder's mean and the decoder, same shapes."""
        self.eval()
        with torch.inference_mode():
            mean, _ = self.encode(self.to_input(mels))
            out = self.to_logmel(self.decode(mean))
        return [out[i, :, : mel.shape[1]] for i, mel in enumerate(mels)]

    def sample(self, num: int, frames: int, seed: int = 0) -> list[np.ndarray]:
        """``num`` new log-mels (n_mels, frames) decoded from N(0, I) latents drawn with ``seed``."""
        self.eval()
        f = self.config.factor
        shape = (num, self.config.latent_channels, self.config.n_mels // f, -(-frames // f))
        z = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            out = self.to_logmel(self.decode(z))
        return [out[i, :, :frames] for i in range(num)]


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over the latent, averaged over the batch (nats, >= 0)."""
    per_value = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
    return per_value.flatten(1).sum(1).mean()
