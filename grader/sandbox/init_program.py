"""``sandbox-init``, the first program of every sandboxed run: a few system calls in C (grader/sandbox_init.c:
the rlimits, then as root the drop to the sandbox's uid) between bubblewrap and the command, in place of
util-linux's ``setpriv`` and ``prlimit`` (an exec each, ~1.5 ms more per run).

``make setup`` builds it (``python -m grader.sandbox.init_program``: :func:`build`) with the machine's C compiler,
statically where possible, under ``.cache/sandbox``, named by its source's digest, so that an edited source needs a
new build; a grader only looks it up (:func:`built`). Where it cannot be built (no C compiler, or the compiler
fails) the build says so in a note beside it, and runs use ``setpriv`` and ``prlimit`` instead.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import reference
from grader.sandbox.types import SandboxSetupError

SOURCE = Path(__file__).parents[1] / "sandbox_init.c"
"""The C source of ``sandbox-init``."""
FOLDER = reference.PROJECT_ROOT / ".cache" / "sandbox"
"""Where builds are kept, one per version of :data:`SOURCE`."""


def program_path() -> Path:
    """Where the build of this version of :data:`SOURCE` lives (whether or not it is built)."""
    return FOLDER / f"sandbox-init-{hashlib.sha256(SOURCE.read_text().encode()).hexdigest()[:16]}"


def _unbuilt_note(program: Path) -> Path:
    """The note :func:`build` leaves where ``program`` could not be built: why, in words."""
    return program.with_name(program.name + ".unbuilt")


def built() -> Path | None:
    """This version's build, for the sandbox to run; None where ``make setup`` could not build it (no C compiler, or it failed)
    or the build is not to be trusted (not ours or root's, or writable by others): then ``setpriv`` and ``prlimit``
    run instead.

    Raises:
        SandboxSetupError: ``make setup`` has not built this version yet.
    """
    program = program_path()
    if not program.is_file():
        if _unbuilt_note(program).is_file():
            return None
        raise SandboxSetupError(f"the sandbox's first program is not built for this version of "
                                f"{SOURCE.relative_to(reference.PROJECT_ROOT)} ({program} is missing): "
                                "run `make setup`")
    state = program.stat()
    if state.st_uid not in (0, os.geteuid()) or state.st_mode & 0o022:
        return None
    return program


def build() -> str:
    """Compile this version of :data:`SOURCE` (statically where possible: no dynamic loader at each start) unless it
    is built; where it cannot be, leave a note saying why (:func:`built` then returns None). Builds at the same time
    each write their own and one wins (an atomic rename).

    Returns:
        What happened, in one line.
    """
    program = program_path()
    if program.is_file():
        return f"{program} is built"
    compiler = shutil.which("cc") or shutil.which("gcc")
    FOLDER.mkdir(parents=True, exist_ok=True)
    if compiler is None:
        return _leave_unbuilt(program, "no C compiler (cc or gcc) was found")
    with tempfile.TemporaryDirectory(dir=FOLDER) as scratch:
        output = Path(scratch, "sandbox-init")
        for static in (["-static"], []):
            compiled = subprocess.run([compiler, "-O2", "-s", *static, "-o", str(output), str(SOURCE)],
                                      capture_output=True, text=True)
            if compiled.returncode == 0:
                break
        else:
            return _leave_unbuilt(program, f"{compiler} failed: {compiled.stderr.strip()}")
        output.chmod(0o755)
        os.replace(output, program)
    _unbuilt_note(program).unlink(missing_ok=True)
    return f"built {program}"


def _leave_unbuilt(program: Path, reason: str) -> str:
    """Note beside ``program`` that it could not be built, and why; the note's line."""
    note = f"{SOURCE.name} was not built ({reason}); sandboxed runs use util-linux's setpriv and prlimit instead"
    _unbuilt_note(program).write_text(note + "\n")
    return note


if __name__ == "__main__":
    print(build())
