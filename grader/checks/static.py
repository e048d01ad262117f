"""Static evidence: what a submission's code does, read (never run) from .py files and notebook cells.

The code is read and parsed once (:mod:`grader.code`), and what each unit shows is seen there
(:mod:`grader.code_evidence`: each kind of evidence a list of :class:`~grader.code_evidence.Finding`). Here it
counts only in code that can run (:mod:`grader.reachability`: not in a function nothing calls, nor in a notebook
cell that did not run); an architecture's parts count only in code that builds layers (:data:`LAYER_CALLS`: an
empty ``class Generator`` is no generator); and the kinds the rubric asks for are scored.
"""
from __future__ import annotations

from dataclasses import dataclass

from grader.artefacts import provides
from grader.code import CodeRead, CodeUnit, ParsedUnit, parse_units, read_code
from grader.code_evidence import ARCHITECTURE_PARTS, Finding
from grader.context import CheckContext, Outcome
from grader.evidence_kinds import EVIDENCE
from grader.limits import MAX_BUILDER_ROUNDS
from grader.reachability import Entries, UnitSummary, entries_of, liveness
from grader.rubric import Item

TRAINING_NEEDS = ({"loss.backward()", "model.fit"}, {"optimizer.zero_grad()", "Adam optimiser", "AdamW optimiser",
                                                    "SGD optimiser", "Keras Adam", "model.compile"})
"""A training loop needs a gradient step (backward or fit) and an optimiser (or compile)."""


def count_evidence(parsed: list[ParsedUnit], entries: Entries | None = None,
                   unreached: dict[str, list[str]] | None = None) -> dict[str, list[Finding]]:
    """Every kind of evidence in :data:`EVIDENCE` -> what was seen of it in ``parsed`` code that can run.

    ``entries``: what the grader runs (:func:`~grader.reachability.entries_of`); None: no entry, so every
    ``.py`` file's module-level code and every library's definitions count. What was seen but does not
    count (in a function nothing calls, in a cell that did not run, a part of an architecture in code that
    builds no layers) goes to ``unreached``, by kind, in words, when given.
    """
    found: dict[str, list[Finding]] = {kind: [] for kind in EVIDENCE}
    summaries = [unit.summary for unit in parsed if unit.summary is not None]
    offsets = {unit.unit.name: unit.unit.first_line - 1 for unit in parsed if unit.summary is not None}
    for unit in parsed:
        for kind, findings in unit.seen.items():
            found[kind] += findings
    live = liveness(summaries, entries or Entries())
    builders = _layer_builders(summaries)
    kept: dict[str, list[Finding]] = {kind: [] for kind in EVIDENCE}
    for kind, findings in found.items():
        for finding in findings:
            line = finding.line - offsets.get(finding.file, 0)
            why = live.why_dead(finding.file, line) if finding.file in offsets and kind in REACHABLE_KINDS else ""
            if not why and finding.named and (finding.file, _container(summaries, finding.file, line)) not in builders:
                why = "in code that builds no layers"
            if why:
                if unreached is not None:
                    unreached.setdefault(kind, []).append(f"{finding} ({why})")
            else:
                kept[kind].append(finding)
    kept["training_loop"] = _complete_training(kept["training_loop"])
    return kept


def find_evidence(units: list[CodeUnit], entries: Entries | None = None,
                  unreached: dict[str, list[str]] | None = None) -> dict[str, list[Finding]]:
    """:func:`count_evidence` of ``units`` parsed (:func:`parse_units`)."""
    return count_evidence(parse_units(units), entries, unreached)


REACHABLE_KINDS = frozenset({"augmentation", "architecture", "training_loop", "pesq_or_snr"})
"""Evidence that counts only where code that runs reaches it. Loading audio and MFCCs are left as found: the
``mfcc`` entry's run shows them working, and a notebook's unused ``extract_mfcc`` is still Part 1's answer."""
LAYER_CALLS = frozenset({
    # torch.nn
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Linear", "Bilinear",
    "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "Embedding", "MultiheadAttention", "Transformer",
    "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer", "TransformerDecoderLayer", "BatchNorm1d",
    "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d", "Parameter", "LazyLinear", "LazyConv1d", "LazyConv2d",
    # Keras / tf.keras
    "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "SeparableConv1D",
    "SeparableConv2D", "DepthwiseConv2D", "SimpleRNN", "BatchNormalization", "LayerNormalization",
    "MultiHeadAttention", "add_weight",
})
"""Calls (the last part of the name) and base classes that build layers with weights (``add_weight``: a custom
Keras layer's). Containers (``nn.Module``, ``Sequential``, Keras's ``Model``) are not: an empty one holds none."""


