"""The student environment: the Python packages student code runs with, never the grader's own ``.venv``.

A rubric names a requirements file (``[environment] requirements``, default
``environments/course.txt``) that pins every package exactly. It is built once into
``.cache/environments/<digest[:16]>/``, a virtual environment keyed by the file's bytes
and the Python version (:attr:`StudentEnvironment.digest`): ``make setup`` builds the
bundled one, ``grade env build [--rubric FILE]`` any other, and a second build is a
no-op. The sandbox (:func:`grader.sandbox.run`) mounts it read-only at its own path with
its numba cache, puts its ``bin`` first in ``PATH`` and sets :meth:`StudentEnvironment.variables`.

The environment's digest is part of every result's cache key (:func:`grader.cache.cache_key`),
and every run records which environment it ran with (:meth:`StudentEnvironment.describe`).
Packages the course wants but cannot have are named in the requirements file's header
(``# unavailable: NAME: reason``) and so in :attr:`StudentEnvironment.unavailable`.

How a build is made safe to share: it is built in place under a lock, and marked ready
(a ``.ready`` file holding its build time and size) only when complete, after every
package imported and numba's cache for librosa was warmed. It is not built elsewhere and
renamed: a virtual environment's scripts and numba's cache entries name their absolute
paths. A folder found without the mark is a build that was stopped; the next build
starts it over.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from reference import PROJECT_ROOT
from reference.files import atomic_path

if TYPE_CHECKING:
    from grader.rubric import Rubric

BUNDLED_REQUIREMENTS = PROJECT_ROOT / "environments" / "course.txt"
"""The course's environment, what every rubric uses unless it names another."""
ENVIRONMENTS_FOLDER = PROJECT_ROOT / ".cache" / "environments"
"""Where environments are built, one folder per digest."""
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
"""The interpreter environments are made with: the grader's own base interpreter (Debian's, under ``/usr``, so
that student code running as an unprivileged user can read it), hence the grader's Python version."""
READY_MARK = ".ready"
"""The file, in an environment's folder, that says its build is complete (JSON: build seconds and size)."""
BUILD_COMMANDS = "`make setup` (the bundled environment) or `grade env build --rubric RUBRIC`"
"""What to run when an environment is not built; named in every error about it."""

_UNAVAILABLE = re.compile(r"#\s*unavailable:\s*([A-Za-z0-9._-]+):\s*(\S.*)")
_VERIFIED_MODULES = ("numpy", "scipy", "pandas", "matplotlib", "seaborn", "sklearn", "tqdm", "librosa", "soundfile",
                     "pesq", "pystoi", "IPython", "ipykernel", "nbclient", "nbformat", "jupyter_client", "h5py",
                     "torch", "tensorflow", "tf_keras", "keras")
"""Imported once by every build (those installed), so that a build whose packages do not import is never ready."""
_REPORTED = (("torch", ("torch",)), ("tensorflow", ("tensorflow", "tensorflow-cpu")), ("librosa", ("librosa",)))
"""The packages a run's record names, each with the distributions that provide it."""

# Run by the environment's own Python when a build ends: import what is there, then call librosa's
# numba-compiled paths that students' code reaches (load with resampling, MFCC, mel, pitch shift, time
# stretch, trim, Griffin-Lim), so numba writes its cache to NUMBA_CACHE_DIR.
_WARM = """
import importlib, importlib.util, sys
for name in sys.argv[1:]:
    if importlib.util.find_spec(name) is not None:
        importlib.import_module(name)
if importlib.util.find_spec("librosa") is not None:
    import numpy as np, soundfile, librosa
    t = np.arange(22050, dtype=np.float32) / 22050
    wav = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    soundfile.write("warm.wav", wav, 22050)
    y, sr = librosa.load("warm.wav", sr=16000)
    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128, power=1.0)
    librosa.power_to_db(mel ** 2, ref=np.max)
    librosa.effects.pitch_shift(y, sr=sr, n_steps=2)
    librosa.effects.time_stretch(y, rate=1.1)
    librosa.effects.trim(y, top_db=30)
    librosa.feature.inverse.mel_to_audio(mel, sr=sr, n_iter=2)
    librosa.util.localmax(mel[0])
"""

