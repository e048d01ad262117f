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

Pair results are kept in ``OUT/similarity.sqlite`` by the digests of the two fingerprints and of what else the
comparison reads (the ignored hashes), so that a class graded again with one submission more compares only that
submission's pairs. Written: ``OUT/similarity.csv`` (``a,b,kind,score,evidence``) and the pages
(:mod:`grader.report.similarity`).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from grader.similarity import audio as audio_prints, code as code_prints, weights as weight_prints
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
PROBE_SIGNS = 16
"""Checkpoint candidates: tensors whose sketches agree in the signs of this many sampled values (:func:`_tensor_key`)."""


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
    prints, problems = class_prints(out_dir)
    current = set(prints)
    earlier: dict[str, SubmissionPrints] = {}
    for folder in against:
        found, trouble = earlier_prints(Path(folder))
        earlier.update(found)
        problems += trouble
    everyone = {**prints, **earlier}
    with _PairCache(out_dir / DATABASE_NAME) as cache:
        pairs = _code_pairs(prints, everyone, current, _starter_hashes(starter), report_from, cache)
        pairs += _checkpoint_pairs(everyone, current, report_from, cache)
        pairs += _audio_pairs(out_dir, everyone, current, workers, cache.correlations)
        cached = cache.hits + cache.correlations.hits
    pairs.sort(key=lambda pair: (-pair.score, pair.kind, pair.a, pair.b))
    return Comparison(pairs, len(prints), len(earlier), problems, cached)


def class_prints(out_dir: Path) -> tuple[dict[str, SubmissionPrints], list[str]]:
    """The fingerprints of every submission with a result in ``out_dir``, by id; and the ids without any, in words."""
    prints, missing = {}, []
    for result in sorted((out_dir / "results").glob("*.json")):
        path = out_dir / FINGERPRINTS_FOLDER / result.name
        if path.is_file():
            prints[result.stem] = SubmissionPrints.from_json(path.read_text())
        else:
            missing.append(result.stem)
    problems = [f"{len(missing)} submission(s) have no fingerprints (refused at intake, or graded before "
                f"fingerprints were kept: `grade ... --force` makes them): {', '.join(missing[:10])}"] if missing else []
    return prints, problems


def earlier_prints(folder: Path) -> tuple[dict[str, SubmissionPrints], list[str]]:
    """An earlier class's fingerprints, by ``<folder name>/<submission id>``: a graded output folder's kept ones, or
    those of the zips (and submission folders) in ``folder``, made from their files alone."""
    if (folder / FINGERPRINTS_FOLDER).is_dir():
        found, problems = class_prints(folder)
    else:
        found, problems = {}, []
        for source in sorted(folder.iterdir()):
            if source.suffix.lower() == ".zip" or source.is_dir():
                try:
                    prints = files_prints(source)
                    found[prints.submission_id] = prints
                except Exception as error:  # intake's refusal, or a file no reader takes: that one is left out
                    problems.append(f"{source}: not compared ({error})")
    return {f"{folder.name}/{sid}": prints for sid, prints in found.items()}, problems


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


def _code_pairs(prints: dict[str, SubmissionPrints], everyone: dict[str, SubmissionPrints], current: set[str],
                starter: set[int], report_from: float, cache: _PairCache) -> list[Pair]:
    """Pairs sharing code from ``report_from``, starter code and code common to the class left out.

    A pair's comparison is kept by the two fingerprints and the ignored hashes each holds (all it depends on):
    one submission more, which moves a few hashes in or out of the common ones, changes only the pairs it
    touches. Regions are found only for pairs reported (most of a comparison's cost)."""
    ids = sorted(everyone)
    fingerprints = [everyone[sid].code for sid in ids]
    ignored = starter | code_prints.common_hashes(prints[sid].code for sid in sorted(prints))
    digests = [_digest([print_.to_dict(), sorted(print_.hashes & ignored)]) for print_ in fingerprints]
    pairs = []
    for i, j in code_prints.candidate_pairs(fingerprints, ignored):
        a, b = ids[i], ids[j]
        if a not in current and b not in current:
            continue
        score, evidence, detail = cache.get_or_make(
            "code", digests[i], digests[j], "", lambda: _code_score(fingerprints[i], fingerprints[j], ignored))
        if score >= report_from:
            if evidence:
                regions = detail()
            else:  # kept while below the threshold: its regions are found now
                score, evidence, regions = cache.remake("code", digests[i], digests[j], "", lambda: _code_match(
                    fingerprints[i], fingerprints[j], ignored))
            pairs.append(Pair(a, b, "code", score, evidence, regions))
    return pairs


