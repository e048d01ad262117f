"""Training the reference magnitude vocoder on a GPU machine, where librosa is not installed.

How ``reference/checkpoints/magnitude.pt`` was made. Two steps:

``prepare`` (here, with librosa): packs the training waveforms into one ``.npz`` (int16 at
16 kHz, concatenated, with offsets) beside the mel filter bank, so that the GPU machine needs
only numpy and torch. The waveforms: the embedded data set's training split, FSDD's
training speakers (``.cache/fsdd-speakers``, `make reference` builds it), and espeak-ng
voices of the *training* accents that the embedded split does not use (one voice per
accent and variant; no held-out or test accent is ever spoken). The test split's clips
are packed apart, for the validation loss.

``train`` (there): the STFT magnitude of every clip is computed on the GPU with the
contract's parameters (centred STFT, Hann window, zero padding: librosa's defaults);
each batch takes random ``segment``-frame crops, warps their frequency axis by a random
factor (vocal-tract-length perturbation: formants and pitch move together, as another
speaker's would) and a random gain, and makes the log-mel from the warped magnitude; the
loss is :meth:`reference.vocoder.MagnitudeVocoder.loss`. Adam with a cosine learning
rate over the time budget and an exponential moving average of the weights, which is
what is saved (in half precision), in :func:`reference.train.load_checkpoint`'s format, with
the config's Griffin-Lim iterations (``--griffin-lim-iterations``, 200 for the committed one).

    .venv/bin/python -m reference train-vocoder prepare --out .gpu
    python3 -m reference train-vocoder train --data .gpu --out $OUT/magnitude.pt --minutes 6.5 \
        --config '{"channels": 256, "head_channels": 512, "dilations": [1, 2, 4, 8, 1, 2, 4, 8]}' \
        --batch-size 128 --seed 1                                           # on the GPU machine

The committed checkpoint: 23,196 steps in 6.5 minutes on one H200 (3.65 M parameters). The
same command runs on CPU (no GPU found), at a few steps a second.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from reference import PROJECT_ROOT, SAMPLE_RATE
from reference.preprocess import LogMelParams

PACKED = "waveforms.npz"
BANK = "mel_bank.npy"
EXTRA_UTTERANCES = 5
"""Utterances of each extra espeak-ng voice (2-4 s each)."""


# --------------------------------------------------------------------------- prepare (here)

def _extra_voices(rng: np.random.Generator, used: set[str]):
    """One voice per training accent and variant the embedded training split does not use."""
    from reference.data import SPLIT_ACCENTS, VOICE_VARIANTS, Voice

    for accent in SPLIT_ACCENTS["train"]:
        for variant in VOICE_VARIANTS:
            if f"voice-{accent}-{variant}" not in used:
                yield Voice(accent, variant, pitch=int(rng.integers(25, 76)), rate=int(rng.integers(135, 186)))


def _pack(waves: list[np.ndarray]) -> dict[str, np.ndarray]:
    """float32 waveforms -> {"samples": int16 (total,), "offsets": int64 (clips + 1,)}."""
    offsets = np.cumsum([0] + [len(w) for w in waves]).astype(np.int64)
    joined = np.concatenate(waves) if waves else np.zeros(0, np.float32)
    return {"samples": np.round(np.clip(joined, -1, 1) * 32767).astype(np.int16), "offsets": offsets}


def prepare(out: Path, data: Path, fsdd: Path, seed: int = 0) -> None:
    import tempfile

    from reference.data import random_text, read_manifest, speak
    from reference.preprocess import load_audio, mel_filterbank

    clips = read_manifest(data)
    train = [load_audio(c.path, SAMPLE_RATE) for c in clips if c.split == "train"]
    test = [load_audio(c.path, SAMPLE_RATE) for c in clips if c.split == "test"]
    fsdd_train = [load_audio(c.path, SAMPLE_RATE) for c in read_manifest(fsdd) if c.split == "train"]
    rng = np.random.default_rng(seed)
    extra = []
    with tempfile.TemporaryDirectory() as work:
        for voice in _extra_voices(rng, {c.group for c in clips if c.split == "train"}):
            for _ in range(EXTRA_UTTERANCES):
                wav = speak(voice, random_text(rng), Path(work))
                if 2.0 <= len(wav) / SAMPLE_RATE <= 4.0:
                    extra.append(wav)
    out.mkdir(parents=True, exist_ok=True)
    train_all = train + fsdd_train + extra
    packed = _pack(train_all)
    validation = _pack(test)
    np.savez_compressed(out / PACKED, train_samples=packed["samples"], train_offsets=packed["offsets"],
                        test_samples=validation["samples"], test_offsets=validation["offsets"])
    np.save(out / BANK, mel_filterbank(LogMelParams()))
    (out / "sources.json").write_text(json.dumps({
        "embedded_train": len(train), "fsdd_train": len(fsdd_train), "espeak_extra": len(extra),
        "test": len(test), "seconds": round(sum(map(len, train_all)) / SAMPLE_RATE, 1)}, indent=1))
    print(f"{len(train)} embedded, {len(fsdd_train)} FSDD and {len(extra)} extra espeak-ng training clips "
          f"({sum(map(len, train_all)) / SAMPLE_RATE / 60:.1f} min), {len(test)} test clips -> {out}")


# --------------------------------------------------------------------------- train (on the GPU)

def _clips(samples: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [samples[a:b].astype(np.float32) / 32767 for a, b in zip(offsets[:-1], offsets[1:])]


def _magnitudes(waves: list[np.ndarray], params: LogMelParams, device) -> list:
    """Each clip's STFT magnitude (bins, frames) on ``device``: centred, Hann window, zero padding."""
    import torch

    window = torch.hann_window(params.win_length, periodic=True, device=device)
    result = []
    for wav in waves:
        x = torch.from_numpy(wav).to(device)
        spec = torch.stft(x, params.n_fft, params.hop_length, params.win_length, window, center=True,
                          pad_mode="constant", return_complex=True)
        result.append(spec.abs())
    return result