_LOG_PREFIX = (r"(?:[IWEF]\d{4} \d+:\d+:\d+\.\d+ +\d+ [\w.]+:\d+\] "
               r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] [\w/.]+:\d+\] )")
_CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: [\w ,.]*rebuild TensorFlow with the appropriate compiler flags\."
    r"|" + _LOG_PREFIX + r"(?:oneDNN custom operations are on|This TensorFlow binary is optimized"
    r"|Could not find cuda drivers|TF-TRT Warning|Unable to register cu\w+ factory|failed call to cuInit"
    r"|Cannot dlopen some GPU libraries|computation placer already registered|Unable to register cu\w+ plugin"
    r"|Your kernel may have been built without NUMA support|successful NUMA node read).*")
"""TensorFlow's start-up notices, whole lines: printed before ``TF_CPP_MIN_LOG_LEVEL`` is read, or about CUDA,
which the CPU build never has. Each part is a fixed text or a character class followed by a fixed text, matched
whole (``fullmatch``) against one line: linear in the line."""


def without_chatter(text: str) -> str:
    """``text`` (a run's stderr) without TensorFlow's start-up notices (:data:`_CHATTER`), for the report.

    Only whole lines that are known notices go; everything else, TensorFlow's warnings about
    the student's code included, stays.
    """
    return "".join(line for line in text.splitlines(keepends=True) if not _CHATTER.fullmatch(line.rstrip("\r\n")))


class StudentEnvironmentError(RuntimeError):
    """An environment that cannot be used or built; the message says what to run."""


@dataclass(frozen=True)
class BuildReport:
    """What :meth:`StudentEnvironment.build` did."""

    built: bool
    """False: it was ready already (a no-op)."""
    seconds: float
    """Wall seconds the build took (when it was built, however long ago)."""
    size_bytes: int
    """Disk the environment takes, in allocated bytes (its numba cache included)."""


