"""Finding one trained model handed in by two students: their checkpoints compared, in any container and under any
names, without unpickling anything.

Two checkpoints match when a file is byte-identical, or when they hold the same tensors: renamed, in another
container, cast to another float type, transposed or with their axes permuted (a PyTorch conv weight
``(out, in, k)`` is a Keras kernel ``(k, in, out)``). Each submission's checkpoints become a
:class:`WeightsFingerprint`: per file, its sha256 and the sketches of its tensors
(:class:`~grader.similarity.weights_inside.TensorSketch`: a sample of at most 1024 values chosen by axis lengths
alone). :func:`match_tensors` pairs tensors whose axis lengths agree, under every permutation that maps lengths to
equal lengths, when their samples' cosine, and the cosine of the samples less their means, are at least
:data:`MATCH_COSINE`, and their norms agree within :data:`NORM_TOLERANCE`. :func:`compare` scores two submissions:
1.0 for a byte-identical file, else the share of the smaller model's parameters matched.

Student files are hostile; each format is read from its structure alone, within bounds:

- PyTorch zip (``torch.save``'s default since 1.6: ``.pt``, ``.pth``, ``.bin``, ``.ckpt``): ``data.pkl`` is walked
  opcode by opcode (:func:`pickletools.genops`) by a symbolic stack machine that knows the data opcodes torch's
  pickles use: a global stays a name, never imported; a call stays a node, never made. The
  ``torch._utils._rebuild_tensor_v2`` nodes (anywhere: an ``OrderedDict``, ``{"model": ..., "optimizer": ...}``)
  give each tensor's storage, dtype, offset, size and stride, and ``data/<key>`` its bytes;
- safetensors: the JSON header (bounded), then each tensor's byte range;
- NumPy ``.npy`` / ``.npz``: ``numpy.lib.format`` headers, never ``allow_pickle``;
- HDF5 (``.h5``, ``.keras``): hashed here, sketched inside the sandbox (:mod:`grader.similarity.weights_inside`,
  whose JSON :meth:`WeightsFingerprint.from_untrusted_json` reads back).

What a file is comes from :func:`grader.weights.read_weights` (which also refuses plain pickles and oversized zips).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import pickletools
import struct
import zipfile
import zlib
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Generic, TypeVar

import numpy as np
from numpy.lib import format as npy_format
from numpy.lib.stride_tricks import as_strided

from grader.limits import (MAX_CHECKPOINT_FILES, MAX_NPY_HEADER, MAX_PICKLE_BYTES, MAX_PICKLE_MEMO, MAX_PICKLE_OPS,
                           MAX_PICKLE_STACK, MAX_SAFETENSORS_HEADER, MAX_SKETCH_JSON_BYTES, MAX_WEIGHTS_ZIP_ENTRIES)
from grader.similarity.weights_inside import (FLOAT_ITEMSIZES, MAX_NAME_CHARS, MAX_PROBLEM_CHARS, MAX_SKETCH_RANK,
                                              MAX_SKETCHES, MIN_TENSOR_VALUES, LazyTensor, SketchBudget, TensorSketch,
                                              sketch_tensors)
from grader.student_files import amount, parse_json
from grader.weights import npy_header, read_weights

# Matching
MATCH_COSINE = 0.999
"""Two tensors' samples match at this cosine or more (a float16 copy has some 0.99999; independent ones some 0.02)."""
NORM_TOLERANCE = 0.01
"""Matching tensors' whole norms differ by at most this share of the larger (the samples are a sample)."""
MAX_PERMUTED_RANK = 4
"""Tensors of more axes are compared only as they are, not permuted (4 axes: at most 24 permutations)."""
MIN_IDENTICAL_FILE_BYTES = 1024
"""A byte-identical file counts only from this size: two empty or placeholder files are no shared model."""
EXAMPLES = 3
"""Tensor pairs named per pair of files in the evidence."""


_INSIDE_FORMATS = ("HDF5 (Keras weights)", "Keras (.keras)")
""":func:`grader.weights.read_weights`'s formats whose tensors are sketched inside the sandbox."""
_TORCH_FLOATS = {"HalfStorage": "f2", "FloatStorage": "f4", "DoubleStorage": "f8", "BFloat16Storage": "bf16"}
"""torch's storage classes of float tensors -> numpy dtype (without byte order); bfloat16 is read as uint16."""
_SAFETENSORS_FLOATS = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "bf16"}
_READ_ERRORS = (OSError, ValueError, struct.error, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError,
                KeyError, IndexError, TypeError)
