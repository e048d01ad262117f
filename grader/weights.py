"""Trained weights read on the host without unpickling: what a checkpoint file holds, and how much of it.

A student's checkpoint is untrusted: ``torch.load`` and ``pickle.load`` run code, so nothing
here unpickles. Each format is read from its structure alone, within bounds:

- PyTorch (``torch.save``'s zip format, ``.pt``/``.pth``/``.bin``/``.ckpt``): the zip's
  ``<archive>/data/<n>`` entries are the tensors' storages; their sizes are the weights' bytes;
- Keras (``.keras``): a zip holding ``model.weights.h5``, an HDF5 file;
- HDF5 (``.h5``, ``.hdf5``, ``.weights.h5``): its signature, then its size (HDF5 is a C
  library's format: it is not opened on the host);
- safetensors: an 8-byte header length, a JSON header (bounded), each tensor's byte range;
- NumPy (``.npz``, ``.npy``): the arrays' headers (``numpy.lib.format``, never ``allow_pickle``);
- TensorFlow checkpoints: ``<prefix>.index`` beside ``<prefix>.data-<k>-of-<n>`` shards.

A legacy PyTorch file (``_use_new_zipfile_serialization=False``), a joblib or a plain pickle
cannot be read without unpickling: it is refused, and the report says how to save instead.
A zip's entries are counted from its end record before :mod:`zipfile` reads its directory.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from numpy.lib import format as npy_format

from grader.student_files import parse_json
from grader.limits import MAX_NPY_HEADER, MAX_SAFETENSORS_HEADER, MAX_WEIGHTS_ZIP_ENTRIES

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_OFFSETS = (0, 512, 1024, 2048)
"""Where an HDF5 signature may sit (after a user block of 0, 512, 1024... bytes)."""
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
TF_DATA = ".data-"
MIN_FILE_BYTES = 16
"""Smaller files are no weight file of any format (a safetensors header alone is 8 bytes and a brace)."""


@dataclass(frozen=True)
class WeightFile:
    """What one checkpoint file holds: its format, its tensors and their bytes, or why it is no weight file."""

    name: str
    format: str
    tensors: int = 0
    tensor_bytes: int = 0
    problem: str = ""

    @property
    def readable(self) -> bool:
        return not self.problem

    def describe(self) -> str:
        if self.problem:
            return f"{self.name}: {self.problem}"
        count = f"{self.tensors} tensor{'s' * (self.tensors != 1)}, " if self.tensors else ""
        return f"{self.name}: {self.format}, {count}{self.tensor_bytes:,} bytes of weights"


def read_weights(path: Path, name: str) -> WeightFile:
    """What the checkpoint file ``path`` (named ``name`` in the report) holds; never raises for a bad file."""
    try:
        return _read(path, name)
    except (OSError, ValueError, struct.error, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as error:
        return WeightFile(name, "unknown", problem=f"cannot be read as weights ({type(error).__name__}: {error})")


def _read(path: Path, name: str) -> WeightFile:
    size = path.stat().st_size
    lowered = name.lower()
    with open(path, "rb") as file:
        head = file.read(8)
    if size < MIN_FILE_BYTES:
        return WeightFile(name, "unknown", problem=f"only {size} byte{'s' * (size != 1)}: it holds no weights")
    if lowered.endswith(".safetensors"):
        return _safetensors(path, name, size)
    if lowered.endswith(".index") or TF_DATA in PurePosixPath(lowered).name:
        return _tensorflow(path, name)
    if head.startswith(ZIP_MAGIC):
        return _zip(path, name)
    if _hdf5(path):
        return WeightFile(name, "HDF5 (Keras weights)", 0, size)
    if head.startswith(b"\x93NUMPY"):
        return _npy(path, name)
    if head[:2] in PICKLE_PROTOCOLS or head[:1] == b"\x80":
        return WeightFile(name, "pickle", problem="a pickle (legacy torch.save, joblib or pickle): it cannot be read "
                          "without running it; save with torch.save's default (zip) format, safetensors or Keras "
                          ".weights.h5")
    return WeightFile(name, "unknown", problem=f"not a weight file the grader knows ({size} bytes; PyTorch zip, "
                      "Keras, HDF5, safetensors, NumPy or TensorFlow checkpoint expected)")


def _hdf5(path: Path) -> bool:
    with open(path, "rb") as file:
        for offset in HDF5_OFFSETS:
            file.seek(offset)
            if file.read(8) == HDF5_SIGNATURE:
                return True
    return False


def zip_entry_count(path: Path) -> int:
    """The number of entries a zip's end-of-central-directory record (or its ZIP64 record) declares.

    Raises:
        ValueError: no end record in the file's last 64 kB.
    """
    size = path.stat().st_size
    with open(path, "rb") as file:
        file.seek(max(0, size - 65_557))
        tail = file.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        raise ValueError("no zip end record")
    count = struct.unpack_from("<H", tail, at + 10)[0]
    if count == 0xFFFF:
        zip64 = tail.rfind(b"PK\x06\x06", 0, at)
        if zip64 < 0 or len(tail) < zip64 + 40:
            raise ValueError("a ZIP64 archive without its record")
        count = struct.unpack_from("<Q", tail, zip64 + 32)[0]
    return count


def _zip(path: Path, name: str) -> WeightFile:
    entries = zip_entry_count(path)
    if entries > MAX_WEIGHTS_ZIP_ENTRIES:
        return WeightFile(name, "zip", problem=f"a zip of {entries:,} entries, more than the {MAX_WEIGHTS_ZIP_ENTRIES:,} read")
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()[:MAX_WEIGHTS_ZIP_ENTRIES]
        names = [info.filename for info in infos]
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            storages = [info for info in infos if PurePosixPath(info.filename).parent.name == "data"
                        and PurePosixPath(info.filename).parent.parent.name not in ("", ".data")]
            return WeightFile(name, "PyTorch (torch.save zip)", len(storages), sum(i.file_size for i in storages))
        weights = [info for info in infos if info.filename.endswith(".weights.h5") or info.filename.endswith(".h5")]
        if weights:
            with archive.open(weights[0]) as inner:
                if inner.read(8) != HDF5_SIGNATURE:
                    return WeightFile(name, "Keras", problem=f"{weights[0].filename} inside is not an HDF5 file")
            return WeightFile(name, "Keras (.keras)", 0, sum(i.file_size for i in weights))
        arrays = [info for info in infos if info.filename.endswith(".npy")]
        if arrays:
            count, total = 0, 0
            for info in arrays:
                with archive.open(info) as inner:
                    shape, dtype = npy_header(inner)
                count += 1
                total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            return WeightFile(name, "NumPy (.npz)", count, total)
    return WeightFile(name, "zip", problem="a zip holding no weights (no torch storages, Keras weights or arrays)")


def npy_header(file) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of a .npy stream, read from its header alone; an object array is refused."""
    version = npy_format.read_magic(file)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(file, max_header_size=MAX_NPY_HEADER)
    else:
        shape, _, dtype = npy_format.read_array_header_2_0(file, max_header_size=MAX_NPY_HEADER)
    if dtype.hasobject:
        raise ValueError("an array of Python objects (it needs unpickling)")
    return shape, dtype


