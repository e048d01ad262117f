"""Which code of a submission can run: a call graph over its .py files and notebook cells, read with :mod:`ast`.

Static evidence (:mod:`grader.checks.static`) counts only in code that can run, never in a
function that nothing calls. Code that can run (the roots, then everything they reach):

- the module-level statements of every ``.py`` file (a script the student runs by hand,
  such as ``train.py`` or ``evaluate.py``, included), ``if __name__ == "__main__"`` blocks too;
- the code cells of a notebook that ran: every cell of a notebook the grader runs as an entry;
  otherwise the cells the handed-in notebook shows an execution count for, or all of its cells
  when it shows none (a notebook handed in with its outputs cleared);
- the ``mfcc`` entry's function (the grader imports and calls it);
- a library's API: every top-level function and class of a ``.py`` file that only defines
  things (imports, functions, classes, constants, a ``__main__`` block) and is not the script
  an entry command runs. Such a module is imported (``from refsol.train import train``) or
  used from a notebook or a shell by hand; what it defines is what it offers.

A definition is reached when code that can run names it: a call, an attribute (``model.fit``,
``refsol.train.train``), a reference passed on (``map(augment, clips)``, ``Lambda(sampling)``,
callbacks) or an import. A class reached is reached whole, its methods included (``forward``
and ``call`` are called by the framework). Names are matched by their last part across the whole
submission, without resolving imports: lenient, so that a real student's helper is never missed.
What it excludes is the function nothing names: in a script that runs (an entry's ``generate.py``),
a function defined and never called. The work is one walk of each definition reached (an explicit
worklist, no recursion), so it is linear in the code read.
"""
from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath

DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_DEFINING = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
             ast.AnnAssign, ast.Pass)
"""Module-level statements a library may hold (besides a docstring, a ``__main__`` block, import fallbacks)."""


@dataclass(frozen=True)
class Entries:
    """What the grader runs of a submission, as discovery found it."""

    programs: frozenset[str] = frozenset()
    """``.py`` files an entry command runs (``python generate.py ...``): scripts, not libraries."""
    notebooks: frozenset[str] = frozenset()
    """Notebooks the grader runs whole (``reconstruct`` or ``sample`` entries)."""
    mfcc: tuple[str, str] | None = None
    """The ``mfcc`` entry: (file, function)."""


def entries_of(discovery) -> Entries:
    """The entries of a :class:`~grader.discovery.Discovery` (missing roles give nothing)."""
    programs, notebooks = set(), set()
    for role in ("reconstruct", "sample"):
        finding = discovery.findings.get(role)
        if finding is None or finding.status == "missing" or not finding.value:
            continue
        if finding.value.endswith(".ipynb"):
            notebooks.add(finding.value)
            continue
        try:
            words = shlex.split(finding.value)
        except ValueError:
            continue
        programs.update(PurePosixPath(word).as_posix().removeprefix("./") for word in words if word.endswith(".py"))
    mfcc = discovery.findings.get("mfcc")
    target = None
    if mfcc is not None and mfcc.status != "missing" and mfcc.value and ":" in mfcc.value:
        file, _, function = mfcc.value.partition(":")
        target = (file, function)
    return Entries(frozenset(programs), frozenset(notebooks), target)


@dataclass(frozen=True)
class Definition:
    """A top-level function or class of a unit: its name, its lines, and the names its body refers to."""

    name: str
    first: int
    last: int
    kind: str
    names: frozenset[str]


@dataclass
class UnitSummary:
    """What reachability needs of one unit of code (a ``.py`` file or a notebook cell); its syntax tree is
    not kept (hundreds of times its source in memory)."""

    name: str
    file: str
    cell: int = 0
    """The cell's number in its notebook, counted as the student sees them; 0 for a ``.py`` file."""
    ran: bool | None = None
    """For a notebook cell: whether the handed-in notebook shows it ran (None: no record)."""
    library: bool = False
    """A ``.py`` file that only defines things (:func:`is_library`)."""
    definitions: list[Definition] = field(default_factory=list)
    root_names: frozenset[str] = frozenset()
    """Names the unit's module-level code refers to (decorators and base classes included)."""


