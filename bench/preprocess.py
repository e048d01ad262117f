"""MFCC throughput of the reference preprocessing against a plain loop of librosa calls.

Prints, all measured in this run:
- clips/s of a plain `librosa.load` + `librosa.feature.mfcc` loop (the baseline);
- clips/s of `extract_folder` with a cold cache (1 and 2 processes) and with a warm cache,
  each as a ratio to the baseline;
- a fresh process's first MFCC (imports included) with numba's warmed cache and without.

Usage: .venv/bin/python bench/preprocess.py [--clips N]
Uses real FSDD recordings from ../shared/data/fsdd when present, else the embedded data set.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reference import PROJECT_ROOT
from reference.preprocess import audio_files, extract_folder

SHARED_FSDD = Path(os.environ.get("SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")) / "fsdd"
EMBEDDED = PROJECT_ROOT / "data" / "embedded"
FIRST_MFCC = ("import time; t = time.perf_counter(); from reference.preprocess import mfcc_from_file; "
              "mfcc_from_file({path!r}); print(time.perf_counter() - t)")


def pick_clips(count: int) -> tuple[list[Path], str]:
    if SHARED_FSDD.is_dir():
        return audio_files(SHARED_FSDD)[:: max(1, 2000 // count)][:count], "real FSDD recordings (8 kHz)"
    clips = sorted(EMBEDDED.glob("*/*.wav"))
    if not clips:
        sys.exit("no clips: run `make data` first (or set SHARED_DATA to the folder holding fsdd/)")
    return clips[:count], "embedded data set clips (16 kHz)"


def plain_librosa_loop(paths: list[Path]) -> float:
    import librosa

    started = time.perf_counter()
    for path in paths:
        signal, sr = librosa.load(path, sr=16000)
        librosa.feature.mfcc(y=signal, sr=sr, n_mfcc=20)
    return time.perf_counter() - started


def first_mfcc_seconds(path: Path, numba_cache: str, repeats: int = 3) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache)
    times = [float(subprocess.run([sys.executable, "-c", FIRST_MFCC.format(path=str(path))], env=env, check=True,
                                  capture_output=True, text=True, cwd=PROJECT_ROOT).stdout) for _ in range(repeats)]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000)
    args = parser.parse_args()
    paths, what = pick_clips(args.clips)
    print(f"MFCC of {len(paths)} {what}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for path in paths:
            (folder / path.name).symlink_to(path.resolve())
        plain_librosa_loop(paths[:2])  # both sides start with librosa imported and compiled
        baseline = plain_librosa_loop(paths)
        runs = {}
        runs["cold cache, 1 process"] = extract_folder(folder, Path(tmp) / "a", "mfcc", cache_dir=Path(tmp) / "c1").seconds
        runs["cold cache, 2 processes"] = extract_folder(folder, Path(tmp) / "b", "mfcc", cache_dir=Path(tmp) / "c2",
                                                          jobs=2).seconds
        runs["warm cache, 1 process"] = extract_folder(folder, Path(tmp) / "d", "mfcc", cache_dir=Path(tmp) / "c1").seconds
        print(f"{'plain librosa loop (baseline)':<32} {len(paths) / baseline:8.1f} clips/s   1.00x")
        for name, seconds in runs.items():
            print(f"{'extract_folder, ' + name:<32} {len(paths) / seconds:8.1f} clips/s {baseline / seconds:6.2f}x")
        warm = first_mfcc_seconds(paths[0], os.environ["NUMBA_CACHE_DIR"])
        cold = first_mfcc_seconds(paths[0], str(Path(tmp) / "empty-numba-cache"), repeats=1)
    print(f"first MFCC in a fresh process (imports included): {warm:.2f} s with the warmed numba cache, "
          f"{cold:.2f} s without ({cold / warm:.1f}x)")


if __name__ == "__main__":
    main()
