"""The reference VAE on log-mel (shapes, KL, sampling) and Griffin-Lim, the model-free vocoder."""
import math

import numpy as np
import pytest
import torch

import reference  # noqa: F401  (sets numba's cache folder before librosa loads)
from reference.preprocess import LogMelParams, load_audio, logmel
from reference.vae import MelVAE, VAEConfig, kl_divergence
from reference.vocoder import griffin_lim


def tiny_vae(seed: int = 0) -> MelVAE:
    torch.manual_seed(seed)
    return MelVAE(VAEConfig(channels=(4, 8, 8, 16), latent_channels=4)).eval()


def test_shapes_through_encoder_decoder_and_arbitrary_lengths():
    vae = tiny_vae()
    x = torch.randn(3, 1, 80, 64)
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (3, 4, 10, 8)
    reconstruction, _, _ = vae(x)
    assert reconstruction.shape == x.shape
    mels = [np.full((80, frames), -5.0, np.float32) for frames in (37, 188)]
    out = vae.reconstruct(mels)
    assert [m.shape for m in out] == [(80, 37), (80, 188)]
    assert all(m.dtype == np.float32 and m.min() >= math.log(1e-5) for m in out)
    samples = vae.sample(2, frames=100, seed=1)
    assert [m.shape for m in samples] == [(80, 100)] * 2


def test_kl_is_non_negative_zero_at_the_prior_and_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 3, 5, 6, generator=generator)
    logvar = torch.randn(4, 3, 5, 6, generator=generator)
    kl = kl_divergence(mean, logvar)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)
    ).flatten(1).sum(1).mean()
    assert kl.item() > 0
    torch.testing.assert_close(kl, expected)
    assert kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)).item() == 0.0
    total, mse, per_value_kl = tiny_vae().loss(torch.randn(2, 1, 80, 16))
    beta = VAEConfig().beta
    assert per_value_kl.item() >= 0 and total.item() == pytest.approx(mse.item() + beta * per_value_kl.item())


def test_sampling_is_reproducible_for_a_seed():
    vae = tiny_vae()
    a, b, c = vae.sample(2, 40, seed=7), vae.sample(2, 40, seed=7), vae.sample(2, 40, seed=8)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.fsdd
def test_griffin_lim_inverts_the_contract_logmel_of_real_speech(fsdd_dir):
    params = LogMelParams()
    wav = load_audio(fsdd_dir / "5_jackson_10.wav", params.sr)
    mel = logmel(wav, params)
    rebuilt = griffin_lim(mel, params)
    assert rebuilt.dtype == np.float32 and len(rebuilt) == (mel.shape[1] - 1) * params.hop_length
    # the magnitude survives: the rebuilt log-mel is close where there is energy
    again = logmel(rebuilt, params)
    loud = mel > np.log(1e-3)
    assert np.median(np.abs(again - mel)[loud]) < 0.25
    # the phase is invented (the waveform is no copy), from a fixed seed (the same every time)
    assert not np.allclose(rebuilt, wav[: len(rebuilt)], atol=1e-2)
    np.testing.assert_array_equal(griffin_lim(mel, params), rebuilt)
