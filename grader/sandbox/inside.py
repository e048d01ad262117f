"""The sandbox seen from inside: where the work folder, the inputs and the mounts appear, who student code runs as,
and which inputs and mounts a run may have.

Light (the standard library only): the rubric checks its mount points with :func:`mount_point_problem` when it is
loaded, without loading the sandbox's machinery.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path, PurePosixPath

import reference

WORKDIR_INSIDE = PurePosixPath("/submission")
"""Where the work folder appears inside the sandbox; the command's working directory."""
INPUTS_INSIDE = PurePosixPath("/inputs")
"""Inputs appear read-only at ``/inputs/<name>``."""
CONTENT_INSIDE = PurePosixPath("/content")
"""A link to :data:`WORKDIR_INSIDE`: Colab's working folder, so that notebooks' ``/content/...`` paths work."""
SANDBOX_UID = SANDBOX_GID = 65534
"""The uid/gid student code runs as when the grader is root ("nobody": owns nothing), inside and out."""
INSIDE_UID = INSIDE_GID = 1000
"""The uid/gid student code sees inside a user namespace (a grader without root); outside it is the user's."""

_RESERVED_TOPS = frozenset({"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "sys",
                            "tmp", "run", "var", "opt", INPUTS_INSIDE.name, reference.PROJECT_ROOT.parts[1],
                            Path(sys.base_prefix).resolve().parts[1]})
"""Top-level folders a mount may not go into: the sandbox's own, and those holding the environment."""


def check_input(name: str, path: Path) -> None:
    """Refuse an input ``name`` (shown at ``/inputs/<name>``) that is no plain name, or a host ``path`` that is
    missing or (as root) unreadable by student code.

    Raises:
        ValueError, FileNotFoundError, PermissionError: saying which input and what to do.
    """
    if not name or name in (".", "..", "workdir") or not all(c.isalnum() or c in "_-." for c in name):
        raise ValueError(f"input name {name!r}: use letters, digits, '_', '-' or '.' (and not 'workdir')")
    if not path.exists():
        raise FileNotFoundError(f"input {name!r}: {path} does not exist")
    if os.geteuid() == 0 and path.stat().st_mode & 0o004 == 0:
        raise PermissionError(f"input {name!r}: {path} is not readable by other users, and student code runs as "
                              f"uid {SANDBOX_UID}; make it readable (chmod o+rX) before the run")


def mount_target(inside: str) -> PurePosixPath:
    """Where a mount's ``inside`` lands in the sandbox: relative ones, and those under :data:`CONTENT_INSIDE`
    (Colab's working folder, a link to the work folder), in :data:`WORKDIR_INSIDE`; other absolute ones as written."""
    path = PurePosixPath(inside)
    for base in (CONTENT_INSIDE, WORKDIR_INSIDE):
        if path.is_relative_to(base):
            return WORKDIR_INSIDE / path.relative_to(base)
    return path if path.is_absolute() else WORKDIR_INSIDE / path


def mount_point_problem(inside: str) -> str | None:
    """Why ``inside`` cannot be a mount point (in words), or None: it must name a place below the work folder, or an
    absolute one outside the sandbox's own folders (:data:`_RESERVED_TOPS`), without ``..``."""
    path = PurePosixPath(inside)
    if not inside.strip() or ".." in path.parts:
        return f"{inside!r}: a mount point is a path without '..' (relative to the submission, or absolute)"
    target = mount_target(inside)
    if target == WORKDIR_INSIDE:
        return f"{inside!r}: a mount point must be a folder inside the submission, not the submission itself"
    if not target.is_relative_to(WORKDIR_INSIDE) and (len(target.parts) < 2 or target.parts[1] in _RESERVED_TOPS):
        return (f"{inside!r}: the sandbox's own folders ({', '.join('/' + top for top in sorted(_RESERVED_TOPS))}) "
                "cannot hold a mount; use a path in the submission or under /content")
    return None


def check_mount(inside: str, host: Path) -> None:
    """Refuse a mount whose place ``inside`` is not allowed (:func:`mount_point_problem`), or whose ``host`` folder
    or file is missing or (as root) unreadable by student code.

    Raises:
        ValueError, FileNotFoundError, PermissionError: saying which mount and what to do.
    """
    problem = mount_point_problem(inside)
    if problem:
        raise ValueError(problem)
    if not host.exists():
        raise FileNotFoundError(f"mount {inside!r}: {host} does not exist")
    if os.geteuid() == 0 and host.stat().st_mode & 0o004 == 0:
        raise PermissionError(f"mount {inside!r}: {host} is not readable by other users, and student code runs as "
                              f"uid {SANDBOX_UID}; make it readable (chmod -R o+rX) before the run")
