"""Start-up cost of ``sandbox.run`` against a plain subprocess, measured in the same run;
and the cost of a safe ``intake.unpack`` against a plain ``zipfile.extractall``.

Two commands: ``true`` (the bare cost of isolation) and ``python -c "import torch"``
(what a student's script pays before its first line). Each runs as a plain
``subprocess.run`` and through ``sandbox.run`` in pairs, the order swapped every pair so
that background load and warm caches favour neither; the added cost is the median of
the paired differences, with a 95% bootstrap interval. For context, a bare bubblewrap
with nothing but ``/usr`` mounted is timed the same way: the floor any bubblewrap
sandbox pays here. Goal: under 10 ms added per run.

A torch import takes over a second here and varies by tens of milliseconds from run to
run, far more than the goal, so its total is imprecise however it is measured. The
torch command therefore also prints the time before and after the import, which splits
each run into three phases timed on the same clock: start-up (the call until the
script's first line: sandbox set-up and the interpreter's start), the import itself,
and the end (the script's last line until the call returns: interpreter exit and
sandbox teardown). Start-up is precise to about a millisecond.

The intake line unpacks a typical submission (a notebook, a few scripts, 20 generated
clips, a checkpoint: 60 files, about 7 MB). The machine's load average is printed
before and after: on a shared 2-core machine, quote figures together with it.

    .venv/bin/python bench/sandbox.py [--repeats N] [--torch-repeats N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from grader import intake, sandbox

GOAL_ADDED_MS = 10.0
BARE_BWRAP = ["--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
              "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--"]
TORCH_SCRIPT = "import time; print(time.time()); import torch; print(time.time())"
"""The torch command: prints the wall clock (seconds) at its first line and after the import."""
PHASES = ("start-up", "import", "end")


def plain(argv: list[str], workdir: Path) -> Callable[[], str]:
    def start() -> str:
        completed = subprocess.run(argv, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True)
        if completed.returncode != 0:
            raise SystemExit(f"{argv} failed: {completed.stderr.decode(errors='replace')}")
        return completed.stdout.decode()
    return start


def sandboxed(argv: list[str], workdir: Path) -> Callable[[], str]:
    def start() -> str:
        result = sandbox.run(argv, workdir)
        if not result.ok:
            raise SystemExit(f"sandboxed {argv} failed: {result.message}\n{result.stderr}")
        return result.stdout
    return start


def timed(start: Callable[[], str]) -> list[float]:
    """Seconds from the call to its return; for the torch script, also the three phases (seconds)."""
    called = time.time()
    printed = start()
    returned = time.time()
    stamps = [float(word) for word in printed.split()]
    if len(stamps) == 2:
        return [returned - called, stamps[0] - called, stamps[1] - stamps[0], returned - stamps[1]]
    return [returned - called]


def paired(baseline: Callable[[], str], contender: Callable[[], str], repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """``repeats`` timings of each, in pairs with the order swapped every pair: arrays (repeats, columns) in ms."""
    baseline(), contender()  # warm the page cache
    base, cont = [], []
    for index in range(repeats):
        if index % 2:
            base.append(timed(baseline))
            cont.append(timed(contender))
        else:
            cont.append(timed(contender))
            base.append(timed(baseline))
    return 1000 * np.array(base), 1000 * np.array(cont)


def added(base: np.ndarray, cont: np.ndarray) -> tuple[float, float, float]:
    """Median of the paired differences (ms) and its 95% bootstrap interval."""
    differences = cont - base
    draws = np.random.default_rng(0).choice(differences, (2000, len(differences)))
    low, high = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
    return float(np.median(differences)), float(low), float(high)


def measure(name: str, baseline: Callable[[], str], contender: Callable[[], str], repeats: int,
            labels: tuple[str, str] = ("plain", "sandboxed")) -> float:
    """Print both medians and the added milliseconds; return the median added milliseconds."""
    base, cont = paired(baseline, contender, repeats)
    middle, low, high = added(base[:, 0], cont[:, 0])
    base_ms, cont_ms = np.median(base[:, 0]), np.median(cont[:, 0])
    print(f"{name:<36} {labels[0]} {base_ms:7.1f} ms  {labels[1]} {cont_ms:7.1f} ms  ratio {cont_ms / base_ms:5.2f}x  "
          f"added {middle:6.1f} ms [{low:.1f}, {high:.1f}]  (n={repeats})")
    if base.shape[1] > 1:
        for column, phase in enumerate(PHASES, start=1):
            middle_phase, low, high = added(base[:, column], cont[:, column])
            print(f"  {phase:<10} plain {np.median(base[:, column]):7.1f} ms  sandboxed "
                  f"{np.median(cont[:, column]):7.1f} ms  added {middle_phase:6.1f} ms [{low:.1f}, {high:.1f}]")
    return middle


def typical_submission(path: Path) -> Path:
    """A zip like a student's: code, a notebook, generated clips and a small checkpoint."""
    noise = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(36):
            archive.writestr(f"hw3/src/module_{index}.py", "import numpy as np\n" * 200)
        archive.writestr("hw3/model.ipynb", '{"cells": []}' + " " * 200_000)
        for index in range(20):  # 3 s of 16-bit noise at 16 kHz: incompressible, like audio
            archive.writestr(f"hw3/samples/{index}.wav", noise.integers(0, 256, 96_000, dtype=np.uint8).tobytes())
        archive.writestr("hw3/checkpoints/model.pt", noise.integers(0, 256, 4_000_000, dtype=np.uint8).tobytes())
        for name in ("hw3/.DS_Store", "__MACOSX/hw3/._model.ipynb"):
            archive.writestr(name, b"\0" * 1000)
    return path