def _code_score(a: code_prints.CodeFingerprint, b: code_prints.CodeFingerprint,
                ignored: set[int]) -> tuple[float, str, list[Any]]:
    """The pair's score alone (no evidence: regions are found once it is reported)."""
    return code_prints.compare(a, b, ignored, regions=False).score, "", []


def _code_match(a: code_prints.CodeFingerprint, b: code_prints.CodeFingerprint,
                ignored: set[int]) -> tuple[float, str, list[Any]]:
    match = code_prints.compare(a, b, ignored)
    regions = [list(region) for region in match.regions]
    shown = "; ".join(f"{r[0]}:{r[1]}-{r[2]} ~ {r[3]}:{r[4]}-{r[5]}" for r in regions[:EVIDENCE_SHOWN])
    more = f" and {len(regions) - EVIDENCE_SHOWN} more" if len(regions) > EVIDENCE_SHOWN else ""
    return match.score, f"{match.shared} shared fingerprints in {len(regions)} region(s): {shown}{more}", regions


# --------------------------------------------------------------------------- checkpoints

def _checkpoint_pairs(everyone: dict[str, SubmissionPrints], current: set[str], report_from: float,
                      cache: _PairCache) -> list[Pair]:
    """Pairs whose checkpoints match from ``report_from``; only pairs sharing a file or a candidate tensor compared."""
    pairs, digests = [], {}
    for a, b in sorted(_checkpoint_candidates(everyone)):
        if a not in current and b not in current:
            continue
        for sid in (a, b):
            if sid not in digests:
                digests[sid] = _digest(everyone[sid].weights.to_json())
        first, second = everyone[a].weights, everyone[b].weights
        score, evidence, detail = cache.get_or_make("checkpoint", digests[a], digests[b], "",
                                                    lambda: _weights_match(first, second))
        if score >= report_from:
            pairs.append(Pair(a, b, "checkpoint", score, evidence, detail()))
    return pairs


def _checkpoint_candidates(everyone: dict[str, SubmissionPrints]) -> set[tuple[str, str]]:
    """Pairs of submissions holding one file (by content) or tensors that may match (:func:`_tensor_key`)."""
    holders: dict[Any, set[str]] = defaultdict(set)
    for sid, prints in everyone.items():
        for file in prints.weights.files:
            if file.sha256 and file.size >= weight_prints.MIN_IDENTICAL_FILE_BYTES:
                holders["file", file.sha256].add(sid)
            for _, sketch in file.tensors:
                if sketch.comparable:
                    holders[_tensor_key(sketch)].add(sid)
    return {(a, b) for sids in holders.values() if len(sids) > 1 for a in sids for b in sids if a < b}


def _tensor_key(sketch: Any) -> tuple:
    """What two matching tensors' sketches share, whatever their axes' order: the sorted axis lengths and the signs,
    less the sample's mean, of :data:`PROBE_SIGNS` sampled values at positions ``(k mod c0, k mod c1, ...)`` for
    ``k = 0, 1, ...`` (``c``: the sample's lengths). The sample of a permuted tensor is the same sample permuted
    (:mod:`grader.similarity.weights_inside`), and those positions permute with it; two independent tensors share
    the signs once in 2**16."""
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


