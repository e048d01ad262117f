"""Caches that cannot go stale: each is keyed on the code that made it, at its grain.

Editing the metric code (``reference/evaluation.py``, simulated by changing its digest: the
real file is never touched) gives a new baseline and a new result key, and the class is
re-scored from the runs kept in ``OUT/runs``, with no student code run; editing the code
that runs student code, or another student environment, runs it again. Changing only the
rubric's scoring (points, bars) re-scores from what the grading kept (``OUT/evidence``):
nothing is unpacked, run or measured again.
"""
from __future__ import annotations

import dataclasses
import os

import pytest

from grader import cache, context, sandbox
from grader.batch import grade_all, plan
from grader.limits import RunLimits
from grader.pipeline import GradingSetup
from grader.results import SubmissionResult
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from grader.run_cache import RUNS_FOLDER, RunCache, restore, run_key
from grader.scoring import baseline_key
from reference import PROJECT_ROOT
from reference.files import atomic_write
from tests.helpers import write_submission, zip_folder


@pytest.fixture
def edit(monkeypatch):
    """``edit(relative)``: the digests see the project file ``relative`` as changed (its content is left alone)."""
    real = cache.file_digest

    def edit(*relatives: str) -> None:
        edited = {PROJECT_ROOT / relative for relative in relatives}
        monkeypatch.setattr(cache, "file_digest", lambda path: real(path) + ("-edited" if path in edited else ""))
        cache.code_digest.cache_clear()
        cache.build_digest.cache_clear()

    yield edit
    cache.code_digest.cache_clear()
    cache.build_digest.cache_clear()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, small_heldout, small_baseline):
    """A small held-out set and one complete submission, graded once into ``OUT``."""
    root = tmp_path_factory.mktemp("keys")
    heldout, baseline = small_heldout, small_baseline()
    setup = GradingSetup(rubric=load_rubric(DEFAULT_RUBRIC), heldout=heldout, load_baseline=lambda: baseline,
                         out_dir=root / "out")
    source = zip_folder(write_submission(root / "work" / "ada"), root / "ada_111_1_hw3.zip")
    [entry] = grade_all([source], setup, show_progress=False)
    assert entry.total >= 90 and not entry.reused
    return setup, source, SubmissionResult.read(setup.result_path(entry.submission_id))


