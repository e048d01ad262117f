"""Training (loss goes down, determinism, checkpoints and resume) and the generate command's contract."""
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from reference import PROJECT_ROOT, SAMPLE_RATE
from reference.generate import DEFAULT_MAGNITUDE, DEFAULT_VAE, DEFAULT_WAVENET, main as generate_main
from reference.preprocess import LogMelParams, logmel
from reference.train import CheckpointError, TrainOptions, data_hash, load_checkpoint, train
from reference.vae import VAEConfig
from reference.vocoder import MagnitudeConfig, MagnitudeVocoder
from reference.wavenet import WaveNetConfig

TINY_WAVENET = WaveNetConfig(layer_size=3, stack_size=1, residual_channels=8, gate_channels=8, skip_channels=8,
                             condition_channels=8)
TINY_VAE = VAEConfig(channels=(4, 8, 8, 16), latent_channels=4)
TINY_MAGNITUDE = MagnitudeConfig(channels=16, head_channels=16, dilations=(1, 2), griffin_lim_iterations=4)
OPTIONS = {
    "wavenet": TrainOptions(steps=30, batch_size=4, segment=4, lr=1e-2, threads=1, validate_every=10,
                            checkpoint_every=10, progress=False),
    "vae": TrainOptions(steps=30, batch_size=4, segment=16, lr=3e-3, threads=1, validate_every=10,
                        checkpoint_every=10, progress=False),
    "magnitude": TrainOptions(steps=30, batch_size=4, segment=16, lr=3e-3, threads=1, validate_every=10,
                              checkpoint_every=10, progress=False),
}
CONFIGS = {"wavenet": TINY_WAVENET, "vae": TINY_VAE, "magnitude": TINY_MAGNITUDE}


