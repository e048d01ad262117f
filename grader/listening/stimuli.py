"""The audio of a listening test: what each stimulus file holds, made from the files the grader wrote.

Every stimulus is 16 kHz mono, at most :data:`MAX_SECONDS` long, loudness-matched to :data:`LEVEL_DBFS` (the RMS of
its active part, so that a clip's pauses do not make it louder) and written as 16-bit PCM WAV. Made here:

- the MUSHRA anchor (:func:`low_pass_anchor`): the held-out clip through ITU-R BS.1534-3's 3.5 kHz low-pass;
- the MOS trapping item of ITU-T P.808 (:func:`trapping_item`): a natural clip, then a voice (espeak-ng) asking for
  a given answer on the ACR scale (:data:`ACR_LABELS`).
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from reference import SAMPLE_RATE
from reference.preprocess import AudioLoadError, conform

MAX_SECONDS = 30.0
"""Longest stimulus; a longer file is cut (the grader's own outputs of held-out clips are a few seconds)."""
MAX_CHANNELS = 8
"""Files with more channels are refused rather than read."""
LEVEL_DBFS = -26.0
"""Active RMS level of every stimulus in dB full scale: the -26 dBov that ITU-T P.800/P.808 tests play speech at."""
FRAME_SECONDS = 0.02
"""Frames over which the active part is found (:func:`match_loudness`)."""
ACTIVE_WITHIN_DB = 40.0
"""A frame is active when its RMS is within this many dB of the loudest frame's."""
SILENT_BELOW_DBFS = -70.0
"""A clip whose loudest frame is quieter than this is silence: played as it is, not raised."""
PEAK_LIMIT = 0.99
"""Largest absolute sample after matching: a clip that would clip is matched lower instead."""
ANCHOR_CUTOFF_HZ = 3500.0
ANCHOR_ORDER = 14
"""Butterworth order of the anchor's low-pass, run forwards and backwards (zero phase, so twice the attenuation): at
16 kHz, 6 dB down at 3.5 kHz, 48 dB at 4 kHz and 96 dB at 4.5 kHz, flat to 0.03 dB up to 3 kHz: within BS.1534-3's
mask for it (at least 25 dB down at 4 kHz and 50 dB at 4.5 kHz, the pass band flat to 0.1 dB)."""
ACR_LABELS = ("Bad", "Poor", "Fair", "Good", "Excellent")
"""The ACR scale's words for scores 1 to 5 (ITU-T P.800)."""
ESPEAK = Path("/usr/bin/espeak-ng")
ESPEAK_PACKAGE = "espeak-ng"
"""The Debian package that installs :data:`ESPEAK` (`make setup` installs it)."""
ESPEAK_SECONDS = 30
"""Time allowed to speak one request."""
TRAP_PAUSE_SECONDS = 0.5
"""Silence between a trap's natural clip and its spoken request."""


class StimulusError(ValueError):
    """Audio for the test cannot be made; the message says what is missing and what to do."""


def read_audio(path: Path, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """The first ``max_seconds`` of the audio file ``path`` as a float32 wav (samples,), mono at 16 kHz; only that
    much is read.

    Raises:
        AudioLoadError: no such file, not audio soundfile reads, no samples, too many channels, or NaN in it.
    """
    try:
        info = sf.info(str(path))
        if info.channels > MAX_CHANNELS or info.samplerate <= 0:
            raise AudioLoadError(path, f"{info.channels} channels at {info.samplerate} Hz: not read")
        frames = min(info.frames, int(max_seconds * info.samplerate))
        data, rate = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except AudioLoadError:
        raise
    except Exception as error:  # libsndfile's errors: all mean "not audio it can read"
        raise AudioLoadError(path, f"not a readable audio file ({error})") from None
    if data.size == 0:
        raise AudioLoadError(path, "the file holds no samples")
    return conform(data, rate, SAMPLE_RATE, path=path)


def active_rms(wav: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """The RMS (linear, full scale 1) of the active frames of ``wav`` (samples,): those of :data:`FRAME_SECONDS`
    within :data:`ACTIVE_WITHIN_DB` of the loudest; None for silence (no frame above :data:`SILENT_BELOW_DBFS`)."""
    size = max(1, int(FRAME_SECONDS * sr))
    padded = np.pad(wav.astype(np.float64), (0, -wav.size % size))
    energy = np.mean(padded.reshape(-1, size) ** 2, axis=1)
    loudest = float(energy.max(initial=0.0))
    if loudest <= 10 ** (SILENT_BELOW_DBFS / 10):
        return None
    active = energy[energy >= loudest * 10 ** (-ACTIVE_WITHIN_DB / 10)]
    return float(np.sqrt(active.mean()))


def match_loudness(wav: np.ndarray, level_dbfs: float = LEVEL_DBFS) -> np.ndarray:
    """``wav`` (samples,) scaled so that its :func:`active_rms` is ``level_dbfs`` dB full scale, or less where that
    would push a sample past :data:`PEAK_LIMIT`; silence is returned as it is."""
    rms = active_rms(wav)
    if rms is None:
        return wav.astype(np.float32)
    gain = 10 ** (level_dbfs / 20) / rms
    peak = float(np.max(np.abs(wav)))
    gain = min(gain, PEAK_LIMIT / peak)
    return (wav * gain).astype(np.float32)


def low_pass_anchor(wav: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """BS.1534-3's low-range anchor of ``wav`` (samples,) at ``sr`` Hz: low-passed at :data:`ANCHOR_CUTOFF_HZ` by a
    zero-phase Butterworth filter (:data:`ANCHOR_ORDER`); same length, float32."""
    sos = signal.butter(ANCHOR_ORDER, ANCHOR_CUTOFF_HZ, btype="low", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, wav.astype(np.float64)).astype(np.float32)


def request_text(answer: int) -> str:
    """What a trapping item asks a rater to answer (1 to 5), in words."""
    return f"This is an attention check. Please select the answer: {ACR_LABELS[answer - 1]}."


def spoken(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng's English voice: float32 (samples,) at 16 kHz.

    Raises:
        StimulusError: espeak-ng is not installed, fails, or takes longer than :data:`ESPEAK_SECONDS`.
    """
    if not ESPEAK.is_file():
        raise StimulusError(f"{ESPEAK} is missing: MOS tests speak their attention checks with it. Install the "
                            f"Debian package {ESPEAK_PACKAGE} (`make setup` does, or `sudo apt-get install "
                            f"{ESPEAK_PACKAGE}`).")
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "request.wav"
        try:
            subprocess.run([str(ESPEAK), "-v", "en", "-w", str(target), text], check=True, capture_output=True,
                           timeout=ESPEAK_SECONDS)
            return read_audio(target)
        except subprocess.TimeoutExpired:
            problem = f"took over {ESPEAK_SECONDS} s"
        except subprocess.CalledProcessError as error:
            problem = f"failed ({error.stderr.decode(errors='replace').strip() or f'exit code {error.returncode}'})"
        except AudioLoadError as error:
            problem = f"wrote no audio it could read ({error.problem})"
    raise StimulusError(f"{ESPEAK} {problem} speaking {text!r}: check that `{ESPEAK} -v en \"test\"` runs, or "
                        f"reinstall the Debian package {ESPEAK_PACKAGE}")


def trapping_item(natural: np.ndarray, answer: int) -> np.ndarray:
    """P.808's trapping item: ``natural`` (samples,) at 16 kHz, a pause, then a voice asking for the score
    ``answer`` (1 to 5, :data:`ACR_LABELS`); each part loudness-matched, float32 (samples,).

    Raises:
        StimulusError: as :func:`spoken`.
    """
    request = spoken(request_text(answer))
    pause = np.zeros(int(TRAP_PAUSE_SECONDS * SAMPLE_RATE), np.float32)
    return np.concatenate([match_loudness(natural), pause, match_loudness(request)])


def write_stimulus(path: Path, wav: np.ndarray) -> float:
    """Write ``wav`` (samples,) at 16 kHz to ``path`` as 16-bit PCM WAV; return its length in seconds."""
    sf.write(str(path), np.clip(wav, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return len(wav) / SAMPLE_RATE