"""What reading a hostile file may raise: OS and format errors, zipfile's unsupported compressions, and a
malformed pickle's empty stack (IndexError), unknown memo key (KeyError) or misplaced item (TypeError)."""

K = TypeVar("K", bound=Hashable)


# --------------------------------------------------------------------------------------------- one file's tensors

class _Refused(ValueError):
    """A ``data.pkl`` the symbolic reader will not walk: an opcode it does not know, or past a bound."""


@dataclass(frozen=True)
class PickleGlobal:
    """A global a pickle names (``torch._utils _rebuild_tensor_v2``): a name, never imported."""

    module: str
    name: str


@dataclass(eq=False)
class PickleCall:
    """What REDUCE or NEWOBJ would have made: ``func(*args)``, then its items set and its state built."""

    func: object
    args: tuple
    entries: list = field(default_factory=list)
    state: object = None


@dataclass(eq=False)
class PickleContainer:
    """A dict or list, as ``(key, value)`` entries (a list's keys are its indices): nothing is hashed."""

    entries: list = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class PersistentId:
    """What BINPERSID would have looked up: torch's ``("storage", storage class, key, location, numel)``."""

    value: object


_REBUILD_TENSOR = PickleGlobal("torch._utils", "_rebuild_tensor_v2")
_PUSHES_ARGUMENT = frozenset({"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES",
                              "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT"})
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


def _pop_mark(stack: list, marks: list[int]) -> list:
    start = marks.pop()
    items = stack[start:]
    del stack[start:]
    return items


def _target(stack: list, kinds: tuple[type, ...]) -> object:
    if not stack or not isinstance(stack[-1], kinds):
        raise _Refused("items set on something that takes none")
    return stack[-1]


def symbolic_pickle(data: bytes) -> object:
    """What the pickle ``data`` would build, as symbolic nodes: :class:`PickleCall` for a call,
    :class:`PickleGlobal` for a global, :class:`PickleContainer` for a dict or list, tuples, and plain strings,
    bytes, numbers, True, False and None.
    Nothing is imported or called; only the data opcodes of torch's pickles (protocols 2 to 5) are known.

    Raises:
        ValueError: an opcode outside those, a malformed stream, or past :data:`MAX_PICKLE_OPS`,
            :data:`MAX_PICKLE_STACK` or :data:`MAX_PICKLE_MEMO`; IndexError, KeyError: a malformed stream.
    """
    stack: list = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    for count, (opcode, argument, _) in enumerate(pickletools.genops(data), 1):
        name = opcode.name
        if count > MAX_PICKLE_OPS:
            raise _Refused(f"more than {MAX_PICKLE_OPS:,} pickle opcodes")
        if name in _PUSHES_ARGUMENT:
            stack.append(argument)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in ("EMPTY_DICT", "EMPTY_LIST"):
            stack.append(PickleContainer())
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "MARK":
            marks.append(len(stack))
        elif name == "TUPLE":
            stack.append(tuple(_pop_mark(stack, marks)))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            size = int(name[-1])
            if len(stack) < size:
                raise _Refused("a tuple of more items than the stack holds")
            items = tuple(stack[-size:])
            del stack[-size:]
            stack.append(items)
        elif name == "GLOBAL":
            module, _, attribute = argument.partition(" ")
            stack.append(PickleGlobal(module, attribute))
        elif name == "STACK_GLOBAL":
            attribute, module = stack.pop(), stack.pop()
            if not isinstance(module, str) or not isinstance(attribute, str):
                raise _Refused("a global named by something other than strings")
            stack.append(PickleGlobal(module, attribute))
        elif name == "BINPERSID":
            stack.append(PersistentId(stack.pop()))
        elif name in ("REDUCE", "NEWOBJ"):
            arguments, function = stack.pop(), stack.pop()
            if not isinstance(arguments, tuple):
                raise _Refused("a call whose arguments are no tuple")
            stack.append(PickleCall(function, arguments))
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            _target(stack, (PickleContainer, PickleCall)).entries.append((key, value))
        elif name == "SETITEMS":
            items = _pop_mark(stack, marks)
            if len(items) % 2:
                raise _Refused("SETITEMS of an odd number of items")
            _target(stack, (PickleContainer, PickleCall)).entries.extend(zip(items[::2], items[1::2]))
        elif name in ("APPEND", "APPENDS"):
            items = [stack.pop()] if name == "APPEND" else _pop_mark(stack, marks)
            entries = _target(stack, (PickleContainer, PickleCall)).entries
            entries.extend((len(entries) + i, item) for i, item in enumerate(items))
        elif name == "BUILD":
            state = stack.pop()
            _target(stack, (PickleCall,)).state = state
        elif name in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[len(memo) if name == "MEMOIZE" else argument] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            stack.append(memo[argument])
        elif name == "STOP":
            return stack.pop()
        elif name not in ("PROTO", "FRAME"):
            raise _Refused(f"opcode {name}, which no checkpoint's tensors need")
        if len(stack) + len(marks) > MAX_PICKLE_STACK or len(memo) > MAX_PICKLE_MEMO:
            raise _Refused(f"a pickle deeper than {MAX_PICKLE_STACK:,} items or with more than {MAX_PICKLE_MEMO:,} "
                           "memo entries")
    raise _Refused("a pickle without its end (STOP)")


