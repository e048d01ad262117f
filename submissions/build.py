"""Build the example submissions: ``submissions/<name>.zip`` from the sources in ``submissions/src/<name>/``.

    .venv/bin/python submissions/build.py [NAME ...] [--data data/embedded]

Six examples, as students hand them in (each zip holds one top folder ``<name>/``):

=====================  ===================================================================
reference-solution     the reference solution as a submission: the reference's modules
                       copied into a local package ``refsol/`` at build time (student code
                       cannot import ``reference`` in the sandbox), its checkpoints, three
                       samples made by its own ``generate.py``, and ``report.md`` written by
                       its own ``evaluate.py`` (PESQ and SNR on test clips)
vae-only               a VAE on log-mel voiced by Griffin-Lim, ``reconstruct`` only; the
                       reference's VAE copied the same way as ``vaemel/``; no manifest, so
                       the grader guesses
notebook               the work in one notebook with a cell tagged ``parameters``; build
                       runs it once with ``TRAIN = True`` (as its author did) to train its
                       small VAE, write samples and print its PESQ and SNR
partial                preprocessing and the quiz only, no model
broken                 a model, but ``generate.py`` crashes with a traceback
misbehaving            each run breaks a different limit: ``extract_mfcc`` prints without
                       end (output_limit, a second in), ``generate.py --mel-dir`` allocates
                       memory without end (out_of_memory, seconds in), ``generate.py
                       --num`` loops forever (timeout, at the run's time limit)
=====================  ===================================================================

What build makes by running code (checkpoints, samples, reports, the executed
notebook) is cached in ``.cache/examples/`` under a hash of everything it depends on
(the staged sources, the checkpoints, the data set's manifest), so a rebuild takes
seconds and gives the same zips, byte for byte: entries sorted, timestamps fixed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from reference import PROJECT_ROOT  # noqa: E402

SOURCES = HERE / "src"
CACHE = PROJECT_ROOT / ".cache" / "examples"
DEFAULT_DATA = PROJECT_ROOT / "data" / "embedded"
CHECKPOINTS = PROJECT_ROOT / "reference" / "checkpoints"
EXAMPLES = ("reference-solution", "vae-only", "notebook", "partial", "broken", "misbehaving")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
LEFT_OUT = {"__pycache__", ".cache", ".ipynb_checkpoints", ".DS_Store"}
MAX_ZIP_BYTES = 9_000_000
REFERENCE_IMPORT = re.compile(r"^(\s*)(from|import)(\s+)reference\b", re.MULTILINE)


class BuildError(RuntimeError):
    """An example cannot be built; the message says what to run first."""


# --------------------------------------------------------------------------- the reference as a local package

def reference_package(package: str, roots: tuple[str, ...]) -> dict[str, bytes]:
    """The modules of ``reference`` that ``roots`` need (their import closure), as the package ``package``.

    Returns ``{"<package>/<module>.py": source}`` with every ``from reference...`` and
    ``import reference...`` statement pointed at ``package``, so that the copies import
    each other where ``reference`` is not installed (the sandbox).
    """
    needed, todo = {"__init__"}, list(roots)
    while todo:
        module = todo.pop()
        if module in needed:
            continue
        needed.add(module)
        source = (PROJECT_ROOT / "reference" / f"{module}.py").read_text()
        todo += re.findall(r"^\s*from\s+reference\.(\w+)\s+import", source, re.MULTILINE)
    return {f"{package}/{module}.py": REFERENCE_IMPORT.sub(rf"\1\2\3{package}", (PROJECT_ROOT / "reference" /
                                                                                 f"{module}.py").read_text()).encode()
            for module in sorted(needed)}


# --------------------------------------------------------------------------- steps that run code

def run_python(args: list[str], cwd: Path, timeout: float = 600) -> None:
    """Run the project's Python in ``cwd`` as the example's author would; raise BuildError with its output on failure."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg",
               NUMBA_CACHE_DIR=str(PROJECT_ROOT / ".cache" / "numba"))
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise BuildError(f"`python {' '.join(args)}` failed in {cwd.name} (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-4000:]}")


