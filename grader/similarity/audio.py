"""The same clip in two submissions of a class: audio fingerprints, and the submission pairs they reveal.

Each clip a submission's grading played is reduced once to a :class:`ClipFingerprint` (the
project's novelty embedding, :func:`reference.evaluation_unpaired.clip_embedding`, and a short
low-rate copy of the waveform), so that comparing a class never reads the audio again.
:func:`find_audio_pairs` then looks, for every clip, at its :data:`NEIGHBOURS` nearest clips of
*other* submissions by embedding, and checks each such candidate pair on the waveforms with
:func:`reference.evaluation_unpaired.max_normalised_correlations` (robust to resampling, gain,
cutting and shifting). A pair reaching :data:`COPY_CORRELATION` is the same clip, unless:

- both clips copy one public clip (a training or test clip of the data set: ``public_index``):
  "both took <public clip>", not copying between the two;
- they are ``reconstruct`` outputs for one held-out log-mel: every student reconstructs the same
  clips, so those outputs resemble each other anyway; they count only when each is closer to the
  other than to the reference solution's and Griffin-Lim's outputs for that clip by
  :data:`RECONSTRUCT_MARGIN`.

Roles: ``handed_in`` (the samples a student handed in, ``samples/*.wav``), ``sample`` (what the
``sample`` entry generated) and ``reconstruct`` (what the ``reconstruct`` entry made of a held-out
log-mel; the clip's name is the held-out clip's). ``handed_in`` and ``sample`` clips are compared
with each other across submissions; a ``reconstruct`` clip only with other submissions' outputs for
the same held-out clip.

The grader's media folder of a submission (``OUT/media/<submission id>/``, written by
:func:`grader.outputs.copy_media`) holds ``sample-NN.wav`` (handed-in samples,
:mod:`grader.checks.samples`) and, for the first held-out clips (:mod:`grader.checks.reconstruct`),
``<name>.student.wav``, ``<name>.reference.wav``, ``<name>.griffin_lim.wav`` and ``<name>.truth.wav``;
:func:`media_fingerprints` reads it.

Not found: a copy pitch-shifted or time-stretched (the waveforms no longer align), one drowned in noise
(below some 10 dB SNR), one whose embedding moved so far that :data:`NEIGHBOURS` closer clips of other
submissions hide it (a cut that takes most of a clip), and a copy beyond the first :data:`VERIFY_SECONDS`
of a clip. Two clips of one steady tone at one pitch count as one clip; two silent clips never do.
"""
from __future__ import annotations

import base64
import hashlib
import multiprocessing
import re
from collections import defaultdict
from collections.abc import MutableMapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_args

import numpy as np

from reference import SAMPLE_RATE
from reference.data import read_manifest
from reference.evaluation_unpaired import clip_embedding, max_normalised_correlations
from reference.preprocess import load_audio, resample

Role = Literal["sample", "handed_in", "reconstruct"]
ROLES: tuple[Role, ...] = get_args(Role)

