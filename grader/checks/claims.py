"""Evaluation claims: PESQ/SNR figures the student reports, read for what each claims and checked against the grader's.

Figures are read from the evaluation files (notebook outputs and markdown, reports,
text, JSON, CSV): a number within a few words after "PESQ" or "SNR", and the numbers
listed right after it (``PESQ: 1.0, 1.5, 2.0``). Notebooks are read with
:func:`~grader.student_files.read_notebook` (bounded JSON), text files up to
:data:`MAX_CLAIM_TEXT_BYTES`. Each figure is a :class:`Claim` of what it measures: the metric
(PESQ wide-band or narrow-band, SNR), the set (test, held-out, validation, train, when the
line says), what was measured (the words before the metric: "Griffin-Lim", "VAE"), and
whether it is one clip's or one epoch's figure rather than the submission's.

Figures that claim the same thing must agree with each other: several figures for the same
metric, set and system that lie further apart than twice the rubric's tolerance (a list of
PESQ 1.0 ... 4.5, so that one of them matches whatever is measured) claim nothing, and earn
nothing. Of the figures left, one is plausible inside the metric's range, and agrees when it
is within the rubric's tolerance of what the grader measured on the student's own
reconstructions. Per-clip and per-epoch figures are plausible or not, but never agree or
contradict.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice

from grader.artefacts import provides
from grader.context import CheckContext, Outcome
from grader.rubric import Item
from grader.student_files import NotebookCell, StudentFileError, joined_text, read_notebook, read_start
from grader.limits import MAX_CLAIM_FIGURES, MAX_CLAIM_TEXT_BYTES

PATTERNS = {"pesq": re.compile(r"PESQ([^\d\n]{0,40}?)(-?\d++(?:\.\d++)?)", re.IGNORECASE),
            "snr": re.compile(r"\bSNR([^\d\n-]{0,40}?)(-?\d++(?:\.\d++)?)", re.IGNORECASE)}
"""A figure after the metric's name (group 1: the words between, group 2: the figure). Linear: a match starts only
at the name, tries at most 41 gaps before the number, and the number's digits are taken whole, never given back."""
LISTED = re.compile(r"[^\S\n]*+(?:[,;/|]|\band\b|\bor\b|\bto\b|\.\.\.|…)?[^\S\n]*+(-?\d++(?:\.\d++)?)"
                    r"(?![\w.])", re.IGNORECASE)
"""One more figure of a list right after a figure (``, 1.5``, ``; 2``, `` and 3.5``). Linear: possessive runs of
spaces around one optional separator, then a number taken whole."""
PLAUSIBLE = {"pesq_wb": (1.0, 4.65), "pesq_nb": (1.0, 4.65), "snr": (-30.0, 80.0)}
TEXT_SUFFIXES = (".md", ".txt", ".json", ".csv", ".html", ".rst", ".log")
SETS = ((re.compile(r"held[- _]?out|unseen", re.IGNORECASE), "held-out"),
        (re.compile(r"\btest(?:ing)?\b", re.IGNORECASE), "test"),
        (re.compile(r"\bval(?:id(?:ation)?)?\b|\bdev\b", re.IGNORECASE), "validation"),
        (re.compile(r"\btrain(?:ing)?\b", re.IGNORECASE), "train"))
"""The set a line names, the first that matches (a line about held-out test clips is held-out)."""
PER_ITEM = re.compile(r"\b[\w-]++\.(?:wav|flac|ogg|mp3)\b|\b(?:epoch|step|iter(?:ation)?|clip|sample|file|utterance|"
                      r"example|speaker|batch)[^\S\n]*+[#:]?[^\S\n]*+\d|#\d", re.IGNORECASE)
"""A line about one clip or one epoch rather than the submission's result. Linear: possessive runs."""
NARROW_BAND = re.compile(r"\bnb\b|narrow", re.IGNORECASE)
LABEL_WORDS = re.compile(r"[a-z][a-z+-]*+", re.IGNORECASE)
NOT_LABELS = frozenset({
    "mean", "average", "avg", "overall", "the", "of", "on", "our", "my", "a", "an", "score", "scores", "is", "was",
    "were", "are", "we", "got", "get", "reaches", "reached", "achieves", "achieved", "with", "for", "in", "at",
    "and", "or", "wide-band", "wideband", "wide", "band", "wb", "nb", "narrow-band", "narrowband", "db", "pesq",
    "snr", "set", "clips", "data", "result", "results", "final", "total", "value", "print", "f", "metric",
    "metrics", "evaluation", "reconstruction", "reconstructions", "reconstructed", "audio", "generated", "it",
})
"""Words before a metric that say nothing about which system was measured."""
NEEDS = ("student.claims", "reconstruct.metrics")
SCORING = ("pesq_tolerance", "snr_tolerance_db")


@dataclass(frozen=True)
class Claim:
    """One reported figure and what it claims: ``metric`` (pesq_wb, pesq_nb, snr), ``subset`` (held-out, test,
    validation, train, or '' when unstated), ``label`` (what was measured, in the line's words; '' when
    unnamed), and ``per_item`` (a clip's, an epoch's or a table row's figure)."""

    file: str
    metric: str
    subset: str
    label: str
    value: float
    per_item: bool = False

    @property
    def subject(self) -> tuple[str, str, str]:
        return self.metric, self.subset, self.label

    def describe(self) -> str:
        about = " ".join(filter(None, (self.label, f"on the {self.subset} set" if self.subset else "")))
        return f"{self.metric} {self.value:g}" + (f" ({about})" if about else "") + (
            " (one clip or epoch)" if self.per_item else "")


