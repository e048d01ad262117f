"""Sketches of tensors (small summaries that compare like the tensors), and the sandbox's entry point that sketches
HDF5 files.

Self-contained: the standard library and numpy, and h5py for HDF5 (imported only there). The grader sketches
the formats it reads on the host with :func:`tensor_sketch` (:mod:`grader.similarity.weights`), and runs this very
file inside the sandbox, with the course environment's Python, for HDF5 (``.h5``, ``.weights.h5``, and ``.keras``,
a zip that holds one): a C library's format the host does not open. ``-I`` keeps the submission's own folder off
``sys.path`` (a student's ``numpy.py`` there would be imported instead), so it runs as a file, not with ``-m``::

    python -I weights_inside.py FILE... > sketches.json

It writes ``{"files": [{"name", "tensors": [[name, sketch], ...], "unread", "problem"}, ...]}``, which the grader
reads as untrusted (``WeightsFingerprint.from_untrusted_json``).

A sketch (:class:`TensorSketch`) keeps a tensor's shape, a sample of at most :data:`SKETCH_VALUES` of its values,
the sha256 of all of them and their norm. The sample is a sub-tensor: on each axis, the indices
:func:`axis_indices` picks, as many as :func:`sample_counts` gives that axis. Both depend on axis lengths alone (the
count on the multiset of the shape's lengths, the indices on the axis's length and count), so the sketch of a
transposed or axis-permuted tensor holds the same sub-tensor, permuted the same way, and the sketch of a copy cast to
another float type holds the same values, rounded. The indices come from splitmix64 written out here, not from
numpy's generators, whose streams may change between numpy versions: the host's and the sandbox's sketches agree.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import math
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

SKETCH_VALUES = 1024
"""Values a sketch samples at most (4 kB as float32): two independent tensors' samples have a cosine of some
1/sqrt(1024) = 0.03, far below the 0.999 that matches. Each submission's fingerprint holds a sketch per tensor, and
a class's are compared in memory: a WaveNet of 100 tensors keeps some 0.4 MB (4096 values: 1.6 MB)."""
MIN_TENSOR_VALUES = 64
"""Smaller tensors are not sketched: biases of zeros and norms of ones match in every model."""
MAX_SKETCHES = 2000
"""Tensors sketched per submission (or per sandbox run) at most: a course model has some 10 to 100, a large
transformer some 500. Those past it are counted as unread."""
MAX_TENSOR_BYTES = 512 * 10**6
"""Bytes of tensors read, and made float32, per submission (or per sandbox run): the intake's 200 MB of files,
twice over (float16 weights double as float32), and some more."""
MAX_SKETCH_RANK = 32
"""Axes a sketched tensor may have (numpy's own limit is 64; a weight has up to 5)."""
MAX_AXIS_LENGTH = 2**48
"""Longest axis a sketch (from untrusted JSON) may declare."""
MAX_NAME_CHARS = 500
"""Characters kept of a tensor's or a file's name."""
MAX_PROBLEM_CHARS = 500
"""Characters kept of an error's message."""
FLOAT_ITEMSIZES = (2, 4, 8)
"""Float tensors sketched: float16, float32, float64 (bfloat16 is made float32 by the reader)."""
_MASK64 = 2**64 - 1


