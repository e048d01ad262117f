"""Copied code between two submissions of a class: winnowed fingerprints of normalised tokens.

The method is MOSS's (Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms for document
fingerprinting", SIGMOD 2003). A submission's code comes as units, ``(label, text)``: a ``.py``
file (``"generate.py"``) or one notebook code cell (``"model.ipynb, cell 4"``). Each unit is
tokenized with Python's :mod:`tokenize` and the tokens normalised, so that what a copier changes
cheaply changes nothing:

- every identifier is one token (``<name>``), every string literal one token (``<str>``; adjacent
  literals and f-strings included), every number one token (``<num>``): renaming changes nothing;
- comments, docstrings (and any statement that is only a string), blank lines, line breaks and
  indentation are dropped: rewording comments and reformatting change nothing;
- ``import`` statements are dropped too (which libraries a solution imports is everybody's code,
  and a copier reorders them freely); what they bind, wherever in the submission they stand, is
  noted for the next rule;
- keywords and operators are kept as written, and so are the attribute names read from an
  imported module (``np.log10``, ``librosa.feature.mfcc``, ``nn.Conv1d``: the module's own alias
  is a name like any other). A copier cannot rename a library's functions without changing what
  the code does, while two independent solutions of the same contract mostly differ in which
  library calls they make: ``<name>.<name>(<name>)`` is everybody's code, ``<name>.griffinlim(<name>)``
  is not.

The tokens are cut into segments at each ``def``, ``class`` and decorator, every run of
:data:`KGRAM` tokens within a segment is hashed, and winnowing keeps the smallest hash of every
:data:`WINDOW` consecutive ones of a segment: a copied run of ``KGRAM + WINDOW - 1`` tokens or more
always leaves a hash in both submissions, wherever it lies, and functions put in another order
select the same hashes. Each hash keeps the lines of its unit it came from, for a pair page to
highlight.

copydetect (the maintained implementation of the same method) is not used: its k-gram hashes are
Python's salted ``hash()`` of strings, different in every process, so that no fingerprint (nor the
starter code's) could be stored and compared later; it hashes characters rather than tokens and maps
matches back to characters, not lines; what would be left of it is the ten lines of winnowing.

Hashes are BLAKE2b's, so the same code gives the same fingerprint in every process, and on
Python 3.11 to 3.13 alike (3.12's f-string tokens are joined into one string token, as 3.11 has it).

Student text is hostile: each unit is read up to :data:`MAX_UNIT_CHARS` (each line up to
:data:`MAX_LINE_CHARS`) and a submission up to :data:`MAX_SUBMISSION_CHARS`, nothing recurses on the
input's nesting, and a unit that is not valid Python is fingerprinted anyway: IPython's ``%magic`` and
``!shell`` lines are blanked, indentation is stripped before tokenizing (so no indentation error can
stop it), and where the tokenizer still gives up (an unterminated string, or Python 3.12's limit of 200
nested brackets) the tokens read so far are kept and tokenizing resumes on the next line.

Two submissions are compared by :func:`compare`, the hashes of code every student was given or much of the class
has left out; a whole class, without holding its fingerprints in memory, by :mod:`grader.similarity.code_index`.
A pair whose score reaches :data:`REPORT_FROM` is worth a look.
"""
from __future__ import annotations

import hashlib
import json
import keyword
import re
import tokenize
from collections import defaultdict
from collections.abc import Iterable, Set
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from grader.limits import (MAX_LABEL_CHARS, MAX_LINE_CHARS, MAX_RESUMES, MAX_SUBMISSION_CHARS, MAX_UNIT_CHARS,
                           MAX_UNIT_TOKENS, MAX_UNITS)

MAX_OCCURRENCES = 8
"""Places of one hash in one submission paired with the other's when matched regions are drawn."""

KGRAM = 14
"""Normalised tokens per hashed run: shorter runs (a call with its arguments) are everybody's code."""
WINDOW = 6
"""Winnowing window, in hashes: every copied run of ``KGRAM + WINDOW - 1`` tokens or more is found."""
MIN_HASHES = 20
"""Hashes a submission needs, once the ignored ones are removed, for a score other than 0: below it
(some 80 tokens, eight lines or so), there is too little code of its own to judge."""
REPORT_FROM = 0.5
"""Default score from which a pair is reported (the rubric sets its own)."""