def _audio_pairs(out_dir: Path, everyone: dict[str, SubmissionPrints], current: set[str], workers: int,
                 known: _Correlations) -> list[Pair]:
    """Pairs sharing clips (a copy, or a public clip both hand in), with the data set's public clips and the
    reference outputs :func:`keep_references` kept."""
    folder = out_dir / FINGERPRINTS_FOLDER
    public = {name: audio_prints.ClipFingerprint.from_dict(clip)
              for name, clip in _kept_clips(folder / PUBLIC_NAME).items()}
    references = {name: [audio_prints.ClipFingerprint.from_dict(clip) for clip in sources.values()]
                  for name, sources in _kept_clips(folder / REFERENCES_NAME).items()}
    found = audio_prints.find_audio_pairs({sid: prints.audio for sid, prints in everyone.items()}, public,
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
    """Pair comparisons kept in SQLite by (kind, the two fingerprints' digests in order, the context's digest): read
    whole when opened, written back (what was made) when closed."""

    def __init__(self, path: Path):
        self.path, self.hits = path, 0
        self.kept: dict[tuple[str, str, str, str], tuple[float, str, str]] = {}
        self.made: list[tuple] = []
        self.correlations = _Correlations()

    def __enter__(self) -> _PairCache:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("CREATE TABLE IF NOT EXISTS pairs (kind TEXT, a TEXT, b TEXT, context TEXT, score REAL, "
                        "evidence TEXT, detail TEXT, PRIMARY KEY (kind, a, b, context))")
        self.db.execute("CREATE TABLE IF NOT EXISTS correlations (a TEXT, b TEXT, value REAL, PRIMARY KEY (a, b))")
        self.kept = {tuple(row[:4]): row[4:] for row in self.db.execute("SELECT * FROM pairs")}
        self.correlations.update((tuple(row[:2]), row[2]) for row in self.db.execute("SELECT * FROM correlations"))
        self.correlations.made.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?)", self.made)
            self.db.executemany("INSERT OR REPLACE INTO correlations VALUES (?, ?, ?)",
                                [(*key, self.correlations[key]) for key in self.correlations.made])
        self.db.close()

    def get_or_make(self, kind: str, a: str, b: str, context: str,
                    make: Callable[[], tuple[float, str, list[Any]]]) -> tuple[float, str, Callable[[], list[Any]]]:
        """The kept comparison of ``a`` with ``b`` (digests, in this order: the evidence names ``a``'s side first),
        else ``make()``'s, kept: (score, evidence, a function that gives its detail)."""
        row = self.kept.get((kind, a, b, context))
        if row is not None:
            self.hits += 1
            return row[0], row[1], lambda: json.loads(row[2])
        score, evidence, detail = self.remake(kind, a, b, context, make)
        return score, evidence, lambda: detail

    def remake(self, kind: str, a: str, b: str, context: str,
               make: Callable[[], tuple[float, str, list[Any]]]) -> tuple[float, str, list[Any]]:
        """``make()``'s comparison, kept in place of what was."""
        score, evidence, detail = make()
        self.kept[kind, a, b, context] = (score, evidence, json.dumps(detail))
        self.made.append((kind, a, b, context, score, evidence, json.dumps(detail)))
        return score, evidence, detail


class _Correlations(dict):
    """Clip correlations by the two clips' keys (:attr:`grader.similarity.audio.ClipFingerprint.key`): those read
    from the cache count as ``hits``, those set afterwards are ``made`` (to be written back)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: set[tuple[str, str]] = set()
        self.hits = 0

    def __getitem__(self, key: tuple[str, str]) -> float:
        if key not in self.made:
            self.hits += 1
        return super().__getitem__(key)

    def __setitem__(self, key: tuple[str, str], value: float) -> None:
        self.made.add(key)
        super().__setitem__(key, value)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _safe(name: str) -> str:
    """A submission id as a file name part (an earlier class's ids hold a ``/``)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