@dataclass(frozen=True, eq=False)
class TensorSketch:
    """One tensor, summarised for comparison (JSON-serialisable with :meth:`to_json`).

    Attributes:
        shape: the tensor's shape (axis lengths).
        values: the sampled sub-tensor, float32, of shape ``sample_counts(shape)``; read-only.
        sha256: of all the tensor's values as float32 little-endian bytes in C order.
        norm: the Euclidean norm of all its values (0.0 when not comparable).
        comparable: False when every value is the same, or some value is not finite: it matches nothing.
    """

    shape: tuple[int, ...]
    values: np.ndarray
    sha256: str
    norm: float
    comparable: bool

    @property
    def size(self) -> int:
        """Values in the whole tensor."""
        return math.prod(self.shape)

    def to_json(self) -> dict:
        """A JSON object: ``shape`` (list), ``values`` (base64 of float32 little-endian), ``sha256``, ``norm``,
        ``comparable``."""
        return {"shape": list(self.shape), "values": base64.b64encode(self.values.astype("<f4").tobytes()).decode(),
                "sha256": self.sha256, "norm": self.norm, "comparable": self.comparable}

    @classmethod
    def from_json(cls, data: object) -> TensorSketch:
        """The sketch ``data`` (from :meth:`to_json`, through untrusted hands) describes, checked field by field.

        Raises:
            ValueError: a field missing, unknown, of the wrong type, out of range, or values that do not fit the shape.
        """
        fields = {"shape", "values", "sha256", "norm", "comparable"}
        if not isinstance(data, dict) or set(data) != fields:
            raise ValueError(f"a sketch is an object of exactly {sorted(fields)}")
        shape, encoded, digest, norm, comparable = (data[key] for key in ("shape", "values", "sha256", "norm",
                                                                          "comparable"))
        if (not isinstance(shape, list) or len(shape) > MAX_SKETCH_RANK
                or not all(type(n) is int and 0 <= n <= MAX_AXIS_LENGTH for n in shape)):
            raise ValueError(f"a sketch's shape is a list of at most {MAX_SKETCH_RANK} axis lengths")
        shape = tuple(shape)
        expected = math.prod(sample_counts(shape))
        if not isinstance(encoded, str) or len(encoded) != 4 * ((4 * expected + 2) // 3):
            raise ValueError(f"a sketch of shape {shape} holds {expected} values in base64")
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) != 4 * expected:
            raise ValueError(f"a sketch of shape {shape} holds {expected} values in base64")
        if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise ValueError("a sketch's sha256 is 64 lowercase hex digits")
        if type(norm) not in (int, float) or not math.isfinite(norm) or norm < 0:
            raise ValueError("a sketch's norm is a finite number, 0 or more")
        if type(comparable) is not bool:
            raise ValueError("a sketch's comparable is true or false")
        values = np.frombuffer(raw, dtype="<f4").reshape(sample_counts(shape))
        if comparable and not np.isfinite(values).all():
            raise ValueError("a comparable sketch's values are finite")
        return cls(shape, values, digest, float(norm), comparable)


@dataclass
class SketchBudget:
    """What is left to read in one submission (or one sandbox run): tensors to sketch, and bytes."""

    sketches: int = MAX_SKETCHES
    bytes: int = MAX_TENSOR_BYTES


class LazyTensor(NamedTuple):
    """A tensor a reader found, not yet read: ``load`` reads it, as a numpy float array (any float dtype, any
    strides) of shape ``shape``; ``cost``, the bytes that reading it and making it float32 take."""

    name: str
    shape: tuple[int, ...]
    cost: int
    load: Callable[[], np.ndarray]


def _root(value: int, degree: int) -> int:
    """The largest integer t with t ** degree <= value (value >= 1)."""
    t = max(1, int(value ** (1 / degree)))
    while t**degree > value:
        t -= 1
    while (t + 1) ** degree <= value:
        t += 1
    return t


@functools.lru_cache(maxsize=4096)
def sample_counts(shape: tuple[int, ...]) -> tuple[int, ...]:
    """How many indices a sketch samples on each axis of ``shape``: their product is at most
    :data:`SKETCH_VALUES`, spread as evenly as the lengths allow (short axes are taken whole, the rest share
    what is left). Axes of equal length get equal counts, so the counts of a permuted shape are the same counts
    permuted."""
    counts, left, axes = {}, SKETCH_VALUES, len(shape)
    for length in sorted(set(shape)):
        group = shape.count(length)
        counts[length] = min(length, _root(left, axes))
        left //= max(counts[length], 1) ** group
        axes -= group
    return tuple(counts[length] for length in shape)


