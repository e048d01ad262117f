"""Making a listening test of a graded class (``grade listen make``): its stimuli, its trials and who rates which,
written to ``OUT/listening/`` (the layout is :mod:`grader.listening.model`'s).

Rated are the submissions graded (status ``graded`` in ``OUT/results/*.json``). A *rating* is one rater rating one
of a submission's stimuli; each submission gets at least the rubric's ``[listening] ratings_per_submission`` (R).

- MUSHRA: a trial is one held-out clip with its open reference, hidden reference, 3.5 kHz anchor, the reference
  solution's and Griffin-Lim's reconstructions and up to ``[listening] submissions_per_trial`` (K) students' outputs
  of that clip. Trials come in rounds: in each, every submission joins one trial, on the clip of its own it has been
  played least, so that its R trials spread over its clips. Each trial is rated by one rater: of those with less
  than their fair share of trials, the one who has heard its submissions (and clip) least. Every trial has stimulus
  keys of its own, so that no rater can match a file of one screen with one of another.
- MOS: a trial is one clip: a submission's valid handed-in sample (R ratings spread over its samples, each sample
  rated by different raters), a natural recording of the data set's public clips, or a P.808 trapping item. A rater
  gets one trap and one natural clip for every :data:`SAMPLES_PER_CHECK` samples (at least one of each): about one
  trial in ten is a trap.

Raters are "rater 1".."rater N" (the fewest that fit ``per_rater`` trials each, unless told how many), or in peer
mode the class's students, who never rate a trial holding audio of their own (any attempt). Peer mode waits for
the rubric's ``[term] due``: its students hear each other's work, and in MUSHRA the held-out clips themselves.

Blindness: stimulus keys and rater tokens are random (:mod:`secrets`), trial ids are numbered after shuffling, each
rater's screens and each screen's stimuli are in an order of their own. Nothing served says which system or
submission a stimulus is; only ``plan.json`` does.

What the instructor should know (results that could not be read, submissions left unrated, the held-out set
disclosed to students) is logged as warnings on this module's logger.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from grader.heldout import HeldoutError, HeldoutSet, load_heldout
from grader.identity import ATTEMPT_MARK, attempt_of
from grader.listening.model import (DATABASE_NAME, FOLDER, SCALES, STIMULI_FOLDER, Assignment, Kind, Plan, Rater,
                                    Stimulus, System, Trial)
from grader.listening.stimuli import (ACR_LABELS, StimulusError, low_pass_anchor, match_loudness, read_audio,
                                      trapping_item, write_stimulus)
from grader.report import ReportError, read_results
from grader.results import SubmissionResult
from grader.rubric import Listening, Rubric
from reference.files import atomic_write
from reference.preprocess import AudioLoadError

log = logging.getLogger(__name__)

DEFAULT_PER_RATER: dict[Kind, int] = {"mushra": 12, "mos": 40}
"""Most trials one rater gets, unless told: 12 MUSHRA screens of about nine 3-second conditions are some 25 minutes
of listening (BS.1534-3 warns against much longer sessions); 40 clips rated 1 to 5 are about 10 minutes."""
SAMPLES_PER_CHECK = 8
"""MOS: a rater gets one trapping item and one natural clip per this many samples (at least one of each)."""
NATURAL_CLIPS = 6
"""MOS: public clips played as natural recordings (more where a rater needs more)."""
LINKS_NAME = "links.csv"
"""In ``OUT/listening/``: each rater's label and personal link (:func:`write_links`), for the instructor."""


class PlanError(ValueError):
    """No listening test can be made as asked; the message says why and what to do."""


