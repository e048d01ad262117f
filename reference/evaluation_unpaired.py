"""Metrics that need no reference clip, for unconditional samples: a clip's validity, and sets of clips.

- :func:`validity`: NaN/Inf, silence, clipping, DC offset, duration and sample rate of a clip as written.
- :func:`frechet_feature_distance`: the Frechet distance between Gaussians fitted to the
  frames' MFCC (or log-mel) vectors of two sets. It is *not* FAD, which fits VGGish
  embeddings; it is the same formula on hand-made features, comparable only with itself.
- :func:`diversity`: the mean pairwise distance between the clips' embeddings in a set.
- :func:`novelty`: each sample's distance to its nearest training clip, and whether it
  is a near-duplicate (a copy, possibly re-scaled, shifted, cut, resampled or noisy).

Clips are paths (loaded at 16 kHz with ``load_audio``) or waveforms (samples,) at 16 kHz.
Per-clip scores (PESQ, STOI... and DNSMOS, which the batch of :mod:`reference.evaluation`
runs beside them) live in :mod:`reference.evaluation`.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

import numpy as np

from reference import SAMPLE_RATE
from reference.evaluation import MAX_COSTLY_SECONDS, Audio, MetricUnavailable
from reference.preprocess import AudioLoadError, load_audio, logmel, mfcc

FeatureKind = Literal["mfcc", "logmel"]

MAX_READ_SAMPLE_RATE = 96_000
"""Samples per second, all channels together, that :func:`validity` reads at most for its ``max_seconds``
(48 kHz stereo): a file promising more is judged from its header alone."""
SILENCE_DBFS = -60.0
"""A clip whose RMS is below this level (dB re full scale) is silent."""
CLIP_LEVEL = 0.999
"""Samples at or above this fraction of full scale count as clipped (int16's top is 0.99997)."""
MAX_CLIPPING_RATIO = 0.001
"""More than this fraction of clipped samples (1 in 1000) is a finding."""
MAX_DC_OFFSET = 0.05
"""A mean sample beyond this (in full-scale units) is a finding."""
EMBEDDING_ACTIVE_DB = 30.0
"""Frames more than this many dB below the clip's loudest frame are left out of its embedding."""
EMBEDDING_FLOOR_DB = 50.0
"""Mel bins are floored this many dB below the clip's loudest bin, so that digital silence
and a faint noise floor embed alike."""
EMBEDDING_COEFFICIENTS = 20
"""Cepstral coefficients of the embedding: c1..c19 (c0, the level, is left out)."""
DUPLICATE_CORRELATION = 0.95
"""A sample whose normalised cross-correlation with a training clip reaches this is a near-duplicate.

Copies score above 0.99 (after gain, shifts, cuts, 8 kHz resampling or noise at 30 dB
SNR); distinct takes of one digit by one speaker in FSDD reach 0.83."""


def _wave(clip: Audio) -> np.ndarray:
    if isinstance(clip, np.ndarray):
        return clip.astype(np.float32, copy=False)
    try:
        return load_audio(clip, SAMPLE_RATE)
    except AudioLoadError as exc:
        raise MetricUnavailable(f"a clip of the set could not be loaded: {exc}") from None


# --------------------------------------------------------------------------- validity

@dataclass
class Validity:
    """What a clip is made of, and the findings a grader reports about it.

    ``problems`` lists each finding in words (empty: a valid clip). Fields are None
    where the samples could not be read, or were not (see :attr:`read`).
    """

    sample_rate: int | None
    channels: int | None
    seconds: float | None
    nonfinite_ratio: float | None
    """Fraction of samples that are NaN or infinite."""
    peak: float | None
    """Largest absolute finite sample; full scale is 1.0."""
    rms_dbfs: float | None
    """RMS level of the finite samples in dB re full scale (-inf for digital silence)."""
    clipping_ratio: float | None
    """Fraction of samples at or beyond :data:`CLIP_LEVEL` of full scale."""
    dc_offset: float | None
    """Mean of the samples, in full-scale units."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def read(self) -> bool:
        """Whether the samples were read: not when the file is unreadable, or its header promises too much."""
        return self.peak is not None

    def to_dict(self) -> dict:
        """JSON-ready: every field, -inf RMS as None, and ``ok``."""
        data = asdict(self)
        if data["rms_dbfs"] is not None and not math.isfinite(data["rms_dbfs"]):
            data["rms_dbfs"] = None
        return {**data, "ok": self.ok}


def validity(clip: Audio, sr: int | None = None, *, expected_sr: int | None = SAMPLE_RATE,
             min_seconds: float = 0.25, max_seconds: float = MAX_COSTLY_SECONDS) -> Validity:
    """Inspect one clip as written: NaN/Inf, silence, clipping, DC offset, duration, sample rate.

    A path is read with soundfile at its own rate and with every channel (unlike
    ``load_audio``, which resamples, down-mixes and refuses NaN), so the file's
    actual content is judged. A waveform needs ``sr``.

    Args:
        clip: a path, or a waveform (samples,) or (samples, channels).
        sr: the waveform's rate in Hz (ignored for a path).
        expected_sr: the rate the task asks for; another rate is a finding (None: any).
        min_seconds, max_seconds: the accepted duration.

    Returns:
        :class:`Validity`; an unreadable file gives one problem and None fields.
    """
    if not isinstance(clip, np.ndarray):
        return read_judged(clip, expected_sr=expected_sr, min_seconds=min_seconds, max_seconds=max_seconds)[0]
    if sr is None:
        raise ValueError("validity of a waveform needs its sample rate sr")
    return _judge(clip.reshape(len(clip), -1), sr, expected_sr=expected_sr, min_seconds=min_seconds,
                  max_seconds=max_seconds)


def read_judged(path: str | os.PathLike, *, expected_sr: int | None = SAMPLE_RATE, min_seconds: float = 0.25,
                max_seconds: float = MAX_COSTLY_SECONDS) -> tuple[Validity, np.ndarray | None, int | None]:
    """:func:`validity` of the file ``path``, with the samples read to judge it, so that a caller decodes a file once.

    Returns:
        (validity, samples, rate): ``samples`` (frames, channels) float32 at ``rate`` Hz, as written (NaN
        included); both None where nothing was read (:attr:`Validity.read` is False).
    """
    import soundfile as sf

    try:
        info = sf.info(str(path))
        too_much = _too_much_to_read(info.frames, info.samplerate, info.channels, max_seconds)
        if too_much:
            return Validity(int(info.samplerate), int(info.channels), info.frames / info.samplerate,
                            *[None] * 5, problems=[too_much]), None, None
        samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's errors, a missing file: all mean "not usable audio"
        return Validity(*[None] * 8, problems=[f"{path}: not a readable audio file ({exc})"]), None, None
    return _judge(samples, sr, expected_sr=expected_sr, min_seconds=min_seconds, max_seconds=max_seconds), samples, sr


def _judge(samples: np.ndarray, sr: int, *, expected_sr: int | None, min_seconds: float,
           max_seconds: float) -> Validity:
    """The :class:`Validity` of ``samples`` (frames, channels) at ``sr`` Hz."""
    finite = np.isfinite(samples)
    good = samples[finite].astype(np.float64)
    rms = float(np.sqrt(np.mean(good**2))) if good.size else 0.0
    report = Validity(
        sample_rate=int(sr), channels=int(samples.shape[1]), seconds=len(samples) / sr,
        nonfinite_ratio=float(1.0 - finite.mean()) if samples.size else 0.0,
        peak=float(np.max(np.abs(good))) if good.size else 0.0,
        rms_dbfs=20 * math.log10(rms) if rms > 0 else -math.inf,
        clipping_ratio=float(np.mean(np.abs(good) >= CLIP_LEVEL)) if good.size else 0.0,
        dc_offset=float(np.mean(good)) if good.size else 0.0,
    )
    findings = [
        (report.nonfinite_ratio > 0, f"{report.nonfinite_ratio:.1%} of the samples are NaN or infinite"),
        (report.rms_dbfs < SILENCE_DBFS, f"silent (RMS {report.rms_dbfs:.0f} dBFS, below {SILENCE_DBFS:.0f})"),
        (report.clipping_ratio > MAX_CLIPPING_RATIO,
         f"clipped: {report.clipping_ratio:.2%} of the samples are at full scale"),
        (abs(report.dc_offset) > MAX_DC_OFFSET, f"DC offset {report.dc_offset:+.3f} of full scale"),
        (report.seconds < min_seconds, f"{report.seconds:.2f} s long, shorter than {min_seconds} s"),
        (report.seconds > max_seconds, f"{report.seconds:.1f} s long, longer than {max_seconds:.0f} s"),
        (expected_sr is not None and sr != expected_sr,
         f"sample rate {sr} Hz, not {expected_sr} Hz (it is resampled for scoring)"),
    ]
    report.problems = [text for found, text in findings if found]
    return report


def _too_much_to_read(frames: int, sample_rate: int, channels: int, max_seconds: float) -> str | None:
    """Why a file's header (``frames`` per channel at ``sample_rate`` Hz) says it is not worth reading, or None.

    Judged before reading: hours of compressed silence take a few MB on disk and gigabytes in memory.
    """
    seconds = frames / sample_rate
    if seconds > max_seconds:
        return f"{seconds:.1f} s long, longer than {max_seconds:.0f} s (not read)"
    if frames * channels > max_seconds * MAX_READ_SAMPLE_RATE:
        return (f"{channels} channels at {sample_rate} Hz: more samples than {max_seconds:.0f} s of "
                f"{MAX_READ_SAMPLE_RATE // 1000} kHz stereo (not read)")
    return None


# --------------------------------------------------------------------------- Frechet distance

@dataclass(frozen=True)
class FeatureStatistics:
    """A Gaussian fitted to the frame vectors of a set of clips.

    ``mean`` (d,), ``covariance`` (d, d); d is 20 for MFCC, 80 for log-mel.
    Compute it once for a large set (the training clips) and reuse it.
    """

    kind: str
    mean: np.ndarray
    covariance: np.ndarray
    frames: int
    clips: int


def feature_statistics(clips: Sequence[Audio], kind: FeatureKind = "mfcc") -> FeatureStatistics:
    """Mean and covariance of every frame of every clip: the assignment's MFCC (20, frames) or the
    contract's log-mel (80, frames), pooled.

    Raises:
        MetricUnavailable: a clip cannot be loaded, or fewer frames than dimensions (the
        covariance would be singular).
    """
    features = {"mfcc": mfcc, "logmel": logmel}[kind]
    frames = np.concatenate([features(_wave(clip)).T for clip in clips], axis=0).astype(np.float64)
    if len(frames) <= frames.shape[1]:
        raise MetricUnavailable(f"{len(frames)} frames in {len(clips)} clips are too few for a {kind} covariance "
                                f"of {frames.shape[1]} dimensions; give more or longer clips")
    return FeatureStatistics(kind, frames.mean(axis=0), np.cov(frames, rowvar=False), len(frames), len(clips))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues below 0 from rounding set to 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_feature_distance(a: FeatureStatistics | Sequence[Audio], b: FeatureStatistics | Sequence[Audio],
                             kind: FeatureKind = "mfcc") -> float:
    """Frechet distance ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))`` between two sets.

    ``a`` and ``b`` are :class:`FeatureStatistics` or sequences of clips (fitted with
    ``kind``). 0 for identical statistics; in squared feature units (MFCC: dB^2).
    The matrix root is taken as ``tr((A^(1/2) C_b A^(1/2))^(1/2))`` with ``A = C_a``,
    which is symmetric, so the result is real and stable.
    """
    a = a if isinstance(a, FeatureStatistics) else feature_statistics(a, kind)
    b = b if isinstance(b, FeatureStatistics) else feature_statistics(b, kind)
    if a.kind != b.kind:
        raise ValueError(f"statistics of different features: {a.kind} and {b.kind}")
    root_a = _psd_sqrt(a.covariance)
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ b.covariance @ root_a), 0.0, None)))
    value = np.sum((a.mean - b.mean) ** 2) + np.trace(a.covariance) + np.trace(b.covariance) - 2.0 * cross
    return float(max(value, 0.0))


# --------------------------------------------------------------------------- embeddings, diversity, novelty

def clip_embedding(wav: np.ndarray) -> np.ndarray:
    """A clip's summary for distances between clips: mean and std over its active frames of
    the cepstrum c1..c19 of the contract's log-mel in dB.

    Level-invariant (c0 left out), insensitive to leading/trailing silence (inactive
    frames left out) and to a faint noise floor (bins floored at
    :data:`EMBEDDING_FLOOR_DB` below the peak).

    Returns:
        float64 array of shape (2 * (EMBEDDING_COEFFICIENTS - 1),) = (38,).
    """
    import librosa

    db = (20.0 / np.log(10.0)) * logmel(wav.astype(np.float32, copy=False)).astype(np.float64)
    loudness = db.max(axis=0)
    active = db[:, loudness >= loudness.max() - EMBEDDING_ACTIVE_DB]
    active = np.maximum(active, active.max() - EMBEDDING_FLOOR_DB)
    cepstrum = librosa.feature.mfcc(S=active, n_mfcc=EMBEDDING_COEFFICIENTS)[1:]
    return np.concatenate([cepstrum.mean(axis=1), cepstrum.std(axis=1)])


def diversity(clips: Sequence[Audio]) -> float:
    """Mean Euclidean distance between the :func:`clip_embedding` of every pair of clips in a set.

    0 when every clip is the same; compare with the training set's own diversity.

    Raises:
        MetricUnavailable: fewer than two clips, or one cannot be loaded.
    """
    from scipy.spatial.distance import pdist

    if len(clips) < 2:
        raise MetricUnavailable(f"diversity needs at least two clips, got {len(clips)}")
    return float(np.mean(pdist(np.stack([clip_embedding(_wave(clip)) for clip in clips]))))


@dataclass(frozen=True)
class TrainingIndex:
    """The training clips' embeddings, built once and searched by :func:`novelty`.

    ``clips`` are kept as given (paths stay paths) and loaded again only when a sample
    is checked against them.
    """

    clips: tuple[Audio, ...]
    embeddings: np.ndarray
    """(n_clips, 38), see :func:`clip_embedding`."""

    @classmethod
    def build(cls, clips: Sequence[Audio]) -> "TrainingIndex":
        if not clips:
            raise MetricUnavailable("novelty needs at least one training clip")
        return cls(tuple(clips), np.stack([clip_embedding(_wave(clip)) for clip in clips]))


@dataclass(frozen=True)
class Novelty:
    """One sample against the training set.

    ``distance``: embedding distance to the nearest training clip (``nearest``, an index
    into the training clips); ``correlation``: the largest normalised cross-correlation
    of the waveform with any of the closest training clips checked; ``duplicate_of``:
    the training clip it copies, or None.
    """

    nearest: int
    distance: float
    correlation: float
    duplicate_of: int | None

    @property
    def near_duplicate(self) -> bool:
        return self.duplicate_of is not None


def max_normalised_correlations(wav: np.ndarray, others: Sequence[np.ndarray],
                                min_energy_ratio: float = 0.1) -> list[float]:
    """For each of ``others``: the largest normalised cross-correlation with ``wav`` over every lag, in [0, 1].

    The shorter clip of each pair slides along the longer (zero-padded at both ends); at
    each lag the correlation is divided by the shorter's norm and by the norm of the
    longer's part under it, so a copy that was cut, shifted, scaled or inverted scores
    about 1. Lags where that part holds less than ``min_energy_ratio`` of the shorter's
    energy are skipped (faint windows would make any shape look alike).

    Args:
        wav: (samples,) the clip compared with every one of ``others``; its spectrum is
            computed once for all of them.
        others: clips (samples,), of any lengths.
    """
    from scipy.fft import irfft, next_fast_len, rfft

    if not others:
        return []
    wav = wav.astype(np.float64)
    size = next_fast_len(len(wav) + max(len(other) for other in others) - 1, real=True)
    spectrum = rfft(wav, size)
    wav_energies = np.concatenate([[0.0], np.cumsum(wav**2)])
    correlations = []
    for other in others:
        other = other.astype(np.float64)
        other_spectrum = rfft(other, size)
        if len(wav) >= len(other):
            short, long_energies, circular = other, wav_energies, irfft(spectrum * np.conj(other_spectrum), size)
        else:
            short, long_energies = wav, np.concatenate([[0.0], np.cumsum(other**2)])
            circular = irfft(other_spectrum * np.conj(spectrum), size)
        correlations.append(_best_lag(circular, short, long_energies, min_energy_ratio))
    return correlations


def _best_lag(circular: np.ndarray, short: np.ndarray, long_energies: np.ndarray, min_energy_ratio: float) -> float:
    """The best normalised correlation from ``circular``, the circular cross-correlation (length >= both clips'
    together) ``c[k] = sum_m long[m + k] * short[m]``, and ``long_energies``, the long clip's cumulative energy
    with a 0 in front."""
    short_energy = float(np.sum(short**2))
    if short_energy == 0.0:
        return 0.0
    n_short, n_long = len(short), len(long_energies) - 1
    # lags -(n_short - 1) .. n_long - 1, as in a "full" correlation
    products = np.concatenate([circular[len(circular) - (n_short - 1):], circular[:n_long]])
    ends = np.arange(1, n_long + n_short)  # the long clip's samples under the short at each lag: [end - n_short, end)
    window_energy = long_energies[np.minimum(ends, n_long)] - long_energies[np.maximum(ends - n_short, 0)]
    usable = window_energy >= min_energy_ratio * short_energy
    if not np.any(usable):
        return 0.0
    scores = np.abs(products[usable]) / np.sqrt(short_energy * window_energy[usable])
    return float(min(1.0, np.max(scores)))


def novelty(samples: Sequence[Audio], training: TrainingIndex | Sequence[Audio], *, candidates: int = 5,
            duplicate_correlation: float = DUPLICATE_CORRELATION) -> list[Novelty]:
    """How far each sample is from the training set, and whether it copies a training clip.

    The ``candidates`` training clips nearest in embedding are compared with the sample
    waveform by :func:`max_normalised_correlations`; a correlation of at least
    ``duplicate_correlation`` flags a near-duplicate. A pitch-shifted or time-stretched
    copy is not caught.

    Args:
        samples: the generated clips.
        training: a :class:`TrainingIndex` (reuse it across submissions) or the clips.

    Returns:
        one :class:`Novelty` per sample, in order.
    """
    index = training if isinstance(training, TrainingIndex) else TrainingIndex.build(training)
    results = []
    for sample in samples:
        wav = _wave(sample)
        distances = np.linalg.norm(index.embeddings - clip_embedding(wav), axis=1)
        closest = np.argsort(distances)[:candidates]
        correlations = max_normalised_correlations(wav, [_wave(index.clips[k]) for k in closest])
        best = int(np.argmax(correlations))
        results.append(Novelty(
            nearest=int(closest[0]), distance=float(distances[closest[0]]), correlation=correlations[best],
            duplicate_of=int(closest[best]) if correlations[best] >= duplicate_correlation else None))
    return results
