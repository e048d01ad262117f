"""Class integrity at scale (issue 17, item 5): a class of 300 compared from cold, then again with one more.

A class is made by varying the examples (``submissions/src``), as a term of real students would hand them in:

- code: each student starts from one example's code, renames every identifier its own way, keeps a random 30%
  of its functions and writes twice as many of its own (generated: numpy and math calls, loops and branches
  drawn at random), so that students share what the examples share, and their own code besides;
- audio: three samples handed in and four generated (tones and noise of its own), and a reconstruction of each
  embedded held-out clip (the reference solution's output with the student's own noise, 20 dB down, and gain);
- a checkpoint: a small WaveNet's 32 tensors, of its own.

Planted: :data:`PLANTED` pairs of each kind (code copied with every identifier renamed and the functions
reordered; a handed-in sample copied at 22.05 kHz, 0.3 times as loud, its first 0.3 s cut; a checkpoint re-saved
transposed under other names), which the comparison must find and nothing else (precision and recall printed).

Timed, each in a process of its own (its peak memory read as its VmHWM: Linux's ru_maxrss carries the forking
parent's over an exec, this benchmark's 200 MB and more): the comparison as ``grade similarity``
runs it (the pairs, ``similarity.csv``, the pages) from cold (no ``similarity.sqlite``), at 100 and at 300
submissions; then the 300 again with one submission added. Printed: seconds, the comparison's peak memory (the
300's over the 100's: flat is about 1) and, apart, the peak once the pages are drawn (matplotlib's spectrograms of
the audio pairs: a cost of its own, whatever the class's size), and the time the fingerprints took to make (grading's share, per submission). Goals: 300
from cold under 60 s and one added under 5 s on 2 cores.

    .venv/bin/python bench/similarity.py [--count 300] [--folder .cache/bench-similarity]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

PLANTED = 5
KEPT_SHARE = 0.3
"""Share of an example's functions a student keeps (renamed); it writes twice as many of its own."""
TONE_SEEDS, AUDIO_SEEDS, WEIGHT_SEEDS = 10**6, 2 * 10**6, 3 * 10**6
"""Seeds of each student's tones, other audio and weights: the student's number added (a copier redraws another's)."""
EXAMPLES = ("broken", "misbehaving", "notebook", "partial", "reference-solution", "vae-only")
NUMPY_CALLS = ("abs", "sqrt", "exp", "log1p", "tanh", "cumsum", "diff", "clip", "mean", "std", "maximum", "minimum",
               "concatenate", "stack", "pad", "roll", "flip", "argmax", "argsort", "sort", "median", "percentile",
               "hanning", "hamming", "convolve", "outer", "dot", "einsum", "linspace", "arange", "zeros_like",
               "ones_like", "where", "nan_to_num", "round", "floor", "ceil", "sign", "square", "power", "log10",
               "sin", "cos", "arctan2", "unwrap", "angle", "real", "imag", "conj", "var", "ptp", "interp", "polyfit")
MATH_CALLS = ("sqrt", "log", "exp", "floor", "ceil", "pi", "cos", "sin", "hypot", "atan2", "gcd", "factorial")


def own_function(rng: np.random.Generator, name: str) -> str:
    """A function of one student's own: a few statements drawn at random."""
    lines = [f"def {name}(signal, rate):", "    value = signal"]
    for _ in range(int(rng.integers(4, 9))):
        kind = int(rng.integers(5))
        call = str(rng.choice(NUMPY_CALLS))
        if kind == 0:
            lines.append(f"    value = np.{call}(value) * {int(rng.integers(2, 99))}")
        elif kind == 1:
            lines.append(f"    for step in range({int(rng.integers(2, 20))}):")
            lines.append(f"        value = value + np.{call}(signal) / (step + {int(rng.integers(1, 9))})")
        elif kind == 2:
            lines.append(f"    if rate > {int(rng.integers(8000, 48000))}:")
            lines.append(f"        value = np.{call}(value, {str(rng.choice(MATH_CALLS))})")
        elif kind == 3:
            lines.append(f"    value = [np.{call}(part) for part in np.array_split(value, {int(rng.integers(2, 9))})]")
        else:
            lines.append(f"    value = math.{rng.choice(MATH_CALLS)}({int(rng.integers(1, 9))}) - np.{call}(value)")
    lines.append("    return value")
    return "\n".join(lines) + "\n"


def student_code(rng: np.random.Generator, base: list[tuple[str, str]], number: int) -> list[tuple[str, str]]:
    """One student's units: ``base``'s, identifiers renamed, half its functions kept, as many of its own added."""
    units = []
    for label, text in base:
        names = sorted(set(re.findall(r"\bdef (\w+)|\b(\w+) = ", text)) - {("", "")})
        for found in names:
            for name in found:
                if name and not name.startswith("__"):
                    text = re.sub(rf"\b{name}\b", f"{name}_{number}", text)
        parts = re.split(r"\n(?=def |class )", text)
        kept = [part for part in parts[1:] if rng.random() < KEPT_SHARE]
        own = [own_function(rng, f"step_{number}_{k}") for k in range(max(3, 2 * len(parts)))]
        units.append((label, "\n".join([parts[0], "import math", *kept, *own])))
    return units


