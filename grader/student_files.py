"""Reading a student's files on the host, within bounds: the one reader every caller uses.

Whatever the grader parses from a submission outside the sandbox (notebooks, answers
files, the manifest, Python source read for evidence, the notebook a run wrote back)
is read here, so that no file costs more than some 256 MB of memory or 2 s:

- size: a file is never read past its cap (:func:`read_bytes`; :func:`read_start` reads
  a text's beginning), and only a regular file is read (not a link, FIFO or device). The
  caps of answers files and the manifest live with their readers (``grader/checks/quiz.py``,
  ``grader/discovery.py``);
- JSON (:func:`parse_json`): strings are skipped and the containers, commas and
  nesting depth of what is left are counted, in linear time, before :func:`json.loads`
  builds anything: ``json`` would otherwise build some 140 bytes of objects per comma,
  and recurse as deep as the file nests;
- TOML (:func:`read_toml`): a line of more than :data:`MAX_TOML_DOTS` dots is refused,
  because tomllib's cost grows with the square of a dotted key's parts (32,000 parts,
  64 kB, took 10 s and 4 GB);
- notebooks (:func:`read_notebook`): bounded JSON, then only the cells' type, source,
  metadata and, when asked, outputs are kept; nbformat's reader and validator are not
  used (20,000 empty outputs, 60 kB, took them 15 s and 1.2 GB);
- Python (:class:`CodeParser`): :mod:`ast` gets at most :data:`MAX_PARSE_BYTES` and
  :data:`MAX_PARSE_BRACES` braces of one file; past that a caller searches the text.

A refusal is a :class:`StudentFileError` (:class:`OverLimit` for a limit rather than a
malformed file) whose message names the file; callers add what the student should do.
Nothing is unpickled. The regular expressions used here and on student text elsewhere
cannot backtrack (possessive quantifiers; each pattern says why it is linear).
"""
from __future__ import annotations

import ast
import functools
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from grader.limits import (MAX_JSON_DEPTH, MAX_JSON_VALUES, MAX_NOTEBOOK_BYTES, MAX_PARSE_BRACES, MAX_PARSE_BYTES,
                           MAX_TOML_DOTS)


_UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)
"""What Python's parser raises on a hostile source (deep nesting raises the last two)."""
_JSON_TEXT = re.compile(r'(?:[^"\[\]{},]++|"(?:[^"\\]++|\\.?)*+(?:"|\Z))++', re.DOTALL)
"""A run of JSON without brackets or commas outside strings (strings included; an unterminated one
runs to the end). Linear: the two alternatives start with different characters (a quote or not), a
string always matches from its quote (closed, or at the end; a trailing lone backslash is taken by
``\\\\.?``), and every quantifier is possessive, so nothing is tried twice and a match fails only on
its first character; the next match starts where the last ended."""
_MAGIC_PREFIXES = ("%", "!")


class StudentFileError(ValueError):
    """A student's file the grader will not parse. ``str()`` is ``"name: problem"``; ``problem``
    reads on after the file's name ("is not valid JSON (...)"), for callers that word it their way."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class OverLimit(StudentFileError):
    """A file past one of the grader's limits (rather than malformed): its size, its JSON values, its code."""


class TooLarge(OverLimit):
    """A file over its size cap; ``size`` and ``limit`` in bytes."""

    def __init__(self, name: str, size: int, limit: int, what: str):
        super().__init__(name, f"is {size:,} bytes, over the {amount(limit)} {what} may be")
        self.size = size
        self.limit = limit


def amount(size: int) -> str:
    """A byte count in words: ``64 kB``, ``2.5 MB``."""
    return f"{size / 10**6:.3g} MB" if size >= 10**6 else f"{size / 10**3:.3g} kB"


def read_bytes(path: str | os.PathLike, max_bytes: int, what: str = "a file") -> bytes:
    """The content of the regular file ``path``, never reading past ``max_bytes``.

    ``what`` names the kind of file in the refusal ("an answers file").

    Raises:
        TooLarge: over ``max_bytes``.
        StudentFileError: a link, FIFO, device or folder rather than a file.
        OSError: missing or unreadable.
    """
    with _open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        if size > max_bytes:
            raise TooLarge(Path(path).name, size, max_bytes, what)
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew since fstat
        raise TooLarge(Path(path).name, len(data), max_bytes, what)
    return data


def read_start(path: str | os.PathLike, max_bytes: int) -> str:
    """The first ``max_bytes`` of the regular file ``path`` as text (UTF-8, what does not decode replaced).

    Raises:
        StudentFileError: a link, FIFO, device or folder rather than a file.
        OSError: missing or unreadable.
    """
    with _open_regular(path) as file:
        return file.read(max_bytes).decode("utf-8", errors="replace")


