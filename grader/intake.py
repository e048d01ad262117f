"""Safe intake: a submitted zip (or folder) becomes a fresh work folder, or a refusal.

Every archive is hostile until proven otherwise. :func:`unpack` refuses, with a reason
a student can act on (:class:`IntakeRefused`): files that are not zips, corrupt or
truncated archives, encrypted entries, entries that escape the folder (``..``, absolute
paths, drive letters), entries more than ``max_depth`` folders deep, links and device
files, more entries than ``max_entries``, more unpacked bytes than ``max_unpacked_bytes``
(counted while decompressing, so a lying header does not help), and archives with
nothing in them. It never expands nested archives (they stay files, and a note names
each), strips a single common top folder, skips the clutter of
:data:`IGNORED_FOLDERS` and :data:`IGNORED_FILES`, and keeps names that are not UTF-8
(decoded as the zip format prescribes, CP437) or contain spaces.

Files are created with ``O_EXCL | O_NOFOLLOW`` in folders this module made, mode 0644
(0755 where the archive marks a file executable); no other mode bit survives.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

from grader.folders import remove_tree
from grader.identity import archive_stem, identify
from grader.limits import IntakeLimits

IGNORED_FOLDERS = frozenset({"__MACOSX", "__pycache__", ".ipynb_checkpoints"})
"""Folders skipped wherever they appear (operating-system and editor clutter)."""
IGNORED_FILES = frozenset({".DS_Store"})
"""Files skipped wherever they appear."""

_CHUNK = 1 << 20
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
_UNIX = 3  # ZipInfo.create_system of archives made on Unix-like systems
_KNOWN_FORMATS = (  # (magic bytes, offset, name): what a non-zip upload probably is
    (b"Rar!", 0, "a RAR archive"), (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"\x1f\x8b", 0, "a gzip file (.tar.gz?)"), (b"BZh", 0, "a bzip2 file"), (b"\xfd7zXZ", 0, "an xz file"),
    (b"ustar", 257, "a tar archive"), (b"%PDF", 0, "a PDF document"),
)


class IntakeRefused(Exception):
    """A submission the grader will not unpack; ``reason`` is written for the student.

    Attributes:
        source: the zip or folder that was refused.
        code: a short stable name of the problem, for tables and tests (``not_a_zip``,
            ``corrupt``, ``encrypted``, ``path_escape``, ``too_deep``, ``link``, ``special_file``,
            ``too_many_entries``, ``too_large``, ``name_clash``, ``bad_name``, ``empty``).
        reason: what is wrong and what to do, in one or two sentences.
    """

    def __init__(self, source: Path, code: str, reason: str):
        self.source = Path(source)
        self.code = code
        self.reason = reason
        super().__init__(f"{self.source.name}: {reason}")


class Submission(BaseModel):
    """A submission unpacked into its own work folder."""

    id: str
    """From the file name; see :func:`submission_id`."""
    source: Path
    work_dir: Path
    files: list[str]
    """The files kept, as POSIX paths relative to ``work_dir``, sorted."""
    ignored: list[str]
    """Entries skipped as clutter (``__MACOSX/...``, ``.DS_Store``...), as named in the archive."""
    stripped_folder: str | None
    """The single top folder removed from every path, if there was one."""
    unpacked_bytes: int
    notes: list[str]
    """Things the student may want to know, e.g. a file name that was not UTF-8."""


def submission_id(path: str | os.PathLike) -> str:
    """The submission's id from its file name: the student part of LMS exports (:func:`grader.identity.identify`).

    - Canvas ``doe_12345_67890_hw3.zip`` (``name[_LATE]_userid_submissionid_file``):
      ``doe_12345``, the name and the user id; the submission id and file name go.
    - Moodle ``Ada Lovelace_1234567_assignsubmission_file_hw3.zip``: ``Ada-Lovelace_1234567``.
    - Blackboard ``HW3_jdoe_attempt_2024-05-01-10-00-00_hw3.zip``: ``jdoe``.
    - anything else: the name without its extension.
    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``-``.
    """
    identity = identify(path)
    stem = ("_".join(part for part in (identity.name, identity.user_id) if part) if identity.matched
            else archive_stem(path))
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "submission"


def unpack(source: str | os.PathLike, work_dir: str | os.PathLike, limits: IntakeLimits | None = None) -> Submission:
    """Unpack the zip (or copy the folder) ``source`` into a new folder ``work_dir``.

    Args:
        source: a ``.zip`` file, or a folder (for self-checks).
        work_dir: must not exist, or be an empty folder; holds the files afterwards.
        limits: entry and size limits; :class:`IntakeLimits` defaults when None.

    Returns:
        The :class:`Submission` with its id, files and what was skipped.

    Raises:
        IntakeRefused: the archive is unsafe, broken or empty; ``work_dir`` is left
            as it was (created folders are removed).
    """
    source = Path(source)
    work_dir = Path(work_dir)
    limits = limits or IntakeLimits()
    if work_dir.exists() and (not work_dir.is_dir() or any(work_dir.iterdir())):
        raise FileExistsError(f"work folder {work_dir} already exists and is not empty; give each submission a new one")
    created = not work_dir.exists()
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _open_source(source, limits) as entries:
            return _extract(source, entries, work_dir, limits)
    except BaseException:
        with contextlib.suppress(OSError):  # what is left goes with the scratch space; the refusal stands
            for leftover in [work_dir] if created else list(work_dir.iterdir()):
                remove_tree(leftover)
        raise


# --------------------------------------------------------------------------- entries

@dataclass(frozen=True)
class _Entry:
    """One archive member or folder entry, checked for kind but not yet for its path."""

    name: str
    """As the archive names it (decoded), for messages."""
    utf8: bool
    """False where the name was not UTF-8 and was decoded as CP437."""
    is_dir: bool
    executable: bool
    declared_size: int
    open: Callable[[], BinaryIO] | None


def _open_source(source: Path, limits: IntakeLimits) -> AbstractContextManager[Iterator[_Entry]]:
    if source.is_dir():
        return nullcontext(_folder_entries(source, limits.max_depth))
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file or folder")
    return _ZipEntries(source, limits)


class _ZipEntries(AbstractContextManager):
    """The entries of a zip file, refusing encrypted, linked and special ones."""

    def __init__(self, source: Path, limits: IntakeLimits):
        self.source = source
        self.limits = limits
        self.archive: zipfile.ZipFile | None = None

    def __enter__(self) -> Iterator[_Entry]:
        if not zipfile.is_zipfile(self.source):
            with open(self.source, "rb") as file:
                starts_like_a_zip = file.read(4) == b"PK\x03\x04"
            if starts_like_a_zip:
                raise IntakeRefused(self.source, "corrupt", "the zip archive is truncated (its end is missing); "
                                    "create it again and check that the upload finished")
            raise IntakeRefused(self.source, "not_a_zip", f"this is not a zip archive{_what_it_is(self.source)}; "
                                "hand in one .zip file (right-click the folder, 'Compress' / 'Send to > ZIP')")
        declared_entries = _declared_entry_count(self.source)
        if declared_entries > self.limits.max_entries:
            raise _too_many_entries(self.source, declared_entries, self.limits)
        try:
            self.archive = zipfile.ZipFile(self.source)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as error:
            raise IntakeRefused(self.source, "corrupt", f"the zip archive is corrupt or truncated ({error}); "
                                "create it again and check that the upload finished") from error
        return self._entries()

    def __exit__(self, *exc_info) -> None:
        if self.archive is not None:
            self.archive.close()

    def _entries(self) -> Iterator[_Entry]:
        for info in self.archive.infolist():
            name, utf8 = _zip_name(info)
            if info.flag_bits & 0x1:
                raise IntakeRefused(self.source, "encrypted", f"{name!r} is encrypted (password-protected); "
                                    "zip the files again without a password")
            mode = info.external_attr >> 16 if info.create_system == _UNIX else 0
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                raise IntakeRefused(self.source, "link", f"{name!r} is a symbolic link; links are not accepted: "
                                    "put the file itself in the archive (zip without --symlinks)")
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise IntakeRefused(self.source, "special_file", f"{name!r} is a device, pipe or socket, not a "
                                    "file; leave it out of the archive")
            yield _Entry(name, utf8, info.is_dir(), bool(mode & stat.S_IXUSR), info.file_size,
                         None if info.is_dir() else (lambda info=info: self.archive.open(info)))


def _declared_entry_count(path: Path) -> int:
    """The entry count of the zip's end record, read before ``zipfile`` builds an object per entry.

    An archive of a few hundred MB can declare millions of tiny entries; parsing them
    all would cost the grader gigabytes before the entry limit could say no.
    """
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        size = file.tell()
        file.seek(max(0, size - 65_557))  # end record (22 bytes) + the longest comment
        tail = file.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or end + 22 > len(tail):
            return 0  # zipfile will call it corrupt
        count = struct.unpack("<H", tail[end + 10:end + 12])[0]
        locator = end - 20
        if count == 0xFFFF and locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
            zip64_end = struct.unpack("<Q", tail[locator + 8:locator + 16])[0]
            if zip64_end + 40 > size:
                return 0  # points outside the file: zipfile will call it corrupt
            file.seek(zip64_end + 32)
            count = struct.unpack("<Q", file.read(8))[0]  # zip64 end record: total entries
        return count


def _zip_name(info: zipfile.ZipInfo) -> tuple[str, bool]:
    """The member's name and whether it was UTF-8 (flagged, or valid); else CP437 as the zip format says."""
    if info.flag_bits & 0x800:
        return info.filename, True
    raw = info.filename.encode("cp437")
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return info.filename, False


