"""``grade listen results``: a listening test's raters screened, its submissions and systems scored, the scores in
``OUT/listening.csv``, and the rubric's ``listening`` items re-scored from them.

Post-screening (:func:`screen`), after the standards each kind follows:

- MUSHRA (ITU-R BS.1534-3): a rater who rates the hidden reference below :data:`HIDDEN_REFERENCE_FLOOR` in more
  than :data:`HIDDEN_REFERENCE_PERCENT` % of the MUSHRA trials they submitted is left out;
- MOS (ITU-T P.808): a rater who answers any trapping item (``Trial.trap_answer``) otherwise than it asks is left
  out.

Scores (:func:`score`), from the ratings of the raters kept: per submission, every rating of its stimuli; per
system (:data:`SCORED_SYSTEMS`: the hidden reference, the anchor, the reference solution and Griffin-Lim for
MUSHRA; natural recordings for MOS), every rating of that system's stimuli. Each is the mean, its 95% confidence
interval from Student's t (``t.ppf(0.975, n - 1) * sd / sqrt(n)``, ``sd`` with n - 1 degrees of freedom, cut to the
scale; none with a single rating) and n. Trapping items and open references are never scored.

Files, written atomically:

- ``OUT/listening.csv`` (:data:`grader.listening.model.CSV_NAME`), columns exactly :data:`COLUMNS`, one row per
  submission of the test (its id as in ``OUT/results``) and per system (:data:`SYSTEM_PREFIX` and its name, which
  no submission id can be: ids hold no colon), numbers to 3 decimals, a value that does not exist left empty;
  read back, bounded and validated, by :func:`read_scores`;
- ``OUT/listening/screening.json`` (:class:`Screening`): who was left out and why, for the class page.

:func:`grader.listening.apply.apply_ratings` puts the scores into the results already graded: each ``listening`` item is judged again by
the check's own function (:func:`grader.checks.listening.judge`), without running anything of the submission.
"""
from __future__ import annotations

import csv
import io
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grader.listening.model import CSV_NAME, FOLDER, SCALES, Kind, Plan, Rating, System, Trial
from grader.listening.store import RatingStore, database_path
from grader.rubric_params import CHECK_PARAMS, ListeningParams
from reference.files import atomic_write

RATINGS_CHECKS = tuple(kind for kind, model in CHECK_PARAMS.items() if model is ListeningParams)
"""Check kinds that grade with the listening test's scores (:mod:`grader.checks.listening`)."""
SCORED_SYSTEMS: dict[Kind, tuple[System, ...]] = {"mushra": ("hidden_reference", "anchor", "reference", "griffin_lim"),
                                                  "mos": ("natural",)}
"""The systems scored beside the submissions, by kind, in the order they are written and shown."""
SYSTEM_WORDS = {"hidden_reference": "hidden reference", "anchor": "anchor (3.5 kHz low-pass)",
                "reference": "reference solution", "griffin_lim": "Griffin-Lim (true log-mel)",
                "natural": "natural recordings"}
KIND_WORDS: dict[Kind, str] = {"mushra": "MUSHRA", "mos": "MOS"}
DIGITS: dict[Kind, int] = {"mushra": 1, "mos": 2}
"""Decimals a score of each kind is shown with (``listening.csv`` holds 3)."""
SYSTEM_PREFIX = "system:"
"""A system's row in ``listening.csv`` is named ``system:<name>`` (``system:reference``)."""
COLUMNS = ("submission", "kind", "score", "ci_low", "ci_high", "ratings")
SCREENING_NAME = "screening.json"
"""In ``OUT/listening/``: who post-screening left out, and why (:class:`Screening`)."""
HIDDEN_REFERENCE_FLOOR = 90
"""BS.1534-3: a rating of the hidden reference below this counts against its rater..."""
HIDDEN_REFERENCE_PERCENT = 15
"""... and a rater with such ratings in more than this percentage of their MUSHRA trials is left out."""
CONFIDENCE = 0.95
MAX_CSV_BYTES = 4 << 20
"""``listening.csv`` is read up to this size (a class of 300 writes some 15 kB)."""
SUBMISSION_ID = re.compile(r"[A-Za-z0-9._~-]{1,200}")
"""What a submission id is made of (:func:`grader.intake.submission_id`, and ``~<attempt>``)."""


