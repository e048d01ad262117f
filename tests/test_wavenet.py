"""The reference WaveNet: mu-law, causality, receptive field, conditioning alignment, incremental generation."""
import numpy as np
import pytest
import torch

import reference  # noqa: F401  (sets numba's cache folder before librosa or numba load)
from reference.preprocess import LogMelParams, logmel
from reference.wavenet import (
    SILENCE_CLASS, IncrementalGenerator, WaveNet, WaveNetConfig, generate, mu_law_decode, mu_law_encode, teacher_forced_logits,
)

TINY = dict(residual_channels=8, gate_channels=8, skip_channels=8, condition_channels=8)


def tiny_model(seed: int = 0, **overrides) -> WaveNet:
    torch.manual_seed(seed)
    return WaveNet(WaveNetConfig(**{"layer_size": 4, "stack_size": 2, **TINY, **overrides})).eval()


def random_mel(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-11.5, 0.0, (batch, 80, frames)).astype(np.float32))


def test_mu_law_round_trip_and_silence():
    wav = np.linspace(-1, 1, 4001, dtype=np.float32)
    classes = mu_law_encode(wav)
    assert classes.min() == 0 and classes.max() == 255
    assert mu_law_encode(np.zeros(3, np.float32)).tolist() == [SILENCE_CLASS] * 3
    # 8-bit mu-law (librosa rounds down): the error is tiny near zero, under 5% at full scale
    error = np.abs(mu_law_decode(classes) - wav)
    assert error.max() < 0.05 and error[np.abs(wav) < 0.01].max() < 4e-4


def test_receptive_field_formula():
    assert WaveNetConfig().receptive_field() == 1 + 2 * (2**8 - 1) + 1 == 512
    # the assignment's example: 5 stacks of 30 layers cycling through dilations 1, 2, 4, 8
    example = WaveNetConfig(layer_size=30, stack_size=5, dilations=(1, 2, 4, 8))
    assert example.layer_dilations()[:6] == [1, 2, 4, 8, 1, 2] and len(example.layer_dilations()) == 150
    assert example.receptive_field() == 1 + 5 * (7 * 15 + 1 + 2) + 1
    wide = WaveNetConfig(layer_size=3, stack_size=1, kernel_size=3, input_kernel_size=3)
    assert wide.receptive_field() == 2 + 2 * (1 + 2 + 4) + 1


def changed_outputs(model: WaveNet, position: int, steps: int = 120, trials: int = 6) -> list[int]:
    """Outputs that change when the input at ``position`` changes, over a few random input sequences.

    One sequence may hide a dependence (a ReLU closed at that step); the union over
    several shows every output the input reaches.
    """
    changed: set[int] = set()
    for trial in range(trials):
        inputs = torch.randint(0, 256, (1, steps), generator=torch.Generator().manual_seed(trial))
        other = inputs.clone()
        other[0, position] = (other[0, position] + 97) % 256
        with torch.no_grad():
            difference = (model(inputs) - model(other)).abs().amax(dim=1)[0]
        changed |= set(torch.nonzero(difference > 0).flatten().tolist())
    return sorted(changed)


def test_causality_output_ignores_later_inputs():
    model = tiny_model(n_mels=0)
    changed = changed_outputs(model, position=60)
    assert min(changed) == 60  # the input at t is sample t - 1, which the output at t may see


def test_receptive_field_is_exactly_what_an_output_sees():
    for overrides in ({}, {"kernel_size": 3, "input_kernel_size": 3, "dilations": (1, 3)}):
        model = tiny_model(n_mels=0, **overrides)
        field = model.receptive_field()
        changed = changed_outputs(model, position=10, steps=10 + field + 20, trials=20)
        assert changed == list(range(10, 10 + field)), overrides


def test_conditioning_upsampling_puts_frame_j_on_sample_j_times_hop():
    model = tiny_model()
    hop = model.config.hop_length
    frames = torch.zeros(1, 1, 6)
    frames[0, 0, 3] = 1.0
    with torch.no_grad():
        per_sample = model.conditioner.upsample(frames)[0, 0].numpy()
    assert per_sample.shape == (5 * hop,)
    assert np.argmax(per_sample) == 3 * hop and per_sample[3 * hop] == pytest.approx(1.0)
    assert per_sample[3 * hop - hop // 2] == pytest.approx(0.5) and per_sample[3 * hop + hop // 2] == pytest.approx(0.5)
    assert np.all(per_sample[: 2 * hop + 1] == 0) and np.all(per_sample[4 * hop :] == 0)
    # ...which is where the centred STFT puts a click at sample 3 * hop: frame 3 is the loudest
    click = np.zeros(6 * hop, np.float32)
    click[3 * hop] = 1.0
    assert np.argmax(logmel(click, LogMelParams()).sum(axis=0)) == 3


@pytest.mark.parametrize("overrides", [
    {"n_global": 3},
    {"kernel_size": 3, "input_kernel_size": 3, "dilations": (1, 2, 5)},
    {"n_mels": 0, "n_global": 2},
])
def test_incremental_equals_full_forward(overrides):
    model = tiny_model(seed=3, **overrides)
    steps, batch = 3 * 256 + 40, 2
    inputs = torch.randint(0, 256, (batch, steps), generator=torch.Generator().manual_seed(2))
    frames = None
    if model.config.n_mels:
        with torch.no_grad():
            frames = model.condition_frames(random_mel(batch, steps // 256 + 2))
    global_ids = torch.tensor([0, model.config.n_global - 1]) if model.config.n_global else None
    with torch.no_grad():
        full = model(inputs, frames, global_ids)
    incremental = teacher_forced_logits(model, inputs, frames, global_ids)
    assert incremental.shape == full.shape == (batch, 256, steps)
    torch.testing.assert_close(incremental, full, atol=1e-5, rtol=0)


def test_generate_a_batch_reproducibly_with_each_clip_its_length():
    model = tiny_model()
    mels = [random_mel(1, frames, seed=frames)[0].numpy() for frames in (5, 9, 7)]
    first = generate(model, mels, seed=4)
    again = generate(model, mels, seed=4)
    other = generate(model, mels, seed=5)
    assert [len(w) for w in first] == [4 * 256, 8 * 256, 6 * 256]
    for a, b, c in zip(first, again, other):
        assert a.dtype == np.float32 and np.all(np.abs(a) <= 1.0)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_generated_samples_follow_the_model_distribution():
    """Free-running draws, fed back as inputs, score like draws from the model: log-likelihood ~ -entropy."""
    model = tiny_model(n_mels=0)
    generator = IncrementalGenerator(model, num_samples=3000, batch=1, seed=0)
    generator.run()
    classes = torch.from_numpy(generator.samples)
    assert torch.equal(classes[:, :-1], torch.from_numpy(generator.inputs[:, 1:]))
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.from_numpy(generator.inputs)), dim=1)[0]
    drawn = log_probs.gather(0, classes).mean().item()
    expected = (log_probs.exp() * log_probs).sum(0).mean().item()
    assert drawn == pytest.approx(expected, abs=0.15)
