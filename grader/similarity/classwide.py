"""A graded class compared: the pairs of submissions that share code, audio or a checkpoint, for the instructor to
review. Nothing here changes a grade.

The submissions are those graded into ``OUT`` (``OUT/results``), each by the fingerprints its grading kept
(:mod:`grader.similarity.prints`), and, with ``against``, earlier terms' classes: a graded output folder (its
fingerprints) or a folder of zips (fingerprinted here from the files alone: code, handed-in samples, checkpoints
read without unpickling; nothing runs). Only pairs with a submission of this class are reported.

- code (:mod:`grader.similarity.code`): hashes of the starter code every student was given (the rubric's
  ``[similarity] starter`` folder, ``--starter``) and of code common to the class (in at least 20% of it and 3
  submissions) are left out; a pair is reported from the rubric's ``report_from``;
- audio (:mod:`grader.similarity.audio`): a pair is reported when a clip is copied, or when both hand in the
  same public clip (reported as that, with score 0);
- checkpoints (:mod:`grader.similarity.weights`): a pair is reported from ``report_from``.

Pair results (and clip correlations) are kept in ``OUT/similarity.sqlite`` by the digests of the two fingerprints
and of what else the comparison reads (the ignored hashes), so that a class graded again with one submission more
compares only that submission's pairs. In memory, a submission is its clips' embeddings (some 8 kB) and a few
names: code hashes, checkpoint keys, clip signals and pair results are in the database, and a submission's
fingerprints are read again for a pair that needs them. Written: ``OUT/similarity.csv`` (``a,b,kind,score,evidence``)
and the pages (:mod:`grader.report.similarity`).
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from grader.similarity import audio as audio_prints, code as code_prints, weights as weight_prints
from grader.similarity.code_index import CodeIndex
from grader.similarity.prints import FINGERPRINTS_FOLDER, SubmissionPrints
from reference.files import atomic_write

if TYPE_CHECKING:
    from grader.pipeline import GradingSetup

Kind = Literal["code", "audio", "checkpoint"]
CSV_NAME = "similarity.csv"
DATABASE_NAME = "similarity.sqlite"
PUBLIC_NAME = "_public.json"
"""In ``OUT/fingerprints``: the data set's public clips (train and test), fingerprinted once per held-out set."""
REFERENCES_NAME = "_references.json"
"""In ``OUT/fingerprints``: the reference solution's and Griffin-Lim's outputs for each held-out clip."""
EVIDENCE_SHOWN = 3
"""Pieces of evidence (regions, clips, tensors) a CSV row names; the pair's page shows them all."""
PROBE_SIGNS = 32
"""Checkpoint candidates: tensors whose sketches agree in the signs of this many sampled values (:func:`_tensor_key`).
With 16, a class of 300 small WaveNets (4,800 tensors of one shape) shared some 170 keys by chance."""


@dataclass(frozen=True)
class Pair:
    """Two submissions found alike in one ``kind``: a score in [0, 1], the evidence in a line, and its detail (the
    code regions, clip matches or tensor matches) for the pair's page."""

    a: str
    b: str
    kind: Kind
    score: float
    evidence: str
    detail: list[Any] = field(default_factory=list)

    @property
    def page(self) -> str:
        """The pair's page, relative to the output folder."""
        return f"similarity/{_safe(self.a)}--{_safe(self.b)}--{self.kind}.html"


@dataclass
class Comparison:
    """A class compared: the pairs reported, and what the comparison says of itself."""

    pairs: list[Pair]
    submissions: int
    earlier: int
    problems: list[str] = field(default_factory=list)
    cached: int = 0
    """Pair comparisons taken from ``OUT/similarity.sqlite`` instead of made again."""


def compare_class(out_dir: Path, *, against: Iterable[Path] = (), starter: Iterable[Path] = (),
                  report_from: float = code_prints.REPORT_FROM, workers: int = 2) -> Comparison:
    """Compare the class graded into ``out_dir`` (and ``against`` earlier classes); see the module's notes."""
    with _PairCache(out_dir / DATABASE_NAME) as cache:
        members, problems = _class_members(out_dir, cache)
        earlier: dict[str, _Member] = {}
        for folder in against:
            found, trouble = _earlier_members(Path(folder), cache)
            earlier.update(found)
            problems += trouble
        everyone = {**members, **earlier}
        pairs = _code_pairs(everyone, _starter_hashes(starter), report_from, cache)
        pairs += _checkpoint_pairs(everyone, report_from, cache)
        cache.commit()  # the forked workers that correlate clips read the signals from the database
        pairs += _audio_pairs(out_dir, everyone, set(members), workers, cache.correlations)
        cached = cache.hits + cache.correlations.hits + cache.code.reused
    pairs.sort(key=lambda pair: (-pair.score, pair.kind, pair.a, pair.b))
    return Comparison(pairs, len(members), len(earlier), problems, cached)