def _batch(magnitudes: list, segment: int, size: int, generator, device):
    """``size`` random crops (size, bins, segment) of the clips' magnitudes, zero-padded when short."""
    import torch

    picks = torch.randint(len(magnitudes), (size,), generator=generator).tolist()
    crops = []
    for i in picks:
        mag = magnitudes[i]
        frames = mag.shape[1]
        if frames < segment:
            mag = torch.nn.functional.pad(mag, (0, segment - frames))
            frames = segment
        start = int(torch.randint(frames - segment + 1, (1,), generator=generator))
        crops.append(mag[:, start:start + segment])
    return torch.stack(crops)


def _augment(mag, generator, max_warp: float, gain_db: tuple[float, float]):
    """Warp each crop's frequency axis by a factor in [1/max_warp, max_warp] (bin f takes bin f / factor,
    linearly interpolated; none beyond the top) and scale it by a gain in ``gain_db`` dB."""
    import torch

    size, bins, _ = mag.shape
    device = mag.device
    factor = torch.exp((torch.rand(size, generator=generator) * 2 - 1) * math.log(max_warp)).to(device)
    source = torch.arange(bins, device=device)[None, :] / factor[:, None]  # (size, bins)
    low = source.floor().long().clamp(max=bins - 1)
    high = (low + 1).clamp(max=bins - 1)
    weight = (source - low).clamp(0, 1)[:, :, None]
    gathered_low = torch.gather(mag, 1, low[:, :, None].expand(-1, -1, mag.shape[2]))
    gathered_high = torch.gather(mag, 1, high[:, :, None].expand(-1, -1, mag.shape[2]))
    warped = (1 - weight) * gathered_low + weight * gathered_high
    warped = warped * (source < bins - 1)[:, :, None]
    gain = torch.empty(size).uniform_(*gain_db, generator=generator).to(device)
    return warped * (10 ** (gain / 20))[:, None, None]


def _logmel(mag, bank, clamp: float):
    import torch

    return torch.log(torch.clamp(torch.einsum("mf,bft->bmt", bank, mag), min=clamp))


