"""`python -m reference warm`: compile every numba function this project uses once, so numba caches it.

librosa's first MFCC call JIT-compiles for about 16 s; with numba's on-disk cache (the
folder :mod:`reference` sets, warmed by `make setup`) later processes start in about 1.5 s.
"""
from __future__ import annotations

import argparse
import os
import time

import librosa
import numpy as np

from reference import SAMPLE_RATE
from reference.preprocess import logmel, mfcc, notebook_mel_db, pitch_shift, time_stretch
from reference.wavenet import warm_step_loop


def warm_main(argv: list[str], prog: str) -> int:
    """`warm`: compile and cache librosa's numba functions used here, so later processes start fast."""
    argparse.ArgumentParser(prog=prog, description=warm_main.__doc__).parse_args(argv)
    started = time.perf_counter()
    warm_numba_cache()
    print(f"numba cache warmed in {time.perf_counter() - started:.1f} s at {os.environ['NUMBA_CACHE_DIR']}")
    return 0


def warm_numba_cache() -> None:
    """Call every numba-compiled path this project uses once (librosa's, the WaveNet step loop), so numba
    writes its cache."""
    t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
    wav = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    mfcc(wav)
    logmel(wav)
    notebook_mel_db(wav, SAMPLE_RATE)
    pitch_shift(wav, SAMPLE_RATE, 2)
    time_stretch(wav, 1.1)
    librosa.effects.trim(wav, top_db=30)
    librosa.feature.inverse.mel_to_audio(np.exp(logmel(wav)), sr=SAMPLE_RATE, n_fft=1024, hop_length=256,
                                         win_length=1024, power=1.0, fmin=0, fmax=8000, n_iter=2)
    warm_step_loop()