@dataclass
class _Member:
    """What the comparison holds in memory of one submission: its clips without their signals (:class:`_StoredClip`)
    and the digest of its checkpoints' fingerprint. Its code's hashes and its checkpoints' candidate keys are in the
    database; its whole code fingerprint (for a reported pair's regions) and checkpoints' sketches are read again
    (:attr:`code`, :attr:`weights`) only for a pair that needs them, so that memory does not grow with the class."""

    code: Callable[[], code_prints.CodeFingerprint]
    audio: dict[str, dict[str, Any]]
    weights_digest: str
    weights: Callable[[], weight_prints.WeightsFingerprint]


def _member(sid: str, prints: SubmissionPrints, cache: _PairCache, path: Path | None, *, current: bool) -> _Member:
    """``prints`` as the comparison holds it, under ``sid``: code hashes, checkpoint keys and clip signals moved into
    ``cache``'s database; the rest read again from ``path`` when needed (kept in memory where there is no file: an
    earlier term's zip)."""
    cache.code.add(sid, prints.code, current=current)
    cache.add_weight_keys(sid, _weight_keys(prints.weights), current=current)
    audio = {role: {name: cache.stored_clip(clip) for name, clip in clips.items()}
             for role, clips in prints.audio.items()}
    code, weights = prints.code, prints.weights
    if path is None:
        whole_code, reread_weights = functools.partial(_same, code), functools.partial(_same, weights)
    else:
        whole_code = functools.partial(_reread, path, "code")
        reread_weights = functools.partial(_reread, path, "weights")
    return _Member(whole_code, audio, _digest(weights.to_json()), reread_weights)


def _same(value: Any) -> Any:
    return value


def _reread(path: Path, part: str) -> Any:
    """The ``part`` (``code``, ``weights``) of the fingerprints kept at ``path``, read again."""
    return getattr(SubmissionPrints.from_json(path.read_text()), part)


def _class_members(out_dir: Path, cache: _PairCache, *, prefix: str = "",
                   current: bool = True) -> tuple[dict[str, _Member], list[str]]:
    """Every submission with a result in ``out_dir`` that has fingerprints, by ``prefix`` and id, read one at a time;
    and the ids without any, in words."""
    members, missing = {}, []
    for result in sorted((out_dir / "results").glob("*.json")):
        path = out_dir / FINGERPRINTS_FOLDER / result.name
        try:
            prints = SubmissionPrints.from_json(path.read_text())
            members[prefix + result.stem] = _member(prefix + result.stem, prints, cache, path, current=current)
        except (OSError, ValueError, KeyError, TypeError):  # none, or kept by a grader that wrote them otherwise
            if _graded(result):  # a refused zip or a grader's failure has nothing to compare: its page says why
                missing.append(result.stem)
    problems = [f"{len(missing)} graded submission(s) of {out_dir} have no fingerprints this grader reads (graded "
                f"by an earlier version: `grade ... --force` makes them): {', '.join(missing[:10])}"] if missing else []
    return members, problems


def _graded(result: Path) -> bool:
    """Whether the result file ``result`` (the grader's own) says its submission was graded."""
    try:
        return json.loads(result.read_text()).get("status") == "graded"
    except (OSError, ValueError):
        return False


def _earlier_members(folder: Path, cache: _PairCache) -> tuple[dict[str, _Member], list[str]]:
    """An earlier class, by ``<folder name>/<submission id>``: a graded output folder's kept fingerprints, or those
    of the zips (and submission folders) in ``folder``, made from their files alone (:func:`files_prints`)."""
    prefix = f"{folder.name}/"
    if (folder / FINGERPRINTS_FOLDER).is_dir():
        return _class_members(folder, cache, prefix=prefix, current=False)
    found, problems = {}, []
    for source in sorted(folder.iterdir()):
        if source.suffix.lower() == ".zip" or source.is_dir():
            try:
                prints = files_prints(source)
            except Exception as error:  # intake's refusal, or a file no reader takes: that one is left out
                problems.append(f"{source}: not compared ({error})")
                continue
            found[prefix + prints.submission_id] = _member(prefix + prints.submission_id, prints, cache, None,
                                                           current=False)
    return found, problems


