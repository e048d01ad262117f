"""Training of the reference models, their checkpoints, and the `train` command.

``python -m reference train wavenet|vae|magnitude --data DIR [DIR ...] --out DIR --minutes N --seed S``

A data folder is a data set with ``manifest.csv`` (see :mod:`reference.data`;
its ``train`` split trains, its ``test`` split validates) or a plain folder of
audio files (every tenth file by name validates); several folders train together.
Every clip is loaded at 16 kHz and turned into the contract's log-mel
(:func:`reference.preprocess.logmel`).

Determinism: the batch of step ``s`` is drawn from ``numpy.random.default_rng([seed, s])``
and the model starts from ``torch.manual_seed(seed)``, so on CPU with the same thread
count the same seed gives the same loss curve, and a resumed run continues the curve
an uninterrupted run would have drawn.

A run writes ``<out>/<kind>.pt`` (the model: configuration, weights, log-mel
parameters, the data manifest's hash, the loss history) and ``<out>/<kind>.optimizer.pt``
(what ``--resume`` needs besides), each atomically (a temporary file, then a rename).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from reference.files import atomic_path
from reference.preprocess import AudioLoadError, LogMelParams, audio_files, load_audio, logmel, stft_magnitude
from reference.vae import MelVAE, VAEConfig
from reference.vocoder import MagnitudeConfig, MagnitudeVocoder
from reference.wavenet import SILENCE_CLASS, WaveNet, WaveNetConfig, mu_law_encode, normalize_logmel

KINDS = ("wavenet", "vae", "magnitude")
VALIDATION_BATCHES = 4


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and what to do."""


# --------------------------------------------------------------------------- data

@dataclass
class TrainingClip:
    """One clip ready for training: ``mel`` (n_mels, frames), ``classes`` ((frames - 1) * hop,) mu-law, and
    for the magnitude vocoder ``magnitude`` (1 + n_fft // 2, frames), the STFT magnitude the log-mel came from."""

    name: str
    mel: np.ndarray
    classes: np.ndarray
    magnitude: np.ndarray | None = None


def data_files(data_dirs: list[Path], split: str) -> list[Path]:
    """Audio files of ``split`` ("train" or "test") of every folder: from ``manifest.csv`` where there is one."""
    return [path for data_dir in data_dirs for path in _folder_files(data_dir, split)]


def _folder_files(data_dir: Path, split: str) -> list[Path]:
    from reference.data import MANIFEST_NAME, read_manifest

    if (data_dir / MANIFEST_NAME).is_file():
        return sorted(clip.path for clip in read_manifest(data_dir) if clip.split == split)
    files = audio_files(data_dir)
    return [f for i, f in enumerate(files) if (i % 10 == 9) == (split == "test")]


def data_hash(data_dirs: Path | list[Path]) -> str:
    """Hex sha256 of the manifest, or of the audio files' names and bytes for a plain folder; of every
    folder's hash in turn for several."""
    if isinstance(data_dirs, list):
        if len(data_dirs) == 1:
            return data_hash(data_dirs[0])
        return hashlib.sha256("|".join(data_hash(folder) for folder in data_dirs).encode()).hexdigest()
    data_dir = data_dirs
    from reference.data import MANIFEST_NAME, manifest_hash

    if (data_dir / MANIFEST_NAME).is_file():
        return manifest_hash(data_dir)
    digest = hashlib.sha256()
    for path in audio_files(data_dir):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load_clips(files: list[Path], params: LogMelParams, quantization_channels: int = 256,
               magnitude: bool = False) -> list[TrainingClip]:
    """Load each file at ``params.sr``, compute its log-mel and mu-law classes (cut to (frames - 1) * hop),
    and with ``magnitude`` its STFT magnitude."""
    clips = []
    for path in files:
        wav = load_audio(path, params.sr)
        mel = logmel(wav, params)
        length = (mel.shape[1] - 1) * params.hop_length
        clips.append(TrainingClip(path.stem, mel, mu_law_encode(wav[:length], quantization_channels),
                                  stft_magnitude(wav, params) if magnitude else None))
    return clips