def _layer_builders(summaries: list[UnitSummary]) -> set[tuple[str, str]]:
    """(unit, definition name) of the top-level definitions that build layers: directly (a call or a base
    class in :data:`LAYER_CALLS`) or through another definition that does (``ResidualBlock(...)`` in a
    ``WaveNet``), followed :data:`MAX_BUILDER_ROUNDS` deep."""
    names = {d.name for s in summaries for d in s.definitions if d.names & LAYER_CALLS}
    for _ in range(MAX_BUILDER_ROUNDS):
        more = {d.name for s in summaries for d in s.definitions if d.names & names} - names
        if not more:
            break
        names |= more
    return {(s.name, d.name) for s in summaries for d in s.definitions if d.name in names}


def _container(summaries: list[UnitSummary], unit: str, line: int) -> str:
    """The name of the top-level definition of ``unit`` that holds ``line`` ('' for module-level code)."""
    for summary in summaries:
        if summary.name == unit:
            return next((d.name for d in summary.definitions if d.first <= line <= d.last), "")
    return ""


def architectures(findings: list[Finding]) -> dict[str, bool]:
    """Family -> whether every part of it was found, from the ``architecture`` findings."""
    parts = {f.part for f in findings}
    return {family: needed <= parts for family, needed in ARCHITECTURE_PARTS.items()}


def _complete_training(findings: list[Finding]) -> list[Finding]:
    """Keep training findings only when both a gradient step and an optimiser were seen."""
    seen = {f.what for f in findings}
    return findings if all(seen & need for need in TRAINING_NEEDS) else []


@dataclass(frozen=True)
class CodeEvidence:
    """Static evidence of a submission: what counts, by kind (:func:`count_evidence`), what was left unread, and
    what was seen but does not count, by kind, in words."""

    found: dict[str, list[Finding]]
    unread: list[str]
    unreached: dict[str, list[str]]


NEEDS = ("code.evidence",)
SCORING = ("evidence",)


@provides("code.units")
def submission_code(ctx: CheckContext) -> CodeRead:
    """Every .py file and notebook code cell of the submission, read and parsed once (:func:`grader.code.read_code`;
    a grading that discovered the submission just now was given what discovery read)."""
    return read_code(ctx.submission.work_dir, ctx.submission.files)


@provides("code.evidence", needs=("code.units",), kept=CodeEvidence)
def evidence(ctx: CheckContext) -> CodeEvidence:
    """The evidence in the submission's code that can run, given what the grader runs of it."""
    code = ctx.need("code.units")
    unreached: dict[str, list[str]] = {}
    return CodeEvidence(count_evidence(code.units, entries_of(ctx.discovery), unreached), code.unread, unreached)


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``evidence``, a list of :data:`EVIDENCE` kinds. Share = kinds found / kinds asked.

    ``architecture`` counts only when every part of one family was found (see :data:`ARCHITECTURE_PARTS`).
    """
    code = ctx.need("code.evidence")
    found, unread, unreached = code.found, code.unread, code.unreached
    asked = list(item.params["evidence"])
    unknown = [kind for kind in asked if kind not in EVIDENCE]
    if unknown:
        raise ValueError(f"unknown evidence kinds {unknown}; known: {sorted(EVIDENCE)}")
    satisfied, missing, uncounted, evidence = [], [], [], []
    for kind in asked:
        findings = found[kind]
        complete = [family for family, ok in architectures(findings).items() if ok] if kind == "architecture" else []
        if findings and (kind != "architecture" or complete):
            satisfied.append(kind + (f" ({', '.join(complete)})" if complete else ""))
        else:
            missing.append(EVIDENCE[kind] + (f"; parts seen: {', '.join(sorted({f.what for f in findings}))}"
                                             if findings else ""))
        evidence += [str(f) for f in findings[:8]]
        if kind in unreached:
            uncounted.append(f"{'; '.join(unreached[kind][:3])}" + (" ..." if len(unreached[kind]) > 3 else ""))
            evidence += [f"not counted: {seen}" for seen in unreached[kind][:4]]
    explanation = (f"Found {', '.join(satisfied)}." if satisfied else "") + (
        f" Not found: {'; '.join(missing)}." if missing else "") + (
        f" Seen but not counted (code counts where something that runs reaches it; a model's parts where they "
        f"build layers): {'; '.join(uncounted)}." if uncounted else "")
    if unread:
        explanation += f" Not read: {'; '.join(unread[:5])}{f' and {len(unread) - 5} more' if len(unread) > 5 else ''}."
    return Outcome(len(satisfied) / len(asked), explanation.strip(), evidence)
