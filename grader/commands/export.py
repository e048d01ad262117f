"""``grade export gradescope --out FILE.zip``: write the autograder zip an instructor uploads to Gradescope.

Gradescope (https://gradescope-autograders.readthedocs.io/en/latest/specs/) builds an
image from a zip holding ``setup.sh`` (run once, as root) and ``run_autograder`` (run
for every submission, from ``/autograder``), with the zip's contents in
``/autograder/source``.

:func:`write_autograder_zip` writes that zip: this project (the grader, the reference
solution with its checkpoints, the rubrics, the student environments' requirements and,
when built, the embedded data set, so that Gradescope grades against the very clips the
instructor's own runs use), a ``setup.sh`` that installs it as ``make setup`` would (the
student environment included, built from the same pinned requirements file, so the digest
and the packages are the same; each step skipped where its result is there already), computes
the held-out preparation and the baseline once for every submission, and locks the grader's files
against the uids student code runs as; and a ``run_autograder`` that calls ``grade gradescope``
(:mod:`grader.commands.gradescope`) with the assignment's timeout.

:func:`platform_warnings` says, before the upload, where the rubric does not fit the container Gradescope gives
each submission (``--memory``, ``--cpus``, ``--timeout``: its defaults are 768 MB, 0.5 CPU and 600 s).
``tests/test_gradescope_emulation.py`` (``make test-gradescope``) runs the zip in a container like Gradescope's.
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from grader.commands.gradescope import (DEFAULT_TIMEOUT_SECONDS, RESULTS_PATH, SUBMISSION_DIR,
                                        TIMEOUT_MARGIN_SECONDS)
from grader.rubric import DEFAULT_RUBRIC, Rubric, RubricError, load_rubric
from reference import PROJECT_ROOT

SOURCE_DIR = "/autograder/source"
PROJECT_FILES = ("pyproject.toml", "requirements.lock", "Makefile", "README.md")
PROJECT_FOLDERS = ("grader", "reference", "rubrics", "environments")
DATA_FOLDER = "data/embedded"
LEFT_OUT = ("__pycache__", ".pyc", ".optimizer.pt", ".tmp")
"""Path parts and endings never packed: caches, optimiser state, temporary files."""
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""Every entry's timestamp: the same project gives the same zip, byte for byte."""
MB = 1024 * 1024
"""Bytes in one of Gradescope's (and Docker's) megabytes."""
DEFAULT_MEMORY_MB = 768
"""Gradescope's memory for one submission's container unless the assignment's settings raise it, in MB."""
DEFAULT_CPUS = 0.5
"""Gradescope's CPUs for one submission's container unless the assignment's settings raise them."""
GRADER_PEAK_MEMORY_BYTES = 400 * MB
"""The grader's own peak memory while it grades the reference solution in ``grade gradescope`` (its processes,
not student code's), with a margin: ``tests/test_gradescope_emulation.py`` measures it in a container like
Gradescope's (265 MB, the proportional set sizes of the root processes summed; 286 MB in a run on this project's CI
machine), scoring in the grading process itself (``grade gradescope --jobs 1``), and fails when it is exceeded."""
DEBIAN_PACKAGES = "python3 python3-venv bubblewrap libsndfile1 espeak-ng fluidsynth fluid-soundfont-gm sox"
"""What setup.sh installs where missing: ``make setup``'s packages less the browser, which grading does not need."""
GRADE = ".venv/bin/python -m grader.cli"
"""``grade`` in the scripts: the zip's own code, run from ``/autograder/source`` (a console script's first line names
the interpreter of the machine that installed it)."""

def setup_script(rubric_option: str = "") -> str:
    """setup.sh: ``rubric_option`` is ``" --rubric FILE"`` where the zip grades with another rubric than the bundled
    one (a path relative to /autograder/source), else empty."""
    return f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
