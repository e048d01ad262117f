"""Audio metrics: PESQ conformance, closed forms, direction on real speech, edge cases, batch, command, sets."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from reference import PROJECT_ROOT, SAMPLE_RATE
from reference import evaluation as ev
from reference import evaluation_unpaired as eu
from reference.preprocess import add_noise, gain, load_audio, resample, time_shift

ALL_METRICS = ev.INTRUSIVE_METRICS + ev.OPTIONAL_METRICS
SPEAKER_FILES = [f"{digit}_george_{take}.wav" for digit, take in [(5, 3), (1, 8), (9, 0), (2, 4), (7, 6), (0, 1)]]


@pytest.fixture(scope="module")
def speech(fsdd_dir) -> np.ndarray:
    """Real speech of about 3 s at 16 kHz: FSDD digits of one speaker with 0.1 s gaps."""
    gap = np.zeros(SAMPLE_RATE // 10, dtype=np.float32)
    return np.concatenate([part for name in SPEAKER_FILES for part in (load_audio(fsdd_dir / name), gap)])


# --------------------------------------------------------------------------- conformance

def test_pesq_of_the_conformance_pair_through_the_loading_path_is_exact(pesq_pair_dir):
    clean, noisy = pesq_pair_dir / "speech.wav", pesq_pair_dir / "speech_bab_0dB.wav"
    ref, deg = load_audio(clean), load_audio(noisy)
    assert ev.pesq_score(ref, deg, SAMPLE_RATE, "wb") == 1.0832337141036987
    assert ev.pesq_score(ref, deg, SAMPLE_RATE, "nb") == 1.6072081327438354
    rows = ev.score_pairs([(clean, noisy), (clean, clean)], metrics=["pesq_wb", "pesq_nb"])
    assert rows[0].values == {"pesq_wb": round(1.0832337141036987, ev.METRIC_DECIMALS),
                              "pesq_nb": round(1.6072081327438354, ev.METRIC_DECIMALS)}
    assert rows[1].values == {"pesq_wb": round(4.643888473510742, ev.METRIC_DECIMALS),
                              "pesq_nb": round(4.548638343811035, ev.METRIC_DECIMALS)}
    assert rows[0].name == "speech_bab_0dB.wav" and rows[0].reasons == {}


@pytest.mark.fsdd
def test_pesq_at_8_khz_and_at_other_rates(speech):
    import pesq

    ref8, deg8 = resample(speech, SAMPLE_RATE, 8000), resample(add_noise(speech, 10.0, rng=1), SAMPLE_RATE, 8000)
    assert ev.pesq_score(ref8, deg8, 8000, "nb") == pesq.pesq(8000, ref8.astype(np.float64), deg8.astype(np.float64), "nb")
    with pytest.raises(ev.MetricUnavailable, match="wide-band PESQ needs 16 kHz"):
        ev.pesq_score(ref8, deg8, 8000, "wb")
    ref22, deg22 = resample(ref8, 8000, 22050), resample(deg8, 8000, 22050)  # scored after resampling to 16 kHz
    at16 = [resample(x.astype(np.float32), 22050, SAMPLE_RATE).astype(np.float64) for x in (ref22, deg22)]
    assert ev.pesq_score(ref22, deg22, 22050, "wb") == pesq.pesq(SAMPLE_RATE, *at16, "wb")


def test_snr_and_si_sdr_equal_their_closed_forms():
    rng = np.random.default_rng(3)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    ref = 0.5 * np.sin(2 * np.pi * 440 * t)
    noise = rng.standard_normal(len(ref))
    noise -= noise.mean()
    noise -= np.dot(noise, ref - ref.mean()) / np.sum((ref - ref.mean()) ** 2) * (ref - ref.mean())  # orthogonal
    for target_db in (-5.0, 0.0, 12.0, 30.0):
        scaled = noise * np.sqrt(np.sum(ref**2) / np.sum(noise**2) / 10 ** (target_db / 10))
        assert ev.snr(ref, ref + scaled) == pytest.approx(target_db, abs=1e-9)
        # a zero-mean sine over whole periods: SI-SDR's projection keeps the sine, drops the noise
        assert ev.si_sdr(ref, ref + scaled) == pytest.approx(target_db, abs=1e-6)
        assert ev.si_sdr(ref, 0.7 * ref + scaled) == pytest.approx(
            10 * np.log10(np.sum((0.7 * ref) ** 2) / np.sum(scaled**2)), abs=1e-6)
        for factor in (0.01, 0.3, 5.0):
            assert ev.si_sdr(ref, factor * (ref + scaled)) == pytest.approx(ev.si_sdr(ref, ref + scaled), abs=1e-9)
    assert ev.snr(ref, 0.5 * ref) == pytest.approx(10 * np.log10(1 / 0.25), abs=1e-9)  # gain is not invariant


def test_segmental_snr_frames_and_clamps():
    rng = np.random.default_rng(4)
    ref = rng.standard_normal(2 * SAMPLE_RATE)
    deg = ref + 10 ** (-15 / 20) * rng.standard_normal(len(ref))  # stationary noise at 15 dB in every frame
    assert ev.seg_snr(ref, deg) == pytest.approx(15.0, abs=0.5)
    assert ev.seg_snr(ref, ref) == 35.0
    assert ev.seg_snr(ref, np.zeros_like(ref)) == pytest.approx(0.0, abs=1e-9)  # noise = -ref in every frame
    assert ev.seg_snr(ref, ref + 100 * rng.standard_normal(len(ref))) == -10.0


@pytest.mark.fsdd
def test_stoi_of_real_speech_against_itself(speech):
    assert ev.stoi(speech, speech) > 0.99
    assert ev.estoi(speech, speech) > 0.99


@pytest.mark.fsdd
def test_every_metric_moves_the_right_way_as_white_noise_grows(speech):
    levels = [30.0, 20.0, 10.0, 0.0]
    pairs = [(speech, add_noise(speech, snr_db, rng=7)) for snr_db in levels]
    rows = ev.score_pairs(pairs, metrics=ALL_METRICS)
    for row in rows:
        assert row.reasons == {}
    assert [row.values["snr"] for row in rows] == pytest.approx(levels, abs=0.01)
    for metric in ALL_METRICS:
        series = [row.values[metric] for row in rows]
        steps = -np.diff(series) if ev.METRICS[metric].higher_is_better else np.diff(series)
        assert np.all(steps > 0), f"{metric} does not worsen as noise grows: {series}"


def test_mel_cepstral_distortion_dtw_aligns_a_delayed_copy():
    rng = np.random.default_rng(5)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    ref = (np.sin(2 * np.pi * (200 + 300 * t) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)
    ref += 0.01 * rng.standard_normal(len(ref)).astype(np.float32)
    delayed = np.concatenate([np.zeros(4000, np.float32), ref])  # 0.25 s late
    assert ev.mcd(ref, ref) == 0.0
    assert ev.mcd(ref, delayed, dtw=True) < 0.25 * ev.mcd(ref, delayed)


# --------------------------------------------------------------------------- edge cases

def test_silent_nan_short_and_ten_minute_clips_get_a_value_or_a_reason():
    rng = np.random.default_rng(6)
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    voice = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    nan_clip = voice.copy()
    nan_clip[100] = np.nan
    ten_minutes = np.tile(voice, 200)
    pairs = [(voice, np.zeros_like(voice)), (np.zeros_like(voice), voice), (voice, nan_clip),
             (voice[:1600], voice[:1600] + 0.01), (ten_minutes, ten_minutes + 0.01 * rng.standard_normal(len(ten_minutes))),
             (None, voice)]
    rows = ev.score_pairs(pairs, metrics=ALL_METRICS)
    silent_deg, silent_ref, nan_row, short, long, unpaired = rows
    for row in rows:
        for metric in ALL_METRICS:
            assert (row.values[metric] is None) == (metric in row.reasons), (row.name, metric)
        json.dumps(row.to_dict(), allow_nan=False)
    assert "silent" in silent_deg.reasons["pesq_wb"] and "silent" in silent_deg.reasons["dnsmos"]
    assert silent_deg.values["snr"] == pytest.approx(0.0) and silent_deg.values["stoi"] is not None
    assert all("reference clip is silent" in silent_ref.reasons[m] for m in ("snr", "si_sdr", "stoi", "pesq_nb"))
    assert set(nan_row.reasons) == set(ALL_METRICS) and "NaN" in nan_row.reasons["snr"]
    assert "0.25 s" in short.reasons["pesq_wb"] and "0.4 s" in short.reasons["stoi"]
    assert short.values["snr"] is not None and short.values["mel_l1"] is not None
    assert long.deg_seconds == 600.0
    assert {m for m in ALL_METRICS if long.values[m] is not None} == {"snr", "seg_snr", "si_sdr"}
    assert "60 s" in long.reasons["pesq_wb"]
    assert 1.0 <= unpaired.values["dnsmos"] <= 5.0 and unpaired.ref_seconds is None
    assert set(unpaired.reasons) == set(ALL_METRICS) - {"dnsmos"} and "none was given" in unpaired.reasons["snr"]


def test_unreadable_and_missing_files_become_reasons_and_the_batch_goes_on(tmp_path, pesq_pair_dir):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    nan_file = tmp_path / "nan.wav"
    sf.write(nan_file, np.full(8000, np.nan, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    clean = pesq_pair_dir / "speech.wav"
    rows = ev.score_pairs([(clean, broken), (clean, tmp_path / "absent.wav"), (clean, nan_file), (clean, clean)],
                          metrics=["pesq_wb", "snr"])
    assert "broken.wav" in rows[0].reasons["snr"] and "could not be loaded" in rows[0].reasons["snr"]
    assert "no such file" in rows[1].reasons["pesq_wb"]
    assert "NaN" in rows[2].reasons["snr"]
    assert rows[3].values["pesq_wb"] == round(4.643888473510742, ev.METRIC_DECIMALS)


# --------------------------------------------------------------------------- batch, aggregate, command

@pytest.mark.fsdd
def test_two_worker_processes_give_the_rows_of_one(tmp_path, fsdd_dir):
    pairs = []
    for k, name in enumerate(SPEAKER_FILES):
        noisy = tmp_path / f"noisy_{k}.wav"
        sf.write(noisy, add_noise(load_audio(fsdd_dir / name), 5.0 + k, rng=k), SAMPLE_RATE)
        pairs.append((fsdd_dir / name, noisy))
    metrics = ["pesq_wb", "snr", "stoi", "mel_l1"]
    serial = ev.score_pairs(pairs, metrics=metrics)
    parallel = ev.score_pairs(pairs, metrics=metrics, jobs=2)
    assert [row.to_dict() for row in parallel] == [row.to_dict() for row in serial]
    assert [row.name for row in serial] == [f"noisy_{k}.wav" for k in range(len(pairs))]
    assert all(row.values["snr"] is not None for row in serial)


def test_a_dying_worker_gives_reasons_and_the_batch_returns(monkeypatch):
    """A worker that ends abruptly on one clip, as a crash in C code would (workers fork, so they share the patch)."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    ref = np.sin(2 * np.pi * 200 * t)
    crash = np.concatenate([ref, [0.0]])  # one sample longer: the clip that kills its worker
    snr = ev.METRIC_FUNCTIONS["snr"]
    monkeypatch.setitem(ev.METRIC_FUNCTIONS, "snr",
                        lambda r, d, sr: os._exit(3) if len(d) == len(crash) else snr(r, d, sr))
    pairs = [(ref, ref + 0.01)] * 3 + [(ref, crash)] + [(ref, ref + 0.02)] * 3
    rows = ev.score_pairs(pairs, metrics=["snr"], jobs=2)
    assert len(rows) == len(pairs)
    assert "a scoring process died" in rows[3].reasons["snr"]
    for row in rows:
        assert (row.values["snr"] is None) == ("snr" in row.reasons)


