"""The ``mfcc`` entry point runs in the sandbox on unseen clips and is compared with the reference MFCC."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from grader import sandbox
from grader.context import OUTPUT_FOLDER, CheckContext, Outcome
from grader.rubric import Item
from reference.preprocess import N_MFCC

# Runs inside the sandbox: import the student's file, call the function on every probe clip,
# save each result as .npy (or the error). Only arrays come back; the grader validates them.
HARNESS = """
import importlib.util, pathlib, sys, traceback
import numpy as np
source, function, probes, out = sys.argv[1:5]
sys.path.insert(0, str(pathlib.Path(source).parent))
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


MAX_ARRAY_BYTES = 64 * 2**20
"""Largest array read back from a run (an MFCC of a probe clip takes a few kB)."""


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


def compare(student: np.ndarray, reference: np.ndarray, tolerance_db: float) -> tuple[float, str]:
    """Credit for one clip (1, 0.5 for a transposed array, 0) and what was seen."""
    credit = 1.0
    if student.shape != reference.shape and student.T.shape == reference.shape:
        student, credit = student.T, 0.5
    if student.shape != reference.shape:
        return 0.0, f"shape {student.shape}, expected {reference.shape} ({N_MFCC} coefficients x frames)"
    error = float(np.mean(np.abs(student - reference)))
    if not np.isfinite(error) or error > tolerance_db:
        return 0.0, f"values differ from librosa's MFCC by {error:.2f} dB on average (tolerance {tolerance_db})"
    note = " (transposed: (frames, 20))" if credit < 1 else ""
    return credit, f"matches the reference MFCC, mean difference {error:.3g} dB{note}"


def _tail(path: Path, chars: int = 600) -> str:
    """The last ``chars`` characters of a text file a run wrote, reading no more than that (it may be huge)."""
    with open(path, "rb") as file:
        file.seek(max(0, file.seek(0, 2) - 4 * chars))
        return file.read().decode(errors="replace")[-chars:]


def check(ctx: CheckContext, item: Item) -> Outcome:
    """params: ``tolerance_db`` (mean absolute difference accepted). Share = mean credit over the probe clips."""
    finding = ctx.discovery.findings["mfcc"]
    if finding.status == "missing" or not finding.value:
        return Outcome(0.0, f"No MFCC function found ({finding.how}). Define extract_mfcc(path) in a .py file, "
                            f"or name it in submission.toml: [entry] mfcc = \"file.py:function\".")
    source, function = finding.value.rsplit(":", 1)
    tolerance = float(item.params.get("tolerance_db", 1.0))
    workdir = ctx.fresh_workdir("mfcc", item)
    result = ctx.run_command(item, f"mfcc ({finding.value})",
                             ["python", "-c", HARNESS, f"{{workdir}}/{source}", function, "{probes}",
                              f"{{workdir}}/{OUTPUT_FOLDER}"], workdir, {"probes": ctx.heldout.probe_dir})
    if not result.ok:
        return Outcome(0.0, f"Running {finding.value} failed: {result.message}", [result.stderr[-1500:]])
    credits, evidence = [], []
    for clip in ctx.heldout.probes:
        name = clip.path.stem
        try:
            student = read_array(sandbox.output_file(workdir, f"{OUTPUT_FOLDER}/{name}.npy"))
            credit, seen = compare(student, ctx.heldout.reference_mfcc(clip), tolerance)
        except FileNotFoundError:
            try:
                error = _tail(sandbox.output_file(workdir, f"{OUTPUT_FOLDER}/{name}.error.txt"))
            except FileNotFoundError:
                error = "no result"
            credit, seen = 0.0, f"raised: {error.strip()}"
        except ValueError as error:
            credit, seen = 0.0, f"did not return an array ({error})"
        credits.append(credit)
        evidence.append(f"{clip.path.name}: {seen}")
    share = float(np.mean(credits))
    return Outcome(share, f"{finding.value} gave the reference MFCC on {sum(c == 1 for c in credits)} of "
                          f"{len(credits)} unseen clips.", evidence, {"clips": len(credits)})
