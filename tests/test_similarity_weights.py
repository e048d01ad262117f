"""One trained model handed in by two students, found in their checkpoints (grader/similarity/weights.py and
weights_inside.py): real torch checkpoints, the same weights renamed in safetensors, transposed in .npz, in a
Keras-like HDF5 sketched by the course environment (and in the sandbox), hostile pickles and zips read within
bounds and never run."""
from __future__ import annotations

import ast
import base64
import io
import itertools
import json
import os
import pickle
import struct
import subprocess
import time
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

import grader.similarity.weights as similarity
from grader.similarity.weights import (MATCH_COSINE, PickleContainer, PickleGlobal, WeightsFingerprint, compare,
                                       fingerprint_weights, match_tensors, symbolic_pickle)
from grader.similarity.weights_inside import (SKETCH_VALUES, SketchBudget, _splitmix64, axis_indices, sample_counts,
                                              tensor_sketch)

INSIDE = Path(similarity.__file__).with_name("weights_inside.py")
CREATE_HDF5 = """
import sys, zipfile, numpy as np, h5py
arrays = np.load(sys.argv[1])
with h5py.File(sys.argv[2], "w") as file:  # Keras 3's layout: layers/<layer>/vars/<i>
    for i, key in enumerate(arrays.files):
        file.create_dataset(f"layers/layer_{i}/vars/0", data=arrays[key])
    file.create_dataset("layers/seed_generator/vars/0", data=np.arange(100))  # no float: left out
with zipfile.ZipFile(sys.argv[3], "w") as archive:  # a .keras: config, metadata and the weights
    archive.writestr("config.json", "{}")
    archive.write(sys.argv[2], "model.weights.h5")
"""


