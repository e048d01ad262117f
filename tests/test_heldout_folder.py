"""A plain folder of audio as the held-out set: any names, formats, rates and channels are
converted to 16 kHz mono truth outside the sandbox, and a submission grades on it; folders
that cannot serve are refused with the files named and what to do."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from grader import cache
from grader.heldout import HeldoutError, clip_ids, load_heldout
from grader.pipeline import GradingSetup, grade_submission
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from grader.scoring import load_baseline
from reference import PROJECT_ROOT, SAMPLE_RATE
from reference.data import read_manifest
from reference.preprocess import load_audio
from tests.helpers import items, write_submission


def tone(seconds: float, sr: int, pitch: float) -> np.ndarray:
    """A quiet tone (samples,) of ``seconds`` at ``sr`` Hz."""
    return 0.2 * np.sin(2 * np.pi * pitch * np.arange(int(seconds * sr)) / sr)


def plain_folder(root, embedded):
    """The embedded held-out clips under odd names, as an instructor's recordings might come: a stereo WAV at
    22.05 kHz, a FLAC in a sub-folder, an OGG at 44.1 kHz; and a note beside them."""
    heldout = [c for c in read_manifest(embedded) if c.split == "heldout"]
    speech, melody = sorted(heldout, key=lambda clip: clip.cls == "piano")
    folder = root / "recordings from class"
    (folder / "week 2").mkdir(parents=True)
    wav = load_audio(speech.path, 22050)
    sf.write(folder / "Ada's take #1.wav", np.stack([wav, 0.8 * wav], axis=1), 22050)
    sf.write(folder / "week 2" / "bob (final).FLAC", load_audio(melody.path), SAMPLE_RATE, format="FLAC")
    sf.write(folder / "cyd.ogg", 0.5 * load_audio(speech.path, 44100), 44100, format="OGG", subtype="VORBIS")
    (folder / "notes.txt").write_text("recorded in room 4\n")
    return folder


@pytest.fixture(scope="module")
def embedded(small_data):
    """A small data set standing for the embedded one (probes and training clips of a plain held-out folder)."""
    return small_data


@pytest.fixture(scope="module")
def plain(tmp_path_factory, embedded):
    root = tmp_path_factory.mktemp("plain")
    return root, load_heldout(plain_folder(root, embedded), cache_root=root / "heldout", train_dir=embedded)


def test_a_plain_folder_becomes_16_khz_mono_truth_under_safe_ids(plain, embedded):
    root, heldout = plain
    assert [c.description for c in heldout.clips] == ["Ada's take #1.wav", "cyd.ogg", "week 2/bob (final).FLAC"]
    ids = [c.path.stem for c in heldout.clips]
    assert ids == ["Ada_s_take_1", "cyd", "week_2-bob_final"]
    for clip in heldout.clips:
        truth = heldout.truth(clip.path.stem)
        info = sf.info(str(truth))
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1) and info.duration >= 1.0
        assert truth.is_relative_to(heldout.folder) and not truth.is_relative_to(heldout.mel_dir)
    assert {p.name for p in heldout.mel_dir.iterdir()} == {"params.json", *(f"{i}.npy" for i in ids)}
    assert all(p.suffix == ".wav" for p in heldout.probe_dir.iterdir())
    assert all(c.path.is_relative_to(embedded) for c in heldout.probes + heldout.training)
    again = load_heldout(root / "recordings from class", cache_root=root / "heldout", train_dir=embedded)
    assert again.digest == heldout.digest


def test_a_plain_folder_grades(plain, tmp_path):
    root, heldout = plain
    baseline = load_baseline(heldout, jobs=1, cache_root=root / "baseline")
    setup = GradingSetup(rubric=load_rubric(DEFAULT_RUBRIC), heldout=heldout, load_baseline=lambda: baseline,
                         out_dir=tmp_path / "out")
    result = grade_submission(write_submission(tmp_path / "student"), setup)
    by_id = items(result)
    assert result.status == "graded"
    for item in ("samples-generation-runs", "preprocess-mfcc-run"):
        assert by_id[item].status == "passed", by_id[item].explanation
    assert by_id["model-quality"].points > 0, by_id["model-quality"].explanation
    assert [row["name"] for row in result.clip_metrics] == [c.path.stem for c in heldout.clips]


def test_a_plain_training_folder_gives_the_probes_and_the_novelty_index(tmp_path, embedded):
    train = tmp_path / "train"
    train.mkdir()
    for k in range(3):
        sf.write(train / f"train clip {k}.wav", tone(1.2, 16000, 150 + 30 * k), 16000)
    held = plain_folder(tmp_path, embedded)
    heldout = load_heldout(held, cache_root=tmp_path / "heldout", train_dir=train)
    assert [c.description for c in heldout.training] == [f"train clip {k}.wav" for k in range(3)]
    assert {p.name for p in heldout.probe_dir.iterdir()} == {f"train_clip_{k}.wav" for k in range(3)}
    assert heldout.novelty_index().embeddings.shape[0] == 6


def test_clip_ids_are_safe_and_unique():
    paths = ["Speaker 1/take #2.flac", "a b.wav", "a_b.flac", "A_B.ogg", ".hidden", "日本.wav", "-.wav", "x/../y.wav"]
    ids = clip_ids(paths)
    assert ids[0] == "Speaker_1-take_2"
    assert len({i.lower() for i in ids}) == len(ids)
    assert all(i and i[0].isalnum() and all(ch.isalnum() or ch in "_-" for ch in i) and i.isascii() for i in ids)


def refusal(folder, **kwargs) -> str:
    with pytest.raises(HeldoutError) as raised:
        load_heldout(folder, cache_root=folder.parent / "heldout", **kwargs)
    message = str(raised.value)
    assert "data build" not in message  # never "build the synthetic data set into your folder"
    return message


def test_an_empty_folder_is_refused_with_what_to_do(tmp_path, embedded):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("clips go here\n")
    message = refusal(tmp_path / "empty", train_dir=embedded)
    assert "no audio files" in message and "WAV, FLAC or OGG" in message and "1 other file" in message
    assert "no such folder" in refusal(tmp_path / "missing", train_dir=embedded)


def test_clips_shorter_than_a_second_are_refused_by_name(tmp_path, embedded):
    folder = tmp_path / "short"
    folder.mkdir()
    sf.write(folder / "blip one.wav", tone(0.4, 16000, 200), 16000)
    sf.write(folder / "blip two.flac", tone(0.9, 48000, 200), 48000, format="FLAC")
    message = refusal(folder, train_dir=embedded)
    assert "2 of its 2 audio file(s)" in message
    assert "blip one.wav: 0.40 s long, shorter than 1 s" in message and "blip two.flac: 0.90 s" in message
    assert "Re-export them" in message and "move them out of the folder" in message


def test_an_unreadable_file_is_refused_by_name(tmp_path, embedded):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    sf.write(folder / "good.wav", tone(1.5, 16000, 200), 16000)
    (folder / "broken take.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    message = refusal(folder, train_dir=embedded)
    assert "1 of its 2 audio file(s)" in message and "broken take.wav: not readable as audio" in message
    assert "good.wav" not in message and "Re-export it" in message


def test_a_missing_embedded_data_set_says_how_to_make_it(tmp_path, monkeypatch, embedded):
    monkeypatch.setattr("grader.heldout.DEFAULT_DATA", tmp_path / "not built")
    message = refusal(plain_folder(tmp_path, embedded))
    assert "make data" in message and "--train DIR" in message


def test_preparation_is_keyed_on_its_code(plain, monkeypatch, embedded):
    """A change to the code that prepares a held-out set (here grader/heldout.py, as if edited) gives a new set."""
    root, heldout = plain
    real = cache.file_digest
    edited = PROJECT_ROOT / "grader" / "heldout.py"
    monkeypatch.setattr(cache, "file_digest", lambda path: real(path) + ("-edited" if path == edited else ""))
    cache.code_digest.cache_clear()
    try:
        changed = load_heldout(root / "recordings from class", cache_root=root / "heldout", train_dir=embedded)
    finally:
        cache.code_digest.cache_clear()
    assert changed.digest != heldout.digest and changed.folder != heldout.folder
    assert (changed.folder / "ready").is_file()
