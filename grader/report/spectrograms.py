"""Log-mel spectrogram pictures for the report: PNG files, cached by the audio's content.

Every picture is the contract's log-mel (:func:`reference.preprocess.logmel` of the clip
loaded at 16 kHz) drawn on one fixed colour scale, from the log-mel's floor
``ln(clamp)`` to :data:`LOG_MAX`, so that the truth, the reference, the student's
output and Griffin-Lim of one clip (and of every other clip) can be compared by eye.
A picture is named by the SHA-256 of the audio file's bytes and of the drawing's
settings, so the truth and reference clips that every submission shares are drawn
once, and re-rendering a report draws nothing new.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.results import SubmissionResult
from reference.files import atomic_write
from reference.preprocess import AudioLoadError, LogMelParams, load_audio, logmel

SPECTROGRAM_FOLDER = "spectrograms"
"""Folder of an output folder where the pictures are cached by content."""

PARAMS = LogMelParams()
LOG_MIN = math.log(PARAMS.clamp)
"""Bottom of the colour scale: the contract's log-mel floor, ln(1e-5) = -11.5."""
LOG_MAX = 3.0
"""Top of the colour scale. The embedded data set's loudest log-mel bin is about 1.7
(peak-normalised clips); louder output saturates at the top colour."""
COLOURMAP = "magma"
WIDTH_INCHES, HEIGHT_INCHES, DPI = 4.0, 1.6, 96
STYLE = f"v1 {PARAMS} {LOG_MIN:.4f} {LOG_MAX} {COLOURMAP} {WIDTH_INCHES}x{HEIGHT_INCHES}@{DPI}"
"""Everything that changes the picture besides the audio: part of each cached file's name."""


@dataclass(frozen=True)
class Spectrogram:
    """A drawn spectrogram (``png`` set) or why there is none (``problem`` set)."""

    png: Path | None
    problem: str | None = None


DRAWING_CODE = ("grader/report/spectrograms.py", "reference/preprocess.py")
"""The code that draws a picture (:func:`grader.cache.code_digest` of it is part of each cached file's name)."""


def content_key(audio: Path) -> str:
    """SHA-256 (hex) of the audio file's bytes, of :data:`STYLE` and of the drawing code (:data:`DRAWING_CODE`):
    the cached picture's name, so a fix to the drawing draws every picture again."""
    from grader.cache import code_digest

    digest = hashlib.sha256(f"{STYLE}|{code_digest(DRAWING_CODE)}".encode())
    with open(audio, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spectrogram_png(audio: str | os.PathLike, cache_dir: str | os.PathLike) -> Spectrogram:
    """The log-mel picture of ``audio``, drawn into ``cache_dir/<content key>.png`` unless already there.

    Args:
        audio: an audio file (any format :func:`reference.preprocess.load_audio` reads).
        cache_dir: folder of the cached pictures (created when missing).

    Returns:
        the PNG's path, or a problem in words when the file cannot be read as audio
        (a student's output may be anything); never raises for a bad file.
    """
    audio, cache_dir = Path(audio), Path(cache_dir)
    try:
        target = cache_dir / f"{content_key(audio)}.png"
    except OSError as error:
        return Spectrogram(None, f"{audio.name}: cannot be read ({error.strerror})")
    if target.is_file():
        return Spectrogram(target)
    try:
        wav = load_audio(audio, PARAMS.sr)
    except AudioLoadError as error:
        return Spectrogram(None, f"{audio.name}: {error.problem}")
    png = draw(logmel(wav, PARAMS))
    atomic_write(target, png)
    return Spectrogram(target)


def draw_spectrograms(result: SubmissionResult, out_dir: str | os.PathLike) -> None:
    """Draw the pictures of every audio file ``result`` names into ``out_dir``'s cache (where the
    report looks for them); a batch does it in its workers, so the report at the end only links them."""
    out_dir = Path(out_dir)
    for media in result.media_files():
        spectrogram_png(out_dir / media, out_dir / SPECTROGRAM_FOLDER)


def warm_up_drawing() -> None:
    """Draw one picture in memory, so that processes forked afterwards start with matplotlib
    imported and its fonts loaded (about 0.3 s each otherwise)."""
    draw(np.full((PARAMS.n_mels, 2), LOG_MIN))


def draw(mel: np.ndarray) -> bytes:
    """PNG bytes of ``mel`` (n_mels, frames): time in seconds across, mel band up, on the fixed colour scale.

    Each thread draws on a figure of its own, made once and given each picture's data
    (half the time of a new figure); the bytes depend on ``mel`` alone.
    """
    if not hasattr(_figures, "canvas"):
        _figures.canvas = _Canvas()
    return _figures.canvas.png(mel)


_figures = threading.local()


class _Canvas:
    """A figure with its axes and image drawn once, for :func:`draw` (matplotlib's object API, no pyplot)."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
        FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_axes((0.09, 0.2, 0.89, 0.76))
        self.image = self.axes.imshow(np.full((PARAMS.n_mels, 1), LOG_MIN), origin="lower", aspect="auto",
                                      cmap=COLOURMAP, vmin=LOG_MIN, vmax=LOG_MAX, interpolation="nearest")
        self.axes.set_xlabel("seconds", fontsize=7, labelpad=1)
        self.axes.set_ylabel("mel band", fontsize=7, labelpad=1)
        self.axes.tick_params(labelsize=6, length=2, pad=1)

    def png(self, mel: np.ndarray) -> bytes:
        seconds = mel.shape[1] * PARAMS.hop_length / PARAMS.sr
        self.image.set_data(mel)
        self.image.set_extent((0.0, seconds, 0, mel.shape[0]))
        buffer = io.BytesIO()
        # No metadata: the same audio gives the same bytes.
        self.figure.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()
