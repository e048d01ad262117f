"""HTML pages from results: one page per submission and the class page, with jinja2.

Pages are rendered from :class:`~grader.results.SubmissionResult` files only, so they
can be re-rendered without re-grading. Layout of a report folder ``OUT``::

    OUT/index.html                  the class page
    OUT/pages/<submission id>.html  one page per submission
    OUT/spectrograms/<sha256>.png   log-mel pictures, cached by the audio's content
    OUT/media/<submission id>/...   audio the grader copied (read, never written here)
    OUT/listening.csv               a listening test's scores, drawn where there is one (read, never written here)

Audio and pictures are linked by relative paths (``../media/...``), so the folder
opens from the file system, moves as a whole, and a page stays small (its audio is
linked, not copied into it; a spectrogram of the same audio is drawn once for all pages). With
``embed_media=True`` a page carries its audio and pictures as ``data:`` URIs instead:
one file that can be mailed on its own, about 1.35 times the size of the page and
the files it links (base64).

Who a submission is comes from its LMS file name (:mod:`grader.identity`): pages and
tables name that student, show what ``submission.toml`` declares only as declared, and
flag a submission whose file name names no student as unmatched.

Who reads a page decides what it shows (:class:`Audience`): an instructor sees
everything; a student sees only the items, runs and quiz answers their visibility
allows, and never a hidden item's name.
"""
from __future__ import annotations

import base64
import functools
import math
import mimetypes
import os
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

import jinja2

from grader.listening.model import SCALES, Kind
from grader.listening.results import (DIGITS, KIND_WORDS, RATINGS_CHECKS, SYSTEM_WORDS, Score, Scoring,
                                      UnreadableScores, read_scoring)
from grader.report.spectrograms import LOG_MAX, LOG_MIN, SPECTROGRAM_FOLDER, spectrogram_png
from grader.results import ItemResult, SubmissionResult
from grader.rubric import Rubric
from reference.evaluation import METRICS as METRIC_REGISTRY
from reference.files import atomic_write

TEMPLATES = Path(__file__).parent / "templates"
PAGES_FOLDER = "pages"
CLASS_PAGE = "index.html"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
QUIZ_CHECKLIST = "Check for understanding"

SOURCES = {
    "truth": "Truth (held-out clip)",
    "reference": "Reference solution",
    "student": "Student",
    "griffin_lim": "Griffin-Lim (true log-mel)",
    "floor": "Untrained model (floor)",
}
"""Sources of audio and of metrics, in the order shown, with their labels."""
METRICS = {key: (metric.label, metric.better) for key, metric in METRIC_REGISTRY.items()}
"""Each metric key's label and which way is better, from :data:`reference.evaluation.METRICS`."""
RUNS_LISTED = 10
"""How many of the slowest runs the class page lists."""
LMS_ID_LABELS = {"canvas": "Canvas user id", "moodle": "Moodle participant id", "blackboard": "Blackboard username"}
"""What each LMS's user id is called (:class:`grader.identity.LmsIdentity`)."""
PLOT_WIDTH, PLOT_HEIGHT = 740, 270
"""The listening plot's SVG size, in its own units (px at full width)."""
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 44, 580, 10, 236
"""Its plotting area; the systems' labels stand right of it."""
PLOT_LABELS = {"hidden_reference": "hidden reference", "anchor": "anchor", "reference": "reference solution",
               "griffin_lim": "Griffin-Lim", "natural": "natural"}
PLOT_COLOURS = {"hidden_reference": "#1e7b34", "anchor": "#b3261e", "reference": "#1a5fb4", "griffin_lim": "#a86400",
                "natural": "#1e7b34"}
LABEL_GAP = 13
"""Least vertical distance between two systems' labels, so that systems scored alike stay readable."""


@dataclass(frozen=True)
class Audience:
    """Who reads the pages: which item visibilities they see, and whether the quiz's answer key."""

    name: str
    visibilities: frozenset[str]
    answer_key: bool

    def sees(self, visibility: str) -> bool:
        return visibility in self.visibilities