VERIFY_RATE = 4000
"""Hz of the verification signal. FSDD's takes of one digit by one speaker correlate as much at 4 kHz
(at most 0.954 over 49,000 pairs) as at 8 kHz (0.951), and a correlation costs a quarter of 8 kHz's."""
VERIFY_SECONDS = 10.0
"""The verification signal keeps the clip's first this many seconds (40,000 bytes at most)."""
LEVEL_FRAME = 256
"""Samples (64 ms at :data:`VERIFY_RATE`) of the frames whose RMS sets the verification signal's level."""
LEVEL_PERCENTILE = 75.0
"""The verification signal's level is this percentile of its frames' RMS (frames within :data:`LEVEL_FLOOR_DB`
of the loudest). Silence around a copy does not move it, nor does noise in its pauses: the median of the
frames within 30 dB of the loudest, which counts that noise as speech, lost 13 of 150 FSDD phrases' copies
with noise at 10 dB SNR. A cut can still raise the level of what is left: by at most 4 dB for 400 FSDD
phrases cut by 0.3 s, but by 11 dB for one whose first 0.3 s were its loudest: :data:`MIN_ENERGY_RATIO`
allows for that."""
LEVEL_FLOOR_DB = 60.0
"""Frames more than this many dB below the loudest (digital silence, dither) do not count for the level."""
MIN_ENERGY_RATIO = 0.01
"""``min_energy_ratio`` of :func:`max_normalised_correlations`: lags where the longer clip's window holds less
than this share of the shorter clip's energy are skipped. Its default, 0.1, suits clips at one level; a cut
that takes a clip's loud part moves the common level (:data:`LEVEL_PERCENTILE`): an FSDD phrase whose first
0.3 s were its loudest, cut by 0.3 s, moved 11 dB and scored 0.06 at 0.1. At 0.01 (20 dB) that cut scores
1.000, and the largest correlation of FSDD's 499,000 pairs of one speaker's recordings stays 0.954."""
COPY_CORRELATION = 0.98
"""Normalised cross-correlation (:func:`correlations`) from which two clips are the same clip.

Measured on 100 FSDD phrases of about 3 s: their copies score at least 0.9997 resampled to 22.05 kHz,
at gain x0.3, with 0.3 s cut from the start, all three at once, and with noise at 30 dB SNR as well
(0.9988 at gain x0.2 after 1 s of silence); white noise lowers a copy to 0.995 at 15 dB SNR, 0.985 at
10 dB, 0.976 at 8 dB. Different recordings reach 0.954: the largest of FSDD's 49,000 pairs of takes of
one digit by one speaker, the hardest negatives (99.9th percentile 0.896), and of all 499,000 pairs of
one speaker's recordings. Stricter than novelty's 0.95 (:data:`reference.evaluation_unpaired.DUPLICATE_CORRELATION`),
which two of those pairs exceed."""
RECONSTRUCT_MARGIN = 0.05
"""Correlation by which two ``reconstruct`` outputs for one held-out clip must be closer to each other
than either is to the reference solution's and Griffin-Lim's outputs for it."""
NEIGHBOURS = 8
"""Nearest clips of other submissions (by embedding) whose waveforms are compared with each clip; also the
nearest public clips a copied clip is compared with. A cut copy's embedding moves: among 1,500 FSDD phrases,
89% of cut copies were within the 3 nearest, 93% within 10; in bench/similarity.py's class of 300, a copied
tone cut by 0.3 s had 6 clips nearer than its original. Comparing a class of 300 from cold takes some 2.5 times
as long as with 3 (tens of seconds on 2 cores)."""
MU = 255.0
"""mu-law companding of the int8 verification signal (G.711's): some 35 dB SNR over 40 dB of level, where a
linear int8 code leaves the quiet parts of a clip with one loud burst a few levels."""
BLOCK_VALUES = 1 << 20
"""Distances computed at once (a (rows, clips) float32 block, 4 MB, whatever the class's size): rows are
``BLOCK_VALUES // clips``, at least one."""
PUBLIC_PREFIX = "public:"
PUBLIC_SPLITS = ("train", "test")
"""A data set's splits students have: the training clips, and the test clips the student kit ships."""

_EXPANDED = (np.sign(np.arange(-128, 128)) * np.expm1(np.abs(np.arange(-128, 128)) / 127 * np.log1p(MU)) / MU
             ).astype(np.float32)
"""The mu-law code ``c`` (-128..127) expanded to [-1, 1], at index ``c + 128``."""

_MEDIA_SAMPLE = re.compile(r"^sample-\d+\.wav$")
_MEDIA_HELDOUT = re.compile(r"^(?P<name>.+)\.(?P<source>student|reference|griffin_lim)\.wav$")


