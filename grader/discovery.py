"""Discovery: which files of a submission play which part of the contract.

The manifest ``submission.toml`` decides where present (every key optional); without
it, or for what it leaves out, the contract's documented guesses decide. Code is read and
parsed once (:mod:`grader.code`), never run, to decide; every file is read through
:mod:`grader.student_files`, within its bounds. Every role gets a :class:`Finding` that says whether
it was ``declared`` in the manifest, ``guessed``, or is ``missing``, what was read to
decide, and what is wrong with a declaration, so that the report can tell the student
what to fix.

Roles (submission contract, "Optional manifest"):
- ``mfcc``: a Python callable ``"file.py:function"``, or a function defined in a notebook's
  cell, ``"model.ipynb:function"`` (its check runs the notebook's imports and that cell only);
- ``reconstruct``, ``sample``: a command with placeholders, or a notebook path;
- ``samples``, ``answers``, ``evaluation``, ``checkpoints``: files, by glob patterns.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from grader.checks.quiz import AnswersError, NoAnswers, count_notebook_answers, read_answers
from grader.code import CodeRead, read_code
from grader.contract import MANIFEST, PLACEHOLDERS, ROLES
from grader.limits import MAX_ANSWER_CANDIDATES, MAX_DECLARED_PATTERNS, MAX_MANIFEST_BYTES
from grader.student_files import StudentFileError, read_toml

DEFAULT_PATTERNS = {
    "samples": ("samples/*.wav", "samples/*.flac", "samples/*.ogg"),
    "answers": ("answers.toml", "answers.json", "answers.md", "answers.txt"),
    "evaluation": ("evaluation.*", "*.ipynb", "report.*"),
    "checkpoints": ("checkpoints/*", "*.pt", "*.pth", "*.h5", "*.keras", "*.safetensors"),
}
"""What the grader looks for without a manifest; a pattern matches a path from its end
(``samples/*.wav`` also matches ``hw3/samples/a.wav``), as :meth:`PurePosixPath.match` does.
For ``answers`` one file is chosen: TOML before JSON before Markdown before text, any letter
case, the shallowest; where none holds an answer, a notebook whose markdown does (:func:`_guess_answers`)."""
GUESSED_COMMANDS = {
    "reconstruct": "python {script} --mel-dir {{mel_dir}} --out-dir {{out_dir}}",
    "sample": "python {script} --num {{num}} --seed {{seed}} --out-dir {{out_dir}}",
}
_FLAGS = {"reconstruct": ("--mel-dir", "--out-dir"), "sample": ("--num", "--seed", "--out-dir")}
Status = Literal["declared", "guessed", "missing"]


class Finding(BaseModel):
    """What discovery decided for one role."""

    role: str
    status: Status
    value: str | None = None
    """``mfcc``: ``"file.py:function"`` or ``"notebook.ipynb:function"``; ``reconstruct``/``sample``: the
    command or the notebook's path."""
    files: list[str] = []
    """File roles: the matching files, relative POSIX paths, sorted."""
    how: str
    """What was read to decide, in words for the report."""
    problems: list[str] = []
    """What is wrong with a declaration, or what the student could fix; empty when all is well."""


class Discovery(BaseModel):
    """Every role's finding for one submission, and what the manifest said."""

    manifest: str | None
    """``submission.toml`` when the submission has one."""
    manifest_errors: list[str]
    student_name: str | None = None
    student_id: str | None = None
    findings: dict[str, Finding]

    def guessed(self) -> list[Finding]:
        """The findings the report should show as guesses the student can confirm or fix."""
        return [finding for finding in self.findings.values() if finding.status == "guessed"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Student(_Section):
    name: str | None = None
    id: str | None = None


class _Entries(_Section):
    mfcc: str | None = None
    reconstruct: str | None = None
    sample: str | None = None


class _Files(_Section):
    samples: str | list[str] | None = None
    answers: str | list[str] | None = None
    evaluation: str | list[str] | None = None
    checkpoints: str | list[str] | None = None


class _Manifest(_Section):
    student: _Student = _Student()
    entry: _Entries = _Entries()
    files: _Files = _Files()


def discover(work_dir: str | os.PathLike, code: CodeRead | None = None) -> Discovery:
    """Decide every role of the submission unpacked in ``work_dir`` (read only, nothing runs).

    ``code``: its code as read already (:func:`grader.code.read_code`), so that it is read once; None: read here.
    """
    work_dir = Path(work_dir)
    files = _list_files(work_dir)
    manifest, errors = _read_manifest(work_dir)
    code = code if code is not None else read_code(work_dir, files)
    findings = {}
    for role in ROLES:
        declared = getattr(manifest.entry if role in ("mfcc", "reconstruct", "sample") else manifest.files, role)
        if role == "mfcc":
            finding = _declared_mfcc(declared, code, files) if declared else _guess_mfcc(code, files)
        elif role in PLACEHOLDERS:
            finding = _declared_command(role, declared, files) if declared else _guess_command(role, code, files)
        elif declared:
            finding = _declared_files(role, declared, files)
        else:
            finding = _guess_answers(work_dir, files) if role == "answers" else _guess_files(role, files)
        findings[role] = finding
    _one_mode_notebooks(findings)
    has_manifest = (work_dir / MANIFEST).is_file()
    return Discovery(manifest=MANIFEST if has_manifest else None, manifest_errors=errors,
                     student_name=manifest.student.name, student_id=manifest.student.id, findings=findings)


def _list_files(work_dir: Path) -> list[str]:
    """Every regular file under ``work_dir`` as a relative POSIX path, links not followed."""
    found = []
    for root, dirs, names in os.walk(work_dir):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(PurePosixPath(os.path.relpath(path, work_dir)).as_posix())
    return sorted(found)


def _read_manifest(work_dir: Path) -> tuple[_Manifest, list[str]]:
    path = work_dir / MANIFEST
    if not path.is_file():
        return _Manifest(), []
    try:
        return _Manifest.model_validate(read_toml(path, MAX_MANIFEST_BYTES, "a manifest")), []
    except (StudentFileError, OSError) as error:
        problem = error.problem if isinstance(error, StudentFileError) else f"cannot be read ({error.strerror})"
        return _Manifest(), [f"{MANIFEST} {problem}; everything was guessed instead"]
    except ValidationError as error:
        problems = [f"{MANIFEST}: {'.'.join(map(str, e['loc']))}: {_pydantic_words(e)}" for e in error.errors()]
        return _Manifest(), problems + ["everything was guessed instead; the keys are listed in the contract"]


def _pydantic_words(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return error["msg"]


def _by_depth(paths: list[str]) -> list[str]:
    """Shallowest first, then alphabetical: the order guesses prefer."""
    return sorted(paths, key=lambda p: (p.count("/"), p))


# --------------------------------------------------------------------------- mfcc

def _declared_mfcc(value: str, code: CodeRead, files: list[str]) -> Finding:
    how = f"declared in {MANIFEST}: mfcc = {value!r}"
    file, sep, function = value.partition(":")
    if not sep or not file.endswith((".py", ".ipynb")) or not function.isidentifier():
        return Finding(role="mfcc", status="declared", value=value, how=how,
                       problems=[f"write it as 'file.py:function' or 'notebook.ipynb:function', e.g. "
                                 f"'preprocess.py:extract_mfcc' (got {value!r})"])
    problems = []
    if file not in files:
        problems.append(f"{file} is not in the submission")
    elif file.endswith(".ipynb"):
        if function not in code.functions(file):
            problems.append(f"no code cell of {file} defines a function {function!r} (at the cell's top level)")
    elif code.refusal(file):
        problems.append(code.refusal(file))
    elif function not in code.functions(file):
        problems.append(f"{file} defines no top-level function {function!r}")
    return Finding(role="mfcc", status="declared", value=value, how=how, problems=problems)


def _guess_mfcc(code: CodeRead, files: list[str]) -> Finding:
    """A function named extract_mfcc, else one whose name contains 'mfcc': in a .py file, else in a
    notebook's cell (shallowest files first)."""
    for in_notebooks, suffix in ((False, ".py"), (True, ".ipynb")):
        exact, loose = [], []
        for file in _by_depth([name for name in files if name.endswith(suffix)]):
            for function in dict.fromkeys(code.functions(file)):  # a notebook may define one twice
                if function == "extract_mfcc":
                    exact.append(f"{file}:{function}")
                elif "mfcc" in function.lower():
                    loose.append(f"{file}:{function}")
        candidates = exact or loose
        if candidates:
            rule = "a function named extract_mfcc" if exact else "a function whose name contains 'mfcc'"
            where = candidates[0].split(":")[0]
            if in_notebooks:
                where += " (a notebook: the grader runs its imports and that function's cell only)"
            others = f"; also found {', '.join(candidates[1:])}" if len(candidates) > 1 else ""
            return Finding(role="mfcc", status="guessed", value=candidates[0], how=f"{rule} in {where}{others}")
    return Finding(role="mfcc", status="missing",
                   how="no .py file or notebook defines extract_mfcc or a function whose name contains 'mfcc'")


# --------------------------------------------------------------------------- commands

def _declared_command(role: str, value: str, files: list[str]) -> Finding:
    how = f"declared in {MANIFEST}: {role} = {value!r}"
    try:
        words = shlex.split(value)
    except ValueError as error:
        return Finding(role=role, status="declared", value=value, how=how,
                       problems=[f"the command does not split into words ({error}); check its quotes"])
    problems, present = [], set(files)
    if len(words) == 1 and words[0].endswith(".ipynb"):
        if words[0] not in present:
            problems.append(f"{words[0]} is not in the submission")
        return Finding(role=role, status="declared", value=words[0], how=how, problems=problems)
    used = set(re.findall(r"\{(\w++)\}", value))  # linear: possessive, and a brace is no word character
    known = {name for names in PLACEHOLDERS.values() for name in names}
    for name in sorted(used - known):
        problems.append(f"{{{name}}} is not a placeholder; the contract's are "
                        f"{', '.join('{' + n + '}' for n in sorted(known))}")
    for name in PLACEHOLDERS[role]:
        if name not in used:
            problems.append(f"the command never uses {{{name}}}, so it cannot follow the grader's request")
    for word in words:
        if word.endswith((".py", ".ipynb", ".sh")) and "{" not in word and word not in present:
            problems.append(f"{word} is not in the submission")
    return Finding(role=role, status="declared", value=value, how=how, problems=problems)


def _one_mode_notebooks(findings: dict[str, Finding]) -> None:
    """A notebook the manifest declares for one mode only is not also guessed for the other.

    A notebook entry runs once for all the modes it serves, with every mode's placeholders set
    (:mod:`grader.notebook`): a notebook declared for ``sample`` alone then runs as declared,
    with ``mel_dir = None``, instead of also being taken for ``reconstruct``.
    """
    for declared, other in (("reconstruct", "sample"), ("sample", "reconstruct")):
        notebook = findings[declared].value
        if (findings[declared].status == "declared" and findings[other].status == "guessed"
                and findings[other].value == notebook and notebook.endswith(".ipynb")):
            findings[other] = Finding(
                role=other, status="missing", how=f"{notebook} is declared in {MANIFEST} for {declared} only",
                problems=[f"if {notebook} also does {other}, declare it too: [entry] {other} = {notebook!r}"])


def _guess_command(role: str, code: CodeRead, files: list[str]) -> Finding:
    scripts = _by_depth([f for f in files if PurePosixPath(f).name == "generate.py"])
    reasons = []
    for script in scripts:
        strings = code.strings(script)
        missing = [flag for flag in _FLAGS[role] if flag not in strings]
        if not missing:
            return Finding(role=role, status="guessed", value=GUESSED_COMMANDS[role].format(script=shlex.quote(script)),
                           how=f"{script} names the flags {', '.join(_FLAGS[role])}")
        reasons.append(f"{script} does not name {', '.join(missing)}")
    if not scripts:
        reasons.append("no generate.py")
    notebooks = [name for name in files if name.endswith(".ipynb")]
    if len(notebooks) == 1:
        return Finding(role=role, status="guessed", value=notebooks[0],
                       how=f"{notebooks[0]} is the only notebook; it runs with the placeholders "
                       f"{', '.join(PLACEHOLDERS[role])} set as variables ({'; '.join(reasons)})")
    reasons.append(f"{len(notebooks)} notebooks, so none could be chosen" if notebooks else "no notebook")
    return Finding(role=role, status="missing", how="; ".join(reasons),
                   problems=[f"name the {role} command in {MANIFEST} ([entry] {role} = ...)"] if notebooks else [])


# --------------------------------------------------------------------------- files

def _matches(patterns: tuple[str, ...] | list[str], files: list[str]) -> list[str]:
    return sorted(f for f in files if any(PurePosixPath(f).match(pattern) for pattern in patterns))


def _declared_files(role: str, value: str | list[str], files: list[str]) -> Finding:
    patterns = [value] if isinstance(value, str) else value
    matched = _matches(patterns[:MAX_DECLARED_PATTERNS], files)
    problems = [] if matched else [f"no file matches {', '.join(patterns[:MAX_DECLARED_PATTERNS])}"]
    if len(patterns) > MAX_DECLARED_PATTERNS:
        problems.append(f"{len(patterns)} patterns are listed; only the first {MAX_DECLARED_PATTERNS} were used")
    return Finding(role=role, status="declared", files=matched, problems=problems,
                   how=f"declared in {MANIFEST}: {role} = {value!r}")


def _guess_files(role: str, files: list[str]) -> Finding:
    patterns = DEFAULT_PATTERNS[role]
    matched = _matches(patterns, files)
    status: Status = "guessed" if matched else "missing"
    return Finding(role=role, status=status, files=matched,
                   how=f"the contract's default {', '.join(patterns)} "
                   + (f"matched {len(matched)} file{'s' * (len(matched) != 1)}" if matched else "matched nothing"))


def _guess_answers(work_dir: Path, files: list[str]) -> Finding:
    """The answers file: the first of the contract's names (in :data:`DEFAULT_PATTERNS`' order, then
    shallowest) that holds an answer, else the notebook whose markdown holds the most ``**Answer:**``
    lines, else the first name even without answers, so that the student reads why. At most
    :data:`MAX_ANSWER_CANDIDATES` files of each kind are read."""
    patterns = DEFAULT_PATTERNS["answers"]
    named = sorted((f for f in files if PurePosixPath(f).name.lower() in patterns),
                   key=lambda f: (patterns.index(PurePosixPath(f).name.lower()), f.count("/"), f))
    default = f"the contract's default {', '.join(patterns)}"
    tried = named[:MAX_ANSWER_CANDIDATES]
    for number, name in enumerate(tried):
        if _holds_answers(work_dir / name):
            empty = f" ({_hold_no_answer(tried[:number])})" if number else ""
            return Finding(role="answers", status="guessed", files=[name], how=f"{default} matched {name}{empty}")
    notebooks = _by_depth([f for f in files if f.endswith(".ipynb")])
    counts = {notebook: count_notebook_answers(work_dir / notebook) for notebook in notebooks[:MAX_ANSWER_CANDIDATES]}
    best = max(counts, key=lambda notebook: counts[notebook], default=None)
    before = _hold_no_answer(tried) if tried else f"{default} matched nothing"
    if best is not None and counts[best]:
        among = f", the most of {len(counts)} notebooks" if len(counts) > 1 else ""
        unread = (f" (only the {MAX_ANSWER_CANDIDATES} shallowest of {len(notebooks)} notebooks were read)"
                  if len(notebooks) > MAX_ANSWER_CANDIDATES else "")
        return Finding(role="answers", status="guessed", files=[best],
                       how=f"{before}; the markdown of {best} holds {counts[best]} answer"
                       f"{'s' * (counts[best] != 1)} (**Answer:** lines){among}{unread}")
    nothing = "no notebook's markdown holds an **Answer:** line" if notebooks else "no notebook"
    return Finding(role="answers", status="guessed" if named else "missing", files=named[:1],
                   how=f"{before}; {nothing}")


def _hold_no_answer(names: list[str]) -> str:
    """``"a.toml, b.md hold no answer"`` (``holds`` for one file)."""
    return f"{', '.join(names)} hold{'s' * (len(names) == 1)} no answer"


def _holds_answers(path: Path) -> bool:
    """Whether an answers file holds an answer, read without the rubric (:func:`read_answers`); one
    that cannot be read counts as holding them: its problem is reported when the quiz reads it."""
    try:
        read_answers(path)
    except NoAnswers:
        return False
    except (AnswersError, OSError):
        pass
    return True