def voiced_clip(rng: np.random.Generator, seconds: float = 1.5) -> np.ndarray:
    """Speech-like audio: a gliding harmonic tone with syllable-like bursts and a little noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = rng.uniform(100, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t), 0, None) ** 2
    wav = 0.3 * envelope * tone + 0.01 * rng.standard_normal(len(t))
    return (0.8 * wav / np.max(np.abs(wav))).astype(np.float32)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """A plain folder of eight short synthetic clips (the tenth-file rule leaves validation to the first four)."""
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    for i in range(8):
        sf.write(folder / f"clip{i}.wav", voiced_clip(rng), SAMPLE_RATE, subtype="PCM_16")
    return folder


def run(kind: str, data, out, log=lambda line: None, **changes):
    path = train(kind, data, out, replace(OPTIONS[kind], **changes), CONFIGS[kind], log=log)
    return load_checkpoint(path)


@pytest.fixture(scope="module")
def trained(audio_dir, tmp_path_factory):
    """Tiny checkpoints after 30 steps: {"wavenet": (model, checkpoint), "vae": ..., "magnitude": ...,
    "dir": folder}."""
    folder = tmp_path_factory.mktemp("checkpoints")
    return {kind: run(kind, audio_dir, folder) for kind in CONFIGS} | {"dir": folder}


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_thirty_steps_reduce_the_loss(trained, kind):
    history = trained[kind][1]["history"]
    assert history["step"] == list(range(1, 31))
    first, last = np.mean(history["loss"][:5]), np.mean(history["loss"][-5:])
    assert last < 0.95 * first, (first, last)
    assert history["val_step"] == [10, 20, 30] and history["val_loss"][-1] < history["val_loss"][0]
    if kind == "wavenet":
        assert last < np.log(256)  # better than a uniform guess over the 256 classes


def test_checkpoint_holds_what_a_reader_needs_and_loads_back(trained, audio_dir):
    model, checkpoint = trained["wavenet"]
    assert WaveNetConfig.from_dict(checkpoint["config"]) == TINY_WAVENET == model.config
    assert LogMelParams(**checkpoint["logmel_params"]) == LogMelParams()
    assert checkpoint["data"]["sha256"] == data_hash(audio_dir)
    assert checkpoint["training"]["step"] == 30 and checkpoint["training"]["seed"] == 0
    saved = checkpoint["model"]
    assert saved.keys() == model.state_dict().keys()
    assert all(torch.equal(saved[name], value) for name, value in model.state_dict().items())
    assert not list(trained["dir"].glob(".*.tmp"))  # atomic writes leave no temporary files


def test_a_broken_checkpoint_is_named_in_the_error(tmp_path):
    broken = tmp_path / "wavenet.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="wavenet.pt"):
        load_checkpoint(broken)


def test_same_seed_same_curve_and_resume_continues_it(audio_dir, tmp_path):
    straight = run("wavenet", audio_dir, tmp_path / "a", steps=8)[1]["history"]
    again = run("wavenet", audio_dir, tmp_path / "b", steps=8)[1]["history"]
    other_seed = run("wavenet", audio_dir, tmp_path / "c", steps=8, seed=1)[1]["history"]
    run("wavenet", audio_dir, tmp_path / "d", steps=4)
    lines = []
    resumed = run("wavenet", audio_dir, tmp_path / "d", steps=8, resume=True, log=lines.append)[1]
    assert again["loss"] == straight["loss"]
    assert other_seed["loss"] != straight["loss"]
    assert any("resuming" in line and "step 4" in line for line in lines)
    assert resumed["training"]["step"] == 8
    assert resumed["history"]["loss"] == straight["loss"]


def test_an_averaged_run_saves_the_average_and_resumes_it(audio_dir, tmp_path):
    """With --ema the checkpoint holds the moving average of the weights; a resumed run ends where a straight one does."""
    straight = run("magnitude", audio_dir, tmp_path / "a", steps=6, ema=0.9)
    run("magnitude", audio_dir, tmp_path / "b", steps=3, ema=0.9)
    resumed = run("magnitude", audio_dir, tmp_path / "b", steps=6, ema=0.9, resume=True)
    raw = run("magnitude", audio_dir, tmp_path / "c", steps=6)
    assert straight[1]["training"]["ema"] == 0.9 and resumed[1]["history"]["loss"] == straight[1]["history"]["loss"]
    assert all(torch.equal(value, resumed[1]["model"][name]) for name, value in straight[1]["model"].items())
    assert raw[1]["history"]["loss"] == straight[1]["history"]["loss"]  # averaging never changes the training itself
    assert not all(torch.equal(value, raw[1]["model"][name]) for name, value in straight[1]["model"].items())


def test_resume_refuses_other_data(audio_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for wav in sorted(audio_dir.glob("*.wav"))[:5]:
        (other / wav.name).write_bytes(wav.read_bytes())
    out = tmp_path / "out"
    run("wavenet", audio_dir, out, steps=2)
    with pytest.raises(CheckpointError, match="other data"):
        run("wavenet", other, out, steps=4, resume=True)


def contract_mel_dir(folder, audio_dir, lengths=(40, 57)) -> list[int]:
    """The grader's reconstruct input: <id>.npy float32 log-mels and params.json; returns their frame counts."""
    folder.mkdir()
    params = LogMelParams()
    (folder / "params.json").write_text(params.to_json())
    frames = []
    for i, (wav_path, length) in enumerate(zip(sorted(audio_dir.glob("*.wav")), lengths)):
        wav, _ = sf.read(wav_path, dtype="float32")
        mel = logmel(wav[: length * params.hop_length], params)
        np.save(folder / f"utt{i}.npy", mel)
        frames.append(mel.shape[1])
    return frames


def assert_valid_wav(path, samples):
    wav, sr = sf.read(path, dtype="float32")
    assert sr == SAMPLE_RATE and wav.ndim == 1 and len(wav) == samples
    assert np.all(np.isfinite(wav)) and np.max(np.abs(wav)) > 1e-3
    return wav