def _splitmix64(state: int) -> tuple[int, int]:
    """The next state and output of splitmix64 (Steele, Lea and Flood 2014), on Python integers."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


@functools.lru_cache(maxsize=1024)
def axis_indices(length: int, count: int) -> np.ndarray:
    """``count`` distinct indices of ``range(length)``, ascending, the same for the same two numbers everywhere:
    a partial Fisher-Yates shuffle driven by splitmix64 seeded with ``length``. Read-only (cached)."""
    if count >= length:
        chosen = np.arange(length)
    else:
        swaps: dict[int, int] = {}
        picked, state = [], length
        for j in range(count):
            state, random = _splitmix64(state)
            k = j + random % (length - j)
            picked.append(swaps.get(k, k))
            swaps[k] = swaps.get(j, j)
        chosen = np.array(sorted(picked), dtype=np.int64)
    chosen.flags.writeable = False
    return chosen


def tensor_sketch(array: np.ndarray) -> TensorSketch:
    """The sketch of ``array`` (any shape of at most :data:`MAX_SKETCH_RANK` axes, any real dtype, any strides).

    Reads every value once, as a float32 C-order copy (4 bytes a value); some 60 ms for 10 M values.

    Raises:
        ValueError: more than :data:`MAX_SKETCH_RANK` axes.
    """
    if array.ndim > MAX_SKETCH_RANK:
        raise ValueError(f"a tensor of {array.ndim} axes (at most {MAX_SKETCH_RANK} are sketched)")
    values = np.asarray(array, dtype="<f4", order="C")
    flat = values.reshape(-1)
    digest = hashlib.sha256(flat.view(np.uint8)).hexdigest()
    comparable = False
    if flat.size:
        low, high = flat.min(), flat.max()
        comparable = bool(np.isfinite(low) and np.isfinite(high) and low < high)
    norm = float(np.linalg.norm(flat)) if comparable else 0.0
    if not math.isfinite(norm):  # finite values whose squares overflow float32
        comparable, norm = False, 0.0
    counts = sample_counts(values.shape)
    sample = values[np.ix_(*(axis_indices(n, k) for n, k in zip(values.shape, counts)))] if values.ndim else values
    sample = np.array(sample, dtype="<f4")
    sample.flags.writeable = False
    return TensorSketch(values.shape, sample, digest, norm, comparable)


def sketch_tensors(tensors: Iterable[LazyTensor], budget: SketchBudget) -> tuple[list[tuple[str, TensorSketch]], int]:
    """The sketches, by name, of the comparable ``tensors`` of at least :data:`MIN_TENSOR_VALUES` values, and how
    many tensors were left unread because ``budget`` (which this spends) ran out. Tensors are loaded one at a time."""
    kept, unread = [], 0
    for tensor in tensors:
        if math.prod(tensor.shape) < MIN_TENSOR_VALUES:
            continue
        if budget.sketches <= 0 or tensor.cost > budget.bytes:
            unread += 1
            continue
        budget.sketches -= 1
        budget.bytes -= tensor.cost
        sketch = tensor_sketch(tensor.load())
        if sketch.comparable:
            kept.append((tensor.name[:MAX_NAME_CHARS], sketch))
    return kept, unread


def hdf5_tensors(path: Path) -> Iterator[LazyTensor]:
    """The float datasets of the HDF5 file ``path``, or of the HDF5 files a ``.keras`` zip holds, by their path in
    the file (Keras 3: ``layers/conv1d/vars/0``; Keras 2: ``model_weights/conv1d/conv1d/kernel:0``), in the file's
    order; datasets of other types are left out. For the sandbox: h5py runs a C library on the student's file.

    Raises:
        OSError, ValueError, KeyError, ...: whatever h5py raises for a file it cannot read.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".h5"):
                    if info.file_size > MAX_TENSOR_BYTES:
                        raise ValueError(f"{info.filename} is {info.file_size:,} bytes, more than the "
                                         f"{MAX_TENSOR_BYTES:,} read")
                    yield from _datasets(io.BytesIO(archive.read(info)))
    else:
        yield from _datasets(path)


def _datasets(source: Path | io.BytesIO) -> Iterator[LazyTensor]:
    import h5py

    with h5py.File(source, "r") as file:
        names: list[str] = []

        def visit(name: str, item: object) -> bool | None:
            if isinstance(item, h5py.Dataset):
                names.append(name)
            return True if len(names) > MAX_SKETCHES else None  # a true value stops the visit

        file.visititems(visit)
        for name in names:
            dataset = file[name]
            if dataset.shape is None or dataset.dtype.kind != "f" or dataset.dtype.itemsize not in FLOAT_ITEMSIZES:
                continue
            cost = dataset.size * (dataset.dtype.itemsize + 4)
            yield LazyTensor(name, tuple(dataset.shape), cost, lambda dataset=dataset: dataset[()])


def main(paths: list[str]) -> int:
    """Write the sketches of the HDF5 (or ``.keras``) files ``paths`` to stdout as JSON; a file that cannot be read
    has its problem instead. Always 0: the caller reads the problems."""
    budget, files = SketchBudget(), []
    for name in paths:
        try:
            tensors, unread = sketch_tensors(hdf5_tensors(Path(name)), budget)
            files.append({"name": name[:MAX_NAME_CHARS], "tensors": [[n, s.to_json()] for n, s in tensors],
                          "unread": unread, "problem": ""})
        except Exception as error:  # h5py raises many kinds for a broken file; each is this file's problem
            problem = f"cannot be read as HDF5 ({type(error).__name__}: {error})"[:MAX_PROBLEM_CHARS]
            files.append({"name": name[:MAX_NAME_CHARS], "tensors": [], "unread": 0, "problem": problem})
    json.dump({"files": files}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