# It installs the grader as `make setup` does (without the browser, which grading does not need), skipping each step
# whose result is there already; computes once what every submission would otherwise pay for (the held-out set's
# preparation, the baseline); and, last, locks the grader's files against the uids student code runs as.
# Choose Gradescope's Ubuntu 22.04 or newer base image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd {SOURCE_DIR}
missing=$(for p in {DEBIAN_PACKAGES}; do
  dpkg-query -W -f='${{Status}}' "$p" 2>/dev/null | grep -q 'ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
  apt-get update -qq
  apt-get install -y -qq $missing >/dev/null
fi
PYTHON=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  apt-get install -y -qq python3.11 python3.11-venv >/dev/null
  PYTHON=python3.11
fi
if ! .venv/bin/python -c 'import grader.cli, reference, torch, librosa' 2>/dev/null; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
fi
.venv/bin/python -m reference warm
.venv/bin/python -m grader.sandbox.init_program
# The environment student code runs with (environments/course.txt, exact pins; a no-op when built). Its torch is
# PyTorch's CPU build, published on PyTorch's own CPU index rather than the main package index.
PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu {GRADE} env build{rubric_option}
# The held-out clips: packed in the zip when the instructor had built them, else built here.
if [ ! -f {DATA_FOLDER}/manifest.csv ]; then
  .venv/bin/python -m reference data build --out {DATA_FOLDER}
fi
# The held-out set's preparation (.cache/heldout) and the baseline (.cache/baseline), once for every submission.
{GRADE} baseline{rubric_option}
# Last: the grader's own files (answer key, held-out clips, caches) unreadable by the uids student code runs as.
.venv/bin/python -m grader.sandbox.separate_uid lock
"""


def run_autograder_script(timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, rubric_option: str = "") -> str:
    """run_autograder: ``timeout_seconds``, the assignment's autograder timeout, is passed on to ``grade gradescope``;
    ``rubric_option`` as in :func:`setup_script`."""
    return f"""#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission and write
# /autograder/results/results.json (what the student sees). Output printed here is shown
# to instructors only.
set -uo pipefail
cd {SOURCE_DIR}
exec {GRADE} gradescope --submission {SUBMISSION_DIR} --results {RESULTS_PATH} --timeout {timeout_seconds:g}{rubric_option}
"""


def main(argv: list[str]) -> int:
    """Write the zip and print its path, after a line on stderr for each way the rubric does not fit the platform's
    container (:func:`platform_warnings`); 0, or 2 for a rubric that cannot be used."""
    parser = argparse.ArgumentParser(prog="grade export", description="Write the autograder zip for Gradescope.")
    parser.add_argument("target", choices=["gradescope"],
                        help="gradescope: the autograder zip of a Gradescope programming assignment")
    parser.add_argument("--out", type=Path, required=True, help="the zip to write (its folder is created)")
    parser.add_argument("--without-data", action="store_true", help="setup.sh builds data/embedded instead")
    parser.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC,
                        help="the rubric Gradescope grades with, a file inside this project (default: the bundled one)")
    parser.add_argument("--memory", type=float, default=DEFAULT_MEMORY_MB, metavar="MB",
                        help=f"the container's memory in the assignment's settings (default {DEFAULT_MEMORY_MB}, "
                        "Gradescope's)")
    parser.add_argument("--cpus", type=float, default=DEFAULT_CPUS,
                        help=f"the container's CPUs in the assignment's settings (default {DEFAULT_CPUS:g}, Gradescope's)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
                        help=f"the assignment's autograder timeout (default {DEFAULT_TIMEOUT_SECONDS:g}, Gradescope's); "
                        f"run_autograder passes it on, and grading stops {TIMEOUT_MARGIN_SECONDS:g} s before it")
    args = parser.parse_args(argv)
    if args.timeout <= TIMEOUT_MARGIN_SECONDS:
        parser.error(f"--timeout {args.timeout:g}: give more than {TIMEOUT_MARGIN_SECONDS:g} seconds")
    rubric_path = args.rubric.resolve()
    if not rubric_path.is_relative_to(PROJECT_ROOT):
        print(f"error: --rubric {args.rubric}: the zip packs this project only; copy the rubric into "
              f"{PROJECT_ROOT / 'rubrics'}", file=sys.stderr)
        return 2
    try:
        rubric = load_rubric(rubric_path)
    except RubricError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in platform_warnings(rubric, Platform(args.memory, args.cpus, args.timeout)):
        print(f"warning: {warning}", file=sys.stderr)
    print(write_autograder_zip(args.out, with_data=not args.without_data, timeout_seconds=args.timeout,
                               rubric=rubric_path.relative_to(PROJECT_ROOT)))
    return 0


@dataclass(frozen=True)
class Platform:
    """The container one submission is graded in: what the assignment's settings on Gradescope give it."""

    memory_mb: float = DEFAULT_MEMORY_MB
    """Memory of the whole container, the grader's and student code's together, in MB (:data:`MB`)."""
    cpus: float = DEFAULT_CPUS
    """CPUs the container may use (0.5: half of one core's time)."""
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    """Seconds after which the platform stops the container."""


@dataclass(frozen=True)
class EntryRun:
    """One run of student code a submission's grading may make, with the limits it may run under."""

    what: str
    """The run in words ("mfcc", "reconstruct", "the model-use rerun")."""
    script_seconds: float
    """Its time limit as a script: the largest ``wall_seconds`` of the items it may run under."""
    notebook_seconds: float
    """Its time limit when the entry is a notebook (``notebook_seconds`` replaces ``wall_seconds``); the mfcc
    entry is a function, never a notebook."""
    memory_bytes: int
    """The largest ``memory_bytes`` of the items it may run under."""


def entry_runs(rubric: Rubric) -> list[EntryRun]:
    """The runs of student code one submission's grading may make under ``rubric``, at their largest.

    Conservative where the grading's course is known only at run time: an entry's runs belong to one item of the
    kinds :data:`grader.context.RUNNERS` names (which one depends on the submission), so each takes the largest
    limits among them; ``reconstruct`` and ``sample`` each count once (as notebooks too, though one notebook serving
    both runs once), and once more for the model-use check (``needs_model_use``: the entry run again without the
    weights). Checks that read only the runs' outputs add no run.
    """
    from grader.context import RUNNERS

    runs = []
    for role, kinds in RUNNERS.items():
        items = [item for item in rubric.items if item.check in kinds]
        if not items:
            continue
        limits = [rubric.run_limits(item) for item in items]
        runs.append(EntryRun(role, max(limit.wall_seconds for limit in limits),
                             max(limit.wall_seconds if role == "mfcc" else limit.notebook_seconds for limit in limits),
                             max(limit.memory_bytes for limit in limits)))
    if any(item.check == "checkpoint" and item.params.get("needs_model_use") for item in rubric.items):
        rerun = max((run for run in runs if run.what in ("reconstruct", "sample")),
                    key=lambda run: run.notebook_seconds, default=None)
        if rerun is not None:
            runs.append(EntryRun("the model-use rerun", rerun.script_seconds, rerun.notebook_seconds,
                                 rerun.memory_bytes))
    return runs


def platform_warnings(rubric: Rubric, platform: Platform) -> list[str]:
    """Each way ``rubric`` does not fit ``platform``'s container, one line each, naming the settings to change:

    - memory: the grader's own peak (:data:`GRADER_PEAK_MEMORY_BYTES`) plus the largest run's ``memory_bytes`` is
      more than the container has (a run near its limit would get the whole container killed: no grade);
    - time: the runs' time limits (:func:`entry_runs`, as notebooks where that is longer) add up to more than the
      timeout less :data:`TIMEOUT_MARGIN_SECONDS` (the grading would cut the last runs short; the grader's own
      time for scoring is on top of that);
    - CPUs: fewer CPUs than the threads a run may use (student code runs slower than on the instructor's cores,
      where the rubric's ``wall_seconds`` were chosen).
    """
    runs = entry_runs(rubric)
    warnings = []
    if runs:
        largest = max(runs, key=lambda run: run.memory_bytes)
        needed = GRADER_PEAK_MEMORY_BYTES + largest.memory_bytes
        if needed > platform.memory_mb * MB:
            room = int(platform.memory_mb - GRADER_PEAK_MEMORY_BYTES / MB)
            raise_it = "aise the memory in the assignment's autograder settings and pass it as --memory"
            fix = (f"Lower memory_bytes in the rubric's [limits.run] and items' limits to {room} MB or less, or r{raise_it}"
                   if room > 0 else f"R{raise_it}")
            warnings.append(
                f"the grader ({GRADER_PEAK_MEMORY_BYTES / MB:.0f} MB at its peak) and a run of student code "
                f"({largest.memory_bytes / MB:.0f} MB, the {largest.what} run's memory_bytes) may need "
                f"{needed / MB:.0f} MB, more than the container's {platform.memory_mb:g} MB (--memory): a run near its "
                f"limit gets the whole container killed and no grade. {fix}")
    budget = platform.timeout_seconds - TIMEOUT_MARGIN_SECONDS
    scripts = sum(run.script_seconds for run in runs)
    notebooks = sum(run.notebook_seconds for run in runs)
    if max(scripts, notebooks) > budget:
        each = ", ".join(f"{run.what} {run.script_seconds:g} s" + (
            f" ({run.notebook_seconds:g} s as a notebook)" if run.what != "mfcc" else "") for run in runs)
        warnings.append(
            f"a submission's runs of student code may take {scripts:g} s as scripts (wall_seconds) and "
            f"{notebooks:g} s as notebooks (notebook_seconds): {each}; more than the {budget:g} s grading has "
            f"(--timeout {platform.timeout_seconds:g} s less {TIMEOUT_MARGIN_SECONDS:g} s), so the last runs would "
            f"be cut short and lose points. Lower wall_seconds and notebook_seconds in the rubric's [limits.run] and "
            f"items' limits, or raise the autograder timeout in the assignment's settings (at most 2400 s) and pass "
            f"it as --timeout")
    threads = max((rubric.run_limits(item).cpu_threads for item in rubric.items), default=1)
    if platform.cpus < threads:
        warnings.append(
            f"runs use up to {threads} thread(s) (cpu_threads) but the container has {platform.cpus:g} CPU (--cpus): "
            f"student code runs about {threads / platform.cpus:.1f}x slower than on a core of your own machine, "
            f"where the rubric's wall_seconds were chosen. Raise the CPUs in the assignment's autograder settings "
            f"and pass them as --cpus, or raise wall_seconds to match")
    return warnings


def project_files(root: Path = PROJECT_ROOT, with_data: bool = True) -> list[Path]:
    """The files the autograder needs, relative to ``root``, sorted: code, rubrics, checkpoints, data."""
    folders = PROJECT_FOLDERS + ((DATA_FOLDER,) if with_data and (root / DATA_FOLDER / "manifest.csv").is_file() else ())
    files = [Path(name) for name in PROJECT_FILES if (root / name).is_file()]
    for folder in folders:
        for path in (root / folder).rglob("*"):
            relative = path.relative_to(root)
            if path.is_file() and not path.is_symlink() and not any(
                    part.endswith(LEFT_OUT) for part in relative.parts):
                files.append(relative)
    return sorted(files)


def write_autograder_zip(out: str | os.PathLike, root: Path = PROJECT_ROOT, with_data: bool = True,
                         timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
                         rubric: Path = DEFAULT_RUBRIC.relative_to(PROJECT_ROOT)) -> Path:
    """Write the autograder zip Gradescope takes: ``setup.sh`` and ``run_autograder`` at its root, and the project.

    Args:
        out: the zip to write (its folder is created).
        root: the project to pack (this one by default).
        with_data: pack ``data/embedded`` when built (about 18 MB), so that Gradescope
            scores on the same held-out clips as local runs; without it, setup.sh
            builds the set in the image (espeak-ng and FluidSynth there may differ).
        timeout_seconds: the assignment's autograder timeout, which run_autograder passes to ``grade gradescope``.
        rubric: the rubric graded with, relative to ``root`` (packed with the project's files).

    Returns:
        the zip's path. The zip is deterministic: sorted entries, fixed timestamps.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    rubric_option = "" if rubric == DEFAULT_RUBRIC.relative_to(PROJECT_ROOT) else f" --rubric {rubric.as_posix()}"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add(archive, "setup.sh", setup_script(rubric_option).encode(), executable=True)
        _add(archive, "run_autograder", run_autograder_script(timeout_seconds, rubric_option).encode(),
             executable=True)
        for relative in project_files(root, with_data):
            _add(archive, relative.as_posix(), (root / relative).read_bytes(),
                 executable=bool((root / relative).stat().st_mode & stat.S_IXUSR))
    os.replace(tmp, out)
    return out


def _add(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    """Add one entry with the fixed timestamp and a regular file's mode (0755 or 0644)."""
    entry = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
    archive.writestr(entry, data)
