"""Reading what student code wrote: only plain files inside its work folder, checked before use."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from grader import sandbox
from reference.evaluation_unpaired import Validity, validity
from reference.preprocess import AUDIO_SUFFIXES

MAX_FILE_BYTES = 50_000_000
"""The contract's largest output file (50 MB)."""
MAX_CLIP_SECONDS = 60.0


@dataclass
class OutputClip:
    """One clip a run wrote (or should have): host path when usable, and what is wrong with it."""

    name: str
    path: Path | None
    validity: Validity | None
    problem: str | None

    @property
    def usable(self) -> bool:
        """Readable, finite audio of an accepted length (other findings are reported, not fatal)."""
        return self.path is not None and self.problem is None


def read_clips(workdir: Path, folder: str, expected: list[str] | None = None) -> list[OutputClip]:
    """The audio files a run wrote in ``workdir/folder``, by stem; ``expected`` stems missing are listed too.

    Links, special files and files over 50 MB are refused (see :func:`sandbox.output_file`).
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
        if path.stat().st_size > MAX_FILE_BYTES:
            clips.append(OutputClip(name, None, None, f"{entry.name} is over 50 MB"))
            continue
        report = validity(path, max_seconds=MAX_CLIP_SECONDS)
        fatal = not report.read or report.nonfinite_ratio or report.seconds > MAX_CLIP_SECONDS
        clips.append(OutputClip(name, path, report, "; ".join(report.problems) if fatal else None))
    return clips


def copy_media(source: Path, media_dir: Path, name: str, out_root: Path) -> str:
    """Copy ``source`` to ``media_dir/name`` and return its path relative to ``out_root`` (for the report)."""
    media_dir.mkdir(parents=True, exist_ok=True)
    target = media_dir / name
    shutil.copyfile(source, target)
    return target.relative_to(out_root).as_posix()
