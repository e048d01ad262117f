"""The listening test without a server: one self-contained folder per rater, and the import of the files they send back.

``export_static(OUT, DEST)`` writes, for each rater of the plan in its order::

    DEST/rater-01/index.html        every trial of the rater, shown one at a time (the server's pages)
    DEST/rater-01/listen.css, listen.js, offline.js, icon.svg
    DEST/rater-01/a/<url id>.wav    the rater's audio, named by url id (nothing in a name says what it is)

Folders are numbered, never named after a rater's label or submission. ``index.html`` runs from ``file://``: its
``offline.js`` keeps each submitted trial in the browser's localStorage and, once the last is submitted, downloads
``ratings-rater-01.json`` (:class:`ExportedRatings`: the rater's token and, per trial, its id, the time and each
clip's score under its url id), which the rater sends to the instructor.

``import_ratings(OUT, FILE)`` reads such a file as hostile (at most :data:`MAX_IMPORT_BYTES`, validated, unknown keys
refused), maps url ids back to stimulus keys through the plan and stores each trial through
:class:`~grader.listening.store.RatingStore` with the server's refusals (already submitted, after ``Plan.closes``
by the time in the file, out of range, clips not the trial's) but one: nobody saw what was played, so "played in
full" rests on the browser's ``ended`` events, which the page asks for before it enables Submit. A trial already
stored is refused as such, so importing a file twice stores nothing twice.
"""
from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError

from grader.listening.model import FOLDER, Plan, stimulus_path
from grader.listening.server import STATIC, environment, rater_stimuli, trial_pages
from grader.listening.store import RatingRefused, RatingStore, database_path
from grader.student_files import StudentFileError, read_bytes
from reference.files import atomic_write

EXPORT_FORMAT = "listening-ratings/1"
AUDIO_FOLDER = "a"
EXPORT_FOLDERS_NAME = "export-folders.csv"
"""In ``OUT/listening/``: which exported folder is whose (:func:`export_static`)."""
ASSETS = ("listen.css", "listen.js", "offline.js", "icon.svg")
"""The files of :data:`grader.listening.server.STATIC` each rater's folder holds."""
MAX_IMPORT_BYTES = 1_000_000
"""A ratings file takes some 60 bytes a clip rated: a thousand trials of a dozen clips fit."""
MAX_TRIALS = 10_000
MAX_CLOCK_AHEAD = timedelta(minutes=10)
"""How far past the import a trial's time may lie (a rater's clock runs wrong) before it is refused."""

UrlId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{20}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ImportRefused(ValueError):
    """A whole ratings file refused: too large, not JSON, not the export's format, or another test's rater."""


class ExportedTrial(BaseModel):
    """One submitted trial in a ratings file: ``scores`` by url id, ``at`` the rater's clock when submitted."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    trial: Name
    at: AwareDatetime
    scores: dict[UrlId, StrictInt] = Field(max_length=100)


class ExportedRatings(BaseModel):
    """The file a rater's static page downloads."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["listening-ratings/1"]
    rater: Name = Field(description="The rater's token.")
    trials: list[ExportedTrial] = Field(max_length=MAX_TRIALS)


@dataclass(frozen=True)
class ImportSummary:
    """What an import did: ``stored`` ratings (one per clip, of ``trials`` trials) and the trials ``refused``, each
    as (trial id, why)."""

    stored: int = 0
    trials: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        """One line for the instructor: what was stored, then each refusal."""
        said = f"{self.stored} rating(s) of {self.trials} trial(s) stored"
        return "; ".join([said, *(f"trial {trial} refused: {why}" for trial, why in self.refused)])


def export_static(out_dir: Path, dest: Path) -> list[Path]:
    """Write one self-contained folder per rater of ``out_dir``'s plan into ``dest`` (new or empty), as the module
    says; returns the folders in plan order. ``FileExistsError`` when ``dest`` holds anything."""
    plan, dest = Plan.read(out_dir), Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest}: not empty; export into a new folder")
    width = max(2, len(str(len(plan.raters))))
    folders = []
    for number, rater in enumerate(plan.raters, start=1):
        folder = dest / f"rater-{number:0{width}d}"
        (folder / AUDIO_FOLDER).mkdir(parents=True)
        for key in sorted(rater_stimuli(plan, rater)):
            shutil.copyfile(stimulus_path(out_dir, key),
                            folder / AUDIO_FOLDER / f"{plan.url_id(rater.token, key)}.wav")
        for asset in ASSETS:
            shutil.copyfile(STATIC / asset, folder / asset)
        pages = trial_pages(plan, rater, lambda name: f"{AUDIO_FOLDER}/{name}.wav")
        about = {"token": rater.token, "format": EXPORT_FORMAT, "file": f"ratings-{folder.name}.json"}
        atomic_write(folder / "index.html",
                     environment().get_template("offline.html.j2").render(static="", pages=pages, rater=about))
        folders.append(folder)
    _write_folder_list(out_dir, plan, folders)
    return folders


def _write_folder_list(out_dir: Path, plan: Plan, folders: list[Path]) -> Path:
    """``OUT/listening/export-folders.csv`` (columns ``rater,folder``): which folder goes to whom, for the instructor
    only, kept beside the plan rather than in the export (whose folders name no one)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rater", "folder"])
    writer.writerows([rater.label, str(folder)] for rater, folder in zip(plan.raters, folders))
    return atomic_write(Path(out_dir) / FOLDER / EXPORT_FOLDERS_NAME, buffer.getvalue())


def import_ratings(out_dir: Path, file: Path) -> ImportSummary:
    """Store the ratings of ``file`` (a rater's download from :func:`export_static`'s page) in ``out_dir``'s
    ratings database, trial by trial, as the module says.

    Raises:
        ImportRefused: the whole file: over :data:`MAX_IMPORT_BYTES`, not a regular file, not JSON of
            :class:`ExportedRatings`, or a rater the plan does not have; the message names the file.
    """
    file = Path(file)
    plan = Plan.read(out_dir)
    try:
        exported = ExportedRatings.model_validate_json(read_bytes(file, MAX_IMPORT_BYTES, "a ratings file"))
    except StudentFileError as error:
        raise ImportRefused(str(error)) from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise ImportRefused(f"{file.name}: not a ratings file of the listening test's static export ({where}: "
                            f"{first['msg']}; {error.error_count()} problem(s))") from None
    rater = plan.rater(exported.rater)
    if rater is None:
        raise ImportRefused(f"{file.name}: its rater is none of this listening test's (a file of another test?)")
    keys = {plan.url_id(rater.token, key): key for key in rater_stimuli(plan, rater)}
    latest = datetime.now(timezone.utc) + MAX_CLOCK_AHEAD
    stored, trials, refused = 0, 0, []
    with RatingStore(database_path(out_dir)) as store:
        for trial in exported.trials:
            try:
                unknown = sorted(name for name in trial.scores if name not in keys)
                if unknown:
                    raise RatingRefused(f"clip {unknown[0]} is none of this rater's")
                if trial.at > latest:
                    raise RatingRefused(f"its time, {trial.at.isoformat()}, is in the future")
                ratings = store.submit(plan, rater.token, trial.trial,
                                       {keys[name]: score for name, score in trial.scores.items()},
                                       at=trial.at, require_played=False)
            except RatingRefused as refusal:
                refused.append((trial.trial, str(refusal)))
            else:
                stored, trials = stored + len(ratings), trials + 1
    return ImportSummary(stored=stored, trials=trials, refused=refused)
