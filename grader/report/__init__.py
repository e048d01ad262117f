"""Reports and exports, rendered from a grading's output folder alone (``OUT/results/*.json``, ``OUT/media``).

``render_all(OUT)`` (re)writes every submission page, the class page ``index.html``,
``grades.csv``, ``junit.xml`` and ``gradescope/<id>.json``; nothing is re-graded. Where
``grade listen results`` scored a listening test (``OUT/listening.csv``), the pages show it.
See :mod:`grader.report.html` for the folder's layout and :mod:`grader.report.exports`
for the formats.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from grader.report.exports import write_exports
from grader.report.html import (INSTRUCTOR, PAGES_FOLDER, Audience, page_path, read_listening, student_audience,
                                write_class_page, write_submission_page)
from grader.results import SubmissionResult
from grader.rubric import Rubric
from grader.term.finalise import finalise
from grader.term.late import lateness_of
from grader.term.model import Lateness

RESULTS_FOLDER = "results"

__all__ = ["Audience", "INSTRUCTOR", "ReportError", "read_results", "render_all", "student_audience"]


class ReportError(ValueError):
    """There is nothing to render; the message names the folder and what to do."""


def read_results(out_dir: str | os.PathLike) -> tuple[list[SubmissionResult], list[str]]:
    """Every readable ``OUT/results/*.json`` (sorted by submission id) and, in words, the files that were not."""
    folder = Path(out_dir) / RESULTS_FOLDER
    if not folder.is_dir():
        raise ReportError(f"{folder}: no results folder. Grade submissions into {out_dir} first "
                          f"(`grade ... --out {out_dir}`), then render.")
    results, problems = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            results.append(SubmissionResult.read(path))
        except (OSError, ValueError, ValidationError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            problems.append(f"{RESULTS_FOLDER}/{path.name}: not a readable result ({first})")
    return sorted(results, key=lambda r: r.submission_id), problems


def final_results(out_dir: str | os.PathLike, rubric: Rubric | None = None,
                  lateness: Callable[[SubmissionResult], Lateness | None] | None = None,
                  ) -> tuple[list[SubmissionResult], list[str]]:
    """``out_dir``'s results as :func:`read_results` gives them, finalised for the term
    (:func:`grader.term.finalise.finalise`: adjustments, lateness, which attempt counts); ``lateness`` by default from
    the gradebook's submission times against the rubric's due date (:func:`grader.term.late.lateness_of`)."""
    results, problems = read_results(out_dir)
    if lateness is None:
        lateness = lateness_of(Path(out_dir), rubric)
    return finalise(results, Path(out_dir), rubric, lateness), problems


def render_all(out_dir: str | os.PathLike, rubric: Rubric | None = None, *, audience: Audience = INSTRUCTOR,
               embed_media: bool = False,
               lateness: Callable[[SubmissionResult], Lateness | None] | None = None,
               final: tuple[list[SubmissionResult], list[str]] | None = None) -> Path:
    """Re-render every page and export of ``out_dir`` from its results; returns the class page's path.

    Args:
        out_dir: a grading's output folder, holding ``results/`` and ``media/``.
        rubric: the rubric graded with; gives the quiz's question texts, answer key and
            visibility. Without it, questions show by id and the answer key is left out
            of student pages.
        audience: who reads the submission pages (the class page and exports are the
            instructor's): :data:`INSTRUCTOR`, or :func:`student_audience`.
        embed_media: put audio and pictures inside each page (``data:`` URIs) instead of
            linking the files; each page then opens alone, at several times the size.
        lateness: each result's lateness; default: the gradebook's submission times against the rubric's due
            date (:func:`grader.term.late.lateness_of`).
        final: :func:`final_results`' answer, where the caller has it already (``grade`` prints its totals).

    Pages and exports show final grades (:func:`grader.term.finalise.finalise`): adjustments by hand, the late
    penalty, and which of a student's attempts counts; every grading is kept in ``OUT/gradebook.sqlite``.

    Raises:
        ReportError: ``out_dir`` has no ``results`` folder.
    """
    out_dir = Path(out_dir)
    results, problems = final_results(out_dir, rubric, lateness) if final is None else final
    listening, listening_problem = read_listening(out_dir)
    for result in results:
        write_submission_page(result, out_dir, rubric=rubric, audience=audience, embed_media=embed_media,
                              listening=listening)
    kept = {page_path(out_dir, r.submission_id) for r in results}
    for stale in set((out_dir / PAGES_FOLDER).glob("*.html")) - kept:
        stale.unlink()
    write_exports(results, out_dir, rubric)
    return write_class_page(results, out_dir, problems, listening, listening_problem, rubric=rubric)
