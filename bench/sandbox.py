"""Start-up cost of ``sandbox.run`` against a plain subprocess, measured in the same run;
and the cost of a safe ``intake.unpack`` against a plain ``zipfile.extractall``.

Two commands: ``true`` (the bare cost of isolation) and ``python -c "import torch"``
(what a student's script pays before its first line). Each runs alternately as a plain
``subprocess.run`` and through ``sandbox.run``; medians (and minima, the least disturbed
runs on a busy machine) are compared. For context, a bare bubblewrap with nothing but
``/usr`` mounted is timed the same way: the floor any bubblewrap sandbox pays here.
Goal: under 10 ms added per run. The intake line unpacks a typical submission (a
notebook, a few scripts, 20 generated clips, a checkpoint: 60 files, about 7 MB).
The machine's load average is printed before and after: on a shared 2-core machine,
wall-clock medians move with it, so quote figures together with it.

    .venv/bin/python bench/sandbox.py [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
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


def plain(argv: list[str], workdir: Path) -> Callable[[], None]:
    def start() -> None:
        completed = subprocess.run(argv, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True)
        if completed.returncode != 0:
            raise SystemExit(f"{argv} failed: {completed.stderr.decode(errors='replace')}")
    return start


def sandboxed(argv: list[str], workdir: Path) -> Callable[[], None]:
    def start() -> None:
        result = sandbox.run(argv, workdir)
        if not result.ok:
            raise SystemExit(f"sandboxed {argv} failed: {result.message}\n{result.stderr}")
    return start


def seconds(start: Callable[[], None]) -> float:
    began = time.perf_counter()
    start()
    return time.perf_counter() - began


def measure(name: str, baseline: Callable[[], None], contender: Callable[[], None], repeats: int,
            labels: tuple[str, str] = ("plain", "sandboxed")) -> float:
    """Print both medians, the ratio and the added milliseconds; return the added median milliseconds."""
    seconds(baseline), seconds(contender)  # warm the page cache
    base, cont = [], []
    for _ in range(repeats):  # alternate, so that background load hits both alike
        base.append(seconds(baseline))
        cont.append(seconds(contender))
    base_ms, cont_ms = statistics.median(base) * 1000, statistics.median(cont) * 1000
    added = cont_ms - base_ms
    print(f"{name:<36} {labels[0]} {base_ms:7.1f} ms  {labels[1]} {cont_ms:7.1f} ms  ratio {cont_ms / base_ms:5.2f}x  "
          f"added {added:6.1f} ms median, {1000 * (min(cont) - min(base)):6.1f} ms min  (n={repeats})")
    return added


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

    def naive() -> None:
        with zipfile.ZipFile(source) as archive:
            archive.extractall(folder / f"naive-{next(counter)}")

    def safe() -> None:
        intake.unpack(source, folder / f"safe-{next(counter)}")

    measure("intake of a 60-file, 7 MB zip", naive, safe, repeats, labels=("extractall", "intake.unpack"))
    for leftover in folder.glob("*-*"):
        shutil.rmtree(leftover)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="runs of each kind for `true` (default 40)")
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
        true = plain(["/usr/bin/true"], workdir)
        measure("bare bwrap true (context: floor)", true, plain([sandbox.BWRAP, *BARE_BWRAP, "true"], workdir),
                args.repeats)
        added = [
            measure("sandbox.run true", true, sandboxed(["true"], workdir), args.repeats),
            measure("sandbox.run python -c 'import torch'", plain([sys.executable, "-c", "import torch"], workdir),
                    sandboxed(["python", "-c", "import torch"], workdir), max(10, args.repeats // 2)),
        ]
    print("load average after:  " + " ".join(f"{load:.2f}" for load in os.getloadavg()))
    worst = max(added)
    print(f"goal: under {GOAL_ADDED_MS:.0f} ms added per run: {'met' if worst < GOAL_ADDED_MS else 'NOT met'} "
          f"(worst median added {worst:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
