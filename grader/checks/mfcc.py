"""The ``mfcc`` entry point runs in the sandbox on unseen clips and is compared with the reference MFCC.

The entry is a function of a ``.py`` file (the file is imported), or one defined in a
notebook's code cell (``model.ipynb:extract_mfcc``): then only the notebook's import
statements (each on its own: one that fails is noted and skipped) and what defines things
run: the functions, classes and constants of the cells before the function's (each on its
own, noted and skipped where it fails), then those of its own cell. A constant is a name,
or a tuple of names, set to literals and arithmetic on them (``SR = 16000``, ``SR, HOP =
16000, 256``). Every other statement (a call on a file of the student's, a plot,
training) and every later cell are left out, so no training runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader import sandbox
from grader.artefacts import provides
from grader.context import CheckContext, Outcome
from grader.contract import OUTPUT_FOLDER
from grader.rubric import Item
from grader.limits import MAX_ARRAY_BYTES
from reference.preprocess import N_MFCC

SKIPPED_IMPORT = "; going on without it"
"""Ends the harness's line on stderr about a notebook import that failed (shown when a clip fails)."""

# Runs inside the sandbox: load the student's function (see the module's notes), call it on every
# probe clip, save each result as .npy (or the error). Only arrays come back; the grader validates them.
# A notebook's cells are compiled under the name "model.ipynb, cell 5", with their source in
# linecache, so that a traceback shows the cell and its lines.
HARNESS = """
import ast, importlib.util, json, linecache, os, pathlib, sys, traceback
import numpy as np
source, function, probes, out, SKIPPED = sys.argv[1:6]
source = pathlib.Path(source)
sys.path.insert(0, str(source.parent))
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
DEFINITIONS = (*FUNCTIONS, ast.ClassDef)
CONSTANT_PARTS = (ast.Constant, ast.Name, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.BinOp, ast.UnaryOp,
                  ast.operator, ast.unaryop, ast.expr_context)


def constant(node):
    if isinstance(node, ast.Assign):
        targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets, value = [node.target], node.value
    else:
        return False
    names = [part for target in targets  # SR = 16000, or SR, HOP = 16000, 256
             for part in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target])]
    return (all(isinstance(part, ast.Name) for part in names)
            and all(isinstance(part, CONSTANT_PARTS) for part in ast.walk(value)))


def notebook_function(path, name):
    os.chdir(path.parent)
    cells = []
    for number, cell in enumerate(json.loads(path.read_text(encoding="utf-8-sig"))["cells"], 1):
        if cell.get("cell_type") != "code":
            continue
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else text
        python = "\\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines())
        label = f"{path.name}, cell {number}"
        try:
            tree = ast.parse(python, label)
        except SyntaxError:
            continue
        linecache.cache[label] = (len(python), None, python.splitlines(True), label)
        cells.append((label, tree))
    defining = [(label, tree) for label, tree in cells if any(
        isinstance(node, FUNCTIONS) and node.name == name for node in tree.body)]
    if not defining:
        sys.exit(f"{path.name}: no code cell defines {name}() at its top level")
    namespace = {"__name__": "student_mfcc"}
    for label, tree in cells:
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                try:
                    exec(compile(ast.Module([node], []), label, "exec"), namespace)
                except Exception as error:
                    print(f"{label}: `{ast.unparse(node)}` raised {type(error).__name__}: {error}"
                          + SKIPPED, file=sys.stderr)
    label, tree = defining[-1]
    for earlier_label, earlier in cells[:cells.index((label, tree))]:  # SR = 16000 or a helper in an earlier cell
        for node in earlier.body:
            if isinstance(node, DEFINITIONS) or constant(node):
                try:
                    exec(compile(ast.Module([node], []), earlier_label, "exec"), namespace)
                except Exception as error:
                    print(f"{earlier_label}: defining `{getattr(node, 'name', None) or ast.unparse(node)[:60]}` raised "
                          f"{type(error).__name__}: {error}" + SKIPPED, file=sys.stderr)
    kept = [node for node in tree.body if isinstance(node, DEFINITIONS) or constant(node)]
    exec(compile(ast.Module(kept, []), label, "exec"), namespace)
    return namespace[name]


if source.suffix == ".ipynb":
    extract = notebook_function(source, function)
else:
    spec = importlib.util.spec_from_file_location("student_mfcc", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    extract = getattr(module, function)
for clip in sorted(pathlib.Path(probes).glob("*.wav")):
    try:
        np.save(pathlib.Path(out) / (clip.stem + ".npy"), np.asarray(extract(str(clip)), dtype=np.float32))
    except Exception:
        (pathlib.Path(out) / (clip.stem + ".error.txt")).write_text(traceback.format_exc(limit=3))
"""


