"""The autograder zip in a container like Gradescope's (``make test-gradescope``; ``make test`` leaves it out): setup.sh
once, then run_autograder for the reference solution, a broken submission, a hostile one and a run killed early,
each results.json validated against Gradescope's specification (tests/gradescope_schema.py).

The container (tests/gradescope_container.py) is namespace-less as Gradescope's is: no user namespace can be made
in it and CAP_SYS_ADMIN is dropped, so bubblewrap cannot run and student code runs under the separate-uid fallback.
Its memory is a 768 MB cgroup (Gradescope's default) while run_autograder runs, pinned to one CPU (Gradescope's
half a CPU cannot be enforced here: the cpu cgroup is not writable).

Not covered: Gradescope's own image and network. The host's ``.venv`` and built student environment
(``.cache/environments``) are provided in /autograder/source (through overlays) rather than installed by setup.sh,
which takes minutes and the network; setup.sh's skipping of what is installed is what lets it run here. setup.sh runs
with more memory (:data:`SETUP_MEMORY_BYTES`): Gradescope's image build is not bound by a submission's limit.
Needs root, cgroup v1 memory and bubblewrap (skipped otherwise).
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import jsonschema
import pytest

from grader.commands.export import GRADER_PEAK_MEMORY_BYTES, MB, write_autograder_zip
from grader.commands.gradescope import PROVISIONAL_OUTPUT
from reference import PROJECT_ROOT
from tests import hostile_corpus
from tests.gradescope_container import (MEMORY_CGROUP_ROOT, Container, Overlay, remove_container,
                                        root_processes_memory_bytes)
from tests.gradescope_schema import GRADESCOPE_SCHEMA

pytestmark = [pytest.mark.gradescope, pytest.mark.skipif(
    os.geteuid() != 0 or not MEMORY_CGROUP_ROOT.is_dir() or shutil.which("bwrap") is None,
    reason="the emulation needs root, cgroup v1 memory and bubblewrap")]

SUBMISSION_MEMORY_BYTES = 768 * MB
"""Gradescope's default memory for one submission's container."""
SETUP_MEMORY_BYTES = 4096 * MB
"""setup.sh's memory (the image build; see the module's notes)."""
SETUP_SECONDS = 600
"""The test's bound on setup.sh (the reference warm-up and the baseline on one CPU)."""
GRADING_SECONDS = 600
"""The test's bound on one run_autograder: Gradescope's default timeout."""
KILLED_AFTER_SECONDS = 8
"""When the early-killed run_autograder is stopped: after its provisional results.json, before any grade."""
RESULTS = Path("autograder/results/results.json")
TIMINGS: dict[str, float] = {}
"""Seconds each step took, printed at the end."""


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Container:
    """A container folder in which setup.sh has run once: Gradescope's image of the exported zip."""
    root = tmp_path_factory.mktemp("gradescope")
    container = Container(root, SETUP_MEMORY_BYTES, cpu=max(os.sched_getaffinity(0)),
                          overlays=[Overlay(PROJECT_ROOT / ".venv", ".venv"),
                                    Overlay(PROJECT_ROOT / ".cache" / "environments", ".cache/environments")])
    for folder in ("source", "submission", "results"):
        (container.autograder / folder).mkdir(parents=True)
    unpack(write_autograder_zip(root / "autograder.zip"), container.autograder / "source")
    shutil.copy2(container.autograder / "source" / "run_autograder", container.autograder / "run_autograder")
    checks = container.run("unshare --user true && echo 'a user namespace was made';"
                           "bwrap --unshare-all --ro-bind / / true && echo 'bubblewrap ran';"
                           "grep CapBnd /proc/self/status", timeout_seconds=60)
    assert "was made" not in checks.output and "bubblewrap ran" not in checks.output, checks.output
    bounding = int(checks.output.split("CapBnd:")[1].split()[0], 16)
    assert not bounding & 1 << 21, "CAP_SYS_ADMIN is still in the bounding set"
    setup = container.run("bash /autograder/source/setup.sh", timeout_seconds=SETUP_SECONDS)
    TIMINGS["setup.sh"] = setup.seconds
    assert setup.returncode == 0, setup.output[-4000:]
    container.memory_bytes = SUBMISSION_MEMORY_BYTES
    yield container
    print("\nGradescope emulation, seconds: " + ", ".join(f"{step} {seconds:.1f}" for step, seconds in TIMINGS.items()))
    remove_container(container)


def unpack(archive: Path, into: Path) -> None:
    """Unzip ``archive`` into ``into`` as Gradescope does, keeping each entry's executable bit."""
    with zipfile.ZipFile(archive) as opened:
        for entry in opened.infolist():
            opened.extract(entry, into)
            mode = entry.external_attr >> 16 & 0o777
            if mode and not entry.is_dir():
                os.chmod(into / entry.filename, mode)


