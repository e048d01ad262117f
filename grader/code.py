"""A submission's code, read and parsed once: its ``.py`` files and notebook code cells as units
(:func:`code_units`), each parsed once (:func:`parse_units`) into what discovery, static evidence and
reachability read of it; syntax trees are not kept.

Every file is read through :mod:`grader.student_files`, within its bounds: a file or cell over
:data:`MAX_SOURCE_BYTES`, a notebook over :data:`MAX_NOTEBOOK_BYTES`, and whatever comes after
:data:`MAX_CODE_BYTES` of code in all is left unread (and said so); a file's Python past what
:class:`~grader.student_files.CodeParser` parses, or that does not parse, is searched as text.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from grader.code_evidence import Finding, seen_in_text, seen_in_tree
from grader.limits import MAX_CODE_BYTES, MAX_NOTEBOOK_BYTES, MAX_SOURCE_BYTES
from grader.reachability import UnitSummary, summarize
from grader.student_files import (CodeParser, OverLimit, StudentFileError, TooLarge, TooMuchCode, amount, read_bytes,
                                  read_notebook)


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


def read_code(root: Path, files: list[str]) -> CodeRead:
    """The ``.py`` files and notebooks among ``files`` (relative POSIX paths under ``root``), read and parsed once."""
    units, unread, refused = code_units([root / name for name in files if name.endswith((".py", ".ipynb"))], root)
    return CodeRead(parse_units(units), unread, refused)


def code_units(files: list[Path], root: Path) -> tuple[list[CodeUnit], list[str], dict[str, str]]:
    """The .py files and the code cells of the .ipynb files among ``files``, named relative to ``root``;
    what was left unread, in words: a file or cell over :data:`MAX_SOURCE_BYTES`, a notebook over
    :data:`MAX_NOTEBOOK_BYTES` or holding more JSON than is read, and whatever comes after
    :data:`MAX_CODE_BYTES` of code in all; and the files not read at all, with why (a malformed notebook, a
    link: the files check reports those), by name."""
    units: list[CodeUnit] = []
    unread: list[str] = []
    refused: dict[str, str] = {}
    read = 0
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
            refused[name] = (f"is over {MAX_SOURCE_BYTES / 10**6:g} MB: data rather than code" if path.suffix == ".py"
                             else f"is a notebook over {MAX_NOTEBOOK_BYTES / 10**6:g} MB")
            unread.append(f"{name} (over {MAX_SOURCE_BYTES / 10**6:g} MB: data rather than code)"
                          if path.suffix == ".py" else f"{name} (a notebook over {MAX_NOTEBOOK_BYTES / 10**6:g} MB)")
            continue
        except OverLimit as error:
            refused[name] = error.problem
            unread.append(f"{name} ({error.problem}: clear its outputs)")
            continue
        except StudentFileError as error:
            refused[name] = error.problem
            continue
        except OSError as error:
            refused[name] = f"cannot be read ({error.strerror})"
            continue
        for unit in found:
            if len(unit.source) > MAX_SOURCE_BYTES:
                unread.append(f"{unit.name} (over {MAX_SOURCE_BYTES / 10**6:g} MB: data rather than code)")
            elif read + len(unit.source) > MAX_CODE_BYTES:
                unread.append(f"{unit.name} (past {MAX_CODE_BYTES / 10**6:g} MB of code in all)")
                refused.setdefault(unit.file or unit.name, f"comes after the {amount(MAX_CODE_BYTES)} of code "
                                                           "the grader reads")
            else:
                units.append(unit)
                read += len(unit.source)
    return units, unread, refused


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
    """One unit of code parsed: everything seen in it (before reachability), its summary for reachability and
    its string constants (None and empty: it did not parse, was searched as text, and ``problem`` says why)."""

    unit: CodeUnit
    seen: dict[str, list[Finding]]
    summary: UnitSummary | None
    strings: frozenset[str] = frozenset()
    """Every string constant (argparse flags, for instance)."""
    problem: str = ""
    """Why it was not parsed, in words ('does not parse as Python (invalid syntax)'); '' when it was."""

    @property
    def functions(self) -> list[str]:
        """Names of the functions defined at the unit's top level, in order."""
        return [d.name for d in self.summary.definitions if d.kind == "function"] if self.summary else []


def parse_units(units: list[CodeUnit]) -> list[ParsedUnit]:
    """Parse each unit once (a file's units within one :class:`~grader.student_files.CodeParser`'s bounds),
    noting every kind of evidence seen in it; code that does not parse, or is more than the parser takes, is
    searched as text (:func:`~grader.code_evidence.seen_in_text`). Syntax trees are not kept (hundreds of times
    their source)."""
    parsers: dict[str, CodeParser] = {}
    parsed = []
    for unit in units:
        file = unit.file or unit.name
        parser = parsers.setdefault(file, CodeParser(file))
        try:
            tree = parser.parse(unit.source)
        except TooMuchCode as error:  # data posing as code, or quadratic f-strings: searched as text
            parsed.append(ParsedUnit(unit, seen_in_text(unit, "too large to parse"), None, problem=error.problem))
        except StudentFileError as error:  # hostile nesting included: searched as text, like any code that does not parse
            parsed.append(ParsedUnit(unit, seen_in_text(unit, "file does not parse"), None, problem=error.problem))
        else:
            strings = frozenset(node.value for node in ast.walk(tree)
                                if isinstance(node, ast.Constant) and isinstance(node.value, str))
            parsed.append(ParsedUnit(unit, seen_in_tree(unit, tree),
                                     summarize(unit.name, file, tree, unit.cell, unit.ran), strings))
            del tree  # trees are large: one at a time
    return parsed


@dataclass(frozen=True)
class CodeRead:
    """The submission's code read once (:func:`code_units`), each unit parsed once (:func:`parse_units`); what was
    left unread, in words; and the files not read at all, with why, by name."""

    units: list[ParsedUnit]
    unread: list[str]
    refused: dict[str, str] = field(default_factory=dict)

    def of(self, file: str) -> list[ParsedUnit]:
        """The parsed units of ``file``: a ``.py`` file's one, a notebook's code cells."""
        return [unit for unit in self.units if (unit.unit.file or unit.unit.name) == file]

    def functions(self, file: str) -> list[str]:
        """Names of the functions defined at the top level of ``file`` (of each of a notebook's cells that parse)."""
        return [name for unit in self.of(file) for name in unit.functions]

    def strings(self, file: str) -> set[str]:
        """Every string constant in ``file``."""
        return {text for unit in self.of(file) for text in unit.strings}

    def refusal(self, file: str) -> str:
        """Why the ``.py`` file ``file`` gives no function, in words for the student; '' when it was parsed."""
        why = self.refused.get(file) or next((unit.problem for unit in self.of(file) if unit.problem), "")
        if not why:
            return ""
        fix = ("fix its syntax error" if why.startswith("does not parse") else "" if why.startswith("cannot be read")
               else "keep data out of code, or split the file")
        return f"{file} {why}" + (f"; {fix}" if fix else "")
