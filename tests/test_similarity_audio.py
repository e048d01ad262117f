"""The same clip in two submissions (:mod:`grader.similarity.audio`), on real recordings: FSDD's and the embedded
data set's. The figures the thresholds rest on are printed (``pytest -s`` shows them)."""
from __future__ import annotations

import io
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from grader.similarity.audio import (
    COPY_CORRELATION, MIN_ENERGY_RATIO, PUBLIC_PREFIX, RECONSTRUCT_MARGIN, VERIFY_RATE, VERIFY_SECONDS, ClipFingerprint,
    clip_fingerprint, correlations, find_audio_pairs, media_fingerprints, public_fingerprints,
)
from reference import SAMPLE_RATE
from reference.data import read_manifest
from reference.evaluation_unpaired import max_normalised_correlations
from reference.preprocess import LogMelParams, load_audio, logmel, resample

SPEAKERS = ("george", "jackson", "nicolas", "theo")


def phrase(fsdd_dir: Path, speaker: str, takes: list[tuple[int, int]]) -> np.ndarray:
    """Real speech at 16 kHz (samples,): ``speaker``'s (digit, take) recordings, each followed by 0.1 s of silence."""
    gap = np.zeros(SAMPLE_RATE // 10, dtype=np.float32)
    return np.concatenate([part for digit, take in takes
                           for part in (load_audio(fsdd_dir / f"{digit}_{speaker}_{take}.wav"), gap)])


def phrases(fsdd_dir: Path, count: int, seed: int) -> list[np.ndarray]:
    """``count`` different phrases of six random digits (about 3 s), each by one speaker."""
    rng = np.random.default_rng(seed)
    return [phrase(fsdd_dir, SPEAKERS[n % len(SPEAKERS)], [(int(d), int(t)) for d, t in
                                                           zip(rng.integers(0, 10, 6), rng.integers(0, 50, 6))])
            for n in range(count)]


def through_wav(wav: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """``wav`` written as a 16-bit WAV at ``sr`` Hz (as the grader's media are) and read back."""
    buffer = io.BytesIO()
    sf.write(buffer, wav, sr, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    samples, rate = sf.read(buffer, dtype="float32")
    return samples, rate


def correlation(a: ClipFingerprint, b: ClipFingerprint) -> float:
    return correlations(a, [b])[0]


@pytest.mark.fsdd
def test_a_shared_sample_is_found_after_resampling_gain_and_a_cut(fsdd_dir):
    shared, quiet, *others = phrases(fsdd_dir, 6, seed=1)
    cut = 0.3 * resample(shared[int(0.3 * SAMPLE_RATE):], SAMPLE_RATE, 22050)
    copy = clip_fingerprint(*through_wav(cut, 22050))
    original = clip_fingerprint(*through_wav(shared, SAMPLE_RATE))
    # quieter and longer: on the clips as written, max_normalised_correlations' energy gate skips every lag
    padded_wav = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), 0.05 * quiet])
    assert max_normalised_correlations(quiet, [padded_wav], min_energy_ratio=MIN_ENERGY_RATIO) == [0.0]
    padded = clip_fingerprint(*through_wav(padded_wav, SAMPLE_RATE))
    quiet_original = clip_fingerprint(quiet, SAMPLE_RATE)
    fingerprints = [clip_fingerprint(wav, SAMPLE_RATE) for wav in others]
    pairs = find_audio_pairs({
        "alice": {"handed_in": {"sample-01.wav": original, "sample-02.wav": fingerprints[0]},
                  "sample": {"0.wav": quiet_original}},
        "bob": {"sample": {"3.wav": copy, "4.wav": fingerprints[1], "5.wav": fingerprints[2], "6.wav": padded}},
    })
    print(f"\ncopy at 22.05 kHz, x0.3, 0.3 s cut: correlation {correlation(original, copy):.4f}; x0.05 after 1 s of "
          f"silence: {correlation(quiet_original, padded):.4f}; different phrases at most "
          f"{max(correlation(a, b) for a, b in itertools.combinations(fingerprints, 2)):.3f}")
    assert len(pairs) == 1
    pair = pairs[0]
    assert (pair.submission_a, pair.submission_b) == ("alice", "bob")
    assert [(m.clip_a, m.role_a, m.clip_b, m.role_b, m.verdict) for m in pair.matches] == [
        ("sample-01.wav", "handed_in", "3.wav", "sample", "copied"), ("0.wav", "sample", "6.wav", "sample", "copied")]
    assert all(m.correlation >= COPY_CORRELATION for m in pair.matches)
    assert pair.score == pytest.approx(2 / 3)  # two of alice's three clips
    assert json.loads(json.dumps(pair.to_dict()))["matches"][0]["verdict"] == "copied"
    with pytest.raises(ValueError, match="unknown role 'samples'"):
        find_audio_pairs({"carol": {"samples": {"a.wav": copy}}})