@dataclass(frozen=True, eq=False)
class ClipFingerprint:
    """What a class-level comparison keeps of one clip."""

    embedding: np.ndarray
    """(38,) float64: :func:`reference.evaluation_unpaired.clip_embedding` at the contract's 16 kHz."""
    seconds: float
    """The clip's duration as given."""
    signal: np.ndarray
    """(samples,) int8, at most :data:`VERIFY_SECONDS` x :data:`VERIFY_RATE`: the clip's start at
    :data:`VERIFY_RATE` Hz, less its mean, divided by its peak and mu-law coded (:data:`MU`)."""
    scale: float
    """The expanded signal times ``scale`` is the waveform at a common level (:data:`LEVEL_PERCENTILE` of its
    frames' RMS at 1); 0 for a silent clip."""

    @cached_property
    def key(self) -> str:
        """Names the verification signal (and its level) for a cache of correlations: equal keys, equal signals."""
        return hashlib.sha1(self.signal.tobytes() + repr(self.scale).encode()).hexdigest()

    def waveform(self) -> np.ndarray:
        """The verification signal as float32 (samples,), at the common level (see :attr:`scale`).

        A common level matters: :func:`max_normalised_correlations` skips lags where the longer clip's
        window holds too little of the shorter clip's energy (:data:`MIN_ENERGY_RATIO`), so a quieter, longer
        copy (gain x0.05 and 1 s of silence before it) scores 0 on the clips as written.
        """
        return _EXPANDED[self.signal.astype(np.int16) + 128] * np.float32(self.scale)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the embedding as 38 floats, the signal as base64 of its bytes."""
        return {"embedding": [float(x) for x in self.embedding], "seconds": self.seconds, "scale": self.scale,
                "signal": base64.b64encode(self.signal.tobytes()).decode("ascii")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClipFingerprint:
        """The inverse of :meth:`to_dict`."""
        return cls(np.asarray(data["embedding"], dtype=np.float64), float(data["seconds"]),
                   np.frombuffer(base64.b64decode(data["signal"]), dtype=np.int8), float(data["scale"]))


def clip_fingerprint(wav: np.ndarray, sr: int) -> ClipFingerprint:
    """The fingerprint of one clip.

    Args:
        wav: (samples,) float waveform, finite, at least one sample.
        sr: its rate in Hz; resampled to the contract's :data:`reference.SAMPLE_RATE` with soxr.

    Raises:
        ValueError: not a finite, non-empty one-dimensional waveform.
    """
    wave = np.asarray(wav, dtype=np.float32)
    if wave.ndim != 1 or not wave.size or not np.all(np.isfinite(wave)):
        raise ValueError(f"a fingerprint needs a finite (samples,) waveform, got shape {wave.shape}")
    at_rate = resample(wave, sr, SAMPLE_RATE)
    signal, scale = _verification_signal(at_rate[: int(VERIFY_SECONDS * SAMPLE_RATE)])
    return ClipFingerprint(clip_embedding(at_rate), len(wave) / sr, signal, scale)


def _verification_signal(wave: np.ndarray) -> tuple[np.ndarray, float]:
    """``wave`` (samples,) at 16 kHz as (int8 signal at :data:`VERIFY_RATE`, scale): see :class:`ClipFingerprint`."""
    low = resample(wave, SAMPLE_RATE, VERIFY_RATE).astype(np.float64)
    if not low.size:
        return np.zeros(0, np.int8), 0.0
    low -= low.mean()  # an offset two different clips share does not correlate them
    frames = max(1, len(low) // LEVEL_FRAME)
    rms = np.sqrt(np.mean(np.array_split(low[: max(LEVEL_FRAME, frames * LEVEL_FRAME)] ** 2, frames), axis=1))
    level = float(np.percentile(rms[rms >= rms.max() * 10 ** (-LEVEL_FLOOR_DB / 20)], LEVEL_PERCENTILE))
    peak = float(np.max(np.abs(low)))
    if level == 0.0 or peak == 0.0:
        return np.zeros(len(low), np.int8), 0.0
    unit = low / peak
    return np.round(np.sign(unit) * np.log1p(MU * np.abs(unit)) / np.log1p(MU) * 127).astype(np.int8), peak / level


def file_fingerprint(path: str | Path) -> ClipFingerprint:
    """The fingerprint of an audio file (any rate and channels, read by :func:`reference.preprocess.load_audio`).

    Raises:
        reference.preprocess.AudioLoadError: the file is no usable audio.
    """
    return clip_fingerprint(load_audio(path, SAMPLE_RATE), SAMPLE_RATE)


def correlations(clip: ClipFingerprint, others: Sequence[ClipFingerprint]) -> list[float]:
    """:func:`max_normalised_correlations` of ``clip``'s verification signal with each of ``others``', in [0, 1]
    (with :data:`MIN_ENERGY_RATIO`): about 1 for the same clip (see :data:`COPY_CORRELATION`)."""
    return max_normalised_correlations(clip.waveform(), [other.waveform() for other in others],
                                       min_energy_ratio=MIN_ENERGY_RATIO)


def public_fingerprints(data_dir: str | Path, splits: Sequence[str] = PUBLIC_SPLITS) -> dict[str, ClipFingerprint]:
    """The public index of a data set folder (``reference.data`` layout): its ``splits`` clips' fingerprints,
    by their path in the manifest (``train/<name>.wav``).

    Raises:
        reference.data.DataBuildError: the folder has no readable manifest.
        reference.preprocess.AudioLoadError: a clip is no usable audio.
    """
    folder = Path(data_dir).resolve()
    return {clip.path.relative_to(folder).as_posix(): file_fingerprint(clip.path)
            for clip in read_manifest(folder) if clip.split in splits}


@dataclass(frozen=True)
class MediaFingerprints:
    """One submission's media folder, fingerprinted."""

    clips: dict[Role, dict[str, ClipFingerprint]]
    """By role, by name: ``handed_in`` by file name (``sample-01.wav``), ``reconstruct`` by held-out clip."""
    references: dict[str, list[ClipFingerprint]]
    """By held-out clip: the reference solution's and Griffin-Lim's outputs, those the folder holds."""