def no_student_code(monkeypatch) -> None:
    """Make any run of student code fail the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("student code ran")
    monkeypatch.setattr(sandbox, "run", refuse)
    monkeypatch.setattr(context, "run_notebook", refuse)


def scores(result: SubmissionResult) -> dict[str, float]:
    return {item.id: item.points for item in result.items}


def test_editing_the_metric_code_rescores_the_class_without_running_student_code(graded, edit, monkeypatch):
    setup, source, first = graded
    assert first.runs and not any(run.reused for run in first.runs)
    assert any((setup.out_dir / RUNS_FOLDER).rglob("run.json"))
    old_baseline, old_key = baseline_key(setup.heldout), setup.cache_key(source)
    assert plan([source], setup)[1] == []  # unchanged: reused as it is

    edit("reference/evaluation.py")
    assert baseline_key(setup.heldout) != old_baseline
    assert setup.cache_key(source) != old_key
    assert len(plan([source], setup)[1]) == 1  # to be re-scored
    no_student_code(monkeypatch)
    [entry] = grade_all([source], setup, show_progress=False)
    again = SubmissionResult.read(setup.result_path(entry.submission_id))
    assert not entry.reused and again.cache_key == setup.cache_key(source)
    assert again.runs and all(run.reused for run in again.runs)
    assert [run.result for run in again.runs] == [run.result for run in first.runs]
    assert scores(again) == scores(first) and again.total == first.total
    assert again.timings["student_code"] == 0


def test_editing_the_run_code_runs_student_code_again(graded, edit, monkeypatch):
    setup, source, first = graded
    edit("grader/sandbox/supervise.py")
    ran = []
    real = sandbox.run
    monkeypatch.setattr(sandbox, "run", lambda *args, **kwargs: ran.append(args[0]) or real(*args, **kwargs))
    [entry] = grade_all([source], setup, show_progress=False)
    again = SubmissionResult.read(setup.result_path(entry.submission_id))
    assert len(ran) == len(first.runs) and not any(run.reused for run in again.runs)
    assert scores(again) == scores(first)


def test_force_runs_student_code_again(graded, monkeypatch):
    setup, source, first = graded
    used = []
    monkeypatch.setattr("grader.batch.grade_submission",
                        lambda source, setup, *args, **kwargs: used.append(setup) or first)
    monkeypatch.setattr("grader.batch.draw_spectrograms", lambda *args: None)
    grade_all([source], setup, force=True, show_progress=False)
    assert [s.run_cache.reuse for s in used] == [False] and setup.run_cache.reuse


def rubric_with(tmp_path, *changes: tuple[str, str]):
    """The bundled rubric with each (old, new) text change made to its file."""
    text = DEFAULT_RUBRIC.read_text()
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"rubric-{len(list(tmp_path.glob('rubric-*')))}.toml"
    path.write_text(text)
    return load_rubric(path)


MFCC_CODE_POINTS = ('title = "Audio is loaded and MFCCs are extracted with librosa"\npoints = 4',
                    'title = "Audio is loaded and MFCCs are extracted with librosa"\npoints = 5')
AUGMENTATION_POINTS = ('title = "Data augmentation (pitch shift, noise, time shift or stretch)"\npoints = 6',
                       'title = "Data augmentation (pitch shift, noise, time shift or stretch)"\npoints = 5')
FULL_AT_GRIFFIN_LIM = ('full_at = "reference"', 'full_at = "griffin_lim"')


def test_what_was_made_is_keyed_on_everything_but_the_scoring(graded, tmp_path):
    setup, source, _ = graded
    kept = setup.evidence_key(source)

    def key(*changes, **setup_changes):
        return dataclasses.replace(setup, rubric=rubric_with(tmp_path, *changes), **setup_changes).evidence_key(source)

    assert key(MFCC_CODE_POINTS, AUGMENTATION_POINTS, FULL_AT_GRIFFIN_LIM, ('floor_at = "untrained"', 'floor_at = 1.1'),
               ('tolerance_db = 1.0', 'tolerance_db = 2.0'), ('pesq_tolerance = 0.5', 'pesq_tolerance = 0.3'),
               ('visibility = "after_published"', 'visibility = "visible"'), ('version = "1"', 'version = "2"'),
               ('evidence = ["augmentation"]', 'evidence = ["augmentation", "training_loop"]')) == kept
    assert key(('params = { num = 4, seed = 0 }', 'params = { num = 5, seed = 0 }')) != kept  # the run changes
    assert key(('wall_seconds = 60', 'wall_seconds = 61')) != kept
    assert key(('dnsmos = false', 'dnsmos = true')) != kept
    assert key(student_mode=True) != kept


def comparable(result: SubmissionResult) -> dict:
    """``result`` without what says when, how fast, and whether student code ran now or earlier."""
    kept = result.model_dump(mode="json", exclude={"started_at", "finished_at", "seconds", "timings"})
    for item in kept["items"]:
        item.pop("seconds")
    for run in kept["runs"]:
        run.pop("reused")
        for key in ("wall_seconds", "cpu_seconds", "peak_memory_bytes"):
            run["result"].pop(key)
    return kept


def test_a_change_of_points_and_bars_rescores_from_what_was_kept(graded, monkeypatch, tmp_path):
    """Issue 16, item 6: nothing is unpacked, run or measured again, and the result is the one a forced regrade
    with the new rubric gives."""
    setup, source, _ = graded
    [entry] = grade_all([source], setup, show_progress=False)  # up to date, whatever the tests before did
    first = SubmissionResult.read(setup.result_path(entry.submission_id))
    rescoring = dataclasses.replace(setup, rubric=rubric_with(tmp_path, MFCC_CODE_POINTS, AUGMENTATION_POINTS,
                                                              FULL_AT_GRIFFIN_LIM))
    assert rescoring.cache_key(source) != setup.cache_key(source)

    def refuse(*args, **kwargs):
        raise AssertionError("made again")
    no_student_code(monkeypatch)
    monkeypatch.setattr("grader.pipeline.unpack", refuse)
    monkeypatch.setattr("grader.checks.reconstruct.score_heldout", refuse)
    [entry] = grade_all([source], rescoring, show_progress=False)
    rescored = SubmissionResult.read(setup.result_path(entry.submission_id))
    assert not entry.reused and rescored.runs and all(run.reused for run in rescored.runs)
    assert rescored.timings["student_code"] == 0
    before, after = scores(first), scores(rescored)
    assert (after["preprocess-mfcc-code"], after["preprocess-augmentation"]) == (5, 5)
    assert after["model-quality"] > before["model-quality"]  # Griffin-Lim's bar is lower than the reference's
    assert next(i for i in rescored.items if i.id == "model-quality").metrics["bars"]["full_source"] == "griffin_lim"

    monkeypatch.undo()
    [entry] = grade_all([source], rescoring, force=True, show_progress=False)
    regraded = SubmissionResult.read(setup.result_path(entry.submission_id))
    assert not any(run.reused for run in regraded.runs)  # a full regrade: student code ran again
    assert comparable(rescored) == comparable(regraded)


class Environment:
    """Stands for a student environment in a run's key: only its digest counts."""

    def __init__(self, digest: str):
        self.digest = digest


