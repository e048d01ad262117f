"""The student environment: a real virtual environment built from pinned requirements, real TensorFlow and
Keras in the real sandbox, and never the grader's own .venv."""
from __future__ import annotations

import platform
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from grader import environment, sandbox
from grader.cache import cache_key
from grader.environment import (BuildReport, StudentEnvironment, StudentEnvironmentError, bundled, for_rubric,
                                without_chatter)
from grader.limits import RunLimits
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from grader.sandbox import Verdict

COURSE = bundled()
needs_course = pytest.mark.skipif(not COURSE.ready, reason="the course environment is not built (make setup)")
needs_sandbox = pytest.mark.skipif(sandbox.BWRAP is None, reason="bubblewrap (bwrap) is not installed")
SMALL = RunLimits(wall_seconds=30, memory_bytes=1024 * 2**20)


def python(code: str) -> list[str]:
    return ["python", "-c", textwrap.dedent(code)]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def build_or_skip(env: StudentEnvironment, **kwargs):
    """``env.build()``; the test is skipped when the build failed because the package index cannot be reached."""
    try:
        return env.build(**kwargs)
    except StudentEnvironmentError as error:
        unreachable = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q",
                                      "-d", str(env.prefix.parent / "probe"), "tomli_w==1.2.0"], capture_output=True)
        if unreachable.returncode != 0:
            pytest.skip(f"the package index cannot be reached: {unreachable.stderr.decode()[-300:]}")
        raise error


# --------------------------------------------------------------------------- building

def test_an_environment_is_built_once_readable_by_all_and_a_second_build_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.setattr(environment, "ENVIRONMENTS_FOLDER", tmp_path / "environments")
    requirements = tmp_path / "tiny.txt"
    requirements.write_text("# one small package, pinned\n# unavailable: torchaudio: no build for this torch\n"
                            "tomli_w==1.2.0\n")
    env = StudentEnvironment.of(requirements)
    assert env.prefix == tmp_path / "environments" / env.digest[:16] and not env.ready
    assert not env.has_module("tomli_w") and env.describe().endswith("(not built)")

    first = build_or_skip(env)
    assert first.built and env.ready and first.size_bytes > 10_000
    done = subprocess.run([env.python, "-c", "import sys, tomli_w; print(sys.prefix, tomli_w.dumps({'a': 1}))"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(env.prefix), "a", "=", "1"]
    assert env.versions()["tomli_w"] == "1.2.0" and env.has_module("tomli_w") and env.has_module("json")
    assert env.unavailable == {"torchaudio": "no build for this torch"}
    for path in [env.prefix, *env.prefix.rglob("*")]:  # student code runs as another user
        if not path.is_symlink():
            assert path.stat().st_mode & stat.S_IROTH, path

    started = time.monotonic()
    second = env.build()
    assert second == BuildReport(False, first.seconds, first.size_bytes)
    assert time.monotonic() - started < 1

    (env.prefix / environment.READY_MARK).unlink()  # a build that was stopped before its end is built again
    assert not env.ready and env.build().built and env.ready


def test_a_build_that_cannot_install_says_what_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(environment, "ENVIRONMENTS_FOLDER", tmp_path / "environments")
    requirements = tmp_path / "wrong.txt"
    requirements.write_text("tomli_w==0.0.0.999\n")
    env = StudentEnvironment.of(requirements)
    with pytest.raises(StudentEnvironmentError, match=r"pip install --no-deps -r .*wrong.txt exited with"):
        env.build()
    assert not env.ready


@needs_course
def test_the_bundled_environment_is_built_and_a_second_build_is_a_no_op():
    started = time.monotonic()
    report = COURSE.build()
    assert not report.built and time.monotonic() - started < 1
    assert report.size_bytes > 1e9
    versions = COURSE.versions()
    assert versions["torch"] == "2.13.0+cpu" and versions["tensorflow_cpu"] == "2.21.0"
    assert versions["tf_keras"] == "2.21.0" and versions["librosa"] == "0.11.0"
    assert not any(name.startswith("nvidia") for name in versions)  # the CPU builds: no CUDA package
    for module in ("numpy", "scipy", "pandas", "matplotlib", "seaborn", "sklearn", "tqdm", "librosa", "soundfile",
                   "pesq", "pystoi", "IPython", "ipykernel", "torch", "tensorflow", "tf_keras", "keras", "h5py",
                   "nbclient", "nbformat", "jupyter_client"):
        assert COURSE.has_module(module), module
    assert COURSE.describe() == f"course {COURSE.digest[:12]}: torch 2.13.0+cpu, tensorflow 2.21.0, librosa 0.11.0"


def test_torchaudio_is_named_as_unavailable():
    assert not COURSE.has_module("torchaudio")
    assert "torch 2.13.0" in COURSE.unavailable["torchaudio"]


def test_the_digest_follows_the_requirements_and_python_and_keys_every_result(tmp_path, monkeypatch):
    first, same, other = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    first.write_text("numpy==2.4.6\n")
    same.write_text("numpy==2.4.6\n")
    other.write_text("numpy==2.4.5\n")
    digests = [StudentEnvironment.of(path).digest for path in (first, same, other)]
    assert digests[0] == digests[1] != digests[2]
    monkeypatch.setattr(platform, "python_version", lambda: "3.12.0")
    assert StudentEnvironment.of(first).digest != digests[0]

    def key(digest: str) -> str:
        return cache_key("content", "{}", "heldout", environment_digest=digest, student_mode=False,
                         allow_unsandboxed=False)
    assert key(digests[0]) != key(digests[2])


def test_the_rubric_names_the_environment_and_its_keras(tmp_path):
    rubric = load_rubric(DEFAULT_RUBRIC)
    env = for_rubric(rubric)
    assert env.requirements == environment.BUNDLED_REQUIREMENTS and env.legacy_keras
    assert env.variables(cpu_threads=3) == {"TF_NUM_INTRAOP_THREADS": "3", "TF_NUM_INTEROP_THREADS": "3",
                                            "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    assert "TF_USE_LEGACY_KERAS" not in bundled().variables(cpu_threads=1)
    beside = tmp_path / "mine.txt"  # a path relative to the rubric's own folder
    beside.write_text("numpy==2.4.6\n")
    text = DEFAULT_RUBRIC.read_text().replace('requirements = "environments/course.txt"', 'requirements = "mine.txt"')
    (tmp_path / "rubric.toml").write_text(text)
    assert for_rubric(load_rubric(tmp_path / "rubric.toml")).requirements == beside


def test_tensorflows_start_up_notices_are_left_out_of_what_the_report_shows():
    notices = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795972247.466549   13594 port.cc:153] oneDNN custom operations are on. You may see slightly "
        "different numerical results. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n"
        "I0000 00:00:1795972247.504159   13594 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
        "available CPU instructions in performance-critical operations.\n"
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
        "appropriate compiler flags.\n"
        "2024-05-01 10:00:00.000001: I external/local_tsl/tsl/cuda/cudart_stub.cc:32] Could not find cuda drivers "
        "on your machine, GPU will not be used.\n"
        "2024-05-01 10:00:00.000002: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning: Could "
        "not find TensorRT\n")
    students = "epoch 1: oneDNN custom operations are on, says my log\nTraceback (most recent call last):\n"
    assert without_chatter(notices + students) == students


