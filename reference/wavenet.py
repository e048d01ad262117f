"""WaveNet: a mu-law autoregressive model of the waveform, conditioned on the contract's log-mel.

Read top to bottom: mu-law coding, the configuration (named as in the assignment:
``WaveNetModel(layer_size=30, stack_size=5, dilations=[1, 2, 4, 8])``), the model
(causal input convolution, dilated causal convolutions with gated tanh x sigmoid
units, residual and skip connections, 1x1 output layers; local conditioning on
log-mel with learned upsampling by the hop; optional global conditioning on a
class or speaker id), then generation.

Generation is incremental ("Fast WaveNet", Paine et al. 2016): each layer keeps a
ring buffer of its past inputs, so one step costs one column of every layer
instead of the whole receptive field. The step loop runs as one numba-compiled
function (numba is what librosa already compiles with); the conditioning is
projected for every layer once per clip at frame rate and interpolated per step.
``teacher_forced_logits`` runs the same step loop on given inputs so that tests can
prove it equals :meth:`WaveNet.forward`.

Conventions: ``wav`` float32 (samples,) in [-1, 1] at 16 kHz; ``classes`` int64
mu-law classes in [0, 256); ``mel`` float32 (n_mels, frames), natural-log magnitude
as :func:`reference.preprocess.logmel` computes it; batches put the batch first.
"""
from __future__ import annotations

import math
import time
from collections import namedtuple
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reference.preprocess import LogMelParams

SILENCE_CLASS = 128
"""The mu-law class of a zero sample: the input before the first sample."""


# --------------------------------------------------------------------------- mu-law