IMPORT_LINE = re.compile(r"^[ \t]*+(?:from[ \t]++[\w.]++[ \t]++)?import[ \t]++([^\n#;]*+)", re.MULTILINE)
"""A line's ``import`` statement and what follows ``import`` on it. Linear: possessive runs of disjoint classes."""
NAME, STRING, NUMBER = "<name>", "<str>", "<num>"
"""The normalised tokens of identifiers, string literals and numbers."""
_DROPPED = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
            tokenize.ENDMARKER, tokenize.TYPE_COMMENT}
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+: an f-string is many tokens
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)
_MAGIC = ("%", "!")
"""First characters of IPython lines that are not Python (``%matplotlib inline``, ``!pip install x``)."""


class Token(NamedTuple):
    """One normalised token and the lines (1-based, of its unit) that it spans."""

    text: str
    first: int
    last: int


@dataclass(frozen=True)
class UnitFingerprint:
    """The winnowed hashes of one unit, each with the lines it came from."""

    label: str
    hashes: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    """(first line, last line) of each hash's tokens, 1-based, in the unit's text split at line breaks."""
    truncated: bool = False
    """Part of the unit was not read: a bound was reached."""


@dataclass(frozen=True)
class CodeFingerprint:
    """One submission's fingerprint: its units', in the order given. JSON through :meth:`to_dict`."""

    units: tuple[UnitFingerprint, ...]
    truncated: bool = False
    """Some of the submission's code was not read: a bound was reached."""

    @cached_property
    def hashes(self) -> frozenset[int]:
        """Every hash of every unit."""
        return frozenset(h for unit in self.units for h in unit.hashes)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the fingerprint's JSON (hex): what comparisons of it are kept by."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @cached_property
    def places(self) -> dict[int, list[tuple[int, int, int]]]:
        """Hash -> where it lies: (unit index, first line, last line), its first :data:`MAX_OCCURRENCES` places."""
        places: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for index, unit in enumerate(self.units):
            for h, (first, last) in zip(unit.hashes, unit.spans):
                if len(places[h]) < MAX_OCCURRENCES:
                    places[h].append((index, first, last))
        return dict(places)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict that :meth:`from_dict` reads back."""
        return {"truncated": self.truncated,
                "units": [{"label": u.label, "hashes": list(u.hashes), "spans": [list(s) for s in u.spans],
                           "truncated": u.truncated} for u in self.units]}

    @classmethod
    def from_dict(cls, data: dict) -> CodeFingerprint:
        """The fingerprint :meth:`to_dict` wrote."""
        return cls(tuple(UnitFingerprint(u["label"], tuple(u["hashes"]), tuple((s[0], s[1]) for s in u["spans"]),
                                         u["truncated"]) for u in data["units"]), data["truncated"])


class Region(NamedTuple):
    """Lines of a unit of submission ``a`` matching lines of a unit of ``b`` (first and last, 1-based)."""

    label_a: str
    first_a: int
    last_a: int
    label_b: str
    first_b: int
    last_b: int


@dataclass(frozen=True)
class CodeMatch:
    """How much of two submissions' code is the same, and where."""

    score: float
    """Shared hashes over the smaller submission's hash count, ignored hashes left out; 0 when either
    has fewer than :data:`MIN_HASHES`."""
    shared: int
    """Hashes the two have in common, ignored hashes left out."""
    regions: tuple[Region, ...]
    """The matching lines, contiguous runs merged, in ``a``'s order."""

    def to_dict(self) -> dict:
        """A JSON-serialisable dict; each region a list ``[label_a, first_a, last_a, label_b, first_b, last_b]``."""
        return {"score": self.score, "shared": self.shared, "regions": [list(r) for r in self.regions]}