# --------------------------------------------------------------------------- in the sandbox

@needs_course
@needs_sandbox
def test_a_run_without_a_built_environment_is_refused_with_what_to_run(tmp_path, workdir):
    requirements = tmp_path / "other.txt"
    requirements.write_text("numpy==2.4.6\n")
    result = sandbox.run(["true"], workdir, limits=SMALL, environment=StudentEnvironment.of(requirements))
    assert result.verdict is Verdict.SANDBOX_UNAVAILABLE
    assert "make setup" in result.message and "grade env build" in result.message and "other" in result.message
    assert sandbox.isolation_problem(StudentEnvironment.of(requirements)) == result.message
    assert sandbox.isolation_problem() is None


@needs_course
@needs_sandbox
def test_student_code_never_sees_the_graders_venv(workdir):
    result = sandbox.run(python(f"""
        import os, sys
        print(sys.prefix, os.environ["PATH"].split(":")[0])
        print(os.path.exists({sys.prefix!r}), os.path.exists({str(Path(sys.prefix) / 'bin' / 'python')!r}))
        try:
            import grader
            print("grader importable")
        except ImportError:
            print("no grader")
    """), workdir, limits=SMALL)
    assert result.ok, result.stderr
    assert result.stdout.splitlines() == [f"{COURSE.prefix} {COURSE.prefix}/bin", "False False", "no grader"]
    assert result.environment == COURSE.describe()


@needs_course
def test_unsandboxed_runs_use_the_environment_too(monkeypatch, tmp_path, workdir):
    monkeypatch.setattr(sandbox, "BWRAP", None)
    data = tmp_path / "fsdd"
    data.mkdir()
    (data / "clip.wav").write_text("clip")
    result = sandbox.run(python("import sys, os; print(sys.prefix, os.environ['TF_NUM_INTRAOP_THREADS'], "
                                "open('Data/fsdd/clip.wav').read())"), workdir,
                         limits=SMALL, allow_unsandboxed=True, mounts={"Data/fsdd": data})
    assert result.ok and result.stdout.split() == [str(COURSE.prefix), "1", "clip"]
    refused = sandbox.run(["true"], workdir, limits=SMALL, allow_unsandboxed=True, mounts={"/datasets/fsdd": data})
    assert refused.verdict is Verdict.SANDBOX_UNAVAILABLE and "bubblewrap" in refused.message