def test_a_run_is_keyed_on_what_decides_what_it_does(tmp_path, edit):
    workdir, mels = tmp_path / "work", tmp_path / "mels"
    workdir.mkdir()
    mels.mkdir()
    (workdir / "generate.py").write_text("print('hi')\n")
    (mels / "a.npy").write_bytes(b"mel")

    def key(command="python generate.py", limits=RunLimits(), environment=Environment("e1"), unsandboxed=False):
        return run_key(command, workdir, {"mels": mels}, limits, environment=environment, mounts={},
                       allow_unsandboxed=unsandboxed)

    first = key()
    assert key() == first
    assert key(environment=Environment("e2")) != first
    assert key(command="python generate.py --num 2") != first
    assert key(limits=RunLimits(wall_seconds=5)) != first
    assert key(unsandboxed=True) != first
    (mels / "a.npy").write_bytes(b"other mel")
    assert key() != first
    (mels / "a.npy").write_bytes(b"mel")
    (workdir / "generate.py").write_text("print('changed')\n")
    assert key() != first
    (workdir / "generate.py").write_text("print('hi')\n")
    edit("reference/evaluation.py", "grader/scoring.py", "grader/checks/reconstruct.py")
    assert key() == first  # scoring code is no part of a run
    edit("grader/sandbox/seccomp.py")
    assert key() != first


def result_of(verdict: sandbox.Verdict = sandbox.Verdict.OK) -> sandbox.RunResult:
    return sandbox.RunResult(verdict=verdict, message="", command=["python", "generate.py"])


def test_kept_outputs_are_plain_files_within_the_run_limits(tmp_path):
    runs = RunCache(tmp_path / "runs")
    out = tmp_path / "out"
    out.mkdir()
    (out / "0.wav").write_bytes(b"RIFF" * 10)
    assert runs.store("a" * 64, result_of(), None, out, RunLimits())
    restored = tmp_path / "restored"
    restored.mkdir()
    cached = runs.load("a" * 64)
    restore(cached, restored)
    assert (restored / "0.wav").read_bytes() == b"RIFF" * 10 and cached.result == result_of()
    assert RunCache(tmp_path / "runs", reuse=False).load("a" * 64) is None

    assert not runs.store("b" * 64, result_of(sandbox.Verdict.SANDBOX_UNAVAILABLE), None, out, RunLimits())
    assert not runs.store("c" * 64, result_of(), None, out, RunLimits(disk_bytes=20))
    (tmp_path / "secret.wav").write_bytes(b"truth")
    os.symlink(tmp_path / "secret.wav", out / "1.wav")
    assert not runs.store("d" * 64, result_of(), None, out, RunLimits())
    (out / "1.wav").unlink()
    os.mkfifo(out / "2.wav")
    assert not runs.store("e" * 64, result_of(), None, out, RunLimits())
    assert len(list((tmp_path / "runs").rglob("run.json"))) == 1
    assert runs.load("b" * 64) is None and runs.load("d" * 64) is None


def test_atomic_writes_leave_no_half_written_file(tmp_path):
    target = atomic_write(tmp_path / "a" / "result.json", "{}")
    assert target.read_text() == "{}" and [p.name for p in target.parent.iterdir()] == ["result.json"]
    with pytest.raises(RuntimeError):
        with cache.staged_folder(tmp_path / "entry") as staging:
            (staging / "half").write_text("x")
            raise RuntimeError("stopped")
    assert not (tmp_path / "entry").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    with cache.staged_folder(tmp_path / "entry") as staging:
        (staging / "whole").write_text("x")
    assert [p.name for p in (tmp_path / "entry").iterdir()] == ["whole"]
