"""Every limit the grader puts on a submission, with its default and its rubric key.

Two groups, each a pydantic model whose field names are the keys a rubric uses
(``[limits.intake]`` and ``[limits.run]`` tables, or a rubric item's own
``[...limits]`` override); an unknown key or a wrong type is a validation error that
names the key. Units are in the names: ``_bytes``, ``_seconds``.

- :class:`IntakeLimits`: what an archive may unpack to (the contract's hard limits).
- :class:`RunLimits`: what one sandboxed run of student code may use.
"""
from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

MB = 1_000_000
GiB = 1024**3


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def with_overrides(self, overrides: dict[str, Any] | None) -> Self:
        """A copy with the rubric's ``overrides`` applied and validated (unknown keys refused)."""
        if not overrides:
            return self
        return type(self).model_validate({**self.model_dump(), **overrides})


class IntakeLimits(_Limits):
    """Hard limits on a submitted archive (submission contract, "The archive")."""

    max_unpacked_bytes: int = Field(
        200 * MB, gt=0,
        description="Bytes the archive may unpack to, counted while decompressing (not from the headers).",
    )
    max_entries: int = Field(
        5000, gt=0, description="Entries (files and folders) the archive may hold, ignored ones included.",
    )
    max_depth: int = Field(
        32, gt=0, description="Folders an entry may lie in, one inside the other (a tree thousands deep "
        "is refused before anything walks it).",
    )


class RunLimits(_Limits):
    """Resources one run of student code may use inside the sandbox."""

    wall_seconds: float = Field(120.0, gt=0, description="Wall-clock time before the run is stopped (verdict timeout).")
    cpu_seconds: int = Field(
        300, gt=0,
        description="CPU time of each process (RLIMIT_CPU); a process past it is killed (verdict timeout).",
    )
    memory_bytes: int = Field(
        4 * GiB, gt=0,
        description="Memory of the whole run: a memory cgroup as root, else RLIMIT_DATA per process "
        "(verdict out_of_memory). The default holds the seed notebook's Keras CNN VAE (6.8 M parameters) training on "
        "128x216 mels at batch 32, which peaks at 1.5 GiB with TensorFlow loaded.",
    )
    processes: int = Field(
        256, gt=0,
        description="Processes and threads alive at once: a pids cgroup as root, else RLIMIT_NPROC inside "
        "the run's own user namespace.",
    )
    file_size_bytes: int = Field(200 * MB, gt=0, description="Largest file a process may write (RLIMIT_FSIZE).")
    open_files: int = Field(1024, gt=0, description="Open file descriptors per process (RLIMIT_NOFILE).")
    output_bytes: int = Field(
        10 * MB, gt=0,
        description="Bytes the run may print to stdout and stderr together before it is stopped "
        "(verdict output_limit).",
    )
    disk_bytes: int = Field(
        1000 * MB, gt=0,
        description="Bytes the run may add to its work folder, counted as allocated blocks (verdict "
        "output_limit); also the size of its private /tmp.",
    )
    disk_inodes: int = Field(
        10_000, gt=0,
        description="Files and folders the run may add to its work folder (verdict output_limit).",
    )
    captured_bytes: int = Field(
        64 * 1024, gt=0,
        description="Bytes of stdout and of stderr kept for the report (head and tail; the middle is cut).",
    )
    cell_seconds: float = Field(
        600.0, gt=0, description="Time one notebook cell may run (nbclient's per-cell timeout).",
    )
    notebook_seconds: float = Field(
        900.0, gt=0,
        description="Time a notebook entry's cells may take together, training included; the notebook runs "
        "once for every mode it serves, and this replaces wall_seconds for that run (cell_seconds still "
        "bounds each cell).",
    )
    cpu_threads: int = Field(
        1, gt=0,
        description="Threads numerical libraries start (OMP_NUM_THREADS, MKL, OpenBLAS, numba, torch's intra-op "
        "threads, TensorFlow's intra- and inter-op pools). One by "
        "default: outputs then never depend on how many submissions a batch grades at once (a parallel sum "
        "rounds differently), and N jobs fill N cores without oversubscribing them.",
    )