def _name(prefix: str, key: object) -> str:
    """``prefix.key`` (a key that is no string or number is ``?``; ``None``: the prefix alone), cut to
    :data:`MAX_NAME_CHARS`."""
    if key is None:
        return prefix
    part = str(key) if isinstance(key, (str, int, float)) else "?"
    return (f"{prefix}.{part}" if prefix else part)[:MAX_NAME_CHARS]


def tensor_calls(root: object) -> Iterator[tuple[str, PickleCall]]:
    """Every ``_rebuild_tensor_v2`` node reachable from ``root`` once, named by the keys on the way
    (``model.enc.0.weight``; a call's arguments and state keep their caller's name), in the pickle's order.
    Iterative, each node visited once and named only when visited: a deep, wide or cyclic structure costs no
    recursion, and memory in proportion to its nodes."""
    seen: set[int] = set()
    pending: list[tuple[str, object, object]] = [("", None, root)]  # (the parent's name, the key, the node)
    while pending:
        parent, key, node = pending.pop()
        if not isinstance(node, (PickleCall, PickleContainer, tuple)) or id(node) in seen:
            continue
        seen.add(id(node))
        prefix = _name(parent, key)
        if isinstance(node, PickleCall) and node.func == _REBUILD_TENSOR:
            yield prefix, node
            continue
        if isinstance(node, PickleCall):
            children = [(None, argument) for argument in node.args] + node.entries + [(None, node.state)]
        elif isinstance(node, PickleContainer):
            children = node.entries
        else:
            children = list(enumerate(node))
        pending.extend((prefix, child_key, child) for child_key, child in reversed(children))


def _is_ints(value: object) -> bool:
    return isinstance(value, tuple) and all(type(n) is int and n >= 0 for n in value)


def _is_shape(value: object) -> bool:
    """A tuple of at most :data:`MAX_SKETCH_RANK` non-negative ints (a longer one is refused before its product)."""
    return isinstance(value, tuple) and len(value) <= MAX_SKETCH_RANK and _is_ints(value)


def _float_array(raw: np.ndarray, bfloat16: bool) -> np.ndarray:
    """``raw`` as floats: bfloat16 (read as uint16) becomes float32; other floats are returned as they are."""
    return (raw.astype(np.uint32) << 16).view(np.float32) if bfloat16 else raw


def _entry_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A zip entry's bytes: at most its declared size (zipfile stops there), which must be all of it."""
    with archive.open(info) as entry:
        data = entry.read(info.file_size)
    if len(data) != info.file_size:
        raise ValueError(f"{info.filename} is cut short")
    return data