class Net(torch.nn.Module):
    """The course's kinds of layer: a 1-D convolution, a linear layer and a GRU (22,688 parameters of 64 values or
    more, with biases of 32 to 144)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(16, 32, 5)
        self.norm = torch.nn.BatchNorm1d(32)  # ones, zeros and a step counter: never compared
        self.proj = torch.nn.Linear(64, 128)
        self.gru = torch.nn.GRU(32, 48)


def state_dict(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return Net().state_dict()


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "F32") -> None:
    """The safetensors format by hand (the package is not installed): header length, JSON header, bytes."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        if dtype == "BF16":
            blob = (np.ascontiguousarray(array, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
        else:
            blob = np.ascontiguousarray(array, dtype={"F16": "<f2", "F32": "<f4", "F64": "<f8"}[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps({"__metadata__": {"format": "pt"}, **header}).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def fingerprint(path: Path) -> WeightsFingerprint:
    return fingerprint_weights(path.parent, [path.name])


def torch_zip(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None) -> Path:
    """A torch.save-style zip holding ``data_pkl`` (hand-made: a hostile one) and its storages."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, data in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return path


def tensor_pickle(size: tuple[int, ...], stride: tuple[int, ...], offset: int = 0, numel: int = 4) -> bytes:
    """A data.pkl of one float tensor ``w`` (storage key "0"), opcode by opcode, as torch writes it."""
    def ints(values):
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"

    return (b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
            b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu" + b"J" + struct.pack("<i", numel)
            + b"tQ" + b"J" + struct.pack("<i", offset) + ints(size) + ints(stride)
            + b"\x89ccollections\nOrderedDict\n)RtRu.")


# ----------------------------------------------------------------------------------------------------- sketches

def test_a_permuted_or_cast_tensor_has_the_same_sample_permuted():
    array = np.random.default_rng(0).standard_normal((6, 40, 70)).astype(np.float32)
    sketch = tensor_sketch(array)
    assert sketch.values.size <= SKETCH_VALUES and sketch.values.shape == sample_counts((6, 40, 70)) == (6, 13, 13)
    for permutation in itertools.permutations(range(3)):
        permuted = tensor_sketch(np.ascontiguousarray(array.transpose(permutation)))
        assert permuted.shape == tuple(array.shape[p] for p in permutation)
        assert np.array_equal(permuted.values, sketch.values.transpose(permutation))
        assert permuted.norm == pytest.approx(sketch.norm, rel=1e-6)
    half = tensor_sketch(array.astype(np.float16))
    cosine = float(half.values.ravel() @ sketch.values.ravel()) / np.linalg.norm(half.values) / np.linalg.norm(
        sketch.values)
    assert cosine > 0.99999 and half.sha256 != sketch.sha256
    assert tensor_sketch(array.astype(np.float64)).sha256 == sketch.sha256  # float32 bytes: the same values


def test_samples_spread_over_the_axes_and_their_indices_never_change():
    """The indices come from splitmix64 (not numpy's generators, whose streams may change): the host's sketches and
    the sandbox's, made with another numpy, sample the same values. These figures pin them."""
    assert sample_counts((4096, 4096)) == (32, 32)
    assert sample_counts((128, 64)) == (32, 32)
    assert sample_counts((10_000_000,)) == (1024,)
    assert sample_counts((3, 32, 64)) == (3, 18, 18) and sample_counts((64, 32, 3)) == (18, 18, 3)
    assert sample_counts((100, 100, 100)) == (10, 10, 10)
    assert _splitmix64(0)[1] == 0xE220A8397B1DCDAF  # the published first output for seed 0
    assert axis_indices(10, 3).tolist() == [0, 6, 7]
    assert axis_indices(1000, 5).tolist() == [134, 381, 776, 803, 998]
    assert axis_indices(7, 7).tolist() == list(range(7))


def test_constant_and_non_finite_tensors_are_not_comparable():
    assert not tensor_sketch(np.ones((16, 16))).comparable
    assert not tensor_sketch(np.full(100, np.nan)).comparable
    assert not tensor_sketch(np.array([1.0, np.inf] * 50)).comparable
    assert tensor_sketch(np.arange(100.0)).comparable
    assert tensor_sketch(np.float32(3.0)).shape == ()


def test_tensors_match_through_transposes_and_permutations_but_not_near_constant_ones():
    rng = np.random.default_rng(1)
    torch_conv, square = rng.standard_normal((32, 16, 5)), rng.standard_normal((64, 64))
    near_one_a, near_one_b = 1 + 0.01 * rng.standard_normal(256), 1 + 0.01 * rng.standard_normal(256)
    a = [("conv", tensor_sketch(torch_conv)), ("square", tensor_sketch(square)), ("gamma", tensor_sketch(near_one_a)),
         ("bias", tensor_sketch(rng.standard_normal(32)))]
    b = [("kernel", tensor_sketch(torch_conv.transpose(2, 1, 0))), ("sq", tensor_sketch(square.T)),
         ("scale", tensor_sketch(near_one_b)), ("b", tensor_sketch(rng.standard_normal(32))),
         ("moved", tensor_sketch(torch_conv.transpose(1, 2, 0)))]
    matches = {(m.a, m.b): m for m in match_tensors(a, b)}
    assert set(matches) == {("conv", "kernel"), ("square", "sq")}  # each of a's tensors in one pair at most
    assert matches["conv", "kernel"].how == matches["square", "sq"].how == "transposed"
    assert matches["conv", "kernel"].cosine > MATCH_COSINE and matches["conv", "kernel"].values == 32 * 16 * 5
    moved = match_tensors(a[:1], b[4:])
    assert [m.how for m in moved] == ["axes permuted (2, 0, 1)"]
    raw = float(tensor_sketch(near_one_a).values @ tensor_sketch(near_one_b).values) / 256
    assert raw > 0.999  # their raw cosine would match: the centred one does not


# ------------------------------------------------------------------------------------------------ checkpoints

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    """One model's weights saved eight ways, and another model's."""
    folder = tmp_path_factory.mktemp("checkpoints")
    weights = state_dict(0)
    arrays = {name: tensor.numpy() for name, tensor in weights.items() if tensor.is_floating_point()}
    torch.save(weights, folder / "model.pt")
    optimizer = torch.optim.Adam(Net().parameters()).state_dict()
    torch.save({"model": weights, "epoch": 3, "optimizer": optimizer}, folder / "checkpoint.ckpt")
    write_safetensors(folder / "renamed.safetensors", {f"layer{i}/w": a for i, a in enumerate(arrays.values())})
    write_safetensors(folder / "half.safetensors", {f"h{i}": a for i, a in enumerate(arrays.values())}, "F16")
    write_safetensors(folder / "brain.safetensors", {f"b{i}": a for i, a in enumerate(arrays.values())}, "BF16")
    np.savez(folder / "transposed.npz", **{f"t{i}": a.T for i, a in enumerate(arrays.values())})
    np.save(folder / "kernel.npy", np.asfortranarray(arrays["conv.weight"].transpose(2, 1, 0)))
    torch.save({k: v.half() for k, v in weights.items()}, folder / "half.pth")
    torch.manual_seed(0)
    torch.save(Net(), folder / "whole.pt")  # the whole module: its classes are globals, named and never imported
    torch.save(state_dict(1), folder / "other.pt")
    return folder


def test_one_state_dict_renamed_in_another_container_or_dtype_is_found(checkpoints):
    model = fingerprint(checkpoints / "model.pt")
    assert model.files[0].problem == "" and len(model.files[0].tensors) == 7 and model.values == 22_688
    for name in ("renamed.safetensors", "half.safetensors", "brain.safetensors", "checkpoint.ckpt", "half.pth",
                 "whole.pt"):
        match = compare(model, fingerprint(checkpoints / name))
        assert match.score >= 0.99, (name, match)
    wrapped = compare(fingerprint(checkpoints / "checkpoint.ckpt"), model)
    assert wrapped.evidence == ("22,688 of the smaller model's 22,688 compared parameters are the other's (100%)",
                                "checkpoint.ckpt ~ model.pt: 7 tensors, 22,688 parameters (e.g. model.proj.weight ~ "
                                "proj.weight, identical; model.gru.weight_hh_l0 ~ gru.weight_hh_l0, identical; "
                                "model.gru.weight_ih_l0 ~ gru.weight_ih_l0, identical)")


def test_the_transposed_weights_are_found(checkpoints):
    match = compare(fingerprint(checkpoints / "model.pt"), fingerprint(checkpoints / "transposed.npz"))
    assert match.score >= 0.99
    assert "(e.g. proj.weight ~ t6, transposed; gru.weight_hh_l0 ~ t9, transposed;" in match.evidence[1]
    kernel = compare(fingerprint(checkpoints / "kernel.npy"), fingerprint(checkpoints / "model.pt"))
    assert kernel.score == 1.0 and "kernel ~ conv.weight, transposed" in kernel.evidence[1]


def test_independently_initialised_models_do_not_match(checkpoints):
    match = compare(fingerprint(checkpoints / "model.pt"), fingerprint(checkpoints / "other.pt"))
    assert match.score < 0.1 and match.evidence == ()


def test_a_byte_identical_file_scores_one_unless_it_is_a_placeholder(tmp_path, checkpoints):
    (tmp_path / "copy.pt").write_bytes((checkpoints / "model.pt").read_bytes())
    match = compare(fingerprint(checkpoints / "model.pt"), fingerprint(tmp_path / "copy.pt"))
    size = (checkpoints / "model.pt").stat().st_size
    assert match.score == 1.0 and match.evidence == (f"model.pt and copy.pt are byte-identical ({size / 1000:.3g} kB)",)
    (tmp_path / "a.pt").write_bytes(b"x")
    (tmp_path / "b.pt").write_bytes(b"x")
    assert compare(fingerprint(tmp_path / "a.pt"), fingerprint(tmp_path / "b.pt")).score == 0.0


def test_fingerprints_survive_json(checkpoints):
    both = fingerprint_weights(checkpoints, ["model.pt", "transposed.npz"])
    back = WeightsFingerprint.from_untrusted_json(json.dumps(both.to_json()))
    assert [f.sha256 for f in back.files] == [f.sha256 for f in both.files]
    assert compare(back, fingerprint(checkpoints / "renamed.safetensors")).score >= 0.99


# ----------------------------------------------------------------------------------------------- hostile files

class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_is_unreadable_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    evil = pickle.dumps({"w": Payload(marker)}, protocol=2)
    (tmp_path / "plain.pt").write_bytes(evil)
    torch_zip(tmp_path / "zipped.pt", evil)
    torch_zip(tmp_path / "protocol0.pt", pickle.dumps(Payload(marker), protocol=0))
    torch.save(state_dict(0), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    prints = fingerprint_weights(tmp_path, ["plain.pt", "zipped.pt", "protocol0.pt", "legacy.pt"]).files
    problems = {p.name: p.problem for p in prints}
    assert not marker.exists()
    assert "cannot be read without running it" in problems["plain.pt"] and problems["legacy.pt"] == problems["plain.pt"]
    assert problems["zipped.pt"] == "holds no float tensor of 64 values or more to compare"  # os.system: a name
    assert "opcode" in problems["protocol0.pt"] and all(not p.tensors for p in prints)
    walked = symbolic_pickle(evil)  # what it would have built: a call of posix.system, never made
    assert isinstance(walked, PickleContainer) and walked.entries[0][1].func == PickleGlobal("posix", "system")


def test_pickles_past_their_bounds_are_refused_quickly(tmp_path):
    many_ops = b"\x80\x02N" + b"q\x00" * 600_000 + b"."  # 600,000 memo puts: past the opcodes walked
    deep = b"\x80\x02" + b"N" * 200_000 + b"."
    cycle = b"\x80\x02]q\x00h\x00a."  # a list that holds itself
    started = time.perf_counter()
    for name, data in (("many.pt", many_ops), ("deep.pt", deep), ("cycle.pt", cycle)):
        torch_zip(tmp_path / name, data)
    prints = {p.name: p.problem for p in fingerprint_weights(tmp_path, ["many.pt", "deep.pt", "cycle.pt"]).files}
    assert "more than 500,000 pickle opcodes" in prints["many.pt"]
    assert "deeper than 100,000" in prints["deep.pt"]
    assert prints["cycle.pt"].startswith("holds no float tensor")
    assert time.perf_counter() - started < 5


def test_truncated_bombed_and_lying_zips_are_refused_within_bounds(tmp_path, checkpoints, monkeypatch):
    whole = (checkpoints / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    with zipfile.ZipFile(tmp_path / "crowd.pt", "w") as archive:
        for i in range(20_001):
            archive.writestr(f"archive/data/{i}", b"")
    torch_zip(tmp_path / "past.pt", tensor_pickle((1000, 1000), (1000, 1)), {"0": bytes(16)})
    four = np.arange(4, dtype="<f4").tobytes()
    torch_zip(tmp_path / "expanded.pt", tensor_pickle((10**6, 10**6), (0, 0)), {"0": four})  # 10^12 values of 4
    with zipfile.ZipFile(tmp_path / "bomb.pt", "w", zipfile.ZIP_DEFLATED) as archive:  # 40 MB of zeros in 40 kB
        archive.writestr("archive/data.pkl", tensor_pickle((10**7,), (1,), numel=10**7))
        archive.writestr("archive/data/0", bytes(4 * 10**7))
    monkeypatch.setattr(similarity, "SketchBudget", partial(SketchBudget, bytes=10**6))
    started = time.perf_counter()
    prints = {p.name: p for p in fingerprint_weights(tmp_path, ["cut.pt", "crowd.pt", "past.pt", "expanded.pt",
                                                                 "bomb.pt"]).files}
    assert "cannot be read as weights" in prints["cut.pt"].problem
    assert "more than the 20,000 read" in prints["crowd.pt"].problem
    assert "reaches past its storage" in prints["past.pt"].problem
    assert prints["expanded.pt"].unread == 1 and not prints["expanded.pt"].tensors  # never made
    assert prints["bomb.pt"].unread == 1 and prints["bomb.pt"].problem == ""  # past the bytes left: never inflated
    assert time.perf_counter() - started < 2


def test_sketches_from_the_sandbox_are_checked(checkpoints, monkeypatch):
    good = fingerprint(checkpoints / "model.pt").to_json()
    sketch = good["files"][0]["tensors"][0][1]

    def with_sketch(**changes) -> str:
        return json.dumps({"files": [{**good["files"][0], "tensors": [["w", {**sketch, **changes}]]}]})

    assert WeightsFingerprint.from_untrusted_json(with_sketch()).files[0].tensors[0][0] == "w"
    nan = np.full(sample_counts(tuple(sketch["shape"])), np.nan, dtype="<f4").tobytes()
    for bad in (with_sketch(shape=[True, 16, 5]), with_sketch(shape=[32, 16, 6]), with_sketch(values="!!!!"),
                with_sketch(sha256="x" * 64), with_sketch(norm=-1.0), with_sketch(comparable=1),
                with_sketch(values=base64.b64encode(nan).decode()), with_sketch(extra=1),
                json.dumps({"files": [{**good["files"][0], "unread": "0"}]}), json.dumps({"files": {}}), "[1, 2",
                json.dumps({"files": [{**good["files"][0], "tensors": [["w", sketch]] * 2001}]})):
        with pytest.raises(ValueError):
            WeightsFingerprint.from_untrusted_json(bad)
    monkeypatch.setattr(similarity, "MAX_SKETCH_JSON_BYTES", 1000)
    with pytest.raises(ValueError, match="more than the 1,000 read"):
        WeightsFingerprint.from_untrusted_json(with_sketch())


# ---------------------------------------------------------------------------------------------------- HDF5 inside

def test_the_sandbox_entry_point_imports_only_numpy_and_h5py():
    """It runs as a file with ``python -I``: nothing of the grader (nor pydantic) can be imported there."""
    tree = ast.parse(INSIDE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "base64", "functools", "hashlib", "io", "json", "math", "sys", "zipfile",
                        "collections", "dataclasses", "pathlib", "typing", "numpy", "h5py"}


@pytest.fixture(scope="module")
def course_python() -> Path:
    from grader.environment import bundled

    environment = bundled()
    if not environment.ready or not environment.has_module("h5py"):
        pytest.skip("the course environment (with h5py) is not built: make setup")
    return environment.python


@pytest.fixture(scope="module")
def keras_files(course_python, checkpoints, tmp_path_factory) -> Path:
    """The model's weights as a Keras 3 ``.weights.h5`` and ``.keras`` would hold them: conv kernels (k, in, out),
    dense kernels (in, out), made by h5py in the course environment."""
    folder = tmp_path_factory.mktemp("keras")
    weights = {k: v.numpy() for k, v in state_dict(0).items() if v.is_floating_point()}
    np.savez(folder / "keras_order.npz", **{k: v.transpose(*reversed(range(v.ndim))) for k, v in weights.items()})
    subprocess.run([course_python, "-c", CREATE_HDF5, folder / "keras_order.npz", folder / "model.weights.h5",
                    folder / "model.keras"], check=True, capture_output=True)
    return folder


def test_hdf5_weights_are_sketched_by_the_course_environment_and_found(course_python, keras_files, checkpoints):
    host = fingerprint_weights(keras_files, ["model.weights.h5", "model.keras"])
    assert host.pending_inside == ("model.weights.h5", "model.keras") and host.values == 0
    run = subprocess.run([course_python, "-I", INSIDE, *host.pending_inside, "missing.h5"], cwd=keras_files,
                         capture_output=True, text=True, check=True)
    inside = WeightsFingerprint.from_untrusted_json(run.stdout)
    assert [f.problem for f in inside.files][:2] == ["", ""] and "missing.h5" in inside.files[2].problem
    merged = host.with_inside(inside)
    assert merged.pending_inside == () and [f.sha256 for f in merged.files] == [f.sha256 for f in host.files]
    model = fingerprint(checkpoints / "model.pt")
    for file in merged.files:
        match = compare(model, WeightsFingerprint((file,)))
        assert match.score >= 0.99 and "proj.weight ~ layers/layer_6/vars/0, transposed" in match.evidence[1]


def test_the_entry_point_runs_in_the_sandbox(course_python, keras_files, checkpoints, tmp_path):
    from grader import sandbox
    from grader.limits import RunLimits

    if sandbox.BWRAP is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    (tmp_path / "model.weights.h5").write_bytes((keras_files / "model.weights.h5").read_bytes())
    (tmp_path / "numpy.py").write_text("raise SystemExit('a student module ran')\n")  # -I: never imported
    result = sandbox.run(["python", "-I", "{inside}", "model.weights.h5"], tmp_path, inputs={"inside": INSIDE},
                         limits=RunLimits(captured_bytes=similarity.MAX_SKETCH_JSON_BYTES, wall_seconds=60))
    assert result.ok, result.message + result.stderr
    inside = WeightsFingerprint.from_untrusted_json(result.stdout)
    assert compare(fingerprint(checkpoints / "model.pt"), inside).score >= 0.99


# ------------------------------------------------------------------------------------------------------- timing

def test_ten_million_parameters_are_sketched_well_under_two_seconds(tmp_path):
    torch.manual_seed(2)
    big = torch.nn.Sequential(torch.nn.Linear(3000, 3000), torch.nn.Linear(3000, 330))  # 9.99 M parameters
    torch.save(big.state_dict(), tmp_path / "big.pt")
    started = time.perf_counter()
    sketched = fingerprint(tmp_path / "big.pt")
    seconds = time.perf_counter() - started
    assert sketched.values == sum(p.numel() for p in big.parameters()) > 9_900_000
    started = time.perf_counter()
    assert compare(sketched, sketched).score == 1.0 and compare(sketched, WeightsFingerprint(
        (sketched.files[0].__class__("x", tensors=sketched.files[0].tensors),))).score == 1.0
    print(f"sketched 10 M parameters in {seconds:.2f} s; compared in {time.perf_counter() - started:.3f} s")
    assert seconds < 1.0


def test_read_weights_refuses_a_corrupt_or_unsupported_zip_member_without_raising(tmp_path):
    """A deflate stream that does not inflate (zlib.error) or a compression method zipfile lacks
    (NotImplementedError) is a problem for the checkpoint check to report, never an exception."""
    from grader.weights import read_weights

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("w.npy", b"\x93NUMPY" + b"\x00" * 400)
    data = bytearray(buffer.getvalue())
    start = data.index(b"PK\x03\x04") + 30 + len("w.npy")
    data[start:start + 8] = b"\xff" * 8  # the deflate stream, broken
    (tmp_path / "broken.npz").write_bytes(bytes(data))
    method = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = method.index(signature) + offset
        method[at:at + 2] = (99).to_bytes(2, "little")  # AES, which zipfile does not implement
    (tmp_path / "aes.npz").write_bytes(bytes(method))
    for name in ("broken.npz", "aes.npz"):
        found = read_weights(tmp_path / name, name)
        assert not found.readable and "cannot be read as weights" in found.problem, found
