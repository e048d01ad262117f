"""A run's work folder seen from the host: mount points made in it, handed to the sandbox user, its disk use
measured. Student code controls the folder, so nothing here recurses or follows a link.

The work folder's disk use is counted in allocated blocks (``st_blocks``: what
``fallocate`` holds or a sparse file takes, not ``st_size``) and in entries (inodes), and
only what the run adds counts (``disk_bytes``, ``disk_inodes``). Where the work folder is a
file system of its own (the root grader's size- and inode-limited tmpfs), the kernel
refuses a write past the limit (ENOSPC) and :func:`os.statvfs` reads its use in one call; a
run that fills it gets the disk verdict even if it then exits with a code of its own (an
``fallocate`` larger than the room left fails at once and fills nothing: the program's
own error stands).
Elsewhere (a plain folder) the grader walks it every
:data:`~grader.sandbox.supervise.DISK_POLL_SECONDS` (0.1 s) and
stops the run past a limit. A walk costs 2-5 µs per entry (an ``lstat`` each; 5-25 ms for
a folder of 5,000 files on this project's 2-core CI machine, some 80 ms at the default
``disk_inodes`` plus a large submission) and stops early past a limit, so a run that fills
its folder with files costs the grader up to most of a core while it runs; the tmpfs of a
root grader costs one ``statvfs`` a poll. A run can thus overshoot by what it writes
between two polls (about 150 MB in 0.1 s at page-cache speed there) and by any amount in
one ``fallocate`` call (10 GB took 20 ms): those blocks are held until the next poll kills
the run and its folder is removed. Only the tmpfs bounds that. The polling walk cannot
see into a folder that student code made unreadable when the grader is not root, and a
run that keeps moving its folders can cut a poll short; the count after the run is whole.
"""
from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from grader.limits import RunLimits
from grader.sandbox.inside import WORKDIR_INSIDE, mount_target
from grader.sandbox.types import SandboxSetupError

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""How a folder of the work folder is opened: never through a link."""


def make_mount_points(workdir: Path, mounts: Mapping[str, Path], sandboxed: bool) -> None:
    """Make the places of ``mounts`` that lie in the work folder: under bubblewrap (``sandboxed``) a folder (or an
    empty file) to mount on, unsandboxed a link to the host folder. Folders on the way are made as needed; nothing
    is followed.

    Raises:
        SandboxSetupError: the submission has a file or link where a folder must be, or (unsandboxed) the mount
            point is outside the work folder, where only bubblewrap can put it.
    """
    for inside, host in mounts.items():
        target = mount_target(inside)
        if not target.is_relative_to(WORKDIR_INSIDE):
            if not sandboxed:
                raise SandboxSetupError(f"mount {inside!r}: without bubblewrap, folders can be shown only inside the "
                                        "submission; install bubblewrap to run this")
            continue
        *parents, last = target.relative_to(WORKDIR_INSIDE).parts
        fd = os.open(workdir, FOLDER_FLAGS)
        try:
            for part in parents:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, FOLDER_FLAGS, dir_fd=fd)
                except OSError:
                    raise SandboxSetupError(f"mount {inside!r}: the submission has a file or link at {part!r} where "
                                            "the mount needs a folder; rename it") from None
                os.close(fd)
                fd = child
            try:
                if not sandboxed:
                    os.symlink(host, last, dir_fd=fd)
                elif host.is_dir():
                    os.mkdir(last, 0o755, dir_fd=fd)
                else:
                    os.close(os.open(last, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd))
            except FileExistsError:
                pass
            except OSError:  # a folder where a file goes, a link in the way...
                raise SandboxSetupError(f"mount {inside!r}: the submission has a file, folder or link of its own "
                                        f"there; rename it") from None
            found = stat.S_IFMT(os.stat(last, dir_fd=fd, follow_symlinks=False).st_mode)
            if sandboxed and found != stat.S_IFMT(os.stat(host).st_mode):
                raise SandboxSetupError(f"mount {inside!r}: the submission has a file, folder or link of its own "
                                        f"there; rename it")
        finally:
            os.close(fd)


def hand_over(workdir: Path, uid: int, gid: int) -> None:
    """Make the work folder and everything in it the sandbox user's (root grading only), without following links."""
    if os.lstat(workdir).st_uid != uid:
        os.lchown(workdir, uid, gid)
    with contextlib.closing(entries(workdir)) as found:
        for folder, entry in found:
            if entry.stat(follow_symlinks=False).st_uid != uid:
                os.chown(entry.name, uid, gid, dir_fd=folder, follow_symlinks=False)