def test_the_magnitude_vocoder_starts_at_the_mel_pseudo_inverse_and_its_floor_is_silence_safe():
    """Untrained, the network's residual is zero: its magnitude is the mel's pseudo-inverse, which gives the mel back."""
    model = MagnitudeVocoder(TINY_MAGNITUDE).eval()
    rng = np.random.default_rng(0)
    mel = logmel(voiced_clip(rng), LogMelParams())
    magnitude = model.magnitude(mel)
    assert magnitude.shape == (513, mel.shape[1]) and np.all(np.isfinite(magnitude)) and magnitude.min() >= 0
    from reference.preprocess import mel_filterbank

    back = np.log(np.maximum(mel_filterbank() @ magnitude, 1e-5))
    loud = mel > -6  # where the mel is well above its floor, the pseudo-inverse reproduces it
    assert np.abs(back - mel)[loud].mean() < 0.2
    silent = np.full((80, 12), np.log(1e-5), np.float32)
    assert model.magnitude(silent).max() < 1e-3


@pytest.mark.parametrize("vocoder", ["magnitude", "wavenet", "griffin-lim"])
def test_reconstruct_writes_a_valid_wav_per_logmel(trained, audio_dir, tmp_path, vocoder):
    frames = contract_mel_dir(tmp_path / "mels", audio_dir)
    code = generate_main(["--mel-dir", str(tmp_path / "mels"), "--out-dir", str(tmp_path / "out"),
                          "--vocoder", vocoder, "--checkpoint-dir", str(trained["dir"])], prog="generate")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["utt0.wav", "utt1.wav"]
    for i, count in enumerate(frames):
        assert_valid_wav(tmp_path / "out" / f"utt{i}.wav", (count - 1) * 256)


def test_reconstruct_names_the_bad_input(trained, audio_dir, tmp_path, capsys):
    contract_mel_dir(tmp_path / "mels", audio_dir)
    np.save(tmp_path / "mels" / "bad.npy", np.zeros((64, 10), np.float32))
    code = generate_main(["--mel-dir", str(tmp_path / "mels"), "--out-dir", str(tmp_path / "out"),
                          "--checkpoint-dir", str(trained["dir"])], prog="generate")
    assert code == 1 and "bad.npy" in capsys.readouterr().err
    (tmp_path / "mels" / "bad.npy").unlink()
    (tmp_path / "mels" / "params.json").write_text(replace(LogMelParams(), hop_length=128).to_json())
    code = generate_main(["--mel-dir", str(tmp_path / "mels"), "--out-dir", str(tmp_path / "out"),
                          "--checkpoint-dir", str(trained["dir"])], prog="generate")
    assert code == 1 and "griffin-lim" in capsys.readouterr().err


def test_sample_writes_num_clips_the_same_for_a_seed(trained, tmp_path):
    checkpoints = ["--checkpoint-dir", str(trained["dir"])]
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert generate_main(["--num", "2", "--seed", seed, "--out-dir", str(tmp_path / name)] + checkpoints,
                             prog="generate") == 0
    frames = 1 + 3 * SAMPLE_RATE // 256  # three seconds of log-mel
    a = [assert_valid_wav(tmp_path / "a" / f"{k}.wav", (frames - 1) * 256) for k in range(2)]
    b = [sf.read(tmp_path / "b" / f"{k}.wav")[0] for k in range(2)]
    c = sf.read(tmp_path / "c" / "0.wav")[0]
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[0], c)


def test_the_committed_checkpoints_serve_the_command_line(audio_dir, tmp_path):
    sizes = {path: path.stat().st_size for path in (DEFAULT_MAGNITUDE, DEFAULT_WAVENET, DEFAULT_VAE)}
    assert sum(sizes.values()) < 10_000_000, f"meant to be committed; keep them small: {sizes}"
    (frames,) = contract_mel_dir(tmp_path / "mels", audio_dir, lengths=(20,))
    result = subprocess.run([sys.executable, "-m", "reference", "generate", "--mel-dir", str(tmp_path / "mels"),
                             "--out-dir", str(tmp_path / "out")], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert_valid_wav(tmp_path / "out" / "utt0.wav", (frames - 1) * 256)