@pytest.mark.fsdd
def test_a_cut_that_takes_the_loud_part_is_still_a_copy(fsdd_dir):
    """Theo's phrase, whose first 0.3 s are its loudest: the cut moves the common level by 11 dB."""
    parts = []
    for name, gap in [("3_theo_25", 2643), ("9_theo_35", 803), ("9_theo_37", 2158), ("2_theo_21", 2935),
                      ("1_theo_8", 1031)]:
        parts += [load_audio(fsdd_dir / f"{name}.wav"), np.zeros(gap, np.float32)]
    wav = np.concatenate(parts)
    whole, cut = clip_fingerprint(wav, SAMPLE_RATE), clip_fingerprint(wav[int(0.3 * SAMPLE_RATE):], SAMPLE_RATE)
    with_default_gate = max_normalised_correlations(whole.waveform(), [cut.waveform()])[0]
    print(f"\nloud part cut: correlation {correlation(whole, cut):.4f} ({with_default_gate:.3f} with "
          f"max_normalised_correlations' default energy gate); levels {whole.scale:.1f} and {cut.scale:.1f}")
    assert correlation(whole, cut) >= COPY_CORRELATION > with_default_gate
    assert len(find_audio_pairs({"alice": {"sample": {"a.wav": whole}}, "bob": {"sample": {"b.wav": cut}}})) == 1


@pytest.mark.fsdd
def test_takes_of_one_digit_by_one_speaker_are_not_copies(fsdd_dir):
    """George's fifty "four"s: the closest pair of distinct recordings measured in FSDD (49,000 pairs of takes of
    one digit by one speaker), above novelty's 0.95 and below :data:`COPY_CORRELATION`."""
    takes = {f"4_george_{take}.wav": clip_fingerprint(*sf.read(fsdd_dir / f"4_george_{take}.wav", dtype="float32"))
             for take in range(50)}
    closest = max((correlation(takes[a], takes[b]), a, b) for a, b in itertools.combinations(takes, 2))
    print(f"\nclosest distinct takes: {closest[1]} and {closest[2]}, correlation {closest[0]:.4f} "
          f"(copy threshold {COPY_CORRELATION})")
    assert 0.9 < closest[0] < COPY_CORRELATION
    assert find_audio_pairs({name: {"handed_in": {name: fingerprint}} for name, fingerprint in takes.items()}) == []
    pairs = find_audio_pairs({"alice": {"handed_in": {"a.wav": takes[closest[1]]}},
                              "bob": {"handed_in": {"b.wav": takes[closest[1]]}}})
    assert [(p.submission_a, p.submission_b, p.score) for p in pairs] == [("alice", "bob", 1.0)]