def grade(container: Container, upload: Path, step: str, kill_after_seconds: float | None = None,
          on_poll=None) -> dict:
    """Put ``upload`` (a zip, unzipped as Gradescope unzips an upload) in /autograder/submission, run
    run_autograder, and return its results.json, validated."""
    for folder in ("submission", "results"):
        shutil.rmtree(container.autograder / folder)
        (container.autograder / folder).mkdir()
    unpack(upload, container.autograder / "submission")
    completed = container.run("/autograder/run_autograder", timeout_seconds=GRADING_SECONDS,
                              kill_after_seconds=kill_after_seconds, on_poll=on_poll)
    TIMINGS[step] = completed.seconds
    results = container.root / RESULTS
    assert results.is_file(), f"{step}: no results.json\n{completed.output[-4000:]}"
    payload = json.loads(results.read_text())
    jsonschema.validate(payload, GRADESCOPE_SCHEMA)
    failed = [f"{test['name']}: {test['score']:g} / {test['max_score']:g}: {test['output'][:400]}"
              for test in payload["tests"] if test["status"] == "failed"]
    payload["_log"] = "\n".join(failed) + "\n" + completed.output
    return payload


def test_reference_solution_scores_high_within_the_graders_memory(image):
    peaks = []
    payload = grade(image, PROJECT_ROOT / "submissions" / "reference-solution.zip", "reference solution",
                    on_poll=lambda group: peaks.append(root_processes_memory_bytes(group)))
    peak = max(peaks, default=0)
    print(f"\nreference solution: {payload['score']:g} points; the grader's peak memory (proportional set size): "
          f"{peak / MB:.0f} MB (export.py allows {GRADER_PEAK_MEMORY_BYTES / MB:.0f})")
    assert payload["score"] >= 80, payload["output"] + payload["_log"][-4000:]
    assert 0 < peak <= GRADER_PEAK_MEMORY_BYTES


def test_broken_submission_scores_lower_with_the_reason(image):
    payload = grade(image, PROJECT_ROOT / "submissions" / "broken.zip", "broken submission")
    failed = [test for test in payload["tests"] if test["status"] == "failed"]
    print(f"\nbroken submission: {payload['score']:g} points")
    assert 0 < payload["score"] < 80 and failed, payload["output"] + payload["_log"][-4000:]
    assert all(test["output"].strip() for test in failed)  # each lost point says why


def test_hostile_submission_gets_a_result(image, tmp_path):
    keys = next(row for row in hostile_corpus.build(tmp_path) if row.zip.name.startswith("keys_"))
    payload = grade(image, keys.zip, "hostile submission (keyring)")
    assert payload["tests"], payload["output"] + payload["_log"][-4000:]
    assert "found a key left by another run" not in json.dumps(payload)


SNOOP = hostile_corpus.ENTRY_ARGUMENTS + '''
import os, sys, time
from pathlib import Path
beacon = Path("/tmp/snoop-daemon")  # the machine's shared /tmp: no namespace gives the run one of its own
if beacon.exists():
    print("SNOOP-DAEMON-ALIVE", time.time() - float(beacon.read_text() or 0), file=sys.stderr)
for path in ("/autograder/source/rubrics/audio-generative-models.toml", "/autograder/source/data/embedded/manifest.csv",
             "/autograder/source/.cache/heldout", "/autograder/source/reference/generate.py",
             "/autograder/results/grader"):
    try:
        open(path).read(1) if os.path.isfile(path) else os.listdir(path)
        print("SNOOP-READ", path, file=sys.stderr)
    except OSError:
        print("SNOOP-DENIED", path, file=sys.stderr)
for path in ("/autograder/results/results.json", "/autograder/source/grader/__init__.py", "/autograder/run_autograder"):
    try:
        open(path, "a").write("#")
        print("SNOOP-WROTE", path, file=sys.stderr)
    except OSError:
        print("SNOOP-DENIED-WRITE", path, file=sys.stderr)
if os.fork() == 0:  # a daemon that outlives the run, unless the grader ends it
    os.setsid()
    if os.fork() == 0:
        while True:
            beacon.write_text(str(time.time()))
            time.sleep(0.2)
    os._exit(0)
time.sleep(0.5)
sys.exit(1)
'''


def test_code_that_snoops_and_daemonises_reads_nothing_of_the_graders_and_does_not_outlive_its_run(image, tmp_path):
    """Where no namespace hides anything: the answer key, held-out clips, reference and results unreadable, the
    results and source not writable, and a daemon of one run gone (its beacon too) before the next run starts."""
    upload = tmp_path / "snoop_1010_1_hw3.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr("generate.py", SNOOP)
        archive.writestr("submission.toml", hostile_corpus.MANIFEST)
    payload = grade(image, upload, "hostile submission (snoops, daemonises)")
    said = json.dumps(payload)
    assert said.count("SNOOP-DENIED ") >= 5 and said.count("SNOOP-DENIED-WRITE") >= 3, payload["_log"][-4000:]
    for forbidden in ("SNOOP-READ", "SNOOP-WROTE", "SNOOP-DAEMON-ALIVE"):
        assert forbidden not in said, payload["_log"][-4000:]


def test_a_container_stopped_early_leaves_the_provisional_result(image):
    payload = grade(image, PROJECT_ROOT / "submissions" / "reference-solution.zip", "killed early",
                    kill_after_seconds=KILLED_AFTER_SECONDS)
    assert payload["score"] == 0 and payload["output"] == PROVISIONAL_OUTPUT and payload["tests"] == []

