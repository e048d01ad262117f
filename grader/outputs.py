"""Reading what student code wrote: only plain files inside its work folder, checked before use.

Each clip is decoded once (:func:`read_clips`): judged, and kept as the waveform every metric reads.
Audio the report plays is written by :func:`copy_media`, never copied: see there.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from grader import sandbox
from grader.limits import MAX_CLIP_SECONDS, MAX_OUTPUT_FILE_BYTES
from reference import SAMPLE_RATE
from reference.evaluation_unpaired import MAX_READ_SAMPLE_RATE, Validity, read_judged
from reference.preprocess import AUDIO_SUFFIXES, conform


@dataclass
class OutputClip:
    """One clip a run wrote (or should have): host path when usable, and what is wrong with it."""

    name: str
    path: Path | None
    validity: Validity | None
    problem: str | None
    wave: np.ndarray | None = None
    """The usable clip as every metric reads it, decoded once: (samples,) float32, mono at the contract's rate
    (:data:`reference.SAMPLE_RATE`); None when it is not usable or holds no samples."""

    @property
    def usable(self) -> bool:
        """Readable, finite audio of an accepted length (other findings are reported, not fatal)."""
        return self.path is not None and self.problem is None

    @property
    def audio(self) -> np.ndarray | Path:
        """What a metric gets: the decoded :attr:`wave`, else the file (whose loading then says why it is no audio)."""
        return self.wave if self.wave is not None else self.path


def read_clips(workdir: Path, folder: str, expected: list[str] | None = None) -> list[OutputClip]:
    """The audio files a run wrote in ``workdir/folder``, by stem; ``expected`` stems missing are listed too.

    Links, special files and files over 50 MB are refused (see :func:`sandbox.output_file`). Each file is
    decoded once: judged (:func:`~reference.evaluation_unpaired.read_judged`) and, when usable, kept as its
    :attr:`OutputClip.wave` (at most :data:`MAX_CLIP_SECONDS` of it, some 4 MB).
    """
    base = workdir / folder
    found: dict[str, Path] = {}
    if base.is_dir() and not base.is_symlink():
        for entry in sorted(base.iterdir()):
            if entry.suffix.lower() in AUDIO_SUFFIXES:
                found.setdefault(entry.stem, entry)
    names = expected if expected is not None else sorted(found)
    clips = []
    for name in names:
        entry = found.get(name)
        if entry is None:
            clips.append(OutputClip(name, None, None, "not written"))
            continue
        try:
            path = sandbox.output_file(workdir, f"{folder}/{entry.name}")
        except FileNotFoundError as error:
            clips.append(OutputClip(name, None, None, str(error)))
            continue
        if path.stat().st_size > MAX_OUTPUT_FILE_BYTES:
            clips.append(OutputClip(name, None, None, f"{entry.name} is over 50 MB"))
            continue
        report, samples, rate = read_judged(path, max_seconds=MAX_CLIP_SECONDS)
        fatal = not report.read or report.nonfinite_ratio or report.seconds > MAX_CLIP_SECONDS
        wave = conform(samples, rate, SAMPLE_RATE, path=path) if not fatal and len(samples) else None
        clips.append(OutputClip(name, path, report, "; ".join(report.problems) if fatal else None, wave))
    return clips


class MediaRefused(ValueError):
    """Audio that is not put in the report folder; the message says why, in words for the student."""


def copy_media(source: Path, media_dir: Path, stem: str, out_root: Path,
               decoded: tuple[np.ndarray, int] | None = None) -> str:
    """Write ``source``'s decoded samples as a new WAV ``media_dir/<stem>.wav``; return it relative to ``out_root``.

    Nothing of ``source`` but its samples reaches the report folder. A student's file may be a
    polyglot (a valid WAV whose extra chunk is an HTML page, handed in as ``clip.html``): copied
    as it is, a browser opening the report would run its script on the report's origin. Here the
    file is decoded (at most 50 MB and 60 s, judged from its header before any sample is read)
    and its samples are written by the grader as 16-bit PCM at the file's own rate and channels,
    under a name the grader chose (``stem``, reduced to letters, digits, ``.``, ``_`` and ``-``)
    that always ends in ``.wav``. NaN and infinite samples become silence, samples beyond full
    scale are clipped. ``decoded``: the samples ((frames, channels) or (frames,)) and rate the caller decoded
    from ``source`` already; the same limits hold.

    Raises:
        MediaRefused: not decodable audio, over the size or length limits, or without samples.
    """
    samples, rate = _decode(source) if decoded is None else _within_limits(source, *decoded)
    media_dir.mkdir(parents=True, exist_ok=True)
    target = media_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', stem).lstrip('.-') or 'clip'}.wav"
    sf.write(target, np.clip(np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0), rate,
             subtype="PCM_16", format="WAV")
    return target.relative_to(out_root).as_posix()


def _decode(source: Path) -> tuple[np.ndarray, int]:
    """The samples (frames, channels) and rate of ``source`` within the contract's limits, or :class:`MediaRefused`."""
    if source.stat().st_size > MAX_OUTPUT_FILE_BYTES:
        raise MediaRefused(f"{source.name} is over 50 MB")
    try:
        info = sf.info(str(source))
    except Exception as error:  # libsndfile's errors: all mean "not audio it can decode"
        raise MediaRefused(f"{source.name} is not a readable audio file ({error})") from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise MediaRefused(f"{source.name} declares {info.samplerate} Hz and {info.channels} channel(s)")
    _refuse_length(source, info.frames, info.samplerate, info.channels)
    try:  # never more frames than the header promised, whatever the data holds
        samples, rate = sf.read(str(source), frames=info.frames, dtype="float32", always_2d=True)
    except Exception as error:
        raise MediaRefused(f"{source.name} could not be decoded ({error})") from None
    if not samples.size:
        raise MediaRefused(f"{source.name} holds 0 samples: there is nothing to play")
    return samples, rate


def _within_limits(source: Path, samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Samples decoded from ``source`` already, as (frames, channels), if :func:`_decode` would have given them."""
    samples = samples.reshape(len(samples), -1)
    if source.stat().st_size > MAX_OUTPUT_FILE_BYTES:
        raise MediaRefused(f"{source.name} is over 50 MB")
    _refuse_length(source, len(samples), rate, samples.shape[1])
    if not samples.size:
        raise MediaRefused(f"{source.name} holds 0 samples: there is nothing to play")
    return samples, rate


def _refuse_length(source: Path, frames: int, rate: int, channels: int) -> None:
    """:class:`MediaRefused` where ``frames`` at ``rate`` Hz in ``channels`` channels is more than a report plays."""
    if frames > MAX_CLIP_SECONDS * rate:
        raise MediaRefused(f"{source.name} is {frames / rate:.1f} s long, longer than {MAX_CLIP_SECONDS:.0f} s")
    if frames * channels > MAX_CLIP_SECONDS * MAX_READ_SAMPLE_RATE:
        raise MediaRefused(f"{source.name} has {channels} channels at {rate} Hz: more samples than "
                           f"{MAX_CLIP_SECONDS:.0f} s of {MAX_READ_SAMPLE_RATE // 2000} kHz stereo")