def test_aggregate_mean_median_and_bootstrap_interval():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    rows = [ev.ClipScores(f"c{i}", {"snr": v, "pesq_wb": None}, {"pesq_wb": "silent"}) for i, v in enumerate(values)]
    rows.append(ev.ClipScores("c5", {"snr": None, "pesq_wb": 2.5}, {"snr": "NaN"}))
    summary = ev.aggregate([row.to_dict() for row in rows])
    snr = summary["snr"]
    assert (snr["n"], snr["missing"], snr["mean"], snr["median"]) == (5, 1, 4.0, 3.0)
    assert min(values) < snr["ci_low"] < 4.0 < snr["ci_high"] < max(values)
    assert summary["pesq_wb"] == {"n": 1, "missing": 5, "mean": 2.5, "median": 2.5, "ci_low": None, "ci_high": None,
                                  "reasons": {"silent": 5}}
    assert snr["reasons"] == {"NaN": 1}
    assert ev.aggregate(rows) == summary  # rows or their dicts; fixed seed
    assert ev.aggregate(rows, ["dnsmos"])["dnsmos"]["mean"] is None


@pytest.mark.fsdd
def test_evaluate_command_scores_matching_names_and_writes_json(tmp_path, fsdd_dir):
    ref_dir, deg_dir = tmp_path / "ref", tmp_path / "deg"
    ref_dir.mkdir()
    deg_dir.mkdir()
    for k, name in enumerate(SPEAKER_FILES[:3]):
        wav = load_audio(fsdd_dir / name)
        sf.write(ref_dir / f"clip{k}.wav", wav, SAMPLE_RATE)
        sf.write(deg_dir / f"clip{k}.flac", add_noise(wav, 10.0, rng=k), SAMPLE_RATE)
    sf.write(ref_dir / "only_ref.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    (deg_dir / "clip9.wav").write_bytes(b"not audio")
    (ref_dir / "clip9.wav").write_bytes(b"not audio either")
    out = tmp_path / "scores" / "eval.json"
    done = subprocess.run([sys.executable, "-m", "reference", "evaluate", "--ref", str(ref_dir), "--deg", str(deg_dir),
                           "--jobs", "2", "--out", str(out)], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [row["name"] for row in result["rows"]] == ["clip0", "clip1", "clip2", "clip9"]
    assert result["reference_only"] == ["only_ref"] and result["degraded_only"] == []
    for row in result["rows"][:3]:
        assert set(ev.INTRUSIVE_METRICS) <= set(row) and row["reasons"] == {}
        assert row["snr"] == pytest.approx(10.0, abs=0.05)
    assert "could not be loaded" in result["rows"][3]["reasons"]["pesq_wb"]
    assert result["aggregate"]["snr"]["n"] == 3 and result["aggregate"]["snr"]["missing"] == 1
    assert "snr" in done.stdout and "only_ref" in done.stdout and "1 missing, e.g. the degraded clip could not be loaded" in done.stdout


def test_evaluate_command_refuses_bad_arguments(tmp_path, capsys):
    for argv, message in [(["--ref", str(tmp_path / "nope"), "--deg", str(tmp_path)], "not a folder"),
                          (["--ref", str(tmp_path), "--deg", str(tmp_path), "--metrics", "snr,fad"], "unknown ['fad']"),
                          (["--ref", str(tmp_path), "--deg", str(tmp_path), "--jobs", "0"], "at least 1")]:
        with pytest.raises(SystemExit) as stopped:
            ev.main([*argv, "--out", str(tmp_path / "x.json")], "evaluate")
        assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert ev.main(["--ref", str(tmp_path), "--deg", str(tmp_path), "--out", str(tmp_path / "x.json")], "evaluate") == 1
    assert "no clip names in common" in capsys.readouterr().out


def test_one_registry_names_every_metric_with_its_unit_range_and_direction(capsys):
    assert set(ev.METRICS) == set(ev.METRIC_FUNCTIONS) == set(ALL_METRICS)
    assert set(ev.INTRUSIVE_METRICS).isdisjoint(ev.OPTIONAL_METRICS)
    assert ev.SPEECH_METRICS == {"pesq_wb", "pesq_nb", "stoi", "estoi"} and ev.REFERENCE_FREE_METRICS == {"dnsmos"}
    pesq, lsd = ev.METRICS["pesq_wb"], ev.METRICS["lsd"]
    assert (pesq.label, pesq.better) == ("PESQ wide-band", "higher is better, 1 to 4.64")
    assert (lsd.label, lsd.better) == ("Log-spectral distance (dB)", "lower is better")
    with pytest.raises(SystemExit):
        ev.main(["--help"], "evaluate")
    assert "  mcd_dtw  MCD after DTW (dB): " in capsys.readouterr().out


# --------------------------------------------------------------------------- validity

def test_validity_reports_each_finding_of_a_file(tmp_path):
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = 0.5 * np.sin(2 * np.pi * 300 * t)
    cases = {
        "good.wav": (tone, SAMPLE_RATE, []),
        "clipped.wav": (np.clip(3 * tone, -1, 1), SAMPLE_RATE, ["clipped"]),
        "offset.wav": (0.3 * tone + 0.2, SAMPLE_RATE, ["DC offset +0.200"]),
        "silent.wav": (np.zeros(SAMPLE_RATE), SAMPLE_RATE, ["silent"]),
        "hushed.wav": (1e-4 * tone, SAMPLE_RATE, ["silent (RMS -89 dBFS"]),
        "short.wav": (tone[:1000], SAMPLE_RATE, ["0.06 s long"]),
        "stereo22k.wav": (np.stack([tone, tone], axis=1), 22050, ["sample rate 22050 Hz"]),
    }
    for name, (wav, sr, expected) in cases.items():
        sf.write(tmp_path / name, wav, sr, subtype="FLOAT")
        report = eu.validity(tmp_path / name)
        assert len(report.problems) == len(expected), (name, report.problems)
        for problem, text in zip(report.problems, expected):
            assert text in problem, (name, report.problems)
    stereo = eu.validity(tmp_path / "stereo22k.wav")
    assert (stereo.channels, stereo.sample_rate, stereo.seconds) == (2, 22050, SAMPLE_RATE / 22050)
    clipped = eu.validity(tmp_path / "clipped.wav")
    assert clipped.clipping_ratio == pytest.approx(np.mean(np.abs(np.clip(3 * tone, -1, 1)) >= eu.CLIP_LEVEL))
    assert eu.validity(tmp_path / "good.wav").rms_dbfs == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)
    nan_wave = tone.copy()
    nan_wave[:4000] = np.nan
    report = eu.validity(nan_wave, SAMPLE_RATE)
    assert report.nonfinite_ratio == 0.25 and "25.0% of the samples are NaN" in report.problems[0]
    (tmp_path / "junk.wav").write_bytes(b"junk")
    junk = eu.validity(tmp_path / "junk.wav")
    assert junk.seconds is None and "not a readable audio file" in junk.problems[0]
    assert json.loads(json.dumps(eu.validity(np.zeros(100), SAMPLE_RATE).to_dict(), allow_nan=False))["ok"] is False


# --------------------------------------------------------------------------- set metrics

def test_frechet_distance_equals_its_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(8)
    mean_a, mean_b = rng.standard_normal(20), rng.standard_normal(20)
    std_a, std_b = rng.uniform(0.5, 2, 20), rng.uniform(0.5, 2, 20)
    a = eu.FeatureStatistics("mfcc", mean_a, np.diag(std_a**2), 1000, 10)
    b = eu.FeatureStatistics("mfcc", mean_b, np.diag(std_b**2), 1000, 10)
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((std_a - std_b) ** 2)
    assert eu.frechet_feature_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert eu.frechet_feature_distance(b, a) == pytest.approx(expected, rel=1e-9)
    assert eu.frechet_feature_distance(a, a) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.fsdd
def test_frechet_distance_separates_clean_from_noisy_speech(fsdd_dir):
    files = sorted(fsdd_dir.glob("*_jackson_*.wav"))
    train = eu.feature_statistics(files[0:200:4])
    unseen = files[1:200:8]
    noisy = [add_noise(load_audio(f), 10.0, rng=1) for f in unseen]
    assert train.mean.shape == (20,) and train.covariance.shape == (20, 20) and train.clips == 50
    assert eu.frechet_feature_distance(train, unseen) < 0.2 * eu.frechet_feature_distance(train, noisy)
    logmel_stats = eu.feature_statistics(unseen, kind="logmel")
    assert logmel_stats.mean.shape == (80,)
    with pytest.raises(ev.MetricUnavailable, match="too few"):
        eu.feature_statistics([np.zeros(4096, np.float32)])


@pytest.mark.fsdd
def test_diversity_is_zero_for_copies_and_grows_with_variety(fsdd_dir):
    one = load_audio(fsdd_dir / "3_theo_5.wav")
    assert eu.diversity([one, gain(one, -6), one]) == pytest.approx(0.0, abs=1e-4)
    same_digit = eu.diversity(sorted(fsdd_dir.glob("3_theo_*.wav"))[:10])
    all_digits = eu.diversity([fsdd_dir / f"{d}_{s}_5.wav" for d in range(10) for s in ("theo", "george")])
    assert 0 < same_digit < all_digits
    with pytest.raises(ev.MetricUnavailable, match="at least two"):
        eu.diversity([one])


@pytest.mark.fsdd
def test_novelty_flags_altered_copies_of_training_clips_and_nothing_else(fsdd_dir):
    files = sorted(fsdd_dir.glob("*.wav"))
    training = eu.TrainingIndex.build(files[::25])
    source = load_audio(training.clips[10])
    copies = [source, gain(source, -9), time_shift(source, 700), source[len(source) // 4:],
              resample(resample(source, SAMPLE_RATE, 8000), 8000, SAMPLE_RATE), add_noise(source, 30.0, rng=2),
              np.concatenate([np.zeros(3000, np.float32), source])]
    for result in eu.novelty(copies, training):
        assert result.near_duplicate and result.duplicate_of == 10 and result.correlation > 0.99
    distinct = [f for f in files[1::25] if f not in training.clips][:30]  # other takes of the same speakers
    results = eu.novelty(distinct, training)
    assert not any(r.near_duplicate for r in results)
    assert min(r.distance for r in results) > 1.0 and max(r.correlation for r in results) < eu.DUPLICATE_CORRELATION


def test_normalised_correlation_equals_the_sum_at_every_lag():
    """Against the definition, summed lag by lag: the shorter clip over the zero-padded longer one."""
    def by_definition(a, b, min_energy_ratio=0.1):
        short, long = sorted((a, b), key=len)
        padded = np.pad(long, len(short) - 1)
        best = 0.0
        for start in range(len(padded) - len(short) + 1):
            window = padded[start:start + len(short)]
            if np.sum(window**2) >= min_energy_ratio * np.sum(short**2) > 0:
                best = max(best, abs(window @ short) / np.sqrt(np.sum(short**2) * np.sum(window**2)))
        return min(1.0, best)

    rng = np.random.default_rng(3)
    wav = rng.standard_normal(300) * np.linspace(0, 1, 300)
    others = [rng.standard_normal(40), rng.standard_normal(700), -0.2 * wav[50:120], np.zeros(30), wav[:1],
              np.concatenate([np.zeros(500), wav])]
    found = eu.max_normalised_correlations(wav, others)
    assert found == pytest.approx([by_definition(wav, other) for other in others], abs=1e-12)
    assert found[2] == pytest.approx(1.0) and found[3] == 0.0 and found[5] == pytest.approx(1.0)
    assert eu.max_normalised_correlations(wav, []) == []


def test_a_file_promising_too_much_audio_is_judged_from_its_header(tmp_path):
    """An hour of silence takes a few kB as FLAC, and 230 MB as float32 samples (a 50 MB file, days): never read."""
    import resource

    hours = tmp_path / "hours.flac"
    with sf.SoundFile(hours, "w", samplerate=SAMPLE_RATE, channels=1, format="FLAC") as handle:
        block = np.zeros(SAMPLE_RATE * 600, dtype=np.float32)
        for _ in range(6):
            handle.write(block)
    assert hours.stat().st_size < 5_000_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = eu.validity(hours)
    assert report.seconds == 3600.0 and not report.read and report.problems == [
        "3600.0 s long, longer than 60 s (not read)"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # kB: nothing was read
    many = tmp_path / "many-channels.flac"
    sf.write(many, np.zeros((SAMPLE_RATE * 50, 8), np.float32), 96_000, format="FLAC")
    report = eu.validity(many)
    assert not report.read and "8 channels at 96000 Hz" in report.problems[0]
    sf.write(tmp_path / "fine.flac", 0.1 * np.ones(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert eu.validity(tmp_path / "fine.flac").read


def test_speech_metrics_are_left_out_of_clips_that_are_not_speech():
    """A piano clip of the held-out set is scored with LSD and SNR, never PESQ or STOI, and says why."""
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    ref = 0.5 * np.sin(2 * np.pi * 220 * t)
    rows = ev.score_pairs([(ref, ref + 0.01), (ref, ref + 0.01)], metrics=["pesq_wb", "stoi", "lsd", "snr"],
                          speech=[True, False])
    spoken, melody = rows
    assert melody.values["pesq_wb"] is None and melody.values["stoi"] is None
    assert melody.reasons["pesq_wb"] == melody.reasons["stoi"] == ev.NOT_SPEECH
    assert melody.values["lsd"] == spoken.values["lsd"] and melody.values["snr"] == spoken.values["snr"]
    assert "pesq_wb" not in spoken.reasons or spoken.reasons["pesq_wb"] != ev.NOT_SPEECH