class UnreadableScores(ValueError):
    """``listening.csv`` or ``screening.json`` is not as :func:`write_csv` and :meth:`Screening.write` write them;
    the message names the file, the line and what to do."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Score(_Model):
    """One row of ``listening.csv``: a submission's or a system's mean rating, its 95% confidence interval, and how
    many ratings (of the raters kept) it stands on. No ratings: no score; one: no interval."""

    submission: str = Field(description="The submission id, or SYSTEM_PREFIX and the system's name.")
    kind: Kind
    score: float | None
    ci_low: float | None
    ci_high: float | None
    ratings: int = Field(ge=0)

    @property
    def system(self) -> str | None:
        """The system's name (``reference``) of a system's row; None for a submission's."""
        return self.submission.removeprefix(SYSTEM_PREFIX) if self.submission.startswith(SYSTEM_PREFIX) else None

    @model_validator(mode="after")
    def _consistent(self) -> Score:
        if self.system is not None and self.system not in SCORED_SYSTEMS[self.kind]:
            raise ValueError(f"{self.submission!r} is no system a {self.kind} test scores; those are "
                             f"{', '.join(SYSTEM_PREFIX + s for s in SCORED_SYSTEMS[self.kind])}")
        if self.system is None and not SUBMISSION_ID.fullmatch(self.submission):
            raise ValueError(f"{self.submission!r} is not a submission id")
        if (self.score is None) != (self.ratings == 0):
            raise ValueError("a score needs ratings, and ratings give a score")
        if (self.ci_low is None) != (self.ratings < 2) or (self.ci_high is None) != (self.ratings < 2):
            raise ValueError("an interval needs two ratings or more, and two or more give one")
        low, high = SCALES[self.kind]
        if self.score is not None and not low <= self.score <= high:
            raise ValueError(f"score {self.score:g} is off the {self.kind} scale, {low} to {high}")
        if self.ci_low is not None and not self.ci_low <= self.score <= self.ci_high:
            raise ValueError(f"the interval {self.ci_low:g} to {self.ci_high:g} does not hold the score")
        return self

    def interval(self) -> str:
        """The score in words: "80.0 (95% CI 55.2 to 104.8, 3 ratings)"."""
        if self.score is None:
            return "no ratings"
        digits = DIGITS[self.kind]
        ratings = f"{self.ratings} rating{'s' if self.ratings != 1 else ''}"
        if self.ci_low is None:
            return f"{self.score:.{digits}f} ({ratings}: no interval)"
        return f"{self.score:.{digits}f} (95% CI {self.ci_low:.{digits}f} to {self.ci_high:.{digits}f}, {ratings})"


class Exclusion(_Model):
    rater: str = Field(description="The rater's label (Rater.label), for the instructor.")
    reason: str = Field(description="Why, with the numbers.")


class Screening(_Model):
    """What post-screening did: ``OUT/listening/screening.json``."""

    kind: Kind
    raters: int = Field(ge=0, description="Raters of the plan.")
    rated: int = Field(ge=0, description="Raters who submitted at least one trial.")
    excluded: list[Exclusion]
    ratings: int = Field(ge=0, description="Ratings scored: those of the raters kept.")
    ignored: int = Field(0, ge=0, description="Ratings that name no rater, trial or stimulus of the plan.")

    def write(self, out_dir: Path) -> Path:
        return atomic_write(screening_path(out_dir), self.model_dump_json(indent=1))

    @classmethod
    def read(cls, out_dir: Path) -> Screening | None:
        """``OUT/listening/screening.json``; None where there is none.

        Raises:
            UnreadableScores: the file is there but not a screening.
        """
        path = screening_path(out_dir)
        if not path.is_file():
            return None
        try:
            return cls.model_validate_json(_bounded_bytes(path))
        except ValidationError as error:
            raise UnreadableScores(f"{path}: not a screening ({_first_error(error)}); write it again with "
                                   f"`grade listen results {out_dir}`") from None


@dataclass(frozen=True)
class Scoring:
    """A test's scores (one per row of ``listening.csv``) and its screening (None: a ``listening.csv`` read back
    without its ``screening.json``)."""

    scores: list[Score]
    screening: Screening | None

    def summary(self) -> str:
        """What was screened and scored, in a few lines for the terminal."""
        lines = []
        if self.screening is not None:
            s = self.screening
            lines.append(f"{KIND_WORDS[s.kind]}: {s.raters} raters, {s.rated} rated, {len(s.excluded)} left out"
                         + (":" if s.excluded else ""))
            lines += [f"  {exclusion.rater}: {exclusion.reason}" for exclusion in s.excluded]
            lines.append(f"{s.ratings} ratings of the {s.rated - len(s.excluded)} raters kept are scored"
                         + (f"; {s.ignored} ratings of no trial of this test ignored" if s.ignored else ""))
        submissions = [row for row in self.scores if row.system is None]
        unrated = sum(row.score is None for row in submissions)
        lines.append(f"{len(submissions)} submissions scored" + (f", {unrated} without a rating kept" if unrated
                                                                   else ""))
        lines += [f"  {SYSTEM_WORDS[row.system]}: {row.interval()}" for row in self.scores if row.system is not None]
        return "\n".join(lines)


