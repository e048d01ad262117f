"""How this machine isolates student code, found once per process by trying (a few milliseconds): bubblewrap with
namespaces, a separate uid without them, or not at all (with the reason).

- bubblewrap, privileged: the grader is root and bubblewrap can make namespaces; student code drops to
  :data:`~grader.sandbox.inside.SANDBOX_UID` inside (a laptop or server as root, CI);
- bubblewrap in a user namespace: the grader is not root (a laptop, a server without root), or is root only in a user
  namespace that maps no other uid but allows nested ones;
- a separate uid (:mod:`grader.sandbox.separate_uid`): the grader is root but namespaces cannot be made (a Docker
  container without ``CAP_SYS_ADMIN``: Gradescope);
- unavailable: none of these; runs get the verdict ``sandbox_unavailable`` with :attr:`Isolation.reason`.
"""
from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    BUBBLEWRAP = "bubblewrap"
    SEPARATE_UID = "separate_uid"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Isolation:
    """The isolation runs get here."""

    kind: Kind
    privileged: bool = False
    """bubblewrap runs as root and drops student code to SANDBOX_UID (else it goes through a user namespace)."""
    reason: str = ""
    """Why bubblewrap's namespaces are not used (separate uid, unavailable), in words."""


@functools.cache
def isolation(bwrap: str) -> Isolation:
    """How runs are isolated on this machine with bubblewrap at ``bwrap`` (cached for the process)."""
    from grader.sandbox.inside import SANDBOX_UID
    from grader.sandbox.separate_uid import UID_POOL, switch_problem

    if os.geteuid() != 0:
        problem = namespaces_problem(bwrap, privileged=False)
        if problem is None:
            return Isolation(Kind.BUBBLEWRAP)
        return Isolation(Kind.UNAVAILABLE, reason=f"bubblewrap cannot make a user namespace here ({problem}); "
                         "unprivileged user namespaces must be enabled (sysctl kernel.unprivileged_userns_clone=1, "
                         "or user.max_user_namespaces above 0), or the grader run as root")
    drop_problem = switch_problem(SANDBOX_UID)
    namespace_problem = namespaces_problem(bwrap, privileged=True)
    if namespace_problem is None and drop_problem is None:
        return Isolation(Kind.BUBBLEWRAP, privileged=True)
    if drop_problem is not None and namespaces_problem(bwrap, privileged=False) is None:
        return Isolation(Kind.BUBBLEWRAP)  # root of a user namespace that maps only itself, nesting allowed
    pool_problem = switch_problem(UID_POOL.start)
    why = namespace_problem or drop_problem or ""
    if pool_problem is None:
        return Isolation(Kind.SEPARATE_UID, reason=f"bubblewrap cannot make namespaces here ({why})")
    return Isolation(Kind.UNAVAILABLE, reason=f"bubblewrap cannot make namespaces here ({why}), and student code "
                     f"cannot run as a separate user either: {pool_problem}")


def namespaces_problem(bwrap: str, privileged: bool) -> str | None:
    """None when bubblewrap can make a run's namespaces here (``privileged``: as root, else through a user
    namespace); else what it said. Runs ``true`` in them once (a few milliseconds)."""
    from grader.sandbox.bwrap import PRIVILEGED_NAMESPACES, USER_NAMESPACES

    namespaces = PRIVILEGED_NAMESPACES if privileged else USER_NAMESPACES
    return run_quietly([bwrap, *namespaces, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--",
                        "/bin/true"])


def run_quietly(argv: list[str], seconds: float = 20.0) -> str | None:
    """None when ``argv`` exits 0; else its stderr's last line (or how it failed), for a probe's reason."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=seconds, env={"PATH": "/usr/bin:/bin"}, close_fds=True)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    if done.returncode == 0:
        return None
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"