def make_plan(out_dir: Path, rubric: Rubric, *, kind: Kind = "mushra", raters: int | None = None,
              per_rater: int | None = None, peers: bool = False, closes: datetime | None = None,
              now: datetime | None = None, seed: int | None = None, heldout: HeldoutSet | None = None,
              replace: bool = False) -> Plan:
    """Make the listening test of the class graded into ``out_dir`` and write it: ``OUT/listening/plan.json`` and
    its stimuli ``OUT/listening/stimuli/<key>.wav`` (see the module's notes).

    Args:
        out_dir: the output folder the class was graded into (``OUT/results/*.json``, ``OUT/media/``).
        rubric: gives ``[listening]`` (ratings per submission, submissions per MUSHRA trial) and ``[term] due``.
        kind: ``mushra`` (held-out clips' reconstructions) or ``mos`` (handed-in samples).
        raters: how many raters (not in peer mode); None: the fewest that fit ``per_rater``.
        per_rater: most trials a rater gets; None: :data:`DEFAULT_PER_RATER`.
        peers: the raters are the class's students (one each), never given their own audio.
        closes: when ratings stop being taken (with a UTC offset); None: never.
        now: the time of making (with a UTC offset); None: the clock's.
        seed: seeds the design and every order; None: random. Keys and tokens are always random.
        heldout: the held-out set the class was graded on; its public clips (training and test, never the
            held-out ones) are MOS's natural recordings. None: the embedded data set's (:func:`load_heldout`).
        replace: make a new test even where the old one has ratings; they are moved aside, not deleted.

    Raises:
        PlanError: the options, the class or the data set cannot give a test; the message says what to do.
    """
    out_dir = Path(out_dir)
    now = now or datetime.now(timezone.utc)
    _check_options(kind, raters, per_rater, peers, closes, now)
    per_rater = DEFAULT_PER_RATER[kind] if per_rater is None else per_rater
    folder = out_dir / FOLDER
    database = folder / DATABASE_NAME
    if database.exists() and not replace:
        raise PlanError(f"{database}: the listening test there already has ratings; a new plan would orphan them. "
                        f"Score them first (`grade listen results {out_dir}`); to start over anyway, replace the test "
                        f"(`grade listen make {out_dir} --replace`: the ratings are moved aside).")
    graded = _graded(out_dir)
    if peers:
        _check_peer_mode(rubric, now, kind)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".stimuli-", dir=folder))
    try:
        files = _StimulusFiles(staging)
        seats = _peer_raters(graded) if peers else None
        if kind == "mushra":
            design = _mushra(out_dir, graded, rubric.listening, files, seats, raters, per_rater, rng)
        else:
            design = _mos(out_dir, graded, rubric.listening, files, seats, raters, per_rater, rng, heldout)
        plan = Plan(kind=kind, created=now.isoformat(timespec="seconds"),
                    closes=closes.isoformat(timespec="seconds") if closes else None, peers=peers,
                    ratings_per_submission=rubric.listening.ratings_per_submission, secret=secrets.token_hex(32),
                    stimuli=files.stimuli, **_blind(kind, design, rng))
        _install(staging, folder, now)
        plan.write(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return plan


def write_links(plan: Plan, out_dir: Path, base_url: str) -> Path:
    """Write ``OUT/listening/links.csv`` (columns ``rater,link``): each rater's label and personal link
    ``{base_url}/t/{token}/``, for the instructor to send out; returns its path.

    Args:
        base_url: where ``grade listen serve`` is reached, e.g. ``https://listen.example.edu:8000``; a trailing
            ``/`` is dropped.

    Raises:
        PlanError: ``base_url`` is not an http(s) address.
    """
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", base_url):
        raise PlanError(f"{base_url!r} is not a web address; give the server's, e.g. https://listen.example.edu:8000")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["rater", "link"])
    writer.writerows([rater.label, f"{base_url.rstrip('/')}/t/{rater.token}/"] for rater in plan.raters)
    return atomic_write(Path(out_dir) / FOLDER / LINKS_NAME, text.getvalue())


# --------------------------------------------------------------------------- checks

