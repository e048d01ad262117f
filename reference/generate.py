"""The reference solution's own ``reconstruct`` and ``sample`` entry points (the submission contract).

``python -m reference generate --mel-dir DIR --out-dir DIR`` reads every ``<id>.npy``
log-mel (parameters in ``params.json``) and writes ``<id>.wav``;
``python -m reference generate --num N --seed S --out-dir DIR`` writes ``0.wav`` ..
``N-1.wav``: log-mels sampled from the VAE, voiced by the vocoder.

Vocoders (``--vocoder``): ``magnitude``, the reference vocoder (``reference/checkpoints/magnitude.pt``:
a learned linear magnitude, then Griffin-Lim; :mod:`reference.vocoder`), what ``reconstruct``
uses by default; ``wavenet``, the assignment's autoregressive WaveNet
(``reference/checkpoints/wavenet.pt``), what ``sample`` uses by default; ``griffin-lim``, no
model. Everything runs on CPU. Output: 16-bit PCM WAV at the log-mel's rate,
``(frames - 1) * hop`` samples per clip.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from reference import PROJECT_ROOT
from reference.files import atomic_path
from reference.preprocess import LogMelParams

CHECKPOINT_DIR = PROJECT_ROOT / "reference" / "checkpoints"
DEFAULT_WAVENET = CHECKPOINT_DIR / "wavenet.pt"
DEFAULT_VAE = CHECKPOINT_DIR / "vae.pt"
DEFAULT_MAGNITUDE = CHECKPOINT_DIR / "magnitude.pt"
SAMPLE_SECONDS = 3.0
"""Length of each clip of ``--num``."""
VOCODERS = ("magnitude", "wavenet", "griffin-lim")
DEFAULT_CHECKPOINTS = {"magnitude": DEFAULT_MAGNITUDE, "wavenet": DEFAULT_WAVENET}
COMMITTED_CHECKPOINTS = (DEFAULT_MAGNITUDE, DEFAULT_WAVENET, DEFAULT_VAE)
"""Every committed checkpoint: a grader's build and its baseline are keyed on their bytes."""
"""Each vocoder's checkpoint unless ``--checkpoint`` names another (Griffin-Lim has none)."""


class GenerateError(ValueError):
    """Generation cannot go on; the message names the file and what to do."""


def read_mel_dir(mel_dir: Path) -> tuple[LogMelParams, list[tuple[str, np.ndarray]]]:
    """``params.json`` (defaults when absent) and every ``<id>.npy`` log-mel (n_mels, frames), sorted by id."""
    params_file = mel_dir / "params.json"
    try:
        params = LogMelParams.from_json(params_file.read_text()) if params_file.is_file() else LogMelParams()
    except (ValueError, TypeError) as exc:
        raise GenerateError(f"{params_file}: not the contract's log-mel parameters ({exc})") from None
    mels = []
    for path in sorted(mel_dir.glob("*.npy")):
        try:
            mel = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise GenerateError(f"{path}: not a NumPy .npy array ({exc})") from None
        if mel.ndim != 2 or mel.shape[0] != params.n_mels or mel.shape[1] < 2:
            raise GenerateError(f"{path}: shape {mel.shape}; expected ({params.n_mels}, frames >= 2)")
        if not np.issubdtype(mel.dtype, np.floating) or not np.all(np.isfinite(mel)):
            raise GenerateError(f"{path}: expected finite float log-mel values, found dtype {mel.dtype}")
        mels.append((path.stem, mel.astype(np.float32)))
    if not mels:
        raise GenerateError(f"{mel_dir}: no <id>.npy log-mels found")
    return params, mels


def vocode(mels: list[np.ndarray], params: LogMelParams, vocoder: str = "magnitude",
           checkpoint: Path | None = None, seed: int = 0, temperature: float = 1.0,
           batch_size: int = 16, progress: bool = False) -> list[np.ndarray]:
    """Waveforms float32 ((frames_i - 1) * hop,) of log-mels (n_mels, frames_i), by ``vocoder`` (one of
    :data:`VOCODERS`) with ``checkpoint`` (default: the vocoder's own, :data:`DEFAULT_CHECKPOINTS`)."""
    if vocoder == "griffin-lim":
        from reference.vocoder import griffin_lim

        return [griffin_lim(mel, params) for mel in mels]
    if vocoder not in DEFAULT_CHECKPOINTS:
        raise ValueError(f"unknown vocoder {vocoder!r}: use one of {VOCODERS}")
    from reference.train import load_checkpoint

    checkpoint = checkpoint or DEFAULT_CHECKPOINTS[vocoder]
    model, saved = load_checkpoint(checkpoint)
    if saved["kind"] != vocoder:
        raise GenerateError(f"{checkpoint}: a {saved['kind']} checkpoint, not a {vocoder} vocoder")
    if saved["logmel_params"] != asdict(params):
        raise GenerateError(f"the log-mels were made with {asdict(params)} but {checkpoint} was trained on "
                            f"{saved['logmel_params']}: use --vocoder griffin-lim, or retrain the {vocoder} vocoder")
    if vocoder == "magnitude":
        from reference.vocoder import vocode as vocode_magnitude

        return vocode_magnitude(model, mels, params)
    from reference.wavenet import generate

    order = sorted(range(len(mels)), key=lambda i: mels[i].shape[1])  # similar lengths batch together
    wavs: list[np.ndarray] = [np.zeros(0, np.float32)] * len(mels)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        batch = generate(model, [mels[i] for i in chosen], seed=seed + start, temperature=temperature,
                         progress=progress)
        for i, wav in zip(chosen, batch):
            wavs[i] = wav
    return wavs