def test_reconstructions_count_only_when_closer_to_each_other_than_to_the_references(embedded_data):
    """Six students reconstruct one held-out clip: Griffin-Lim from random phases 1 and 2 (unlike each other),
    the same output twice (unlike the references: a copy), the project's Griffin-Lim twice (the reference's own)."""
    import librosa

    from reference.generate import vocode
    from reference.vocoder import GRIFFIN_LIM_ITERATIONS, griffin_lim

    clip = next(c for c in read_manifest(embedded_data) if c.split == "heldout" and c.cls == "human")
    name, params = clip.path.stem, LogMelParams()
    mel = logmel(load_audio(clip.path))
    magnitude = librosa.feature.inverse.mel_to_stft(np.exp(mel), sr=params.sr, n_fft=params.n_fft,
                                                    power=params.power, fmin=params.fmin, fmax=params.fmax)

    def phase_search(seed: int) -> ClipFingerprint:
        wav = librosa.griffinlim(magnitude, n_iter=GRIFFIN_LIM_ITERATIONS, hop_length=params.hop_length,
                                 win_length=params.win_length, length=(mel.shape[1] - 1) * params.hop_length,
                                 random_state=seed)
        return clip_fingerprint(wav, SAMPLE_RATE)

    reference = clip_fingerprint(vocode([mel], params, "magnitude")[0], SAMPLE_RATE)
    project_griffin_lim = clip_fingerprint(griffin_lim(mel, params), SAMPLE_RATE)
    outputs = {"gl-seed-1": phase_search(1), "gl-seed-2": phase_search(2), "same-a": phase_search(3),
               "project-gl-a": project_griffin_lim}
    outputs["same-b"] = outputs["same-a"]
    outputs["project-gl-b"] = clip_fingerprint(griffin_lim(mel, params), SAMPLE_RATE)
    references = {name: [reference, project_griffin_lim], "another-clip": [reference, project_griffin_lim]}
    print(f"\nGriffin-Lim seeds 1 and 2: correlation {correlation(outputs['gl-seed-1'], outputs['gl-seed-2']):.3f}; "
          f"seed 3 with the references: {correlation(outputs['same-a'], reference):.3f}, "
          f"{correlation(outputs['same-a'], project_griffin_lim):.3f}")
    by_submission = {student: {"reconstruct": {name: fingerprint}} for student, fingerprint in outputs.items()}
    by_submission["renamed"] = {"reconstruct": {"another-clip": outputs["same-a"]}}  # compared only within a clip
    pairs = find_audio_pairs(by_submission, references=references)
    assert [(p.submission_a, p.submission_b) for p in pairs] == [("same-a", "same-b")]
    match = pairs[0].matches[0]
    assert (match.clip_a, match.role_a, match.verdict) == (name, "reconstruct", "copied")
    assert match.correlation >= max(COPY_CORRELATION, match.reference_correlation + RECONSTRUCT_MARGIN)
    assert find_audio_pairs(by_submission) == []  # without references, reconstructions are not judged


def test_a_public_clip_in_both_submissions_is_public_not_copied(embedded_data):
    """The embedded data set's train and test clips are the public index; one of them (of a unique sha256: the set
    holds identical clips under two names) is handed in by two students, one at 22.05 kHz and half the gain."""
    public = public_fingerprints(embedded_data)
    clips = read_manifest(embedded_data)
    hashes = [c.sha256 for c in clips]
    taken = next(c for c in clips if c.split == "train" and hashes.count(c.sha256) == 1)
    own = [c for c in clips if c.split == "heldout"][:3]
    wav = load_audio(taken.path)
    by_submission = {
        "alice": {"handed_in": {"sample-01.wav": clip_fingerprint(wav, SAMPLE_RATE),
                                "sample-02.wav": clip_fingerprint(load_audio(own[0].path), SAMPLE_RATE)}},
        "bob": {"handed_in": {"sample-01.wav": clip_fingerprint(*through_wav(0.5 * resample(wav, SAMPLE_RATE, 22050),
                                                                             22050)),
                              "sample-02.wav": clip_fingerprint(load_audio(own[1].path), SAMPLE_RATE)}},
    }
    [pair] = find_audio_pairs(by_submission, public)
    verdict = f"{PUBLIC_PREFIX}{taken.path.relative_to(embedded_data.resolve()).as_posix()}"
    print(f"\n{len(public)} public clips; both took {taken.path.name}: correlation {pair.matches[0].correlation:.4f}")
    assert [m.verdict for m in pair.matches] == [verdict]
    assert pair.score == 0.0
    [unlabelled] = find_audio_pairs(by_submission)
    assert [m.verdict for m in unlabelled.matches] == ["copied"] and unlabelled.score == 0.5


