"""Helpers for batch work shared by the feature extraction and the scoring: BLAS threads and progress."""
from __future__ import annotations

from typing import Iterable


def one_blas_thread():
    """BLAS on one thread from now on; as a context manager, until its end (threadpoolctl).

    Also a process pool's worker initialiser. The matrix products of audio features and
    metrics are small: OpenBLAS's extra threads only fight the other workers (and any
    other process) for the cores. Measured on a busy 2-core machine, STOI, ESTOI and the
    log-mel metrics ran 1.5-10x faster single-threaded, and two feature workers went from
    0.66x to 1.9x a plain loop.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def with_progress(items: Iterable, total: int, show: bool, description: str) -> Iterable:
    """``items`` as they come, with a transient progress bar on the terminal when ``show``."""
    if not show:
        yield from items
        return
    from rich.progress import track

    yield from track(items, total=total, description=description, transient=True)