def _torch_tensors(path: Path, name: str) -> Iterator[LazyTensor]:
    """The float tensors of a ``torch.save`` zip, from its ``data.pkl`` (never unpickled) and ``data/<key>``."""
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()[:MAX_WEIGHTS_ZIP_ENTRIES]}
        pickles = [n for n in infos if len(PurePosixPath(n).parts) == 2 and n.endswith("/data.pkl")]
        if not pickles:
            raise ValueError("no <archive>/data.pkl")
        if infos[pickles[0]].file_size > MAX_PICKLE_BYTES:
            raise _Refused(f"a data.pkl of {infos[pickles[0]].file_size:,} bytes, more than the {MAX_PICKLE_BYTES:,} "
                           "read")
        prefix = PurePosixPath(pickles[0]).parent
        order = infos.get(f"{prefix}/byteorder")
        endian = ">" if order is not None and order.file_size < 16 and _entry_bytes(archive, order) == b"big" else "<"
        root = symbolic_pickle(_entry_bytes(archive, infos[pickles[0]]))
        for tensor_name, call in tensor_calls(root):
            found = _torch_tensor(archive, infos, prefix, endian, tensor_name, call)
            if found is not None:
                yield found


def _torch_tensor(archive: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], prefix: PurePosixPath, endian: str,
                  name: str, call: PickleCall) -> LazyTensor | None:
    """The tensor ``_rebuild_tensor_v2(storage, offset, size, stride, ...)`` describes, or None for one of another
    dtype. Its extent is checked against its storage's bytes before anything is read.

    Raises:
        ValueError: arguments that are not a tensor's, a missing storage, or a tensor past its storage's end.
    """
    if len(call.args) < 4 or not isinstance(call.args[0], PersistentId):
        raise ValueError(f"tensor {name!r}: arguments that are no tensor's")
    storage, offset, size, stride = call.args[:4]
    record = storage.value
    if (not isinstance(record, tuple) or len(record) < 3 or record[0] != "storage"
            or not isinstance(record[1], PickleGlobal) or not isinstance(record[2], str)
            or type(offset) is not int or offset < 0 or not _is_shape(size) or not _is_shape(stride)
            or len(size) != len(stride)):
        raise ValueError(f"tensor {name!r}: arguments that are no tensor's")
    dtype = _TORCH_FLOATS.get(record[1].name) if record[1].module == "torch" else None
    if dtype is None:
        return None
    info = infos.get(f"{prefix}/data/{record[2]}")
    if info is None:
        raise ValueError(f"tensor {name!r}: its storage data/{record[2]} is missing")
    bfloat16 = dtype == "bf16"
    storage_dtype = np.dtype(endian + ("u2" if bfloat16 else dtype))
    count = math.prod(size)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if count and last >= info.file_size // storage_dtype.itemsize:
        raise ValueError(f"tensor {name!r} reaches past its storage")

    def load() -> np.ndarray:
        raw = np.frombuffer(_entry_bytes(archive, info), dtype=storage_dtype,
                            count=info.file_size // storage_dtype.itemsize)
        view = as_strided(raw[offset:], shape=size, strides=[s * storage_dtype.itemsize for s in stride],
                          writeable=False)
        return _float_array(view, bfloat16)

    return LazyTensor(name, size, info.file_size + 4 * count, load)


def _read_at(path: Path, offset: int, dtype: np.dtype, shape: tuple[int, ...], bfloat16: bool) -> np.ndarray:
    count = math.prod(shape)
    raw = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    if raw.size != count:
        raise ValueError(f"{path.name} is cut short")
    return _float_array(raw.reshape(shape), bfloat16)


def _safetensors_tensors(path: Path, name: str) -> Iterator[LazyTensor]:
    """The float tensors (F16, BF16, F32, F64) of a safetensors file: its bounded JSON header, then byte ranges."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        length = struct.unpack("<Q", file.read(8))[0]
        if length > min(MAX_SAFETENSORS_HEADER, size - 8):
            raise ValueError(f"a header of {length:,} bytes, past the file or the {MAX_SAFETENSORS_HEADER:,} read")
        header = parse_json(file.read(length), name)
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    for key, entry in header.items():
        dtype_name = entry.get("dtype") if isinstance(entry, dict) and key != "__metadata__" else None
        kind = _SAFETENSORS_FLOATS.get(dtype_name) if isinstance(dtype_name, str) else None
        if kind is None:
            continue
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        bfloat16 = kind == "bf16"
        dtype = np.dtype("<u2" if bfloat16 else kind)
        if (not isinstance(shape, list) or not _is_shape(tuple(shape)) or not isinstance(offsets, list)
                or len(offsets) != 2 or not _is_ints(tuple(offsets))
                or not offsets[0] + math.prod(shape) * dtype.itemsize == offsets[1] <= size - 8 - length):
            raise ValueError(f"tensor {key!r} has no valid shape and byte range")
        yield LazyTensor(key, tuple(shape), offsets[1] - offsets[0] + 4 * math.prod(shape),
                         partial(_read_at, path, 8 + length + offsets[0], dtype, tuple(shape), bfloat16))


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f" and dtype.itemsize in FLOAT_ITEMSIZES


def _npz_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(info) as member:
        return npy_format.read_array(member, allow_pickle=False, max_header_size=MAX_NPY_HEADER)


def _npz_tensors(path: Path, name: str) -> Iterator[LazyTensor]:
    """The float arrays of an ``.npz``, each header read (and its size checked against the member's) first."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist()[:MAX_WEIGHTS_ZIP_ENTRIES]:
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                shape, dtype = npy_header(member)
            if not _is_float(dtype) or not _is_shape(shape):
                continue
            count = math.prod(shape)
            if count * dtype.itemsize > info.file_size:
                raise ValueError(f"{info.filename} declares more values than it holds")
            yield LazyTensor(info.filename.removesuffix(".npy"), shape, info.file_size + 4 * count,
                             partial(_npz_member, archive, info))


def _npy_tensors(path: Path, name: str) -> Iterator[LazyTensor]:
    """The array of an ``.npy`` (memory-mapped), named by the file's stem."""
    with open(path, "rb") as file:
        shape, dtype = npy_header(file)
    if _is_float(dtype) and _is_shape(shape):
        yield LazyTensor(PurePosixPath(name).stem, shape, path.stat().st_size + 4 * math.prod(shape),
                         partial(np.load, path, mmap_mode="r", allow_pickle=False, max_header_size=MAX_NPY_HEADER))


_READERS = {"PyTorch (torch.save zip)": _torch_tensors, "safetensors": _safetensors_tensors,
            "NumPy (.npz)": _npz_tensors, "NumPy (.npy)": _npy_tensors}
""":func:`grader.weights.read_weights`'s formats read here -> their reader."""


# ---------------------------------------------------------------------------------------------------- fingerprints

@dataclass(frozen=True)
class CheckpointPrint:
    """One checkpoint file of a submission, for comparison.

    Attributes:
        name: its path in the submission.
        sha256: of its bytes ("" when read back from the sandbox without it).
        size: its bytes.
        tensors: the sketches of its comparable tensors of at least 64 values, by name.
        unread: tensors left unread, past the bounds on tensors or bytes per submission.
        problem: why its tensors could not be read ("" when they were).
        pending_inside: an HDF5 file whose tensors are still to be sketched in the sandbox.
    """

    name: str
    sha256: str = ""
    size: int = 0
    tensors: tuple[tuple[str, TensorSketch], ...] = ()
    unread: int = 0
    problem: str = ""
    pending_inside: bool = False

    @property
    def values(self) -> int:
        """Values of its sketched tensors together."""
        return sum(sketch.size for _, sketch in self.tensors)

    def to_json(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "size": self.size,
                "tensors": [[name, sketch.to_json()] for name, sketch in self.tensors], "unread": self.unread,
                "problem": self.problem, "pending_inside": self.pending_inside}


@dataclass(frozen=True)
class WeightsFingerprint:
    """A submission's checkpoints, for comparison with another's (:func:`compare`)."""

    files: tuple[CheckpointPrint, ...] = ()

    @property
    def values(self) -> int:
        """Values of all its sketched tensors (its model's parameters, as far as they are compared)."""
        return sum(file.values for file in self.files)

    @property
    def pending_inside(self) -> tuple[str, ...]:
        """The files whose tensors the sandbox is to sketch (``weights_inside.py`` with these, in this order)."""
        return tuple(file.name for file in self.files if file.pending_inside)

    def with_inside(self, inside: WeightsFingerprint) -> WeightsFingerprint:
        """This fingerprint with the tensors (or problems) the sandbox read for its pending files (by name);
        sha256 and size stay this one's own."""
        by_name = {file.name: file for file in inside.files}
        return WeightsFingerprint(tuple(
            replace(file, tensors=by_name[file.name].tensors, unread=by_name[file.name].unread,
                    problem=by_name[file.name].problem, pending_inside=False)
            if file.pending_inside and file.name in by_name else file for file in self.files))

    def to_json(self) -> dict:
        return {"files": [file.to_json() for file in self.files]}

    @classmethod
    def from_untrusted_json(cls, text: str | bytes) -> WeightsFingerprint:
        """The fingerprint in ``text``, as ``weights_inside.py`` writes it (or :meth:`to_json`), checked for types,
        counts and sizes: at most :data:`MAX_SKETCH_JSON_BYTES`, :data:`MAX_CHECKPOINT_FILES` files and
        :data:`~grader.similarity.weights_inside.MAX_SKETCHES` tensors, each sketch's values fitting its shape.

        Raises:
            ValueError: saying what is wrong.
        """
        data = text.encode() if isinstance(text, str) else text
        if len(data) > MAX_SKETCH_JSON_BYTES:
            raise ValueError(f"sketches of {len(data):,} bytes, more than the {MAX_SKETCH_JSON_BYTES:,} read")
        return cls.from_json_value(parse_json(data, "the sandbox's sketches"))

    @classmethod
    def from_json_value(cls, parsed: object) -> WeightsFingerprint:
        """The fingerprint a parsed JSON value (:meth:`to_json`'s) holds, checked as :meth:`from_untrusted_json` does.

        Raises:
            ValueError: saying what is wrong.
        """
        if not isinstance(parsed, dict) or set(parsed) != {"files"} or not isinstance(parsed["files"], list):
            raise ValueError('sketches are an object {"files": [...]}')
        if len(parsed["files"]) > MAX_CHECKPOINT_FILES:
            raise ValueError(f"more than {MAX_CHECKPOINT_FILES:,} files")
        files, tensors = [], 0
        for entry in parsed["files"]:
            file = _checkpoint_from_json(entry)
            tensors += len(file.tensors)
            if tensors > MAX_SKETCHES:
                raise ValueError(f"more than {MAX_SKETCHES:,} tensors")
            files.append(file)
        return cls(tuple(files))


_FILE_FIELDS = {"name": str, "tensors": list, "unread": int, "problem": str}
_OPTIONAL_FILE_FIELDS = {"sha256": str, "size": int, "pending_inside": bool}


def _checkpoint_from_json(entry: object) -> CheckpointPrint:
    if not isinstance(entry, dict) or not set(_FILE_FIELDS) <= set(entry) <= set(_FILE_FIELDS) | set(
            _OPTIONAL_FILE_FIELDS):
        raise ValueError(f"a file is an object of {sorted(_FILE_FIELDS)} (and maybe {sorted(_OPTIONAL_FILE_FIELDS)})")
    for key, kind in (_FILE_FIELDS | _OPTIONAL_FILE_FIELDS).items():
        if key in entry and type(entry[key]) is not kind:
            raise ValueError(f"a file's {key} must be a JSON {kind.__name__}")
    if (len(entry["name"]) > MAX_NAME_CHARS or len(entry["problem"]) > MAX_PROBLEM_CHARS or entry["unread"] < 0
            or entry.get("size", 0) < 0 or entry.get("sha256", "") and (len(entry["sha256"]) != 64
                                                                        or entry["sha256"].strip("0123456789abcdef"))):
        raise ValueError(f"file {entry['name'][:80]!r}: a name, problem, count, size or sha256 out of range")
    if len(entry["tensors"]) > MAX_SKETCHES:
        raise ValueError(f"more than {MAX_SKETCHES:,} tensors")
    tensors = []
    for pair in entry["tensors"]:
        if (not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str)
                or len(pair[0]) > MAX_NAME_CHARS):
            raise ValueError("a tensor is a [name, sketch] pair")
        tensors.append((pair[0], TensorSketch.from_json(pair[1])))
    return CheckpointPrint(entry["name"], entry.get("sha256", ""), entry.get("size", 0), tuple(tensors),
                           entry["unread"], entry["problem"], entry.get("pending_inside", False))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_weights(root: Path, names: Iterable[str]) -> WeightsFingerprint:
    """The fingerprint of the checkpoint files ``names`` (relative to ``root``; links and non-files are left out).

    Every file is hashed; the tensors of PyTorch zips, safetensors and NumPy files are sketched here, within
    :data:`~grader.similarity.weights_inside.MAX_SKETCHES` tensors and
    :data:`~grader.similarity.weights_inside.MAX_TENSOR_BYTES` bytes for the submission; HDF5 and Keras files are
    left :attr:`~WeightsFingerprint.pending_inside`. Never raises for a bad file: its problem says what is wrong.
    """
    budget = SketchBudget()
    paths = ((root / name, name) for name in names)
    return WeightsFingerprint(tuple(_checkpoint(path, name, budget) for path, name in paths
                                    if not path.is_symlink() and path.is_file()))


def _checkpoint(path: Path, name: str, budget: SketchBudget) -> CheckpointPrint:
    """The print of one checkpoint file, its tensors read within (and spending) ``budget``."""
    try:
        digest, size = _file_sha256(path), path.stat().st_size
    except OSError as error:
        return CheckpointPrint(name, problem=f"cannot be read ({error.strerror})")
    try:
        what = read_weights(path, name)
        reader = _READERS.get(what.format)
        if what.problem or (reader is None and what.format not in _INSIDE_FORMATS):
            return CheckpointPrint(name, digest, size, problem=what.problem or f"its tensors are not compared "
                                   f"({what.format})")
        if reader is None:
            return CheckpointPrint(name, digest, size, pending_inside=True)
        tensors, unread = sketch_tensors(reader(path, name), budget)
    except _READ_ERRORS as error:
        problem = f"its tensors cannot be read ({type(error).__name__}: {error})"[:MAX_PROBLEM_CHARS]
        return CheckpointPrint(name, digest, size, problem=problem)
    problem = "" if tensors or unread else f"holds no float tensor of {MIN_TENSOR_VALUES} values or more to compare"
    return CheckpointPrint(name, digest, size, tuple(tensors), unread, problem)


# -------------------------------------------------------------------------------------------------------- matching

@dataclass(frozen=True)
class TensorMatch(Generic[K]):
    """Tensor ``a`` of one side holds tensor ``b`` of the other: ``b`` with its axes in the order ``permutation``
    (``b.transpose(permutation)``) has ``a``'s shape, and their samples a cosine of ``cosine``.

    Attributes:
        values: the tensors' values (each has as many).
        identical: the same float32 values, in the same order (equal sha256 and shape).
    """

    a: K
    b: K
    values: int
    cosine: float
    permutation: tuple[int, ...]
    identical: bool

    @property
    def how(self) -> str:
        """In words: ``identical``, ``as-is``, ``transposed`` (axes reversed) or ``axes permuted (2, 0, 1)``."""
        if self.permutation == tuple(range(len(self.permutation))):
            return "identical" if self.identical else "as-is"
        if self.permutation == tuple(reversed(range(len(self.permutation)))):
            return "transposed"
        return f"axes permuted {self.permutation}"


def _permutations(shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The orders of ``shape_b``'s axes that give ``shape_a`` (only as-is past :data:`MAX_PERMUTED_RANK` axes)."""
    if len(shape_a) > MAX_PERMUTED_RANK:
        return [tuple(range(len(shape_a)))] if shape_a == shape_b else []
    return [p for p in itertools.permutations(range(len(shape_b))) if all(shape_b[j] == n for j, n in zip(p, shape_a))]


def _units(samples: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The samples (flattened, one a row) scaled to unit norm, and the same less their means; a zero row stays zero."""
    rows = np.stack([sample.reshape(-1) for sample in samples]).astype(np.float64)
    centred = rows - rows.mean(axis=1, keepdims=True)
    for matrix in (rows, centred):
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        np.divide(matrix, norms, out=matrix, where=norms > 0)
    return rows, centred


def match_tensors(a: Sequence[tuple[K, TensorSketch]], b: Sequence[tuple[K, TensorSketch]]) -> list[TensorMatch[K]]:
    """Pairs of one tensor of ``a`` and one of ``b`` that hold the same values, each tensor in one pair at most.

    Only comparable sketches of at least 64 values take part. Two tensors are compared when their shapes have the
    same axis lengths, under each order of ``b``'s axes that maps them to ``a``'s (at most 24; as-is past
    :data:`MAX_PERMUTED_RANK` axes); they match when their samples' cosine, and that of their samples less their
    means, are at least :data:`MATCH_COSINE` and their norms agree within :data:`NORM_TOLERANCE`. The best
    matches are kept first (greedily, by cosine). One matrix product per pair of shapes and permutation.
    """
    def groups(side: Sequence[tuple[K, TensorSketch]]) -> dict[tuple[int, ...], list[int]]:
        """The indices of ``side``'s comparable sketches, by shape."""
        found: dict[tuple[int, ...], list[int]] = {}
        for index, (_, sketch) in enumerate(side):
            if sketch.comparable and sketch.size >= MIN_TENSOR_VALUES:
                found.setdefault(sketch.shape, []).append(index)
        return found

    b_groups = groups(b)
    candidates: list[tuple[float, int, int, tuple[int, ...]]] = []
    for shape_a, a_indices in groups(a).items():
        a_rows, a_centred = _units([a[i][1].values for i in a_indices])
        a_norms = np.array([a[i][1].norm for i in a_indices])
        for shape_b, b_indices in b_groups.items():
            if sorted(shape_a) != sorted(shape_b):
                continue
            b_norms = np.array([b[j][1].norm for j in b_indices])
            norms_agree = np.abs(a_norms[:, None] - b_norms[None, :]) <= NORM_TOLERANCE * np.maximum(
                a_norms[:, None], b_norms[None, :])
            for permutation in _permutations(shape_a, shape_b):
                b_rows, b_centred = _units([b[j][1].values.transpose(permutation) for j in b_indices])
                cosine = a_rows @ b_rows.T
                agree = (cosine >= MATCH_COSINE) & (a_centred @ b_centred.T >= MATCH_COSINE) & norms_agree
                candidates.extend((float(cosine[x, y]), a_indices[x], b_indices[y], permutation)
                                  for x, y in zip(*np.nonzero(agree)))
    candidates.sort(key=lambda candidate: -candidate[0])
    matches: list[TensorMatch[K]] = []
    used_a, used_b = set(), set()
    for cosine, i, j, permutation in candidates:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        (key_a, sketch_a), (key_b, sketch_b) = a[i], b[j]
        identical = sketch_a.sha256 == sketch_b.sha256 and sketch_a.shape == sketch_b.shape
        matches.append(TensorMatch(key_a, key_b, sketch_a.size, min(cosine, 1.0), permutation, identical))
    return matches


@dataclass(frozen=True)
class WeightsMatch:
    """How much of two submissions' checkpoints is one model.

    Attributes:
        score: 1.0 for a byte-identical checkpoint file, else the share (0 to 1) of the smaller side's compared
            parameters that match a tensor of the other side.
        evidence: sentences for the report: identical files; per pair of files, the tensors and parameters
            matched, with examples.
    """

    score: float
    evidence: tuple[str, ...] = ()


def compare(a: WeightsFingerprint, b: WeightsFingerprint) -> WeightsMatch:
    """How much of ``a``'s and ``b``'s checkpoints is one model (:class:`WeightsMatch`)."""
    identical = [f"{file_a.name} and {file_b.name} are byte-identical ({amount(file_a.size)})"
                 for file_a in a.files for file_b in b.files
                 if file_a.sha256 and file_a.sha256 == file_b.sha256 and file_a.size >= MIN_IDENTICAL_FILE_BYTES]
    if identical:
        return WeightsMatch(1.0, tuple(identical))
    smaller = min(a.values, b.values)
    matches = match_tensors([((f.name, n), s) for f in a.files for n, s in f.tensors],
                            [((f.name, n), s) for f in b.files for n, s in f.tensors])
    if not smaller or not matches:
        return WeightsMatch(0.0)
    matched = sum(match.values for match in matches)
    evidence = [f"{matched:,} of the smaller model's {smaller:,} compared parameters are the other's "
                f"({matched / smaller:.0%})"]
    by_files: dict[tuple[str, str], list[TensorMatch]] = {}
    for match in matches:
        by_files.setdefault((match.a[0], match.b[0]), []).append(match)
    for (file_a, file_b), pairs in by_files.items():
        examples = "; ".join(f"{m.a[1]} ~ {m.b[1]}, {m.how}" for m in sorted(pairs, key=lambda m: -m.values)[:EXAMPLES])
        evidence.append(f"{file_a} ~ {file_b}: {len(pairs)} tensor{'s' * (len(pairs) != 1)}, "
                        f"{sum(m.values for m in pairs):,} parameters (e.g. {examples})")
    return WeightsMatch(min(1.0, matched / smaller), tuple(evidence))
