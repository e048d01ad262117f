"""The clips a submission is graded on, prepared once per set and kept outside the sandbox.

A :class:`HeldoutSet` has three parts:
- ``clips``: the truth of ``reconstruct``. Only their log-mels (``mels/<id>.npy`` and
  ``params.json``) are ever mounted into the sandbox, never the audio;
- ``probes``: other unseen clips the ``mfcc`` entry point reads (their audio does enter
  the sandbox, so they are never the truth of ``reconstruct``);
- ``training``: the training split, for novelty (copies of training clips are found).

The held-out folder is either a data set folder (``reference.data`` layout, with a
``manifest.csv``: its ``heldout`` split is graded on) or any folder of audio files (WAV,
FLAC, OGG; any names, rate and channels; every file under it is a clip). A plain folder's
files are converted to the project's form (16 kHz mono, peak-normalised 16-bit WAV, as
:func:`reference.data.write_clip` writes) in the prepared folder, each under a safe, unique
id made from its path (:func:`clip_ids`); that WAV is the truth, and its class is unknown, so
it counts as speech (PESQ and STOI apply). Probes and training clips
come from the held-out data set itself, or from the folder ``train_dir`` names (a data set
or a plain folder), or, for a plain held-out folder, from the embedded data set.

Preparation (once per set, cached under a key over the clips' bytes and names, the log-mel
parameters and the code that prepares them, :data:`grader.cache.HELDOUT_CODE`) also
computes what every submission would otherwise recompute: the probes' reference MFCCs,
the embeddings of every known clip for novelty, and the held-out clips' own diversity.

Instructors grade on the ``heldout`` split; students' ``grade check`` on the public
``test`` split (shipped in the student kit), with probes from the same split.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from grader.cache import HELDOUT_CODE, code_digest, key, staged_folder
from reference.files import file_digest
from grader.folders import walk_files
from grader.limits import MAX_CLIP_SECONDS, MAX_HELDOUT_FILES, MAX_HELDOUT_FILE_BYTES, MAX_HELDOUT_FILE_SAMPLES
from reference import PROJECT_ROOT, SAMPLE_RATE
from reference.data import MANIFEST_NAME, Clip, read_manifest, write_clip
from reference.evaluation_unpaired import TrainingIndex, diversity
from reference.preprocess import AUDIO_SUFFIXES, AudioLoadError, LogMelParams, load_audio, logmel, mfcc_from_file

DEFAULT_DATA = PROJECT_ROOT / "data" / "embedded"
CACHE_ROOT = PROJECT_ROOT / ".cache" / "heldout"
PROBE_COUNT = 6
PUBLIC_SPLIT = "test"
"""The split students see (the kit's public clips) and ``grade check`` grades on."""
MIN_CLIP_SECONDS = 1.0
"""Shortest clip of a plain folder: shorter ones are too short for PESQ and STOI."""
MAX_LISTED = 10
"""Files named in one refusal; the rest are counted."""


@dataclass(frozen=True)
class HeldoutSet:
    """Clips to grade on and their prepared inputs (see the module's docstring)."""

    name: str
    clips: tuple[Clip, ...]
    probes: tuple[Clip, ...]
    training: tuple[Clip, ...]
    digest: str
    """sha256 over the clips', probes' and training clips' names and bytes, the log-mel parameters and the
    preparation code: the set's version."""
    folder: Path
    """Prepared inputs: ``mels/`` (mounted for reconstruct) and ``probes/`` (mounted for mfcc), and the
    converted clips of plain folders (``truth/``, ``train/``)."""
    sources: tuple[tuple[Path, Path], ...] = ()
    """Files of plain folders and the WAVs preparation converts them to (file, clip path), in that order."""

    @property
    def mel_dir(self) -> Path:
        return self.folder / "mels"

    @property
    def probe_dir(self) -> Path:
        return self.folder / "probes"

    def truth(self, clip_id: str) -> Path:
        """The audio of held-out clip ``clip_id`` (host side only)."""
        return next(c.path for c in self.clips if c.path.stem == clip_id)

    @property
    def known_clips(self) -> tuple[Clip, ...]:
        """The clips a generated sample must not copy: training and held-out, in :meth:`novelty_index` order."""
        return self.training + self.clips

    def novelty_index(self) -> TrainingIndex:
        """Embeddings of :attr:`known_clips` for novelty checks, computed once and kept in the folder."""
        return TrainingIndex(tuple(c.path for c in self.known_clips), np.load(self.folder / "known-embeddings.npy"))

    def reference_mfcc(self, probe: Clip) -> np.ndarray:
        """The reference MFCC (20, frames) of a probe clip, computed once at preparation."""
        return np.load(self.folder / "probe-mfcc" / f"{probe.path.stem}.npy")

    @property
    def diversity(self) -> float:
        """Mean pairwise embedding distance among the held-out clips (what a varied set of samples reaches)."""
        return float((self.folder / "diversity.txt").read_text())


class HeldoutError(ValueError):
    """The data folder cannot give a held-out set; the message names the files and says what to do."""


@dataclass(frozen=True)
class AudioFile:
    """One audio file of a plain folder, checked from its header (:func:`read_audio_folder`)."""

    path: Path
    relative: str
    """Its path inside the folder, with ``/``."""
    clip_id: str
    """The clip's id: a safe file stem, unique in the folder (:func:`clip_ids`)."""
    sha256: str
    seconds: float


def clip_ids(relative_paths: list[str]) -> list[str]:
    """A safe, unique file stem for each of ``relative_paths`` (distinct paths inside one folder).

    Folders and name are joined by ``-``, the suffix dropped, every run of characters other
    than letters, digits, ``_`` and ``-`` becomes ``_``, trimmed from each part's ends
    (``Speaker 1/take #2.flac`` is ``Speaker_1-take_2``), at most 48 characters. Where two
    stems would be equal (ignoring case, as some file systems do), each gets ``-`` and 8 hex
    digits of its path's sha256.
    """
    def stem(relative: str) -> str:
        parts = relative.split("/")
        parts[-1] = parts[-1].rsplit(".", 1)[0] if "." in parts[-1].lstrip(".") else parts[-1]
        cleaned = (re.sub(r"[^A-Za-z0-9_-]+", "_", part).strip("_-") for part in parts)
        return "-".join(filter(None, cleaned))[:48].strip("_-") or "clip"

    def tagged(stem_: str, relative: str) -> str:
        return f"{stem_}-{hashlib.sha256(relative.encode()).hexdigest()[:8]}"

    stems = [stem(relative) for relative in relative_paths]
    counts = Counter(s.lower() for s in stems)
    ids = [s if counts[s.lower()] == 1 else tagged(s, r) for s, r in zip(stems, relative_paths)]
    if len({i.lower() for i in ids}) < len(ids):  # a tagged stem met a plain one: tag them all
        ids = [tagged(s, r) for s, r in zip(stems, relative_paths)]
    return ids


def read_audio_folder(folder: str | os.PathLike, what: str = "held-out clips") -> list[AudioFile]:
    """Every audio file under ``folder`` (by suffix, :data:`~reference.preprocess.AUDIO_SUFFIXES`; at any depth;
    links are not followed), in path order, each checked from its header only.

    ``what`` names the clips in messages. Other files are left alone.

    Raises:
        HeldoutError: no such folder; no audio file in it; more than :data:`MAX_HELDOUT_FILES`; or some
            file cannot serve (not readable as audio, over :data:`MAX_HELDOUT_FILE_BYTES` or :data:`MAX_HELDOUT_FILE_SAMPLES`,
            shorter than :data:`MIN_CLIP_SECONDS` or longer than ``MAX_CLIP_SECONDS``). The message
            names the files and says what to do.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HeldoutError(f"{folder}: no such folder. Give a folder of {what} as audio files (WAV, FLAC or OGG), "
                           f"or a data set folder with a {MANIFEST_NAME}.")
    audio, others = [], 0
    for path, state in walk_files(folder):
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            others += 1
            continue
        audio.append((path, state.st_size))
        if len(audio) > MAX_HELDOUT_FILES:
            raise HeldoutError(f"{folder}: more than {MAX_HELDOUT_FILES} audio files; every submission would run on "
                               f"all of them. Choose up to {MAX_HELDOUT_FILES} {what} and put them in a folder of "
                               f"their own.")
    if not audio:
        raise HeldoutError(f"{folder}: no audio files (WAV, FLAC or OGG) in it ({others} other file(s)). Put the "
                           f"{what} there as audio files, one clip a file, or give a data set folder with a "
                           f"{MANIFEST_NAME}.")
    found, problems = [], []
    for path, size in sorted(audio):
        relative = path.relative_to(folder).as_posix()
        seconds, problem = _header(path, size)
        if problem:
            problems.append(f"{relative}: {problem}")
        else:
            found.append((path, relative, seconds))
    if problems:
        raise _refusal(f"{folder}: {len(problems)} of its {len(audio)} audio file(s) cannot serve as {what}",
                       problems)
    return [AudioFile(path, relative, clip_id, file_digest(path), seconds)
            for (path, relative, seconds), clip_id in zip(found, clip_ids([r for _, r, _ in found]))]


def _header(path: Path, size: int) -> tuple[float, str | None]:
    """(seconds, None) for an audio file whose header promises a usable clip; else (0, why not, in words)."""
    import soundfile as sf

    if size > MAX_HELDOUT_FILE_BYTES:
        return 0.0, f"{size / 1e6:.0f} MB, over the {MAX_HELDOUT_FILE_BYTES / 1e6:.0f} MB read"
    try:
        info = sf.info(str(path))
    except Exception as error:  # libsndfile's errors: all mean "not audio it can read"
        return 0.0, f"not readable as audio ({str(error).strip() or type(error).__name__})"
    if info.samplerate <= 0 or info.channels <= 0 or info.frames <= 0:
        return 0.0, "holds no audio"
    seconds = info.frames / info.samplerate
    if seconds < MIN_CLIP_SECONDS:
        return seconds, f"{seconds:.2f} s long, shorter than {MIN_CLIP_SECONDS:g} s"
    if seconds > MAX_CLIP_SECONDS:
        return seconds, f"{seconds:.0f} s long, longer than {MAX_CLIP_SECONDS:.0f} s"
    if info.frames * info.channels > MAX_HELDOUT_FILE_SAMPLES:
        return seconds, f"{info.channels} channels at {info.samplerate} Hz: more samples than are read"
    return seconds, None


def _refusal(head: str, problems: list[str]) -> HeldoutError:
    """The refusal ``head``, then the files of ``problems`` (one ``file: why`` each), then what to do."""
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    listed = "".join(f"\n  {problem}" for problem in problems[:MAX_LISTED])
    return HeldoutError(
        f"{head}:{listed}{more}\n"
        f"Re-export {'it' if len(problems) == 1 else 'them'} as WAV, FLAC or OGG clips of {MIN_CLIP_SECONDS:g} to "
        f"{MAX_CLIP_SECONDS:.0f} s (any rate, mono or stereo), or move {'it' if len(problems) == 1 else 'them'} "
        f"out of the folder.")


def load_heldout(data_dir: str | os.PathLike = DEFAULT_DATA, split: str = "heldout", probe_split: str = PUBLIC_SPLIT,
                 cache_root: Path = CACHE_ROOT, train_dir: str | os.PathLike | None = None) -> HeldoutSet:
    """The held-out set of ``data_dir``, prepared (once) under ``cache_root``.

    Args:
        data_dir: a data set folder (its ``split`` clips are graded on) or a plain folder of audio files (all
            of them are; see the module's notes).
        split, probe_split: the data set's splits of the truth and of the probes.
        train_dir: where probes and training clips come from: a data set folder (probes from its
            ``probe_split``, training clips from its ``train`` split) or a plain folder (probes: some of its
            clips; training: all). None: ``data_dir`` itself when it is a data set, else the embedded one.

    Raises:
        HeldoutError: a folder cannot serve; the message names it (and its files) and says what to do.
    """
    data_dir = Path(data_dir)
    if (data_dir / MANIFEST_NAME).is_file():
        manifest = _manifest(data_dir)
        clips: list[Clip] | list[AudioFile] = [c for c in manifest if c.split == split]
        if not clips:
            raise HeldoutError(f"{data_dir}: no clips in the {split!r} split; splits there: "
                               f"{sorted({c.split for c in manifest})}")
    else:
        clips, manifest = read_audio_folder(data_dir), None
    if train_dir is None and manifest is not None:
        probes, training = _probes_and_training(data_dir, manifest, split, probe_split, clips)
    else:
        probes, training = _others(Path(train_dir) if train_dir is not None else DEFAULT_DATA, split, probe_split)
    digest = key(code_digest(HELDOUT_CODE), LogMelParams().to_json(),
                 *(f"{role} {_name(c)}={c.sha256}" for role, group in (("truth", clips), ("probes", probes),
                                                                      ("training", training)) for c in group))
    folder = cache_root / digest[:16]
    converted: dict[Path, Clip] = {}
    heldout = HeldoutSet(split, _clips(clips, folder, "truth", split, converted),
                         _clips(probes, folder, "train", "train", converted),
                         _clips(training, folder, "train", "train", converted), digest, folder,
                         tuple((path, clip.path) for path, clip in converted.items()))
    if not (heldout.folder / "ready").is_file():
        _prepare(heldout)
    return heldout


def _manifest(data_dir: Path) -> list[Clip]:
    try:
        return read_manifest(data_dir)
    except Exception as exc:
        raise HeldoutError(f"{data_dir}: {exc}") from None


def _probes_and_training(data_dir: Path, manifest: list[Clip], split: str, probe_split: str,
                         clips: list) -> tuple[list[Clip], list[Clip]]:
    """A data set's probes (from ``probe_split``, else any split but ``split`` and train) and training clips."""
    others = [c for c in manifest if c.split == probe_split and c not in clips] or [
        c for c in manifest if c.split not in (split, "train")]
    if not others and split == PUBLIC_SPLIT:
        others = list(clips)  # public clips may be read by student code: they are in the kit anyway
    if not others:
        raise HeldoutError(f"{data_dir}: no clips outside the {split!r} split for the mfcc check to read")
    return others[:: max(1, len(others) // PROBE_COUNT)][:PROBE_COUNT], [c for c in manifest if c.split == "train"]


def _others(train_dir: Path, split: str, probe_split: str) -> tuple[list, list]:
    """Probes and training clips from ``train_dir``: a data set folder or a plain folder of audio."""
    if (train_dir / MANIFEST_NAME).is_file():
        return _probes_and_training(train_dir, _manifest(train_dir), split, probe_split, [])
    if train_dir == DEFAULT_DATA:
        raise HeldoutError(f"The mfcc check's probe clips and the novelty index come from the embedded data set, "
                           f"which is not built at {DEFAULT_DATA}: run `make data`, or name a folder of training "
                           f"clips with --train DIR.")
    training = read_audio_folder(train_dir, "training clips")
    return training[:: max(1, len(training) // PROBE_COUNT)][:PROBE_COUNT], training


def _name(clip: Clip | AudioFile) -> str:
    """The file name a clip has in the prepared set (its log-mel's and probe copy's too)."""
    return f"{clip.clip_id}.wav" if isinstance(clip, AudioFile) else clip.path.name


def _clips(group: list[Clip] | list[AudioFile], folder: Path, subfolder: str, split: str,
           converted: dict[Path, Clip]) -> tuple[Clip, ...]:
    """``group``'s clips: a data set's as they are; a plain folder's files as the ``split`` clips preparation
    converts them to, ``folder/subfolder/<id>.wav``, each noted once in ``converted`` (file -> clip)."""
    return tuple(converted.setdefault(clip.path, Clip(folder / subfolder / _name(clip), "", split, "",
                                                      round(clip.seconds, 4), clip.sha256, clip.relative))
                 if isinstance(clip, AudioFile) else clip for clip in group)


def _prepare(heldout: HeldoutSet) -> None:
    """Convert plain folders' files, write the log-mels, the probe copies and what every submission would
    recompute, world-readable (the sandbox runs as another user); all at once (:func:`grader.cache.staged_folder`).

    Raises:
        HeldoutError: a plain folder's file cannot be decoded after all, or decodes to less than a second.
    """
    with staged_folder(heldout.folder) as staging:
        def local(path: Path) -> Path:
            """Where ``path`` (maybe in the prepared folder, not made yet) is while preparing."""
            return staging / path.relative_to(heldout.folder) if path.is_relative_to(heldout.folder) else path

        _convert(heldout.sources, local)
        (staging / "mels").mkdir()
        (staging / "probes").mkdir()
        params = LogMelParams()
        for clip in heldout.clips:
            np.save(staging / "mels" / f"{clip.path.stem}.npy", logmel(load_audio(local(clip.path)), params))
        (staging / "mels" / "params.json").write_text(params.to_json())
        (staging / "probe-mfcc").mkdir()
        for clip in heldout.probes:
            shutil.copyfile(local(clip.path), staging / "probes" / clip.path.name)
            np.save(staging / "probe-mfcc" / f"{clip.path.stem}.npy", mfcc_from_file(local(clip.path)))
        np.save(staging / "known-embeddings.npy",
                TrainingIndex.build([local(c.path) for c in heldout.known_clips]).embeddings)
        (staging / "diversity.txt").write_text(repr(diversity([local(c.path) for c in heldout.clips]))
                                               if len(heldout.clips) > 1 else "0.0")
        for folder, _, files in os.walk(staging):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(Path(folder) / name, 0o644)
        (staging / "ready").touch()
        os.chmod(heldout.folder.parent, 0o755)


def _convert(sources: tuple[tuple[Path, Path], ...], local: Callable[[Path], Path]) -> None:
    """Write each plain folder's file as a 16 kHz mono clip (:func:`reference.data.write_clip`) where ``local``
    puts its clip path."""
    problems = []
    for source, clip in sources:
        try:
            wav = load_audio(source)
        except AudioLoadError as error:
            problems.append(f"{source}: {error.problem}")
            continue
        if len(wav) < MIN_CLIP_SECONDS * SAMPLE_RATE:
            problems.append(f"{source}: decodes to {len(wav) / SAMPLE_RATE:.2f} s, shorter than {MIN_CLIP_SECONDS:g} s")
            continue
        target = local(clip)
        write_clip(target.parent.parent, target.parent.name, target.stem, wav, "", "", "")
    if problems:
        raise _refusal(f"{len(problems)} audio file(s) could not be decoded as clips", problems)