def files_prints(source: Path) -> SubmissionPrints:
    """The fingerprints of a submission's files (a zip or a folder), unpacked safely (:mod:`grader.intake`): its
    code, the samples it hands in, its checkpoints as far as they are read without running anything."""
    from grader.code import read_code
    from grader.discovery import discover
    from grader.intake import unpack
    from grader.limits import MAX_CLIP_SECONDS, MAX_SAMPLES, IntakeLimits
    from grader.model_use import WEIGHT_SUFFIXES
    from reference import SAMPLE_RATE
    from reference.evaluation_unpaired import read_judged
    from reference.preprocess import conform

    with tempfile.TemporaryDirectory(prefix="similarity-") as scratch:
        submission = unpack(source, Path(scratch) / "submission", IntakeLimits())
        root = submission.work_dir
        code = read_code(root, submission.files)
        units = [(parsed.unit.name, parsed.unit.source) for parsed in code.units]
        found = discover(root, code).findings
        clips, problems = {}, []
        for name in found["samples"].files[:MAX_SAMPLES]:  # as the samples check reads them: judged, within bounds
            report, decoded, rate = read_judged(root / name, max_seconds=MAX_CLIP_SECONDS)
            if decoded is None or report.nonfinite_ratio or not len(decoded):
                problems.append(f"{name}: no fingerprint ({'; '.join(report.problems) or 'no samples'})")
            else:
                clips[name] = audio_prints.clip_fingerprint(conform(decoded, rate, SAMPLE_RATE), SAMPLE_RATE)
        weights = sorted(set(found["checkpoints"].files) | {name for name in submission.files
                                                            if Path(name).suffix.lower() in WEIGHT_SUFFIXES})
        return SubmissionPrints(submission.id, code_prints.fingerprint(units), dict(units),
                                {"handed_in": clips} if clips else {},
                                weight_prints.fingerprint_weights(root, weights), {}, problems)


# --------------------------------------------------------------------------- code

def _starter_hashes(folders: Iterable[Path]) -> set[int]:
    """The code hashes of every ``.py`` file and notebook code cell in the starter ``folders``."""
    from grader.code import read_code

    hashes: set[int] = set()
    for folder in folders:
        files = sorted(path.relative_to(folder).as_posix() for path in Path(folder).rglob("*") if path.is_file())
        units = [(parsed.unit.name, parsed.unit.source) for parsed in read_code(Path(folder), files).units]
        hashes |= code_prints.fingerprint(units).hashes
    return hashes


def _code_pairs(everyone: dict[str, _Member], starter: set[int], report_from: float,
                cache: _PairCache) -> list[Pair]:
    """Pairs sharing code from ``report_from``, starter code and code common to the class left out: scored in the
    database (:class:`grader.similarity.code_index.CodeIndex`); the regions of a pair reported are found from the two
    whole fingerprints read again, and kept by the pair's contexts."""
    cache.code.ignore(starter)
    ignored = functools.cache(cache.code.ignored_hashes)
    pairs = []
    for pair in cache.code.pairs():
        if pair.score >= report_from:
            score, evidence, detail = cache.get_or_make("code", pair.context_a, pair.context_b, "", lambda: _code_match(
                everyone[pair.a].code(), everyone[pair.b].code(), ignored()))
            pairs.append(Pair(pair.a, pair.b, "code", score, evidence, detail()))
    return pairs


def _code_match(a: code_prints.CodeFingerprint, b: code_prints.CodeFingerprint,
                ignored: set[int]) -> tuple[float, str, list[Any]]:
    """The pair's score and regions."""
    match = code_prints.compare(a, b, ignored)
    regions = [list(region) for region in match.regions]
    shown = "; ".join(f"{r[0]}:{r[1]}-{r[2]} ~ {r[3]}:{r[4]}-{r[5]}" for r in regions[:EVIDENCE_SHOWN])
    more = f" and {len(regions) - EVIDENCE_SHOWN} more" if len(regions) > EVIDENCE_SHOWN else ""
    return match.score, f"{match.shared} shared fingerprints in {len(regions)} region(s): {shown}{more}", regions