def fingerprint(units: Iterable[tuple[str, str]]) -> CodeFingerprint:
    """The fingerprint of one submission's code.

    Takes the units ``(label, text)`` (a file's text, or a notebook cell's source) in a fixed order;
    each is read up to :data:`MAX_UNIT_CHARS`, all together up to :data:`MAX_SUBMISSION_CHARS`, at
    most :data:`MAX_UNITS` of them. Returns their hashes with the lines each came from.
    """
    budget, truncated, fingerprints, read_units = MAX_SUBMISSION_CHARS, False, [], []
    for index, (label, text) in enumerate(units):
        if index == MAX_UNITS or budget == 0:
            truncated = True
            break
        read_units.append((label, text, text[:min(MAX_UNIT_CHARS, budget)]))
        budget -= len(read_units[-1][2])
    imported = {name for _, _, read in read_units for name in _imported_anywhere(read)}  # an import moved last
    for label, text, read in read_units:                                                  # binds from the start
        segments, complete = _unit_segments(read, imported)
        unit_truncated = len(read) < len(text) or not complete
        hashes, spans = _winnowed(segments)
        fingerprints.append(UnitFingerprint(label[:MAX_LABEL_CHARS], hashes, spans, unit_truncated))
        truncated = truncated or unit_truncated
    return CodeFingerprint(tuple(fingerprints), truncated)


def score(shared: int, own_a: int, own_b: int) -> float:
    """A pair's score: the hashes two submissions share (ignored ones left out) over the count of the one with fewer
    hashes of its own; 0 when either has fewer than :data:`MIN_HASHES` (too little code of its own to judge)."""
    smaller = min(own_a, own_b)
    return 0.0 if smaller < MIN_HASHES else shared / smaller


def compare(a: CodeFingerprint, b: CodeFingerprint, ignored: Set[int] = frozenset(), *,
            regions: bool = True) -> CodeMatch:
    """How much of ``a``'s and ``b``'s code is the same, ``ignored`` hashes left out.

    Returns the score (shared hashes over the smaller submission's count) and, with ``regions`` (most of
    the cost), the matching regions of both, contiguous lines merged; when either has fewer than
    :data:`MIN_HASHES`, score 0 and no regions.
    """
    own_a, own_b = a.hashes - ignored, b.hashes - ignored
    shared = own_a & own_b
    value = score(len(shared), len(own_a), len(own_b))
    return CodeMatch(value, len(shared), _regions(a, b, shared) if regions and value else ())


def _regions(a: CodeFingerprint, b: CodeFingerprint, shared: Set[int]) -> tuple[Region, ...]:
    """The lines of ``a`` and ``b`` where their ``shared`` hashes lie, overlapping or adjacent spans merged,
    in ``a``'s order (its units, then lines)."""
    pairs: dict[tuple[int, int], list[tuple[int, int, int, int]]] = defaultdict(list)
    for h in shared:
        for unit_a, first_a, last_a in a.places[h]:
            for unit_b, first_b, last_b in b.places[h]:
                pairs[unit_a, unit_b].append((first_a, last_a, first_b, last_b))
    merged = sorted((unit_a, first_a, unit_b, first_b, last_a, last_b) for (unit_a, unit_b), spans in pairs.items()
                    for first_a, last_a, first_b, last_b in _merged(spans))
    return tuple(Region(a.units[unit_a].label, first_a, last_a, b.units[unit_b].label, first_b, last_b)
                 for unit_a, first_a, unit_b, first_b, last_a, last_b in merged)