@dataclass(frozen=True)
class DiskUse:
    """What a work folder holds, the folder itself included."""

    bytes: int
    """Bytes of allocated blocks (``st_blocks`` * 512, not ``st_size``: blocks that ``fallocate`` holds count,
    the holes of a sparse file do not)."""
    inodes: int
    """Files, folders, links and other entries."""
    no_space: bool = False
    """The work folder is a file system of its own and no block is free: a write failed (ENOSPC)."""
    no_inodes: bool = False
    """The work folder is a file system of its own and no inode is free: a file could not be created."""

    def problem(self, before: DiskUse, limits: RunLimits) -> str | None:
        """None, or what the run did past ``disk_bytes`` or ``disk_inodes`` (measured from ``before``), in words."""
        added_bytes, added_inodes = self.bytes - before.bytes, self.inodes - before.inodes
        if added_bytes > limits.disk_bytes:
            return (f"stopped: the run added {added_bytes} bytes of disk blocks to the work folder (limit "
                    f"disk_bytes = {limits.disk_bytes}; blocks reserved with fallocate count too)")
        if added_inodes > limits.disk_inodes:
            return (f"stopped: the run added {added_inodes} files and folders to the work folder (limit "
                    f"disk_inodes = {limits.disk_inodes})")
        if self.no_space:
            return (f"the work folder is full: the run added {added_bytes} bytes of disk blocks and writes past the "
                    f"limit fail with 'No space left on device' (limit disk_bytes = {limits.disk_bytes})")
        if self.no_inodes:
            return (f"the work folder is full: the run added {added_inodes} files and folders and new ones fail "
                    f"with 'No space left on device' (limit disk_inodes = {limits.disk_inodes})")
        return None


def disk_use(folder: Path, stop_above: DiskUse | None = None) -> DiskUse:
    """What ``folder`` holds now.

    A folder that is a file system of its own, limited in both blocks and inodes (the root
    grader's tmpfs work folders), is read from :func:`os.statvfs`: one system call, and it
    tells whether the file system is full. Any other folder is walked (:func:`entries`):
    one ``lstat`` per entry (2-5 µs each with Python's share), a file with several links
    counted once; the walk stops as soon as either count is above ``stop_above``'s.
    """
    if os.path.ismount(folder):
        state = os.statvfs(folder)
        if state.f_blocks and state.f_files:  # a tmpfs without a limit reports zeros
            return DiskUse((state.f_blocks - state.f_bfree) * state.f_frsize, state.f_files - state.f_ffree,
                           no_space=state.f_bfree == 0, no_inodes=state.f_ffree == 0)
    allocated, inodes = os.lstat(folder).st_blocks * 512, 1
    linked: set[int] = set()
    with contextlib.closing(entries(folder)) as found:
        for _, entry in found:
            try:
                state = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if state.st_nlink > 1 and not stat.S_ISDIR(state.st_mode):
                if state.st_ino in linked:
                    continue
                linked.add(state.st_ino)
            allocated += state.st_blocks * 512
            inodes += 1
            if stop_above is not None and (allocated > stop_above.bytes or inodes > stop_above.inodes):
                break
    return DiskUse(allocated, inodes)


def entries(root: Path) -> Iterator[tuple[int, os.DirEntry]]:
    """Every entry under ``root`` (not ``root`` itself) with a descriptor of its folder, valid until the next.

    No recursion and no long path: one folder is open at a time, entered from its parent's
    descriptor and left through its ``..`` (checked to be the folder it came from, as
    ``fts`` does), so neither depth nor ``PATH_MAX`` hides anything. No link is followed.
    A folder that cannot be opened is passed over; one moved away while it is walked ends
    the walk early. Close the iterator when stopping early (its descriptor).
    """
    fd = os.open(root, FOLDER_FLAGS)
    try:
        # each folder from root down to the current one: its (device, inode), its subfolders not yet walked
        above: list[tuple[tuple[int, int], list[str]]] = []
        while True:
            try:
                listing = list(os.scandir(fd))
            except OSError:
                listing = []
            subfolders = []
            for entry in listing:
                yield fd, entry
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subfolders.append(entry.name)
                except OSError:
                    continue
            state = os.fstat(fd)
            above.append(((state.st_dev, state.st_ino), subfolders))
            while True:  # into the next subfolder of this folder or of one above it
                if above[-1][1]:
                    try:
                        child = os.open(above[-1][1].pop(), FOLDER_FLAGS, dir_fd=fd)
                    except OSError:
                        continue
                    os.close(fd)
                    fd = child
                    break
                above.pop()
                if not above:
                    return
                try:
                    parent = os.open("..", FOLDER_FLAGS, dir_fd=fd)
                except OSError:
                    return
                os.close(fd)
                fd = parent
                state = os.fstat(fd)
                if (state.st_dev, state.st_ino) != above[-1][0]:
                    return
    finally:
        os.close(fd)