def _decoded(raw: bytes) -> tuple[str, bool]:
    """A file system name as text: UTF-8 where valid, else CP437 (every byte readable)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("cp437"), False


def _folder_entries(folder: Path, max_depth: int) -> Iterator[_Entry]:
    """The entries under ``folder``, walked without following links; a folder deeper than ``max_depth``
    is listed but not entered (:func:`_extract` refuses it)."""
    pending = [(folder, "")]
    while pending:
        current, prefix = pending.pop()
        if prefix.count("/") > max_depth:
            continue
        for entry in sorted(os.scandir(current), key=lambda e: e.name):
            base, utf8 = _decoded(os.fsencode(entry.name))
            name = prefix + base
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise IntakeRefused(folder, "link", f"{name!r} is a symbolic link; links are not accepted: "
                                    "copy the file itself into the folder")
            if stat.S_ISDIR(info.st_mode):
                yield _Entry(name + "/", utf8, True, False, 0, None)
                pending.append((Path(entry.path), name + "/"))
            elif stat.S_ISREG(info.st_mode):
                yield _Entry(name, utf8, False, bool(info.st_mode & stat.S_IXUSR), info.st_size,
                             lambda path=entry.path: open(path, "rb"))
            else:
                raise IntakeRefused(folder, "special_file", f"{name!r} is a device, pipe or socket, not a file; "
                                    "remove it")


def _what_it_is(path: Path) -> str:
    with open(path, "rb") as file:
        head = file.read(512)
    if not head:
        return " (the file is empty)"
    for magic, offset, name in _KNOWN_FORMATS:
        if head[offset:offset + len(magic)] == magic:
            return f" (it looks like {name})"
    return ""


# --------------------------------------------------------------------------- extraction

def _safe_parts(source: Path, name: str) -> tuple[str, ...]:
    """The path components of an entry name, refusing anything that leaves the folder."""
    if "\x00" in name:
        raise IntakeRefused(source, "path_escape", f"{name!r} has a NUL character in its name; rename it")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE_LETTER.match(posix):
        raise IntakeRefused(source, "path_escape", f"{name!r} is an absolute path (or a drive's); archive the "
                            "files with paths relative to your project folder")
    parts = tuple(part for part in posix.split("/") if part not in ("", "."))
    if ".." in parts:
        raise IntakeRefused(source, "path_escape", f"{name!r} points outside the archive's folder ('..'); "
                            "archive the files with paths inside your project folder")
    return parts


def _is_clutter(parts: tuple[str, ...]) -> bool:
    return any(part in IGNORED_FOLDERS for part in parts) or (bool(parts) and parts[-1] in IGNORED_FILES)


def _too_many_entries(source: Path, count: int, limits: IntakeLimits) -> IntakeRefused:
    return IntakeRefused(source, "too_many_entries", f"the archive has {count:,} entries, more than the limit of "
                         f"{limits.max_entries:,}; leave out data sets, virtual environments and caches")


def _extract(source: Path, entries: Iterator[_Entry], work_dir: Path, limits: IntakeLimits) -> Submission:
    listed = []
    for entry in entries:
        listed.append(entry)
        if len(listed) > limits.max_entries:
            raise _too_many_entries(source, len(listed), limits)
    kept: list[tuple[tuple[str, ...], _Entry]] = []
    ignored: list[str] = []
    notes: list[str] = []
    for entry in listed:
        parts = _safe_parts(source, entry.name)
        if not parts:
            continue
        depth = len(parts) - (not entry.is_dir)  # folders the entry lies in, or is
        if depth > limits.max_depth:
            shown = "/".join(parts[:2]) + "/.../" + parts[-1]
            raise IntakeRefused(source, "too_deep", f"{shown!r} lies {depth} folders deep, more than the limit of "
                                f"{limits.max_depth}; keep your project's folders shallow")
        if _is_clutter(parts):
            ignored.append(entry.name)
            continue
        if not entry.utf8:
            notes.append(f"{entry.name!r}: the name was not UTF-8; it was read as CP437, as zip archives specify")
        kept.append((parts, entry))
    declared = sum(entry.declared_size for _, entry in kept)
    if declared > limits.max_unpacked_bytes:
        raise _too_large(source, declared, limits)
    files = [(parts, entry) for parts, entry in kept if not entry.is_dir]
    if not files:
        raise IntakeRefused(source, "empty", "the archive holds no files (only folders or system clutter); "
                            "zip the folder that contains your code")

    stripped = None
    tops = {parts[0] for parts, _ in kept}
    if len(tops) == 1 and all(len(parts) > 1 for parts, _ in files):
        stripped = tops.pop()
        kept = [(parts[1:], entry) for parts, entry in kept if len(parts) > 1]

    written = 0
    names = []
    for parts, entry in kept:
        target = work_dir.joinpath(*parts)
        try:
            _make_folders(work_dir, parts if entry.is_dir else parts[:-1])
            if entry.is_dir:
                continue
            written = _copy(source, entry, target, written, limits)
        except FileExistsError as error:
            raise IntakeRefused(source, "name_clash", f"{entry.name!r} appears twice in the archive, or both as a "
                                "file and as a folder; zip the folder again") from error
        except NotADirectoryError as error:
            raise IntakeRefused(source, "name_clash", f"{entry.name!r} sits under a name that is also a file; "
                                "zip the folder again") from error
        except OSError as error:
            if error.errno not in (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
                raise  # the grader's own trouble (a full disk?), not the archive's
            raise IntakeRefused(source, "bad_name", f"{entry.name!r} cannot be a file name here "
                                f"({error.strerror}); shorten or rename it") from error
        names.append("/".join(parts))
    notes += [f"{name} inside your submission was not expanded: nested archives are not opened; zip your files "
              "directly (one archive)" for name in sorted(names) if _is_archive(work_dir / name)]
    return Submission(id=submission_id(source), source=source, work_dir=work_dir, files=sorted(names),
                      ignored=ignored, stripped_folder=stripped, unpacked_bytes=written, notes=notes)


_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".rar", ".7z")
_ARCHIVE_MAGIC = ((b"PK\x03\x04", 0), (b"PK\x05\x06", 0), (b"Rar!\x1a\x07", 0), (b"7z\xbc\xaf\x27\x1c", 0),
                  (b"\x1f\x8b", 0), (b"ustar", 257))


def _is_archive(path: Path) -> bool:
    """Whether an unpacked file is an archive the student probably meant to be opened: named as one, or
    without any extension and starting like one. (Checkpoints such as ``.pt``, ``.npz`` and ``.keras``
    are zips inside: their content alone does not count.)"""
    if path.name.lower().endswith(_ARCHIVE_SUFFIXES):
        return True
    if path.suffix:
        return False
    with open(path, "rb") as file:
        head = file.read(262)
    return any(head[offset:offset + len(magic)] == magic for magic, offset in _ARCHIVE_MAGIC)


def _make_folders(work_dir: Path, parts: tuple[str, ...]) -> None:
    """Create each folder of ``parts`` under ``work_dir`` (mode 0755); an existing file in the way raises."""
    folder = work_dir
    for part in parts:
        folder = folder / part
        try:
            os.mkdir(folder, 0o755)
            os.chmod(folder, 0o755)
        except FileExistsError:
            if not folder.is_dir() or folder.is_symlink():
                raise


def _copy(source: Path, entry: _Entry, target: Path, written: int, limits: IntakeLimits) -> int:
    """Stream one file into ``target``, counting bytes against the limit as they come."""
    mode = 0o755 if entry.executable else 0o644
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with entry.open() as member, os.fdopen(fd, "wb", closefd=False) as out:
            while chunk := member.read(_CHUNK):
                written += len(chunk)
                if written > limits.max_unpacked_bytes:
                    raise _too_large(source, written, limits)
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as error:
        raise IntakeRefused(source, "corrupt", f"{entry.name!r} is damaged ({error}); create the archive again "
                            "and check that the upload finished") from error
    except NotImplementedError as error:
        raise IntakeRefused(source, "corrupt", f"{entry.name!r} uses a compression this grader cannot read "
                            f"({error}); use ordinary zip (Deflate)") from error
    finally:
        os.close(fd)
    os.chmod(target, mode)  # the umask does not decide what the sandbox may read
    return written


def _too_large(source: Path, size: int, limits: IntakeLimits) -> IntakeRefused:
    return IntakeRefused(source, "too_large", f"the archive unpacks to more than {limits.max_unpacked_bytes:,} bytes "
                         f"(at least {size:,}); leave out data sets, checkpoints over a few MB and virtual "
                         "environments")