# The seed notebook's CNN VAE (Keras 2 API: K.random_normal, a Lambda loss, add_loss on a symbolic tensor), 6.8 M
# parameters, one step at batch 32 on 128x216 mels.
SEED_VAE = """
import os
import numpy as np
import tensorflow as tf
from tensorflow.keras import backend as K
from tensorflow.keras.layers import Conv2D, Conv2DTranspose, Dense, Flatten, Input, Lambda, Reshape
from tensorflow.keras.models import Model
n_mels, time_frames, latent_dim, batch_size = 128, 216, 16, 32

def sampling(args):
    z_mean, z_log_var = args
    epsilon = K.random_normal(shape=(K.shape(z_mean)[0], latent_dim), mean=0., stddev=1.)
    return z_mean + K.exp(0.5 * z_log_var) * epsilon

inputs = Input(shape=(n_mels, time_frames, 1))
x = Conv2D(32, 3, padding='same', activation='relu')(inputs)
for filters in (64, 128, 256):
    x = Conv2D(filters, 3, padding='same', activation='relu', strides=(2, 2))(x)
shape = K.int_shape(x)[1:]
x = Flatten()(x)
z_mean, z_log_var = Dense(latent_dim)(x), Dense(latent_dim)(x)
z = Lambda(sampling, output_shape=(latent_dim,))([z_mean, z_log_var])
encoder = Model(inputs, [z_mean, z_log_var, z], name='encoder')
latent = Input(shape=(latent_dim,))
y = Reshape(shape)(Dense(np.prod(shape))(latent))
for filters in (256, 128, 64):
    y = Conv2DTranspose(filters, 3, padding='same', activation='relu', strides=(2, 2))(y)
y = Conv2DTranspose(32, 3, padding='same', activation='relu')(y)
decoder = Model(latent, Conv2DTranspose(1, 3, padding='same', activation='sigmoid')(y), name='decoder')

def vae_loss_function(args):
    y_true, y_pred, z_mean, z_log_var = args
    kl_loss = -0.5 * K.mean(1 + z_log_var - K.square(z_mean) - K.exp(z_log_var))
    return K.mean(K.square(y_true - y_pred)) + kl_loss

images, target = Input(shape=(n_mels, time_frames, 1)), Input(shape=(n_mels, time_frames, 1))
z_mean, z_log_var, z = encoder(images)
decoded = decoder(z)
loss = Lambda(vae_loss_function, output_shape=(1,), name='loss')([target, decoded, z_mean, z_log_var])
vae = Model(inputs=[images, target], outputs=[decoded, loss], name='vae')
vae.add_loss(loss)
vae.compile(optimizer='adam')
data = np.random.default_rng(0).random((batch_size, n_mels, time_frames, 1), dtype=np.float32)
history = vae.fit([data, data], epochs=1, batch_size=batch_size, verbose=0)
print(vae.count_params(), np.isfinite(history.history['loss'][0]), type(vae).__module__.split(".")[0],
      callable(tf.keras.backend.random_normal), len(os.listdir('/proc/self/task')))
"""


@needs_course
@needs_sandbox
@pytest.mark.slow
def test_tensorflow_and_keras_train_in_the_sandbox_keras_2_code_included(workdir):
    """Keras 3 by default; with legacy_keras, the seed's Keras 2 VAE trains under the default memory limit, on
    TensorFlow pools of cpu_threads threads, with none of TensorFlow's start-up notices in stderr."""
    keras3 = sandbox.run(python("""
        import numpy as np
        import tensorflow as tf
        from tensorflow import keras
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("adam", "mse")
        model.fit(np.zeros((8, 4)), np.zeros((8, 1)), epochs=1, verbose=0)
        print(keras.__version__.split(".")[0], type(model).__module__.split(".")[0])
    """), workdir, limits=RunLimits(wall_seconds=60))
    assert keras3.ok, keras3.stderr
    assert keras3.stdout.split() == ["3", "keras"]

    limits = RunLimits(wall_seconds=120)  # the default memory limit
    keras2 = sandbox.run(python(SEED_VAE), workdir, limits=limits, environment=bundled(legacy_keras=True))
    assert keras2.ok, keras2.stderr
    parameters, finite, keras, random_normal, threads = keras2.stdout.split()
    assert (parameters, finite, keras, random_normal) == ("6784545", "True", "tf_keras", "True")
    assert int(threads) <= 6  # with cpu_threads 1: 6 here; with TensorFlow's own pool sizes 8 on 2 cores, more on more
    assert "oneDNN" not in keras2.stderr and "absl" not in keras2.stderr
    if keras2.peak_memory_bytes is not None:
        assert keras2.peak_memory_bytes < limits.memory_bytes
