"""Reference preprocessing: loading, MFCC, log-mel, augmentation, batch features.

Plain functions on NumPy arrays, in librosa's style. Conventions:
``wav`` is a float32 array of shape (samples,) in [-1, 1] at ``sr`` Hz;
features are (n_features, frames) arrays. Every function that reads a file
raises :class:`AudioLoadError`, whose message names the file and what to do.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from reference import PROJECT_ROOT, SAMPLE_RATE
from reference.files import atomic_path
from reference.parallel import one_blas_thread, with_progress

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")
N_MFCC = 20
"""The assignment's number of MFCC coefficients."""
FEATURE_CACHE_DIR = PROJECT_ROOT / ".cache" / "features"


class AudioLoadError(ValueError):
    """An audio file could not be used; the message names the file and the fix."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str = ""):
        self.path = str(path)
        self.problem = problem
        message = f"{self.path}: {problem}"
        super().__init__(f"{message}. {fix}" if fix else message)


# --------------------------------------------------------------------------- loading

def load_audio(
    path: str | os.PathLike,
    sr: int = SAMPLE_RATE,
    *,
    normalize: Literal["peak", "rms"] | None = None,
    target_rms_db: float = -20.0,
    trim_db: float | None = None,
) -> np.ndarray:
    """Read an audio file as a mono float32 waveform at ``sr`` Hz.

    Any format libsndfile reads (WAV of any PCM or float subtype, FLAC, OGG), any
    rate, any channel count (channels are averaged, as librosa does).

    Args:
        path: the audio file.
        sr: target sample rate in Hz; resampled with soxr (librosa's default).
        normalize: ``"peak"`` scales the peak to 1.0, ``"rms"`` scales the RMS to
            ``target_rms_db`` dBFS; None leaves the level as recorded.
        target_rms_db: RMS level in dBFS for ``normalize="rms"``.
        trim_db: when set, leading and trailing parts quieter than this many dB
            below the peak are cut (``librosa.effects.trim``).

    Returns:
        wav: float32 array of shape (samples,).

    Raises:
        AudioLoadError: the file is missing, empty, not audio, or holds NaN/Inf.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(path, "no such file", "Check the path.")
    if path.stat().st_size == 0:
        raise AudioLoadError(path, "the file is empty (0 bytes)", "Export the audio again.")
    import soundfile as sf

    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's errors are terse; say what it means
        raise AudioLoadError(
            path, f"not a readable audio file ({exc})",
            "Save it as WAV, FLAC or OGG (for example with soundfile.write or sox).",
        ) from None
    if data.size == 0:
        raise AudioLoadError(path, "the file holds no samples", "Export the audio again.")
    return conform(data, file_sr, sr, path=path, normalize=normalize, target_rms_db=target_rms_db, trim_db=trim_db)


def conform(
    data: np.ndarray,
    file_sr: int,
    sr: int = SAMPLE_RATE,
    *,
    path: str | os.PathLike = "<waveform>",
    normalize: Literal["peak", "rms"] | None = None,
    target_rms_db: float = -20.0,
    trim_db: float | None = None,
) -> np.ndarray:
    """Samples already decoded, made what :func:`load_audio` returns: mono, at ``sr`` Hz, float32.

    Args:
        data: (frames, channels) float32 samples as soundfile reads them (``always_2d``), at least one frame.
        file_sr: their rate in Hz.
        path: the file they came from, named in errors.
        sr, normalize, target_rms_db, trim_db: as for :func:`load_audio`.

    Returns:
        wav: float32 array of shape (samples,).

    Raises:
        AudioLoadError: the samples hold NaN or Inf.
    """
    path = Path(path)
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wav)):
        raise AudioLoadError(
            path, "the audio holds NaN or infinite samples",
            "Check the model's output for NaN before writing it (np.nan_to_num or clip).",
        )
    wav = resample(wav, file_sr, sr)
    if trim_db is not None:
        import librosa

        wav, _ = librosa.effects.trim(wav, top_db=trim_db)
    if normalize == "peak":
        wav = peak_normalize(wav)
    elif normalize == "rms":
        wav = rms_normalize(wav, target_rms_db)
    elif normalize is not None:
        raise ValueError(f"normalize must be 'peak', 'rms' or None, not {normalize!r}")
    return np.ascontiguousarray(wav, dtype=np.float32)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``wav`` (samples,) from ``orig_sr`` to ``target_sr`` Hz with soxr (HQ)."""
    if orig_sr == target_sr:
        return wav.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(wav, orig_sr, target_sr, quality="HQ").astype(np.float32)


def peak_normalize(wav: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Scale ``wav`` (samples,) so that its largest absolute sample is ``peak``; silence stays silent."""
    top = float(np.max(np.abs(wav))) if wav.size else 0.0
    return wav if top == 0.0 else (wav * (peak / top)).astype(np.float32)