def media_fingerprints(media_dir: str | Path) -> MediaFingerprints:
    """Fingerprint the clips of one submission's media folder (see the module's docstring for its names).

    ``<name>.truth.wav`` and files of other names are not read. The references are the same in every
    submission's folder (one baseline per held-out set): one folder's are enough for a class.

    Raises:
        reference.preprocess.AudioLoadError: a clip is no usable audio.
    """
    clips: dict[Role, dict[str, ClipFingerprint]] = {}
    references: dict[str, list[ClipFingerprint]] = defaultdict(list)
    for path in sorted(Path(media_dir).iterdir()):
        heldout = _MEDIA_HELDOUT.match(path.name)
        if _MEDIA_SAMPLE.match(path.name):
            clips.setdefault("handed_in", {})[path.name] = file_fingerprint(path)
        elif heldout and heldout["source"] == "student":
            clips.setdefault("reconstruct", {})[heldout["name"]] = file_fingerprint(path)
        elif heldout:
            references[heldout["name"]].append(file_fingerprint(path))
    return MediaFingerprints(clips, dict(references))


@dataclass(frozen=True)
class ClipMatch:
    """Two submissions' clips found to be the same clip."""

    clip_a: str
    role_a: Role
    clip_b: str
    role_b: Role
    correlation: float
    """Their largest normalised cross-correlation, in [0, 1]."""
    verdict: str
    """``"copied"``, or ``"public:<name>"`` where both copy the public clip ``<name>``."""
    reference_correlation: float | None = None
    """``reconstruct`` only: the largest correlation of either clip with a reference output for its held-out clip."""

    def to_dict(self) -> dict[str, Any]:
        return {"clip_a": self.clip_a, "role_a": self.role_a, "clip_b": self.clip_b, "role_b": self.role_b,
                "correlation": self.correlation, "verdict": self.verdict,
                "reference_correlation": self.reference_correlation}


@dataclass(frozen=True)
class AudioPair:
    """Two submissions sharing clips, with the evidence."""

    submission_a: str
    submission_b: str
    score: float
    """In [0, 1]: the larger, over the two submissions, of the share of its clips found ``copied`` in the
    other; a copy of a public clip does not count. Near 1 when the smaller submission is mostly the
    other's clips; a single shared clip among twenty weighs 0.05, since it can be an accident (a clip a
    study group passed round, a public clip missing from the public index), a whole hand-in cannot."""
    matches: tuple[ClipMatch, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"submission_a": self.submission_a, "submission_b": self.submission_b, "score": self.score,
                "matches": [match.to_dict() for match in self.matches]}