def _open_regular(path: str | os.PathLike):
    """``path`` opened for reading in binary, refused unless it is a regular file (no link is followed,
    and a FIFO is opened without blocking, then refused)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        if os.path.islink(path):
            raise StudentFileError(path.name, "is a symbolic link, not a file") from None
        raise
    file = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        file.close()
        raise StudentFileError(path.name, "is not a regular file")
    return file


def parse_json(data: bytes, name: str, *, max_values: int = MAX_JSON_VALUES, max_depth: int = MAX_JSON_DEPTH):
    """``data`` parsed as JSON, once its size in values and its depth are known to be within bounds.

    Raises:
        OverLimit: more than ``max_values`` containers and commas.
        StudentFileError: nested deeper than ``max_depth``, not UTF-8, or not valid JSON; the problem says which.
    """
    try:
        text = data.decode("utf-8-sig")  # a byte order mark, as Windows editors write, is no error
    except UnicodeDecodeError:
        raise StudentFileError(name, "is not UTF-8 text (save it as UTF-8)") from None
    del data  # the caller hands its bytes over: from here on only the text and what is built from it are held
    # Brackets and commas outside strings (text, not bytes: bytes.join takes 80 bytes per piece);
    # each run removed is followed by one, so past max_values + 1 runs the rest is not looked at.
    structure, runs = _JSON_TEXT.subn("", text, count=max_values + 2)
    opens, commas = structure.count("[") + structure.count("{"), structure.count(",")
    if runs > max_values or opens + commas > max_values:
        raise OverLimit(name, f"holds more than {max_values:,} JSON values")
    if len(structure) - opens - commas > opens:
        raise StudentFileError(name, "is not valid JSON (more closing brackets than opening ones)")
    depth = 0
    for character in structure:  # at most 2 * max_values brackets and commas
        if character in "[{":
            depth += 1
            if depth > max_depth:  # the problem's words are the report's since before this reader
                raise StudentFileError(name, "is nested too deeply")
        elif character != ",":
            depth -= 1
    del structure
    try:
        return json.loads(text)
    except ValueError as error:  # JSONDecodeError, an integer of too many digits
        raise StudentFileError(name, f"is not valid JSON ({error})") from None


def read_json(path: str | os.PathLike, max_bytes: int, what: str = "a file"):
    """:func:`parse_json` of at most ``max_bytes`` of ``path`` (errors as in :func:`read_bytes` and it)."""
    return parse_json(read_bytes(path, max_bytes, what), Path(path).name)


def read_toml(path: str | os.PathLike, max_bytes: int, what: str = "a file") -> dict:
    """At most ``max_bytes`` of ``path`` parsed as TOML.

    Raises:
        OverLimit: over the size (:class:`TooLarge`), or a line of more than :data:`MAX_TOML_DOTS` dots.
        StudentFileError: not UTF-8, nested too deeply, or not valid TOML.
        OSError: missing or unreadable.
    """
    name = Path(path).name
    try:
        text = read_bytes(path, max_bytes, what).decode("utf-8")
    except UnicodeDecodeError:
        raise StudentFileError(name, "is not UTF-8 text (save it as UTF-8)") from None
    if max((line.count(".") for line in text.split("\n")), default=0) > MAX_TOML_DOTS:  # TOML's own line ends
        raise OverLimit(name, f"has a line of more than {MAX_TOML_DOTS} dots (no key needs that many parts)")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise StudentFileError(name, f"is not valid TOML ({error})") from None
    except RecursionError:  # tomllib recurses once per nested array or table: quickly refused
        raise StudentFileError(name, "is not valid TOML (nested too deeply)") from None


class TooMuchCode(OverLimit):
    """Python past what :class:`CodeParser` parses per file; its text can still be searched."""


class CodeParser:
    """Parses the Python of one student file with :mod:`ast`: a ``.py`` file, or a notebook's code
    cells one after another, within :data:`MAX_PARSE_BYTES` and :data:`MAX_PARSE_BRACES` in all."""

    def __init__(self, name: str):
        self.name = name
        self.parsed_bytes = 0
        self.braces = 0

    def parse(self, source: str | bytes) -> ast.Module:
        """The syntax tree of ``source`` (bytes: decoded as Python does, coding declaration included).

        Raises:
            TooMuchCode: it would take the file past :data:`MAX_PARSE_BYTES` or :data:`MAX_PARSE_BRACES`
                (nothing is counted then: a later, smaller cell may still be parsed).
            StudentFileError: it does not parse (a syntax error, or nesting the parser gives up on).
        """
        size, braces = len(source), source.count("{" if isinstance(source, str) else b"{")
        if self.parsed_bytes + size > MAX_PARSE_BYTES:
            raise TooMuchCode(self.name, f"has more than {amount(MAX_PARSE_BYTES)} of Python to parse")
        if self.braces + braces > MAX_PARSE_BRACES:
            raise TooMuchCode(self.name, f"has more than {MAX_PARSE_BRACES:,} braces to parse")
        self.parsed_bytes += size
        self.braces += braces
        try:
            return ast.parse(source, self.name)
        except _UNPARSABLE as error:
            reason = (error.msg if isinstance(error, SyntaxError) else str(error) if type(error) is ValueError
                      else "nested too deeply")
            raise StudentFileError(self.name, f"does not parse as Python ({reason})") from None


@dataclass(frozen=True)
class NotebookCell:
    """One notebook cell as read: ``kind`` (code, markdown or raw), ``source`` (its lines joined),
    ``metadata`` (a dict, holding whatever the file says) and, when asked for, a code cell's
    ``outputs`` (the dicts as written: read them with :func:`joined_text`)."""

    kind: str
    source: str
    metadata: dict = field(default_factory=dict)
    outputs: tuple[dict, ...] = ()
    execution_count: int | None = None
    """A code cell's execution count as the file records it (None: never run, or cleared)."""

    @property
    def tags(self) -> list[str]:
        """The cell's tags (``metadata.tags``), strings only."""
        tags = self.metadata.get("tags")
        return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []

    @property
    def python(self) -> str:
        """The source as Python: lines of IPython magics and shell commands (``%``, ``!``) blanked,
        so that line numbers still hold."""
        return "\n".join("" if line.lstrip().startswith(_MAGIC_PREFIXES) else line
                         for line in self.source.splitlines())


