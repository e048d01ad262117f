"""Points only for what is real (issue 15, item 5): evidence in code that runs, architectures that build layers,
weights read without unpickling and used by the entry point, claims that do not contradict each other.

The gaming submission (tests/gaming.py) earns nothing on the items it games; the example submissions keep
their points.
"""
from __future__ import annotations

import importlib.util
import json
import pickle
import struct

import nbformat
import numpy as np
import pytest
import torch

from grader.checks.claims import contradictions, read_claims
from grader.checks.static import architectures, find_evidence
from grader.code import CodeUnit, code_units
from grader.reachability import Entries
from grader.weights import weight_files
from reference import PROJECT_ROOT
from tests.gaming import GAMED_ITEMS, write_gaming_submission

LIBRARY = '''import librosa
import numpy as np

def augment(y, sr):
    return librosa.effects.pitch_shift(y, sr=sr, n_steps=2)
'''
SCRIPT = '''import numpy as np
import torch

def unused(model, y):
    y = np.roll(y, 100)
    optimizer = torch.optim.Adam(model.parameters())
    optimizer.zero_grad()
    model(y).sum().backward()

def shift(y):
    return np.roll(y, 100)

clips = list(map(shift, [np.zeros(4)]))
'''


def kinds(units, entries=None):
    return {kind for kind, found in find_evidence(units, entries).items() if found}


def test_a_function_nothing_calls_in_a_script_is_no_evidence_but_a_librarys_functions_are():
    entries = Entries(programs=frozenset({"generate.py"}))
    unreached = {}
    found = find_evidence([CodeUnit("generate.py", SCRIPT), CodeUnit("preprocess.py", LIBRARY)], entries, unreached)
    assert {(f.file, f.what) for f in found["augmentation"]} == {("generate.py", "time shift (np.roll)"),
                                                                 ("preprocess.py", "pitch shift")}
    assert [f.line for f in found["augmentation"] if f.file == "generate.py"] == [11]  # in shift, passed to map
    assert not found["training_loop"]
    assert any("function unused, which nothing that runs calls" in seen for seen in unreached["training_loop"])


def test_notebook_cells_that_did_not_run_are_no_evidence_unless_none_ran(tmp_path):
    cells = [nbformat.v4.new_code_cell("import librosa\ny = librosa.load('a.wav')[0]", execution_count=1),
             nbformat.v4.new_code_cell("y2 = librosa.effects.pitch_shift(y, sr=16000, n_steps=2)")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "work.ipynb")
    units, _, _ = code_units([tmp_path / "work.ipynb"], tmp_path)
    assert [unit.ran for unit in units] == [True, False]
    assert kinds(units) == {"librosa_load"}
    assert "augmentation" in kinds(units, Entries(notebooks=frozenset({"work.ipynb"})))  # the grader runs it all
    cleared = [CodeUnit(u.name, u.source, file=u.file, cell=u.cell, ran=False) for u in units]
    assert "augmentation" in kinds(cleared)  # a notebook handed in cleared: every cell counts


def test_an_architecture_counts_only_where_it_builds_layers():
    empty = "class Generator:\n    pass\n\nclass Discriminator:\n    pass\n"
    assert not architectures(find_evidence([CodeUnit("model.py", empty)])["architecture"])["GAN"]
    built = ('from torch import nn\n\nclass Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n'
             '        self.conv = nn.ConvTranspose1d(8, 8, 4)\n\nclass Generator(nn.Module):\n'
             '    def __init__(self):\n        super().__init__()\n        self.blocks = nn.ModuleList([Block()])\n\n'
             'class Discriminator(nn.Module):\n    def __init__(self):\n        super().__init__()\n'
             '        self.out = nn.Linear(8, 1)\n')
    assert architectures(find_evidence([CodeUnit("model.py", built)])["architecture"])["GAN"]


