"""Evaluation claims: PESQ/SNR figures the student reports, checked for plausibility and against the grader's.

Figures are read from the evaluation files (notebook outputs and markdown, reports,
text, JSON, CSV): a number within a few words after "PESQ" or "SNR". Notebooks are read
with :func:`~grader.student_files.read_notebook` (bounded JSON), text files up to
:data:`MAX_TEXT_BYTES`. A figure is
plausible inside the metric's range; it agrees when it is within the rubric's
tolerance of what the grader measured on the student's own reconstructions.
"""
from __future__ import annotations

import re
from itertools import islice

from grader.context import CheckContext, Outcome
from grader.rubric import Item
from grader.student_files import NotebookCell, StudentFileError, joined_text, read_notebook, read_start

PATTERNS = {"pesq_wb": re.compile(r"PESQ[^\d\n]{0,40}?(-?\d++(?:\.\d++)?)", re.IGNORECASE),
            "snr": re.compile(r"\bSNR[^\d\n-]{0,40}?(-?\d++(?:\.\d++)?)", re.IGNORECASE)}
"""A figure after the metric's name. Linear: a match starts only at the name, tries at most 41
gaps before the number, and the number's digits are taken whole, never given back."""
MAX_FIGURES = 20
"""Figures kept per metric and file."""
PLAUSIBLE = {"pesq_wb": (1.0, 4.65), "snr": (-30.0, 80.0)}
MAX_TEXT_BYTES = 200_000
"""Bytes of a text file searched for figures (a report is a few pages)."""
TEXT_SUFFIXES = (".md", ".txt", ".json", ".csv", ".html", ".rst", ".log")


def claimed_figures(ctx: CheckContext) -> dict[str, list[tuple[str, float]]]:
    """metric -> (file, figure) for every figure found in the evaluation files (:data:`MAX_FIGURES` per file)."""
    found: dict[str, list[tuple[str, float]]] = {metric: [] for metric in PATTERNS}
    for name in ctx.discovery.findings["evaluation"].files:
        path = ctx.submission.work_dir / name
        try:
            if path.suffix == ".ipynb":
                text = _notebook_text(read_notebook(path, outputs=True))
            elif path.suffix.lower() in TEXT_SUFFIXES:
                text = read_start(path, MAX_TEXT_BYTES)
            else:
                continue
        except (StudentFileError, OSError):  # not readable: no figures from it (the files check says why)
            continue
        for metric, pattern in PATTERNS.items():
            found[metric] += [(name, float(m.group(1))) for m in islice(pattern.finditer(text), MAX_FIGURES)]
    return found


def _notebook_text(cells: list[NotebookCell]) -> str:
    """Markdown and output text of a notebook's cells (not its code: a formula is not a claim)."""
    parts = []
    for cell in cells:
        if cell.kind == "markdown":
            parts.append(cell.source)
        for output in cell.outputs:
            data = output.get("data")
            parts.append(joined_text(output.get("text")))
            parts.append(joined_text(data.get("text/plain") if isinstance(data, dict) else None))
    return "\n".join(parts)


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``pesq_tolerance``, ``snr_tolerance_db``.

    Share: 0 without figures; 0.25 when every figure is implausible; 0.75 for plausible
    figures the grader cannot measure; 1 when a plausible figure agrees with the grader's.
    """
    tolerance = {"pesq_wb": float(item.params.get("pesq_tolerance", 0.5)),
                 "snr": float(item.params.get("snr_tolerance_db", 3.0))}
    found = claimed_figures(ctx)
    measured = ctx.comparison.get("student", {})
    evidence, plausible, agreeing = [], 0, 0
    for metric, figures in found.items():
        low, high = PLAUSIBLE[metric]
        for name, value in figures:
            ok = low <= value <= high
            plausible += ok
            mine = measured.get(metric)
            agrees = ok and mine is not None and abs(value - mine) <= tolerance[metric]
            agreeing += agrees
            evidence.append(f"{name}: {metric} {value:g}" + ("" if ok else f" (outside {low:g}..{high:g})")
                            + ("" if mine is None else f"; grader measured {mine:.2f}"))
    if not evidence:
        return Outcome(0.0, "No PESQ or SNR figure found in the evaluation files "
                            f"({ctx.discovery.findings['evaluation'].how}). Report the scores you measured.")
    if agreeing:
        return Outcome(1.0, f"{agreeing} reported figure(s) agree with what the grader measured.", evidence)
    if plausible:
        can_measure = any(measured.get(m) is not None for m in PATTERNS)
        return Outcome(0.75, "Reported figures are plausible" + (
            ", but none is within tolerance of what the grader measured on your reconstructions." if can_measure
            else "; the grader could not measure them (no reconstructions to score)."), evidence)
    return Outcome(0.25, "Reported figures are outside the metrics' ranges.", evidence)