def scores_path(out_dir: Path) -> Path:
    """``OUT/listening.csv``."""
    return Path(out_dir) / CSV_NAME


def screening_path(out_dir: Path) -> Path:
    """``OUT/listening/screening.json``."""
    return Path(out_dir) / FOLDER / SCREENING_NAME


# --------------------------------------------------------------------------- screening and scores

def screen(plan: Plan, ratings: list[Rating]) -> dict[str, str]:
    """The raters to leave out, by token, each with why in words and numbers (see the module's notes); ``ratings``
    are of ``plan`` (:func:`score` leaves out those that are not)."""
    given = {(rating.rater, rating.trial, rating.stimulus): rating.score for rating in ratings}
    trials_of: dict[str, set[str]] = {}
    for rating in ratings:
        trials_of.setdefault(rating.rater, set()).add(rating.trial)
    reasons = {}
    for token, trials in trials_of.items():
        submitted = [plan.trials[trial] for trial in sorted(trials)]
        why = [reason for reason in (_hidden_reference_reason(plan, token, submitted, given),
                                     _trap_reason(token, submitted, given)) if reason]
        if why:
            reasons[token] = "; ".join(why)
    return reasons


def _hidden_reference_reason(plan: Plan, token: str, submitted: list[Trial],
                             given: dict[tuple[str, str, str], float]) -> str:
    """BS.1534-3's reason to leave the rater ``token`` out ('' when there is none)."""
    mushra = [trial for trial in submitted if trial.kind == "mushra"]
    low = [trial for trial in mushra for key in trial.stimuli if plan.stimuli[key].system == "hidden_reference"
           and given.get((token, trial.id, key), HIDDEN_REFERENCE_FLOOR) < HIDDEN_REFERENCE_FLOOR]
    if 100 * len(low) <= HIDDEN_REFERENCE_PERCENT * len(mushra):
        return ""
    return (f"rated the hidden reference below {HIDDEN_REFERENCE_FLOOR} in {len(low)} of {len(mushra)} MUSHRA "
            f"trials ({len(low) / len(mushra):.0%}, more than {HIDDEN_REFERENCE_PERCENT}%)")


def _trap_reason(token: str, submitted: list[Trial], given: dict[tuple[str, str, str], float]) -> str:
    """P.808's reason to leave the rater ``token`` out ('' when there is none)."""
    traps = [trial for trial in submitted if trial.trap_answer is not None]
    wrong = [(trial, given[(token, trial.id, trial.stimuli[0])]) for trial in traps
             if given[(token, trial.id, trial.stimuli[0])] != trial.trap_answer]
    if not wrong:
        return ""
    trial, answer = wrong[0]
    return (f"answered {len(wrong)} of {len(traps)} trapping items otherwise than asked (trial {trial.id}: asked "
            f"for {trial.trap_answer}, answered {answer:g})")


def score(plan: Plan, ratings: list[Rating]) -> Scoring:
    """Screen ``plan``'s raters and score its submissions and systems from ``ratings`` (see the module's notes).

    A rating that names no rater, trial or stimulus of ``plan`` is left out and counted (``Screening.ignored``).
    Rows: every submission of the plan, by id, then :data:`SCORED_SYSTEMS` of its kind.
    """
    raters = {rater.token: rater for rater in plan.raters}
    known = [rating for rating in ratings if rating.rater in raters and rating.trial in plan.trials
             and rating.stimulus in plan.trials[rating.trial].stimuli]
    left_out = screen(plan, known)
    kept = [rating for rating in known if rating.rater not in left_out]
    values: dict[str, list[float]] = {}
    for rating in kept:
        stimulus = plan.stimuli[rating.stimulus]
        if stimulus.system == "submission":
            values.setdefault(stimulus.submission, []).append(rating.score)
        elif stimulus.system in SCORED_SYSTEMS[plan.kind]:
            values.setdefault(SYSTEM_PREFIX + stimulus.system, []).append(rating.score)
    submissions = sorted({s.submission for s in plan.stimuli.values() if s.system == "submission"})
    names = [*submissions, *(SYSTEM_PREFIX + system for system in SCORED_SYSTEMS[plan.kind])]
    screening = Screening(kind=plan.kind, raters=len(plan.raters), rated=len({r.rater for r in known}),
                          excluded=[Exclusion(rater=raters[token].label, reason=reason)
                                    for token, reason in sorted(left_out.items(), key=lambda kv: raters[kv[0]].label)],
                          ratings=len(kept), ignored=len(ratings) - len(known))
    return Scoring([summarised(name, plan.kind, values.get(name, [])) for name in names], screening)