INSTRUCTOR = Audience("instructor", frozenset(VISIBILITIES), answer_key=True)


def student_audience(rubric: Rubric | None, *, due_date_passed: bool = False, published: bool = False) -> Audience:
    """What a student may see now: visible items, plus ``after_due_date`` and ``after_published`` ones when so.

    The quiz's answer key is shown when the rubric's ``quiz.answers_visibility`` is
    among them (never without a rubric).
    """
    seen = {"visible"} | ({"after_due_date"} if due_date_passed else set()) | ({"after_published"} if published else set())
    answers = rubric is not None and rubric.quiz is not None and rubric.quiz.answers_visibility in seen
    return Audience("student", frozenset(seen), answer_key=answers)


# --------------------------------------------------------------------------- jinja2

def _points(value: float | None) -> str:
    """12.0 -> "12", 3.456 -> "3.46"; None -> "–"."""
    if value is None:
        return "–"
    return f"{round(value, 2):g}"


def _number(value: Any, digits: int = 3) -> str:
    """A metric value for a table: 3 significant digits, "–" for None, NaN or anything not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def _mebibytes(value: int | None) -> str:
    return "–" if value is None else f"{value / 2**20:.0f} MiB"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if value < 100 else f"{value / 60:.1f} min"


@functools.cache
def environment() -> jinja2.Environment:
    """The templates' environment: autoescaped HTML, undefined names are errors, the number filters."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(points=_points, number=_number, mebibytes=_mebibytes, seconds=_seconds)
    return env


# --------------------------------------------------------------------------- media

class MediaLinks:
    """``src`` attributes for audio and pictures of one page: a relative URL, or a ``data:`` URI.

    Paths in results are relative to the report folder ``out_dir``; one that is
    missing or that points outside the folder gets no link (None), and the page says so.
    """

    def __init__(self, out_dir: Path, page_dir: Path, embed: bool):
        self.out_dir, self.page_dir, self.embed = out_dir.resolve(), page_dir.resolve(), embed

    def file(self, relative: str | None) -> Path | None:
        """The file a result's relative path names, when it exists inside the report folder."""
        if not relative:
            return None
        path = (self.out_dir / relative).resolve()
        if not path.is_relative_to(self.out_dir) or not path.is_file():
            return None
        return path

    def src(self, path: Path) -> str:
        if self.embed:
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        return quote(os.path.relpath(path, self.page_dir).replace(os.sep, "/"))


def _player(links: MediaLinks, relative: str | None, label: str) -> dict[str, Any]:
    """One audio player with its spectrogram, or the reason there is none.

    A file that cannot be read as audio gets no player (a browser could not play it
    either), only the reason.
    """
    audio = links.file(relative)
    if audio is None:
        missing = "not produced" if not relative else f"{relative} is not in the report folder"
        return {"label": label, "audio": None, "image": None, "problem": missing}
    picture = spectrogram_png(audio, links.out_dir / SPECTROGRAM_FOLDER)
    if picture.png is None:
        return {"label": label, "audio": None, "image": None, "problem": picture.problem}
    return {"label": label, "audio": links.src(audio), "image": links.src(picture.png), "problem": None}


# --------------------------------------------------------------------------- one submission

def _item_groups(items: list[ItemResult]) -> list[dict[str, Any]]:
    """Items grouped by the assignment's checklist entry, in rubric order, with each group's points."""
    groups: dict[str, list[ItemResult]] = {}
    for item in items:
        groups.setdefault(item.checklist, []).append(item)
    return [{"name": name, "items": members, "points": sum(i.points for i in members),
             "max_points": sum(i.max_points for i in members)} for name, members in groups.items()]