def write_wav(path: Path, wav: np.ndarray, sr: int) -> None:
    """Write ``wav`` (samples,) as 16-bit PCM at ``sr`` Hz, through a temporary file and a rename."""
    import soundfile as sf

    with atomic_path(path) as staging:
        sf.write(staging, np.clip(wav, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")


def reconstruct(mel_dir: Path, out_dir: Path, through_vae: bool = False, vae_checkpoint: Path = DEFAULT_VAE,
                **vocode_options) -> list[Path]:
    """The contract's ``reconstruct``: ``out_dir/<id>.wav`` for every ``mel_dir/<id>.npy``."""
    params, named = read_mel_dir(mel_dir)
    mels = [mel for _, mel in named]
    if through_vae:
        mels = load_vae(vae_checkpoint).reconstruct(mels)
    wavs = vocode(mels, params, **vocode_options)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (name, _), wav in zip(named, wavs):
        written.append(out_dir / f"{name}.wav")
        write_wav(written[-1], wav, params.sr)
    return written


def sample(num: int, seed: int, out_dir: Path, vae_checkpoint: Path = DEFAULT_VAE, **vocode_options) -> list[Path]:
    """The contract's ``sample``: ``num`` clips ``out_dir/<k>.wav`` of :data:`SAMPLE_SECONDS`, the same for a seed."""
    if num < 1:
        raise GenerateError(f"--num {num}: ask for at least one clip")
    params = LogMelParams()
    frames = 1 + int(SAMPLE_SECONDS * params.sr) // params.hop_length
    mels = load_vae(vae_checkpoint).sample(num, frames, seed=seed)
    wavs = vocode(mels, params, seed=seed, **{"vocoder": "wavenet", **vocode_options})
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, wav in enumerate(wavs):
        written.append(out_dir / f"{k}.wav")
        write_wav(written[-1], wav, params.sr)
    return written


def load_vae(path: Path):
    from reference.train import load_checkpoint

    model, saved = load_checkpoint(path)
    if saved["kind"] != "vae":
        raise GenerateError(f"{path}: a {saved['kind']} checkpoint, not a VAE")
    return model


def main(argv: list[str], prog: str) -> int:
    """`generate --mel-dir DIR --out-dir DIR` (reconstruct) or `generate --num N --seed S --out-dir DIR` (sample)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="The reference's reconstruct (--mel-dir) and sample (--num) entry points.")
    parser.add_argument("--mel-dir", type=Path, help="folder of <id>.npy log-mels and params.json (reconstruct)")
    parser.add_argument("--num", type=int, help="number of clips to sample (sample)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same audio (default 0)")
    parser.add_argument("--out-dir", type=Path, required=True, help="folder for the .wav files")
    parser.add_argument("--vocoder", choices=VOCODERS, help="mel to waveform (default: magnitude for --mel-dir, "
                        "wavenet for --num)")
    parser.add_argument("--checkpoint-dir", type=Path, default=CHECKPOINT_DIR,
                        help="folder of the checkpoints: <vocoder>.pt and vae.pt (default reference/checkpoints)")
    parser.add_argument("--through-vae", action="store_true", help="reconstruct: pass each log-mel through the VAE")
    parser.add_argument("--temperature", type=float, default=1.0, help="WaveNet sampling temperature (> 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips generated together")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    if (args.mel_dir is None) == (args.num is None):
        parser.error("give either --mel-dir (reconstruct) or --num (sample)")
    if args.mel_dir is not None and not args.mel_dir.is_dir():
        parser.error(f"--mel-dir {args.mel_dir}: not a folder")
    import torch

    torch.set_num_threads(args.threads)
    vocoder = args.vocoder or ("magnitude" if args.mel_dir is not None else "wavenet")
    options = dict(vocoder=vocoder, checkpoint=args.checkpoint_dir / f"{vocoder}.pt" if vocoder in DEFAULT_CHECKPOINTS
                   else None, temperature=args.temperature, batch_size=args.batch_size, progress=sys.stderr.isatty())
    vae_checkpoint = args.checkpoint_dir / DEFAULT_VAE.name
    started = time.perf_counter()
    try:
        if args.mel_dir is not None:
            written = reconstruct(args.mel_dir, args.out_dir, args.through_vae, vae_checkpoint,
                                  seed=args.seed, **options)
        else:
            written = sample(args.num, args.seed, args.out_dir, vae_checkpoint, **options)
    except (GenerateError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} clips to {args.out_dir} in {time.perf_counter() - started:.1f} s")
    return 0