def train(data: Path, out: Path, minutes: float, config_overrides: dict, batch_size: int, segment: int,
          lr: float, ema: float, max_warp: float, seed: int, griffin_lim_iterations: int) -> None:
    import torch

    from reference import preprocess
    from reference.vocoder import MagnitudeConfig, MagnitudeVocoder

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    params = LogMelParams()
    bank_array = np.load(data / BANK)
    # librosa is not installed where this runs: the bank `prepare` saved is librosa's own.
    preprocess.mel_basis = lambda *args: bank_array
    packed = np.load(data / PACKED)
    train_mags = _magnitudes(_clips(packed["train_samples"], packed["train_offsets"]), params, device)
    test_mags = _magnitudes(_clips(packed["test_samples"], packed["test_offsets"]), params, device)
    bank = torch.from_numpy(bank_array).to(device)

    torch.manual_seed(seed)
    overrides = {**config_overrides, **({"dilations": tuple(config_overrides["dilations"])}
                                        if "dilations" in config_overrides else {})}
    config = MagnitudeConfig.for_logmel(params, **{"griffin_lim_iterations": griffin_lim_iterations, **overrides})
    model = MagnitudeVocoder(config).to(device)
    average = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    val_generator = torch.Generator().manual_seed(seed + 1)
    val_batches = [_batch(test_mags, segment, batch_size, val_generator, device) for _ in range(4)]
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{out.name}: {parameters / 1e6:.2f} M parameters, {len(train_mags)} clips, config {config_overrides}, "
          f"warp {max_warp}, batch {batch_size}x{segment}", flush=True)

    def validate() -> float:
        with torch.no_grad():
            return float(np.mean([average.module.loss(_logmel(b, bank, config.clamp), b).item() for b in val_batches]))

    budget = minutes * 60
    started, step = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - started) < budget:
        for group in optimizer.param_groups:
            group["lr"] = 1e-5 + 0.5 * (lr - 1e-5) * (1 + math.cos(math.pi * elapsed / budget))
        mag = _batch(train_mags, segment, batch_size, generator, device)
        if max_warp > 1:
            mag = _augment(mag, generator, max_warp, (-12.0, 6.0))
        loss = model.loss(_logmel(mag, bank, config.clamp), mag)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        average.update_parameters(model)
        step += 1
        if step % 2000 == 0:
            print(f"{out.name} step {step} {elapsed:.0f} s loss {loss.item():.4f} val {validate():.4f}", flush=True)
    seconds = time.perf_counter() - started
    # Half precision halves the file (the compressed magnitudes move by about 3e-5, the model's error is 0.07);
    # load_checkpoint copies the weights into the float32 model.
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in average.module.state_dict().items()}
    torch.save({
        "kind": "magnitude", "config": config.to_dict(), "model": state, "logmel_params": asdict(params),
        "data": {"train_clips": len(train_mags), "val_clips": len(test_mags),
                 "sources": json.loads((data / "sources.json").read_text())},
        "training": {"seed": seed, "step": step, "seconds": round(seconds, 1), "batch_size": batch_size,
                     "segment": segment, "lr": lr, "ema": ema, "max_warp": max_warp,
                     "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                     "torch": str(torch.__version__)},
        "history": {"final_val_loss": validate()},
    }, out)
    print(f"{out.name}: {step} steps in {seconds:.0f} s, val {validate():.4f} -> {out}", flush=True)


def main(argv: list[str], prog: str) -> int:
    """`train-vocoder prepare --out DIR` here, then `train-vocoder train --data DIR --out FILE` where torch runs."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="pack the training waveforms and the mel bank (needs librosa)")
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--data", type=Path, default=PROJECT_ROOT / "data" / "embedded")
    prep.add_argument("--fsdd", type=Path, default=PROJECT_ROOT / ".cache" / "fsdd-speakers")
    run = commands.add_parser("train", help="train on the packed waveforms (numpy and torch only)")
    run.add_argument("--data", type=Path, required=True)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--minutes", type=float, default=7.0)
    run.add_argument("--config", type=json.loads, default={}, help='MagnitudeConfig overrides, JSON')
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--segment", type=int, default=64)
    run.add_argument("--lr", type=float, default=1e-3)
    run.add_argument("--ema", type=float, default=0.999)
    run.add_argument("--max-warp", type=float, default=1.2, help="frequency warp factor bound (1: none)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--griffin-lim-iterations", type=int, default=200,
                     help="Griffin-Lim iterations the saved vocoder runs after the magnitude (default 200)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.out, args.data, args.fsdd)
    else:
        train(args.data, args.out, args.minutes, args.config, args.batch_size, args.segment, args.lr, args.ema,
              args.max_warp, args.seed, args.griffin_lim_iterations)
    return 0
