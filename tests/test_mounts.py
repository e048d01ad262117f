"""Instructor folders mounted into the sandbox never hold a held-out clip (grader/mounts.py).

A small embedded data set is built (real speech and piano clips); mount folders are made of
its clips, copied, resampled and re-encoded, as an instructor's course folder might be.
"""
import shutil

import pytest
import soundfile as sf

import grader.mounts
from grader.mounts import MountError, MountHoldsHeldout, check_mounts
from reference.preprocess import load_audio


@pytest.fixture(scope="module")
def heldout(small_heldout):
    return small_heldout


def course_folder(folder, heldout):
    """What an instructor mounts for training cells: the training and test clips, renamed, in a subfolder, with
    a README and a file that only looks like audio."""
    (folder / "speech").mkdir(parents=True)
    for number, clip in enumerate(heldout.training):
        shutil.copyfile(clip.path, folder / "speech" / f"take_{number:02d}.wav")
    for clip in heldout.probes:
        shutil.copyfile(clip.path, folder / clip.path.name)
    (folder / "README.txt").write_text("Course recordings for the training cells.\n")
    (folder / "broken.wav").write_bytes(b"RIFF" + b"\0" * 100)
    return folder


def test_a_folder_of_training_clips_is_accepted(tmp_path, heldout):
    folder = course_folder(tmp_path / "course", heldout)
    assert check_mounts({"/content/data": folder}, heldout, cache_root=tmp_path / "cache") == []


def test_a_heldout_clip_copied_byte_for_byte_is_refused_with_the_file_named(tmp_path, heldout):
    folder = course_folder(tmp_path / "course", heldout)
    clip = heldout.clips[0].path
    shutil.copyfile(clip, folder / "speech" / "take_99.wav")
    with pytest.raises(MountHoldsHeldout) as refusal:
        check_mounts([("/content/data", folder)], heldout, cache_root=tmp_path / "cache")
    assert str(refusal.value) == (
        f"mount /content/data ({folder}) holds speech/take_99.wav, a copy of held-out clip {clip.name} "
        f"(correlation 1.00). Student code would read the audio it is graded on: remove this file from the mounted "
        f"folder, or mount another folder.")


def test_a_heldout_clip_resampled_to_22050_hz_as_flac_is_refused(tmp_path, heldout):
    folder = course_folder(tmp_path / "course", heldout)
    clip = heldout.clips[-1].path
    sf.write(folder / "speech" / "extra.flac", load_audio(clip, 22_050), 22_050, format="FLAC")
    expected = (rf"^mount /data \({folder}\) holds speech/extra.flac, a copy of held-out clip {clip.name} "
                rf"\(correlation (?:0.9\d|1.00)\)\. .*remove this file")
    with pytest.raises(MountHoldsHeldout, match=expected):
        check_mounts({"/data": folder}, heldout, cache_root=tmp_path / "cache")


def test_a_mounted_file_is_checked_too(tmp_path, heldout):
    clip = heldout.clips[0].path
    with pytest.raises(MountHoldsHeldout, match=rf"^mount /content/voice.wav \({clip}\) holds {clip.name}, a copy"):
        check_mounts({"/content/voice.wav": clip}, heldout, cache_root=tmp_path / "cache")
    assert check_mounts({"/content/voice.wav": heldout.training[0].path}, heldout, cache_root=tmp_path / "cache") == []


def test_mounting_the_whole_data_set_names_every_heldout_clip(tmp_path, heldout):
    data = heldout.clips[0].path.parents[1]
    with pytest.raises(MountHoldsHeldout) as refusal:
        check_mounts({"/data": data}, heldout, cache_root=tmp_path / "cache")
    message = str(refusal.value)
    assert all(f"holds heldout/{clip.path.name}, a copy of held-out clip {clip.path.name}" in message
               for clip in heldout.clips)
    assert message.count("a copy of held-out clip") == len(heldout.clips) and "remove these files" in message


def test_verdicts_are_cached_by_content(tmp_path, heldout, monkeypatch):
    """A second check decodes nothing: not the clean files, nor the copy (refused again from the cache)."""
    folder = course_folder(tmp_path / "course", heldout)
    shutil.copyfile(heldout.clips[0].path, folder / "copy.wav")
    for _ in range(2):
        with pytest.raises(MountHoldsHeldout, match="holds copy.wav, a copy of held-out clip"):
            check_mounts({"/data": folder}, heldout, cache_root=tmp_path / "cache")
        monkeypatch.setattr(grader.mounts, "_verdict", lambda *args: pytest.fail("decoded again"))
    (folder / "copy.wav").unlink()
    assert check_mounts({"/data": folder}, heldout, cache_root=tmp_path / "cache") == []


def test_files_past_the_bounds_are_noted_and_a_folder_too_large_is_refused(tmp_path, heldout, monkeypatch):
    folder = course_folder(tmp_path / "course", heldout)
    large = max(folder.rglob("*.wav"), key=lambda path: path.stat().st_size)
    size = large.stat().st_size
    monkeypatch.setattr(grader.mounts, "MAX_MOUNT_FILE_BYTES", size - 1)
    notes = check_mounts({"/data": folder}, heldout, cache_root=tmp_path / "cache")
    assert notes == [f"mount /data: {large.relative_to(folder)} was not checked for held-out clips "
                     f"({size / 1000:.3g} kB, over {(size - 1) / 1000:.3g} kB)"]
    monkeypatch.setattr(grader.mounts, "MAX_MOUNT_FILES", 3)
    with pytest.raises(MountError, match=r"^mount /data: .* holds more than 3 files, more than the grader checks"):
        check_mounts({"/data": folder}, heldout, cache_root=tmp_path / "cache")
    with pytest.raises(MountError, match=r"^mount /data: .*missing does not exist"):
        check_mounts({"/data": tmp_path / "missing"}, heldout, cache_root=tmp_path / "cache")