def rms_normalize(wav: np.ndarray, target_db: float = -20.0) -> np.ndarray:
    """Scale ``wav`` (samples,) to an RMS of ``target_db`` dBFS; silence stays silent."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if wav.size else 0.0
    return wav if rms == 0.0 else (wav * (10 ** (target_db / 20) / rms)).astype(np.float32)


# --------------------------------------------------------------------------- features

def mfcc(wav: np.ndarray, sr: int = SAMPLE_RATE, n_mfcc: int = N_MFCC) -> np.ndarray:
    """MFCC of ``wav`` (samples,) as the assignment computes it.

    Equal, bit for bit, to ``librosa.feature.mfcc(y=wav, sr=sr, n_mfcc=20)`` with
    librosa's defaults (n_fft 2048, hop 512, 128 mels, power 2, dB, DCT type 2, ortho),
    but with the mel filter bank built once per process instead of once per call.

    Returns:
        float32 array of shape (n_mfcc, 1 + samples // 512).
    """
    import librosa

    mel = mel_spectrogram(wav, sr, n_fft=2048, hop_length=512, win_length=None, n_mels=128, fmin=0.0, fmax=None,
                          power=2.0)
    return librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=n_mfcc).astype(np.float32)


@functools.lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """``librosa.filters.mel`` for these parameters, computed once: (n_mels, 1 + n_fft // 2), read-only."""
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    basis.setflags(write=False)
    return basis


def mel_spectrogram(wav: np.ndarray, sr: int, *, n_fft: int, hop_length: int, win_length: int | None,
                    n_mels: int, fmin: float, fmax: float | None, power: float) -> np.ndarray:
    """``librosa.feature.melspectrogram`` (centred STFT, Hann window) with a cached filter bank.

    Returns:
        array of shape (n_mels, 1 + samples // hop_length): mel magnitude to the ``power``.
    """
    import librosa

    spectrum = np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=hop_length, win_length=win_length)) ** power
    return np.einsum("...ft,mf->...mt", spectrum, mel_basis(sr, n_fft, n_mels, fmin, fmax), optimize=True)


def mfcc_from_file(path: str | os.PathLike, n_mfcc: int = N_MFCC) -> np.ndarray:
    """The assignment's Part 1 verbatim: ``librosa.load(path, sr=16000)`` then MFCC.

    Returns:
        float32 array of shape (n_mfcc, frames). Raises AudioLoadError for unusable files.
    """
    return mfcc(load_audio(path, SAMPLE_RATE), SAMPLE_RATE, n_mfcc)


@dataclass(frozen=True)
class LogMelParams:
    """The log-mel of the submission contract, written as ``params.json`` beside the mels.

    Natural log of the magnitude (power 1) mel spectrogram, clamped below at ``clamp``.
    """

    sr: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    power: float = 1.0
    clamp: float = 1e-5

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LogMelParams":
        """Parse ``params.json``; unknown keys are an error, missing keys take the defaults."""
        data = json.loads(text)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown log-mel parameters: {sorted(unknown)}")
        return cls(**data)


def mel_filterbank(params: LogMelParams = LogMelParams()) -> np.ndarray:
    """The mel filter bank of ``params``: float32 array (n_mels, 1 + n_fft // 2)."""
    return mel_basis(params.sr, params.n_fft, params.n_mels, params.fmin, params.fmax).astype(np.float32)


def logmel(wav: np.ndarray, params: LogMelParams = LogMelParams()) -> np.ndarray:
    """Log-mel spectrogram of ``wav`` (samples,) at ``params.sr`` Hz, per the contract.

    Centred STFT (Hann window), magnitude mel (power 1), ``log(max(mel, clamp))``.

    Returns:
        float32 array of shape (n_mels, 1 + samples // hop_length).
    """
    mel = mel_spectrogram(wav, params.sr, n_fft=params.n_fft, hop_length=params.hop_length,
                          win_length=params.win_length, n_mels=params.n_mels, fmin=params.fmin,
                          fmax=params.fmax, power=params.power)
    return np.log(np.maximum(mel, params.clamp)).astype(np.float32)