def make_student(args: tuple) -> str:
    """Write one synthetic student's fingerprints (and a result file naming it); return its id."""
    from grader.similarity.audio import clip_fingerprint
    from grader.similarity.code import fingerprint
    from grader.similarity.prints import SubmissionPrints, path_of
    from grader.similarity.weights import fingerprint_weights
    from reference.files import atomic_write
    from reference.preprocess import resample

    out, sid, number, bases, references, twin_of = args
    units = student_code(np.random.default_rng(number), bases[number % len(bases)], number)
    t = np.arange(32000) / 16000
    tones = {f"samples/{k}.wav": tone for k, tone in enumerate(student_tones(number))}
    rng = np.random.default_rng(AUDIO_SEEDS + number)
    audio = {"handed_in": {name: clip_fingerprint(wave, 16000) for name, wave in tones.items()},
             "sample": {str(k): clip_fingerprint(0.2 * rng.standard_normal(24000).cumsum() / 100 +
                                                 0.1 * np.sin(2 * np.pi * rng.uniform(80, 400) * t[:24000]), 16000)
                        for k in range(4)},
             "reconstruct": {name: clip_fingerprint(wave * rng.uniform(0.5, 1.5) + 0.1 * np.std(wave) *
                                                    rng.standard_normal(wave.size), 16000)
                             for name, wave in references.items()}}
    weights_dir = out / "weights" / sid
    weights_dir.mkdir(parents=True, exist_ok=True)
    np.savez(weights_dir / "model.npz", **{f"layer{k}": tensor for k, tensor in enumerate(student_weights(number))})
    if twin_of is not None:  # a planted copy of the student numbered twin_of[1], in kind twin_of[0]
        kind, original = twin_of
        if kind == "code":
            copied = student_code(np.random.default_rng(original), bases[original % len(bases)], original)
            units = [(label, "\n".join(reversed(re.split(r"\n(?=def )", re.sub(
                rf"\b(\w+)_{original}\b", rf"\1_x{number}", text))))) for label, text in copied]
        elif kind == "audio":
            wave = student_tones(original)[0]
            copy = resample(wave.astype(np.float32), 16000, 22050)[int(0.3 * 22050):]
            audio["handed_in"]["samples/copied.wav"] = clip_fingerprint(0.3 * copy, 22050)
        else:
            np.savez(weights_dir / "model.npz", **{f"w{k}": tensor.T.copy()
                                                   for k, tensor in enumerate(student_weights(original))})
    prints = SubmissionPrints(sid, fingerprint(units), dict(units), audio,
                              fingerprint_weights(weights_dir, ["model.npz"]))
    atomic_write(path_of(out, sid), prints.to_json())
    atomic_write(out / "results" / f"{sid}.json", json.dumps({"submission_id": sid}))
    return sid


def student_tones(number: int) -> list[np.ndarray]:
    """The three samples the student ``number`` hands in: 2 s tones of its own, 16 kHz."""
    rng = np.random.default_rng(TONE_SEEDS + number)
    t = np.arange(32000) / 16000
    return [0.3 * np.sin(2 * np.pi * rng.uniform(100, 900) * t) * rng.uniform(0.3, 1, t.size) for _ in range(3)]


def student_weights(number: int) -> list[np.ndarray]:
    """The student ``number``'s checkpoint, a small WaveNet's shapes (8 layers: dilated, residual and skip
    convolutions, a bias; 32 tensors, 172,000 parameters), trained from a start of its own."""
    rng = np.random.default_rng(WEIGHT_SEEDS + number)
    shapes = [(128, 64, 2), (64, 64, 1), (64, 64, 1), (128,)] * 8
    return [(rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]) or 1)).astype(np.float32) for shape in shapes]


def plant(count: int) -> dict[int, tuple[str, int]]:
    """Student number -> (kind, the student it copies): :data:`PLANTED` pairs per kind, spread over the class."""
    planted, rng = {}, np.random.default_rng(17)
    numbers = rng.permutation(count - 1)  # the last student is the one added later
    for index, kind in enumerate(("code", "audio", "checkpoint")):
        for k in range(PLANTED):
            copier, original = numbers[2 * (index * PLANTED + k)], numbers[2 * (index * PLANTED + k) + 1]
            planted[int(copier)] = (kind, int(original))
    return planted


def build(out: Path, count: int, references: dict[str, np.ndarray]) -> float:
    """Fingerprints of ``count`` synthetic students into ``out``; the seconds it took per student."""
    from grader.code import read_code

    bases = []
    for example in EXAMPLES:
        folder = PROJECT_ROOT / "submissions" / "src" / example
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        bases.append([(parsed.unit.name, parsed.unit.source) for parsed in read_code(folder, files).units])
    planted = plant(count)
    jobs = [(out, f"s{number:04d}", number, bases, references, planted.get(number))
            for number in range(count)]
    started = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(make_student, jobs, chunksize=8))
    return (time.perf_counter() - started) * 2 / count  # two processes: per student on one core