def read_claims(text: str, file: str) -> list[Claim]:
    """Every figure of ``text`` as a :class:`Claim` (at most :data:`MAX_CLAIM_FIGURES` per metric)."""
    found = []
    for metric, pattern in PATTERNS.items():
        kept = 0
        for match in islice(pattern.finditer(text), MAX_CLAIM_FIGURES):
            start = text.rfind("\n", 0, match.start()) + 1
            stop = text.find("\n", match.end())
            line = text[start:stop if stop >= 0 else len(text)]
            before = text[max(start, match.start() - 40):match.start()]
            name = "pesq_nb" if metric == "pesq" and NARROW_BAND.search(match.group(1) + before[-12:]) else (
                "pesq_wb" if metric == "pesq" else "snr")
            subset = next((label for regex, label in SETS if regex.search(line)), "")
            words = [w.lower() for w in LABEL_WORDS.findall(before)]
            label = " ".join(w for w in words if w not in NOT_LABELS and not any(r.search(w) for r, _ in SETS))
            per_item = bool(PER_ITEM.search(line))
            values = [match.group(2)]
            position = match.end()
            while len(values) < MAX_CLAIM_FIGURES and (more := LISTED.match(text, position)) is not None:
                values.append(more.group(1))
                position = more.end()
            for value in values[:MAX_CLAIM_FIGURES - kept]:
                found.append(Claim(file, name, subset, label, float(value), per_item))
            kept += len(values)
            if kept >= MAX_CLAIM_FIGURES:
                break
    return found


@provides("student.claims", kept=list[Claim])
def claimed_figures(ctx: CheckContext) -> list[Claim]:
    """Every figure found in the evaluation files, as :class:`Claim` s."""
    found: list[Claim] = []
    for name in ctx.discovery.findings["evaluation"].files:
        path = ctx.submission.work_dir / name
        try:
            if path.suffix == ".ipynb":
                text = _notebook_text(read_notebook(path, outputs=True))
            elif path.suffix.lower() in TEXT_SUFFIXES:
                text = read_start(path, MAX_CLAIM_TEXT_BYTES)
            else:
                continue
        except (StudentFileError, OSError):  # not readable: no figures from it (the files check says why)
            continue
        found += read_claims(text, name)
    return found


def contradictions(claims: list[Claim], tolerance: dict[str, float]) -> dict[tuple[str, str, str], list[Claim]]:
    """Subjects (metric, set, label) whose figures lie further apart than twice the metric's tolerance, with
    those figures: they cannot all be true of one system on one set."""
    groups: dict[tuple[str, str, str], list[Claim]] = {}
    for claim in claims:
        if not claim.per_item:
            groups.setdefault(claim.subject, []).append(claim)
    return {subject: group for subject, group in groups.items()
            if max(c.value for c in group) - min(c.value for c in group) > 2 * tolerance[subject[0]]}


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

    Share: 0 without figures, or when every figure contradicts others that claim the same
    (:func:`contradictions`); 0.25 when every figure left is implausible; 0.75 for plausible
    figures the grader cannot confirm; 1 when a plausible figure agrees with the grader's.
    """
    pesq_tolerance = float(item.params.get("pesq_tolerance", 0.5))
    tolerance = {"pesq_wb": pesq_tolerance, "pesq_nb": pesq_tolerance,
                 "snr": float(item.params.get("snr_tolerance_db", 3.0))}
    claims = ctx.need("student.claims")
    if not claims:
        return Outcome(0.0, "No PESQ or SNR figure found in the evaluation files "
                            f"({ctx.discovery.findings['evaluation'].how}). Report the scores you measured.")
    contradicted = contradictions(claims, tolerance)
    measured = ctx.need("reconstruct.metrics").comparison.get("student", {})
    evidence, plausible, agreeing = [], 0, 0
    for claim in claims:
        low, high = PLAUSIBLE[claim.metric]
        ok = low <= claim.value <= high
        mine = measured.get(claim.metric)
        if claim.subject in contradicted and not claim.per_item:
            continue
        plausible += ok
        agrees = ok and not claim.per_item and mine is not None and abs(claim.value - mine) <= tolerance[claim.metric]
        agreeing += agrees
        evidence.append(f"{claim.file}: {claim.describe()}" + ("" if ok else f" (outside {low:g}..{high:g})")
                        + ("" if mine is None else f"; grader measured {mine:.2f}"))
    said = []
    for (metric, subset, label), group in contradicted.items():
        values = sorted({c.value for c in group})
        what = " ".join(filter(None, (metric, label, f"on the {subset} set" if subset else "on an unstated set")))
        said.append(f"{len(group)} figures for {what} run from {values[0]:g} to {values[-1]:g}, further apart "
                    f"than twice the tolerance ({2 * tolerance[metric]:g}): they contradict each other, so none "
                    "of them counts")
        evidence.append(f"{group[0].file}: {what}: {', '.join(f'{v:g}' for v in values[:12])} (contradictory)")
    note = f" {'; '.join(said)}." if said else ""
    if not plausible and not any(e for e in evidence if "(outside" in e):
        return Outcome(0.0, f"Every reported figure is contradicted by another that claims the same.{note}", evidence)
    if agreeing:
        return Outcome(1.0, f"{agreeing} reported figure(s) agree with what the grader measured.{note}", evidence)
    if plausible:
        can_measure = any(measured.get(m) is not None for m in PLAUSIBLE)
        return Outcome(0.75, "Reported figures are plausible" + (
            ", but none is within tolerance of what the grader measured on your reconstructions." if can_measure
            else "; the grader could not measure them (no reconstructions to score).") + note, evidence)
    return Outcome(0.25, f"Reported figures are outside the metrics' ranges.{note}", evidence)
