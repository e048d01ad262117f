"""Reference preprocessing: loading of every format, MFCC as the assignment, log-mel, augmentation."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from reference import PROJECT_ROOT, SAMPLE_RATE
from reference import preprocess as pp


def sine(freq: float, sr: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wav: np.ndarray, sr: int) -> float:
    """The strongest frequency in Hz, refined by parabolic interpolation of the log spectrum."""
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav)), n=8 * len(wav)))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (8 * len(wav))


@pytest.mark.fsdd
def test_mfcc_equals_librosa_on_real_clips(fsdd_dir):
    import librosa

    for name in ["0_george_0.wav", "7_jackson_3.wav", "3_nicolas_12.wav", "9_theo_40.wav"]:
        signal, sr = librosa.load(fsdd_dir / name, sr=16000)
        expected = librosa.feature.mfcc(y=signal, sr=sr, n_mfcc=20)
        ours = pp.mfcc_from_file(fsdd_dir / name)
        assert ours.shape == expected.shape == (20, 1 + len(signal) // 512)
        np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("semitones", [-4, 3, 7])
def test_pitch_shift_moves_the_fundamental(semitones):
    wav = sine(220.0, SAMPLE_RATE, seconds=2.0)
    shifted = pp.pitch_shift(wav, SAMPLE_RATE, semitones)
    assert len(shifted) == len(wav)
    middle = slice(SAMPLE_RATE // 2, 3 * SAMPLE_RATE // 2)  # away from the edges' transients
    ratio = peak_frequency(shifted[middle], SAMPLE_RATE) / peak_frequency(wav[middle], SAMPLE_RATE)
    assert ratio == pytest.approx(2 ** (semitones / 12), rel=0.01)


@pytest.mark.fsdd
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0, 35.0])
def test_noise_at_a_target_snr_measures_that_snr(fsdd_dir, snr_db):
    clean = pp.load_audio(fsdd_dir / "4_theo_7.wav")
    noisy = pp.add_noise(clean, snr_db, rng=1)
    measured = 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum((noisy - clean).astype(np.float64) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.1)


def test_time_shift_stretch_and_gain():
    wav = sine(440.0, SAMPLE_RATE)
    delayed = pp.time_shift(wav, 100)
    assert np.all(delayed[:100] == 0) and np.array_equal(delayed[100:], wav[:-100])
    advanced = pp.time_shift(wav, -100)
    assert np.array_equal(advanced[:-100], wav[100:]) and np.all(advanced[-100:] == 0)
    stretched = pp.time_stretch(wav, 0.8)
    assert abs(len(stretched) - len(wav) / 0.8) < 512
    assert peak_frequency(stretched, SAMPLE_RATE) == pytest.approx(440.0, rel=0.01)
    assert np.max(np.abs(pp.gain(wav, -6.0))) == pytest.approx(0.5 * 10 ** (-6 / 20), rel=1e-4)


@pytest.mark.parametrize(
    "sr, channels, subtype, suffix",
    [(8000, 1, "PCM_16", ".wav"), (44100, 1, "PCM_16", ".wav"), (22050, 2, "PCM_16", ".wav"),
     (48000, 1, "PCM_24", ".wav"), (16000, 1, "FLOAT", ".wav"), (32000, 1, "PCM_16", ".flac"),
     (16000, 2, "VORBIS", ".ogg")],
)
def test_every_format_loads_as_16k_mono(tmp_path, sr, channels, subtype, suffix):
    wav = sine(300.0, sr)
    data = np.stack([wav] * channels, axis=1) if channels > 1 else wav
    path = tmp_path / f"clip{suffix}"
    sf.write(path, data, sr, subtype=subtype)
    loaded = pp.load_audio(path)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    assert abs(len(loaded) - SAMPLE_RATE) <= 1
    assert peak_frequency(loaded, SAMPLE_RATE) == pytest.approx(300.0, rel=0.005)
    assert np.max(np.abs(loaded)) == pytest.approx(0.5, abs=0.02)


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = sine(300.0, SAMPLE_RATE), np.zeros(SAMPLE_RATE, dtype=np.float32)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(pp.load_audio(tmp_path / "st.wav"), left / 2, atol=1e-7)


def test_normalisation_and_trim(tmp_path):
    wav = np.concatenate([np.zeros(8000, np.float32), sine(300.0, SAMPLE_RATE, amplitude=0.1), np.zeros(8000, np.float32)])
    sf.write(tmp_path / "quiet.wav", wav, SAMPLE_RATE, subtype="FLOAT")
    assert np.max(np.abs(pp.load_audio(tmp_path / "quiet.wav", normalize="peak"))) == pytest.approx(1.0)
    rms = pp.load_audio(tmp_path / "quiet.wav", normalize="rms", target_rms_db=-20.0)
    assert 20 * np.log10(np.sqrt(np.mean(rms.astype(np.float64) ** 2))) == pytest.approx(-20.0, abs=1e-3)
    trimmed = pp.load_audio(tmp_path / "quiet.wav", trim_db=30)
    assert abs(len(trimmed) - SAMPLE_RATE) < 2048


@pytest.mark.parametrize("kind", ["empty", "text", "nan"])
def test_unusable_files_raise_an_error_naming_the_file(tmp_path, kind):
    path = tmp_path / f"broken_{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio, just text with a .wav name\n")
    else:
        sf.write(path, np.full(1600, np.nan, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(pp.AudioLoadError) as error:
        pp.load_audio(path)
    assert str(path) in str(error.value)
    assert error.value.path == str(path)


def test_logmel_follows_the_contract():
    params = pp.LogMelParams()
    wav = sine(440.0, SAMPLE_RATE, seconds=3.0)
    mel = pp.logmel(wav, params)
    assert mel.shape == (80, 1 + len(wav) // 256) and mel.dtype == np.float32
    silent = pp.logmel(np.zeros(SAMPLE_RATE, dtype=np.float32), params)
    assert np.all(silent == np.float32(np.log(1e-5)))
    # The strongest band holds 440 Hz: its centre frequency is the nearest to it.
    import librosa

    centres = librosa.mel_frequencies(n_mels=82, fmin=0, fmax=8000)[1:-1]
    assert abs(centres[int(np.argmax(mel[:, 50]))] - 440) < 60
    assert pp.LogMelParams.from_json(params.to_json()) == params
    with pytest.raises(ValueError, match="unknown"):
        pp.LogMelParams.from_json('{"hop": 128}')


def test_notebook_mel_db_matches_the_seed_notebook():
    wav = sine(440.0, 22050, seconds=2.0)
    mel_db = pp.notebook_mel_db(wav, 22050)
    assert mel_db.shape == (128, 1 + len(wav) // 512)
    assert mel_db.max() == 0.0 and mel_db.min() >= -80.0


def test_features_command_writes_npy_and_uses_the_cache(tmp_path, monkeypatch):
    source = tmp_path / "in"
    source.mkdir()
    for k, freq in enumerate([200.0, 300.0, 400.0]):
        sf.write(source / f"clip{k}.wav", sine(freq, 22050, seconds=1.5), 22050)
    (source / "notes.txt").write_text("ignored")
    (source / "broken.wav").write_text("not audio")
    cache = tmp_path / "cache"
    first = pp.extract_folder(source, tmp_path / "mfcc", "mfcc", cache_dir=cache)
    assert first.written == 3 and first.cache_hits == 0
    assert len(first.failures) == 1 and "broken.wav" in first.failures[0][1]
    second = pp.extract_folder(source, tmp_path / "again", "mfcc", cache_dir=cache)
    assert second.cache_hits == 3
    for k in range(3):
        a, b = np.load(tmp_path / "mfcc" / f"clip{k}.npy"), np.load(tmp_path / "again" / f"clip{k}.npy")
        assert a.shape == (20, 1 + 24000 // 512) and np.array_equal(a, b)
    out = tmp_path / "logmel"
    result = subprocess.run([sys.executable, "-m", "reference", "features", "--kind", "logmel", "--in", str(source),
                             "--out", str(out), "--no-cache"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert "3 written" in result.stdout and "broken.wav" in result.stdout
    assert np.load(out / "clip0.npy").shape == (80, 1 + 24000 // 256)
    assert pp.LogMelParams.from_json((out / "params.json").read_text()) == pp.LogMelParams()


def test_the_feature_cache_key_covers_the_code_that_computes_features(tmp_path, monkeypatch):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF same bytes")
    before = pp.feature_cache_key(clip, "mfcc")
    assert pp.feature_cache_key(clip, "mfcc") == before != pp.feature_cache_key(clip, "logmel")
    monkeypatch.setattr(pp, "_code_digest", lambda: "edited")
    assert pp.feature_cache_key(clip, "mfcc") != before