# --------------------------------------------------------------------------- checkpoints

def _checkpoint_pairs(everyone: dict[str, _Member], report_from: float, cache: _PairCache) -> list[Pair]:
    """Pairs whose checkpoints match from ``report_from``: only pairs sharing a file or a tensor's key are compared,
    their sketches read again for it (the last few kept)."""
    read = functools.lru_cache(maxsize=16)(lambda sid: everyone[sid].weights())
    pairs = []
    for a, b in cache.weight_candidates():
        score, evidence, detail = cache.get_or_make("checkpoint", everyone[a].weights_digest,
                                                    everyone[b].weights_digest, "",
                                                    lambda: _weights_match(read(a), read(b)))
        if score >= report_from:
            pairs.append(Pair(a, b, "checkpoint", score, evidence, detail()))
    return pairs


def _weight_keys(weights: weight_prints.WeightsFingerprint) -> set[tuple]:
    """What two submissions' checkpoints must share to be compared: a file (by content), or a tensor's key
    (:func:`_tensor_key`)."""
    keys: set[tuple] = set()
    for file in weights.files:
        if file.sha256 and file.size >= weight_prints.MIN_IDENTICAL_FILE_BYTES:
            keys.add(("file", file.sha256))
        keys.update(_tensor_key(sketch) for _, sketch in file.tensors if sketch.comparable)
    return keys


def _tensor_key(sketch: Any) -> tuple:
    """What two matching tensors' sketches share, whatever their axes' order: the sorted axis lengths and the signs,
    less the sample's mean, of :data:`PROBE_SIGNS` sampled values at positions ``(k mod c0, k mod c1, ...)`` for
    ``k = 0, 1, ...`` (``c``: the sample's lengths). The sample of a permuted tensor is the same sample permuted
    (:mod:`grader.similarity.weights_inside`), and those positions permute with it; two independent tensors share
    the signs once in 2**32."""
    values = sketch.values
    probe = values[tuple(np.arange(PROBE_SIGNS) % length for length in values.shape)] if values.ndim else values
    return "tensor", tuple(sorted(sketch.shape)), tuple(bool(v) for v in np.ravel(probe) - values.mean() > 0)


def _weights_match(a: weight_prints.WeightsFingerprint,
                   b: weight_prints.WeightsFingerprint) -> tuple[float, str, list[Any]]:
    match = weight_prints.compare(a, b)
    return match.score, "; ".join(match.evidence[:EVIDENCE_SHOWN + 1]), list(match.evidence)


# --------------------------------------------------------------------------- audio

def keep_references(setup: GradingSetup) -> None:
    """Fingerprint, once per held-out set, the data set's public clips (those novelty compares samples with) and the
    reference solution's and Griffin-Lim's outputs for each held-out clip, into ``OUT/fingerprints``."""
    folder = setup.out_dir / FINGERPRINTS_FOLDER
    public, references = folder / PUBLIC_NAME, folder / REFERENCES_NAME
    if _kept_for(public) != setup.heldout.digest:
        _write_kept(public, setup.heldout.digest, {f"{clip.split}/{clip.path.name}": audio_prints.file_fingerprint(
            clip.path).to_dict() for clip in setup.heldout.known_clips})
    if _kept_for(references) != setup.heldout.digest:
        baseline = setup.load_baseline()
        _write_kept(references, setup.heldout.digest, {
            clip.path.stem: {source: audio_prints.file_fingerprint(baseline.audio(source, clip.path.stem)).to_dict()
                             for source in ("reference", "griffin_lim")} for clip in setup.heldout.clips})


def _kept_for(path: Path) -> str | None:
    """The held-out set digest a kept file of fingerprints was made for (None: none is kept)."""
    try:
        return json.loads(path.read_text())["heldout"]
    except (OSError, ValueError, KeyError):
        return None


def _write_kept(path: Path, heldout: str, clips: dict[str, Any]) -> None:
    atomic_write(path, json.dumps({"heldout": heldout, "clips": clips}))


def _kept_clips(path: Path) -> dict[str, Any]:
    """The ``clips`` of a file :func:`keep_references` wrote; empty where there is none."""
    try:
        return json.loads(path.read_text())["clips"]
    except (OSError, ValueError, KeyError):
        return {}


