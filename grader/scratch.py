"""A submission's scratch space: its unpacked files and a work folder per run, all removed afterwards.

Student code writes only in its run's work folder, and what it leaves there is hostile:
a tree thousands of folders deep, fifty thousand empty files, blocks held by
``fallocate`` that no file size shows. So:

- where the grader is root, each run's work folder is a tmpfs of its own, limited to what
  the submission's copy uses plus the run's ``disk_bytes`` and ``disk_inodes``
  (:class:`grader.limits.RunLimits`): the kernel refuses a write past either with ENOSPC,
  and the sandbox reads the file system's own counts to name the verdict. Removing such
  a folder is unmounting it. Its pages are memory, charged to whoever wrote them (the
  run's memory cgroup for what student code writes), and freed at the unmount;
- elsewhere (no root, or a container that forbids mounts) it is a plain folder, and the
  sandbox polls its allocated blocks and entries instead (:mod:`grader.sandbox.workdir`);
- everything is removed without recursion (:func:`grader.folders.remove_tree`), and a
  scratch folder or mount left by a grader that was killed is removed by the next one.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

from grader.folders import remove_tree
from grader.limits import RunLimits

PREFIX = "grader-scratch-"
"""Scratch folders are ``$TMPDIR/grader-scratch-<pid namespace>-<pid>-<label>-<random>``: the namespace and pid tell
the sweep whose they are (graders in other PID namespaces, containers sharing one ``/tmp``, are left alone)."""
GRADER_ROOM_BYTES, GRADER_ROOM_INODES = 32 * 2**20, 64
"""Room a run folder keeps beyond the copy and the run's allowance for what the grader itself writes there before
the run (the output folder, mount points, a notebook prepared for the run: at most 20 MB), so that none of it is
taken from the student's ``disk_bytes`` and ``disk_inodes``."""

_MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MNT_DETACH = 2, 4, 32, 2
_PAGE = os.sysconf("SC_PAGE_SIZE")


class Scratch:
    """One submission's private scratch folder (mode 0700); :meth:`close` removes it and every run folder.

    Use as a context manager, or call :meth:`close` (which never raises) yourself.
    """

    def __init__(self, label: str):
        _sweep_once(Path(tempfile.gettempdir()))
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{_pid_namespace()}-{os.getpid()}-{label[:40]}-"))
        self.submission = self.path / "submission"
        """Where the submission is unpacked (mode 0700: where student code runs as a separate uid, the scratch
        folder above is searchable by other users, so that runs reach their work folders by path)."""
        self.submission.mkdir(mode=0o700)
        self.mounts: list[Path] = []

    def run_folder(self, name: str, copy_of: Path, limits: RunLimits) -> Path:
        """A new work folder ``name`` holding a copy of the folder ``copy_of``, bounded by ``limits``.

        As root it is a tmpfs with room for the copy plus ``disk_bytes`` and ``disk_inodes``
        (rounded up to whole pages); elsewhere a plain folder.
        """
        folder = self.path / name
        folder.mkdir(mode=0o700)
        used_bytes, entries = _usage(copy_of)
        mounted = os.geteuid() == 0 and _mount_tmpfs(folder, used_bytes + limits.disk_bytes + GRADER_ROOM_BYTES,
                                                     entries + limits.disk_inodes + GRADER_ROOM_INODES)
        if mounted:
            self.mounts.append(folder)
        shutil.copytree(copy_of, folder, symlinks=True, dirs_exist_ok=True)  # intake bounds the copy's depth
        if mounted:  # exactly the copy's own use, the run's allowance and the grader's room
            state = os.statvfs(folder)
            _remount_tmpfs(folder, (state.f_blocks - state.f_bfree) * state.f_frsize + limits.disk_bytes
                           + GRADER_ROOM_BYTES, state.f_files - state.f_ffree + limits.disk_inodes + GRADER_ROOM_INODES)
        return folder

    def close(self) -> str | None:
        """Unmount every run folder and remove the scratch folder; never raises.

        Returns:
            None, or what could not be removed, in words (for the result's message).
        """
        for mount in reversed(self.mounts):
            _unmount(mount)
        self.mounts.clear()
        try:
            remove_tree(self.path)
        except OSError as error:
            return f"the grader could not remove its scratch folder {self.path} ({error})"
        return None

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _usage(folder: Path) -> tuple[int, int]:
    """Bytes a copy of ``folder`` takes on a tmpfs (whole pages) and its entries, the folder itself included."""
    size, entries = 0, 1
    pending = [folder]
    while pending:
        for entry in os.scandir(pending.pop()):
            entries += 1
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                size += -(-entry.stat(follow_symlinks=False).st_size // _PAGE) * _PAGE
    return size, entries


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def _tmpfs_options(size_bytes: int, inodes: int) -> bytes:
    pages = max(1, -(-size_bytes // _PAGE))
    return f"size={pages * _PAGE},nr_inodes={max(1, inodes)},mode=0700".encode()


def _mount_tmpfs(folder: Path, size_bytes: int, inodes: int) -> bool:
    """Mount a tmpfs of ``size_bytes`` and ``inodes`` on ``folder``; False where the kernel says no."""
    flags = _MS_NOSUID | _MS_NODEV
    return _libc().mount(b"grader-run", os.fsencode(folder), b"tmpfs", flags, _tmpfs_options(size_bytes, inodes)) == 0


def _remount_tmpfs(folder: Path, size_bytes: int, inodes: int) -> None:
    flags = _MS_REMOUNT | _MS_NOSUID | _MS_NODEV
    if _libc().mount(b"grader-run", os.fsencode(folder), b"tmpfs", flags, _tmpfs_options(size_bytes, inodes)):
        number = ctypes.get_errno()
        raise OSError(number, f"cannot set the work folder's limits ({os.strerror(number)})", str(folder))


def _unmount(folder: Path) -> None:
    """Detach the mount on ``folder`` (its files go with it); nothing happens where none is."""
    _libc().umount2(os.fsencode(folder), _MNT_DETACH)


@functools.cache
def _sweep_once(temporary: Path) -> None:
    """Remove the scratch folders (and their mounts) of graders that are gone, once per process."""
    dead = [folder for folder in temporary.glob(f"{PREFIX}*") if not _owner_alive(folder.name)]
    if not dead:
        return
    for mount in _mount_points():
        if any(mount.is_relative_to(folder) for folder in dead):
            _unmount(mount)
    for folder in dead:
        try:
            remove_tree(folder)
        except OSError:
            pass  # another grader's sweep, or something the next sweep will see again


def _owner_alive(name: str) -> bool:
    """Whether the grader that made the scratch folder ``name`` may still run (when in doubt: yes)."""
    namespace, pid, *_ = name[len(PREFIX):].split("-") + ["", ""]
    if namespace != str(_pid_namespace()) or not pid.isdigit():
        return True  # another PID namespace's, or not ours to judge
    return Path(f"/proc/{pid}").exists()


@functools.cache
def _pid_namespace() -> int:
    """This process's PID namespace (its inode number): pids mean something only within one."""
    return os.stat("/proc/self/ns/pid").st_ino


def _mount_points() -> list[Path]:
    """Mount points of this mount namespace, deepest first (``/proc/self/mountinfo``, octal escapes decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_bytes().splitlines():
        field = re.sub(rb"\\([0-7]{3})", lambda escape: bytes([int(escape[1], 8)]), line.split(b" ")[4])
        points.append(Path(os.fsdecode(field)))
    return sorted(points, key=lambda point: len(point.parts), reverse=True)
