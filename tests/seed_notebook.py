"""The course's own example of student work (shared/seeds/003_*.txt: a Keras CNN VAE on mel spectrograms)
as a notebook: its code cells verbatim, plus the cells a student adds to meet the submission contract.

The seed is a printed notebook: each code cell is a fenced block that starts ``In [N]:``, with
continuation lines indented under that prompt. It leaves out the cells of the student's first
pipeline that define its data (``audio_data``, ``n_mels``, ``time_frames``, ``latent_dim``,
``batch_size``) and the Keras names it uses (``Input``, ``Dense``, ``K``...): :data:`DATA_CELL`
stands in for them, reading the course data mounted at ``Data/Piano`` and ``Data/Human``.
:data:`CONTRACT_CELL` saves the weights and writes what the grader asks for.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

_PROMPT = re.compile(r"^In \[\d+\]: ?", re.MULTILINE)
_FENCE = re.compile(r"```\n(.*?)```", re.DOTALL)

MODEL_CELL = 7
"""The seed's first cell of the model (``sampling``, ``encoder``, ``decoder``): the data cell goes before it."""
PARAMETERS_CELL = "mel_dir = None\nout_dir = 'outputs'\nnum = 2\nseed = 0\n"
DATA_CELL = '''
# The first pipeline's data, for the cells below (the seed's excerpt leaves it out)
import glob
import tensorflow.keras.backend as K
from tensorflow.keras.layers import Input, Dense, Lambda, Flatten, Reshape
from tensorflow.keras.models import Model
n_mels, time_frames, latent_dim, batch_size = 128, 216, 16, 32
def mel_of(path):
    y, sr = librosa.load(path)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=n_mels, fmax=8000, hop_length=512, n_fft=2048,
                                         fmin=30, power=1.0)
    mel = librosa.power_to_db(mel, ref=np.max)[:, :time_frames]
    mel = np.pad(mel, ((0, 0), (0, time_frames - mel.shape[1])), constant_values=-80.0)
    return (mel + 80.0) / 80.0
audio_data = np.stack([mel_of(p) for p in sorted(glob.glob('Data/Piano/*.wav') + glob.glob('Data/Human/*.wav'))])
'''
CONTRACT_CELL = '''
# The submission contract: save the weights, then write what the grader asks for
import json, pathlib
import soundfile as sf
pathlib.Path('checkpoints').mkdir(exist_ok=True)
cnn_vae.save_weights('checkpoints/cnn_vae.weights.h5')
out = pathlib.Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
if mel_dir is not None:  # a vocoder for the grader's log-mels: Griffin-Lim
    params = json.loads((pathlib.Path(mel_dir) / 'params.json').read_text())
    for path in sorted(pathlib.Path(mel_dir).glob('*.npy')):
        wav = librosa.feature.inverse.mel_to_audio(np.exp(np.load(path)), sr=params['sr'], n_fft=params['n_fft'],
                                                   hop_length=params['hop_length'], power=1.0, fmax=params['fmax'],
                                                   n_iter=16)
        sf.write(out / (path.stem + '.wav'), wav, params['sr'])
if num is not None:  # samples from the decoder
    rng = np.random.default_rng(seed)
    mels = dec_model.predict(rng.standard_normal((num, latent_dim)), verbose=0)[..., 0] * 80.0 - 80.0
    for k, mel in enumerate(mels):
        wav = librosa.feature.inverse.mel_to_audio(librosa.db_to_power(mel) ** 0.5, sr=22050, n_fft=2048,
                                                   hop_length=512, fmin=30, fmax=8000, power=1.0, n_iter=16)
        sf.write(out / f'{k}.wav', wav, 22050)
'''


def seed_code_cells(text: str) -> list[str]:
    """The code cells of a printed notebook, in order, without their ``In [N]:`` prompts.

    Outputs printed in a block of their own are left out. Where the printout fused a cell's
    printed output (or a stray character) to its code, the cell is its longest run of first
    lines that Python compiles: the code as the student ran it.
    """
    cells = []
    for block in _FENCE.findall(text):
        stripped = block.lstrip("\n")
        prompt = _PROMPT.match(stripped)
        if prompt is None:
            continue  # an output, not a cell
        indent = " " * len(prompt.group(0))
        lines = stripped[prompt.end():].splitlines()
        lines = [lines[0], *(line[len(indent):] if line.startswith(indent) else line for line in lines[1:])]
        for cut in range(len(lines), 0, -1):
            code = "\n".join(lines[:cut]).strip() + "\n"
            try:
                compile(code, "<cell>", "exec")
            except SyntaxError:
                continue
            cells.append(code)
            break
    return cells


def seed_notebook(seed: Path, target: Path) -> Path:
    """Write the seed's code cells verbatim, with the parameters, data and contract cells, as ``target``."""
    cells = seed_code_cells(seed.read_text())
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell("# Audio Data Augmentation & Generation with VAEs"),
                      nbformat.v4.new_code_cell(PARAMETERS_CELL, metadata={"tags": ["parameters"]}),
                      *(nbformat.v4.new_code_cell(cell) for cell in cells[:MODEL_CELL]),
                      nbformat.v4.new_code_cell(DATA_CELL.strip()),
                      *(nbformat.v4.new_code_cell(cell) for cell in cells[MODEL_CELL:]),
                      nbformat.v4.new_code_cell(CONTRACT_CELL.strip())]
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return target