def pad_clip(clip: TrainingClip, min_frames: int, context: int, params: LogMelParams) -> TrainingClip:
    """``clip`` with at least ``min_frames`` frames and ``context`` more each side, silence-padded.

    The padded log-mel's frame ``j + context`` is the clip's frame ``j``; classes are
    padded at the end to ((frames - 1) * hop,) with the silent class.
    """
    floor = math.log(params.clamp)
    extra = max(0, min_frames - clip.mel.shape[1])
    mel = np.pad(clip.mel, ((0, 0), (context, context + extra)), constant_values=floor)
    samples = (clip.mel.shape[1] + extra - 1) * params.hop_length
    classes = np.pad(clip.classes, (0, samples - len(clip.classes)), constant_values=SILENCE_CLASS)
    return TrainingClip(clip.name, mel, classes)


# --------------------------------------------------------------------------- tasks

class WaveNetTask:
    """Batches of ``segment`` frames (segment * hop samples) and the WaveNet's cross-entropy."""

    kind = "wavenet"

    def __init__(self, config: WaveNetConfig, params: LogMelParams, batch_size: int, segment: int):
        self.config, self.params = config, params
        self.batch_size, self.segment = batch_size, segment
        self.context = config.condition_layers

    def make_model(self) -> WaveNet:
        return WaveNet(self.config)

    def prepare(self, clips: list[TrainingClip]) -> list[TrainingClip]:
        return [pad_clip(c, self.segment + 1, self.context, self.params) for c in clips]

    def batch(self, clips: list[TrainingClip], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """classes (B, segment * hop) int64 and the log-mel with context (B, n_mels, segment + 1 + 2 * context)."""
        hop, n = self.params.hop_length, self.segment
        classes, mels = [], []
        for index in rng.integers(len(clips), size=self.batch_size):
            clip = clips[index]
            frames = clip.mel.shape[1] - 2 * self.context
            start = int(rng.integers(frames - n))  # frames start .. start + n, all inside the clip
            classes.append(clip.classes[start * hop : (start + n) * hop])
            mels.append(clip.mel[:, start : start + n + 1 + 2 * self.context])
        return {"classes": torch.from_numpy(np.stack(classes)), "mel": torch.from_numpy(np.stack(mels))}

    def loss(self, model: WaveNet, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        return model.loss(batch["classes"], model.conditioner(batch["mel"]))

    def items(self, batch: dict[str, torch.Tensor]) -> int:
        """Samples in a batch, for the rate shown."""
        return batch["classes"].numel()


class VAETask:
    """Batches of ``segment``-frame log-mel crops and the VAE's MSE + beta * KL."""

    kind = "vae"

    def __init__(self, config: VAEConfig, params: LogMelParams, batch_size: int, segment: int):
        if segment % config.factor:
            raise ValueError(f"--segment {segment} must be a multiple of {config.factor} frames for the VAE")
        self.config, self.params = config, params
        self.batch_size, self.segment = batch_size, segment

    def make_model(self) -> MelVAE:
        return MelVAE(self.config)

    def prepare(self, clips: list[TrainingClip]) -> list[TrainingClip]:
        return [pad_clip(c, self.segment, 0, self.params) for c in clips]

    def batch(self, clips: list[TrainingClip], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """log-mel crops (B, n_mels, segment)."""
        mels = []
        for index in rng.integers(len(clips), size=self.batch_size):
            clip = clips[index]
            start = int(rng.integers(clip.mel.shape[1] - self.segment + 1))
            mels.append(clip.mel[:, start : start + self.segment])
        return {"mel": torch.from_numpy(np.stack(mels))}

    def loss(self, model: MelVAE, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        x = normalize_logmel(batch["mel"][:, None], self.config.clamp)
        return model.loss(x, generator)[0]

    def items(self, batch: dict[str, torch.Tensor]) -> int:
        """Frames in a batch, for the rate shown."""
        return batch["mel"].shape[0] * batch["mel"].shape[-1]


class MagnitudeTask:
    """Batches of ``segment``-frame crops of log-mel and STFT magnitude, and the magnitude vocoder's L1 loss."""

    kind = "magnitude"
    needs_magnitude = True

    def __init__(self, config: MagnitudeConfig, params: LogMelParams, batch_size: int, segment: int):
        self.config, self.params = config, params
        self.batch_size, self.segment = batch_size, segment

    def make_model(self) -> MagnitudeVocoder:
        return MagnitudeVocoder(self.config)

    def prepare(self, clips: list[TrainingClip]) -> list[TrainingClip]:
        """Clips shorter than ``segment`` frames padded with silence (the log-mel's floor, zero magnitude)."""
        prepared = []
        for clip in clips:
            extra = max(0, self.segment - clip.mel.shape[1])
            prepared.append(TrainingClip(clip.name, np.pad(clip.mel, ((0, 0), (0, extra)),
                                                           constant_values=math.log(self.params.clamp)),
                                         clip.classes, np.pad(clip.magnitude, ((0, 0), (0, extra)))))
        return prepared

    def batch(self, clips: list[TrainingClip], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """log-mel crops (B, n_mels, segment) and the magnitude of the same frames (B, bins, segment)."""
        mels, magnitudes = [], []
        for index in rng.integers(len(clips), size=self.batch_size):
            clip = clips[index]
            start = int(rng.integers(clip.mel.shape[1] - self.segment + 1))
            mels.append(clip.mel[:, start : start + self.segment])
            magnitudes.append(clip.magnitude[:, start : start + self.segment])
        return {"mel": torch.from_numpy(np.stack(mels)), "magnitude": torch.from_numpy(np.stack(magnitudes))}

    def loss(self, model: MagnitudeVocoder, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        return model.loss(batch["mel"], batch["magnitude"])

    def items(self, batch: dict[str, torch.Tensor]) -> int:
        """Frames in a batch, for the rate shown."""
        return batch["mel"].shape[0] * batch["mel"].shape[-1]


# --------------------------------------------------------------------------- checkpoints

def atomic_save(obj: dict, path: Path) -> None:
    """torch.save ``obj`` to ``path`` through a temporary file and a rename: never half-written."""
    with atomic_path(path) as staging:
        torch.save(obj, staging)


def load_checkpoint(path: str | os.PathLike) -> tuple[WaveNet | MelVAE | MagnitudeVocoder, dict]:
    """The model of a checkpoint written by :func:`train` (in eval mode) and the checkpoint's dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint. Train one with `python -m reference train ...` "
                              f"or pass --checkpoint.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        kind = checkpoint["kind"]
        if kind == "wavenet":
            model: WaveNet | MelVAE | MagnitudeVocoder = WaveNet(WaveNetConfig.from_dict(checkpoint["config"]))
        elif kind == "vae":
            model = MelVAE(VAEConfig.from_dict(checkpoint["config"]))
        elif kind == "magnitude":
            model = MagnitudeVocoder(MagnitudeConfig.from_dict(checkpoint["config"]))
        else:
            raise CheckpointError(f"{path}: unknown model kind {kind!r}")
        model.load_state_dict(checkpoint["model"])
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: not a checkpoint of this project ({type(exc).__name__}: {exc}). "
                              f"Retrain it with `python -m reference train ...`.") from None
    return model.eval(), checkpoint


def optimizer_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".optimizer.pt")


# --------------------------------------------------------------------------- the loop

@dataclass
class History:
    """The loss curve: training loss of every step, validation loss every few steps (nats or MSE)."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


@dataclass
class TrainOptions:
    """How to train: stop after ``minutes`` or ``steps`` (whichever comes first)."""

    minutes: float | None = None
    steps: int | None = None
    seed: int = 0
    batch_size: int = 8
    segment: int = 16
    lr: float = 2e-3
    threads: int = 1
    validate_every: int = 100
    checkpoint_every: int = 500
    ema: float = 0.0
    """Decay of an exponential moving average of the weights, updated every step; the checkpoint then holds
    the average, which is steadier from checkpoint to checkpoint than the weights as trained (0: off)."""
    resume: bool = False
    progress: bool = True


def make_task(kind: str, config: WaveNetConfig | VAEConfig | MagnitudeConfig | None, params: LogMelParams,
              options: TrainOptions):
    if kind == "wavenet":
        return WaveNetTask(config or WaveNetConfig.for_logmel(params), params, options.batch_size, options.segment)
    if kind == "vae":
        return VAETask(config or replace(VAEConfig(), n_mels=params.n_mels, clamp=params.clamp), params,
                       options.batch_size, options.segment)
    if kind == "magnitude":
        return MagnitudeTask(config or MagnitudeConfig.for_logmel(params), params, options.batch_size, options.segment)
    raise ValueError(f"unknown model kind {kind!r}: use one of {KINDS}")


def train(kind: str, data_dir: str | os.PathLike | list, out_dir: str | os.PathLike, options: TrainOptions,
          config: WaveNetConfig | VAEConfig | MagnitudeConfig | None = None, params: LogMelParams = LogMelParams(),
          log: Callable[[str], None] = lambda line: print(line, flush=True)) -> Path:
    """Train a ``kind`` model on ``data_dir`` (a folder, or a list of folders), writing ``out_dir/<kind>.pt``;
    returns that path.

    With ``options.resume`` and an existing checkpoint, continues it for ``minutes`` more
    or up to ``steps`` in all; its configuration, seed, batch size, segment, learning
    rate and thread count win over the arguments, so the loss curve goes on unchanged.
    """
    if options.minutes is None and options.steps is None:
        raise ValueError("give a budget: minutes, steps or both")
    data_dirs = [Path(folder) for folder in (data_dir if isinstance(data_dir, (list, tuple)) else [data_dir])]
    shown = ", ".join(map(str, data_dirs))
    out_path = Path(out_dir) / f"{kind}.pt"
    torch.set_num_threads(options.threads)
    digest = data_hash(data_dirs)
    history, step, seconds = History(), 0, 0.0
    resumed = None
    if options.resume and out_path.is_file():
        _, resumed = load_checkpoint(out_path)
        if resumed["kind"] != kind:
            raise CheckpointError(f"{out_path}: holds a {resumed['kind']}, not a {kind}")
        if resumed["data"]["sha256"] != digest:
            raise CheckpointError(f"{out_path}: trained on other data than {shown} (manifest hash differs). "
                                  f"Train from scratch (without --resume) or point --data to the original data.")
        config = {"wavenet": WaveNetConfig, "vae": VAEConfig, "magnitude": MagnitudeConfig}[kind].from_dict(
            resumed["config"])
        params = LogMelParams(**resumed["logmel_params"])
        history = History(**resumed["history"])
        step, seconds = resumed["training"]["step"], resumed["training"]["seconds"]
        saved = resumed["training"]  # the run's own settings, so that the curve goes on as it would have
        options = replace(options, seed=saved["seed"], batch_size=saved["batch_size"], segment=saved["segment"],
                          lr=saved["lr"], threads=saved["threads"], ema=saved.get("ema", 0.0))
        torch.set_num_threads(options.threads)
    task = make_task(kind, config, params, options)
    train_files, val_files = data_files(data_dirs, "train"), data_files(data_dirs, "test")
    if not train_files:
        raise FileNotFoundError(f"{shown}: no training audio (a manifest with a train split, or audio files)")
    started = time.perf_counter()
    magnitude = getattr(task, "needs_magnitude", False)
    try:
        train_clips = task.prepare(load_clips(train_files, params, magnitude=magnitude))
        val_clips = task.prepare(load_clips(val_files or train_files[:4], params, magnitude=magnitude))
    except AudioLoadError as exc:
        raise FileNotFoundError(f"training data unusable: {exc}") from None
    log(f"{kind}: {len(train_clips)} training and {len(val_clips)} validation clips from {shown} "
        f"loaded in {time.perf_counter() - started:.1f} s")

    torch.manual_seed(options.seed)
    model = task.make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    average = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(options.ema)) if options.ema else None
    used = model if average is None else average.module
    """The weights validated and saved: the average when there is one."""
    if resumed is not None:
        state = torch.load(optimizer_path(out_path), map_location="cpu", weights_only=True)
        if state["step"] != step:
            raise CheckpointError(f"{optimizer_path(out_path)}: at step {state['step']}, the model at {step}; "
                                  f"train from scratch (without --resume)")
        model.load_state_dict(state["trained"] if average is not None else resumed["model"])
        if average is not None:
            average.load_state_dict(state["average"])
        optimizer.load_state_dict(state["optimizer"])
        log(f"resuming {out_path} at step {step}")
    val_rng = np.random.default_rng([options.seed, 2**31])
    val_batches = [task.batch(val_clips, val_rng) for _ in range(VALIDATION_BATCHES)]

    def validate() -> float:
        used.eval()
        with torch.no_grad():
            losses = [task.loss(used, b, torch.Generator().manual_seed(i)).item() for i, b in enumerate(val_batches)]
        model.train()
        return float(np.mean(losses))

    def save(total_seconds: float) -> None:
        averaged = {} if average is None else {"trained": model.state_dict(), "average": average.state_dict()}
        atomic_save({"optimizer": optimizer.state_dict(), "step": step, **averaged}, optimizer_path(out_path))
        atomic_save({
            "kind": kind, "config": task.config.to_dict(), "model": used.state_dict(),
            "logmel_params": asdict(params),
            "data": {"sha256": digest, "train_clips": len(train_clips), "val_clips": len(val_clips)},
            "training": {"seed": options.seed, "step": step, "seconds": round(total_seconds, 1),
                         "batch_size": task.batch_size, "segment": task.segment, "lr": options.lr,
                         "threads": options.threads, "ema": options.ema, "torch": str(torch.__version__)},
            "history": asdict(history),
        }, out_path)

    budget = math.inf if options.minutes is None else options.minutes * 60
    last_step = math.inf if options.steps is None else options.steps
    model.train()
    run_started, items, rate = time.perf_counter(), 0, 0.0
    with _progress(options.progress, kind) as bar:
        while step < last_step and time.perf_counter() - run_started < budget:
            rng = np.random.default_rng([options.seed, step])
            batch = task.batch(train_clips, rng)
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            loss = task.loss(model, batch, generator)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            if average is not None:
                average.update_parameters(model)
            step += 1
            history.step.append(step)
            history.loss.append(loss.item())
            items += task.items(batch)
            elapsed = time.perf_counter() - run_started
            rate = items / elapsed
            if step % options.validate_every == 0:
                history.val_step.append(step)
                history.val_loss.append(validate())
                log(f"step {step}  loss {loss.item():.4f}  validation {history.val_loss[-1]:.4f}  "
                    f"{rate:,.0f} {'samples' if kind == 'wavenet' else 'frames'}/s")
            if step % options.checkpoint_every == 0:
                save(seconds + elapsed)
            bar(step, last_step, loss.item(), history.val_loss[-1] if history.val_loss else None, rate)
    seconds += time.perf_counter() - run_started
    if not history.val_step or history.val_step[-1] != step:
        history.val_step.append(step)
        history.val_loss.append(validate())
    save(seconds)
    log(f"{kind}: {step} steps, {seconds / 60:.1f} min of training; validation loss {history.val_loss[-1]:.4f}; "
        f"wrote {out_path}")
    return out_path


class _progress:
    """A rich progress bar with loss, validation loss and rate; a no-op when disabled."""

    def __init__(self, show: bool, kind: str):
        self.show, self.kind = show, kind

    def __enter__(self):
        if not self.show:
            return lambda *args: None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn(f"train {self.kind}"), BarColumn(), TextColumn("step {task.completed}"),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn())
        self.progress.__enter__()
        task = self.progress.add_task("train", total=None, info="")

        def update(step, last, loss, val_loss, rate):
            val = "" if val_loss is None else f"  val {val_loss:.4f}"
            self.progress.update(task, completed=step, total=None if math.isinf(last) else last,
                                 info=f"loss {loss:.4f}{val}  {rate:,.0f}/s")
        return update

    def __exit__(self, *exc):
        if self.show:
            self.progress.__exit__(*exc)
        return False


# --------------------------------------------------------------------------- command

def main(argv: list[str], prog: str) -> int:
    """`train wavenet|vae|magnitude --data DIR [DIR ...] --out DIR --minutes N --seed S`."""
    defaults = TrainOptions()
    parser = argparse.ArgumentParser(prog=prog, description="Train the reference WaveNet, the log-mel VAE or the "
                                     "magnitude vocoder (the reference's reconstruct).")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--data", type=Path, nargs="+", required=True,
                        help="data set folders with manifest.csv (train split trains, test validates), "
                             "or folders of audio files; several train together")
    parser.add_argument("--out", type=Path, required=True, help="folder for <kind>.pt and <kind>.optimizer.pt")
    parser.add_argument("--minutes", type=float, help="training time budget in minutes")
    parser.add_argument("--steps", type=int, help="stop at this step (in all, counting a resumed run's)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--segment", type=int, help="frames per training crop (hop 256 samples each); "
                        "default 16 for wavenet, 64 for vae and magnitude")
    parser.add_argument("--lr", type=float, help="Adam's learning rate; default 2e-3 for wavenet, 1e-3 for the others")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads")
    parser.add_argument("--validate-every", type=int, default=defaults.validate_every, help="steps")
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, help="steps")
    parser.add_argument("--ema", type=float, default=defaults.ema,
                        help="keep an exponential moving average of the weights with this decay (0.999, say) and save "
                             "it; default 0: the weights as trained")
    parser.add_argument("--resume", action="store_true", help="continue <out>/<kind>.pt where it stopped")
    parser.add_argument("--no-progress", action="store_true", help="log lines only, no progress bar")
    wavenet = parser.add_argument_group("wavenet")
    wavenet.add_argument("--layer-size", type=int, default=WaveNetConfig.layer_size, help="layers per stack")
    wavenet.add_argument("--stack-size", type=int, default=WaveNetConfig.stack_size, help="stacks")
    wavenet.add_argument("--channels", type=int, default=WaveNetConfig.residual_channels,
                         help="residual, gate and skip channels")
    vae = parser.add_argument_group("vae")
    vae.add_argument("--latent-channels", type=int, default=VAEConfig.latent_channels)
    vae.add_argument("--beta", type=float, default=VAEConfig.beta, help="weight of the KL term")
    args = parser.parse_args(argv)
    if args.minutes is None and args.steps is None:
        parser.error("give a budget: --minutes, --steps or both")
    for folder in args.data:
        if not folder.is_dir():
            parser.error(f"--data {folder}: not a folder")
    params = LogMelParams()
    if args.kind == "wavenet":
        config: WaveNetConfig | VAEConfig = WaveNetConfig.for_logmel(
            params, layer_size=args.layer_size, stack_size=args.stack_size, residual_channels=args.channels,
            gate_channels=args.channels, skip_channels=args.channels)
    elif args.kind == "vae":
        config = VAEConfig(n_mels=params.n_mels, clamp=params.clamp, latent_channels=args.latent_channels,
                           beta=args.beta)
    else:
        config = MagnitudeConfig.for_logmel(params)
    options = TrainOptions(
        minutes=args.minutes, steps=args.steps, seed=args.seed, batch_size=args.batch_size,
        segment=args.segment or (16 if args.kind == "wavenet" else 64),
        lr=args.lr or (2e-3 if args.kind == "wavenet" else 1e-3), threads=args.threads,
        validate_every=args.validate_every, checkpoint_every=args.checkpoint_every, ema=args.ema, resume=args.resume,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    try:
        train(args.kind, args.data, args.out, options, config, params)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
