"""The sandbox as a package: what reads results does not load its machinery, and its first program
(``sandbox-init``) is built by ``make setup``, never while grading.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from grader import sandbox
from grader.sandbox import init_program
from grader.sandbox.host import this_host
from grader.sandbox.types import SandboxSetupError, Verdict
from reference import PROJECT_ROOT

MACHINERY = ("grader.sandbox.bwrap", "grader.sandbox.cgroups", "grader.sandbox.host", "grader.sandbox.init_program",
             "grader.sandbox.launch", "grader.sandbox.seccomp", "grader.sandbox.supervise", "grader.sandbox.workdir")
"""The modules a run needs and a report does not."""


def loaded_by(code: str) -> list[str]:
    """The ``grader.sandbox`` modules a fresh interpreter has loaded after running ``code``."""
    probe = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('grader.sandbox'))))"],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return json.loads(probe.stdout.splitlines()[-1])


def test_reading_and_rendering_results_loads_none_of_the_sandbox_machinery():
    loaded = loaded_by("import grader.results, grader.report, grader.report.html, grader.report.exports")
    assert not set(loaded) & set(MACHINERY), loaded
    assert "grader.sandbox.types" in loaded  # results read runs through the light module


def test_the_first_run_loads_the_machinery():
    assert set(MACHINERY) <= set(loaded_by("from grader import sandbox\nsandbox.isolation_problem()"))


@pytest.fixture
def builds(tmp_path, monkeypatch):
    """``sandbox-init``'s builds kept in an empty folder of ``tmp_path``; the host's facts found again."""
    monkeypatch.setattr(init_program, "FOLDER", tmp_path / "sandbox")
    this_host.cache_clear()
    yield tmp_path / "sandbox"
    this_host.cache_clear()


def test_a_grader_never_builds_sandbox_init_and_says_to_run_make_setup(builds, tmp_path):
    with pytest.raises(SandboxSetupError, match="run `make setup`"):
        init_program.built()
    assert not builds.exists()
    if sandbox.BWRAP is not None:
        result = sandbox.run(["true"], tmp_path)
        assert result.verdict is Verdict.SANDBOX_UNAVAILABLE and "run `make setup`" in result.message, result
        assert "make setup" in sandbox.isolation_problem()


@pytest.mark.skipif(not any(os.access(os.path.join(folder, "cc"), os.X_OK)
                            for folder in os.environ.get("PATH", "").split(os.pathsep)),
                    reason="no C compiler (cc) to build sandbox-init with")
def test_make_setup_builds_sandbox_init_once_per_version_of_its_source(builds):
    assert init_program.build().startswith("built ")
    program = init_program.built()
    assert program == init_program.program_path() and program.parent == builds
    assert stat.S_IMODE(program.stat().st_mode) == 0o755
    assert subprocess.run([program], capture_output=True).returncode == 125  # no arguments: refuses, says why
    assert init_program.build().endswith(" is built")  # a no-op when up to date
    assert [path.name for path in builds.iterdir()] == [program.name]  # no scratch or note left beside it


def test_without_a_c_compiler_runs_use_setpriv_and_prlimit(builds, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    note = init_program.build()
    assert "no C compiler" in note and "setpriv and prlimit" in note
    assert init_program.built() is None  # not an error: the fallback, as make setup said