COMPARE = """
import json, re, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from grader.similarity.classwide import compare_class, write_csv
from grader.report.similarity import write_similarity_pages
out = Path({out!r})
started = time.perf_counter()
peak = lambda: int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text())[1]) / 1024
comparison = compare_class(out, report_from=0.5, workers=2)
compared = peak()
write_csv(out, comparison)
write_similarity_pages(comparison, out, 0.5)
print(json.dumps({{"seconds": time.perf_counter() - started, "cached": comparison.cached, "peak_mb": compared,
                  "pages_peak_mb": peak(), "pairs": [[p.a, p.b, p.kind] for p in comparison.pairs]}}))
"""


def compare(out: Path) -> dict:
    """``grade similarity``'s comparison of ``out`` in a process of its own: seconds, peak MB, pairs."""
    run = subprocess.run([sys.executable, "-c", COMPARE.format(root=str(PROJECT_ROOT), out=str(out))],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout.splitlines()[-1])


def references_of_heldout() -> tuple[dict[str, np.ndarray], Path]:
    """The reference solution's output for each embedded held-out clip (16 kHz), and the baseline's folder."""
    from grader.heldout import DEFAULT_DATA, load_heldout
    from grader.scoring import load_baseline
    from reference.preprocess import load_audio

    heldout = load_heldout(DEFAULT_DATA)
    baseline = load_baseline(heldout)
    return {clip.path.stem: load_audio(baseline.audio("reference", clip.path.stem))
            for clip in heldout.clips}, baseline.folder


def keep_class_references(out: Path, references: dict[str, np.ndarray], baseline: Path) -> None:
    """The held-out references' fingerprints, as ``grade`` keeps them (:func:`grader.similarity.classwide.keep_references`)."""
    from grader.similarity.audio import file_fingerprint
    from grader.similarity.classwide import REFERENCES_NAME
    from grader.similarity.prints import FINGERPRINTS_FOLDER
    from reference.files import atomic_write

    atomic_write(out / FINGERPRINTS_FOLDER / REFERENCES_NAME, json.dumps({"heldout": "bench", "clips": {
        name: {source: file_fingerprint(baseline / source / f"{name}.wav").to_dict()
               for source in ("reference", "griffin_lim")} for name in references}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--folder", type=Path, default=PROJECT_ROOT / ".cache" / "bench-similarity")
    args = parser.parse_args()
    references, baseline = references_of_heldout()
    shutil.rmtree(args.folder, ignore_errors=True)
    small, full = args.folder / "small", args.folder / "full"
    per_student = build(full, args.count, references)
    keep_class_references(full, references, baseline)
    small_count = max(10, args.count // 3)
    (small / "results").mkdir(parents=True)
    (small / "fingerprints").mkdir()
    for sid in sorted(p.stem for p in (full / "results").glob("*.json"))[:small_count]:
        shutil.copy(full / "results" / f"{sid}.json", small / "results")
        shutil.copy(full / "fingerprints" / f"{sid}.json", small / "fingerprints")
    keep_class_references(small, references, baseline)
    last = f"s{args.count - 1:04d}"
    added = {name: (full / folder / f"{last}.json").read_bytes() for name, folder in
             (("result", "results"), ("prints", "fingerprints"))}
    for folder in ("results", "fingerprints"):
        (full / folder / f"{last}.json").unlink()  # the class without its last student, then with it
    cold_small = compare(small)
    cold = compare(full)
    (full / "results" / f"{last}.json").write_bytes(added["result"])
    (full / "fingerprints" / f"{last}.json").write_bytes(added["prints"])
    one_more = compare(full)

    planted = {(f"s{min(c, o):04d}", f"s{max(c, o):04d}", kind) for c, (kind, o) in plant(args.count).items()}
    copies = {tuple(pair) for pair in one_more["pairs"]}
    print(f"fingerprints: {per_student:.3f} s per submission to make (grading's share, one core)")
    print(f"compared from cold: {small_count} submissions {cold_small['seconds']:.1f} s, peak {cold_small['peak_mb']:.0f} MB; "
          f"{args.count - 1} submissions {cold['seconds']:.1f} s (goal < 60 s), peak {cold['peak_mb']:.0f} MB "
          f"(memory ratio {cold['peak_mb'] / cold_small['peak_mb']:.2f} for {(args.count - 1) / small_count:.1f}x the class, "
          f"{(cold['peak_mb'] - cold_small['peak_mb']) * 1024 / (args.count - 1 - small_count):.0f} kB a submission); "
          f"the pages' spectrograms (matplotlib) then {cold['pages_peak_mb']:.0f} MB")
    print(f"one submission added: {one_more['seconds']:.1f} s (goal < 5 s), {one_more['cached']} pair comparisons "
          f"from the cache")
    print(f"planted pairs found: {len(planted & copies)} of {len(planted)} (missed: {sorted(planted - copies)}); "
          f"pairs reported that were not planted: {len(copies - planted)} {sorted(copies - planted)[:10]}")


if __name__ == "__main__":
    main()