def _audio_pairs(out_dir: Path, everyone: dict[str, _Member], current: set[str], workers: int,
                 known: _Correlations) -> list[Pair]:
    """Pairs sharing clips (a copy, or a public clip both hand in), with the data set's public clips and the
    reference outputs :func:`keep_references` kept."""
    folder = out_dir / FINGERPRINTS_FOLDER
    public = {name: audio_prints.ClipFingerprint.from_dict(clip)
              for name, clip in _kept_clips(folder / PUBLIC_NAME).items()}
    references = {name: [audio_prints.ClipFingerprint.from_dict(clip) for clip in sources.values()]
                  for name, sources in _kept_clips(folder / REFERENCES_NAME).items()}
    found = audio_prints.find_audio_pairs({sid: member.audio for sid, member in everyone.items()}, public,
                                          references, workers=workers, known=known)
    pairs = []
    for pair in found:
        if pair.submission_a not in current and pair.submission_b not in current:
            continue
        matches = [match.to_dict() for match in pair.matches]
        copied = [m for m in matches if m["verdict"] == "copied"]
        shown = copied or matches
        words = "; ".join(f"{m['role_a']} {m['clip_a']} ~ {m['role_b']} {m['clip_b']} "
                          f"({'copied' if m['verdict'] == 'copied' else 'both took ' + m['verdict'].split(':', 1)[1]}, "
                          f"correlation {m['correlation']:.3f})" for m in shown[:EVIDENCE_SHOWN])
        more = f" and {len(shown) - EVIDENCE_SHOWN} more" if len(shown) > EVIDENCE_SHOWN else ""
        pairs.append(Pair(pair.submission_a, pair.submission_b, "audio", float(pair.score),
                          f"{len(copied)} clip(s) copied, {len(matches) - len(copied)} public: {words}{more}", matches))
    return pairs


# --------------------------------------------------------------------------- output

