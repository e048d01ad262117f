"""The course data sets: the embedded default is deterministic, split by group, and well formed."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from reference import PROJECT_ROOT, SAMPLE_RATE
from reference import data
from reference.files import file_digest

SMALL = data.EmbeddedSpec(voices={"train": 2, "test": 1, "heldout": 1},
                          utterances_per_voice={"train": 2, "test": 1, "heldout": 1},
                          melodies={"train": 2, "test": 1, "heldout": 1})


def test_embedded_build_is_byte_identical_for_a_seed(tmp_path):
    first = data.build_embedded(tmp_path / "a", seed=3, spec=SMALL)
    second = data.build_embedded(tmp_path / "b", seed=3, spec=SMALL)
    assert len(first) == 2 * 2 + 1 + 1 + 2 + 1 + 1
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()
    for a, b in zip(first, second):
        assert a.path.read_bytes() == b.path.read_bytes()
    other = data.build_embedded(tmp_path / "c", seed=4, spec=SMALL)
    assert {c.sha256 for c in other}.isdisjoint({c.sha256 for c in first})


def test_embedded_default_is_well_formed(embedded_data):
    clips = data.read_manifest(embedded_data)
    assert {c.cls for c in clips} == {"human", "piano"}
    assert {c.split for c in clips} == set(data.SPLITS)
    groups = {split: {c.group for c in clips if c.split == split} for split in data.SPLITS}
    assert groups["train"].isdisjoint(groups["test"] | groups["heldout"])
    assert groups["test"].isdisjoint(groups["heldout"])
    heldout = [c for c in clips if c.split == "heldout"]
    assert len(heldout) == 12 and {c.cls for c in heldout} == {"human", "piano"}
    for clip in clips[::9]:
        info = sf.info(clip.path)
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
        assert 2.0 <= clip.duration <= 4.0
        assert clip.sha256 == file_digest(clip.path)
        wav, _ = sf.read(clip.path)
        assert np.sqrt(np.mean(wav**2)) > 0.02  # speech or music, not silence


@pytest.mark.fsdd
def test_real_recordings_make_speaker_disjoint_phone_numbers(fsdd_dir, tmp_path):
    clips = data.build_from_recordings(fsdd_dir, tmp_path / "real", per_speaker=4)
    splits = {c.split: set() for c in clips}
    for c in clips:
        splits[c.split].add(c.group)
    assert splits == {"train": {"speaker-george", "speaker-jackson"}, "test": {"speaker-nicolas"},
                      "heldout": {"speaker-theo"}}
    for clip in clips:
        assert 2.5 <= clip.duration <= 4.0
        digits = clip.description.split()[1]
        assert digits.isdigit() and 5 <= len(digits) <= 7
        assert sf.info(clip.path).samplerate == SAMPLE_RATE


def test_real_recordings_accept_any_rate_and_explain_bad_splits(tmp_path):
    source = tmp_path / "rec"
    source.mkdir()
    rng = np.random.default_rng(0)
    for speaker, sr in [("ann", 8000), ("bob", 44100), ("cy", 22050)]:
        for digit in range(10):
            sf.write(source / f"{digit}_{speaker}_0.wav", 0.3 * rng.standard_normal(int(0.45 * sr)), sr)
    (source / "readme_notes.wav").write_bytes(b"")  # not FSDD-named: skipped with a note
    clips = data.build_from_recordings(source, tmp_path / "out", per_speaker=2)
    assert {c.split: c.group for c in clips} == {"train": "speaker-ann", "test": "speaker-bob", "heldout": "speaker-cy"}
    with pytest.raises(data.DataBuildError, match="both test and held out"):
        data.build_from_recordings(source, tmp_path / "bad", heldout_speakers=["ann"], test_speakers=["ann"])
    with pytest.raises(data.DataBuildError, match="not in the folder"):
        data.build_from_recordings(source, tmp_path / "bad", heldout_speakers=["zed"])


def test_missing_manifest_says_how_to_build(tmp_path):
    with pytest.raises(data.DataBuildError, match="python -m reference data build"):
        data.read_manifest(tmp_path)


def test_data_command_prints_a_summary(embedded_data):
    result = subprocess.run([sys.executable, "-m", "reference", "data", "summary", str(embedded_data)],
                            capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert "heldout" in result.stdout and "piano" in result.stdout and "human" in result.stdout
