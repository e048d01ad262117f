"""Student code's start-up in the sandbox with the course environment, against the same outside it.

Prints, all measured in this run, the median wall seconds of a fresh process (start to exit) that:
- does nothing (`true`): the sandbox's own start;
- imports TensorFlow, imports torch, or imports librosa and computes a first MFCC (numba's warm cache);
each run with the environment's Python inside the sandbox (:func:`grader.sandbox.run`, its set-up included) and
outside it (the same interpreter, variables and a copy of the warm cache), the ratio inside / outside, and how
much of the difference the sandbox's own start explains. Goal: each ratio <= 1.10 beyond the sandbox's few ms.
Also prints what the environment adds once: its build time and its size on disk.

Usage: .venv/bin/python bench/environment.py [--repeats N]   (needs `make setup`: bubblewrap and the environment)
"""
import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader import sandbox
from grader.environment import bundled
from grader.limits import RunLimits

CASES = {
    "start only (true)": ["true"],
    "import tensorflow": ["python", "-c", "import tensorflow"],
    "import torch": ["python", "-c", "import torch"],
    "import librosa + first MFCC": ["python", "-c", "import numpy as np, librosa; "
                                    "librosa.feature.mfcc(y=np.zeros(16000, np.float32), sr=16000, n_mfcc=20)"],
}
LIMITS = RunLimits(wall_seconds=120)


def outside_seconds(argv: list[str], env: dict[str, str], folder: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=folder, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def inside_seconds(argv: list[str], folder: Path) -> float:
    started = time.perf_counter()
    result = sandbox.run(argv, folder, limits=LIMITS)
    if not result.ok:
        sys.exit(f"{argv}: {result.message}\n{result.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    environment = bundled()
    problem = sandbox.isolation_problem()
    if problem:
        sys.exit(f"cannot run the sandbox here: {problem}")
    with tempfile.TemporaryDirectory(prefix="bench-environment-") as scratch:
        work, home, numba = Path(scratch, "work"), Path(scratch, "home"), Path(scratch, "numba")
        work.mkdir(), home.mkdir()
        shutil.copytree(environment.numba_cache, numba)  # outside runs may write to it; the sandbox's never do
        env = {"PATH": f"{environment.prefix}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
               "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg", "NUMBA_CACHE_DIR": str(numba),
               **{name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                         "NUMBA_NUM_THREADS")},
               **environment.variables(cpu_threads=LIMITS.cpu_threads)}
        print(f"environment: {environment.describe()}")
        print(f"{'case':<30} {'outside s':>10} {'inside s':>10} {'ratio':>7} {'added ms':>9}")
        start_cost = None
        for name, argv in CASES.items():
            outside_seconds(argv, env, work), inside_seconds(argv, work)  # warm the page cache for both
            outside, inside = [], []
            for _ in range(args.repeats):  # interleaved, so that both see the same machine
                outside.append(outside_seconds(argv, env, work))
                inside.append(inside_seconds(argv, work))
            out_median, in_median = statistics.median(outside), statistics.median(inside)
            added = in_median - out_median
            start_cost = added if start_cost is None else start_cost
            beyond = (in_median - start_cost) / out_median
            print(f"{name:<30} {out_median:>10.3f} {in_median:>10.3f} {in_median / out_median:>7.2f} "
                  f"{added * 1000:>9.1f}" + ("" if argv == ["true"] else
                                              f"   ratio beyond the sandbox's start: {beyond:.2f}"))
    mark = environment.build()  # a no-op: reads what the build took
    print(f"set-up the environment adds: built once in {mark.seconds:.0f} s, {mark.size_bytes / 1e9:.2f} GB on disk "
          f"at {environment.prefix}; per run, its mounts are part of the start above")


if __name__ == "__main__":
    main()
