"""A listening test's plan and its ratings: what ``grade listen make`` writes, what ``grade listen serve`` and the
static export play, and what ``grade listen results`` scores.

Kinds (after the standards audio research uses):

- ``mushra`` (ITU-R BS.1534-3): a trial is one held-out clip: the open reference (the clip itself, labelled
  "Reference") and, in an order of the rater's own, a hidden reference (the same clip), a 3.5 kHz low-pass anchor,
  the reference solution's and Griffin-Lim's reconstructions and several submissions'; each rated 0 to 100;
- ``mos`` (ITU-T P.800 ACR, with P.808's trapping items): a trial is one clip (a submission's unconditional sample,
  a natural recording of the public data set, or a trap: a clip followed by a spoken request to answer a given
  score), rated 1 (bad) to 5 (excellent).

Files, all in ``OUT/listening/`` (:data:`FOLDER`):

- ``plan.json`` (:class:`Plan`): the secret side, read by the grader only: which stimulus is which system or
  submission, each rater's token and trials. Never served, never exported.
- ``stimuli/<key>.wav``: the audio, 16 kHz mono PCM, loudness-matched; ``key`` is random and says nothing.
- ``ratings.sqlite``: the ratings (:mod:`grader.listening.store`).

Blindness: a rater reaches the test by a personal link ``/t/<rater token>/``; the audio of stimulus ``key`` is
``/t/<token>/a/<url id>.wav`` with ``url id`` = :func:`url_id` (different for every rater), and no page, URL or
exported file holds a submission id, a student's name or a system's name.
"""
from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reference.files import atomic_write

FOLDER = "listening"
PLAN_NAME = "plan.json"
STIMULI_FOLDER = "stimuli"
DATABASE_NAME = "ratings.sqlite"
CSV_NAME = "listening.csv"
"""In ``OUT``: the scores, columns exactly ``submission,kind,score,ci_low,ci_high,ratings``."""

Kind = Literal["mushra", "mos"]
System = Literal["submission", "open_reference", "hidden_reference", "anchor", "reference", "griffin_lim", "natural",
                 "trap"]
"""What a stimulus is. ``submission``: a student's output; ``open_reference``: the held-out clip played as the
trial's labelled "Reference", not rated (MUSHRA); ``hidden_reference``: the same clip among those rated (MUSHRA);
``anchor``: the clip low-passed at 3.5 kHz (MUSHRA); ``reference``/``griffin_lim``: the reference solution's and
Griffin-Lim's reconstructions (MUSHRA); ``natural``: a public recording of the data set (MOS); ``trap``: a P.808
trapping item (MOS)."""
SCALES: dict[Kind, tuple[int, int]] = {"mushra": (0, 100), "mos": (1, 5)}
"""The inclusive range of a rating, by kind."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stimulus(_Model):
    """One audio file of the test."""

    key: str = Field(description="Random, opaque: the file is stimuli/<key>.wav.")
    system: System
    submission: str | None = Field(None, description="The submission id, for system 'submission' only.")
    source: str = Field(description="What the audio was made from, for the instructor: a held-out clip's name, a "
                        "sample's name in the submission, a public clip's path.")
    seconds: float = Field(gt=0)


class Trial(_Model):
    """One screen of the test: a MUSHRA clip with its conditions, or one MOS clip."""

    id: str = Field(description="Opaque, e.g. 't017'.")
    kind: Kind
    reference: str | None = Field(None, description="MUSHRA: the open reference's stimulus key (the held-out "
                                  "clip); None for MOS.")
    stimuli: list[str] = Field(min_length=1, description="Stimulus keys rated in this trial (MOS: exactly one).")
    trap_answer: int | None = Field(None, description="MOS trapping item: the score the spoken request asks for.")


class Assignment(_Model):
    """A trial as one rater sees it: its stimuli in the rater's own order."""

    trial: str
    order: list[str] = Field(description="The trial's stimulus keys, shuffled for this rater.")


class Rater(_Model):
    token: str = Field(description="Secret, in the rater's personal link; says nothing about who rates.")
    label: str = Field(description="For the instructor only (results, the links file): 'rater 3', or in peer "
                       "mode the rating student's submission id. Never shown to raters.")
    submission: str | None = Field(None, description="Peer mode: the rater's own submission, never played to them.")
    assignments: list[Assignment]


class Plan(_Model):
    """A listening test: ``OUT/listening/plan.json``."""

    kind: Kind
    created: str = Field(description="ISO 8601 with UTC offset.")
    closes: str | None = Field(None, description="ISO 8601 with UTC offset: ratings after it are refused as late.")
    peers: bool = False
    ratings_per_submission: int = Field(ge=1, description="Each submission gets at least this many ratings.")
    secret: str = Field(description="Key of the per-rater audio URLs (url_id); never leaves the grader.")
    stimuli: dict[str, Stimulus]
    trials: dict[str, Trial]
    raters: list[Rater]

    def rater(self, token: str) -> Rater | None:
        """The rater whose link holds ``token``, else None (compared in constant time)."""
        found = None
        for rater in self.raters:
            if hmac.compare_digest(rater.token.encode(), token.encode()):
                found = rater
        return found

    def url_id(self, token: str, key: str) -> str:
        """The opaque id of stimulus ``key`` in rater ``token``'s URLs: 20 hex digits of an HMAC, different for every
        rater, so that two raters cannot tell they heard the same file."""
        return hmac.new(self.secret.encode(), f"{token}/{key}".encode(), hashlib.sha256).hexdigest()[:20]

    def write(self, out_dir: Path) -> Path:
        return atomic_write(plan_path(out_dir), self.model_dump_json(indent=1))

    @classmethod
    def read(cls, out_dir: Path) -> Plan:
        """The plan of ``out_dir``; ``FileNotFoundError`` names ``grade listen make`` when there is none."""
        path = plan_path(out_dir)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no listening test here; make one with `grade listen make {out_dir}`")
        return cls.model_validate_json(path.read_text())


class Rating(_Model):
    """One score given: what the server stores and the static export's file carries."""

    rater: str = Field(description="The rater's token.")
    trial: str
    stimulus: str = Field(description="The stimulus key.")
    score: float
    at: str = Field(description="ISO 8601 with UTC offset: when it was submitted.")


def plan_path(out_dir: Path) -> Path:
    return Path(out_dir) / FOLDER / PLAN_NAME


def stimulus_path(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / FOLDER / STIMULI_FOLDER / f"{key}.wav"