def run_notebook(stage: Path, notebook: str, values: dict[str, object], timeout: int = 900) -> None:
    """Execute ``stage/notebook`` with ``values`` set in its ``parameters`` cell, then put that cell back as written.

    The executed notebook (outputs included) replaces the original, as if its author
    had run it with those values and then restored the defaults before handing it in.
    """
    import nbformat
    from nbclient import NotebookClient

    path = stage / notebook
    original = nbformat.read(path, as_version=4)
    cell = next((c for c in original.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise BuildError(f"{notebook}: no cell tagged 'parameters'")
    run = nbformat.from_dict(original)
    run_cell = next(c for c in run.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    run_cell.source += "\n" + "\n".join(f"{name} = {value!r}" for name, value in values.items())
    os.environ.setdefault("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".cache" / "numba"))
    client = NotebookClient(run, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(stage)}})
    try:
        client.execute()
    except Exception as error:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the traceback without its terminal colours
        raise BuildError(f"{notebook} failed while building: ...{plain[-3000:]}") from None
    run_cell.source = cell.source
    run_cell.outputs, run_cell.execution_count = [], None
    nbformat.write(run, path)


def cached_step(name: str, stage: Path, produces: list[str], step, data: Path) -> None:
    """Run ``step(stage)`` unless the files ``produces`` (paths in the stage) are cached for these inputs.

    The key hashes every file staged so far and the data set's manifest; the cached
    copies are put back into the stage.
    """
    digest = hashlib.sha256(name.encode())
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        digest.update(path.relative_to(stage).as_posix().encode() + b"\0" + path.read_bytes())
    digest.update((data / "manifest.csv").read_bytes())
    cache = CACHE / f"{name}-{digest.hexdigest()[:16]}"
    if not all((cache / relative).is_file() for relative in produces):
        started = time.perf_counter()
        print(f"  {name}: running its code to make {', '.join(produces)} (cached afterwards)...", flush=True)
        step(stage)
        for relative in produces:
            target = cache / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(stage / relative, target)
        print(f"  {name}: made in {time.perf_counter() - started:.0f} s", flush=True)
    for relative in produces:
        (stage / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache / relative, stage / relative)


# --------------------------------------------------------------------------- the examples

def stage_sources(name: str, stage: Path) -> None:
    source = SOURCES / name
    if not source.is_dir():
        raise BuildError(f"{source}: no sources for the example {name!r}")
    shutil.copytree(source, stage, ignore=shutil.ignore_patterns(*LEFT_OUT))


def add_files(stage: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        (stage / relative).parent.mkdir(parents=True, exist_ok=True)
        (stage / relative).write_bytes(data)


def add_checkpoints(stage: Path, names: tuple[str, ...]) -> None:
    for name in names:
        if not (CHECKPOINTS / name).is_file():
            raise BuildError(f"{CHECKPOINTS / name}: missing; train it with `python -m reference train` first")
        (stage / "checkpoints").mkdir(exist_ok=True)
        shutil.copyfile(CHECKPOINTS / name, stage / "checkpoints" / name)


def build_reference_solution(stage: Path, data: Path) -> None:
    add_files(stage, reference_package("refsol", ("generate",)))
    add_checkpoints(stage, ("magnitude.pt", "wavenet.pt", "vae.pt"))
    cached_step("reference-solution", stage, ["samples/0.wav", "samples/1.wav", "samples/2.wav", "report.md"],
                lambda s: (run_python(["generate.py", "--num", "3", "--seed", "0", "--out-dir", "samples"], s),
                           run_python(["evaluate.py", "--data", str(data / "test"), "--out", "report.md"], s)), data)


def build_vae_only(stage: Path, data: Path) -> None:
    add_files(stage, reference_package("vaemel", ("vae", "vocoder", "train")))
    add_checkpoints(stage, ("vae.pt",))
    cached_step("vae-only", stage, ["samples/0.wav", "samples/1.wav", "samples/2.wav", "report.md"],
                lambda s: (run_python(["sample_vae.py", "--num", "3", "--seed", "1", "--out-dir", "samples"], s),
                           run_python(["evaluate.py", "--data", str(data / "test"), "--out", "report.md"], s)), data)


def build_notebook(stage: Path, data: Path) -> None:
    cached_step("notebook", stage, ["model.ipynb", "checkpoints/tiny_vae.pt", "samples/0.wav", "samples/1.wav",
                                    "samples/2.wav"],
                lambda s: run_notebook(s, "model.ipynb", {"TRAIN": True, "data_dir": str(data)}), data)


BUILDERS = {"reference-solution": build_reference_solution, "vae-only": build_vae_only, "notebook": build_notebook}
"""Examples that need more than their sources; the others are their sources as they are."""


def write_zip(stage: Path, target: Path, top: str) -> Path:
    """Zip ``stage`` under the folder ``top/``: sorted entries, fixed timestamps, nothing from LEFT_OUT."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            relative = path.relative_to(stage)
            if LEFT_OUT & set(relative.parts):
                continue
            entry = zipfile.ZipInfo(f"{top}/{relative.as_posix()}", date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, path.read_bytes())
    os.replace(tmp, target)
    return target


def build(name: str, out_dir: Path = HERE, data: Path = DEFAULT_DATA) -> Path:
    """Build ``out_dir/<name>.zip``; returns its path. Raises BuildError saying what is missing."""
    if name in BUILDERS and not (data / "manifest.csv").is_file():
        raise BuildError(f"{data}: no data set (manifest.csv). Run `make data` first.")
    with tempfile.TemporaryDirectory(prefix=f"example-{name}-") as folder:
        stage = Path(folder) / name
        stage_sources(name, stage)
        if name in BUILDERS:
            BUILDERS[name](stage, data)
        target = write_zip(stage, out_dir / f"{name}.zip", name)
    if target.stat().st_size > MAX_ZIP_BYTES:
        raise BuildError(f"{target}: {target.stat().st_size / 1e6:.1f} MB, over the examples' {MAX_ZIP_BYTES / 1e6:g} MB")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"examples to build (default: all): {', '.join(EXAMPLES)}")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the data set (default data/embedded)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the zips (default submissions/)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(EXAMPLES))
    if unknown:
        parser.error(f"unknown example(s) {', '.join(unknown)}; the examples are {', '.join(EXAMPLES)}")
    for name in args.names or EXAMPLES:
        started = time.perf_counter()
        try:
            target = build(name, args.out, args.data.resolve())
        except BuildError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"{target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target}: "
              f"{target.stat().st_size / 1e6:.2f} MB in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
