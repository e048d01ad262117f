"""Walking and removing folder trees that student code may have shaped: no recursion, no link followed.

A submission's folder, or what its code left in a run's work folder, can be thousands of
folders deep (past Python's recursion limit, which ``shutil.rmtree``, ``shutil.copytree``,
``os.walk`` and ``Path.rglob`` hit in Python 3.11, and past ``PATH_MAX``), hold folders
without permissions, links to anywhere, or tens of thousands of files. The functions here
keep an explicit list of folders instead of recursing and never follow a link;
:func:`remove_tree` also keeps every path it uses short, so no depth defeats it, while
:func:`walk_files` passes over what lies past ``PATH_MAX`` (intake refuses such trees).
"""
from __future__ import annotations

import errno
import itertools
import os
import stat
from collections.abc import Iterator
from pathlib import Path


def walk_files(root: str | os.PathLike, links: bool = False) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file under ``root`` with its ``lstat``, in no promised order (and every symbolic link,
    never followed, with ``links``); special files are skipped and folders that cannot be read are passed over.

    Depth costs nothing but the length of the paths returned; folders are read one at a time.
    """
    pending = [Path(root)]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                state = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(state.st_mode):
                pending.append(Path(entry.path))
            elif stat.S_ISREG(state.st_mode) or (links and stat.S_ISLNK(state.st_mode)):
                yield Path(entry.path), state


def remove_tree(root: str | os.PathLike) -> None:
    """Remove ``root`` and everything under it, however deep; nothing is followed through a link.

    Each folder found below the first level is first renamed into ``root`` itself (one
    ``rename`` on the same file system), so no path grows past ``root/<name>/<entry>`` and
    no folder waits on a stack of open descriptors. A folder without read or search
    permission is given it (the grader owns what it removes). A missing ``root`` is fine.

    Raises:
        OSError: something could not be removed (a mount point below ``root``, a file
            system error); everything else has been removed by then.
    """
    root = Path(root)
    try:
        if not stat.S_ISDIR(os.lstat(root).st_mode):
            root.unlink()
            return
    except FileNotFoundError:
        return
    names = (f".removing-{number}" for number in itertools.count())
    pending = [root]
    first_error: OSError | None = None
    while pending:
        folder = pending[-1]
        try:
            entries = _entries(folder)
        except FileNotFoundError:
            pending.pop()
            continue
        except OSError as error:
            first_error = first_error or error
            pending.pop()
            continue
        folders = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry)
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as error:
                first_error = first_error or error
        if not folders:
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError as error:
                first_error = first_error or error
            pending.pop()
            continue
        for entry in folders:
            if folder == root:
                pending.append(Path(entry.path))
                continue
            flat = root / next(names)
            try:
                os.rename(entry.path, flat)
            except OSError as error:  # e.g. a mount point: nothing below it is ours to remove
                first_error = first_error or error
                continue
            pending.append(flat)
        if pending[-1] is folder:  # nothing could move out of it: give up on it
            pending.pop()
    if first_error is not None:
        raise first_error


def _entries(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder``, giving its owner read, write and search permission first where it lacks them
    (root needs none)."""
    state = os.lstat(folder)
    if not stat.S_ISDIR(state.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
    if os.geteuid() != 0 and stat.S_IMODE(state.st_mode) & stat.S_IRWXU != stat.S_IRWXU:
        os.chmod(folder, stat.S_IMODE(state.st_mode) | stat.S_IRWXU)
    return list(os.scandir(folder))