@dataclass(frozen=True)
class _Clip:
    submission: int
    role: Role
    name: str
    fingerprint: ClipFingerprint


def find_audio_pairs(clips_by_submission: Mapping[str, Mapping[Role, Mapping[str, ClipFingerprint]]],
                     public_index: Mapping[str, ClipFingerprint] | None = None,
                     references: Mapping[str, Sequence[ClipFingerprint]] | None = None, *,
                     neighbours: int = NEIGHBOURS, copy_correlation: float = COPY_CORRELATION,
                     reconstruct_margin: float = RECONSTRUCT_MARGIN, workers: int = 2,
                     known: MutableMapping[tuple[str, str], float] | None = None) -> list[AudioPair]:
    """The pairs of submissions that share clips, most copied first.

    Args:
        clips_by_submission: submission id -> role -> clip name -> fingerprint; a ``reconstruct``
            clip's name is its held-out clip's.
        public_index: public clip name -> fingerprint (the data set's ``train`` and ``test`` clips,
            never ``heldout``): a pair of clips that both copy one is labelled ``public:<name>``.
        references: held-out clip name -> fingerprints of the reference solution's and Griffin-Lim's
            outputs for it. A ``reconstruct`` clip without references is not compared.
        neighbours: nearest clips of other submissions compared with each clip on the waveform.
        copy_correlation: correlation from which two clips are one (:data:`COPY_CORRELATION`).
        reconstruct_margin: see :data:`RECONSTRUCT_MARGIN`.
        workers: processes comparing waveforms.
        known: correlations computed before, by the two clips' :attr:`ClipFingerprint.key` (in the order
            compared); those missing are computed and added, so that a class compared again with one
            submission more correlates only that submission's clips.

    Returns:
        one :class:`AudioPair` per pair of submissions with at least one match (copied or public),
        by score (highest first), then by ids.
    """
    ids = sorted(clips_by_submission)
    clips: list[_Clip] = []
    for number, submission in enumerate(ids):
        for role, named in sorted(clips_by_submission[submission].items()):
            if role not in ROLES:
                raise ValueError(f"submission {submission}: unknown role {role!r}; expected one of {ROLES}")
            clips.extend(_Clip(number, role, name, fingerprint) for name, fingerprint in sorted(named.items()))
    references = references or {}
    comparable = [c for c in clips if c.role != "reconstruct" or references.get(c.name)]
    if not comparable:
        return []
    groups: dict[str | None, int] = {}  # None: handed_in and sample clips; a held-out name: its reconstructions
    candidates = _nearest_pairs(
        np.stack([c.fingerprint.embedding for c in comparable]),
        np.array([c.submission for c in comparable], dtype=np.int64),
        np.array([groups.setdefault(c.name if c.role == "reconstruct" else None, len(groups)) for c in comparable],
                 dtype=np.int64),
        neighbours)
    known = {} if known is None else known
    judge = _Judge(public_index or {}, references, neighbours, copy_correlation, reconstruct_margin, known)
    matches: dict[tuple[int, int], list[ClipMatch]] = defaultdict(list)
    for (i, j), correlation in _correlations(comparable, candidates, workers, known).items():
        if correlation >= copy_correlation:
            a, b = sorted((comparable[i], comparable[j]), key=lambda c: c.submission)
            match = judge.match(a, b, correlation)
            if match is not None:
                matches[a.submission, b.submission].append(match)
    counts = np.bincount([c.submission for c in clips], minlength=len(ids)).tolist()
    pairs = [AudioPair(ids[a], ids[b], _score(found, counts[a], counts[b]),
                       tuple(sorted(found, key=lambda m: (m.role_a, m.clip_a, m.role_b, m.clip_b))))
             for (a, b), found in matches.items()]
    return sorted(pairs, key=lambda p: (-p.score, p.submission_a, p.submission_b))