def stft_magnitude(wav: np.ndarray, params: LogMelParams = LogMelParams()) -> np.ndarray:
    """The linear STFT magnitude :func:`logmel`'s mel is made from (centred STFT, Hann window).

    Returns:
        float32 array of shape (1 + n_fft // 2, 1 + samples // hop_length).
    """
    import librosa

    return np.abs(librosa.stft(wav, n_fft=params.n_fft, hop_length=params.hop_length,
                               win_length=params.win_length)).astype(np.float32)


def notebook_mel_db(wav: np.ndarray, sr: int) -> np.ndarray:
    """The seed notebook's 128-mel spectrogram in dB, relative to its maximum.

    n_fft 2048, hop 512, fmin 30, fmax 8000, magnitude (power 1) passed to
    ``power_to_db(ref=np.max)`` exactly as the notebook does.

    Returns:
        float32 array of shape (128, 1 + samples // 512), values in [-80, 0] dB.
    """
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wav, sr=sr, n_mels=128, fmax=8000, hop_length=512, n_fft=2048, fmin=30, power=1.0
    )
    return librosa.power_to_db(mel, ref=np.max).astype(np.float32)


# --------------------------------------------------------------------------- augmentation

def pitch_shift(wav: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """Shift the pitch of ``wav`` (samples,) by ``semitones`` (frequency x 2^(n/12)); length kept."""
    import librosa

    return librosa.effects.pitch_shift(wav, sr=sr, n_steps=semitones).astype(np.float32)


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Add white Gaussian noise so that signal power / noise power is ``snr_db`` dB.

    The noise is scaled to the exact target on the drawn samples, so the measured
    SNR of the result against ``wav`` equals ``snr_db`` up to float rounding.
    """
    rng = np.random.default_rng(rng)
    signal_power = float(np.mean(np.square(wav, dtype=np.float64)))
    noise = rng.standard_normal(wav.shape)
    noise *= np.sqrt(signal_power / (10 ** (snr_db / 10)) / np.mean(noise**2))
    return (wav + noise).astype(np.float32)


def time_shift(wav: np.ndarray, shift: int) -> np.ndarray:
    """Delay (``shift`` > 0) or advance (< 0) ``wav`` by ``shift`` samples, zero-filled; length kept."""
    out = np.zeros_like(wav)
    if shift >= 0:
        out[shift:] = wav[: len(wav) - shift] if shift < len(wav) else 0
    else:
        out[:shift] = wav[-shift:]
    return out


def time_stretch(wav: np.ndarray, rate: float) -> np.ndarray:
    """Speed ``wav`` up (``rate`` > 1) or slow it down (< 1) without changing pitch.

    Returns an array of about ``len(wav) / rate`` samples (phase vocoder).
    """
    import librosa

    return librosa.effects.time_stretch(wav, rate=rate).astype(np.float32)


def gain(wav: np.ndarray, db: float) -> np.ndarray:
    """Scale ``wav`` by ``db`` decibels (amplitude factor 10^(db/20))."""
    return (wav * 10 ** (db / 20)).astype(np.float32)


# --------------------------------------------------------------------------- batch features

FeatureKind = Literal["mfcc", "logmel"]


def features_of_file(path: str | os.PathLike, kind: FeatureKind) -> np.ndarray:
    """One file's features: ``mfcc`` (20, frames) or ``logmel`` (80, frames) per the contract."""
    if kind == "mfcc":
        return mfcc_from_file(path)
    if kind == "logmel":
        return logmel(load_audio(path, SAMPLE_RATE))
    raise ValueError(f"unknown feature kind {kind!r}: use 'mfcc' or 'logmel'")


def feature_cache_key(path: str | os.PathLike, kind: FeatureKind) -> str:
    """Content hash of the file's bytes, the feature kind and its parameters, librosa's version and this
    module's own code (:func:`_code_digest`), so a fix to the features computes them again (hex sha256)."""
    import librosa

    digest = hashlib.sha256(Path(path).read_bytes())
    digest.update(f"{kind}|{N_MFCC}|{LogMelParams().to_json()}|librosa {librosa.__version__}|"
                  f"{_code_digest()}".encode())
    return digest.hexdigest()


@functools.cache
def _code_digest() -> str:
    """sha256 (hex) of this module's source: the code that computes the features (``reference`` never imports
    ``grader``, whose :mod:`grader.cache` keys the other caches)."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _extract_one(task: tuple[str, str, str, str | None]) -> tuple[str, str | None, bool]:
    """Worker: (source, target, kind, cache dir) -> (source, error or None, cache hit)."""
    source, target, kind, cache_dir = task
    try:
        cached = None
        if cache_dir is not None:
            cached = Path(cache_dir) / f"{feature_cache_key(source, kind)}.npy"
            if cached.is_file():
                _link_or_copy(cached, Path(target))
                return source, None, True
        _atomic_save(Path(target), features_of_file(source, kind))
        if cached is not None:
            _link_or_copy(Path(target), cached)
        return source, None, False
    except AudioLoadError as exc:
        return source, str(exc), False


def _atomic_save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as staging, open(staging, "wb") as f:
        np.save(f, array)


def _link_or_copy(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` as a hard link (a copy across file systems), atomically."""
    with atomic_path(target) as staging:
        try:
            os.link(source, staging)
        except OSError:
            shutil.copyfile(source, staging)


def audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files directly in ``folder`` (by suffix), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


@dataclass
class ExtractionReport:
    """What :func:`extract_folder` did: counts, failures (file, reason) and seconds."""

    written: int
    cache_hits: int
    failures: list[tuple[str, str]]
    seconds: float


def extract_folder(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    kind: FeatureKind,
    *,
    cache_dir: str | os.PathLike | None = FEATURE_CACHE_DIR,
    jobs: int = 1,
    progress: bool = False,
) -> ExtractionReport:
    """Write ``out_dir/<stem>.npy`` with the ``kind`` features of every audio file in ``in_dir``.

    Results are cached in ``cache_dir`` by content hash (None disables the cache),
    so unchanged files cost one hash and one copy. A file that cannot be loaded is
    reported in ``failures`` and never stops the others. ``jobs`` > 1 uses processes.
    """
    started = time.perf_counter()
    files = audio_files(in_dir)
    tasks = [(str(f), str(Path(out_dir) / f"{f.stem}.npy"), kind, None if cache_dir is None else str(cache_dir))
             for f in files]
    results: Iterable[tuple[str, str | None, bool]]
    if jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=jobs, initializer=one_blas_thread) as pool:
            results = list(with_progress(pool.map(_extract_one, tasks, chunksize=4), len(tasks), progress, "features"))
    else:
        results = list(with_progress(map(_extract_one, tasks), len(tasks), progress, "features"))
    failures = [(src, err) for src, err, _ in results if err is not None]
    return ExtractionReport(
        written=len(results) - len(failures),
        cache_hits=sum(hit for _, _, hit in results),
        failures=failures,
        seconds=time.perf_counter() - started,
    )


