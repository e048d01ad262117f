"""Scoring throughput of `reference.evaluation` against a plain serial loop of `pesq`/`pystoi` calls.

64 real clips: FSDD digits of one speaker joined into 2.5-4 s "phone numbers" at 16 kHz
(reference.data.phone_number), each degraded with white noise at 10 dB SNR, written as
WAV files. Prints, all measured in this run (the best of --repeats runs each):
- clip-seconds scored per second by the baseline: a plain loop that reads both files
  with soundfile and calls pesq (wb, nb) and pystoi (STOI, ESTOI) directly; and the
  same loop with BLAS on one thread, as `score_pairs` runs (the ratio against it is the
  batch's own cost);
- `score_pairs` on the same files and the same four metrics with 1 and 2 worker
  processes, as the overhead ratio (our time / the baseline's, goal <= 1.10 with one worker)
  and the speed-up (baseline time / ours, goal >= 1.8 with two workers), and 2 workers
  against 1 (the parallel scaling, which other load on the machine caps);
- the same for every default metric (adds SNR, segmental SNR, SI-SDR, LSD, MCD, mel L1);
- the CPU seconds each run used, its worker processes' included: unlike the wall-clock
  figures they do not depend on other work on the machine;
- each metric's time on one 3.0 s clip (median of --per-metric runs).

Usage: .venv/bin/python bench/evaluation.py [--clips 64] [--repeats 2]
Needs the real recordings in ../shared/data/fsdd (or SHARED_DATA pointing at their parent).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from reference import PROJECT_ROOT, SAMPLE_RATE
from reference import evaluation as ev
from reference.data import phone_number
from reference.evaluation_unpaired import validity
from reference.preprocess import add_noise, audio_files, load_audio

SHARED_FSDD = Path(os.environ.get("SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")) / "fsdd"
BASELINE_METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi")


def write_clips(folder: Path, count: int) -> list[tuple[Path, Path]]:
    """``count`` (reference, degraded) WAV pairs of real joined-digit speech; returns their paths."""
    import soundfile as sf

    files = audio_files(SHARED_FSDD)
    speakers = sorted({f.name.split("_")[1] for f in files})
    rng, cache, pairs = np.random.default_rng(0), {}, []
    (folder / "ref").mkdir()
    (folder / "deg").mkdir()
    for k in range(count):
        speaker = speakers[k % len(speakers)]
        wav, _ = phone_number(rng, [f for f in files if f"_{speaker}_" in f.name], 2.5, 4.0, cache)
        pair = (folder / "ref" / f"{k:03d}.wav", folder / "deg" / f"{k:03d}.wav")
        sf.write(pair[0], wav, SAMPLE_RATE)
        sf.write(pair[1], np.clip(add_noise(wav, 10.0, rng), -1, 1), SAMPLE_RATE)
        pairs.append(pair)
    return pairs


def plain_loop(pairs: list[tuple[Path, Path]], one_blas_thread: bool = False) -> float:
    """What a student or a first grader writes: read, then call the packages directly.

    ``one_blas_thread`` runs it with BLAS on one thread, as `score_pairs` does, so that the
    ratio against it is the batch's own cost (loading, checks, rows), nothing else.
    """
    import soundfile as sf
    from pesq import pesq
    from pystoi import stoi
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1 if one_blas_thread else None, user_api="blas"):
        for ref_path, deg_path in pairs:
            ref, sr = sf.read(ref_path)
            deg, _ = sf.read(deg_path)
            pesq(sr, ref, deg, "wb")
            pesq(sr, ref, deg, "nb")
            stoi(ref, deg, sr)
            stoi(ref, deg, sr, extended=True)


def ours(pairs: list[tuple[Path, Path]], metrics: tuple[str, ...], jobs: int) -> None:
    rows = ev.score_pairs(pairs, metrics=metrics, jobs=jobs)
    missing = [(row.name, row.reasons) for row in rows if row.reasons]
    if missing:
        sys.exit(f"clips not scored, the comparison would be unfair: {missing[:3]}")


def wall_and_cpu_seconds(run) -> tuple[float, float]:
    """Wall-clock seconds of ``run()`` and the CPU seconds it used, its worker processes' included.

    CPU time does not depend on what else the machine runs; wall time does.
    """
    before, started = os.times(), time.perf_counter()
    run()
    wall, after = time.perf_counter() - started, os.times()
    cpu = sum(after[k] - before[k] for k in range(4))  # user, system, children's user, children's system
    return wall, cpu


def per_metric_ms(ref: np.ndarray, deg: np.ndarray, runs: int) -> dict[str, float]:
    """Median milliseconds of each metric on one pair, with BLAS on one thread as `score_pairs` runs them."""
    from threadpoolctl import threadpool_limits

    times = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for metric in ev.INTRUSIVE_METRICS + ev.OPTIONAL_METRICS:
            times[metric] = _median_ms(ev.METRIC_FUNCTIONS[metric], ref, deg, runs)
    return times


def _median_ms(function, ref: np.ndarray, deg: np.ndarray, runs: int) -> float:
    function(ref, deg, SAMPLE_RATE)  # first call: imports, model loading
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function(ref, deg, SAMPLE_RATE)
        samples.append(time.perf_counter() - started)
    return 1000 * statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each measurement; the best is kept")
    parser.add_argument("--per-metric", type=int, default=5, help="runs of each metric on the 3 s clip")
    args = parser.parse_args()
    if not SHARED_FSDD.is_dir():
        sys.exit(f"real recordings not found at {SHARED_FSDD} (set SHARED_DATA to the folder holding fsdd/)")
    with tempfile.TemporaryDirectory() as tmp:
        pairs = write_clips(Path(tmp), args.clips)
        audio_seconds = sum(validity(ref).seconds for ref, _ in pairs)
        print(f"{len(pairs)} real clips, {audio_seconds:.1f} s of speech, white noise at 10 dB SNR; "
              f"{os.cpu_count()} cores, load average (1 min) {os.getloadavg()[0]:.1f}; best of {args.repeats} runs")
        plain_loop(pairs[:2])
        ev.score_pairs(pairs[:2], metrics=ev.INTRUSIVE_METRICS)  # both sides start with everything imported
        runs = {
            "plain loop (the baseline)": lambda: plain_loop(pairs),
            "plain loop, BLAS on one thread": lambda: plain_loop(pairs, one_blas_thread=True),
            "score_pairs, same 4 metrics, 1 worker": lambda: ours(pairs, BASELINE_METRICS, 1),
            "score_pairs, same 4 metrics, 2 workers": lambda: ours(pairs, BASELINE_METRICS, 2),
            "score_pairs, all 10 default, 1 worker": lambda: ours(pairs, ev.INTRUSIVE_METRICS, 1),
            "score_pairs, all 10 default, 2 workers": lambda: ours(pairs, ev.INTRUSIVE_METRICS, 2),
        }
        best = {name: (float("inf"), float("inf")) for name in runs}
        for _ in range(args.repeats):  # interleaved, so a busy spell on the machine hits every row alike
            for name, run in runs.items():
                best[name] = min(best[name], wall_and_cpu_seconds(run))
        print(f"load average (1 min) {os.getloadavg()[0]:.1f} at the end")
        baseline, single = best["plain loop (the baseline)"][0], best["plain loop, BLAS on one thread"][0]
        print(f"{'':40} {'clip-s/s':>9} {'time/baseline':>14} {'time/one-thread loop':>21} {'CPU s':>7}")
        for name, (seconds, cpu) in best.items():
            print(f"{name:40} {audio_seconds / seconds:9.1f} {seconds / baseline:14.2f} {seconds / single:21.2f}"
                  f" {cpu:7.1f}")
        best = {name: seconds for name, (seconds, _) in best.items()}
        one, two = best["score_pairs, same 4 metrics, 1 worker"], best["score_pairs, same 4 metrics, 2 workers"]
        print(f"overhead ratio, 1 worker: {one / baseline:.2f} (goal <= 1.10); "
              f"against the one-thread loop, the batch's own cost: {one / single:.2f}")
        print(f"speed-up, 2 workers: {baseline / two:.2f} (goal >= 1.8); 2 workers against 1: {one / two:.2f}")
        ref = load_audio(pairs[0][0])[: 3 * SAMPLE_RATE]
        deg = load_audio(pairs[0][1])[: 3 * SAMPLE_RATE]
    times = per_metric_ms(ref, deg, args.per_metric)
    print(f"per-metric time on one 3.0 s clip (median of {args.per_metric}):")
    for metric, ms in times.items():
        print(f"  {metric:<8} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