def _check_options(kind: str, raters: int | None, per_rater: int | None, peers: bool, closes: datetime | None,
                   now: datetime) -> None:
    if kind not in SCALES:
        raise PlanError(f"{kind!r} is not a kind of listening test; choose one of {', '.join(SCALES)}")
    if raters is not None and peers:
        raise PlanError("peer mode's raters are the class's students, one each: leave out the number of raters")
    for name, value in (("raters", raters), ("trials per rater", per_rater)):
        if value is not None and value < 1:
            raise PlanError(f"{name} must be at least 1, not {value}")
    for name, when in (("now", now), ("closes", closes)):
        if when is not None and when.tzinfo is None:
            raise PlanError(f"{name} ({when.isoformat()}) has no UTC offset: give it as e.g. 2026-12-04T23:59:00-05:00")
    if closes is not None and closes <= now:
        raise PlanError(f"the test would close ({closes.isoformat()}) before it is made ({now.isoformat()}): give a "
                        f"later closing time")


def _graded(out_dir: Path) -> list[SubmissionResult]:
    """The results of ``out_dir`` graded, by submission id; results that could not be read are logged."""
    try:
        results, problems = read_results(out_dir)
    except ReportError as error:
        raise PlanError(str(error)) from None
    for problem in problems:
        log.warning("%s: left out of the listening test", problem)
    graded = [result for result in results if result.status == "graded"]
    if not graded:
        raise PlanError(f"{out_dir}: no graded submission to listen to ({len(results)} result(s), none graded); "
                        f"grade the class first (`grade SUBMISSION... --out {out_dir}`)")
    return graded


def _check_peer_mode(rubric: Rubric, now: datetime, kind: Kind) -> None:
    """Refuse peer mode without a due date or before it; warn that MUSHRA's plays the held-out clips to students."""
    due = rubric.term.due
    if due is None:
        raise PlanError("peer mode plays students' work (and in MUSHRA the held-out clips) to the class, so it "
                        "waits for the due date, and the rubric has none: set `[term] due` in the rubric, e.g. "
                        "due = \"2026-12-04T23:59:00-05:00\"")
    if now < due:
        raise PlanError(f"peer mode plays students' work (and in MUSHRA the held-out clips) to the class: it is "
                        f"refused before the due date {due.isoformat()}. Make it after then, or have raters of "
                        f"your own (give a number of raters instead).")
    if kind == "mushra":
        log.warning("peer mode plays the held-out clips to every student: the held-out set is disclosed to the "
                    "class; grade later assignments on other clips")


# --------------------------------------------------------------------------- the design, before it is made blind

@dataclass
class _Draft:
    """A trial before its id: its stimulus keys, MUSHRA's open reference, a trap's answer."""

    stimuli: list[str]
    reference: str | None = None
    trap_answer: int | None = None


@dataclass
class _Rater:
    """A rater while trials are shared out: draft indices, and what they have heard."""

    label: str
    submission: str | None = None
    own: frozenset[str] = frozenset()
    """Submission ids never played to them (peer mode: every attempt of their own)."""
    drafts: list[int] = field(default_factory=list)
    heard: Counter = field(default_factory=Counter)
    """Submission ids, by times heard."""
    clips: Counter = field(default_factory=Counter)
    """MUSHRA: held-out clip names, by times heard."""

    def may_hear(self, submissions: frozenset[str]) -> bool:
        return not (self.own & submissions)


@dataclass
class _Design:
    """Trials and raters, each rater's trials by index into ``drafts``."""

    drafts: list[_Draft]
    raters: list[_Rater]


