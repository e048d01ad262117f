"""Who a submission belongs to: the identity a learning management system put in its file name.

An LMS export names each student's file after the student, and that name is the only
identity the grader trusts: a ``submission.toml``'s ``[student]`` table is what the
student *declares* (shown as declared, never used as the identity), since anyone can
write any name and id into it. The file names understood (:func:`identify`):

- Canvas ``name[_LATE]_userid_submissionid_file``, e.g. ``doe_LATE_12345_67890_hw3.zip``:
  user id ``12345`` (the gradebook's ``ID``), name ``doe``, late;
- Moodle ``Full Name_participantid_assignsubmission_file_...``: the participant id;
- Blackboard ``Assignment_username_attempt_YYYY-MM-DD-HH-MM-SS[_file]``: the username.

Any other name matches no student (``lms`` None): its ID stays empty in every export
and the reports flag it as unmatched.

One student may hand in several files (a resubmission in one export, or one name in
two folders): a batch grades each as an *attempt* (:func:`grader.batch.plan`). The first
keeps the student's submission id; a later one gets ``<id>~<n>`` (:func:`attempt_id`),
which a file name's id never contains (:func:`grader.intake.submission_id` keeps only
letters, digits, ``.``, ``_`` and ``-``), is safe in file names and URLs, and from which
:func:`attempt_of` reads the attempt back.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

Lms = Literal["canvas", "moodle", "blackboard"]

ATTEMPT_MARK = "~"
"""Separates a student's submission id from a later attempt's number: ``doe_12345~2``."""

_PATTERNS: tuple[tuple[Lms, re.Pattern[str]], ...] = (
    ("canvas", re.compile(r"^(?P<name>[^_]+?)(?P<late>_LATE)?_(?P<user>\d+)_\d+_.+$")),
    ("moodle", re.compile(r"^(?P<name>.+?)_(?P<user>\d+)_assignsubmission_.*$")),
    ("blackboard", re.compile(r"^.+?_(?P<user>[^_]+)_attempt_\d{4}(?:-\d{2}){5}(?:_.*)?$")),
)


class LmsIdentity(BaseModel):
    """The student a submission's file name names, as its LMS exported it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lms: Lms | None = None
    """The LMS whose export name the file has; None: no LMS name, the submission matches no student."""
    user_id: str = ""
    """The LMS's id of the student (Canvas user id, Moodle participant id, Blackboard username); "" when unmatched."""
    name: str = ""
    """The student's name as the file name spells it (Canvas: e.g. ``doejane``; Moodle: the full name)."""
    late: bool = False
    """Canvas marked the file ``_LATE`` (handed in after the due date)."""

    @property
    def matched(self) -> bool:
        """Whether the file name identifies a student."""
        return self.lms is not None


def archive_stem(path: str | os.PathLike) -> str:
    """The file or folder name of ``path`` without a ``.zip`` extension (any case)."""
    name = Path(path).name
    return name[:-4] if name.lower().endswith(".zip") else name


def identify(path: str | os.PathLike) -> LmsIdentity:
    """The identity in the file name of ``path`` (a zip or a folder); unmatched where no LMS pattern fits."""
    stem = archive_stem(path)
    for lms, pattern in _PATTERNS:
        match = pattern.match(stem)
        if match:
            groups = match.groupdict()
            return LmsIdentity(lms=lms, user_id=groups["user"], name=groups.get("name") or "",
                               late=bool(groups.get("late")))
    return LmsIdentity()


def attempt_id(submission_id: str, attempt: int) -> str:
    """The submission id of a student's ``attempt`` (1, 2, ...): the student's id itself for the first."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    return submission_id if attempt == 1 else f"{submission_id}{ATTEMPT_MARK}{attempt}"


def attempt_of(submission_id: str) -> int:
    """Which attempt ``submission_id`` is (:func:`attempt_id` read back): 1 without an attempt mark."""
    _, mark, number = submission_id.rpartition(ATTEMPT_MARK)
    return int(number) if mark and number.isdigit() and int(number) > 1 else 1
