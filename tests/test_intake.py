"""Intake against real zip files, well-formed and hostile (patched byte by byte where zipfile will not write them)."""
from __future__ import annotations

import os
import random
import stat
import zipfile
from pathlib import Path

import pytest

from grader.folders import remove_tree
from grader.identity import attempt_id, attempt_of, identify
from grader.intake import IntakeRefused, submission_id, unpack
from grader.limits import IntakeLimits


def make_zip(path: Path, members: dict[str, bytes | str], *, compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def with_mode(name: str, mode: int) -> zipfile.ZipInfo:
    """A member made on Unix with the given file type and permission bits."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def refused(source: Path, work_dir: Path, limits: IntakeLimits | None = None) -> IntakeRefused:
    with pytest.raises(IntakeRefused) as caught:
        unpack(source, work_dir, limits)
    assert not work_dir.exists()  # nothing is left behind
    assert caught.value.reason and source.name in str(caught.value)
    return caught.value


def patch_flag_bits(path: Path, bit: int) -> None:
    """Set a general-purpose flag bit in every local and central header (zipfile cannot write encrypted)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            flags = int.from_bytes(data[start + offset:start + offset + 2], "little") | bit
            data[start + offset:start + offset + 2] = flags.to_bytes(2, "little")
            start += 4
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- what is kept

def test_unpacks_strips_the_top_folder_and_skips_clutter(tmp_path):
    source = make_zip(tmp_path / "doe_12345_67890_hw3.zip", {
        "hw3/": "",
        "hw3/preprocess.py": "def extract_mfcc(path): ...\n",
        "hw3/samples/1.wav": b"RIFF0000WAVE",
        "hw3/.DS_Store": b"\0",
        "hw3/__pycache__/preprocess.cpython-311.pyc": b"\0",
        "hw3/.ipynb_checkpoints/model-checkpoint.ipynb": "{}",
        "__MACOSX/hw3/._preprocess.py": b"\0",
    })
    submission = unpack(source, tmp_path / "work")
    assert submission.id == "doe_12345"
    assert submission.files == ["preprocess.py", "samples/1.wav"]
    assert submission.stripped_folder == "hw3"
    assert len(submission.ignored) == 4
    assert (tmp_path / "work" / "samples" / "1.wav").read_bytes() == b"RIFF0000WAVE"
    assert submission.unpacked_bytes == len("def extract_mfcc(path): ...\n") + 12


def test_no_top_folder_is_stripped_when_files_sit_at_the_root(tmp_path):
    source = make_zip(tmp_path / "s.zip", {"generate.py": "", "src/model.py": ""})
    submission = unpack(source, tmp_path / "work")
    assert submission.stripped_folder is None
    assert submission.files == ["generate.py", "src/model.py"]


def test_nested_archives_stay_files(tmp_path):
    inner = make_zip(tmp_path / "inner.zip", {"secret.py": "x = 1"}).read_bytes()
    source = make_zip(tmp_path / "outer.zip", {"data/inner.zip": inner, "main.py": ""})
    submission = unpack(source, tmp_path / "work")
    assert submission.files == ["data/inner.zip", "main.py"]
    assert (tmp_path / "work" / "data" / "inner.zip").read_bytes() == inner


def test_names_with_spaces_and_names_that_are_not_utf8_are_kept(tmp_path):
    source = tmp_path / "names.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("my model.py", "a")
        archive.writestr("r\u00e9sum\u00e9 utf8.txt", "b")  # stored as UTF-8 with the flag
        archive.writestr("rXsumX.txt", "c")
    # a Windows tool's Latin-1 name: bytes that are not UTF-8, and no UTF-8 flag (zipfile never writes that)
    source.write_bytes(source.read_bytes().replace(b"rXsumX.txt", b"r\xe9sum\xe9.txt"))
    submission = unpack(source, tmp_path / "work")
    assert submission.files == sorted(["my model.py", "r\u00e9sum\u00e9 utf8.txt", "r\u0398sum\u0398.txt"])
    assert (tmp_path / "work" / "my model.py").read_text() == "a"
    assert len(submission.notes) == 1 and "not UTF-8" in submission.notes[0]


def test_only_the_executable_bit_survives(tmp_path):
    source = tmp_path / "modes.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr(with_mode("run.sh", stat.S_IFREG | stat.S_ISUID | 0o777), "#!/bin/sh\n")
        archive.writestr(with_mode("data.txt", stat.S_IFREG | 0o666), "x")
    unpack(source, tmp_path / "work")
    assert stat.S_IMODE((tmp_path / "work" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "work" / "data.txt").stat().st_mode) == 0o644


def test_a_folder_is_copied_like_an_archive(tmp_path):
    folder = tmp_path / "ada-hw3"
    (folder / "hw3" / "__pycache__").mkdir(parents=True)
    (folder / "hw3" / "generate.py").write_text("print()")
    (folder / "hw3" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    submission = unpack(folder, tmp_path / "work")
    assert submission.id == "ada-hw3"
    assert submission.files == ["generate.py"] and submission.stripped_folder == "hw3"


@pytest.mark.parametrize("file_name, expected", [
    ("doe_12345_67890_hw3.zip", "doe_12345"),  # Canvas
    ("doejane_LATE_12345_67890_my hw3 (1).zip", "doejane_12345"),  # Canvas, late
    ("Ada Lovelace_1234567_assignsubmission_file_hw3.zip", "Ada-Lovelace_1234567"),  # Moodle
    ("HW3 Audio_jdoe_attempt_2024-05-01-10-00-00_hw3.zip", "jdoe"),  # Blackboard
    ("my submission (final).zip", "my-submission-final"),
    ("../../etc/passwd.zip", "passwd"),
    ("....zip", "submission"),
])
def test_submission_id_keeps_the_student_part(file_name, expected):
    assert submission_id(file_name) == expected


@pytest.mark.parametrize("file_name, lms, user_id, name, late", [
    ("mallory_424242_999_hw3.zip", "canvas", "424242", "mallory", False),
    ("doejane_LATE_12345_67890_my hw3 (1).zip", "canvas", "12345", "doejane", True),
    ("submissions/doe_12345_67890_hw3", "canvas", "12345", "doe", False),  # an unpacked folder
    ("Ada Lovelace_1234567_assignsubmission_file_hw3.ZIP", "moodle", "1234567", "Ada Lovelace", False),
    ("HW3 Audio_jdoe_attempt_2024-05-01-10-00-00_hw3.zip", "blackboard", "jdoe", "", False),
    ("mallory_hw3.zip", None, "", "", False),
    ("my submission (final).zip", None, "", "", False),
])
def test_the_identity_is_read_from_the_lms_file_name(file_name, lms, user_id, name, late):
    identity = identify(file_name)
    assert (identity.lms, identity.user_id, identity.name, identity.late) == (lms, user_id, name, late)
    assert identity.matched == (lms is not None)


def test_an_attempt_id_is_marked_with_what_no_file_name_gives():
    assert submission_id("doe~2_12345_67890_hw3.zip") == "doe-2_12345"  # "~" never comes from a file name
    assert [attempt_id("doe_12345", n) for n in (1, 2, 10)] == ["doe_12345", "doe_12345~2", "doe_12345~10"]
    assert [attempt_of(attempt_id("doe_12345", n)) for n in (1, 2, 10)] == [1, 2, 10]
    with pytest.raises(ValueError, match="from 1"):
        attempt_id("doe_12345", 0)


# --------------------------------------------------------------------------- what is refused

@pytest.mark.parametrize("name", ["../evil.py", "hw3/../../evil.py", "..\\evil.py", "/etc/cron.d/evil",
                                  "C:\\Users\\evil.py", "C:evil.py"])
def test_entries_escaping_the_folder_are_refused(tmp_path, name):
    source = make_zip(tmp_path / "escape.zip", {"ok.py": "", name: "owned"})
    assert refused(source, tmp_path / "work").code == "path_escape"
    assert not (tmp_path / "evil.py").exists() and not list(tmp_path.rglob("evil*"))


@pytest.mark.parametrize("kind, code", [
    (stat.S_IFLNK, "link"), (stat.S_IFCHR, "special_file"), (stat.S_IFBLK, "special_file"),
    (stat.S_IFIFO, "special_file"), (stat.S_IFSOCK, "special_file"),
])
def test_links_and_device_files_are_refused(tmp_path, kind, code):
    source = tmp_path / "special.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("ok.py", "")
        archive.writestr(with_mode("thing", kind | 0o777), "/etc/passwd")
    assert refused(source, tmp_path / "work").code == code


def test_links_in_a_folder_are_refused(tmp_path):
    folder = tmp_path / "hw"
    folder.mkdir()
    (folder / "ok.py").write_text("")
    (folder / "key").symlink_to("/etc/passwd")
    assert refused(folder, tmp_path / "work").code == "link"


def test_a_fifo_in_a_folder_is_refused(tmp_path):
    folder = tmp_path / "hw"
    folder.mkdir()
    os.mkfifo(folder / "pipe")
    assert refused(folder, tmp_path / "work").code == "special_file"


@pytest.mark.parametrize("as_folder", [False, True])
def test_more_entries_than_the_limit_are_refused(tmp_path, as_folder):
    members = {f"f{i}.txt": "" for i in range(11)}
    if as_folder:
        source = tmp_path / "many"
        source.mkdir()
        for name in members:
            (source / name).write_text("")
    else:
        source = make_zip(tmp_path / "many.zip", members)
    problem = refused(source, tmp_path / "work", IntakeLimits(max_entries=10))
    assert problem.code == "too_many_entries" and "11" in problem.reason


def test_a_zip_bomb_is_refused(tmp_path):
    source = make_zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * 20_000_000})
    assert source.stat().st_size < 100_000
    problem = refused(source, tmp_path / "work", IntakeLimits(max_unpacked_bytes=1_000_000))
    assert problem.code == "too_large"