def _blind(kind: Kind, design: _Design, rng: np.random.Generator) -> dict:
    """The plan's ``trials`` and ``raters`` from ``design``: trial ids numbered in a random order, every rater's
    trials and every trial's stimuli shuffled for that rater, a random token each."""
    ids = {index: f"t{number:03d}" for number, index in enumerate(rng.permutation(len(design.drafts)), start=1)}
    trials = {ids[index]: Trial(id=ids[index], kind=kind, reference=draft.reference,
                                stimuli=draft.stimuli, trap_answer=draft.trap_answer)
              for index, draft in sorted(enumerate(design.drafts), key=lambda pair: ids[pair[0]])}
    raters = [Rater(token=secrets.token_urlsafe(16), label=rater.label, submission=rater.submission,
                    assignments=[Assignment(trial=ids[index], order=_shuffled(design.drafts[index].stimuli, rng))
                                 for index in _shuffled(rater.drafts, rng)])
              for rater in design.raters]
    return {"trials": trials, "raters": raters}


def _shuffled(items: list, rng: np.random.Generator) -> list:
    return [items[i] for i in rng.permutation(len(items))]


def _peer_raters(graded: list[SubmissionResult]) -> list[_Rater]:
    """One rater per student of the class: labelled by the student's submission id, their submission their first
    attempt graded, never played any attempt of theirs."""
    attempts: dict[str, set[str]] = {}
    for result in graded:
        sid = result.submission_id
        student = sid.rpartition(ATTEMPT_MARK)[0] if attempt_of(sid) > 1 else sid
        attempts.setdefault(student, set()).add(sid)
    return [_Rater(student, min(ids, key=attempt_of), frozenset(ids)) for student, ids in sorted(attempts.items())]


def _numbered_raters(count: int) -> list[_Rater]:
    return [_Rater(f"rater {number}") for number in range(1, count + 1)]


def _audio_file(out_dir: Path, relative: str | None) -> Path | None:
    """The audio file at ``relative`` (a path a result names) inside ``out_dir``, if it is there and plays."""
    if not relative:
        return None
    path = (out_dir / relative).resolve()
    return path if path.is_relative_to(out_dir.resolve()) and _plays(path) else None


def _plays(path: Path) -> bool:
    try:
        read_audio(path)
    except AudioLoadError:
        return False
    return True


class _StimulusFiles:
    """Stimulus files written to ``folder``, each under a fresh random key; audio already written under another
    key is linked (or copied), not made again."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.stimuli: dict[str, Stimulus] = {}
        self._written: dict[Hashable, tuple[Path, float]] = {}

    def add(self, audio: Hashable, make: Callable[[], np.ndarray], system: System, source: str,
            submission: str | None = None) -> str:
        """A new stimulus of ``system`` playing ``audio`` (an id of what ``make`` returns, a wav (samples,) at
        16 kHz, loudness-matched); returns its key."""
        key = secrets.token_hex(8)
        path = self.folder / f"{key}.wav"
        if audio in self._written:
            first, seconds = self._written[audio]
            try:
                os.link(first, path)
            except OSError:  # a file system without hard links
                shutil.copyfile(first, path)
        else:
            seconds = write_stimulus(path, make())
            self._written[audio] = (path, seconds)
        self.stimuli[key] = Stimulus(key=key, system=system, submission=submission, source=source, seconds=seconds)
        return key


def _install(staging: Path, folder: Path, now: datetime) -> None:
    """Make ``staging`` the test's stimuli folder; move an earlier test's ratings aside and drop its links."""
    database = folder / DATABASE_NAME
    if database.exists():
        stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for companion in (database, *(database.with_name(database.name + end) for end in ("-wal", "-shm"))):
            if companion.exists():
                companion.rename(folder / companion.name.replace(database.stem, f"{database.stem}-replaced-{stamp}", 1))
    (folder / LINKS_NAME).unlink(missing_ok=True)
    shutil.rmtree(folder / STIMULI_FOLDER, ignore_errors=True)
    staging.rename(folder / STIMULI_FOLDER)


def _not_rated(sids: list[str], why: str) -> None:
    if sids:
        log.warning("%d graded submission(s) get no ratings: %s (%s)", len(sids), ", ".join(sids), why)


# --------------------------------------------------------------------------- MUSHRA

@dataclass(frozen=True)
class _Clip:
    """A held-out clip's files: its truth and the reference solution's and Griffin-Lim's reconstructions."""

    name: str
    truth: Path
    reference: Path | None
    griffin_lim: Path | None


