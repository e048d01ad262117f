"""The reference solution of the assignment: data, preprocessing, models, metrics.

This package is the grader's ground truth and never imports ``grader``.
"""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# librosa's first call JIT-compiles for ~16 s; numba's on-disk cache (warmed by
# `make setup`) makes it ~1.5 s. Set before anything imports numba.
os.environ.setdefault("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".cache" / "numba"))

SAMPLE_RATE = 16000
"""The task's sample rate in Hz: every clip is loaded, scored and generated at it."""