def test_sizes_are_counted_while_decompressing_not_only_from_the_headers(tmp_path):
    """Many members, each under the limit, that only together exceed it: stopped mid-way."""
    source = make_zip(tmp_path / "parts.zip", {f"part{i}.bin": b"\0" * 400_000 for i in range(5)})
    problem = refused(source, tmp_path / "work", IntakeLimits(max_unpacked_bytes=1_000_000))
    assert problem.code == "too_large"


def test_a_lying_size_header_cannot_smuggle_a_bomb(tmp_path):
    """The central directory claims 10 bytes for a 10 MB member: nothing past 10 bytes is written."""
    source = make_zip(tmp_path / "liar.zip", {"zeros.bin": b"\0" * 10_000_000})
    data = bytearray(source.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")  # uncompressed size
    source.write_bytes(bytes(data))
    assert refused(source, tmp_path / "work", IntakeLimits(max_unpacked_bytes=1_000_000)).code == "corrupt"


def test_encrypted_entries_are_refused(tmp_path):
    source = make_zip(tmp_path / "locked.zip", {"answers.toml": "q1 = 'a'"})
    patch_flag_bits(source, 0x1)
    assert refused(source, tmp_path / "work").code == "encrypted"


def test_truncated_and_corrupt_archives_are_refused(tmp_path):
    whole = make_zip(tmp_path / "whole.zip", {"model.py": "x = 1\n" * 10_000})
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    problem = refused(truncated, tmp_path / "work1")
    assert problem.code == "corrupt" and "truncated" in problem.reason

    data = bytearray(whole.read_bytes())
    data[60:70] = b"\xff" * 10  # inside the compressed data
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    assert refused(damaged, tmp_path / "work2").code == "corrupt"


@pytest.mark.parametrize("content, hint", [
    (b"just some text, renamed to .zip", ""),
    (b"\x1f\x8b\x08\x00" + b"\0" * 100, "gzip"),
    (b"Rar!\x1a\x07\x00" + b"\0" * 100, "RAR"),
    (b"", "empty"),
])
def test_files_that_are_not_zips_are_refused(tmp_path, content, hint):
    source = tmp_path / "upload.zip"
    source.write_bytes(content)
    problem = refused(source, tmp_path / "work")
    assert problem.code == "not_a_zip" and hint in problem.reason


@pytest.mark.parametrize("members", [{}, {"__MACOSX/._a": b"\0", "hw/.DS_Store": b"\0"}, {"hw/": "", "hw/sub/": ""}])
def test_empty_archives_are_refused(tmp_path, members):
    source = make_zip(tmp_path / "empty.zip", members)
    assert refused(source, tmp_path / "work").code == "empty"


def test_a_name_twice_is_refused(tmp_path):
    source = tmp_path / "twice.zip"
    with zipfile.ZipFile(source, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("model.py", "first")
        archive.writestr("model.py", "second")
    assert refused(source, tmp_path / "work").code == "name_clash"


def test_a_work_folder_in_use_is_not_overwritten(tmp_path):
    source = make_zip(tmp_path / "s.zip", {"a.py": ""})
    work = tmp_path / "work"
    work.mkdir()
    (work / "results.json").write_text("{}")
    with pytest.raises(FileExistsError):
        unpack(source, work)
    assert (work / "results.json").read_text() == "{}"


def test_a_name_too_long_for_the_file_system_is_refused(tmp_path):
    source = make_zip(tmp_path / "long.zip", {"ok.py": "", "x" * 300 + ".py": ""})
    assert refused(source, tmp_path / "work").code == "bad_name"


def test_random_damage_ends_in_a_refusal_or_an_unpack_never_a_crash(tmp_path):
    source = make_zip(tmp_path / "good.zip", {f"hw/f{i}.py": "x = 1\n" * 200 for i in range(5)})
    original = source.read_bytes()
    central = original.find(b"PK\x01\x02")
    rng = random.Random(5)
    outcomes = set()
    for trial in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):  # mostly in the central directory, where the parsing is
            position = rng.randrange(central, len(data)) if rng.random() < 0.7 else rng.randrange(len(data))
            data[position] = rng.randrange(256)
        damaged = tmp_path / f"damaged{trial}.zip"
        damaged.write_bytes(bytes(data))
        try:
            unpack(damaged, tmp_path / f"work{trial}")
            outcomes.add("unpacked")
        except IntakeRefused as refusal:
            outcomes.add(refusal.code)
    assert "unpacked" in outcomes and "corrupt" in outcomes


@pytest.mark.parametrize("as_folder", [False, True])
def test_a_tree_deeper_than_the_limit_is_refused_before_anything_walks_it(tmp_path, as_folder):
    if as_folder:  # 2,000 folders, past PATH_MAX: made through descriptors, as a student's program could
        source = tmp_path / "hw"
        source.mkdir()
        from tests.helpers import deep_tree

        deep_tree(source, 2000)
    else:  # an 8 kB zip
        source = make_zip(tmp_path / "deep.zip", {"/".join(["a"] * 2000) + "/f.txt": "x", "generate.py": ""})
    refusal = refused(source, tmp_path / "work")
    remove_tree(source)  # before pytest's own clean-up, which recurses
    assert refusal.code == "too_deep" and "more than the limit of 32" in refusal.reason
    shallow = make_zip(tmp_path / "ok.zip", {"/".join(["a"] * 32) + "/f.txt": "x"})
    assert unpack(shallow, tmp_path / "ok").files == ["/".join(["a"] * 31) + "/f.txt"]  # the top folder is stripped
