"""Static evidence: what a submission's code does, read (never run) from .py files and notebook cells.

Each kind of evidence is a list of :class:`Finding` (file, line, what was seen).
Python is parsed with :mod:`ast`, so comments and strings never count as code, and evidence counts only
in code that can run (:mod:`grader.reachability`: not in a function nothing calls, nor in a notebook cell
that did not run); an architecture's parts count only in code that builds layers
(:data:`LAYER_CALLS`: an empty ``class Generator`` is no generator). A
source that does not parse, or is more than :class:`~grader.student_files.CodeParser`
parses of one file, is searched as text for the same calls instead, and its findings
say so. Notebook code cells are read with :func:`~grader.student_files.read_notebook`
(bounded JSON, outputs left out), with IPython magics (``%``, ``!``) blanked out first.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from grader.artefacts import provides
from grader.evidence_kinds import EVIDENCE
from grader.context import CheckContext, Outcome
from grader.reachability import Entries, UnitSummary, entries_of, liveness, summarize
from grader.rubric import Item
from grader.student_files import (CodeParser, OverLimit, StudentFileError, TooLarge, TooMuchCode,
                                  read_bytes, read_notebook)
from grader.limits import MAX_BUILDER_ROUNDS, MAX_CODE_BYTES, MAX_NOTEBOOK_BYTES, MAX_SOURCE_BYTES, MAX_TEXT_FINDINGS


@dataclass(frozen=True)
class Finding:
    """One piece of evidence: where it was seen (file and 1-based line), what it was, and,
    for architecture, the part it is (a key of :data:`ARCHITECTURE_PARTS`' sets)."""

    file: str
    line: int
    what: str
    part: str = ""
    named: bool = False
    """An architecture part seen in a class or function's name (it must build layers to count)."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


@dataclass(frozen=True)
class CodeUnit:
    """Source code to read: a .py file, or one notebook cell (``name`` says which; ``file`` is the
    notebook, whose cells share one file's parsing budget, and ``name`` when empty)."""

    name: str
    source: str
    first_line: int = 1
    file: str = ""
    cell: int = 0
    """A notebook cell's number, counted as the student sees them (markdown included); 0 for a .py file."""
    ran: bool | None = None
    """A notebook cell: whether the handed-in notebook records an execution count for it."""


# Attribute or function names (the last parts of a dotted call) and what they show.
CALLS: dict[str, dict[str, str]] = {
    "librosa_load": {"librosa.load": "librosa.load", "sf.read": "soundfile.read", "soundfile.read": "soundfile.read",
                     "torchaudio.load": "torchaudio.load"},
    "librosa_mfcc": {"feature.mfcc": "librosa.feature.mfcc", "transforms.MFCC": "torchaudio MFCC",
                     "compliance.kaldi.mfcc": "kaldi MFCC"},
    "augmentation": {"effects.pitch_shift": "pitch shift", "effects.time_stretch": "time stretch",
                     "np.roll": "time shift (np.roll)", "torch.roll": "time shift (torch.roll)",
                     "transforms.PitchShift": "pitch shift", "transforms.TimeStretch": "time stretch",
                     "PitchShift": "pitch shift (audiomentations)", "AddGaussianNoise": "added noise (audiomentations)",
                     "TimeStretch": "time stretch", "Shift": "time shift (audiomentations)"},
    "training_loop": {"backward": "loss.backward()", "zero_grad": "optimizer.zero_grad()",
                      "optim.Adam": "Adam optimiser", "optim.AdamW": "AdamW optimiser", "optim.SGD": "SGD optimiser",
                      "optimizers.Adam": "Keras Adam", "fit": "model.fit", "compile": "model.compile"},
    "pesq_or_snr": {"pesq": "pesq()", "pesq_batch": "pesq_batch()",
                    "signal_noise_ratio": "torchmetrics SNR", "scale_invariant_signal_distortion_ratio": "SI-SDR"},
}
ADDED_NOISE = re.compile(r"(random\.(normal|randn|standard_normal)|randn(_like)?)\b")
SNR_NAME = re.compile(r"(^|_)(snr|si_sdr|sisdr|signal_to_noise)(_|$)", re.IGNORECASE)
TRAINING_NEEDS = ({"loss.backward()", "model.fit"}, {"optimizer.zero_grad()", "Adam optimiser", "AdamW optimiser",
                                                    "SGD optimiser", "Keras Adam", "model.compile"})
"""A training loop needs a gradient step (backward or fit) and an optimiser (or compile)."""


def code_units(files: list[Path], root: Path) -> tuple[list[CodeUnit], list[str]]:
    """The .py files and the code cells of the .ipynb files among ``files``, named relative to ``root``,
    and what was left unread, in words: a file or cell over :data:`MAX_SOURCE_BYTES`, a notebook over
    :data:`MAX_NOTEBOOK_BYTES` or holding more JSON than is read, and whatever comes after
    :data:`MAX_CODE_BYTES` of code in all. A malformed notebook gives no units."""
    units, unread, read = [], [], 0
    for path in files:
        name = path.relative_to(root).as_posix()
        try:
            if path.suffix == ".py":
                found = [CodeUnit(name, read_bytes(path, MAX_SOURCE_BYTES).decode(errors="replace"))]
            elif path.suffix == ".ipynb":
                found = notebook_cells(path, name)
            else:
                continue
        except TooLarge:
            unread.append(f"{name} (over {MAX_SOURCE_BYTES / 10**6:g} MB: data rather than code)"
                          if path.suffix == ".py" else f"{name} (a notebook over {MAX_NOTEBOOK_BYTES / 10**6:g} MB)")
            continue
        except OverLimit as error:
            unread.append(f"{name} ({error.problem}: clear its outputs)")
            continue
        except (StudentFileError, OSError):  # malformed, or not a file: reported by the files check, not here
            continue
        for unit in found:
            if len(unit.source) > MAX_SOURCE_BYTES:
                unread.append(f"{unit.name} (over {MAX_SOURCE_BYTES / 10**6:g} MB: data rather than code)")
            elif read + len(unit.source) > MAX_CODE_BYTES:
                unread.append(f"{unit.name} (past {MAX_CODE_BYTES / 10**6:g} MB of code in all)")
            else:
                units.append(unit)
                read += len(unit.source)
    return units, unread


def notebook_cells(path: Path, name: str) -> list[CodeUnit]:
    """A notebook's code cells as units named ``notebook.ipynb[cell 3]`` (cells counted as the student sees them).

    Raises:
        StudentFileError: the notebook cannot be read (:func:`~grader.student_files.read_notebook`).
        OSError: it is missing or unreadable.
    """
    return [CodeUnit(f"{name}[cell {index}]", cell.python, file=name, cell=index, ran=cell.execution_count is not None)
            for index, cell in enumerate(read_notebook(path), 1) if cell.kind == "code"]


@dataclass(frozen=True)
class ParsedUnit:
    """One unit of code read for evidence: everything seen in it (before reachability), and its summary for
    reachability (None: it did not parse, and was searched as text)."""

    unit: CodeUnit
    seen: dict[str, list[Finding]]
    summary: UnitSummary | None


def parse_units(units: list[CodeUnit]) -> list[ParsedUnit]:
    """Parse each unit once (a file's units within one :class:`~grader.student_files.CodeParser`'s bounds),
    noting every kind of evidence seen in it; code that does not parse, or is more than the parser takes, is
    searched as text (:func:`_text_evidence`). Syntax trees are not kept (hundreds of times their source)."""
    parsers: dict[str, CodeParser] = {}
    parsed = []
    for unit in units:
        file = unit.file or unit.name
        parser = parsers.setdefault(file, CodeParser(file))
        try:
            tree = parser.parse(unit.source)
        except TooMuchCode:  # data posing as code, or quadratic f-strings: searched as text
            parsed.append(ParsedUnit(unit, _text_evidence(unit, "too large to parse"), None))
        except StudentFileError:  # hostile nesting included: searched as text, like any code that does not parse
            parsed.append(ParsedUnit(unit, _text_evidence(unit, "file does not parse"), None))
        else:
            parsed.append(ParsedUnit(unit, _tree_evidence(unit, tree), summarize(unit.name, file, tree, unit.cell,
                                                                               unit.ran)))
            del tree  # trees are large: one at a time
    return parsed


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


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for an attribute chain or name; the attributes alone (``b.c``) when the chain starts
    with something else (``f().b.c``); '' for anything else. A loop, not recursion: chains may be long."""
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        attributes.append(node.id)
    return ".".join(reversed(attributes))


def _call_matches(dotted: str, pattern: str) -> bool:
    return dotted == pattern or dotted.endswith("." + pattern)


def _tree_evidence(unit: CodeUnit, tree: ast.AST) -> dict[str, list[Finding]]:
    found: dict[str, list[Finding]] = {kind: [] for kind in EVIDENCE}
    nodes = list(ast.walk(tree))  # one walk; the passes below read the list
    imports = {alias.name.split(".")[0] for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom))
               for alias in node.names} | {node.module.split(".")[0] for node in nodes
                                           if isinstance(node, ast.ImportFrom) and node.module}
    noise_used = _calls_added_to_signals(nodes)
    drawn = {node.targets[0].id for node in nodes if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
             and isinstance(node.targets[0], ast.Name) and _dotted(node.value.func).split(".")[-1] in GAUSSIAN_DRAWS}
    """Names a Gaussian draw was assigned to (``epsilon = K.random_normal(...)``, Keras's VAE idiom)."""

    def add(kind: str, node: ast.AST, what: str, part: str = "", named: bool = False) -> None:
        found[kind].append(Finding(unit.name, unit.first_line - 1 + getattr(node, "lineno", 1), what, part, named))

    for node in nodes:
        if isinstance(node, ast.Call):
            dotted = _dotted(node.func)
            for kind, patterns in CALLS.items():
                for pattern, what in patterns.items():
                    if _call_matches(dotted, pattern) and (kind != "pesq_or_snr" or pattern != "pesq" or "pesq" in imports):
                        add(kind, node, what)
            if ADDED_NOISE.search(dotted) and id(node) in noise_used:
                add("augmentation", node, "added random noise")
            if dotted.split(".")[-1] in ("Conv1d", "Conv1D") and any(k.arg in ("dilation", "dilation_rate")
                                                                     for k in node.keywords):
                add("architecture", node, "dilated 1-D convolution", "dilated_convolution")
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and SNR_NAME.search(node.name):
            add("pesq_or_snr", node, f"{'function' if isinstance(node, ast.FunctionDef) else 'class'} {node.name}")
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            for part, what in _architecture_names(node.name):
                add("architecture", node, f"{what}: {node.name}", part, named=part in NEEDS_LAYERS)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            names = {_dotted(side.func).split(".")[-1] for side in (node.left, node.right) if isinstance(side, ast.Call)}
            noise = names & GAUSSIAN_DRAWS or any(isinstance(side, ast.Name) and side.id in drawn
                                                  for side in (node.left, node.right))
            if {"tanh", "sigmoid"} <= names:
                add("architecture", node, "gated activation tanh x sigmoid", "gated_activation")
            if "exp" in names and noise:
                add("architecture", node, "reparameterisation exp(...) x noise", "reparameterisation")
    return found


def _calls_added_to_signals(nodes: list[ast.AST]) -> set[int]:
    """ids of the calls whose value is added to something (``y + 0.01 * randn(...)``) or assigned to a
    name containing "noise" (``noise = np.random.normal(...)``): random draws used as added noise.

    ``nodes``: a tree's nodes in :func:`ast.walk` order (parents before children), so each
    sum is walked once, from its outermost ``+``, however long the chain of additions.
    """
    used: set[int] = set()
    inside_sum: set[int] = set()
    for node in nodes:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and id(node) not in inside_sum:
            for sub in ast.walk(node):
                inside_sum.add(id(sub))
                if isinstance(sub, ast.Call):
                    used.add(id(sub))
        elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and isinstance(node.targets[0], ast.Name)
              and "noise" in node.targets[0].id.lower()):
            used.add(id(node.value))
    return used


GAUSSIAN_DRAWS = frozenset({"randn_like", "random_normal", "randn", "normal", "standard_normal"})
"""Calls that draw Gaussian noise (torch, numpy, Keras's backend, TensorFlow)."""
ARCHITECTURE_PARTS = {
    "WaveNet": {"dilated_convolution", "gated_activation"},
    "GAN": {"generator", "discriminator"},
    "VAE": {"encoder", "decoder", "reparameterisation"},
}
"""The parts that make each family; an architecture counts when all its parts were found."""
NAMED_PARTS = {
    "wavenet": ("wavenet", "WaveNet model"), "causalconv": ("dilated_convolution", "causal convolution"),
    "generator": ("generator", "GAN generator"), "discriminator": ("discriminator", "GAN discriminator"),
    "critic": ("discriminator", "GAN critic"), "encode": ("encoder", "encoder"), "decode": ("decoder", "decoder"),
    "reparameter": ("reparameterisation", "reparameterisation"), "kl_div": ("kl", "KL divergence term"),
    "kld": ("kl", "KL divergence term"),
}
"""Lower-case fragments of class or function names -> (part, what it shows)."""
NEEDS_LAYERS = frozenset({"wavenet", "dilated_convolution", "generator", "discriminator", "encoder", "decoder"})
"""Parts seen in a name that count only where the named code builds layers (:data:`LAYER_CALLS`); the
reparameterisation, the KL term and the gate are computations, not layers."""


def _architecture_names(name: str) -> list[tuple[str, str]]:
    lowered = name.lower()
    return [part for key, part in NAMED_PARTS.items() if key in lowered]


def architectures(findings: list[Finding]) -> dict[str, bool]:
    """Family -> whether every part of it was found, from the ``architecture`` findings."""
    parts = {f.part for f in findings}
    return {family: needed <= parts for family, needed in ARCHITECTURE_PARTS.items()}


def _complete_training(findings: list[Finding]) -> list[Finding]:
    """Keep training findings only when both a gradient step and an optimiser were seen."""
    seen = {f.what for f in findings}
    return findings if all(seen & need for need in TRAINING_NEEDS) else []


LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
"""Line breaks other than ``\\n`` (those :meth:`str.splitlines` knows). Linear: one or two characters, no repetition."""
COMMENT = re.compile(r"#[^\n]*+")
"""From ``#`` to the end of the line (strings are not told apart, as in a line-by-line search). Linear: possessive."""
TEXT_CALLS = {kind: {pattern: re.compile(rf"{re.escape(pattern)}(?<!\w{re.escape(pattern)})[^\S\n]*+\(")
                     for pattern in patterns} for kind, patterns in CALLS.items()}
"""Each call pattern as text: the name, not after a word character (the fixed-width look-behind;
written after the name so that the search can skip ahead to the name), then ``(`` on the same
line. Linear: a fixed literal, then a possessive run of spaces that never gives any back; the
runs after two matches of the literal do not overlap."""


def _text_evidence(unit: CodeUnit, why: str) -> dict[str, list[Finding]]:
    """The call patterns searched in the text of code that was not parsed (``why``, said in each finding);
    at most one finding per pattern and line, and :data:`MAX_TEXT_FINDINGS` per pattern."""
    found: dict[str, list[Finding]] = {kind: [] for kind in EVIDENCE}
    code = COMMENT.sub("", LINE_BREAKS.sub("\n", unit.source))
    for kind, patterns in TEXT_CALLS.items():
        for pattern, regex in patterns.items():
            line, position = unit.first_line, 0
            for _ in range(MAX_TEXT_FINDINGS):
                match = regex.search(code, position)
                if match is None:
                    break
                line += code.count("\n", position, match.start())
                found[kind].append(Finding(unit.name, line, f"{CALLS[kind][pattern]} ({why})"))
                position = code.find("\n", match.end())  # on to the next line
                if position < 0:
                    break
    for findings in found.values():
        findings.sort(key=lambda finding: finding.line)
    return found


@dataclass(frozen=True)
class CodeRead:
    """The submission's code read once (:func:`code_units`), each unit parsed once (:func:`parse_units`), and
    what was left unread, in words."""

    units: list[ParsedUnit]
    unread: list[str]


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
def read_code(ctx: CheckContext) -> CodeRead:
    """Every .py file and notebook code cell of the submission, read and parsed once."""
    root = ctx.submission.work_dir
    units, unread = code_units([root / name for name in ctx.submission.files if name.endswith((".py", ".ipynb"))],
                               root)
    return CodeRead(parse_units(units), unread)


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
