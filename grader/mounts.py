"""Instructor folders mounted read-only into the sandbox (the rubric's ``[[mounts]]``) hold no held-out clip.

A mount gives student code course data at the path it expects (a training set for a
notebook's training cells). Student code must never read the audio it is graded on, so
before grading starts :func:`check_mounts` decodes every audio file of every mount
folder as 16 kHz mono and compares it with the held-out clips, with the same matcher
that finds copied samples (:func:`reference.evaluation_unpaired.novelty`: embedding
nearest neighbours, then normalised cross-correlation at
:data:`~reference.evaluation_unpaired.DUPLICATE_CORRELATION`). A byte-for-byte copy, a
resampled (8 kHz, 22.05 kHz), re-encoded (FLAC, OGG Vorbis, MP3: 0.99 and above on the embedded
held-out clips), re-scaled or cut copy is caught; a pitch-shifted or time-stretched one is not.

Folders are walked without recursion and without following links
(:func:`grader.folders.walk_files`: a link's target is not the folder's, and the sandbox shows
only what it mounts); a folder of more than :data:`MAX_MOUNT_FILES` files is refused; files over
:data:`MAX_MOUNT_FILE_BYTES` and audio over :data:`MAX_MOUNT_AUDIO_SECONDS` are skipped with a note. Each
file's verdict is cached by its content's sha256 (per held-out set and version of the
matching code, :data:`grader.cache.MOUNT_CODE`), so checking an
unchanged folder again costs one read of its files: the 2,000 WAVs of FSDD (17 MB) take
some 20 s the first time, well under a second afterwards.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from grader.cache import MOUNT_CODE, code_digest, key
from reference.files import atomic_write, file_digest
from grader.folders import walk_files
from grader.heldout import HeldoutSet
from grader.student_files import amount
from grader.limits import MAX_MOUNT_AUDIO_SECONDS, MAX_MOUNT_FILES, MAX_MOUNT_FILE_BYTES
from reference import PROJECT_ROOT, SAMPLE_RATE
from reference.evaluation_unpaired import TrainingIndex, novelty
from reference.preprocess import AudioLoadError, load_audio

CACHE_ROOT = PROJECT_ROOT / ".cache" / "mounts"
MAX_LISTED = 10
"""Held-out copies named in one refusal; the rest are counted."""
_CLEAN = ""
"""The cached verdict of a file that is no held-out clip (or no audio)."""


class MountError(ValueError):
    """A mount the grader refuses; the message names it and says what to do."""


class MountHoldsHeldout(MountError):
    """A mount folder holds a held-out clip (a copy of it, maybe resampled or re-encoded)."""


def check_mounts(mounts: Mapping[str, str | os.PathLike] | Iterable[tuple[str, str | os.PathLike]],
                 heldout: HeldoutSet, *, cache_root: Path = CACHE_ROOT) -> list[str]:
    """Refuse any mount folder that holds one of ``heldout``'s clips; the notes on what was not checked.

    Args:
        mounts: path inside the sandbox -> host folder (or file), as a mapping (``Rubric.mount_paths()``)
            or (inside, host) pairs.
        heldout: the clips graded on; their embeddings come from its novelty index.
        cache_root: where verdicts are kept, one file per held-out set.

    Returns:
        one sentence per file not checked (too large, too long, unreadable), naming the mount and the file.

    Raises:
        MountHoldsHeldout: some audio file is a held-out clip; the message names the mount, the file,
            the clip, and says to remove the file from the folder.
        MountError: a host path does not exist, or is a folder of more than :data:`MAX_MOUNT_FILES` files
            (nothing is checked past that: such a mount is refused).
    """
    pairs = list(mounts.items()) if isinstance(mounts, Mapping) else list(mounts)
    if not pairs:
        return []
    cache_file = cache_root / f"{key(heldout.digest, code_digest(MOUNT_CODE))[:16]}.json"
    cache = _read_cache(cache_file)
    verdicts = dict(cache)
    index = _heldout_index(heldout)
    notes: list[str] = []
    copies: list[str] = []
    try:
        for inside, host in pairs:
            copies += _copies_in(inside, Path(host), heldout, index, verdicts, notes)
    finally:  # what was decided is kept, refused or not: checking again after a fix is quick
        if verdicts != cache:
            _write_cache(cache_file, verdicts)
    if copies:
        more = f"; and {len(copies) - MAX_LISTED} more" if len(copies) > MAX_LISTED else ""
        raise MountHoldsHeldout(
            f"{'; '.join(copies[:MAX_LISTED])}{more}. Student code would read the audio it is graded on: remove "
            f"{'this file' if len(copies) == 1 else 'these files'} from the mounted folder, or mount another folder.")
    return notes


def _copies_in(inside: str, host: Path, heldout: HeldoutSet, index: TrainingIndex, verdicts: dict[str, str],
               notes: list[str]) -> list[str]:
    """Sentences naming each held-out clip in the mount ``inside`` -> ``host`` (a folder, or a file); adds to
    ``verdicts`` (sha256 -> clip, or ``""``) and to ``notes`` (files not checked)."""
    if host.is_file():
        files, top = [(host, host.stat().st_size)], host.parent
    elif host.is_dir():
        files, top = [], host
        for path, state in walk_files(host):
            if len(files) == MAX_MOUNT_FILES:
                raise MountError(f"mount {inside}: {host} holds more than {MAX_MOUNT_FILES:,} files, more than the grader "
                                 f"checks for held-out clips; mount a folder of only the data students need")
            files.append((path, state.st_size))
    else:
        raise MountError(f"mount {inside}: {host} does not exist (or is neither a folder nor a file); fix the "
                         f"rubric's [[mounts]] host")
    copies = []
    for path, size in sorted(files):
        shown = path.relative_to(top).as_posix()
        if size > MAX_MOUNT_FILE_BYTES:
            notes.append(f"mount {inside}: {shown} was not checked for held-out clips ({amount(size)}, over "
                         f"{amount(MAX_MOUNT_FILE_BYTES)})")
            continue
        try:
            digest = file_digest(path)
        except OSError as error:
            notes.append(f"mount {inside}: {shown} was not checked for held-out clips (cannot be read: "
                         f"{error.strerror})")
            continue
        if digest not in verdicts:
            verdict, unchecked = _verdict(path, index, heldout)
            if unchecked:  # not kept: the note is due every time
                notes.append(f"mount {inside}: {shown} was not checked for held-out clips ({unchecked})")
                continue
            verdicts[digest] = verdict
        if verdicts[digest]:
            copies.append(f"mount {inside} ({host}) holds {shown}, a copy of held-out clip {verdicts[digest]}")
    return copies


def _heldout_index(heldout: HeldoutSet) -> TrainingIndex:
    """The held-out clips alone (as waveforms, decoded once) with their embeddings from ``heldout``'s novelty
    index, which holds the training clips first (:attr:`HeldoutSet.known_clips`): training clips may be mounted."""
    known = heldout.novelty_index()
    return TrainingIndex(tuple(load_audio(clip.path, SAMPLE_RATE) for clip in heldout.clips),
                         known.embeddings[len(heldout.training):])


def _verdict(path: Path, index: TrainingIndex, heldout: HeldoutSet) -> tuple[str, str]:
    """(the held-out clip ``path`` copies, with the correlation, or ``""`` for none or no audio; why it was
    not checked, or ``""``)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except sf.SoundFileError:  # anything that is not audio
        return _CLEAN, ""
    if info.frames <= 0 or info.samplerate <= 0:
        return _CLEAN, ""
    if info.frames / info.samplerate > MAX_MOUNT_AUDIO_SECONDS:
        return _CLEAN, f"{info.frames / info.samplerate:.0f} s of audio, over {MAX_MOUNT_AUDIO_SECONDS:.0f} s"
    try:
        wav = load_audio(path, SAMPLE_RATE)
    except AudioLoadError as error:
        return _CLEAN, f"cannot be decoded: {error}"
    match = novelty([wav], index)[0]
    if match.near_duplicate:
        return f"{heldout.clips[match.duplicate_of].path.name} (correlation {match.correlation:.2f})", ""
    return _CLEAN, ""


def _read_cache(path: Path) -> dict[str, str]:
    """Verdicts by sha256 (the grader's own file; anything unreadable is an empty cache)."""
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(path: Path, cache: dict[str, str]) -> None:
    """Written whole under another name, then renamed over the old (two graders may check at once)."""
    atomic_write(path, json.dumps(cache, sort_keys=True))
