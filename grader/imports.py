"""What a failed run says about a package it could not import, turned into a finding a person can act on.

A run that ends in ``ModuleNotFoundError``/``ImportError`` did not fail on its own merits: the
course environment lacks something the student's code imports. The finding names the
module, says whether the course environment has its package, and tells the instructor how
to add it (the requirements file, then ``grade env build``) and the student what the course
does not provide.
"""
from __future__ import annotations

import re
from typing import Protocol

from packaging.utils import canonicalize_name

_TAIL_CHARS = 20_000
"""Only the end of a run's output is searched: that is where Python prints the error that ended it."""
_MISSING = re.compile(r"(?:ModuleNotFoundError: No module named|ImportError: No module named) '?([\w.]++)")
"""The two forms Python prints; linear: a fixed prefix, then one possessive run of name characters."""

PACKAGE_OF_MODULE = {"sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "pillow", "yaml": "pyyaml",
                     "skimage": "scikit-image", "tf_keras": "tf-keras", "google.colab": "google-colab"}
"""Import names whose package (on the package index) is called otherwise."""


class Environment(Protocol):
    """What a finding needs to know of the course environment (:class:`grader.environment.StudentEnvironment`)."""

    requirements: object
    unavailable: dict[str, str]

    def has_module(self, name: str) -> bool: ...

    def versions(self) -> dict[str, str]: ...


def missing_module(output: str) -> str | None:
    """The module a run's output says could not be imported (the last such line), or None."""
    found = _MISSING.findall(output[-_TAIL_CHARS:])
    return found[-1] if found else None


def missing_package_finding(module: str, environment: Environment | None) -> str:
    """One sentence for the report about ``module``, which a run could not import."""
    top = module.split(".")[0]
    package = PACKAGE_OF_MODULE.get(module) or PACKAGE_OF_MODULE.get(top) or top
    if environment is None:
        return f"The run could not import `{module}` (package `{package}`)."
    if package in environment.unavailable or top in environment.unavailable:
        reason = environment.unavailable.get(package) or environment.unavailable[top]
        return (f"The run could not import `{module}`: the course environment cannot provide `{package}` "
                f"({reason}). Students: use what the course environment has instead.")
    if environment.has_module(top):
        return (f"The run could not import `{module}`, although the course environment has `{top}`: "
                f"a part of it is missing or the code imports it wrongly.")
    return (f"The run could not import `{module}`: the course environment does not provide `{package}`. "
            f"Students: this package is not available when grading. Instructor: add `{package}` (pinned) to "
            f"{environment.requirements} and run `grade env build`.")


def install_finding(cell: int, line: str, packages: list[str], environment: Environment | None) -> str:
    """One sentence about a notebook's install line (``!pip install ...``), which the grader did not run."""
    if not packages or environment is None:
        return f"Cell {cell}: `{line}` was not run (no network when grading)."
    wanted = [re.split(r"[<>=!~\[; ]", package, maxsplit=1)[0] for package in packages]
    missing = [name for name in wanted if not _provides(environment, name)]
    if not missing:
        return (f"Cell {cell}: `{line}` was not run (no network when grading); the course environment has "
                f"{', '.join(wanted)}.")
    return (f"Cell {cell}: `{line}` was not run (no network when grading); the course environment does not "
            f"provide {', '.join(missing)}.")


def _provides(environment: Environment, package: str) -> bool:
    """Whether ``environment`` has the distribution ``package`` or its CPU build (``tensorflow-cpu`` for
    ``tensorflow``), names compared as pip does."""
    normal = canonicalize_name(package)
    return any(canonicalize_name(name) in (normal, f"{normal}-cpu") for name in environment.versions())