def test_weights_are_read_from_their_structure_without_unpickling(tmp_path, monkeypatch):
    torch.save({"w": torch.zeros(100, 100)}, tmp_path / "model.pt")
    torch.save({"w": torch.zeros(10)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    np.savez(tmp_path / "mix.npz", w=np.zeros((80, 80), np.float32))
    header = json.dumps({"w": {"dtype": "F32", "shape": [2048], "data_offsets": [0, 8192]}}).encode()
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8192))
    (tmp_path / "m.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(20_000))
    (tmp_path / "one.pt").write_bytes(b"\x80")
    (tmp_path / "objects.npy").write_bytes(b"")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled"))
    found = {w.name: w for w in weight_files(tmp_path, sorted(p.name for p in tmp_path.iterdir()))}
    assert (found["model.pt"].format, found["model.pt"].tensors, found["model.pt"].tensor_bytes) == (
        "PyTorch (torch.save zip)", 1, 40_000)
    assert found["mix.npz"].tensor_bytes == 25_600 and found["m.safetensors"].tensor_bytes == 8192
    assert found["m.weights.h5"].readable
    assert "without running it" in found["legacy.pt"].problem
    assert found["one.pt"].problem == "only 1 byte: it holds no weights"
    assert "Python objects" in found["objects.npy"].problem


def test_contradictory_figures_claim_nothing_and_honest_ones_stand():
    tolerance = {"pesq_wb": 0.5, "pesq_nb": 0.5, "snr": 3.0}
    listed = read_claims("PESQ on the test set: 1.0, 1.5, 2.0, 2.5, 3.0\n", "evaluation.md")
    assert [c.value for c in listed] == [1.0, 1.5, 2.0, 2.5, 3.0] and {c.subset for c in listed} == {"test"}
    assert list(contradictions(listed, tolerance)) == [("pesq_wb", "test", "")]
    honest = read_claims("Mean PESQ (wide-band) on the test clips: 1.52\nMean SNR on the test clips: -2.9 dB\n"
                         "Griffin-Lim PESQ: 2.8\nVAE PESQ: 1.6\nepoch 1: PESQ 1.1\nepoch 9: PESQ 2.9\n"
                         "PESQ nb on held-out clips: 2.4\n", "report.md")
    assert not contradictions(honest, tolerance)
    assert {(c.metric, c.subset) for c in honest} >= {("pesq_wb", "test"), ("snr", "test"), ("pesq_nb", "held-out")}


# --------------------------------------------------------------------------- graded end to end

HONEST_POINTS = {
    # measured before this change on the small held-out set below (the items the gaming submission games)
    "reference-solution": {"model-architecture": 8, "model-training": 6, "model-checkpoint": 4,
                           "preprocess-augmentation": 6, "evaluation-code": 6, "evaluation-claims": 8},
    "vae-only": {"model-architecture": 8, "model-training": 6, "model-checkpoint": 4, "preprocess-augmentation": 6,
                 "evaluation-code": 6, "evaluation-claims": 8},
    "notebook": {"model-architecture": 8, "model-training": 6, "model-checkpoint": 4, "preprocess-augmentation": 6,
                 "evaluation-code": 6, "evaluation-claims": 8},
    "partial": {"preprocess-augmentation": 6},
    "broken": {"model-architecture": 8, "model-training": 6, "preprocess-augmentation": 6, "evaluation-code": 6},
}
"""Points of each example on the gamed items (misbehaving, whose generation run takes the whole time limit, is left
out: tests/test_demo_examples.py grades it with its runs capped)."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, small_heldout, small_baseline):
    from grader.pipeline import GradingSetup
    from grader.rubric import DEFAULT_RUBRIC, load_rubric

    root = tmp_path_factory.mktemp("real")
    rubric = load_rubric(DEFAULT_RUBRIC)
    return lambda name: GradingSetup(rubric=rubric, heldout=small_heldout, load_baseline=small_baseline,
                                     out_dir=root / name)


def test_the_gaming_submission_earns_nothing_for_what_it_games(setup, tmp_path):
    from grader.pipeline import grade_submission

    result = grade_submission(write_gaming_submission(tmp_path / "gaming"), setup("out-gaming"))
    by_id = {item.id: item for item in result.items}
    assert {item: by_id[item].points for item in GAMED_ITEMS} == dict.fromkeys(GAMED_ITEMS, 0), \
        {item: by_id[item].explanation for item in GAMED_ITEMS if by_id[item].points}
    assert result.total < 40
    assert "does not use them" in by_id["model-checkpoint"].explanation or "holds no weights" in " ".join(
        by_id["model-checkpoint"].evidence)
    assert "which nothing that runs calls" in by_id["model-training"].explanation
    assert "builds no layers" in by_id["model-architecture"].explanation
    assert "contradict each other" in by_id["evaluation-claims"].explanation
    assert by_id["preprocess-mfcc-run"].points > 0 and by_id["samples-generation-runs"].points > 0  # its real work


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """``example(name)``: the example's zip, built as `make examples` builds it (what its code makes is cached in
    .cache/examples, so only a fresh clone runs it)."""
    spec = importlib.util.spec_from_file_location("examples_build", PROJECT_ROOT / "submissions" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    folder = tmp_path_factory.mktemp("examples")
    return lambda name: build.build(name, folder)


@pytest.mark.parametrize("name", sorted(HONEST_POINTS))
def test_every_example_keeps_its_points(setup, example, name):
    from grader.pipeline import grade_submission

    result = grade_submission(example(name), setup(f"out-{name}"))
    by_id = {item.id: item for item in result.items}
    points = {item: by_id[item].points for item in GAMED_ITEMS if item != "model-quality"}
    assert points == {item: HONEST_POINTS[name].get(item, 0) for item in points}, \
        {item: by_id[item].explanation for item in points if points[item] != HONEST_POINTS[name].get(item, 0)}
    if HONEST_POINTS[name].get("model-checkpoint"):
        assert by_id["model-checkpoint"].metrics["model_use"] == "used", by_id["model-checkpoint"].explanation
