"""Scratch space and hostile trees: removal without recursion, run folders bounded by the file system,
and the sweep of what a killed grader left."""
from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grader.folders import remove_tree, walk_files
from grader.limits import RunLimits
from grader.scratch import GRADER_ROOM_BYTES, GRADER_ROOM_INODES, PREFIX, Scratch
from tests.helpers import deep_tree

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="run folders are tmpfs mounts only where the grader is root")


def test_a_tree_deeper_than_the_recursion_limit_and_path_max_is_removed(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    deep_tree(root, 3000)
    with pytest.raises(RecursionError):  # what the grader used before, on the same kind of tree
        import shutil
        shutil.rmtree(root)
    remove_tree(root)
    assert not root.exists()


def test_removal_follows_no_link_and_opens_closed_folders(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    root = tmp_path / "run"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "file").write_text("x")
    (root / "a" / "link").symlink_to(outside)
    (root / "a" / "b").chmod(0)
    (root / "a").chmod(0o500)
    assert {path.name for path, _ in walk_files(root)} <= {"file"}  # never keep.txt, through the link
    remove_tree(root)
    assert not root.exists() and (outside / "keep.txt").read_text() == "mine"
    remove_tree(root)  # a missing tree is fine


@as_root
def test_a_run_folder_is_a_file_system_of_its_own_bounded_in_blocks_and_inodes(tmp_path):
    source = tmp_path / "submission"
    source.mkdir()
    (source / "generate.py").write_text("print(1)\n" * 1000)
    limits = RunLimits(disk_bytes=8 * 2**20, disk_inodes=100)
    with Scratch("bounded") as scratch:
        folder = scratch.run_folder("run-01", source, limits)
        assert os.path.ismount(folder) and (folder / "generate.py").read_text() == (source / "generate.py").read_text()
        libc = ctypes.CDLL(None, use_errno=True)
        held = os.open(folder / "held", os.O_CREAT | os.O_WRONLY)
        keep_size = 1  # FALLOC_FL_KEEP_SIZE: blocks that no file size shows
        room = 8 * 2**20 + GRADER_ROOM_BYTES
        assert libc.fallocate(held, keep_size, ctypes.c_long(0), ctypes.c_long(room + 2**20)) == -1
        assert ctypes.get_errno() == errno.ENOSPC
        assert libc.fallocate(held, keep_size, ctypes.c_long(0), ctypes.c_long(room - 2**20)) == 0
        os.close(held)
        made = 0
        with pytest.raises(OSError) as no_inodes:
            for made in range(2000):
                (folder / f"empty-{made}").touch()
        assert no_inodes.value.errno == errno.ENOSPC and 90 <= made - GRADER_ROOM_INODES <= 100
        path = scratch.path
    assert not path.exists() and not os.path.ismount(folder)


def test_a_scratch_folder_left_by_a_killed_grader_is_removed_by_the_next(tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    code = ("import os, tempfile; from grader.scratch import Scratch; from tests.helpers import deep_tree\n"
            "from grader.limits import RunLimits; from pathlib import Path\n"
            "scratch = Scratch('killed'); source = scratch.submission\n"
            "folder = scratch.run_folder('run-01', source, RunLimits())\n"
            "deep_tree(folder, 1500); os._exit(9)\n")
    environment = {**os.environ, "TMPDIR": str(temporary)}
    ran = subprocess.run([sys.executable, "-c", code], env=environment, cwd=Path(__file__).parents[1])
    assert ran.returncode == 9
    left = list(temporary.glob(f"{PREFIX}*"))
    assert len(left) == 1
    code = "from grader.scratch import Scratch\nScratch('next').close()\n"
    subprocess.run([sys.executable, "-c", code], env=environment, cwd=Path(__file__).parents[1], check=True)
    assert not list(temporary.glob(f"{PREFIX}*"))
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(temporary) not in mounts


def test_scratch_folders_live_in_the_temporary_folder_and_name_their_grader():
    with Scratch("x") as scratch:
        assert scratch.path.parent == Path(tempfile.gettempdir())
        assert scratch.path.name.startswith(f"{PREFIX}{os.stat('/proc/self/ns/pid').st_ino}-{os.getpid()}-x-")
        assert scratch.path.stat().st_mode & 0o777 == 0o700