def summarize(name: str, file: str, tree: ast.Module, cell: int = 0, ran: bool | None = None) -> UnitSummary:
    """The :class:`UnitSummary` of a parsed unit."""
    definitions, roots = [], set()
    for node in tree.body:
        if isinstance(node, DEFINITIONS):
            definitions.append(Definition(node.name, node.lineno, getattr(node, "end_lineno", None) or node.lineno,
                                          "class" if isinstance(node, ast.ClassDef) else "function",
                                          frozenset(_names_in(node))))
            for sub in (*node.decorator_list, *(node.bases if isinstance(node, ast.ClassDef) else ())):
                roots |= _names_in(sub)  # they run when the module does
        else:
            roots |= _names_in(node)
    return UnitSummary(name, file, cell, ran, not cell and is_library(tree), definitions, frozenset(roots))


@dataclass
class Liveness:
    """Which top-level definitions of each unit nothing that can run reaches (:meth:`is_live` asks of a line)."""

    dead: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    """unit name -> (first line, last line, "function name") of each definition nothing reaches."""
    dead_units: set[str] = field(default_factory=set)
    """Notebook cells that did not run: none of their code counts."""

    def is_live(self, unit: str, line: int) -> bool:
        """Whether the code at ``line`` (1-based, within the unit) of ``unit`` can run."""
        return not self.why_dead(unit, line)

    def why_dead(self, unit: str, line: int) -> str:
        """In words, why the code at ``line`` does not count ('' when it does)."""
        if unit in self.dead_units:
            return "in a notebook cell that did not run"
        for first, last, name in self.dead.get(unit, ()):
            if first <= line <= last:
                return f"in {name}, which nothing that runs calls"
        return ""


def _is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"


def is_library(tree: ast.Module) -> bool:
    """Whether a module only defines things (it runs nothing when imported, a ``__main__`` block aside)."""
    for node in tree.body:
        if isinstance(node, _DEFINING) or _is_main_guard(node) or isinstance(node, ast.Try):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        return False
    return True


def _names_in(node: ast.AST) -> set[str]:
    """Every name ``node`` refers to: names, attributes, imported names, and strings that are identifiers
    (``getattr(module, "train")``, ``__all__``). :func:`ast.walk` is a loop: long chains are fine."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            names.add(sub.attr)
        elif isinstance(sub, ast.alias):
            names.add((sub.asname or sub.name).split(".")[-1])
            names.add(sub.name.split(".")[-1])
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.isidentifier():
            names.add(sub.value)
    return names


def liveness(units: list[UnitSummary], entries: Entries) -> Liveness:
    """Which top-level definitions of ``units`` can run (see the module's docstring for the rules)."""
    result = Liveness()
    ran_known = {unit.file for unit in units if unit.cell and unit.ran}
    definitions: list[tuple[UnitSummary, Definition]] = []
    by_name: dict[str, list[int]] = {}
    todo: list[str] = []
    reached: set[int] = set()
    for unit in units:
        if unit.cell and not (unit.file in entries.notebooks or unit.file not in ran_known or unit.ran):
            result.dead_units.add(unit.name)
            continue
        exported = not unit.cell and unit.library and unit.name not in entries.programs
        todo.extend(unit.root_names)
        for definition in unit.definitions:
            index = len(definitions)
            definitions.append((unit, definition))
            by_name.setdefault(definition.name, []).append(index)
            if exported or entries.mfcc == (unit.file, definition.name):
                reached.add(index)
                todo.extend(definition.names)
    seen: set[str] = set()
    while todo:  # a worklist over names: each name, and each definition, is taken at most once
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for index in by_name.get(name, ()):
            if index not in reached:
                reached.add(index)
                todo.extend(definitions[index][1].names)
    for index, (unit, definition) in enumerate(definitions):
        if index not in reached:
            result.dead.setdefault(unit.name, []).append(
                (definition.first, definition.last, f"{definition.kind} {definition.name}"))
    return result