def measure_intake(folder: Path, repeats: int) -> None:
    source = typical_submission(folder / "doe_12345_67890_hw3.zip")
    counter = iter(range(10**6))

    def naive() -> str:
        with zipfile.ZipFile(source) as archive:
            archive.extractall(folder / f"naive-{next(counter)}")
        return ""

    def safe() -> str:
        intake.unpack(source, folder / f"safe-{next(counter)}")
        return ""

    measure("intake of a 60-file, 7 MB zip", naive, safe, repeats, labels=("extractall", "intake.unpack"))
    for leftover in folder.glob("*-*"):
        shutil.rmtree(leftover)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="pairs of runs for `true` (default 40)")
    parser.add_argument("--torch-repeats", type=int, default=30,
                        help="pairs of runs for the torch import, ~2.5 s a pair (default 30)")
    args = parser.parse_args()
    print("load average before: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))
    problem = sandbox.isolation_problem()
    if problem:
        print(f"sandbox unavailable here: {problem}")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as folder:
        measure_intake(Path(folder), max(5, args.repeats // 2))
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as folder:
        workdir = Path(folder)
        print(f"isolation: {sandbox.run(['true'], workdir).isolation}")
        print("added: median of paired differences [95% bootstrap interval]")
        true = plain(["/usr/bin/true"], workdir)
        measure("bare bwrap true (context: floor)", true, plain([sandbox.BWRAP, *BARE_BWRAP, "true"], workdir),
                args.repeats)
        costs = {
            "true": measure("sandbox.run true", true, sandboxed(["true"], workdir), args.repeats),
            "import torch": measure("sandbox.run python -c 'import torch'",
                                    plain([sys.executable, "-c", TORCH_SCRIPT], workdir),
                                    sandboxed(["python", "-c", TORCH_SCRIPT], workdir), args.torch_repeats),
        }
    print("load average after:  " + " ".join(f"{load:.2f}" for load in os.getloadavg()))
    for command, cost in costs.items():
        print(f"goal: under {GOAL_ADDED_MS:.0f} ms added per run, {command}: "
              f"{'met' if cost < GOAL_ADDED_MS else 'NOT met'} (median added {cost:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