def write_csv(out_dir: Path, comparison: Comparison) -> Path:
    """``OUT/similarity.csv``: one row per pair reported, columns ``a,b,kind,score,evidence``, highest score first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["a", "b", "kind", "score", "evidence"])
    for pair in comparison.pairs:
        writer.writerow([pair.a, pair.b, pair.kind, f"{pair.score:.4f}", pair.evidence])
    return atomic_write(out_dir / CSV_NAME, buffer.getvalue())


# --------------------------------------------------------------------------- the pair cache

class _PairCache:
    """The comparison's database, ``OUT/similarity.sqlite``: pair comparisons kept by (kind, the two fingerprints'
    digests in order, the context's digest), clip correlations and signals, the code index
    (:class:`grader.similarity.code_index.CodeIndex`) and, for one comparison, the checkpoints' candidate keys. Each
    is looked up when wanted, nothing is read whole."""

    def __init__(self, path: Path):
        self.path, self.hits = path, 0

    def __enter__(self) -> _PairCache:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode = WAL")  # clip signals are read (forked workers too) while pairs are
        # written
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS pairs (kind TEXT, a TEXT, b TEXT, context TEXT, score REAL, evidence TEXT,
                                              detail TEXT, PRIMARY KEY (kind, a, b, context));
            CREATE TABLE IF NOT EXISTS correlations (a TEXT, b TEXT, value REAL, PRIMARY KEY (a, b));
            CREATE TABLE IF NOT EXISTS signals (key TEXT PRIMARY KEY, signal BLOB);
            CREATE TEMP TABLE weight_keys (key TEXT, sid TEXT, current INTEGER);
            CREATE INDEX temp.weight_keys_by_key ON weight_keys (key);
        """)
        self.code = CodeIndex(self.db)
        self.correlations = _Correlations(self.db)
        return self

    def __exit__(self, *exc: object) -> None:
        reader = _READERS.pop((os.getpid(), self.path), None)
        if reader is not None:
            reader.close()
        self.db.commit()
        self.db.close()  # the last connection: the write-ahead log is folded in and removed

    def commit(self) -> None:
        """Commit what was written (the signals :meth:`stored_clip` moved: forked processes read them)."""
        self.db.commit()

    def stored_clip(self, clip: audio_prints.ClipFingerprint) -> _StoredClip:
        """``clip`` with its signal moved into the database."""
        self.db.execute("INSERT OR IGNORE INTO signals VALUES (?, ?)", (clip.key, clip.signal.tobytes()))
        return _StoredClip(clip, self.path)

    def add_weight_keys(self, sid: str, keys: set[tuple], *, current: bool) -> None:
        """Submission ``sid``'s checkpoint keys (:func:`_weight_keys`)."""
        self.db.executemany("INSERT INTO weight_keys VALUES (?, ?, ?)",
                            ((json.dumps(key), sid, int(current)) for key in keys))

    def weight_candidates(self) -> Iterable[tuple[str, str]]:
        """The pairs of submissions ``(a, b)``, ``a < b``, at least one current, that share a checkpoint key."""
        return self.db.execute("SELECT DISTINCT x.sid, y.sid FROM weight_keys x JOIN weight_keys y ON y.key = x.key "
                               "AND x.sid < y.sid WHERE x.current OR y.current ORDER BY x.sid, y.sid").fetchall()

    def get_or_make(self, kind: str, a: str, b: str, context: str,
                    make: Callable[[], tuple[float, str, list[Any]]]) -> tuple[float, str, Callable[[], list[Any]]]:
        """The kept comparison of ``a`` with ``b`` (digests, in this order: the evidence names ``a``'s side first),
        else ``make()``'s, kept: (score, evidence, a function that gives its detail)."""
        row = self.db.execute("SELECT score, evidence, detail FROM pairs WHERE kind = ? AND a = ? AND b = ? AND "
                              "context = ?", (kind, a, b, context)).fetchone()
        if row is not None:
            self.hits += 1
            return row[0], row[1], lambda: json.loads(row[2])
        score, evidence, detail = make()
        self.db.execute("INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (kind, a, b, context, score, evidence, json.dumps(detail)))
        return score, evidence, lambda: detail


class _StoredClip:
    """A clip's fingerprint whose signal stays in ``OUT/similarity.sqlite`` until a correlation reads it, here or in a
    forked worker: :func:`grader.similarity.audio.find_audio_pairs` reads ``embedding``, ``key`` and :meth:`waveform`."""

    __slots__ = ("embedding", "seconds", "scale", "key", "database")

    def __init__(self, clip: audio_prints.ClipFingerprint, database: Path):
        self.embedding, self.seconds, self.scale, self.key = clip.embedding, clip.seconds, clip.scale, clip.key
        self.database = database

    def waveform(self) -> np.ndarray:
        """:meth:`grader.similarity.audio.ClipFingerprint.waveform`, of the signal read back."""
        return audio_prints.ClipFingerprint(self.embedding, self.seconds, _signal(self.database, self.key),
                                            self.scale).waveform()


_READERS: dict[tuple[int, Path], sqlite3.Connection] = {}
"""Read-only connections to a cache database, by process: a forked worker opens its own."""


def _signal(database: Path, key: str) -> np.ndarray:
    """The clip signal kept under ``key``: (samples,) int8."""
    reader = _READERS.get((os.getpid(), database))
    if reader is None:
        reader = _READERS[os.getpid(), database] = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    return np.frombuffer(reader.execute("SELECT signal FROM signals WHERE key=?", (key,)).fetchone()[0], np.int8)


class _Correlations:
    """Clip correlations kept in the database by the two clips' keys
    (:attr:`grader.similarity.audio.ClipFingerprint.key`), as the mapping
    :func:`grader.similarity.audio.find_audio_pairs` takes: those found there count as ``hits``."""

    def __init__(self, db: sqlite3.Connection):
        self.db, self.hits = db, 0

    def get(self, key: tuple[str, str]) -> float | None:
        """The correlation kept for ``key``, else None."""
        row = self.db.execute("SELECT value FROM correlations WHERE a = ? AND b = ?", key).fetchone()
        self.hits += row is not None
        return None if row is None else row[0]

    def __contains__(self, key: tuple[str, str]) -> bool:
        return self.get(key) is not None

    def __getitem__(self, key: tuple[str, str]) -> float:
        row = self.db.execute("SELECT value FROM correlations WHERE a = ? AND b = ?", key).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]

    def __setitem__(self, key: tuple[str, str], value: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO correlations VALUES (?, ?, ?)", (*key, value))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _safe(name: str) -> str:
    """A submission id as a file name part (an earlier class's ids hold a ``/``)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
