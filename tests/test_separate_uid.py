"""Isolation without namespaces (grader/sandbox/separate_uid.py), on this machine made namespace-less for real: the
grader runs as root without CAP_SYS_ADMIN (``capsh --drop=cap_sys_admin``, as in a Docker container), where
bubblewrap cannot create namespaces, and student code runs as a separate uid of its own.

Each test runs a small script with the grader's interpreter in that state, on a copy of the project (its code,
rubrics and environments' requirements, and a link to the built student environment) that is locked with
``python -m grader.sandbox.separate_uid lock`` as Gradescope's setup.sh does, or left open to see the refusal.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader import sandbox
from grader.sandbox.separate_uid import UID_POOL
from reference import PROJECT_ROOT

CAPSH = shutil.which("capsh")
pytestmark = [
    pytest.mark.skipif(sandbox.BWRAP is None or CAPSH is None, reason="needs bubblewrap and capsh (libcap2-bin)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the separate uid mode is the root grader's"),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's code, its student environment linked, locked as setup.sh locks it."""
    root = tmp_path_factory.mktemp("separate-uid") / "project"
    root.mkdir()
    environments = PROJECT_ROOT / ".cache" / "environments"
    for folder in (*root.parents, *environments.resolve().parents):  # pytest's folders, a clone's in mktemp's (0700):
        os.chmod(folder, os.stat(folder).st_mode | 0o001)  # student code must reach the environment by its path
    for name in ("grader", "reference", "rubrics", "environments"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    (root / ".cache").mkdir()
    (root / ".cache" / "environments").symlink_to(environments)
    (root / "secret-answer-key.toml").write_text("q1 = 'b'\n")
    locked = subprocess.run([sys.executable, "-m", "grader.sandbox.separate_uid", "lock", str(root)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    return root


def namespace_less(project: Path, script: str, *arguments: str) -> dict:
    """Run ``script`` (Python, with ``grader`` imported from ``project``) as root without CAP_SYS_ADMIN; what it
    printed last, as JSON."""
    path = project.parent / "script.py"
    path.write_text(textwrap.dedent(script))
    done = subprocess.run([CAPSH, "--drop=cap_sys_admin", "--", "-c", 'exec "$0" "$@"', sys.executable, str(path),
                           *arguments], cwd=project, env={**os.environ, "PYTHONPATH": str(project)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


RUN = """
    import json, sys, tempfile, textwrap
    from pathlib import Path
    from grader import sandbox
    from grader.limits import RunLimits

    def run(code, **limits):
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "student.py").write_text(textwrap.dedent(code))
            result = sandbox.run(["python", "student.py"], folder, limits=RunLimits(**limits))
            return {"verdict": result.verdict, "message": result.message, "stdout": result.stdout,
                    "stderr": result.stderr[-600:], "isolation": result.isolation, "workdir": folder}
"""


def test_runs_as_a_uid_of_its_own_that_reads_none_of_the_graders_files(project):
    student = f"""
        import json, os, tempfile
        seen = {{}}
        for path in ("secret-answer-key.toml", "rubrics/audio-generative-models.toml", "grader/pipeline.py",
                     "reference/generate.py"):
            try:
                open(os.path.join({str(project)!r}, path)).read(1)
                seen[path] = "read"
            except OSError as error:
                seen[path] = type(error).__name__
        print(json.dumps([os.getuid(), os.getgroups(), tempfile.gettempdir(), os.stat(".").st_mode & 0o777, seen]))
    """
    kind, result = namespace_less(project, RUN + f"""
    print(json.dumps([sandbox.isolation_kind(), run({student!r})]))
    """)
    assert kind == "separate_uid"
    assert result["verdict"] == "ok", result
    uid, groups, temporary, mode, seen = json.loads(result["stdout"])
    assert uid in UID_POOL and groups == [] and mode == 0o700
    assert Path(temporary).parent.parent == Path(result["workdir"]).parent  # the run's own, beside its work folder
    assert set(seen.values()) == {"PermissionError"}, seen
    assert "separate uid" in result["isolation"] and "NOT isolated: network isolation" in result["isolation"]


def test_a_daemon_does_not_survive_its_run_nor_do_its_files_in_the_shared_tmp(project):
    student = """
        import os, time
        open("/tmp/left-by-student", "w").write("state for the next run")
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(600)
            os._exit(0)
        print("daemon started")
    """
    found = namespace_less(project, RUN + f"""
    from grader.sandbox.separate_uid import UID_POOL, processes_of
    result = run({student!r})
    alive = [pid for uid in UID_POOL for pid in processes_of(uid)]
    print(json.dumps([result["verdict"], result["stdout"], alive, Path("/tmp/left-by-student").exists()]))
    """)
    verdict, stdout, alive, left = found
    assert verdict == "ok" and "daemon started" in stdout
    assert alive == [] and left is False


def test_a_fork_bomb_is_held_by_the_process_limit(project):
    student = """
        import os
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    import time; time.sleep(30); os._exit(0)
                children += 1
        except OSError as error:
            print("refused after", children, type(error).__name__)
    """
    result = namespace_less(project, RUN + f"""
    print(json.dumps(run({student!r}, processes=20, wall_seconds=20)))
    """)
    assert result["verdict"] == "ok", result
    assert "refused after" in result["stdout"] and int(result["stdout"].split()[2]) < 20


def test_two_runs_at_once_get_different_uids(project):
    result = namespace_less(project, RUN + """
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(lambda _: run("import os, time; time.sleep(1); print(os.getuid())")["stdout"].strip(),
                              range(2)))
    print(json.dumps(found))
    """)
    assert len(set(result)) == 2 and all(int(uid) in UID_POOL for uid in result)


def test_an_open_project_is_refused_with_the_command_that_closes_it(project):
    (project / "grader" / "opened.txt").write_text("")
    os.chmod(project / "grader", 0o755)
    try:
        result = namespace_less(project, RUN + """
    print(json.dumps(run("print(1)")))
    """)
    finally:
        os.chmod(project / "grader", 0o750)
    assert result["verdict"] == "sandbox_unavailable"
    assert f"{sys.executable} -m grader.sandbox.separate_uid lock {project}" in result["message"]
    assert str(project / "grader") in result["message"]


def test_no_traceback_where_neither_namespaces_nor_other_uids_exist(tmp_path):
    """Root of a user namespace that maps only itself and forbids nesting: no way to isolate, said in words."""
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(RUN + """
    print(json.dumps(run("print(1)")))
    """))
    done = subprocess.run([sandbox.BWRAP, "--unshare-user", "--disable-userns", "--bind", "/", "/", "--dev", "/dev",
                           "--proc", "/proc", "--unshare-pid", "--", sys.executable, str(script)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["verdict"] == "sandbox_unavailable"
    assert "cannot run as a separate user" in result["message"] and "Traceback" not in done.stderr