def features_main(argv: list[str], prog: str) -> int:
    """`features --kind mfcc|logmel --in DIR --out DIR`: features of every audio file in DIR."""
    parser = argparse.ArgumentParser(prog=prog, description="Write <stem>.npy features for every audio file in a folder.")
    parser.add_argument("--kind", choices=["mfcc", "logmel"], required=True,
                        help="mfcc: (20, frames) as the assignment; logmel: (80, frames) as the contract")
    parser.add_argument("--in", dest="in_dir", required=True, type=Path, help="folder of audio files")
    parser.add_argument("--out", dest="out_dir", required=True, type=Path, help="folder for <stem>.npy")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--no-cache", action="store_true", help="ignore and do not fill the feature cache")
    args = parser.parse_args(argv)
    if not args.in_dir.is_dir():
        parser.error(f"--in {args.in_dir}: not a folder")
    report = extract_folder(args.in_dir, args.out_dir, args.kind, jobs=args.jobs,
                            cache_dir=None if args.no_cache else FEATURE_CACHE_DIR, progress=True)
    if args.kind == "logmel":
        (args.out_dir / "params.json").write_text(LogMelParams().to_json())
    print(f"{report.written} written to {args.out_dir} ({report.cache_hits} from cache) in {report.seconds:.1f} s")
    for source, error in report.failures:
        print(f"skipped {error}")
    return 1 if report.failures and not report.written else 0