def _metric_rows(table: dict[str, dict[str, float | None]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(sources present, one row per metric) of a source -> metric -> value table, in the usual order."""
    sources = [s for s in SOURCES if s in table] + sorted(s for s in table if s not in SOURCES)
    metrics = {metric for values in table.values() for metric in values}
    ordered = [m for m in METRICS if m in metrics] + sorted(metrics - set(METRICS))
    rows = [{"label": METRICS.get(m, (m, ""))[0], "better": METRICS.get(m, ("", ""))[1],
             "values": [table[s].get(m) for s in sources]} for m in ordered]
    return sources, rows


def _flat_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """A list of dicts as (columns, rows) for a plain table; nested dicts become ``outer.inner`` columns."""
    flat = []
    for row in rows:
        cells: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, dict):
                cells.update({f"{key}.{k}": v for k, v in value.items() if not isinstance(v, (dict, list))})
            elif not isinstance(value, list):
                cells[key] = value
        flat.append(cells)
    columns = list(dict.fromkeys(key for cells in flat for key in cells))
    return columns, [[cells.get(column) for column in columns] for cells in flat]


def _questions(rubric: Rubric | None) -> dict[str, Any]:
    return {q.id: q for q in rubric.quiz.questions} if rubric and rubric.quiz else {}


def _discovery_rows(discovery: dict[str, Any]) -> list[dict[str, Any]]:
    """The discovery's findings, one row per role (the dump of :class:`grader.discovery.Discovery`)."""
    findings = discovery.get("findings") or {}
    return [{"role": role, "status": f.get("status", ""), "value": f.get("value"), "files": f.get("files") or [],
             "how": f.get("how", ""), "problems": f.get("problems") or []}
            for role, f in findings.items() if isinstance(f, dict)]


def _declared(result: SubmissionResult) -> str:
    """What the submission's manifest declares about its author, in words ("" when nothing)."""
    name, student_id = result.student.get("name", ""), result.student.get("id", "")
    return f"{name} (id {student_id})" if name and student_id else name or (f"id {student_id}" if student_id else "")


def submission_context(result: SubmissionResult, out_dir: Path, *, rubric: Rubric | None = None,
                       audience: Audience = INSTRUCTOR, embed_media: bool = False,
                       listening: Scoring | None = None) -> dict[str, Any]:
    """Everything the submission template shows, filtered for ``audience``; ``listening``: the class's listening
    test (:func:`read_listening`), whose scores of this submission and of the systems the page shows."""
    page_dir = out_dir / PAGES_FOLDER
    links = MediaLinks(out_dir, page_dir, embed_media)
    shown = [item for item in result.items if audience.sees(item.visibility)]
    shown_ids = {item.id for item in shown}
    quiz_visible = audience.sees(rubric.quiz.visibility) if rubric and rubric.quiz else audience == INSTRUCTOR
    quiz = result.quiz if quiz_visible else []
    checked = [q for q in quiz if q.correct is not None]  # a self-check answers no quiz question
    questions = _questions(rubric)
    total = sum(i.points for i in shown) + sum(q.points for q in checked)
    max_total = sum(i.max_points for i in shown) + sum(q.max_points for q in checked)
    lateness = result.term.lateness if result.term else None
    if lateness is not None:
        total = 0.0 if lateness.refused else max(0.0, total - lateness.penalty)
    if audience == INSTRUCTOR:
        total, max_total = result.total, result.max_total
    sources, comparison = _metric_rows(result.comparison)
    clip_columns, clip_rows = _flat_rows(result.clip_metrics)
    listen = []
    for clip in result.listen:
        clip_sources, clip_metrics = _metric_rows(clip.metrics)
        players = [_player(links, getattr(clip, source), SOURCES[source])
                   for source in ("truth", "reference", "student", "griffin_lim")]
        listen.append({"name": clip.name, "players": players,
                       "metric_sources": [(s, SOURCES.get(s, s)) for s in clip_sources],
                       "metrics": clip_metrics})
    return {
        "result": result,
        "title": result.student_label,
        "lms_id_label": LMS_ID_LABELS.get(result.identity.lms or "", ""),
        "source_name": Path(result.source).name,
        "declared": _declared(result),
        "audience": audience,
        "total": total,
        "max_total": max_total,
        "percent": 100 * total / max_total if max_total else 0.0,
        "groups": _item_groups(shown),
        "withheld": len(result.items) - len(shown),
        "quiz": [{"outcome": q, "question": questions.get(q.id),
                  "key": questions[q.id].answer if audience.answer_key and q.id in questions else None} for q in quiz],
        "quiz_points": (sum(q.points for q in checked), sum(q.max_points for q in checked)),
        "comparison_sources": [(s, SOURCES.get(s, s)) for s in sources],
        "comparison": comparison,
        "clip_columns": [METRICS.get(column, (column, ""))[0] for column in clip_columns],
        "clip_rows": clip_rows,
        "listen": listen,
        "scale": (LOG_MIN, LOG_MAX),
        "samples": [{"sample": s, "player": _player(links, s.audio, s.name)} for s in result.samples],
        "runs": [run for run in result.runs if run.item_id in shown_ids or audience == INSTRUCTOR],
        "discovery": _discovery_rows(result.discovery),
        "manifest": result.discovery.get("manifest"),
        "manifest_errors": result.discovery.get("manifest_errors") or [],
        "class_page": None if embed_media else links.src(out_dir / CLASS_PAGE),
        "listening": _submission_listening(result, listening, rubric, audience),
        "term": _submission_term(result, rubric, audience),
    }


def _attempts_note(result: SubmissionResult, rubric: Rubric | None) -> str:
    """What the page says of how the counted attempt was chosen where the policy could not be followed."""
    policy = rubric.term.attempts if rubric else "last"
    if result.term and policy == "last_before_due" and len(result.term.attempts) > 1 and not any(
            attempt.submitted_at for attempt in result.term.attempts):
        return "no submission time is known: the last attempt counts, not the last before the due date"
    return ""


def _submission_term(result: SubmissionResult, rubric: Rubric | None, audience: Audience) -> dict[str, Any] | None:
    """The term's part of a submission page (:mod:`grader.term`): the late line, adjustments that no longer apply
    (the instructor's), the student's attempts and the policy that picks the one counted; None where there is
    nothing to show."""
    term = result.term
    if term is None:
        return None
    policy = rubric.term.attempts if rubric else "last"
    return {"lateness": term.lateness, "stale": term.stale if audience == INSTRUCTOR else [],
            "automatic_total": term.automatic_total, "counts": term.counts,
            "attempts": term.attempts if len(term.attempts) > 1 else [],
            "policy": policy.replace("_", " "), "note": _attempts_note(result, rubric)}


def render_submission(result: SubmissionResult, out_dir: str | os.PathLike, **options) -> str:
    """The HTML of one submission's page (options: ``rubric``, ``audience``, ``embed_media``, ``listening``)."""
    return environment().get_template("submission.html.j2").render(
        submission_context(result, Path(out_dir), **options))


def page_path(out_dir: str | os.PathLike, submission_id: str) -> Path:
    """Where the page of ``submission_id`` is written: ``OUT/pages/<id>.html``."""
    return Path(out_dir) / PAGES_FOLDER / f"{submission_id}.html"


def write_submission_page(result: SubmissionResult, out_dir: str | os.PathLike, **options) -> Path:
    """Render and write ``OUT/pages/<id>.html`` (atomically); options as :func:`render_submission`."""
    target = page_path(out_dir, result.submission_id)
    atomic_write(target, render_submission(result, out_dir, **options))
    return target


# --------------------------------------------------------------------------- the class page

def _histogram(totals: list[float], max_total: float, bins: int = 10) -> list[dict[str, Any]]:
    """Counts of ``totals`` in ``bins`` equal bins of 0..max_total (the top bin includes the maximum)."""
    width = (max_total or 1.0) / bins
    counts = Counter(min(bins - 1, max(0, int(total // width))) for total in totals)
    return [{"low": k * width, "high": (k + 1) * width, "count": counts.get(k, 0)} for k in range(bins)]


def _columns(results: list[SubmissionResult]) -> list[dict[str, Any]]:
    """Every item of any result, in the order first seen, with its title and maximum (the largest: a skipped item
    has none)."""
    columns: dict[str, dict[str, Any]] = {}
    for result in results:
        for item in result.items:
            column = columns.setdefault(item.id, {"id": item.id, "title": item.title, "max_points": item.max_points,
                                                  "checklist": item.checklist})
            column["max_points"] = max(column["max_points"], item.max_points)
    return list(columns.values())


def _pass_rates(results: list[SubmissionResult], columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per item over the graded submissions that judged it (not skipped): mean share of points, share passed (full
    points), errors."""
    rates = []
    for column in columns:
        outcomes = [item for r in results if r.status == "graded" for item in r.items
                    if item.id == column["id"] and item.status != "skipped"]
        if not outcomes:
            continue
        rates.append({**column, "count": len(outcomes),
                      "mean_share": statistics.fmean(i.points / i.max_points if i.max_points else 0 for i in outcomes),
                      "passed_share": sum(i.status == "passed" for i in outcomes) / len(outcomes),
                      "errors": sum(i.status == "error" for i in outcomes)})
    return rates


def _runs(results: list[SubmissionResult]) -> list[dict[str, Any]]:
    return [{"submission": r.submission_id, "href": quote(f"{PAGES_FOLDER}/{r.submission_id}.html"),
             "item": run.item_id, "purpose": run.purpose, "result": run.result} for r in results for run in r.runs]


def class_context(results: list[SubmissionResult], problems: Iterable[str] = (), similarity: bool = False,
                  listening: Scoring | None = None, listening_problem: str = "", *,
                  rubric: Rubric | None = None) -> dict[str, Any]:
    """Everything the class page shows: one row per result, histogram, pass rates, slow and failed runs; with
    ``similarity``, a link to the pairs of submissions found alike (``similarity.html``); with ``listening`` (the
    class's listening test, :func:`read_listening`), its scores drawn and its screening, or why they could not be
    read (``listening_problem``). Totals are final (:func:`grader.term.finalise.finalise`): a row marks its
    adjustments, its late penalty and an attempt that does not count; adjustments that no longer apply are listed."""
    columns = _columns(results)
    graded = [r for r in results if r.status == "graded"]
    max_total = max((r.max_total for r in results), default=0.0)
    totals = [r.total for r in graded]
    rows = []
    for r in results:
        points = {item.id: item for item in r.items}
        rows.append({"result": r, "href": quote(f"{PAGES_FOLDER}/{r.submission_id}.html"),
                     "name": r.student_label, "student_id": r.identity.user_id, "declared": _declared(r),
                     "percent": 100 * r.total / r.max_total if r.max_total else 0.0,
                     "items": [points.get(c["id"]) for c in columns],
                     "quiz": (sum(q.points for q in r.quiz), sum(q.max_points for q in r.quiz)) if r.quiz else None,
                     "failed_runs": sum(run.result.verdict != "ok" for run in r.runs),
                     "seconds": r.seconds, **_row_term(r)})
    runs = _runs(results)
    return {
        "rows": rows,
        "columns": columns,
        "has_quiz": any(r.quiz for r in results),
        "count": len(results),
        "statuses": Counter(r.status for r in results),
        "unmatched": sum(not r.identity.matched for r in results),
        "max_total": max_total,
        "mean": statistics.fmean(totals) if totals else None,
        "median": statistics.median(totals) if totals else None,
        "histogram": _histogram(totals, max_total),
        "pass_rates": _pass_rates(results, columns),
        "slowest": sorted(runs, key=lambda run: -run["result"].wall_seconds)[:RUNS_LISTED],
        "failed": [run for run in runs if run["result"].verdict != "ok"],
        "problems": list(problems),
        "similarity": similarity,
        "listening": _class_listening(listening),
        "listening_problem": listening_problem,
        "stale": [{"submission": r.submission_id, "href": quote(f"{PAGES_FOLDER}/{r.submission_id}.html"),
                   "reason": reason} for r in results if r.term for reason in r.term.stale],
        "policy": (rubric.term.attempts if rubric else "last").replace("_", " "),
    }


def _row_term(result: SubmissionResult) -> dict[str, Any]:
    """A class table row's marks of the term: items adjusted, the late line, whether the attempt counts."""
    term = result.term
    adjusted = [item.id for item in result.items if item.adjustment and not item.adjustment.stale]
    return {"adjusted": adjusted,
            "late_words": term.lateness.words if term and term.lateness else "",
            "late_penalty": term.lateness.penalty if term and term.lateness else 0.0,
            "counts": term.counts if term else True,
            "automatic_total": term.automatic_total if term else result.total}


def render_class_page(results: list[SubmissionResult], problems: Iterable[str] = (), similarity: bool = False,
                      listening: Scoring | None = None, listening_problem: str = "", *,
                      rubric: Rubric | None = None) -> str:
    """The HTML of the class page (``problems``: results that could not be read, in words; ``similarity``: link
    the similarity page; ``listening``: the listening test's scores and screening, or ``listening_problem``)."""
    return environment().get_template("class.html.j2").render(class_context(results, problems, similarity,
                                                                             listening, listening_problem,
                                                                             rubric=rubric))


def write_class_page(results: list[SubmissionResult], out_dir: str | os.PathLike, problems: Iterable[str] = (),
                     listening: Scoring | None = None, listening_problem: str = "", *,
                     rubric: Rubric | None = None) -> Path:
    """Write ``OUT/index.html`` (atomically), linking ``OUT/similarity.html`` where the class has one; with the
    listening test (:func:`read_listening`) where it is given."""
    target = Path(out_dir) / CLASS_PAGE
    atomic_write(target, render_class_page(results, problems, (Path(out_dir) / "similarity.html").is_file(),
                                           listening, listening_problem, rubric=rubric))
    return target


# --------------------------------------------------------------------------- the listening test

def read_listening(out_dir: str | os.PathLike) -> tuple[Scoring | None, str]:
    """The class's listening test as scored (:func:`grader.listening.results.read_scoring`; None where none was),
    and, in words, why it could not be read ('' when it could; the pages are then rendered without it)."""
    try:
        return read_scoring(Path(out_dir)), ""
    except (OSError, UnreadableScores) as error:
        return None, str(error)


def _score_cells(score: Score) -> dict[str, Any]:
    """A score's table cells: its mean and interval as text (:data:`grader.listening.results.DIGITS`), its
    ratings, what it sorts by and its share of the scale (%)."""
    digits = DIGITS[score.kind]
    low, high = SCALES[score.kind]
    return {"score": "–" if score.score is None else f"{score.score:.{digits}f}",
            "interval": "–" if score.ci_low is None else f"{score.ci_low:.{digits}f} to {score.ci_high:.{digits}f}",
            "ratings": score.ratings, "sort": -1 if score.score is None else score.score,
            "share": 0.0 if score.score is None else 100 * (score.score - low) / (high - low)}


def _submission_listening(result: SubmissionResult, listening: Scoring | None, rubric: Rubric | None,
                          audience: Audience) -> dict[str, Any] | None:
    """The submission's listening score beside the systems' of its test; None where it is in no test, or the
    audience is a student who sees no ``listening`` item of the rubric."""
    if listening is None:
        return None
    if audience != INSTRUCTOR and not (rubric and any(item.check in RATINGS_CHECKS and audience.sees(item.visibility)
                                                      for item in rubric.items)):
        return None
    own = next((score for score in listening.scores if score.submission == result.submission_id), None)
    if own is None:
        return None
    systems = [score for score in listening.scores if score.system is not None and score.kind == own.kind]
    low, high = SCALES[own.kind]
    return {"kind": KIND_WORDS[own.kind], "scale": f"{low} to {high}",
            "rows": [{"label": "this submission", "own": True, **_score_cells(own)}]
            + [{"label": SYSTEM_WORDS[score.system], "own": False, **_score_cells(score)} for score in systems]}


def _class_listening(listening: Scoring | None) -> dict[str, Any] | None:
    """The listening test's section of the class page: one plot per kind scored, the tables and the screening."""
    if listening is None:
        return None
    kinds = [kind for kind in SCALES if any(score.kind == kind for score in listening.scores)]
    return {"plots": [_listening_plot([score for score in listening.scores if score.kind == kind], kind)
                      for kind in kinds],
            "screening": listening.screening}


def _listening_plot(scores: list[Score], kind: Kind) -> dict[str, Any]:
    """One kind's scores as an SVG's shapes (``viewBox 0 0 PLOT_WIDTH PLOT_HEIGHT``): the submissions scored, best
    first, each a dot at its mean on a line over its 95% interval (clipped to the scale), linking its page; the
    systems as dashed lines across, their intervals shaded, labelled right of the plot; and the tables' rows."""
    low, high = SCALES[kind]

    def y(value: float) -> float:
        return round(PLOT_BOTTOM - (min(high, max(low, value)) - low) / (high - low) * (PLOT_BOTTOM - PLOT_TOP), 1)

    submissions = [score for score in scores if score.system is None]
    rated = sorted((score for score in submissions if score.score is not None),
                   key=lambda score: (-score.score, score.submission))
    step = (PLOT_RIGHT - PLOT_LEFT) / max(1, len(rated))
    points = [{"x": round(PLOT_LEFT + (k + 0.5) * step, 1), "y": y(score.score),
               "low": None if score.ci_low is None else y(score.ci_low),
               "high": None if score.ci_high is None else y(score.ci_high),
               "href": quote(f"{PAGES_FOLDER}/{score.submission}.html"),
               "title": f"{score.submission}: {score.interval()}"} for k, score in enumerate(rated)]
    systems = sorted(({"name": score.system, "y": y(score.score), "colour": PLOT_COLOURS[score.system],
                       "band": None if score.ci_low is None else (y(score.ci_high), y(score.ci_low)),
                       "label": f"{PLOT_LABELS[score.system]} {_score_cells(score)['score']}",
                       "title": f"{SYSTEM_WORDS[score.system]}: {score.interval()}"}
                      for score in scores if score.system is not None and score.score is not None),
                     key=lambda system: system["y"])
    label_y = [system["y"] for system in systems]
    for k in range(1, len(label_y)):  # labels of systems scored alike pushed apart, downwards, then back up
        label_y[k] = max(label_y[k], label_y[k - 1] + LABEL_GAP)
    for k in reversed(range(len(label_y))):
        label_y[k] = min(label_y[k], PLOT_BOTTOM if k == len(label_y) - 1 else label_y[k + 1] - LABEL_GAP)
    tick_step = 20 if kind == "mushra" else 1
    return {"kind": kind, "title": f"{KIND_WORDS[kind]} ({low} to {high})",
            "width": PLOT_WIDTH, "height": PLOT_HEIGHT, "left": PLOT_LEFT, "right": PLOT_RIGHT, "top": PLOT_TOP,
            "bottom": PLOT_BOTTOM, "radius": round(min(3.5, max(1.2, step * 0.35)), 1),
            "stroke": round(min(1.5, max(0.5, step * 0.3)), 1),
            "ticks": [{"y": y(value), "label": value} for value in range(low, high + 1, tick_step)],
            "points": points, "systems": [{**system, "label_y": round(at, 1)} for system, at in zip(systems, label_y)],
            "unrated": len(submissions) - len(rated),
            "rows": [{"submission": score.submission, "href": quote(f"{PAGES_FOLDER}/{score.submission}.html"),
                      **_score_cells(score)} for score in sorted(submissions, key=lambda score: score.submission)],
            "system_rows": [{"label": SYSTEM_WORDS[score.system], **_score_cells(score)}
                            for score in scores if score.system is not None]}
