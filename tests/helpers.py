"""Helpers shared by test modules: the small data set's spec, a complete student-style submission, rubrics cut
down to a few items, and a few builders. Test modules import from here (or from the other helper modules:
gaming, hostile_corpus, result_fixtures, seed_notebook), never from one another. The fixtures built once per
session (the small data set, its held-out set and baseline) are in conftest.py."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from reference.data import EmbeddedSpec

if TYPE_CHECKING:  # imported where used: a subprocess that needs only deep_tree stays light
    from grader.heldout import HeldoutSet
    from grader.results import SubmissionResult
    from grader.rubric import Rubric

SMALL = EmbeddedSpec(voices={"train": 1, "test": 1, "heldout": 1}, utterances_per_voice={"train": 2, "test": 2, "heldout": 1},
                     melodies={"train": 1, "test": 1, "heldout": 1})
"""The small embedded data set most grading tests use (built once per session with seed 5: conftest.small_data)."""

BUNDLED_KINDS = {"static", "mfcc", "files", "reconstruct", "samples", "generation", "sample", "claims", "checkpoint"}
"""The check kinds the bundled rubric names."""

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

PREPROCESS = '''
import librosa
import numpy as np

def extract_mfcc(path):
    signal, sr = librosa.load(path, sr=16000)
    return librosa.feature.mfcc(y=signal, sr=sr, n_mfcc=20)

def augment(y, sr):
    y = librosa.effects.pitch_shift(y, sr=sr, n_steps=2)
    return y + 0.005 * np.random.randn(len(y))
'''
MODEL = '''
import torch
from torch import nn

class ResidualBlock(nn.Module):
    def __init__(self, channels, dilation):
        super().__init__()
        self.conv = nn.Conv1d(channels, 2 * channels, 2, dilation=dilation)
    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

def train(model, batches):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
'''
GENERATE = '''
import argparse, pathlib
import numpy as np, librosa, soundfile as sf
NOISE = {noise}
parser = argparse.ArgumentParser()
parser.add_argument("--mel-dir"); parser.add_argument("--out-dir")
parser.add_argument("--num", type=int); parser.add_argument("--seed", type=int)
args = parser.parse_args()
out = pathlib.Path(args.out_dir)
rng = np.random.default_rng(args.seed or 0)
if args.mel_dir:
    mix = np.load(pathlib.Path(__file__).parent / "checkpoints" / "vocoder.npz")["mel_mix"]  # the trained weights
    for path in sorted(pathlib.Path(args.mel_dir).glob("*.npy")):
        stft = librosa.feature.inverse.mel_to_stft(mix @ np.exp(np.load(path)), sr=16000, n_fft=1024, power=1.0,
                                                   fmax=8000)
        wav = librosa.griffinlim(stft, n_iter=16, hop_length=256, random_state=0)
        sf.write(out / (path.stem + ".wav"), wav + NOISE * rng.standard_normal(len(wav)), 16000)
else:
    for k in range(args.num):
        t = np.arange(48000) / 16000
        sf.write(out / f"{{k}}.wav", 0.3 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) * rng.uniform(0.2, 1, 48000), 16000)
'''
EVALUATE = '''
from pesq import pesq
import numpy as np

def snr_db(ref, deg):
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - deg) ** 2))

def evaluate(ref, deg):
    return pesq(16000, ref, deg, "wb"), snr_db(ref, deg)
'''
ANSWERS = '[quiz]\nq1 = "MFCC"\nq2 = "b"\nq3 = "Increases data diversity"\nq4 = "Bitmap"\nq5 = "c"\n' \
          'q6 = "WaveNet"\nq7 = "Signal-to-Noise Ratio"\n'


def write_submission(folder, noise=0.0, drop=()):
    """A complete submission in ``folder``; ``drop`` names parts to leave out."""
    files = {"preprocess.py": PREPROCESS, "model.py": MODEL, "generate.py": GENERATE.format(noise=noise),
             "evaluate.py": EVALUATE, "answers.toml": ANSWERS,
             "report.md": "Our vocoder reaches PESQ 2.2 and SNR -3 dB on the test clips.\n"}
    if "augmentation" in drop:
        files["preprocess.py"] = PREPROCESS.split("def augment")[0]
    for name in ("answers.toml", "model.py"):
        if name in drop:
            del files[name]
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "checkpoints").mkdir()
    np.savez(folder / "checkpoints" / "vocoder.npz", mel_mix=np.eye(80, dtype=np.float32))  # 25.6 kB of weights
    (folder / "samples").mkdir()
    rng = np.random.default_rng(len(str(folder)))
    for k in range(3):
        t = np.arange(32000) / 16000
        sf.write(folder / "samples" / f"{k}.wav", 0.3 * np.sin(2 * np.pi * rng.uniform(150, 600) * t), 16000)
    return folder


def zip_folder(folder, target):
    """``folder`` zipped into ``target`` under a top folder ``hw/``, as a student's zip often is."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"hw/{path.relative_to(folder)}")
    return target


def items(result):
    """A result's items by id."""
    return {item.id: item for item in result.items}


def rubric_of(*item_ids: str) -> Rubric:
    """The bundled rubric with only ``item_ids`` (and no quiz): points add up to what those items give."""
    from grader.rubric import DEFAULT_RUBRIC, Rubric, load_rubric

    rubric = load_rubric(DEFAULT_RUBRIC)
    items = [item for item in rubric.items if item.id in item_ids]
    info = rubric.rubric.model_copy(update={"total_points": sum(item.points for item in items)})
    return Rubric.model_validate({**rubric.model_dump(), "rubric": info.model_dump(), "quiz": None,
                                  "items": [item.model_dump() for item in items]})


def grade(source: Path, heldout: HeldoutSet, out: Path, *item_ids: str) -> SubmissionResult:
    """``source`` graded on ``heldout`` into ``out`` with the bundled rubric cut down to ``item_ids``, which must
    not need the reference baseline."""
    from grader.pipeline import GradingSetup, grade_submission

    def no_baseline():
        raise AssertionError("these items never need the reference baseline")

    setup = GradingSetup(rubric=rubric_of(*item_ids), heldout=heldout, load_baseline=no_baseline, out_dir=out)
    return grade_submission(source, setup)


def sine(path: Path, frequency: float, seconds: float = 1.0) -> None:
    """A 16 kHz tone of ``frequency`` Hz at ``path`` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * frequency * t), 16000)


def deep_tree(root: Path, depth: int, files_every: int = 500) -> int:
    """Folders ``d`` ``depth`` deep under ``root`` (past PATH_MAX: made through descriptors); returns files made."""
    made = 0
    folder = os.open(root, os.O_RDONLY)
    for level in range(depth):
        os.mkdir("d", dir_fd=folder)
        inner = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
        if level % files_every == 0:
            os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=folder))
            made += 1
    os.close(folder)
    return made