@dataclass(frozen=True)
class StudentEnvironment:
    """One built (or buildable) student environment; make it with :meth:`of`, :func:`for_rubric` or :func:`bundled`."""

    requirements: Path
    """The requirements file (exact pins, installed with ``pip install --no-deps -r``)."""
    digest: str
    """sha256 (hex) of the requirements file's bytes and the Python version it is built for."""
    prefix: Path
    """The virtual environment's folder: ``.cache/environments/<digest[:16]>/``."""
    numba_cache: Path
    """numba's cache for this environment's librosa, warmed by the build (inside :attr:`prefix`)."""
    legacy_keras: bool = False
    """Run with ``TF_USE_LEGACY_KERAS=1``: ``tensorflow.keras`` is Keras 2 (tf-keras), as students' notebooks expect."""

    @classmethod
    def of(cls, requirements: str | os.PathLike, legacy_keras: bool = False) -> StudentEnvironment:
        """The environment of ``requirements``.

        Raises:
            StudentEnvironmentError: the file cannot be read.
        """
        requirements = Path(requirements).resolve()
        try:
            content = requirements.read_bytes()
        except OSError as error:
            raise StudentEnvironmentError(f"the environment's requirements file {requirements} cannot be read "
                                    f"({error.strerror}); fix [environment] requirements in the rubric") from None
        digest = hashlib.sha256(content + b"\0python " + platform.python_version().encode()).hexdigest()
        prefix = ENVIRONMENTS_FOLDER / digest[:16]
        return cls(requirements, digest, prefix, prefix / "numba-cache", legacy_keras)

    @property
    def name(self) -> str:
        """The requirements file's stem (``course``)."""
        return self.requirements.stem

    @property
    def ready(self) -> bool:
        """Built completely (:meth:`build`); a stopped build is not."""
        return (self.prefix / READY_MARK).is_file()

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.prefix / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return self.prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    @property
    def interpreter_home(self) -> Path:
        """Where the environment's base interpreter lives (its standard library): mounted with it where not under /usr."""
        return Path(sys.base_prefix).resolve()

    def variables(self, cpu_threads: int) -> dict[str, str]:
        """The environment variables a run gets from the environment (the sandbox sets the rest).

        ``cpu_threads``: the rubric's ``cpu_threads``. TensorFlow's intra- and inter-op pools
        take it here; torch's intra-op threads follow ``OMP_NUM_THREADS``, which the sandbox
        sets (torch has no variable for its inter-op pool, which only ``torch.jit.fork`` uses).
        """
        variables = {"TF_NUM_INTRAOP_THREADS": str(cpu_threads), "TF_NUM_INTEROP_THREADS": str(cpu_threads),
                     "TF_CPP_MIN_LOG_LEVEL": "2"}  # TensorFlow's C++ logs: errors only
        if self.legacy_keras:
            variables["TF_USE_LEGACY_KERAS"] = "1"
        return variables

    @functools.cached_property
    def unavailable(self) -> dict[str, str]:
        """Packages the course wants that this environment cannot provide, with why: the requirements file's
        ``# unavailable: NAME: reason`` lines."""
        found = {}
        for line in self.requirements.read_text().splitlines():
            match = _UNAVAILABLE.fullmatch(line.strip())
            if match:
                found[match.group(1)] = match.group(2)
        return found

    def versions(self) -> dict[str, str]:
        """Every installed distribution's version by its name as published (``torch``: ``2.13.0+cpu``), read from
        the dist-info ``METADATA`` files without importing anything; empty when the environment is not built."""
        return dict(self._versions)

    @functools.cached_property
    def _versions(self) -> tuple[tuple[str, str], ...]:
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.scandir(self.site_packages), key=lambda e: e.name):
                if entry.name.endswith(".dist-info"):
                    headers = _metadata_headers(Path(entry.path) / "METADATA")
                    if "Name" in headers and "Version" in headers:
                        found.append((headers["Name"], headers["Version"]))
        return tuple(found)

    def has_module(self, name: str) -> bool:
        """Whether ``import name`` (a top-level name) finds something in this environment: its site-packages,
        or Python's standard library. False for everything while it is not built."""
        return name in self._module_names or name in sys.stdlib_module_names or name in sys.builtin_module_names

    @functools.cached_property
    def _module_names(self) -> frozenset[str]:
        names = set()
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.site_packages):
                stem = entry.name.split(".")[0]
                if entry.is_dir() and "." not in entry.name and entry.name != "__pycache__":
                    names.add(entry.name)  # a package, regular or namespace
                elif entry.name.endswith((".py", ".so", ".pyd")) and stem.isidentifier():
                    names.add(stem)  # a module, or an extension module (name.cpython-311-x86_64-linux-gnu.so)
        return frozenset(names)

    def describe(self) -> str:
        """One line for a run's record: ``course 1a2b3c4d5e6f: torch 2.13.0+cpu, tensorflow 2.21.0, librosa 0.11.0``."""
        versions = {canonicalize_name(name): version for name, version in self._versions}
        if not versions:
            return f"{self.name} {self.digest[:12]} (not built)"
        named = [f"{label} {versions[dist]}" for label, dists in _REPORTED for dist in dists if dist in versions]
        return f"{self.name} {self.digest[:12]}: " + ", ".join(named)

    def missing_message(self) -> str:
        """Why a run cannot start without this environment, and what to run."""
        return (f"the student environment {self.name} ({self.requirements}) is not built at {self.prefix}: "
                f"run {BUILD_COMMANDS}")

    def build(self, force: bool = False) -> BuildReport:
        """Build the environment unless it is ready (then a no-op); ``force`` builds it again.

        A virtual environment made with :data:`BASE_PYTHON` gets the requirements with
        ``pip install --no-deps -r`` (the grader's own pip), then its own Python imports every
        package a course uses that it has and warms numba's cache for librosa
        (``NUMBA_CACHE_DIR`` = :attr:`numba_cache`); everything is made readable by all users
        (student code runs as uid 65534). Concurrent builds of one environment wait for each
        other (a lock file beside it).

        Raises:
            StudentEnvironmentError: pip or the import check failed (the tail of their output is in the message),
                or the base interpreter cannot be read by other users.
        """
        if self.ready and not force:
            return self._report(built=False)
        ENVIRONMENTS_FOLDER.mkdir(parents=True, exist_ok=True)
        with _locked(ENVIRONMENTS_FOLDER / f"{self.prefix.name}.lock"):
            if self.ready and not force:  # built by another process while this one waited
                return self._report(built=False)
            started = time.monotonic()
            if self.prefix.exists():
                shutil.rmtree(self.prefix)
            for stale in ("_versions", "_module_names"):
                self.__dict__.pop(stale, None)
            previous_umask = os.umask(0o022)
            try:
                self._install()
                self._warm()
                size = _readable_by_all_and_size(self.prefix)
            finally:
                os.umask(previous_umask)
            seconds = round(time.monotonic() - started, 1)
            mark = {"requirements": str(self.requirements), "digest": self.digest, "python": platform.python_version(),
                    "seconds": seconds, "size_bytes": size}
            with atomic_path(self.prefix / READY_MARK) as staging:
                staging.write_text(json.dumps(mark, indent=2))
                os.chmod(staging, 0o644)
        return self._report(built=True)

    def _report(self, built: bool) -> BuildReport:
        mark = json.loads((self.prefix / READY_MARK).read_text())
        return BuildReport(built, float(mark["seconds"]), int(mark["size_bytes"]))

    def _install(self) -> None:
        if not str(BASE_PYTHON.resolve()).startswith("/usr/") or not os.stat(BASE_PYTHON).st_mode & stat.S_IROTH:
            raise StudentEnvironmentError(f"{BASE_PYTHON} is not a system interpreter under /usr readable by all users; "
                                    "make the grader's .venv with Debian's python3 (make setup does)")
        _checked([str(BASE_PYTHON), "-m", "venv", "--without-pip", str(self.prefix)], "python -m venv")
        _checked([sys.executable, "-m", "pip", "--python", str(self.python), "install", "--no-deps", "--no-input",
                  "--disable-pip-version-check", "--no-warn-script-location", "-r", str(self.requirements)],
                 f"pip install --no-deps -r {self.requirements}",
                 hint="is the package index reachable, and does it have every pinned version?")

    def _warm(self) -> None:
        with tempfile.TemporaryDirectory(prefix="grader-env-warm-") as scratch:
            env = {"PATH": f"{self.prefix}/bin:/usr/bin:/bin", "HOME": scratch, "NUMBA_CACHE_DIR": str(self.numba_cache),
                   "MPLBACKEND": "Agg", "LANG": "C.UTF-8", **self.variables(cpu_threads=1)}
            _checked([str(self.python), "-c", _WARM, *_VERIFIED_MODULES], "the import check", cwd=scratch, env=env,
                     hint="a pinned package does not import with the others; fix its pin in the requirements file")