def _npy(path: Path, name: str) -> WeightFile:
    with open(path, "rb") as file:
        shape, dtype = npy_header(file)
    return WeightFile(name, "NumPy (.npy)", 1, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)


def _safetensors(path: Path, name: str, size: int) -> WeightFile:
    with open(path, "rb") as file:
        length = struct.unpack("<Q", file.read(8))[0]
        if length > min(MAX_SAFETENSORS_HEADER, size - 8):
            return WeightFile(name, "safetensors", problem=f"a header of {length:,} bytes, past the file or the "
                              f"{MAX_SAFETENSORS_HEADER:,} read")
        header = parse_json(file.read(length), name)
    if not isinstance(header, dict):
        return WeightFile(name, "safetensors", problem="its header is not a JSON object")
    count, total, data = 0, 0, size - 8 - length
    for key, tensor in header.items():
        if key == "__metadata__":
            continue
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data):
            return WeightFile(name, "safetensors", problem=f"tensor {key!r} has no valid byte range")
        count += 1
        total += offsets[1] - offsets[0]
    return WeightFile(name, "safetensors", count, total)


def _tensorflow(path: Path, name: str) -> WeightFile:
    """A TensorFlow checkpoint: the index names the prefix; the data shards beside it hold the weights."""
    filename = path.name
    prefix = filename[:-len(".index")] if filename.endswith(".index") else filename[:filename.index(TF_DATA)]
    shards = [p for p in path.parent.iterdir() if p.name.startswith(prefix + TF_DATA) and p.is_file()
              and not p.is_symlink()][:1000]
    if not (path.parent / f"{prefix}.index").is_file() or not shards:
        return WeightFile(name, "TensorFlow checkpoint", problem=f"needs both {prefix}.index and its "
                          f"{prefix}.data-* shards")
    return WeightFile(name, "TensorFlow checkpoint", 0, sum(p.stat().st_size for p in shards))


def weight_files(root: Path, names: list[str]) -> list[WeightFile]:
    """The checkpoints ``names`` (relative to ``root``) read, a TensorFlow checkpoint's index and shards as one."""
    found, seen_prefixes = [], set()
    for name in names:
        path = root / name
        if path.is_symlink() or not path.is_file():
            continue
        lowered = PurePosixPath(name).name
        if lowered.endswith(".index") or TF_DATA in lowered:
            prefix = os.path.join(os.path.dirname(name), lowered.split(TF_DATA)[0].removesuffix(".index"))
            if prefix in seen_prefixes:
                continue
            seen_prefixes.add(prefix)
        found.append(read_weights(path, name))
    return found

