"""Every per-clip audio metric the reference and the grader score with, and the batch that runs them.

Conventions (as in :mod:`reference.preprocess`): ``wav`` is a float array of shape
(samples,) in [-1, 1] at ``sr`` Hz; ``ref`` is the reference (clean, true) clip and
``deg`` the degraded (generated, reconstructed) one.

Intrusive metrics compare ``deg`` with ``ref``; both are first cut to the shorter
length (sample-wise metrics need aligned clips; a wrong length is reported by the
row's ``ref_seconds``/``deg_seconds``, not hidden). Every metric, with its unit, its
range and which way is better, is one :class:`Metric` of :data:`METRICS`, the only
place that says so (``python -m reference evaluate --help`` lists them).

A metric that has no value for a clip raises :class:`MetricUnavailable`, whose
message is the reason for a person (silent reference, too short for PESQ...). The
batch API :func:`score_pairs` never raises for a clip: it records ``None`` and the
reason. A clip longer than :data:`MAX_COSTLY_SECONDS` (the contract's 60 s per clip;
a 10-minute one, say) gets only the sample-wise metrics, SNR, segmental SNR and
SI-SDR, which cost one pass over the samples; every spectral or perceptual metric
gives it a reason instead (PESQ alone would take seconds per minute of audio).

Metrics over sets of clips (Frechet distance, diversity, novelty) live in
:mod:`reference.evaluation_unpaired`, with a clip's validity (NaN, silence, clipping...).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np

from reference import SAMPLE_RATE
from reference.files import atomic_write
from reference.parallel import one_blas_thread, with_progress
from reference.preprocess import AudioLoadError, LogMelParams, audio_files, load_audio, logmel, resample

Audio = Union[str, os.PathLike, np.ndarray]
"""A clip: a path to an audio file (loaded with ``load_audio`` at the task's rate) or a waveform (samples,)."""

NOT_SPEECH = "not speech: PESQ and STOI measure speech, so this clip is scored with the other metrics"
METRIC_DECIMALS = 9
"""Clip scores are rounded to this many decimals: far finer than any metric means, and coarser
than the last-bit differences the same audio can get in another process (numpy's vectorised
sums depend on memory alignment), so a clip scores the same wherever it is scored."""
MAX_COSTLY_SECONDS = 60.0
"""Longest clip, in seconds, for which metrics other than SNR, segmental SNR and SI-SDR are computed."""
MCD_COEFFICIENTS = 25
"""Mel-cepstral coefficients c1..c24 (c0, the frame's energy, is left out, as usual for MCD)."""
DNSMOS_MIN_SECONDS = 0.5
"""Shortest clip DNSMOS scores; the model reads 9 s windows and tiles shorter audio to fill them."""


class MetricUnavailable(ValueError):
    """A metric has no value for this clip; the message says why, for a person."""


# --------------------------------------------------------------------------- checks and alignment

def _as_wave(wav: np.ndarray, role: str) -> np.ndarray:
    """``wav`` as float64 (samples,), refusing what no metric can use. ``role`` names the clip in reasons."""
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise MetricUnavailable(f"the {role} clip has shape {wav.shape}; a mono waveform (samples,) is needed")
    if wav.size == 0:
        raise MetricUnavailable(f"the {role} clip is empty")
    if not np.all(np.isfinite(wav)):
        raise MetricUnavailable(f"the {role} clip holds NaN or infinite samples")
    return wav.astype(np.float64, copy=False)


def aligned(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both clips checked (1-D, non-empty, finite), as float64, and cut to the shorter length.

    Raises:
        MetricUnavailable: a clip is empty, not mono or holds NaN/Inf.
    """
    ref, deg = _as_wave(ref, "reference"), _as_wave(deg, "degraded")
    n = min(len(ref), len(deg))
    return ref[:n], deg[:n]


def _require_sound(wav: np.ndarray, role: str, metric: str) -> None:
    if not np.any(wav):
        raise MetricUnavailable(f"the {role} clip is silent (all zeros), so {metric} is undefined")


def _require_at_most(samples: int, sr: int, metric: str) -> None:
    """Refuse a clip of more than :data:`MAX_COSTLY_SECONDS`; called before any work on it."""
    seconds = samples / sr
    if seconds > MAX_COSTLY_SECONDS:
        raise MetricUnavailable(
            f"the clip is {seconds:.1f} s long; {metric} is computed only for clips up to "
            f"{MAX_COSTLY_SECONDS:.0f} s (the submission contract's limit per clip)")


def _ratio_db(signal_energy: float, noise_energy: float, metric: str) -> float:
    if noise_energy == 0.0:
        raise MetricUnavailable(f"the degraded clip equals the reference, so {metric} is infinite")
    return float(10.0 * np.log10(signal_energy / noise_energy))


# --------------------------------------------------------------------------- intrusive metrics

def pesq_score(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE, mode: str = "wb") -> float:
    """PESQ of ``deg`` against ``ref`` (samples,) at ``sr`` Hz through the ``pesq`` package.

    ``mode`` is ``"wb"`` (P.862.2, needs 16 kHz) or ``"nb"`` (P.862, at 8 or 16 kHz).
    Audio at any other rate is resampled to 16 kHz. Samples are passed as float64,
    so a 16-bit file loaded with ``load_audio`` scores exactly as its int16 samples
    do with the package's own examples (the package scales both clips by their
    common peak itself, so the level does not matter).

    Returns:
        MOS-LQO: 1.04-4.64 (wb), 1.02-4.55 (nb).

    Raises:
        MetricUnavailable: a silent clip, under 0.25 s, no utterance found, or over
        :data:`MAX_COSTLY_SECONDS`.
    """
    import pesq

    if mode not in ("wb", "nb"):
        raise ValueError(f"PESQ mode must be 'wb' or 'nb', not {mode!r}")
    _require_at_most(min(len(ref), len(deg)), sr, "PESQ")
    ref, deg = aligned(ref, deg)
    if sr not in (8000, 16000):
        ref, deg = resample(ref, sr, SAMPLE_RATE).astype(np.float64), resample(deg, sr, SAMPLE_RATE).astype(np.float64)
        sr = SAMPLE_RATE
    if mode == "wb" and sr != 16000:
        raise MetricUnavailable("wide-band PESQ needs 16 kHz audio and this is 8 kHz; use narrow-band PESQ")
    _require_sound(ref, "reference", "PESQ")
    _require_sound(deg, "degraded", "PESQ")
    try:
        return float(pesq.pesq(sr, ref, deg, mode))
    except pesq.BufferTooShortError:
        raise MetricUnavailable(f"the clip is {len(ref) / sr:.2f} s long; PESQ needs at least 0.25 s") from None
    except pesq.NoUtterancesError:
        raise MetricUnavailable("PESQ found no utterance (no speech activity) in the clip") from None
    except pesq.PesqError as exc:
        raise MetricUnavailable(f"PESQ failed: {exc}") from None


def snr(ref: np.ndarray, deg: np.ndarray) -> float:
    """Signal-to-noise ratio in dB: ``10 log10(sum ref^2 / sum (deg - ref)^2)`` over the aligned clips."""
    ref, deg = aligned(ref, deg)
    _require_sound(ref, "reference", "SNR")
    return _ratio_db(float(np.sum(ref**2)), float(np.sum((deg - ref) ** 2)), "SNR")


def seg_snr(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE, frame_seconds: float = 0.03,
            min_db: float = -10.0, max_db: float = 35.0) -> float:
    """Segmental SNR in dB: the mean over frames of each frame's SNR, clamped to [min_db, max_db].

    Frames of ``frame_seconds`` with 75% overlap (Hu and Loizou's definition). A clip
    shorter than one frame is one frame.
    """
    ref, deg = aligned(ref, deg)
    _require_sound(ref, "reference", "segmental SNR")
    length = min(len(ref), max(1, int(frame_seconds * sr)))
    starts = np.arange(0, len(ref) - length + 1, max(1, length // 4))
    signal, noise = (_frame_energies(x, starts, length) for x in (ref, deg - ref))
    eps = np.finfo(np.float64).eps
    frame_db = 10.0 * np.log10(signal / (noise + eps) + eps)
    return float(np.mean(np.clip(frame_db, min_db, max_db)))


def _frame_energies(wav: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Sum of squares of ``wav[s : s + length]`` for each start, from a running sum (no frame copies)."""
    running = np.concatenate([[0.0], np.cumsum(wav**2)])
    return np.maximum(running[starts + length] - running[starts], 0.0)


def si_sdr(ref: np.ndarray, deg: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., 2019) of the zero-mean aligned clips.

    ``target = <deg, ref> / <ref, ref> * ref``; ``si_sdr = 10 log10(|target|^2 / |deg - target|^2)``.
    Scaling ``deg`` by any non-zero gain leaves it unchanged.
    """
    ref, deg = aligned(ref, deg)
    ref, deg = ref - ref.mean(), deg - deg.mean()
    _require_sound(ref, "reference", "SI-SDR")
    _require_sound(deg, "degraded", "SI-SDR")
    target = (np.dot(deg, ref) / np.dot(ref, ref)) * ref
    return _ratio_db(float(np.sum(target**2)), float(np.sum((deg - target) ** 2)), "SI-SDR")


def stoi(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE, extended: bool = False) -> float:
    """STOI (or extended STOI) of ``deg`` against ``ref`` through ``pystoi``, from 0 to 1.

    Raises:
        MetricUnavailable: a silent reference, under about 0.4 s of speech once pystoi
        drops silent frames (pystoi would return a meaningless 1e-5), or over
        :data:`MAX_COSTLY_SECONDS`.
    """
    import pystoi

    name = "ESTOI" if extended else "STOI"
    _require_at_most(min(len(ref), len(deg)), sr, name)
    ref, deg = aligned(ref, deg)
    _require_sound(ref, "reference", name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = pystoi.stoi(ref, deg, sr, extended=extended)
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise MetricUnavailable(f"{name} needs at least 30 frames (about 0.4 s) of speech in the reference; "
                                f"the clip has fewer once silent frames are dropped")
    return float(value)


def estoi(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Extended STOI (Jensen and Taal, 2016) through ``pystoi``; see :func:`stoi`."""
    return stoi(ref, deg, sr, extended=True)


def _at_task_rate(wav: np.ndarray, sr: int) -> np.ndarray:
    """``wav`` at the log-mel's rate (16 kHz), as float32 for librosa."""
    return resample(wav.astype(np.float32), sr, SAMPLE_RATE)


def lsd(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE, floor_db: float = -100.0) -> float:
    """Log-spectral distance in dB: per frame, the RMS over frequency of the difference of the
    power spectra in dB, averaged over frames.

    STFT as the contract's log-mel (n_fft 1024, hop 256, Hann, centred) at 16 kHz; powers
    below ``floor_db`` dB (re 1.0 full scale) are raised to it, so digital silence counts
    as -100 dB rather than minus infinity.
    """
    import librosa

    _require_at_most(min(len(ref), len(deg)), sr, "log-spectral distance")
    ref, deg = aligned(ref, deg)
    params = LogMelParams()
    spectra = [librosa.stft(_at_task_rate(wav, sr), n_fft=params.n_fft, hop_length=params.hop_length)
               for wav in (ref, deg)]
    ref_db, deg_db = (10.0 * np.log10(np.maximum(np.abs(s) ** 2, 10 ** (floor_db / 10))) for s in spectra)
    return float(np.mean(np.sqrt(np.mean((ref_db - deg_db) ** 2, axis=0))))


def mel_cepstrum(wav: np.ndarray, sr: int = SAMPLE_RATE, n_coefficients: int = MCD_COEFFICIENTS) -> np.ndarray:
    """Mel cepstrum c1.. of ``wav``: the cepstrum of the contract's log-mel, c0 left out.

    The orthonormal DCT-II of the log-mel (librosa's MFCC of it) divided by
    ``sqrt(2 * n_mels)``: the scale of the textbook cepstrum, where the log magnitude
    spectrum is ``c0 + 2 * sum_d c_d cos(d w)``, which the MCD formula assumes.

    Returns:
        float64 array of shape (n_coefficients - 1, frames), natural-log (neper) units.
    """
    import librosa

    log_mel = logmel(_at_task_rate(wav, sr))
    cepstrum = librosa.feature.mfcc(S=log_mel, n_mfcc=n_coefficients) / np.sqrt(2.0 * len(log_mel))
    return cepstrum[1:].astype(np.float64)


def mcd(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE, dtw: bool = False) -> float:
    """Mel-cepstral distortion in dB: ``10 / ln 10 * sqrt(2 * sum_d (c_d - c'_d)^2)`` averaged over frames.

    Cepstra from :func:`mel_cepstrum` (c1..c24 of the contract's log-mel). Without
    ``dtw`` frames are paired in time (the clips are cut to the shorter); with ``dtw``
    the full clips are paired along librosa's DTW path (Euclidean cost), for outputs
    that are not sample-aligned with the reference (its memory grows with the square
    of the length). Refused over :data:`MAX_COSTLY_SECONDS`.
    """
    import librosa

    if dtw:
        _require_at_most(max(len(ref), len(deg)), sr, "DTW-aligned MCD")
        ref, deg = _as_wave(ref, "reference"), _as_wave(deg, "degraded")
        c_ref, c_deg = mel_cepstrum(ref, sr), mel_cepstrum(deg, sr)
        _, path = librosa.sequence.dtw(X=c_ref, Y=c_deg, metric="euclidean")
        c_ref, c_deg = c_ref[:, path[:, 0]], c_deg[:, path[:, 1]]
    else:
        _require_at_most(min(len(ref), len(deg)), sr, "MCD")
        ref, deg = aligned(ref, deg)
        c_ref, c_deg = mel_cepstrum(ref, sr), mel_cepstrum(deg, sr)
    per_frame = np.sqrt(2.0 * np.sum((c_ref - c_deg) ** 2, axis=0))
    return float(10.0 / np.log(10.0) * np.mean(per_frame))


def mel_l1(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Mean absolute difference of the contract's log-mel (80 mels, natural log of magnitude)."""
    _require_at_most(min(len(ref), len(deg)), sr, "mel L1")
    ref, deg = aligned(ref, deg)
    return float(np.mean(np.abs(logmel(_at_task_rate(ref, sr)) - logmel(_at_task_rate(deg, sr)))))


# --------------------------------------------------------------------------- reference-free, per clip

def dnsmos(wav: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float]:
    """DNSMOS P.835 of ``wav`` (samples,) through ``speechmos`` (its bundled ONNX models, offline).

    Returns:
        ``{"ovrl_mos", "sig_mos", "bak_mos", "p808_mos"}``, each 1-5, higher is better.

    Raises:
        MetricUnavailable: silent, peaks above 1.0 (DNSMOS refuses it), shorter than
        :data:`DNSMOS_MIN_SECONDS` or longer than :data:`MAX_COSTLY_SECONDS`.
    """
    from speechmos import dnsmos as speechmos_dnsmos

    _require_at_most(len(wav), sr, "DNSMOS")
    wav = _as_wave(wav, "scored")
    _require_sound(wav, "scored", "DNSMOS")
    if len(wav) < DNSMOS_MIN_SECONDS * sr:
        raise MetricUnavailable(f"the clip is {len(wav) / sr:.2f} s long; DNSMOS is computed from "
                                f"{DNSMOS_MIN_SECONDS} s up")
    peak = float(np.max(np.abs(wav)))
    if peak > 1.0:
        raise MetricUnavailable(f"the clip peaks at {peak:.2f}, above full scale 1.0; DNSMOS scores only "
                                f"unclipped audio (scale it into [-1, 1])")
    scores = speechmos_dnsmos.run(_at_task_rate(wav, sr), sr=SAMPLE_RATE)
    return {key: float(scores[key]) for key in ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos")}


@dataclass(frozen=True)
class Metric:
    """One per-clip metric: its row key, what it measures, its unit and range, which way is better, and how it is
    computed (``compute(ref, deg, sr)``; ``ref`` is None for a metric that needs no reference)."""

    key: str
    name: str
    """What a person calls it ("PESQ wide-band")."""
    what: str
    """What it measures, and how."""
    higher_is_better: bool
    compute: Callable[[np.ndarray | None, np.ndarray, int], float]
    unit: str = ""
    """"dB", or "" for a score without a unit."""
    span: tuple[float, float] | None = None
    """The lowest and highest value it can take, where bounded (PESQ wide-band: 1 to 4.64)."""
    by_default: bool = True
    """Computed by :func:`score_pairs` unless other metrics are asked for (False: costly, or needs no reference)."""
    speech_only: bool = False
    """It measures speech: a clip that is not speech (a piano melody) is not scored with it."""
    needs_reference: bool = True

    @property
    def label(self) -> str:
        """The name with its unit: "SNR (dB)"."""
        return f"{self.name} ({self.unit})" if self.unit else self.name

    @property
    def better(self) -> str:
        """Which way is better, with the range where bounded: "higher is better, 1 to 4.64"."""
        way = f"{'higher' if self.higher_is_better else 'lower'} is better"
        return way if self.span is None else f"{way}, {self.span[0]:g} to {self.span[1]:g}"


METRICS: dict[str, Metric] = {metric.key: metric for metric in (
    Metric("pesq_wb", "PESQ wide-band", "ITU-T P.862.2, through the pesq package", True,
           lambda ref, deg, sr: pesq_score(ref, deg, sr, "wb"), span=(1.0, 4.64), speech_only=True),
    Metric("pesq_nb", "PESQ narrow-band", "ITU-T P.862 with the P.862.1 mapping", True,
           lambda ref, deg, sr: pesq_score(ref, deg, sr, "nb"), span=(1.0, 4.55), speech_only=True),
    Metric("snr", "SNR", "signal-to-noise ratio", True, lambda ref, deg, sr: snr(ref, deg), unit="dB"),
    Metric("seg_snr", "Segmental SNR", "the mean of 30 ms frames' SNR, each clamped to -10..35 dB", True, seg_snr,
           unit="dB"),
    Metric("si_sdr", "SI-SDR", "scale-invariant signal-to-distortion ratio", True,
           lambda ref, deg, sr: si_sdr(ref, deg), unit="dB"),
    Metric("stoi", "STOI", "short-time objective intelligibility, through pystoi", True, stoi, span=(0.0, 1.0),
           speech_only=True),
    Metric("estoi", "Extended STOI", "extended STOI (Jensen and Taal, 2016), through pystoi", True, estoi,
           span=(0.0, 1.0), speech_only=True),
    Metric("lsd", "Log-spectral distance", "per frame, the RMS over frequency of the log-power difference", False,
           lsd, unit="dB"),
    Metric("mcd", "Mel-cepstral distortion", "mel-cepstral distortion, frame by frame", False, mcd, unit="dB"),
    Metric("mcd_dtw", "MCD after DTW", "mel-cepstral distortion after DTW alignment (costly)", False,
           lambda ref, deg, sr: mcd(ref, deg, sr, dtw=True), unit="dB", by_default=False),
    Metric("mel_l1", "Log-mel L1", "mean absolute difference of the contract's log-mel (natural log)", False,
           mel_l1),
    Metric("dnsmos", "DNSMOS overall", "DNSMOS P.835 overall MOS of the degraded clip alone", True,
           lambda ref, deg, sr: dnsmos(deg, sr)["ovrl_mos"], span=(1.0, 5.0), by_default=False,
           needs_reference=False),
)}
"""Every per-clip metric by its row key: the one registry of metric names, units, ranges and directions."""
METRIC_FUNCTIONS: dict[str, Callable[[np.ndarray | None, np.ndarray, int], float]] = {
    key: metric.compute for key, metric in METRICS.items()}
"""Each metric's ``compute``, as :func:`score_pair` calls it."""
INTRUSIVE_METRICS = tuple(key for key, metric in METRICS.items() if metric.by_default)
"""What :func:`score_pairs` and ``python -m reference evaluate`` compute by default."""
OPTIONAL_METRICS = tuple(key for key, metric in METRICS.items() if not metric.by_default)
"""Also available by name: DTW-aligned MCD (costly) and DNSMOS (needs no reference)."""
REFERENCE_FREE_METRICS = frozenset(key for key, metric in METRICS.items() if not metric.needs_reference)
SPEECH_METRICS = frozenset(key for key, metric in METRICS.items() if metric.speech_only)
"""Metrics that measure speech: a clip that is not speech (a piano melody) is scored with the others only."""


# --------------------------------------------------------------------------- the batch

@dataclass
class ClipScores:
    """One clip's row: a value or None per metric, and a reason for each None.

    ``ref_seconds``/``deg_seconds`` are the clips' lengths as loaded (None when not loaded).
    """

    name: str
    values: dict[str, float | None]
    reasons: dict[str, str] = field(default_factory=dict)
    ref_seconds: float | None = None
    deg_seconds: float | None = None

    def to_dict(self) -> dict:
        """A flat JSON-ready row: name, lengths, one key per metric, and ``reasons``."""
        return {"name": self.name, "ref_seconds": self.ref_seconds, "deg_seconds": self.deg_seconds,
                **self.values, "reasons": dict(self.reasons)}

    @classmethod
    def from_dict(cls, row: dict) -> "ClipScores":
        """The inverse of :meth:`to_dict`."""
        fixed = {"name", "ref_seconds", "deg_seconds", "reasons"}
        return cls(name=row["name"], values={k: v for k, v in row.items() if k not in fixed},
                   reasons=dict(row.get("reasons", {})), ref_seconds=row.get("ref_seconds"),
                   deg_seconds=row.get("deg_seconds"))


def _load(clip: Audio, sr: int, role: str) -> np.ndarray:
    if isinstance(clip, np.ndarray):
        return clip
    try:
        return load_audio(clip, sr)
    except AudioLoadError as exc:
        raise MetricUnavailable(f"the {role} clip could not be loaded: {exc}") from None


def score_pair(name: str, ref: Audio | None, deg: Audio, sr: int = SAMPLE_RATE,
               metrics: Sequence[str] = INTRUSIVE_METRICS, speech: bool = True) -> ClipScores:
    """Score one clip; never raises for a bad clip: every failure becomes a reason.

    Args:
        name: the row's name.
        ref: the reference, a path or a waveform at ``sr``; None when only reference-free
            metrics are asked for.
        deg: the degraded clip, a path or a waveform at ``sr``.
        sr: the rate in Hz the metrics run at; files are resampled to it.
        metrics: keys of :data:`METRICS`.
        speech: whether the clip is speech; when not, :data:`SPEECH_METRICS` are left out, with a reason.
    """
    row = ClipScores(name=name, values=dict.fromkeys(metrics))
    if not speech:
        row.reasons = {metric: NOT_SPEECH for metric in metrics if metric in SPEECH_METRICS}
        metrics = [metric for metric in metrics if metric not in SPEECH_METRICS]
    try:
        deg_wav = _as_wave(_load(deg, sr, "degraded"), "degraded")
        row.deg_seconds = len(deg_wav) / sr
        ref_wav = None if ref is None else _as_wave(_load(ref, sr, "reference"), "reference")
        row.ref_seconds = None if ref_wav is None else len(ref_wav) / sr
    except MetricUnavailable as exc:
        row.reasons.update(dict.fromkeys(metrics, str(exc)))
        return row
    for metric in metrics:
        if ref_wav is None and metric not in REFERENCE_FREE_METRICS:
            row.reasons[metric] = f"{metric} compares with a reference clip and none was given"
            continue
        try:
            value = METRIC_FUNCTIONS[metric](ref_wav, deg_wav, sr)
            if not math.isfinite(value):
                raise MetricUnavailable(f"{metric} came out as {value} for this clip")
            row.values[metric] = round(float(value), METRIC_DECIMALS)
        except MetricUnavailable as exc:
            row.reasons[metric] = str(exc)
        except Exception as exc:  # a library's own failure on odd audio must not stop the batch
            row.reasons[metric] = f"{metric} failed: {type(exc).__name__}: {exc}"
    return row


_FORKED_TASKS: list[tuple] = []
"""The batch being scored, set before the workers fork: they read their tasks from their copy of it."""


def _score_chunk(tasks: list[tuple] | range) -> list[ClipScores]:
    """Worker: :func:`score_pair` argument tuples (or a range of :data:`_FORKED_TASKS`) -> their rows."""
    return [score_pair(*task) for task in (_FORKED_TASKS[tasks.start:tasks.stop] if isinstance(tasks, range) else tasks)]


def score_pairs(
    pairs: Sequence[tuple[Audio | None, Audio]],
    *,
    names: Sequence[str] | None = None,
    sr: int = SAMPLE_RATE,
    metrics: Sequence[str] = INTRUSIVE_METRICS,
    jobs: int = 1,
    progress: bool = False,
    speech: Sequence[bool] | None = None,
) -> list[ClipScores]:
    """Score many (reference, degraded) pairs; one row per pair, in order; never raises for a clip.

    Args:
        pairs: (ref, deg) with each a path or a waveform (samples,) at ``sr``; ref may be
            None for reference-free metrics. Paths are cheaper to send to workers than arrays.
        names: row names; default: the degraded file's name, or ``clip-<index>`` for arrays.
        sr: rate in Hz the metrics run at (16000, the task's).
        metrics: keys of :data:`METRICS` (default :data:`INTRUSIVE_METRICS`).
        jobs: worker processes. 1 scores in this process; more use a process pool
            (PESQ is not thread-safe) fed with chunks of pairs.
        progress: show a progress bar on the terminal.
        speech: per pair, whether the clip is speech (default: all are); :data:`SPEECH_METRICS`
            are left out for the others.

    Returns:
        list of :class:`ClipScores`.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
    if names is None:
        names = [f"clip-{i}" if isinstance(deg, np.ndarray) else Path(deg).name for i, (_, deg) in enumerate(pairs)]
    speech = [True] * len(pairs) if speech is None else list(speech)
    tasks = [(name, ref, deg, sr, tuple(metrics), is_speech)
             for name, (ref, deg), is_speech in zip(names, pairs, speech, strict=True)]
    if jobs <= 1 or len(tasks) <= 1:
        with one_blas_thread():
            return list(with_progress((score_pair(*task) for task in tasks), len(tasks), progress, "scoring"))
    return _score_in_pool(tasks, jobs, progress)


def _score_in_pool(tasks: list[tuple], jobs: int, progress: bool) -> list[ClipScores]:
    """Chunks of tasks over ``jobs`` forked processes (forked: workers start with everything imported).

    About four chunks per worker balance clips of unequal length. Forked workers find the
    tasks in their copy of :data:`_FORKED_TASKS` and get only index ranges, so waveforms are
    never pickled: small messages are faster, and they cannot fill the pipe to a worker
    that died (which hangs ``ProcessPoolExecutor`` on Python 3.11). If a worker dies (a
    crash in a C library, the out-of-memory killer), the pool is broken: every clip not
    scored by then gets that as its reason, and the batch returns.
    """
    global _FORKED_TASKS
    size = max(1, math.ceil(len(tasks) / (4 * jobs)))
    forking = "fork" in multiprocessing.get_all_start_methods()
    chunks = [range(i, min(i + size, len(tasks))) if forking else tasks[i : i + size]
              for i in range(0, len(tasks), size)]
    context = multiprocessing.get_context("fork" if forking else None)
    rows: list[ClipScores | None] = [None] * len(tasks)
    _FORKED_TASKS = tasks
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(chunks)), mp_context=context,
                                 initializer=one_blas_thread) as pool:
            futures = {pool.submit(_score_chunk, chunk): i * size for i, chunk in enumerate(chunks)}
            for future in with_progress(as_completed(futures), len(futures), progress, "scoring"):
                start = futures[future]
                try:
                    rows[start : start + size] = future.result()
                except BrokenProcessPool as exc:
                    for k, (name, _, _, _, metrics, _) in enumerate(tasks[start : start + size]):
                        rows[start + k] = ClipScores(name, dict.fromkeys(metrics), dict.fromkeys(
                            metrics, f"a scoring process died while this clip waited or was scored ({exc}); "
                                     f"score it alone (jobs=1) to see whether it is the cause"))
    finally:
        _FORKED_TASKS = []
    return rows  # type: ignore[return-value]


def aggregate(rows: Sequence[ClipScores | dict], metrics: Sequence[str] | None = None, confidence: float = 0.95,
              n_resamples: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Per metric: count, missing count, mean, median and a bootstrap interval of the mean.

    Args:
        rows: :class:`ClipScores` or their :meth:`~ClipScores.to_dict` form.
        metrics: which keys (default: those of the first row).
        confidence: the interval's level (0.95: the 2.5th-97.5th percentiles).
        n_resamples, seed: the percentile bootstrap's resamples and random seed (fixed,
            so the same rows give the same interval).

    Returns:
        ``{metric: {"n", "missing", "mean", "median", "ci_low", "ci_high", "reasons"}}``;
        statistics of a metric with no value are None, the interval is None below two
        values, and ``reasons`` counts the missing values' reasons, most common first.
    """
    from collections import Counter

    from scipy.stats import bootstrap

    rows = [row if isinstance(row, ClipScores) else ClipScores.from_dict(row) for row in rows]
    if metrics is None:
        metrics = list(rows[0].values) if rows else []
    summary = {}
    for metric in metrics:
        values = np.array([row.values.get(metric) for row in rows if row.values.get(metric) is not None], float)
        reasons = Counter(row.reasons[metric] for row in rows if metric in row.reasons)
        entry = {"n": int(values.size), "missing": len(rows) - int(values.size), "mean": None, "median": None,
                 "ci_low": None, "ci_high": None, "reasons": dict(reasons.most_common())}
        if values.size:
            # fsum: exactly rounded, so the mean does not depend on the order or layout of the values either
            entry["mean"], entry["median"] = math.fsum(values) / values.size, float(np.median(values))
        if values.size >= 2:
            interval = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                 method="percentile", rng=np.random.default_rng(seed)).confidence_interval
            entry["ci_low"], entry["ci_high"] = float(interval.low), float(interval.high)
        summary[metric] = entry
    return summary


# --------------------------------------------------------------------------- folders and the command

def match_folders(ref_dir: str | os.PathLike, deg_dir: str | os.PathLike
                  ) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """Pair the audio files of two folders by name without suffix (``a.wav`` with ``a.flac``).

    Returns:
        (pairs as (ref, deg) paths sorted by name, reference names with no degraded
        clip, degraded names with no reference).
    """
    refs = {p.stem: p for p in audio_files(ref_dir)}
    degs = {p.stem: p for p in audio_files(deg_dir)}
    pairs = [(refs[stem], degs[stem]) for stem in sorted(refs.keys() & degs.keys())]
    return pairs, sorted(refs.keys() - degs.keys()), sorted(degs.keys() - refs.keys())


def evaluate_folders(ref_dir: str | os.PathLike, deg_dir: str | os.PathLike, *, jobs: int = 1,
                     metrics: Sequence[str] = INTRUSIVE_METRICS, progress: bool = False) -> dict:
    """Score every degraded clip in ``deg_dir`` against the same-named clip in ``ref_dir``.

    Returns:
        the JSON document ``evaluate`` writes: folders, metrics, ``rows`` (one per pair),
        ``aggregate`` (see :func:`aggregate`), ``reference_only``/``degraded_only`` names
        that found no partner, and ``seconds`` taken.
    """
    started = time.perf_counter()
    pairs, ref_only, deg_only = match_folders(ref_dir, deg_dir)
    rows = score_pairs(pairs, names=[deg.stem for _, deg in pairs], metrics=metrics, jobs=jobs, progress=progress)
    return {"ref_dir": str(ref_dir), "deg_dir": str(deg_dir), "sample_rate": SAMPLE_RATE, "metrics": list(metrics),
            "rows": [row.to_dict() for row in rows], "aggregate": aggregate(rows, metrics),
            "reference_only": ref_only, "degraded_only": deg_only,
            "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str], prog: str) -> int:
    """`evaluate --ref DIR --deg DIR [--jobs N] [--metrics ...] --out FILE.json`."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Score a folder of degraded clips against the reference clips of the same names.",
        epilog="metrics:\n" + "\n".join(f"  {key:<8} {metric.label}: {metric.what}; {metric.better}"
                                         for key, metric in METRICS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, type=Path, help="folder of reference (clean) clips")
    parser.add_argument("--deg", required=True, type=Path, help="folder of degraded (generated) clips")
    parser.add_argument("--out", required=True, type=Path, help="JSON file for the rows and aggregates")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--metrics", default=",".join(INTRUSIVE_METRICS),
                        help=f"comma-separated, from {', '.join(METRICS)} (default: {', '.join(INTRUSIVE_METRICS)})")
    args = parser.parse_args(argv)
    for flag, folder in (("--ref", args.ref), ("--deg", args.deg)):
        if not folder.is_dir():
            parser.error(f"{flag} {folder}: not a folder")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        parser.error(f"--metrics: unknown {unknown}; known: {', '.join(METRICS)}")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    result = evaluate_folders(args.ref, args.deg, jobs=args.jobs, metrics=metrics, progress=sys.stderr.isatty())
    atomic_write(args.out, json.dumps(result, indent=2, allow_nan=False))
    print(_summary_text(result))
    print(f"written {args.out}")
    return 0 if result["rows"] else 1


def _summary_text(result: dict) -> str:
    """A few lines for the terminal: pairs, each metric's mean and interval, unmatched names."""
    lines = [f"{len(result['rows'])} pairs scored in {result['seconds']:.1f} s"]
    for metric, entry in result["aggregate"].items():
        missing = f"{entry['missing']} missing, e.g. {next(iter(entry['reasons']))}" if entry["reasons"] else ""
        if entry["mean"] is None:
            lines.append(f"  {metric:<8} no value ({missing})")
            continue
        interval = "" if entry["ci_low"] is None else f"  95% CI [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
        lines.append(f"  {metric:<8} mean {entry['mean']:8.3f}  median {entry['median']:8.3f}{interval}"
                     + (f"  ({missing})" if missing else ""))
    for key, what in (("reference_only", "references without a degraded clip"),
                      ("degraded_only", "degraded clips without a reference")):
        if result[key]:
            lines.append(f"  {len(result[key])} {what}: {', '.join(result[key][:5])}"
                         + (" ..." if len(result[key]) > 5 else ""))
    if not result["rows"]:
        lines.append(f"  no clip names in common between {result['ref_dir']} and {result['deg_dir']}")
    return "\n".join(lines)