def for_rubric(rubric: Rubric) -> StudentEnvironment:
    """The environment ``rubric`` runs student code with (its ``[environment]`` table)."""
    return StudentEnvironment.of(rubric.requirements_path(), legacy_keras=rubric.environment.legacy_keras)


def bundled(legacy_keras: bool = False) -> StudentEnvironment:
    """The course's environment (:data:`BUNDLED_REQUIREMENTS`); Keras 3 unless ``legacy_keras``."""
    return StudentEnvironment.of(BUNDLED_REQUIREMENTS, legacy_keras)


def _metadata_headers(path: Path) -> dict[str, str]:
    """The ``Name`` and ``Version`` headers of a dist-info ``METADATA`` file (read up to the first blank line)."""
    headers = {}
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as stream:
        for line in stream:
            if not line.strip():
                break
            key, _, value = line.partition(":")
            if key in ("Name", "Version"):
                headers[key] = value.strip()
    return headers


def _checked(argv: list[str], what: str, hint: str = "", **kwargs) -> None:
    """Run ``argv``; on failure raise :class:`StudentEnvironmentError` with the tail of its output."""
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", **kwargs)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-15:])
        raise StudentEnvironmentError(f"building the student environment failed: {what} exited with {done.returncode}"
                                f"{'; ' + hint if hint else ''}\n{tail}")


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _readable_by_all_and_size(root: Path) -> int:
    """Give every file under ``root`` read (and folders and programs execute) permission for all users; return
    the bytes of disk they take (allocated blocks). The tree is the grader's own build, walked as such."""
    size = 0
    for folder, folders, files in os.walk(root):
        for name in [*folders, *files]:
            path = os.path.join(folder, name)
            state = os.lstat(path)
            if stat.S_ISLNK(state.st_mode):
                continue
            size += state.st_blocks * 512
            wanted = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if stat.S_ISDIR(state.st_mode) or state.st_mode & stat.S_IXUSR:
                wanted |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            if state.st_mode & wanted != wanted:
                os.chmod(path, stat.S_IMODE(state.st_mode) | wanted)
    return size + os.lstat(root).st_blocks * 512
