"""Notebooks as students write them on Colab, run unchanged in the real sandbox (real nbclient and ipykernel).

One Colab-saved notebook serving both modes is run once (a module fixture) and read by
several tests; the ``google.colab`` stand-in is also tested on the host, where its Drive
mountpoint can be pointed at a temporary folder.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from grader import sandbox
from grader.limits import RunLimits
from grader.notebook import INJECTED_TAG, merged_parameters, run_notebook
from grader.sandbox import SITE_FOLDER

LIMITS = RunLimits(cell_seconds=60, notebook_seconds=120, memory_bytes=3 * 2**30)
needs_sandbox = pytest.mark.skipif(sandbox.BWRAP is None, reason="bubblewrap (bwrap) is not installed")


def colab_cell(source: str, cell_id: str, outputs: list | None = None) -> dict:
    """A code cell as Colab saves it: an id, Colab's own metadata, an execution count and old outputs."""
    return {"cell_type": "code", "execution_count": 3, "id": cell_id,
            "metadata": {"colab": {"base_uri": "https://localhost:8080/"}, "id": cell_id, "outputId": "f00d"},
            "outputs": outputs or [], "source": source.splitlines(keepends=True)}


COLAB_CELLS = [
    {"cell_type": "markdown", "id": "intro", "metadata": {"id": "intro"}, "source": ["# VAE on log-mels (Colab)"]},
    colab_cell("from google.colab import drive, files, output\n"
               "output.enable_custom_widget_manager()\n"
               "drive.mount('/content/drive')", "mount"),
    colab_cell("try:\n"
               "    import google.colab\n"
               "    !pip install -q seaborn==0.13.2 librosa\n"
               "except ImportError:\n"
               "    pass\n"
               "%pip install soundfile\n"
               "!apt-get install -y ffmpeg > /dev/null", "installs"),
    colab_cell("import torch\n"
               "device = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
               "print(device, torch.ones(2, device=device).sum().item())", "device",
               [{"output_type": "display_data", "metadata": {},
                 "data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure size 640x480 with 1 Axes>"]}}]),
    colab_cell("import os\n"
               "import numpy as np\n"
               "import soundfile as sf\n"
               "os.makedirs(out_dir, exist_ok=True)\n"
               "for name in sorted(os.listdir(mel_dir)):\n"
               "    frames = np.load(os.path.join(mel_dir, name)).shape[1]\n"
               "    sf.write(os.path.join(out_dir, name.replace('.npy', '.wav')), np.zeros(256 * frames), 16000)\n"
               "rng = np.random.default_rng(seed)\n"
               "for k in range(num):\n"
               "    sf.write(os.path.join(out_dir, f'{k}.wav'), 0.1 * rng.standard_normal(16000), 16000)\n"
               "files.download(os.path.join(out_dir, '0.wav'))", "generate"),
    colab_cell("print(open('/content/notes.txt').read())\n"
               "print(sorted(os.listdir('/content/drive')))", "content"),
]
COLAB_NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 0, "cells": COLAB_CELLS,
    "metadata": {
        "colab": {"provenance": [], "gpuType": "T4", "name": "vae.ipynb"}, "accelerator": "GPU",
        "kernelspec": {"name": "conda-env-x", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"1a2b": {"model_name": "LayoutModel",
                                                                           "state": {}}}},
    },
}


