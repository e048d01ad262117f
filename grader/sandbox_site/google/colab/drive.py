"""``google.colab.drive``: the Drive is the instructor's folders, already mounted at ``/content/drive/MyDrive``.

The grader's sandbox mounts what the rubric provides (data sets, weights) read-only
under :data:`MOUNTPOINT`\\ ``/MyDrive``. :func:`mount` at :data:`MOUNTPOINT`, as almost every
notebook does, finds it there; at another path it links that path to it, where the
path's parent folder is writable, and otherwise says where the Drive is.
"""
from __future__ import annotations

import os

from google.colab._note import note

MOUNTPOINT = "/content/drive"
"""Where Colab mounts the Drive, and where the grader's sandbox puts the instructor's folders (under ``MyDrive``)."""


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False) -> None:
    """Make ``mountpoint/MyDrive`` show the instructor's Drive folders, as Colab's ``drive.mount`` shows yours.

    Never raises: where the link cannot be made, a note says where the Drive is.
    ``force_remount``, ``timeout_ms`` and ``readonly`` are accepted for Colab's sake.
    """
    drive = os.path.join(MOUNTPOINT, "MyDrive")
    try:
        os.makedirs(drive, exist_ok=True)
    except OSError as error:
        note(f"no Drive here: {drive} cannot be made ({error.strerror}); files your notebook reads from "
             f"the Drive must be handed in with it")
        return
    wanted = os.path.abspath(os.path.expanduser(mountpoint))
    if os.path.realpath(wanted) != os.path.realpath(MOUNTPOINT):
        try:
            if os.path.isdir(wanted) and not os.path.islink(wanted):
                os.symlink(drive, os.path.join(wanted, "MyDrive"))
            else:
                os.symlink(MOUNTPOINT, wanted)
        except FileExistsError:
            pass  # mounted before (force_remount or not): the link is there
        except OSError as error:
            note(f"cannot link {mountpoint} to the Drive ({error.strerror}); the Drive is at {drive}: "
                 f"mount it at {MOUNTPOINT!r}, as Colab suggests")
            return
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms: int = 86400000) -> None:
    """Nothing to write back: the Drive is read-only here."""