@pytest.mark.fsdd
def test_a_fingerprint_survives_json_and_a_media_folder_is_read(tmp_path, fsdd_dir):
    from grader.outputs import copy_media

    long_clip, *others = phrases(fsdd_dir, 4, seed=2)
    long_clip = np.tile(long_clip, 5)  # longer than VERIFY_SECONDS
    fingerprint = clip_fingerprint(long_clip, SAMPLE_RATE)
    back = ClipFingerprint.from_dict(json.loads(json.dumps(fingerprint.to_dict())))
    assert fingerprint.seconds > VERIFY_SECONDS and len(fingerprint.signal) == VERIFY_SECONDS * VERIFY_RATE
    assert back.signal.dtype == np.int8 and np.array_equal(back.signal, fingerprint.signal)
    assert np.array_equal(back.embedding, fingerprint.embedding) and back.embedding.shape == (38,)
    assert (back.seconds, back.scale) == (fingerprint.seconds, fingerprint.scale)

    sources = tmp_path / "sources"
    sources.mkdir()
    media = tmp_path / "out" / "media" / "alice"
    for stem, wav in [("sample-01", others[0]), ("sample-02", others[1]), ("X.student", others[2]),
                      ("X.reference", others[0]), ("X.griffin_lim", others[1]), ("X.truth", others[2])]:
        sf.write(sources / f"{stem}.wav", wav, SAMPLE_RATE)
        copy_media(sources / f"{stem}.wav", media, stem, tmp_path / "out")
    found = media_fingerprints(media)
    assert {role: sorted(named) for role, named in found.clips.items()} == {
        "handed_in": ["sample-01.wav", "sample-02.wav"], "reconstruct": ["X"]}
    assert len(found.references["X"]) == 2 and list(found.references) == ["X"]
    assert correlation(found.clips["reconstruct"]["X"], clip_fingerprint(others[2], SAMPLE_RATE)) > 0.999


@pytest.mark.fsdd
def test_a_class_of_100_submissions_is_compared_in_seconds(fsdd_dir):
    """100 submissions of 20 clips (bench/similarity.py times 300, with every kind): a pool of real fingerprints,
    each clip's embedding moved by noise and its signal made its own (signs flipped at random per 16 ms block),
    five clips planted in a second submission and one twice in its own."""
    pool_waves = phrases(fsdd_dir, 20, seed=3)
    clip_fingerprint(pool_waves[0], SAMPLE_RATE)  # librosa's first call compiles
    start = time.perf_counter()
    pool = [clip_fingerprint(wav, SAMPLE_RATE) for wav in pool_waves]
    per_clip = (time.perf_counter() - start) / len(pool)
    rng = np.random.default_rng(0)

    def own_clip(base: ClipFingerprint) -> ClipFingerprint:
        signs = np.repeat(rng.choice([-1, 1], -(-len(base.signal) // 64)), 64)[: len(base.signal)]
        return ClipFingerprint(base.embedding + rng.normal(0.0, 1.0, base.embedding.shape), base.seconds,
                               (base.signal.astype(np.int16) * signs).astype(np.int8), base.scale)

    by_submission = {f"s{n:03d}": {"sample": {f"{k:02d}.wav": own_clip(pool[rng.integers(len(pool))])
                                              for k in range(20)}} for n in range(100)}
    planted = [("s007", "03.wav", "s080", "11.wav"), ("s010", "00.wav", "s011", "19.wav"),
               ("s050", "05.wav", "s099", "05.wav"), ("s060", "07.wav", "s061", "08.wav"),
               ("s070", "12.wav", "s071", "13.wav")]
    for a, clip_a, b, clip_b in planted:
        by_submission[b]["sample"][clip_b] = by_submission[a]["sample"][clip_a]
    by_submission["s020"]["sample"]["02.wav"] = by_submission["s020"]["sample"]["01.wav"]  # within one: no pair
    start = time.perf_counter()
    pairs = find_audio_pairs(by_submission, workers=2)
    seconds = time.perf_counter() - start
    print(f"\nfingerprint of a {pool[0].seconds:.1f} s clip: {per_clip * 1000:.0f} ms; "
          f"100 x 20 clips compared in {seconds:.2f} s in 2 processes")
    assert sorted((p.submission_a, p.matches[0].clip_a, p.submission_b, p.matches[0].clip_b) for p in pairs) == planted
    assert all(len(p.matches) == 1 and p.score == 0.05 for p in pairs)
    assert seconds < 15.0 and per_clip < 1.0