@pytest.fixture(scope="module")
def colab_run(tmp_path_factory):
    """The Colab notebook, serving both reconstruct and sample, run once in the sandbox."""
    root = tmp_path_factory.mktemp("colab")
    mels = root / "mels"
    mels.mkdir()
    for name in ("clip_a", "clip_b"):
        np.save(mels / f"{name}.npy", np.zeros((80, 20), dtype=np.float32))
    for path in (mels, *mels.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    workdir = root / "work"
    workdir.mkdir()
    (workdir / "vae.ipynb").write_text(json.dumps(COLAB_NOTEBOOK))
    (workdir / "notes.txt").write_text("handed in with the notebook")
    out = "{workdir}/out"
    ran = run_notebook("vae.ipynb", workdir, merged_parameters({"reconstruct": {"mel_dir": "{mels}", "out_dir": out},
                                                                "sample": {"num": 2, "seed": 0, "out_dir": out}}),
                       inputs={"mels": mels}, limits=LIMITS)
    return workdir, ran


@needs_sandbox
def test_a_colab_notebook_runs_unchanged_once_for_both_modes(colab_run):
    workdir, ran = colab_run
    assert [(cell.number, cell.status) for cell in ran.cells[:4]] == [(2, "ok"), (3, "ok"), (4, "ok"), (5, "ok")], \
        (ran.error, ran.traceback)
    inside = sandbox.locations(workdir, {"mels": "."})
    assert ran.parameters == {"mel_dir": inside["mels"], "out_dir": f"{inside['workdir']}/out", "num": 2, "seed": 0}
    written = sorted(path.name for path in (workdir / "out").iterdir())
    assert written == ["0.wav", "1.wav", "clip_a.wav", "clip_b.wav"]  # both modes, one run, one folder
    assert ran.outputs[4] == "cpu 2.0\n"  # device='cuda' code that checks for CUDA runs on the CPU
    assert "files.download('" in ran.outputs[5] and "does nothing while grading" in ran.outputs[5]
    executed = json.loads((workdir / ran.executed).read_text())
    assert executed["metadata"]["kernelspec"]["name"] == "python3" and "colab" not in executed["metadata"]
    assert executed["cells"][0]["metadata"]["tags"] == [INJECTED_TAG]


@needs_sandbox
def test_package_installs_do_not_run_and_are_reported(colab_run):
    _, ran = colab_run
    assert [(line.cell, line.tool, line.packages) for line in ran.installs] == [
        (3, "pip", ["seaborn==0.13.2", "librosa"]), (3, "pip", ["soundfile"]), (3, "apt", ["ffmpeg"])]
    assert ran.installs[0].line == "pip install -q seaborn==0.13.2 librosa"
    assert "seaborn" not in ran.outputs.get(3, "")  # nothing ran: pip would have printed


@needs_sandbox
def test_content_is_the_work_folder_and_the_drive_is_mounted_there(colab_run):
    _, ran = colab_run
    assert ran.ok, (ran.error, ran.traceback)
    assert ran.outputs[2].strip() == "Mounted at /content/drive"
    assert ran.outputs[6] == "handed in with the notebook\n['MyDrive']\n"


# --------------------------------------------------------------------------- a Keras notebook, as in the course

KERAS_CELLS = [
    ("markdown", "# CNN VAE on log-mels (Keras)"),
    ("code", "import os\nimport numpy as np\nimport soundfile as sf\nimport tensorflow as tf\n"
             "from tensorflow import keras\nfrom tensorflow.keras import layers\n"
             "from google.colab import drive  # both in one notebook"),
    ("code", "mel_dir = 'mels'\nout_dir = 'out'\nnum = 2\nseed = 0"),
    ("code", "n_mels, frames, latent_dim = 80, 16, 4\n"
             "inputs = keras.Input(shape=(n_mels, frames, 1))\n"
             "x = layers.Conv2D(8, 3, strides=2, padding='same', activation='relu')(inputs)\n"
             "x = layers.Flatten()(x)\n"
             "encoder = keras.Model(inputs, [layers.Dense(latent_dim)(x), layers.Dense(latent_dim)(x)])\n"
             "latent = keras.Input(shape=(latent_dim,))\n"
             "y = layers.Reshape((n_mels // 2, frames // 2, 8))(layers.Dense(n_mels // 2 * frames // 2 * 8)(latent))\n"
             "y = layers.Conv2DTranspose(1, 3, strides=2, padding='same')(y)\n"
             "decoder = keras.Model(latent, y)\n\n"
             "class VAE(keras.Model):\n"
             "    def __init__(self, encoder, decoder):\n"
             "        super().__init__()\n"
             "        self.encoder, self.decoder = encoder, decoder\n\n"
             "    def call(self, x):\n"
             "        mean, log_var = self.encoder(x)\n"
             "        self.add_loss(-0.5 * tf.reduce_mean(1 + log_var - tf.square(mean) - tf.exp(log_var)))\n"
             "        return self.decoder(mean + tf.exp(0.5 * log_var) * tf.random.normal(tf.shape(mean)))\n\n"
             "vae = VAE(encoder, decoder)\n"
             "vae.compile(optimizer=keras.optimizers.Adam(1e-3), loss='mse')"),
    ("code", "weights = 'checkpoints/vae.weights.h5'\n"
             "vae(np.zeros((1, n_mels, frames, 1), dtype='float32'))\n"
             "if os.path.exists(weights):\n"
             "    vae.load_weights(weights)\n"
             "    print('loaded', weights)\n"
             "else:\n"
             "    data = np.random.default_rng(0).normal(size=(8, n_mels, frames, 1)).astype('float32')\n"
             "    vae.fit(data, data, epochs=2, batch_size=4, verbose=2)\n"
             "    os.makedirs('checkpoints', exist_ok=True)\n"
             "    vae.save_weights(weights)"),
    ("code", "os.makedirs(out_dir, exist_ok=True)\n"
             "for name in sorted(os.listdir(mel_dir)) if mel_dir else []:\n"
             "    mel = np.load(os.path.join(mel_dir, name))[:, :frames, None]\n"
             "    out = vae.predict(mel[None], verbose=0)[0, :, :, 0]\n"
             "    sf.write(os.path.join(out_dir, name.replace('.npy', '.wav')), np.resize(out, 256 * frames), 16000)\n"
             "tf.random.set_seed(seed)\n"
             "for k in range(num or 0):\n"
             "    out = decoder.predict(tf.random.normal((1, latent_dim)), verbose=0)[0, :, :, 0]\n"
             "    sf.write(os.path.join(out_dir, f'{k}.wav'), np.resize(out, 256 * frames), 16000)"),
]


@pytest.fixture(scope="module")
def tensorflow_in_sandbox(tmp_path_factory):
    """Skips the test where TensorFlow cannot be imported inside the sandbox (the grader's own venv has none)."""
    if sandbox.BWRAP is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    probe = sandbox.run(["python", "-c", "import tensorflow"], tmp_path_factory.mktemp("tf-probe"),
                        limits=RunLimits(wall_seconds=120))
    if not probe.ok:
        pytest.skip(f"TensorFlow cannot be imported in the sandbox ({probe.message})")


def test_a_keras_vae_notebook_trains_once_for_both_modes_and_uses_weights_handed_in(tensorflow_in_sandbox, tmp_path):
    """The course's kind of notebook (the seed's Keras CNN VAE, smaller): it trains when no weights are handed in,
    and loads them when they are; each time one run writes both modes' clips."""
    import nbformat

    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "clip.npy", np.zeros((80, 20), dtype=np.float32))
    cells = [nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(
        text, metadata={"tags": ["parameters"]} if text.startswith("mel_dir") else {}) for kind, text in KERAS_CELLS]
    roles = {"reconstruct": {"mel_dir": "{mels}", "out_dir": "{workdir}/out"},
             "sample": {"num": 2, "seed": 0, "out_dir": "{workdir}/out"}}
    runs = []
    for name in ("trains", "loads"):
        workdir = tmp_path / name
        workdir.mkdir()
        nbformat.write(nbformat.v4.new_notebook(cells=cells), workdir / "vae.ipynb")
        if runs:  # the weights the first run saved, handed in
            (workdir / "checkpoints").mkdir()
            (tmp_path / "trains" / "checkpoints" / "vae.weights.h5").rename(workdir / "checkpoints" / "vae.weights.h5")
        runs.append(run_notebook("vae.ipynb", workdir, merged_parameters(roles), inputs={"mels": mels}, limits=LIMITS))
        assert runs[-1].ok, (runs[-1].error, runs[-1].traceback)
        assert sorted(path.name for path in (workdir / "out").iterdir()) == ["0.wav", "1.wav", "clip.wav"]
    trained, loaded = runs
    assert "Epoch 2/2" in trained.outputs[5] and "Epoch" not in loaded.outputs[5]
    assert loaded.outputs[5].startswith("loaded checkpoints/vae.weights.h5")