def _score(matches: list[ClipMatch], clips_a: int, clips_b: int) -> float:
    """See :attr:`AudioPair.score`."""
    copied = [m for m in matches if m.verdict == "copied"]
    return max(len({(m.role_a, m.clip_a) for m in copied}) / clips_a,
               len({(m.role_b, m.clip_b) for m in copied}) / clips_b)


def _nearest_pairs(embeddings: np.ndarray, owners: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """Each clip with its ``k`` nearest clips by Euclidean embedding distance among those of other owners in its
    group.

    Args:
        embeddings: (clips, 38); owners, groups: (clips,) integer codes.

    Returns:
        (pairs, 2) int64 clip indices, i < j in each row, rows sorted and unique.
    """
    centred = (embeddings - embeddings.mean(axis=0)).astype(np.float32)  # centred: small norms, little rounding
    norms = np.sum(centred**2, axis=1)
    found = [np.zeros(0, np.int64)]  # pairs (i, j) as i * clips + j
    block = max(1, BLOCK_VALUES // len(centred))
    for start in range(0, len(centred), block):
        rows = slice(start, start + block)
        squared = norms[rows, None] + norms[None, :] - 2.0 * centred[rows] @ centred.T  # (block, clips)
        squared[(owners[rows, None] == owners[None, :]) | (groups[rows, None] != groups[None, :])] = np.inf
        index = np.arange(len(squared))
        for _ in range(min(k, len(centred))):  # k argmins: some 20x faster than argpartition for a small k
            nearest = np.argmin(squared, axis=1)
            usable = np.isfinite(squared[index, nearest])
            own, other = index[usable] + start, nearest[usable]
            found.append(np.minimum(own, other) * len(centred) + np.maximum(own, other))
            squared[index, nearest] = np.inf
    return np.stack(np.divmod(np.unique(np.concatenate(found)), len(centred)), axis=1)


def _correlations(clips: Sequence[_Clip], pairs: np.ndarray, workers: int,
                  known: MutableMapping[tuple[str, str], float]) -> dict[tuple[int, int], float]:
    """:func:`max_normalised_correlations` of each pair's verification signals (those ``known`` taken from it, the
    others added to it), one call per first clip, in ``workers`` forked processes (one where fork is unavailable).

    Forked workers find the queries in their copy of :data:`_FORKED_QUERIES` and get only index ranges, as
    :func:`reference.evaluation.score_pairs`' do: no waveform is pickled. Threads do not help: on 2 cores,
    two threads took 1.16x one thread's time for 15,000 pairs, two processes about half of it.
    """
    global _FORKED_QUERIES
    found: dict[tuple[int, int], float] = {}
    partners: dict[int, list[int]] = defaultdict(list)
    for i, j in pairs.tolist():
        value = known.get((clips[i].fingerprint.key, clips[j].fingerprint.key))
        if value is not None:
            found[i, j] = value
        else:
            partners[i].append(j)
    queries = [(clips[i].fingerprint, [clips[j].fingerprint for j in js]) for i, js in partners.items()]
    if workers <= 1 or len(queries) < 2 * workers or "fork" not in multiprocessing.get_all_start_methods():
        values = _correlate(queries)
    else:
        size = -(-len(queries) // (4 * workers))  # about four chunks per worker balance unequal lengths
        _FORKED_QUERIES = queries
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                chunks = pool.map(_correlate_forked, [range(k, min(k + size, len(queries)))
                                                      for k in range(0, len(queries), size)])
                values = [row for chunk in chunks for row in chunk]
        finally:
            _FORKED_QUERIES = []
    for (i, js), row in zip(partners.items(), values):
        for j, value in zip(js, row):
            found[i, j] = known[clips[i].fingerprint.key, clips[j].fingerprint.key] = value
    return found


_FORKED_QUERIES: list[tuple[ClipFingerprint, list[ClipFingerprint]]] = []
"""The queries of the :func:`_correlations` in progress, which forked workers inherit."""


def _correlate(queries: Sequence[tuple[ClipFingerprint, list[ClipFingerprint]]]) -> list[list[float]]:
    """Each query clip's correlations with its partners."""
    return [correlations(query, others) for query, others in queries]


def _correlate_forked(chunk: range) -> list[list[float]]:
    """:func:`_correlate` of :data:`_FORKED_QUERIES` ``chunk``, in a forked worker."""
    return _correlate([_FORKED_QUERIES[k] for k in chunk])


class _Judge:
    """What a pair of clips at or above the copy threshold is: copied, both public, or ordinary reconstructions.
    Each clip's public and reference correlations are computed once."""

    def __init__(self, public: Mapping[str, ClipFingerprint], references: Mapping[str, Sequence[ClipFingerprint]],
                 neighbours: int, copy_correlation: float, margin: float,
                 known: MutableMapping[tuple[str, str], float]):
        self.public, self.references, self.known = public, references, known
        self.public_names = sorted(public)
        self.public_embeddings = np.stack([public[n].embedding for n in self.public_names]) if public else None
        self.neighbours, self.copy_correlation, self.margin = neighbours, copy_correlation, margin
        self.copies: dict[_Clip, dict[str, float]] = {}
        self.reference_correlations: dict[_Clip, float] = {}

    def match(self, a: _Clip, b: _Clip, correlation: float) -> ClipMatch | None:
        """The match of ``a`` and ``b`` (other submissions' clips correlating at ``correlation``), or None where
        they are reconstructions no closer to each other than to the references."""
        if a.role == "reconstruct":
            nearest_reference = max(self._reference_correlation(a), self._reference_correlation(b))
            if correlation < nearest_reference + self.margin:
                return None
            return ClipMatch(a.name, a.role, b.name, b.role, correlation, "copied", nearest_reference)
        shared = self._shared_public(a, b)
        verdict = f"{PUBLIC_PREFIX}{shared}" if shared else "copied"
        return ClipMatch(a.name, a.role, b.name, b.role, correlation, verdict)

    def _shared_public(self, a: _Clip, b: _Clip) -> str | None:
        """A public clip both ``a`` and ``b`` copy (the one they copy best), or None.

        Each clip is compared with its nearest public clips; a public clip only one of them found is then
        compared with the other (its embedding may have moved more than the candidates' reach)."""
        found_a, found_b = self._public_copies(a), self._public_copies(b)
        both = {}
        for name in set(found_a) | set(found_b):
            scores = [found[name] if name in found else self._correlations(clip.fingerprint, [self.public[name]])[0]
                      for clip, found in ((a, found_a), (b, found_b))]
            if min(scores) >= self.copy_correlation:
                both[name] = min(scores)
        return max(both, key=lambda name: (both[name], name)) if both else None

    def _public_copies(self, clip: _Clip) -> dict[str, float]:
        """The public clips among ``clip``'s nearest that it copies, with their correlations."""
        if clip not in self.copies:
            self.copies[clip] = {}
            if self.public_embeddings is not None:
                distances = np.linalg.norm(self.public_embeddings - clip.fingerprint.embedding, axis=1)
                nearest = [self.public_names[k] for k in np.argsort(distances)[: self.neighbours]]
                values = self._correlations(clip.fingerprint, [self.public[n] for n in nearest])
                self.copies[clip] = {n: v for n, v in zip(nearest, values) if v >= self.copy_correlation}
        return self.copies[clip]

    def _reference_correlation(self, clip: _Clip) -> float:
        """The largest correlation of a ``reconstruct`` clip with the reference outputs for its held-out clip."""
        if clip not in self.reference_correlations:
            self.reference_correlations[clip] = max(self._correlations(clip.fingerprint, self.references[clip.name]))
        return self.reference_correlations[clip]

    def _correlations(self, clip: ClipFingerprint, others: Sequence[ClipFingerprint]) -> list[float]:
        """:func:`correlations`, those :attr:`known` taken from it and the others added to it."""
        missing = [other for other in others if (clip.key, other.key) not in self.known]
        for other, value in zip(missing, correlations(clip, missing) if missing else []):
            self.known[clip.key, other.key] = value
        return [self.known[clip.key, other.key] for other in others]