def _mushra(out_dir: Path, graded: list[SubmissionResult], listening: Listening, files: _StimulusFiles,
            seats: list[_Rater] | None, raters: int | None, per_rater: int, rng: np.random.Generator) -> _Design:
    """The MUSHRA trials of the class and who rates which (see the module's notes); ``seats``: the peer raters."""
    clips = _held_out_clips(out_dir, graded)
    outputs = {result.submission_id: {clip.name: path for clip in result.listen if clip.name in clips
                                      if (path := _audio_file(out_dir, clip.student))}
               for result in graded}
    _not_rated([sid for sid, found in outputs.items() if not found], "no output of a held-out clip that plays")
    outputs = {sid: found for sid, found in outputs.items() if found}
    if not outputs:
        raise PlanError(f"{out_dir}: no graded submission has an output of a held-out clip that plays; a MUSHRA test "
                        f"needs them (a MOS test of the handed-in samples may still be made: --kind mos)")
    wanted, size = listening.ratings_per_submission, listening.submissions_per_trial
    if seats is not None:
        if len(seats) < 2:
            raise PlanError("peer mode needs at least two students: the class has one")
        size = min(size, len(seats) - 1)  # someone outside every trial to rate it
    per_round = math.ceil(len(outputs) / size)
    least = per_round * wanted
    count = len(seats) if seats is not None else raters or math.ceil(least / per_rater)
    if least > count * per_rater:
        who = f"the class's {count} students" if seats is not None else f"{count} rater(s)"
        fix = f"allow {math.ceil(least / count)} trials per rater" if seats is not None else (
            f"give {math.ceil(least / per_rater)} raters, or allow {math.ceil(least / count)} trials per rater")
        raise PlanError(f"{who} of at most {per_rater} trials each can rate {count * per_rater} MUSHRA trials, but "
                        f"{len(outputs)} submissions with {wanted} ratings each, at most {size} in a trial, need "
                        f"{least}: {fix}")
    rounds = max(wanted, min(math.ceil(count / per_round), count * per_rater // per_round))  # a trial for everyone
    groups = _mushra_groups({sid: sorted(found) for sid, found in outputs.items()}, rounds, size, rng)
    design = _Design([], seats if seats is not None else _numbered_raters(count))
    _spread(groups, design.raters, per_rater, rng)
    design.drafts = [_mushra_trial(clips[clip], members, outputs, files) for clip, members in groups]
    return design


def _held_out_clips(out_dir: Path, graded: list[SubmissionResult]) -> dict[str, _Clip]:
    """Every held-out clip the results play whose truth plays, by name, with the first of its other files that
    plays; clips without a truth are logged and left out."""
    found: dict[str, dict[str, Path | None]] = {}
    for result in graded:
        for clip in result.listen:
            files = found.setdefault(clip.name, {"truth": None, "reference": None, "griffin_lim": None})
            for part in files:
                files[part] = files[part] or _audio_file(out_dir, getattr(clip, part))
    missing = sorted(name for name, files in found.items() if files["truth"] is None)
    if missing:
        log.warning("held-out clip(s) %s left out of the listening test: no result holds their audio",
                    ", ".join(missing))
    return {name: _Clip(name, **files) for name, files in sorted(found.items()) if files["truth"] is not None}


def _mushra_groups(outputs: dict[str, list[str]], rounds: int, size: int,
                   rng: np.random.Generator) -> list[tuple[str, list[str]]]:
    """The (clip, submission ids) of every MUSHRA trial: in each of ``rounds`` rounds every submission of
    ``outputs`` (id -> clips it has an output of) joins one trial of at most ``size``, on a clip of its own it has
    been played least; submissions with the fewest clips choose first, and share trials where they can."""
    heard = {sid: Counter() for sid in outputs}
    groups: list[tuple[str, list[str]]] = []
    for _ in range(rounds):
        order = sorted(_shuffled(sorted(outputs), rng), key=lambda sid: len(outputs[sid]))
        count = math.ceil(len(order) / size)
        capacity = math.ceil(len(order) / count)
        this_round: list[tuple[str, list[str]]] = []
        for sid in order:
            fits = [group for group in this_round if group[0] in outputs[sid] and len(group[1]) < capacity]
            if len(this_round) < count or not fits:
                played = Counter(clip for clip, _ in this_round)
                clip = min(outputs[sid], key=lambda c: (heard[sid][c], played[c], rng.random()))
                this_round.append((clip, [sid]))
            else:
                clip, members = min(fits, key=lambda group: (heard[sid][group[0]], len(group[1]), rng.random()))
                members.append(sid)
            heard[sid][clip] += 1
        groups += this_round
    return groups


def _spread(groups: list[tuple[str, list[str]]], raters: list[_Rater], per_rater: int,
            rng: np.random.Generator) -> None:
    """Give each MUSHRA trial (``groups``' index, clip and submissions) to one of ``raters`` (:func:`_choose`)."""
    fair = math.ceil(len(groups) / len(raters))
    for index, (clip, members) in enumerate(groups):  # round by round: each round's choices know the last's
        chosen = _choose(raters, frozenset(members), 1, fair, per_rater, rng, clip)
        if not chosen:
            raise PlanError(f"the {len(groups)} MUSHRA trials could not be shared out among {len(raters)} raters of "
                            f"at most {per_rater} trials each without playing a student their own work: allow more "
                            f"trials per rater")
        chosen[0].drafts.append(index)
        chosen[0].heard.update(members)
        chosen[0].clips[clip] += 1


def _choose(raters: list[_Rater], submissions: frozenset[str], times: int, fair: int, most: int,
            rng: np.random.Generator, clip: str | None = None) -> list[_Rater]:
    """``times`` different ``raters`` who may hear ``submissions`` (fewer where fewer may): first among those with
    fewer than ``fair`` trials, so that loads stay even, the ones who have heard these submissions (and ``clip``)
    least; then, where too few are left, the least loaded of those under ``most``."""
    def spread(rater: _Rater) -> tuple:
        return sum(rater.heard[sid] for sid in submissions), rater.clips[clip], len(rater.drafts), rng.random()

    allowed = [rater for rater in raters if rater.may_hear(submissions) and len(rater.drafts) < most]
    chosen = sorted((rater for rater in allowed if len(rater.drafts) < fair), key=spread)[:times]
    rest = [rater for rater in allowed if rater not in chosen]
    return chosen + sorted(rest, key=lambda rater: (len(rater.drafts), *spread(rater)))[:times - len(chosen)]


def _mushra_trial(clip: _Clip, members: list[str], outputs: dict[str, dict[str, Path]],
                  files: _StimulusFiles) -> _Draft:
    """A MUSHRA trial of ``clip`` with the outputs of ``members``, every stimulus under a key of its own."""
    def matched(path: Path) -> Callable[[], np.ndarray]:
        return lambda: match_loudness(read_audio(path))

    reference = files.add(clip.truth, matched(clip.truth), "open_reference", clip.name)
    rated = [files.add(clip.truth, matched(clip.truth), "hidden_reference", clip.name),
             files.add(("anchor", clip.truth), lambda: match_loudness(low_pass_anchor(read_audio(clip.truth))),
                       "anchor", clip.name)]
    for system, path in (("reference", clip.reference), ("griffin_lim", clip.griffin_lim)):
        if path is not None:
            rated.append(files.add(path, matched(path), system, clip.name))
    for sid in members:
        path = outputs[sid][clip.name]
        rated.append(files.add(path, matched(path), "submission", clip.name, submission=sid))
    return _Draft(rated, reference=reference)


# --------------------------------------------------------------------------- MOS

def _checks(samples: int) -> int:
    """Trapping items (and natural clips) a MOS rater of ``samples`` submissions' samples gets."""
    return max(1, math.ceil(samples / SAMPLES_PER_CHECK))


def _sample_room(per_rater: int) -> int:
    """Most samples a MOS rater of at most ``per_rater`` trials rates beside their traps and natural clips (0: none);
    ``s + 2 * _checks(s)`` lies between 1.25 s and 1.25 s + 2, so the answer is among the first few tried."""
    return next(s for s in range(int(per_rater / 1.25), -1, -1) if s == 0 or s + 2 * _checks(s) <= per_rater)


def _mos(out_dir: Path, graded: list[SubmissionResult], listening: Listening, files: _StimulusFiles,
         seats: list[_Rater] | None, raters: int | None, per_rater: int, rng: np.random.Generator,
         heldout: HeldoutSet | None) -> _Design:
    """The MOS trials of the class and who rates which (see the module's notes); ``seats``: the peer raters."""
    samples = {result.submission_id: [(sample.name, path) for sample in result.samples if sample.valid
                                      if (path := _audio_file(out_dir, sample.audio))]
               for result in graded}
    _not_rated([sid for sid, found in samples.items() if not found], "no valid handed-in sample that plays")
    samples = {sid: found for sid, found in samples.items() if found}
    if not samples:
        raise PlanError(f"{out_dir}: no graded submission handed in a valid sample that plays; a MOS test needs them "
                        f"(a MUSHRA test of the held-out clips' reconstructions may still be made: --kind mushra)")
    wanted, room = listening.ratings_per_submission, _sample_room(per_rater)
    if room < 1:
        raise PlanError(f"a MOS rater's {per_rater} trial(s) leave no room for a sample beside an attention check "
                        f"and a natural clip: allow at least 3 trials per rater")
    needs = []  # (submission id, sample name, path, how many raters rate it)
    for sid, found in samples.items():
        for position, (name, path) in enumerate(_shuffled(found, rng)):
            if times := wanted // len(found) + (position < wanted % len(found)):
                needs.append((sid, name, path, times))
    ratings = len(samples) * wanted
    fewest = min(samples, key=lambda sid: len(samples[sid]))
    distinct = math.ceil(wanted / len(samples[fewest]))
    count = len(seats) if seats is not None else raters or max(math.ceil(ratings / room), distinct)
    _check_mos_raters(count, per_rater, room, seats is not None, ratings, len(samples), wanted,
                      (fewest, len(samples[fewest]), distinct))
    design = _Design([], seats if seats is not None else _numbered_raters(count))
    fair = math.ceil(ratings / count)
    for sid, name, path, times in sorted(_shuffled(needs, rng), key=lambda need: -need[3]):
        chosen = _choose(design.raters, frozenset([sid]), times, fair, room, rng)
        if len(chosen) < times:
            raise PlanError(f"the class's samples could not be shared out among {count} raters of at most "
                            f"{per_rater} trials each: allow more trials per rater")
        for rater in chosen:
            rater.drafts.append(len(design.drafts))
            rater.heard[sid] += 1
        key = files.add(path, lambda path=path: match_loudness(read_audio(path)), "submission", name, submission=sid)
        design.drafts.append(_Draft([key]))
    _add_checks(design, files, _public_clips(heldout), rng)
    return design


def _check_mos_raters(count: int, per_rater: int, room: int, peers: bool, ratings: int, submissions: int,
                      wanted: int, fewest: tuple[str, int, int]) -> None:
    """Refuse ``count`` MOS raters of ``per_rater`` trials that cannot give the submission with fewest samples
    (``fewest``: its id, samples and the different raters its ratings need) its raters, or ``submissions`` their
    ``wanted`` ratings each (``ratings`` in all); the message names the raters or trials that would do."""
    sid, samples, distinct = fewest
    if distinct > count - peers:
        others = f"{count - 1} students besides its own" if peers else f"{count} rater(s)"
        fix = ("lower [listening] ratings_per_submission in the rubric, or have raters of your own" if peers else
               f"give {distinct} raters")
        raise PlanError(f"{sid} handed in {samples} valid sample(s): its {wanted} ratings need {distinct} different "
                        f"raters (nobody rates a clip twice), but there are {others}: {fix}")
    if ratings > count * room:
        who = f"the class's {count} students" if peers else f"{count} rater(s)"
        need = math.ceil(ratings / count)
        fix = f"allow {need + 2 * _checks(need)} trials per rater"
        raise PlanError(f"{who} of at most {per_rater} trials each ({room} of them samples, beside attention checks "
                        f"and natural clips) can give {count * room} ratings, but {submissions} submissions with "
                        f"{wanted} ratings each need {ratings}: "
                        f"{fix if peers else f'give {max(math.ceil(ratings / room), distinct)} raters, or {fix}'}")


def _add_checks(design: _Design, files: _StimulusFiles, public: list[Path], rng: np.random.Generator) -> None:
    """Give every MOS rater their natural clips and trapping items (:func:`_checks` of each), made of ``public``
    clips; each natural clip and trap is played about as often as the others."""
    needed = [_checks(len(rater.drafts)) for rater in design.raters]
    traps, naturals = max(needed), min(max(NATURAL_CLIPS, max(needed)), sum(needed))
    chosen = _playable(_shuffled(public, rng), naturals + traps)
    natural_drafts, trap_drafts = [], []
    for path in chosen[:naturals]:
        key = files.add(path, lambda path=path: match_loudness(read_audio(path)), "natural", str(path))
        natural_drafts.append(len(design.drafts))
        design.drafts.append(_Draft([key]))
    for position, answer in enumerate(_shuffled([1 + n % len(ACR_LABELS) for n in range(traps)], rng)):
        path = chosen[(naturals + position) % len(chosen)]
        try:
            trap = trapping_item(read_audio(path), answer)
        except StimulusError as error:
            raise PlanError(str(error)) from None
        key = files.add(("trap", path, answer), lambda trap=trap: trap, "trap",
                        f"{path}, then a request to answer {answer} ({ACR_LABELS[answer - 1]})")
        trap_drafts.append(len(design.drafts))
        design.drafts.append(_Draft([key], trap_answer=answer))
    start = 0
    for rater, count in zip(design.raters, needed):
        rater.drafts += [natural_drafts[(start + n) % len(natural_drafts)]
                         for n in range(min(count, len(natural_drafts)))]
        rater.drafts += [trap_drafts[(start + n) % len(trap_drafts)] for n in range(count)]
        start += count


def _public_clips(heldout: HeldoutSet | None) -> list[Path]:
    """The audio files of the held-out set's public clips: its training clips and probes, never the held-out ones."""
    try:
        heldout = heldout or load_heldout()
    except HeldoutError as error:
        raise PlanError(f"a MOS test plays natural clips of the data set, which cannot be read: {error}") from None
    secret = {clip.path for clip in heldout.clips}
    return list(dict.fromkeys(clip.path for clip in (*heldout.training, *heldout.probes) if clip.path not in secret))


def _playable(paths: list[Path], count: int) -> list[Path]:
    """The first ``count`` of ``paths`` that play (fewer where fewer do, at least one)."""
    found = []
    for path in paths:
        if len(found) == count:
            break
        if _plays(path):
            found.append(path)
    if not found:
        raise PlanError(f"none of the data set's {len(paths)} public clips (training and test) plays; a MOS test "
                        f"plays some as natural recordings: check the data set (`make data` builds the embedded one)")
    return found