# --------------------------------------------------------------------------- the stand-in, on the host

@pytest.fixture
def colab(monkeypatch, tmp_path):
    """``google.colab`` imported from grader/sandbox_site, its Drive mountpoint in ``tmp_path``."""
    monkeypatch.syspath_prepend(str(SITE_FOLDER))
    for name in [name for name in sys.modules if name.startswith("google.colab")]:
        monkeypatch.delitem(sys.modules, name)
    colab = importlib.import_module("google.colab")
    monkeypatch.setattr(colab.drive, "MOUNTPOINT", str(tmp_path / "content" / "drive"))
    return colab


def test_google_colab_merges_with_the_google_namespace_and_mounts_the_drive(colab, tmp_path, capsys):
    import google.protobuf

    assert google.protobuf and Path(colab.__file__).is_relative_to(SITE_FOLDER)
    course = tmp_path / "content" / "drive" / "MyDrive" / "course"  # where the sandbox mounts the instructor's
    course.mkdir(parents=True)
    (course / "clip.wav").write_bytes(b"RIFF")
    colab.drive.mount(str(tmp_path / "content" / "drive"))
    colab.drive.mount(str(tmp_path / "gdrive"), force_remount=True)  # another path: linked to the Drive
    (tmp_path / "mine").mkdir()
    colab.drive.mount(str(tmp_path / "mine"))  # an existing folder: its MyDrive is linked
    assert (tmp_path / "gdrive" / "MyDrive" / "course" / "clip.wav").read_bytes() == b"RIFF"
    assert (tmp_path / "mine" / "MyDrive" / "course" / "clip.wav").read_bytes() == b"RIFF"
    colab.drive.mount(str(tmp_path / "gdrive"))  # mounted before: nothing to do
    assert capsys.readouterr().out.count("Mounted at") == 4


def test_where_the_drive_cannot_be_linked_a_note_says_where_it_is(colab, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    colab.drive.mount(str(locked / "nested" / "drive"))  # its parent folder does not exist
    err = capsys.readouterr().err
    assert "cannot link" in err and "MyDrive" in err and "mount it at" in err
    assert colab.files.upload() == {} and "hand the files in" in capsys.readouterr().err
    colab.auth.authenticate_user()
    colab.output.clear()
    assert "no network" in capsys.readouterr().err
