"""What code shows, seen where it is written: the patterns of static evidence, found in a unit's syntax tree
(:func:`seen_in_tree`) or, for code that does not parse, in its text (:func:`seen_in_text`).

What is seen is not yet what counts: :func:`grader.checks.static.count_evidence` keeps what code that runs
reaches. Each finding is a :class:`Finding` (unit, line, what was seen).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grader.evidence_kinds import EVIDENCE
from grader.limits import MAX_TEXT_FINDINGS

if TYPE_CHECKING:
    from grader.code import CodeUnit


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


def seen_in_tree(unit: CodeUnit, tree: ast.AST) -> dict[str, list[Finding]]:
    """Every kind of evidence seen in ``unit``'s syntax tree ``tree``, by kind (the kinds of :data:`EVIDENCE`)."""
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


def seen_in_text(unit: CodeUnit, why: str) -> dict[str, list[Finding]]:
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
