"""Writing files so that no reader ever sees half of one, and digests of files' bytes.

The one place both packages take these from (``grader`` imports them; ``reference`` never
imports ``grader``). A file is written under a temporary name beside its target and renamed
into place: on one file system a rename is atomic, so a reader (another grader process, a
browser refreshing a report) sees the old file or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Iterator

BLOCK_BYTES = 1 << 20
"""Files are digested in blocks of 1 MiB, so a large one never sits in memory whole."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends without an error,
    removed otherwise. Makes the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield staging
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (a str as UTF-8) to ``path`` through :func:`atomic_path`; return ``path``."""
    with atomic_path(path) as staging:
        staging.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def update_from_file(digest: "hashlib._Hash", path: str | os.PathLike) -> None:
    """Feed a file's bytes to ``digest`` in blocks of :data:`BLOCK_BYTES`."""
    with open(path, "rb") as f:
        while block := f.read(BLOCK_BYTES):
            digest.update(block)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    update_from_file(digest, path)
    return digest.hexdigest()
