"""What this machine offers a sandbox, found once per process: util-linux's tools, the system folders to mount,
the system-call filter (:mod:`grader.sandbox.seccomp`) and ``sandbox-init`` (:mod:`grader.sandbox.init_program`).
"""
from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from grader.sandbox import init_program, seccomp
from grader.sandbox.types import SandboxSetupError

_ETC_COPIED = ("ld.so.cache",)
"""Host files copied into the sandbox's /etc (the loader cache makes every start faster)."""


@dataclass(frozen=True)
class Host:
    """What this machine offers a sandbox: tools, the Python environment, numba's cache."""

    prlimit: str
    setpriv: str
    system_mounts: tuple[str, ...]
    """bubblewrap arguments for ``/usr``, the top-level links into it, ``/etc/localtime`` and ``/etc/fonts``."""
    etc_copied: tuple[str, ...]
    init: Path | None
    """``sandbox-init`` built for this machine (:func:`grader.sandbox.init_program.built`); None where it could not
    be built."""
    seccomp: bytes
    """The system-call filter for this machine (:func:`grader.sandbox.seccomp.program`)."""

    @classmethod
    def detect(cls, require_sandbox_tools: bool) -> Host:
        prlimit, setpriv = shutil.which("prlimit") or "", shutil.which("setpriv") or ""
        if require_sandbox_tools and not (prlimit.startswith("/usr/") and setpriv.startswith("/usr/")):
            raise SandboxSetupError("util-linux's prlimit and setpriv were not found under /usr; install util-linux")
        try:
            filter_program = seccomp.program()
        except seccomp.UnsupportedMachine as error:
            raise SandboxSetupError(str(error)) from None
        system_mounts = ["--ro-bind", "/usr", "/usr", "--dir", "/etc"]  # /etc 0755: bubblewrap makes parents 0700
        for top in (Path("/") / name for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32")):
            if top.is_symlink():
                system_mounts += ["--symlink", os.readlink(top), str(top)]
            elif top.is_dir():
                system_mounts += ["--ro-bind", str(top), str(top)]
        localtime = Path("/etc/localtime")
        if localtime.is_symlink() and localtime.resolve().is_relative_to("/usr"):
            system_mounts += ["--symlink", str(localtime.resolve()), str(localtime)]
        if Path("/etc/fonts").is_dir():  # fontconfig's settings: matplotlib's font list asks fc-list, which needs them
            system_mounts += ["--ro-bind", "/etc/fonts", "/etc/fonts"]
        return cls(prlimit, setpriv, tuple(system_mounts),
                   tuple(name for name in _ETC_COPIED if Path("/etc", name).is_file()),
                   init_program.built() if require_sandbox_tools else None, filter_program)


@functools.cache
def this_host(require_sandbox_tools: bool = True) -> Host:
    """The host's sandbox facts, found once per process.

    Raises:
        SandboxSetupError: a tool is missing or ``sandbox-init`` is not built; the message says what to do.
    """
    return Host.detect(require_sandbox_tools)
