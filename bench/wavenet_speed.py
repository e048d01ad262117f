"""WaveNet speed on this CPU: training samples/s, and naive against incremental generation.

The model is the assignment-sized reference vocoder: 2 stacks x 8 layers, 32 channels,
log-mel conditioned (receptive field 512 samples). Measured in one run:

  training      forward + backward + Adam step on batches of 8 x 4096 samples
  naive         each step runs the full forward pass over the receptive field (512 samples,
                rounded out to a fixed window of 768 so the frames line up) and keeps one column
  incremental   reference.wavenet's per-layer cached states, conditioning projected once per clip

Both generators draw from the same uniforms, so they produce the same samples (printed as
a check). Goals: incremental >= 30x naive at batch 1; faster than real time (16,000
samples/s of output) at batch 8.

    .venv/bin/python bench/wavenet_speed.py [--threads 1] [--seconds 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reference  # noqa: E402,F401  (sets numba's cache folder first)

REAL_TIME = 16000


def naive_generate(model, frames, steps: int, seed: int) -> tuple[np.ndarray, float]:
    """Sample ``steps`` samples, recomputing the whole receptive field each step; (classes (B, steps), seconds).

    Each step runs the full forward pass on a fixed window of whole frames that ends with
    the current frame and holds the receptive field (512 -> 768 samples); inputs after
    the current sample are placeholders the causal model never sees. One window shape,
    so oneDNN reuses its kernels instead of preparing one for every length.
    """
    import torch

    from reference.wavenet import SILENCE_CLASS

    batch = frames.shape[0]
    hop = model.config.hop_length
    window = (-(-model.receptive_field() // hop) + 1) * hop
    uniforms = torch.from_numpy(np.random.default_rng(seed).random((steps, batch)))
    inputs = torch.full((batch, max(steps, window)), SILENCE_CLASS, dtype=torch.int64)
    drawn = torch.zeros((batch, steps), dtype=torch.int64)
    started = time.perf_counter()
    with torch.inference_mode():
        for t in range(steps):
            start = max(0, (t // hop + 1) * hop - window)
            logits = model(inputs[:, start : start + window],
                           frames[:, :, start // hop : (start + window) // hop + 1])[:, :, t - start].double()
            cumulative = torch.cumsum(torch.softmax(logits, dim=1), dim=1)
            drawn[:, t] = torch.searchsorted(cumulative, uniforms[t][:, None], right=True)[:, 0].clamp(max=255)
            inputs[:, t + 1] = drawn[:, t]
    return drawn.numpy(), time.perf_counter() - started


def incremental_generate(model, frames, steps: int, seed: int) -> tuple[np.ndarray, float]:
    """The same with reference.wavenet's incremental generator; (classes (B, steps), seconds)."""
    from reference.wavenet import IncrementalGenerator

    started = time.perf_counter()
    generator = IncrementalGenerator(model, steps, frames.shape[0], frames, seed=seed)
    generator.run()
    return generator.samples, time.perf_counter() - started


def training_rate(model, threads: int, steps: int = 4) -> float:
    """Training samples per second (forward, backward, Adam) on batches of 8 x 4096 samples."""
    import torch

    batch, segment = 8, 16
    hop = model.config.hop_length
    context = model.config.condition_layers
    classes = torch.randint(0, 256, (batch, segment * hop), generator=torch.Generator().manual_seed(0))
    mel = torch.empty(batch, model.config.n_mels, segment + 1 + 2 * context).uniform_(-11.5, 0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss = model.loss(classes, model.conditioner(mel))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * classes.numel() / (time.perf_counter() - started)


def main() -> int:
    import torch

    from reference.wavenet import WaveNet, WaveNetConfig, teacher_forced_logits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on 2 shared cores, 2 threads measured up to 10x slower)")
    parser.add_argument("--seconds", type=float, default=3.0, help="audio generated per clip, incremental")
    parser.add_argument("--naive-steps", type=int, default=300, help="samples generated per clip, naive")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = WaveNet(WaveNetConfig(layer_size=8, stack_size=2, residual_channels=32, gate_channels=32,
                                  skip_channels=32))
    config = model.config
    print(f"WaveNet {config.stack_size}x{config.layer_size} layers, {config.residual_channels} channels, "
          f"receptive field {model.receptive_field()} samples, {sum(p.numel() for p in model.parameters()):,} "
          f"parameters, torch {torch.__version__}, {args.threads} threads")

    train_rate = training_rate(model.train(), args.threads)
    print(f"training: {train_rate:,.0f} samples/s ({train_rate / REAL_TIME:.2f}x real time)")

    model.eval()
    started = time.perf_counter()
    teacher_forced_logits(model, torch.zeros(1, 8, dtype=torch.int64),
                          model.condition_frames(torch.zeros(1, config.n_mels, 2)).detach())
    print(f"incremental step loop ready (numba compile or cache load) in {time.perf_counter() - started:.1f} s")

    steps = int(args.seconds * REAL_TIME)
    print(f"\n{'batch':>5} {'naive samples/s':>16} {'incremental samples/s':>22} {'speed-up':>9} "
          f"{'x real time':>12} {'same samples':>13}")
    for batch in (1, 8):
        mel = torch.empty(batch, config.n_mels, steps // config.hop_length + 2).uniform_(-11.5, 0.0,
                                                                                         generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            frames = model.condition_frames(mel)
        naive_generate(model, frames, 3, seed=batch)  # warm-up: oneDNN prepares its kernels
        naive, naive_seconds = naive_generate(model, frames, args.naive_steps, seed=batch)
        fast, fast_seconds = incremental_generate(model, frames, steps, seed=batch)
        naive_rate = batch * args.naive_steps / naive_seconds
        fast_rate = batch * steps / fast_seconds
        same = int(np.sum(naive == fast[:, : args.naive_steps]))
        print(f"{batch:>5} {naive_rate:>16,.0f} {fast_rate:>22,.0f} {fast_rate / naive_rate:>8.0f}x "
              f"{fast_rate / REAL_TIME:>11.2f}x {same:>6}/{naive.size}")
    print("\ngoals: speed-up >= 30x at batch 1; x real time > 1 at batch 8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