def _merged(spans: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Matched span pairs (first a, last a, first b, last b) merged where both sides overlap or touch.

    Swept in ``a``'s order; a region whose ``a`` lines end before the next span's can grow no more.
    """
    done: list[list[int]] = []
    active: list[list[int]] = []
    for first_a, last_a, first_b, last_b in sorted(spans):
        done += [region for region in active if region[1] < first_a - 1]
        active = [region for region in active if region[1] >= first_a - 1]
        for region in active:
            if first_b <= region[3] + 1 and last_b >= region[2] - 1:
                region[1:] = max(region[1], last_a), min(region[2], first_b), max(region[3], last_b)
                break
        else:
            active.append([first_a, last_a, first_b, last_b])
    return [(first_a, last_a, first_b, last_b) for first_a, last_a, first_b, last_b in done + active]


def _winnowed(segments: list[list[Token]]) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """The hashes winnowing selects from each segment's k-grams, and the lines each k-gram spans.

    Robust winnowing: the smallest hash of each window of :data:`WINDOW`, the rightmost on a tie,
    kept once for as long as it stays the window's smallest. Segments are winnowed apart, so what
    one selects does not depend on its neighbours (functions put in another order select the same).
    """
    hashes: list[int] = []
    spans: list[tuple[int, int]] = []
    for tokens in segments:
        texts = [token.text for token in tokens]
        grams = [_hash(texts[start:start + KGRAM]) for start in range(len(tokens) - KGRAM + 1)]
        window = min(WINDOW, len(grams))
        chosen = -1
        for start in range(len(grams) - window + 1) if grams else ():
            values = grams[start:start + window]
            position = start + window - 1 - values[::-1].index(min(values))
            if position != chosen:
                chosen = position
                hashes.append(grams[position])
                spans.append((tokens[position].first, tokens[position + KGRAM - 1].last))
    return tuple(hashes), tuple(spans)


def _hash(texts: list[str]) -> int:
    """A k-gram's hash: 53 bits of its BLAKE2b, the same in every process (JSON readers keep 53-bit integers exact)."""
    digest = hashlib.blake2b("\x1f".join(texts).encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 11


def _unit_segments(text: str, imported: set[str]) -> tuple[list[list[Token]], bool]:
    """The normalised tokens of one unit's text cut into segments, and whether all of it was read.

    A segment starts at each ``def``, ``class`` or decorator (the code after a definition, up to the
    next, goes with it); "all of it was read" is false where a bound was reached.

    ``imported`` holds the names that the submission's earlier units bound by ``import`` statements;
    this unit's are added to it. Lines are the text's, split at ``\\n``, ``\\r\\n`` or ``\\r``.
    """
    lines = [_tokenizable(line) + "\n" for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    normaliser = _Normaliser(imported)
    start, resumes = 0, 0
    while True:
        reached = start
        try:
            for raw in tokenize.generate_tokens(_reader(lines, start)):
                reached = start + raw.end[0] - 1
                normaliser.take(raw, start)
                if normaliser.size >= MAX_UNIT_TOKENS:
                    return normaliser.finish(), False
            break
        except (tokenize.TokenError, SyntaxError):
            start = reached + 1  # the rest of the line where it gave up is dropped
            resumes += 1
            if start >= len(lines) or resumes > MAX_RESUMES:
                return normaliser.finish(), start >= len(lines)
            normaliser.resume()
    return normaliser.finish(), True


class _Normaliser:
    """Turns :mod:`tokenize`'s tokens into normalised ones, a logical line at a time (see the module's docstring)."""

    def __init__(self, imported: set[str]) -> None:
        self.imported = imported
        self._segments: list[list[Token]] = [[]]
        self._size = 0
        self._statement: list[Token] = []
        self._words: list[str] = []
        """The statement's names and operators as written, to read what an ``import`` binds."""
        self._decorated = False
        """The last statement kept was a decorator: the definition it decorates is in its segment."""
        self._fstring_depth = 0
        self._fstring_first = 0
        self._module_chain = False
        """The last token is an imported name, or an attribute read from one."""
        self._attribute_next = False
        """The last tokens are an imported name (or its attribute) and a dot: the next name is the module's."""

    @property
    def size(self) -> int:
        """Normalised tokens so far."""
        return self._size + len(self._statement)

    def take(self, raw: tokenize.TokenInfo, offset: int) -> None:
        """Adds one token of :mod:`tokenize`, which read the unit from its line ``offset`` (0-based) on."""
        kind, first, last = raw.type, raw.start[0] + offset, raw.end[0] + offset
        if kind == _FSTRING_START or self._fstring_depth:
            self._fstring(kind, first, last)
        elif kind == tokenize.NEWLINE:
            self._end_statement()
        elif kind == tokenize.STRING:
            self._add(STRING, first, last)
        elif kind == tokenize.NUMBER:
            self._add(NUMBER, first, last)
        elif kind == tokenize.NAME:
            self._words.append(raw.string)
            self._name(raw.string, first, last)
        elif kind not in _DROPPED and raw.string.strip():  # operators, and what 3.11 calls ERRORTOKEN ($, ?, !)
            self._words.append(raw.string.strip())
            self._add(raw.string.strip(), first, last)

    def resume(self) -> None:
        """The tokenizer gave up and starts again on a later line: an f-string it was in ends there."""
        if self._fstring_depth:
            self._fstring_depth = 0
            self._add(STRING, self._fstring_first, self._fstring_first)

    def finish(self) -> list[list[Token]]:
        """The unit's normalised tokens in segments, its last statement included."""
        self.resume()
        self._end_statement()
        return self._segments

    def _end_statement(self) -> None:
        """Keeps the logical line's tokens, in a new segment if it opens a definition, unless it is an import
        (whose bound names are noted) or only a string (a docstring)."""
        if self._words[:1] in (["import"], ["from"]):
            self.imported.update(_bound_by_import(self._words))
        elif any(token.text != STRING for token in self._statement):
            if _opens_definition(self._words) and self._segments[-1] and not self._decorated:
                self._segments.append([])
            self._decorated = self._words[:1] == ["@"]
            self._segments[-1] += self._statement
            self._size += len(self._statement)
        self._statement, self._words = [], []
        self._module_chain = self._attribute_next = False

    def _fstring(self, kind: int, first: int, last: int) -> None:
        """Python 3.12's f-string tokens, from its start to its end, make one string token."""
        if kind == _FSTRING_START:
            self._fstring_depth += 1
            if self._fstring_depth == 1:
                self._fstring_first = first
        elif kind == _FSTRING_END:
            self._fstring_depth -= 1
            if not self._fstring_depth:
                self._add(STRING, self._fstring_first, last)

    def _name(self, word: str, first: int, last: int) -> None:
        """A keyword as written, an attribute of an imported module as written, any other name as :data:`NAME`."""
        if keyword.iskeyword(word):
            self._add(word, first, last)
            return
        attribute = self._attribute_next
        after_dot = bool(self._statement) and self._statement[-1].text == "."
        self._add(word if attribute else NAME, first, last)
        self._module_chain = attribute or (word in self.imported and not after_dot)

    def _add(self, text: str, first: int, last: int) -> None:
        """Appends a normalised token; adjacent strings ("a" "b", implicit concatenation) make one."""
        if text == STRING and self._statement and self._statement[-1].text == STRING:
            self._statement[-1] = Token(STRING, self._statement[-1].first, last)
            return
        self._attribute_next = text == "." and self._module_chain
        self._module_chain = False
        self._statement.append(Token(text, first, last))


def _imported_anywhere(text: str) -> set[str]:
    """The names the lines of ``text`` that begin with ``import`` or ``from ... import`` bind (what
    :func:`_bound_by_import` reads of them; parenthesised imports over several lines give their first line's)."""
    bound: set[str] = set()
    for match in IMPORT_LINE.finditer(text):
        bound |= _bound_by_import(["import", *re.findall(r"[\w.]++|,", match[1])])
    return bound


def _opens_definition(words: list[str]) -> bool:
    """Whether a statement, from its words as written, starts a function or class or decorates one."""
    first = words[1] if words[:1] == ["async"] and len(words) > 1 else words[0] if words else ""
    return first in ("def", "class", "@")


def _bound_by_import(words: list[str]) -> set[str]:
    """The names an import statement binds, from its words as written.

    ``import a.b as c, d`` binds ``c`` and ``d``; ``from x import (y, z as w)`` binds ``y`` and ``w``.
    """
    if words[0] == "from":
        words = words[words.index("import") + 1:] if "import" in words else []
    else:
        words = words[1:]
    bound = set()
    for part in " ".join(word for word in words if word not in ("(", ")")).split(","):
        names = part.split()
        name = names[names.index("as") + 1] if "as" in names[:-1] else names[0] if names else ""
        if name.isidentifier():
            bound.add(name)
    return bound


def _tokenizable(line: str) -> str:
    """``line`` without its indentation, cut at :data:`MAX_LINE_CHARS`, blank if it is an IPython magic or
    shell line, NUL read as a space."""
    line = line.lstrip(" \t\f")[:MAX_LINE_CHARS].replace("\x00", " ")
    return "" if line.startswith(_MAGIC) else line


def _reader(lines: list[str], start: int):
    """A ``readline`` over ``lines`` from index ``start`` on (then ``""``), without copying them."""
    position = start

    def readline() -> str:
        nonlocal position
        if position >= len(lines):
            return ""
        position += 1
        return lines[position - 1]
    return readline