def read_array(path: Path, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """The numeric array in a ``.npy`` file that a run wrote, copied into memory in its own dtype.

    Student code controls the file: it is memory-mapped before anything is copied, so a
    header that promises terabytes is refused instead of allocated.

    Raises:
        ValueError: not a ``.npy`` file (truncated or empty too: a run killed while
            saving), not numbers, or more than ``max_bytes``; the message says which.
    """
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:  # whatever a malformed file makes numpy raise (student code wrote it)
        raise ValueError(f"not a readable .npy file: {error or type(error).__name__}") from None
    if not isinstance(mapped, np.ndarray):
        mapped.close()  # an NpzFile: what np.load returns besides arrays when pickles are refused
        raise ValueError("an .npz archive, not one array")
    if mapped.nbytes > max_bytes:
        raise ValueError(f"{mapped.nbytes} bytes, more than the {max_bytes} read back")
    if not np.issubdtype(mapped.dtype, np.number) or np.issubdtype(mapped.dtype, np.complexfloating):
        raise ValueError(f"values of type {mapped.dtype}, not real numbers")
    return np.array(mapped)


@dataclass(frozen=True)
class ProbeMfcc:
    """What the student's function gave for one probe clip (``clip``, its file name), against librosa's MFCC:
    the array's ``shape``, the reference's (``expected``), whether it matched once ``transposed``, and the mean
    absolute difference in dB (``error_db``; None when the shapes differ). ``problem``: why no array came back
    (the function raised, or wrote something else), '' when one did."""

    clip: str
    shape: tuple[int, ...] = ()
    expected: tuple[int, ...] = ()
    transposed: bool = False
    error_db: float | None = None
    problem: str = ""


def measure(clip: str, student: np.ndarray, reference: np.ndarray) -> ProbeMfcc:
    """``student``'s MFCC of the probe ``clip`` against ``reference``: as it is, else transposed."""
    transposed = student.shape != reference.shape and student.T.shape == reference.shape
    matched = student.T if transposed else student
    if matched.shape != reference.shape:
        return ProbeMfcc(clip, student.shape, reference.shape)
    return ProbeMfcc(clip, student.shape, reference.shape, transposed, float(np.mean(np.abs(matched - reference))))


def judge(probe: ProbeMfcc, tolerance_db: float) -> tuple[float, str]:
    """Credit for one probe clip (1, 0.5 for a transposed array, 0) and what was seen."""
    if probe.problem:
        return 0.0, probe.problem
    if probe.error_db is None:
        return 0.0, f"shape {probe.shape}, expected {probe.expected} ({N_MFCC} coefficients x frames)"
    error = probe.error_db
    if not np.isfinite(error) or error > tolerance_db:
        return 0.0, f"values differ from librosa's MFCC by {error:.2f} dB on average (tolerance {tolerance_db})"
    note = " (transposed: (frames, 20))" if probe.transposed else ""
    return 0.5 if probe.transposed else 1.0, f"matches the reference MFCC, mean difference {error:.3g} dB{note}"


@dataclass(frozen=True)
class MfccRun:
    """The ``mfcc`` entry's run on the probe clips: how it ended (and, when it failed, the end of what it printed
    on stderr), the notebook imports it skipped, and each probe clip's result (none when the run failed)."""

    ok: bool
    message: str
    stderr_tail: str
    skipped: list[str]
    probes: list[ProbeMfcc]


NEEDS = ("mfcc.outputs",)
SCORING = ("tolerance_db",)


def _tail(path: Path, chars: int = 600) -> str:
    """The last ``chars`` characters of a text file a run wrote, reading no more than that (it may be huge)."""
    with open(path, "rb") as file:
        file.seek(max(0, file.seek(0, 2) - 4 * chars))
        return file.read().decode(errors="replace")[-chars:]


@provides("mfcc.outputs", kept=MfccRun)
def run_on_probes(ctx: CheckContext) -> MfccRun:
    """Run the ``mfcc`` entry in the sandbox on the probe clips (:data:`HARNESS`), under the rubric's ``mfcc``
    item (:meth:`CheckContext.runner`), and measure what it returned for each."""
    finding = ctx.discovery.findings["mfcc"]
    source, function = finding.value.rsplit(":", 1)
    item = ctx.runner("mfcc")
    workdir = ctx.fresh_workdir("mfcc", item)
    result = ctx.run_command(item, f"mfcc ({finding.value})",
                             ["python", "-c", HARNESS, f"{{workdir}}/{source}", function, "{probes}",
                              f"{{workdir}}/{OUTPUT_FOLDER}", SKIPPED_IMPORT], workdir,
                             {"probes": ctx.heldout.probe_dir})
    skipped = [line for line in result.stderr.splitlines() if line.endswith(SKIPPED_IMPORT)][:3]
    if not result.ok:
        return MfccRun(False, result.message, result.stderr[-1500:], skipped, [])
    probes = []
    for clip in ctx.heldout.probes:
        name = clip.path.stem
        try:
            student = read_array(sandbox.output_file(workdir, f"{OUTPUT_FOLDER}/{name}.npy"))
            probes.append(measure(clip.path.name, student, ctx.heldout.reference_mfcc(clip)))
        except FileNotFoundError:
            try:
                error = _tail(sandbox.output_file(workdir, f"{OUTPUT_FOLDER}/{name}.error.txt"))
            except FileNotFoundError:
                error = "no result"
            probes.append(ProbeMfcc(clip.path.name, problem=f"raised: {error.strip()}"))
        except ValueError as error:
            probes.append(ProbeMfcc(clip.path.name, problem=f"did not return an array ({error})"))
    return MfccRun(True, result.message, "", skipped, probes)


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``tolerance_db`` (mean absolute difference accepted). Share = mean credit over the probe clips."""
    finding = ctx.discovery.findings["mfcc"]
    if finding.status == "missing" or not finding.value:
        return Outcome(0.0, f"No MFCC function found ({finding.how}). Define extract_mfcc(path) in a .py file or "
                            f"a notebook cell, or name it in submission.toml: [entry] mfcc = \"file.py:function\".")
    run = ctx.need("mfcc.outputs")
    if not run.ok:
        return Outcome(0.0, f"Running {finding.value} failed: {run.message}", [run.stderr_tail])
    tolerance = float(item.params.get("tolerance_db", 1.0))
    credits, evidence = [], []
    for probe in run.probes:
        credit, seen = judge(probe, tolerance)
        credits.append(credit)
        evidence.append(f"{probe.clip}: {seen}")
    if any(credit < 1 for credit in credits):  # a notebook import that failed may be why
        evidence += run.skipped
    share = float(np.mean(credits))
    return Outcome(share, f"{finding.value} gave the reference MFCC on {sum(c == 1 for c in credits)} of "
                          f"{len(credits)} unseen clips.", evidence, {"clips": len(credits)})
