"""What grading a submission made, kept so that a change of the scoring re-scores it without making it again.

A change to the rubric's points, a quality item's bars, a tolerance, the answer key or who sees
an item changes every result's cache key (:mod:`grader.cache`), so the class is graded again;
but what each submission gives has not changed. So each grading keeps what it made in
``OUT/evidence/<submission id>.json`` (:data:`EVIDENCE_FOLDER`): discovery, intake's notes, the
runs of student code and every kept artefact (:mod:`grader.context`: validated outputs, clips'
scores, static evidence, model use, claims, answers). It is keyed (:func:`grader.cache.evidence_key`)
on everything that can change any of it, and on nothing that only scores:

- the submission's content, the held-out set, the student environment, the rubric's course data
  mounts (their listings), the grader's whole build, how it is graded (a student's self-check,
  unsandboxed);
- the rubric without its scoring (:func:`making_rubric`): its limits, environment and mounts,
  and each item graded with its id, check, limits and parameters, less its points, title,
  checklist and visibility and its check's ``SCORING`` parameters; the quiz's questions without
  their answers and points.

A grading whose key finds kept evidence restores it (:func:`restore`) instead of unpacking,
running and measuring: only the checks' judging runs again, and student code never does. Not
kept: a grading in which a provider failed (the grader's own error: it is made again next time).
Not restored: evidence naming a media file that is no longer in the output folder. ``grade
--force`` restores nothing: it grades afresh, and keeps what it made.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from grader.artefacts import CHECKS_PACKAGE, provider
from reference.files import atomic_write
from grader.discovery import Discovery
from grader.results import RunEntry
from grader.rubric import CLASS_SECTIONS, Item, Rubric

EVIDENCE_FOLDER = "evidence"
"""Folder of an output folder that holds the kept evidence, one file per submission id."""
SCORING_FIELDS = ("points", "title", "checklist", "visibility")
"""What an item says that only scores it or shows it."""


def making_rubric(rubric: Rubric, items: list[Item]) -> str:
    """``rubric`` as JSON without what only turns artefacts into points (see the module's notes), with ``items``
    (those graded) as its items."""
    written = json.loads(rubric.model_dump_json())
    written.pop("rubric")  # its id, title, version and total points
    for section in CLASS_SECTIONS:
        written.pop(section)
    graded = {item.id: item.check for item in items}
    kept_items = []
    for item in written["items"]:
        if item["id"] in graded:
            scoring = getattr(importlib.import_module(f"{CHECKS_PACKAGE}.{graded[item['id']]}"), "SCORING", ())
            item["params"] = {name: value for name, value in item.get("params", {}).items() if name not in scoring}
            kept_items.append({name: value for name, value in item.items() if name not in SCORING_FIELDS})
    written["items"] = kept_items
    if written.get("quiz") is not None:
        written["quiz"] = [{name: value for name, value in question.items() if name != "answer"}
                           for question in written["quiz"]["questions"]]
    return json.dumps(written, sort_keys=True)


@dataclass
class KeptGrading:
    """A grading's evidence, restored: what :class:`grader.context.CheckContext` starts from when re-scoring."""

    discovery: Discovery
    notes: list[str]
    """Intake's notes on the submission."""
    runs: list[RunEntry]
    """The runs of student code, each marked ``reused``: none runs again."""
    artefacts: dict[str, Any]
    """Every kept artefact, by name."""


def path_of(out_dir: Path, submission_id: str) -> Path:
    """Where the evidence of ``submission_id`` is kept."""
    return out_dir / EVIDENCE_FOLDER / f"{submission_id}.json"


def keep(out_dir: Path, submission_id: str, key: str, grading: KeptGrading, media: list[str]) -> None:
    """Write ``grading`` (and the media files of ``out_dir`` its result names) as the evidence of ``submission_id``
    under ``key``, atomically."""
    artefacts = {name: provider(name).adapter.dump_python(value) for name, value in grading.artefacts.items()}
    atomic_write(path_of(out_dir, submission_id), json.dumps({
        "key": key, "discovery": grading.discovery.model_dump(mode="json"), "notes": grading.notes,
        "runs": [run.model_dump(mode="json") for run in grading.runs], "artefacts": artefacts, "media": media}))


def _read(out_dir: Path, submission_id: str, key: str) -> dict | None:
    """The evidence file of ``submission_id`` as JSON values, when it was kept under ``key`` and every media file it
    names is still in ``out_dir``; else None.

    Raises:
        OSError, ValueError, KeyError, TypeError: it cannot be read, or is not what :func:`keep` writes.
    """
    saved = json.loads(path_of(out_dir, submission_id).read_text())
    if saved["key"] != key or not all((out_dir / media).is_file() for media in saved["media"]):
        return None
    return saved


def stands(out_dir: Path, submission_id: str, key: str) -> bool:
    """Whether evidence of ``submission_id`` is kept under ``key`` with its media (without restoring it)."""
    try:
        return _read(out_dir, submission_id, key) is not None
    except (OSError, ValueError, KeyError, TypeError):
        return False


def restore(out_dir: Path, submission_id: str, key: str) -> KeptGrading | None:
    """The evidence kept for ``submission_id`` under ``key``; None when there is none, it was kept under another
    key, a media file it names is gone, or it does not read back (a person edited it)."""
    try:
        saved = _read(out_dir, submission_id, key)
        if saved is None:
            return None
        return KeptGrading(Discovery.model_validate(saved["discovery"]), list(saved["notes"]),
                           [RunEntry.model_validate(run).model_copy(update={"reused": True}) for run in saved["runs"]],
                           {name: provider(name).adapter.validate_python(value)
                            for name, value in saved["artefacts"].items()})
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        return None