def joined_text(value) -> str:
    """Notebook text, a string or a list of lines (nbformat writes either), as one string; '' for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(line for line in value if isinstance(line, str))
    return ""


def read_notebook(path: str | os.PathLike, *, max_bytes: int = MAX_NOTEBOOK_BYTES,
                  outputs: bool = False) -> list[NotebookCell]:
    """The cells of the nbformat 4 notebook ``path``, read as bounded JSON (:func:`parse_json`).

    Only each cell's type, source and metadata are kept, and a code cell's outputs with
    ``outputs`` (reading a run's results); nothing else of the file is checked. Without
    ``outputs``, the cells of the last few files read are kept by the file's identity (device,
    inode, size, modification time): discovery, the quiz and static evidence read one notebook
    once between them.

    Raises:
        OverLimit: over ``max_bytes`` (:class:`TooLarge`), or more JSON values than :func:`parse_json` reads.
        StudentFileError: malformed: not JSON, nested too deeply, not an nbformat 4 notebook, or a cell
            without a known type and a text source.
        OSError: missing or unreadable.
    """
    if not outputs:
        try:
            state = os.stat(path, follow_symlinks=False)
        except OSError:
            state = None
        if state is not None and stat.S_ISREG(state.st_mode):
            identity = (os.fspath(path), state.st_dev, state.st_ino, state.st_size, state.st_mtime_ns)
            return list(_source_cells(identity, max_bytes))
    return _read_cells(path, max_bytes, outputs)


@functools.lru_cache(maxsize=8)
def _source_cells(identity: tuple, max_bytes: int) -> tuple[NotebookCell, ...]:
    """:func:`read_notebook` without outputs, kept by the file's identity (``(path, device, inode, size, mtime)``)."""
    return tuple(_read_cells(identity[0], max_bytes, outputs=False))


def _read_cells(path: str | os.PathLike, max_bytes: int, outputs: bool) -> list[NotebookCell]:
    name = Path(path).name
    document = read_json(path, max_bytes, "a notebook")
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list) or document.get("nbformat") != 4:
        raise StudentFileError(name, "is not a Jupyter notebook (nbformat 4, with a list of cells)")
    read = []
    for number, cell in enumerate(cells, 1):
        kind = cell.get("cell_type") if isinstance(cell, dict) else None
        source = cell.get("source", "") if isinstance(cell, dict) else None
        if kind not in ("code", "markdown", "raw") or not (
                isinstance(source, str) or isinstance(source, list) and all(isinstance(s, str) for s in source)):
            raise StudentFileError(name, f"cell {number} is not a code, markdown or raw cell with text as its source")
        metadata, found = cell.get("metadata"), cell.get("outputs") if outputs and kind == "code" else None
        count = cell.get("execution_count") if kind == "code" else None
        read.append(NotebookCell(kind, joined_text(source), metadata if isinstance(metadata, dict) else {},
                                 tuple(o for o in found if isinstance(o, dict)) if isinstance(found, list) else (),
                                 count if isinstance(count, int) and not isinstance(count, bool) else None))
    return read
