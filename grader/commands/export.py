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
and the packages are the same), and a ``run_autograder`` that calls ``grade gradescope``
(:mod:`grader.commands.gradescope`).
"""
from __future__ import annotations

import argparse
import os
import stat
import zipfile
from pathlib import Path

from grader.commands.gradescope import RESULTS_PATH, SUBMISSION_DIR
from reference import PROJECT_ROOT

SOURCE_DIR = "/autograder/source"
PROJECT_FILES = ("pyproject.toml", "requirements.lock", "Makefile", "README.md")
PROJECT_FOLDERS = ("grader", "reference", "rubrics", "environments")
DATA_FOLDER = "data/embedded"
LEFT_OUT = ("__pycache__", ".pyc", ".optimizer.pt", ".tmp")
"""Path parts and endings never packed: caches, optimiser state, temporary files."""
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""Every entry's timestamp: the same project gives the same zip, byte for byte."""

SETUP_SH = f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
# It installs the grader as `make setup` does (without the browser, which grading does not need).
# Choose Gradescope's Ubuntu 22.04 or newer base image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv bubblewrap libsndfile1 espeak-ng fluidsynth fluid-soundfont-gm sox >/dev/null
PYTHON=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  apt-get install -y -qq python3.11 python3.11-venv >/dev/null
  PYTHON=python3.11
fi
cd {SOURCE_DIR}
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q -r requirements.lock
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python -m reference warm
# The environment student code runs with (environments/course.txt, exact pins). Its torch is PyTorch's
# CPU build, published on PyTorch's own CPU index rather than the main package index.
PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu .venv/bin/grade env build
# The held-out clips: packed in the zip when the instructor had built them, else built here.
if [ ! -f {DATA_FOLDER}/manifest.csv ]; then
  .venv/bin/python -m reference data build --out {DATA_FOLDER}
fi
"""

RUN_AUTOGRADER = f"""#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission and write
# /autograder/results/results.json (what the student sees). Output printed here is shown
# to instructors only.
set -uo pipefail
cd {SOURCE_DIR}
exec .venv/bin/grade gradescope --submission {SUBMISSION_DIR} --results {RESULTS_PATH}
"""


def main(argv: list[str]) -> int:
    """Write the zip and print its path; 0."""
    parser = argparse.ArgumentParser(prog="grade export", description="Write the autograder zip for Gradescope.")
    parser.add_argument("target", choices=["gradescope"],
                        help="gradescope: the autograder zip of a Gradescope programming assignment")
    parser.add_argument("--out", type=Path, required=True, help="the zip to write (its folder is created)")
    parser.add_argument("--without-data", action="store_true", help="setup.sh builds data/embedded instead")
    args = parser.parse_args(argv)
    print(write_autograder_zip(args.out, with_data=not args.without_data))
    return 0


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


def write_autograder_zip(out: str | os.PathLike, root: Path = PROJECT_ROOT, with_data: bool = True) -> Path:
    """Write the autograder zip Gradescope takes: ``setup.sh`` and ``run_autograder`` at its root, and the project.

    Args:
        out: the zip to write (its folder is created).
        root: the project to pack (this one by default).
        with_data: pack ``data/embedded`` when built (about 18 MB), so that Gradescope
            scores on the same held-out clips as local runs; without it, setup.sh
            builds the set in the image (espeak-ng and FluidSynth there may differ).

    Returns:
        the zip's path. The zip is deterministic: sorted entries, fixed timestamps.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add(archive, "setup.sh", SETUP_SH.encode(), executable=True)
        _add(archive, "run_autograder", RUN_AUTOGRADER.encode(), executable=True)
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