def mu_law_encode(wav: np.ndarray, quantization_channels: int = 256) -> np.ndarray:
    """Mu-law classes of ``wav`` (samples,) in [-1, 1] (clipped): int64 (samples,) in [0, channels)."""
    import librosa

    mu = quantization_channels - 1
    signed = librosa.mu_compress(np.clip(wav.astype(np.float64), -1.0, 1.0), mu=mu, quantize=True)
    return np.clip(signed + quantization_channels // 2, 0, mu).astype(np.int64)


def mu_law_decode(classes: np.ndarray, quantization_channels: int = 256) -> np.ndarray:
    """Waveform float32 (samples,) in [-1, 1] of mu-law ``classes`` (any int array shape)."""
    import librosa

    mu = quantization_channels - 1
    signed = np.asarray(classes, dtype=np.float64) - quantization_channels // 2
    return librosa.mu_expand(signed, mu=mu, quantize=True).astype(np.float32)


def normalize_logmel(mel: torch.Tensor, clamp: float) -> torch.Tensor:
    """Map a log-mel from [log(clamp), 0] (silence to full scale) to [-1, 1]."""
    floor = math.log(clamp)
    return 1.0 - 2.0 * mel / floor


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class WaveNetConfig:
    """Hyperparameters of a :class:`WaveNet`; saved in every checkpoint.

    ``layer_size`` layers per stack, ``stack_size`` stacks. A stack's layers take the
    dilations ``dilations`` in turn (cycled when shorter than ``layer_size``); by
    default 1, 2, 4, ..., 2**(layer_size - 1). So ``layer_size=30, stack_size=5,
    dilations=(1, 2, 4, 8)`` is 150 layers cycling through 1, 2, 4, 8.
    """

    layer_size: int = 8
    stack_size: int = 2
    dilations: tuple[int, ...] | None = None
    residual_channels: int = 32
    gate_channels: int = 32
    skip_channels: int = 32
    kernel_size: int = 2
    input_kernel_size: int = 2
    quantization_channels: int = 256
    n_mels: int = 80
    """Log-mel bands of the local conditioning; 0 makes an unconditional model."""
    condition_channels: int = 64
    condition_layers: int = 2
    """Valid kernel-3 convolutions over frames: each frame sees this many frames each side."""
    hop_length: int = 256
    clamp: float = 1e-5
    """The log-mel's floor, log(clamp), is silence: the padding beyond a clip's edges."""
    n_global: int = 0
    """Number of global classes (speakers, sound classes); 0 disables global conditioning."""
    global_channels: int = 16

    def layer_dilations(self) -> list[int]:
        """The dilation of every residual layer, first to last."""
        cycle = self.dilations or tuple(2**i for i in range(self.layer_size))
        return [cycle[i % len(cycle)] for i in range(self.layer_size)] * self.stack_size

    def receptive_field(self) -> int:
        """Samples of input that one output sees: (k_in - 1) + (k - 1) * sum(dilations) + 1."""
        return (self.input_kernel_size - 1) + (self.kernel_size - 1) * sum(self.layer_dilations()) + 1

    @classmethod
    def for_logmel(cls, params: LogMelParams, **overrides) -> "WaveNetConfig":
        """A configuration conditioned on the log-mel ``params`` describe."""
        return cls(n_mels=params.n_mels, hop_length=params.hop_length, clamp=params.clamp, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "WaveNetConfig":
        data = dict(data)
        if data.get("dilations") is not None:
            data["dilations"] = tuple(data["dilations"])
        return cls(**data)


# --------------------------------------------------------------------------- model

class MelConditioner(nn.Module):
    """Log-mel frames -> conditioning features per frame, and learned upsampling by the hop.

    Frame ``j`` of a centred STFT is centred on sample ``j * hop``, so sample
    ``t = j * hop + r`` lies between frames ``j`` and ``j + 1``. The upsampling is a
    transposed convolution (stride ``hop``, kernel ``2 * hop``, one kernel shared by
    all channels) that starts as linear interpolation between those two frames and
    is learned from there.
    """

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = config.n_mels
        for _ in range(config.condition_layers):
            layers += [nn.Conv1d(channels, config.condition_channels, kernel_size=3), nn.LeakyReLU(0.2)]
            channels = config.condition_channels
        self.encoder = nn.Sequential(*layers)
        hop = config.hop_length
        triangle = 1.0 - torch.abs(torch.arange(2 * hop, dtype=torch.float32) - hop) / hop
        self.upsample_kernel = nn.Parameter(triangle)

    @property
    def context(self) -> int:
        """Frames of context each side that :meth:`forward` consumes."""
        return self.config.condition_layers

    def pad(self, mel: torch.Tensor) -> torch.Tensor:
        """Pad ``mel`` (B, n_mels, frames) with ``context`` silent frames each side."""
        floor = math.log(self.config.clamp)
        return F.pad(mel, (self.context, self.context), value=floor)

    def forward(self, mel_with_context: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames + 2 * context) log-mel -> (B, condition_channels, frames)."""
        return self.encoder(normalize_logmel(mel_with_context, self.config.clamp))

    def upsample(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, C, n) per frame -> (B, C, (n - 1) * hop) per sample, frame j on sample j * hop."""
        batch, channels, n = frames.shape
        hop = self.config.hop_length
        out = F.conv_transpose1d(frames.reshape(batch * channels, 1, n), self.upsample_kernel.view(1, 1, -1),
                                 stride=hop, padding=hop)
        return out.view(batch, channels, (n - 1) * hop)


class ResidualLayer(nn.Module):
    """Dilated causal convolution, gated tanh x sigmoid unit, residual and skip 1x1 outputs."""

    def __init__(self, config: WaveNetConfig, dilation: int):
        super().__init__()
        self.dilation = dilation
        self.padding = (config.kernel_size - 1) * dilation
        self.gate_channels = config.gate_channels
        self.residual_channels = config.residual_channels
        self.conv = nn.Conv1d(config.residual_channels, 2 * config.gate_channels, config.kernel_size,
                              dilation=dilation)
        self.condition = (nn.Conv1d(config.condition_channels, 2 * config.gate_channels, 1)
                          if config.n_mels else None)
        self.global_condition = (nn.Linear(config.global_channels, 2 * config.gate_channels, bias=False)
                                 if config.n_global else None)
        self.res_skip = nn.Conv1d(config.gate_channels, config.residual_channels + config.skip_channels, 1)

    def forward(self, x: torch.Tensor, frames: torch.Tensor | None,
                upsample: Callable[[torch.Tensor], torch.Tensor] | None, global_embedding: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, R, T) -> next layer's input (B, R, T) and this layer's skip output (B, S, T).

        ``frames`` (B, C, n) are projected to this layer's gates at frame rate, then
        ``upsample``-d to samples; ``global_embedding`` (B, global_channels) adds a constant.
        """
        a = self.conv(F.pad(x, (self.padding, 0)))
        if self.condition is not None:
            # Projected at frame rate, then upsampled: the same sum as the incremental step.
            a = a + upsample(self.condition(frames))[:, :, : x.shape[-1]]
        if self.global_condition is not None:
            a = a + self.global_condition(global_embedding)[:, :, None]
        z = torch.tanh(a[:, : self.gate_channels]) * torch.sigmoid(a[:, self.gate_channels :])
        out = self.res_skip(z)
        return x + out[:, : self.residual_channels], out[:, self.residual_channels :]


class WaveNet(nn.Module):
    """The WaveNet of the assignment: predicts each mu-law sample from the ones before it.

    ``forward(inputs, ...)[:, :, t]`` are the logits of sample ``t`` given
    ``inputs[:, :t + 1]``, where ``inputs[:, t]`` is sample ``t - 1`` (teacher forcing:
    the targets shifted right by one, :data:`SILENCE_CLASS` first), and given the
    conditioning at sample ``t``.
    """

    def __init__(self, config: WaveNetConfig = WaveNetConfig()):
        super().__init__()
        self.config = config
        q = config.quantization_channels
        self.input_conv = nn.Conv1d(q, config.residual_channels, config.input_kernel_size)
        self.conditioner = MelConditioner(config) if config.n_mels else None
        self.global_embedding = nn.Embedding(config.n_global, config.global_channels) if config.n_global else None
        self.layers = nn.ModuleList(ResidualLayer(config, d) for d in config.layer_dilations())
        self.output = nn.Sequential(
            nn.ReLU(), nn.Conv1d(config.skip_channels, config.skip_channels, 1),
            nn.ReLU(), nn.Conv1d(config.skip_channels, q, 1),
        )

    def receptive_field(self) -> int:
        """Samples of input that one output sees (see :meth:`WaveNetConfig.receptive_field`)."""
        return self.config.receptive_field()

    def condition_frames(self, mel: torch.Tensor) -> torch.Tensor:
        """Whole clips' log-mel (B, n_mels, frames) -> conditioning (B, C, frames), silence beyond the edges."""
        return self.conditioner(self.conditioner.pad(mel))

    def forward(self, inputs: torch.Tensor, frames: torch.Tensor | None = None,
                global_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, quantization_channels, T) of every sample.

        Args:
            inputs: (B, T) int64 classes, sample t - 1 at position t.
            frames: (B, C, n) conditioning frames with (n - 1) * hop >= T, from
                :meth:`condition_frames` (or from :class:`MelConditioner` on a cropped
                log-mel with context); frame j belongs to sample j * hop. None for an
                unconditional model.
            global_ids: (B,) int64 class or speaker ids when ``n_global`` > 0.
        """
        if (frames is None) != (self.conditioner is None):
            raise ValueError("pass conditioning frames exactly when the model is conditioned (n_mels > 0)")
        if frames is not None and (frames.shape[-1] - 1) * self.config.hop_length < inputs.shape[-1]:
            raise ValueError(f"{frames.shape[-1]} conditioning frames cover fewer than {inputs.shape[-1]} samples")
        x = self.input_convolution(inputs)
        embedding = self.global_embedding(global_ids) if self.global_embedding is not None else None
        upsample = self.conditioner.upsample if self.conditioner is not None else None
        skip = 0.0
        for layer in self.layers:
            x, s = layer(x, frames, upsample, embedding)
            skip = skip + s
        return self.output(skip)

    def input_convolution(self, inputs: torch.Tensor) -> torch.Tensor:
        """The causal input convolution of one-hot ``inputs`` (B, T) -> (B, R, T), as table lookups.

        Equal to ``input_conv(pad(one_hot(inputs)))``; a lookup per tap instead of a
        256-channel convolution.
        """
        k = self.config.input_kernel_size
        padded = F.pad(inputs, (k - 1, 0), value=-1)  # -1: before the clip, no one-hot bit set
        weight = self.input_conv.weight  # (R, Q, k)
        x = self.input_conv.bias[None, :, None]
        steps = inputs.shape[-1]
        for i in range(k):
            taps = padded[:, i : i + steps]
            looked_up = F.embedding(taps.clamp(min=0), weight[:, :, i].T) * (taps >= 0)[..., None]
            x = x + looked_up.transpose(1, 2)
        return x

    def loss(self, classes: torch.Tensor, frames: torch.Tensor | None = None,
             global_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Categorical cross-entropy (nats per sample) of ``classes`` (B, T) under teacher forcing."""
        inputs = F.pad(classes[:, :-1], (1, 0), value=SILENCE_CLASS)
        return F.cross_entropy(self.forward(inputs, frames, global_ids), classes)


# --------------------------------------------------------------------------- incremental generation

StepWeights = namedtuple("StepWeights", [
    "input_table",    # (k_in, Q, R): input convolution, tap i looks k_in - 1 - i samples back
    "input_bias",     # (R,)
    "dilations",      # (L,) int64
    "conv",           # (L, k, R, 2G): dilated convolution, tap i looks (k - 1 - i) * dilation back
    "res_skip",       # (L, G, R + S)
    "res_skip_bias",  # (L, R + S)
    "upsample",       # (2 * hop,): the conditioning's upsampling kernel
    "out1", "out1_bias", "out2", "out2_bias",  # (S, S), (S,), (S, Q), (Q,)
])


def step_weights(model: WaveNet) -> StepWeights:
    """The model's weights laid out for the step loop (float32, contiguous, input-major)."""
    def arr(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

    config = model.config
    hop = config.hop_length
    return StepWeights(
        input_table=arr(model.input_conv.weight.permute(2, 1, 0)),
        input_bias=arr(model.input_conv.bias),
        dilations=np.array([layer.dilation for layer in model.layers], dtype=np.int64),
        conv=arr(torch.stack([layer.conv.weight.permute(2, 1, 0) for layer in model.layers])),
        res_skip=arr(torch.stack([layer.res_skip.weight[:, :, 0].T for layer in model.layers])),
        res_skip_bias=arr(torch.stack([layer.res_skip.bias for layer in model.layers])),
        upsample=arr(model.conditioner.upsample_kernel) if model.conditioner is not None
        else np.zeros(2 * hop, np.float32),
        out1=arr(model.output[1].weight[:, :, 0].T), out1_bias=arr(model.output[1].bias),
        out2=arr(model.output[3].weight[:, :, 0].T), out2_bias=arr(model.output[3].bias),
    )


def clip_conditioning(model: WaveNet, frames: torch.Tensor | None, global_ids: torch.Tensor | None,
                      batch: int) -> tuple[np.ndarray, np.ndarray]:
    """What each clip adds to every layer's gate, computed once per clip.

    Returns:
        bias: float32 (B, L, 2G), the convolution bias plus the global conditioning.
        projected: float32 (B, frames, L, 2G), every layer's conditioning projection
            at frame rate, which the step loop interpolates with the upsampling
            kernel; None for an unconditional model.
    """
    with torch.inference_mode():
        bias = torch.stack([layer.conv.bias for layer in model.layers]).expand(batch, -1, -1).clone()
        if model.global_embedding is not None:
            embedding = model.global_embedding(global_ids)
            bias += torch.stack([layer.global_condition(embedding) for layer in model.layers], dim=1)
        projected = None
        if frames is not None:
            projected = torch.stack([layer.condition(frames) for layer in model.layers], dim=1)  # (B, L, 2G, n)
            projected = np.ascontiguousarray(projected.permute(0, 3, 1, 2).numpy(), dtype=np.float32)
    return np.ascontiguousarray(bias.numpy(), dtype=np.float32), projected


@numba.njit(cache=True, inline="always")
def _matmul_add(out, inputs, weight):
    """out (B, O) += inputs (B, I) @ weight (I, O)."""
    for b in range(inputs.shape[0]):
        for i in range(inputs.shape[1]):
            v = inputs[b, i]
            for o in range(weight.shape[1]):
                out[b, o] += v * weight[i, o]


@numba.njit(cache=True, inline="always")
def _relu(values):
    """values (B, C) = max(values, 0), in place."""
    for b in range(values.shape[0]):
        for c in range(values.shape[1]):
            if values[b, c] < 0:
                values[b, c] = 0


@numba.njit(cache=True)
def _run_steps(t_start, t_stop, inputs, samples, uniforms, inv_temperature, teacher_forced,
               logits_out, history, w, bias, projected):
    """Advance every clip from step ``t_start`` to ``t_stop`` (one sample per step).

    inputs (B, T) int64: the input at each step (sample t - 1); filled with the drawn
    samples unless ``teacher_forced``. samples (B, T) int64: the drawn classes.
    uniforms (T, B) float64 in [0, 1): the randomness of each draw (inverse CDF).
    logits_out (B, T, Q) float32, or size 0 not to record. history (L, H, B, R)
    float32: each layer's past inputs, a ring buffer (H a power of two above the
    largest look-back), zeros before the first call.
    """
    batch = inputs.shape[0]
    n_layers, ring, _, residual = history.shape
    mask = ring - 1
    k = w.conv.shape[1]
    gates = w.conv.shape[3] // 2
    skip_channels = w.out1.shape[0]
    q = w.out2.shape[1]
    k_in = w.input_table.shape[0]
    hop = w.upsample.shape[0] // 2
    record = logits_out.size > 0
    x = np.empty((batch, residual), np.float32)
    a = np.empty((batch, 2 * gates), np.float32)
    z = np.empty((batch, gates), np.float32)
    rs = np.empty((batch, residual + skip_channels), np.float32)
    skip = np.empty((batch, skip_channels), np.float32)
    hidden = np.empty((batch, skip_channels), np.float32)
    logits = np.empty((batch, q), np.float32)
    probs = np.empty(q, np.float64)
    for t in range(t_start, t_stop):
        frame = t // hop
        offset = t - frame * hop
        weight_this = w.upsample[offset + hop]  # frame `frame` is centred on sample frame * hop
        weight_next = w.upsample[offset]
        # causal input convolution on one-hot inputs: one table row per tap
        for b in range(batch):
            x[b] = w.input_bias
            for i in range(k_in):
                back = t - (k_in - 1 - i)
                if back >= 0:
                    x[b] += w.input_table[i, inputs[b, back]]
        skip[:] = 0.0
        for layer in range(n_layers):
            dilation = w.dilations[layer]
            history[layer, t & mask] = x
            for b in range(batch):
                for c in range(2 * gates):
                    a[b, c] = (bias[b, layer, c] + weight_this * projected[b, frame, layer, c]
                               + weight_next * projected[b, frame + 1, layer, c])
            for i in range(k):
                _matmul_add(a, history[layer, (t - (k - 1 - i) * dilation) & mask], w.conv[layer, i])
            for b in range(batch):
                for c in range(gates):
                    z[b, c] = math.tanh(a[b, c]) / (1.0 + math.exp(-a[b, gates + c]))
            rs[:] = w.res_skip_bias[layer]
            _matmul_add(rs, z, w.res_skip[layer])
            for b in range(batch):
                for c in range(residual):
                    x[b, c] += rs[b, c]
                for c in range(skip_channels):
                    skip[b, c] += rs[b, residual + c]
        # output layers: relu, 1x1, relu, 1x1
        _relu(skip)
        hidden[:] = w.out1_bias
        _matmul_add(hidden, skip, w.out1)
        _relu(hidden)
        logits[:] = w.out2_bias
        _matmul_add(logits, hidden, w.out2)
        for b in range(batch):
            if record:
                logits_out[b, t] = logits[b]
            top = logits[b].max()
            total = 0.0
            for c in range(q):
                probs[c] = math.exp((logits[b, c] - top) * inv_temperature)
                total += probs[c]
            threshold = uniforms[t, b] * total
            drawn = q - 1
            running = 0.0
            for c in range(q):
                running += probs[c]
                if running > threshold:
                    drawn = c
                    break
            samples[b, t] = drawn
            if not teacher_forced and t + 1 < inputs.shape[1]:
                inputs[b, t + 1] = drawn


class IncrementalGenerator:
    """One batch of clips generated step by step with per-layer cached states.

    Build it for a model and the clips' conditioning, then :meth:`run`. The
    conditioning is projected for every layer once, here, at frame rate.
    """

    def __init__(self, model: WaveNet, num_samples: int, batch: int, frames: torch.Tensor | None = None,
                 global_ids: torch.Tensor | None = None, seed: int = 0, temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, not {temperature}")
        config = model.config
        self.num_samples = num_samples
        self.weights = step_weights(model)
        self.bias, self.projected = clip_conditioning(model, frames, global_ids, batch)
        if self.projected is None:  # unconditional: zeros under every step's frame index
            self.projected = np.zeros((batch, num_samples // config.hop_length + 2, len(model.layers),
                                       2 * config.gate_channels), np.float32)
        look_back = max(config.kernel_size - 1, 1) * max(config.layer_dilations())
        ring = 1 << int(look_back).bit_length()
        self.history = np.zeros((len(model.layers), ring, batch, config.residual_channels), np.float32)
        self.inputs = np.full((batch, num_samples), SILENCE_CLASS, np.int64)
        self.samples = np.zeros((batch, num_samples), np.int64)
        self.uniforms = np.random.default_rng(seed).random((num_samples, batch))
        self.inv_temperature = 1.0 / temperature
        self.step = 0

    def run(self, steps: int | None = None, teacher_forced: bool = False,
            logits_out: np.ndarray | None = None) -> None:
        """Advance ``steps`` samples (default: to the end)."""
        stop = self.num_samples if steps is None else min(self.num_samples, self.step + steps)
        record = logits_out if logits_out is not None else np.zeros((0, 0, 0), np.float32)
        _run_steps(self.step, stop, self.inputs, self.samples, self.uniforms, self.inv_temperature,
                   teacher_forced, record, self.history, self.weights, self.bias, self.projected)
        self.step = stop


def generate(model: WaveNet, mels: Sequence[np.ndarray] | None = None, *, num_samples: int | None = None,
             num_clips: int = 1, global_ids: Sequence[int] | None = None, seed: int = 0,
             temperature: float = 1.0, progress: bool = False) -> list[np.ndarray]:
    """Generate clips as one batch: a vocoder for ``mels``, or unconditional.

    Args:
        mels: log-mels (n_mels, frames_i); clip i gets ``(frames_i - 1) * hop`` samples,
            the length of the centred STFT's inverse. Shorter clips are padded with
            silence for the batch and cut back after.
        num_samples, num_clips: length and count for an unconditional model.
        global_ids: one class or speaker id per clip when the model has ``n_global``.
        seed: the same seed gives the same clips.
        temperature: divides the logits before sampling (below 1: more conservative).
        progress: show a progress bar with samples per second.

    Returns:
        wavs: float32 (samples_i,) per clip, in [-1, 1] at the model's rate.
    """
    config = model.config
    model.eval()
    frames = None
    if config.n_mels:
        if mels is None or len(mels) == 0:
            raise ValueError("this WaveNet is a vocoder: pass the log-mels to synthesise")
        for i, mel in enumerate(mels):
            if mel.ndim != 2 or mel.shape[0] != config.n_mels or mel.shape[1] < 2:
                raise ValueError(f"log-mel {i} has shape {mel.shape}; expected ({config.n_mels}, frames >= 2)")
        most = max(mel.shape[1] for mel in mels)
        floor = math.log(config.clamp)
        batch_mel = np.full((len(mels), config.n_mels, most), floor, np.float32)
        for i, mel in enumerate(mels):
            batch_mel[i, :, : mel.shape[1]] = mel
        with torch.inference_mode():
            frames = model.condition_frames(torch.from_numpy(batch_mel))
        lengths = [(mel.shape[1] - 1) * config.hop_length for mel in mels]
    else:
        if num_samples is None:
            raise ValueError("an unconditional WaveNet needs num_samples")
        lengths = [num_samples] * num_clips
    ids = None if global_ids is None else torch.as_tensor(list(global_ids), dtype=torch.int64)
    generator = IncrementalGenerator(model, max(lengths), len(lengths), frames, ids, seed, temperature)
    _run_with_progress(generator, progress)
    wavs = mu_law_decode(generator.samples, config.quantization_channels)
    return [wavs[i, :length] for i, length in enumerate(lengths)]


def _run_with_progress(generator: IncrementalGenerator, show: bool, chunk: int = 4000) -> None:
    if not show:
        generator.run()
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    batch = generator.samples.shape[0]
    started = time.perf_counter()
    with Progress(TextColumn("wavenet"), BarColumn(), TextColumn("{task.fields[rate]}"),
                  TimeRemainingColumn()) as bar:
        task = bar.add_task("generate", total=generator.num_samples, rate="")
        while generator.step < generator.num_samples:
            generator.run(chunk)
            rate = batch * generator.step / (time.perf_counter() - started)
            bar.update(task, completed=generator.step, rate=f"{rate:,.0f} samples/s")


def teacher_forced_logits(model: WaveNet, inputs: torch.Tensor, frames: torch.Tensor | None = None,
                          global_ids: torch.Tensor | None = None) -> torch.Tensor:
    """The incremental step loop's logits (B, Q, T) for given ``inputs`` (B, T): equals ``model(inputs, ...)``."""
    batch, steps = inputs.shape
    generator = IncrementalGenerator(model, steps, batch, frames, global_ids)
    generator.inputs[:] = inputs.numpy()
    logits = np.zeros((batch, steps, model.config.quantization_channels), np.float32)
    generator.run(teacher_forced=True, logits_out=logits)
    return torch.from_numpy(logits).transpose(1, 2)


def warm_step_loop() -> None:
    """Compile the incremental step loop once, so that numba's cache has it for later processes."""
    model = WaveNet(WaveNetConfig(layer_size=1, stack_size=1, residual_channels=2, gate_channels=2,
                                  skip_channels=2, condition_channels=2))
    generate(model, [np.zeros((model.config.n_mels, 2), np.float32)])