def summarised(name: str, kind: Kind, values: list[float]) -> Score:
    """``values`` (ratings of ``name``) as a :class:`Score`: the mean, Student's t 95% interval (cut to the kind's
    scale: no listener can rate beyond it), their number."""
    from scipy.stats import t

    if not values:
        return Score(submission=name, kind=kind, score=None, ci_low=None, ci_high=None, ratings=0)
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Score(submission=name, kind=kind, score=mean, ci_low=None, ci_high=None, ratings=1)
    half = float(t.ppf((1 + CONFIDENCE) / 2, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    low, high = SCALES[kind]
    return Score(submission=name, kind=kind, score=mean, ci_low=max(low, mean - half), ci_high=min(high, mean + half),
                 ratings=len(values))


def score_test(out_dir: Path) -> Scoring:
    """Screen and score the listening test of ``out_dir`` (its plan, the ratings kept so far) and write
    ``OUT/listening.csv`` and ``OUT/listening/screening.json``.

    Raises:
        FileNotFoundError: ``out_dir`` has no listening test (it names ``grade listen make``).
    """
    plan = Plan.read(out_dir)
    database = database_path(out_dir)
    ratings = []
    if database.is_file():
        with RatingStore(database) as store:
            ratings = store.ratings()
    scoring = score(plan, ratings)
    write_csv(out_dir, scoring.scores)
    scoring.screening.write(out_dir)
    return scoring


# --------------------------------------------------------------------------- listening.csv

def write_csv(out_dir: Path, scores: list[Score]) -> Path:
    """Write ``scores`` as ``OUT/listening.csv`` (atomically; see the module's notes); return its path."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in scores:
        writer.writerow([row.submission, row.kind, *(_cell(v) for v in (row.score, row.ci_low, row.ci_high)),
                         row.ratings])
    return atomic_write(scores_path(out_dir), text.getvalue())


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def read_scores(out_dir: Path) -> list[Score] | None:
    """The rows of ``OUT/listening.csv``, as written; None where there is none.

    Raises:
        UnreadableScores: larger than :data:`MAX_CSV_BYTES`, not UTF-8, another header, a row that is not a
            :class:`Score` or a second row of one submission; the message names the line.
    """
    path = scores_path(out_dir)
    if not path.is_file():
        return None
    again = f"write it again with `grade listen results {out_dir}`"
    try:
        text = _bounded_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableScores(f"{path}: not UTF-8 text; {again}") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise UnreadableScores(f"{path}:1: the header is not {','.join(COLUMNS)}; {again}")
    scores, seen = [], set()
    for line, row in enumerate(rows[1:], 2):
        if len(row) != len(COLUMNS):
            raise UnreadableScores(f"{path}:{line}: {len(row)} cells, not {len(COLUMNS)}; {again}")
        try:
            row_score = Score.model_validate({column: cell or None for column, cell in zip(COLUMNS, row)})
        except ValidationError as error:
            raise UnreadableScores(f"{path}:{line}: {_first_error(error)}; {again}") from None
        if (row_score.submission, row_score.kind) in seen:
            raise UnreadableScores(f"{path}:{line}: a second row of {row_score.submission}; {again}")
        seen.add((row_score.submission, row_score.kind))
        scores.append(row_score)
    return scores


def read_scoring(out_dir: Path) -> Scoring | None:
    """``OUT/listening.csv`` and ``OUT/listening/screening.json`` read back (:func:`read_scores`,
    :meth:`Screening.read`), for the reports; None where no test was scored.

    Raises:
        UnreadableScores: either file is there but unreadable.
    """
    scores = read_scores(out_dir)
    return None if scores is None else Scoring(scores, Screening.read(out_dir))


def _bounded_bytes(path: Path) -> bytes:
    """``path``'s bytes, at most :data:`MAX_CSV_BYTES` of them.

    Raises:
        UnreadableScores: the file is larger.
    """
    with open(path, "rb") as handle:
        data = handle.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise UnreadableScores(f"{path}: larger than {MAX_CSV_BYTES} bytes: not a file `grade listen results` "
                               "wrote")
    return data


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}"
