"""Graded results for the report's tests and benchmark, made the way the grader makes them.

Real parts throughout: the bundled rubric's items and quiz, held-out clips of the
embedded data set (synthetic vowels where it is absent), Griffin-Lim from
:mod:`reference.vocoder`, metrics from :mod:`reference.evaluation`, discovery run on
a small real submission folder, sandbox verdicts as :class:`grader.sandbox.RunResult`.
The student's and the reference's outputs are the truth with noise added (at a
signal-to-noise ratio set by ``quality``), so every number on a page is a real
measurement of real audio.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from grader import intake
from grader.discovery import discover
from grader.results import (HandedInSample, ItemResult, ListenClip, QuestionOutcome, RunEntry, SubmissionResult,
                            Versions)
from grader.rubric import DEFAULT_RUBRIC, Rubric, load_rubric
from grader.sandbox.types import RunResult, Verdict
from reference import PROJECT_ROOT, SAMPLE_RATE
from reference.evaluation import mel_l1, si_sdr, snr
from reference.preprocess import LogMelParams, load_audio, logmel
from reference.vocoder import griffin_lim

RUBRIC_CHECKS = {"static", "mfcc", "files", "checkpoint", "reconstruct", "samples", "generation", "sample", "claims"}
EMBEDDED = PROJECT_ROOT / "data" / "embedded"
HOSTILE_TEXT = '<script>document.title = "escaped badly"</script> & "quotes"'
"""Text a student's program may print; it must reach the page as text, never as markup."""
STUDENT_CODE = {
    "preprocess.py": "import librosa\n\ndef extract_mfcc(path):\n    y, sr = librosa.load(path, sr=16000)\n"
                     "    return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)\n",
    "generate.py": "import argparse\np = argparse.ArgumentParser()\np.add_argument('--mel-dir')\n"
                   "p.add_argument('--out-dir')\np.add_argument('--num')\np.add_argument('--seed')\n",
    "answers.toml": '[quiz]\nq1 = "MFCC"\n',
}


@functools.cache
def rubric() -> Rubric:
    return load_rubric(DEFAULT_RUBRIC, known_checks=RUBRIC_CHECKS)


@functools.cache
def truth_clips(count: int = 3) -> tuple[tuple[str, np.ndarray], ...]:
    """``count`` held-out clips (name, wav (samples,) at 16 kHz): the embedded set's, or synthetic vowels."""
    heldout = sorted((EMBEDDED / "heldout").glob("*.wav"))
    if heldout:
        return tuple((path.stem, load_audio(path)) for path in heldout[:count])
    t = np.arange(int(2.0 * SAMPLE_RATE)) / SAMPLE_RATE
    clips = []
    for k in range(count):
        f0 = 110.0 * (1 + 0.25 * k) * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        wav = sum(np.sin(h * phase) / h for h in range(1, 12)) * np.hanning(t.size)
        clips.append((f"vowel-{k}", (0.5 * wav / np.abs(wav).max()).astype(np.float32)))
    return tuple(clips)


@functools.cache
def griffin_lim_of(name: str) -> np.ndarray:
    wav = dict(truth_clips())[name]
    return griffin_lim(logmel(wav, LogMelParams()))


def with_noise(wav: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(wav.size).astype(np.float32)
    noise *= np.sqrt(np.mean(wav**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return np.clip(wav + noise, -1, 1).astype(np.float32)


def metrics_of(truth: np.ndarray, output: np.ndarray) -> dict[str, float]:
    return {"snr": snr(truth, output), "si_sdr": si_sdr(truth, output), "mel_l1": mel_l1(truth, output)}


def write_wav(out_dir: Path, relative: str, wav: np.ndarray) -> str:
    path = out_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav, SAMPLE_RATE, subtype="PCM_16")
    return relative


def run_result(verdict: Verdict, wall: float, stdout: str = "", stderr: str = "") -> RunResult:
    messages = {Verdict.OK: "finished", Verdict.TIMEOUT: f"stopped after {wall:.0f} s: raise limits.run.wall_seconds",
                Verdict.EXIT_CODE: "exited with code 1"}
    return RunResult(verdict=verdict, message=messages.get(verdict, str(verdict)), wall_seconds=wall,
                     command=["python", "generate.py", "--mel-dir", "/inputs/mels", "--out-dir", "_grader_out"],
                     exit_code=1 if verdict is Verdict.EXIT_CODE else (0 if verdict is Verdict.OK else None),
                     cpu_seconds=wall * 0.9, peak_memory_bytes=int(300e6 + wall * 1e6), stdout=stdout, stderr=stderr,
                     isolation="bubblewrap and cgroups")


@functools.cache
def discovery_dump() -> dict:
    """Discovery run on a small real submission folder (the dump a result holds)."""
    with tempfile.TemporaryDirectory() as folder:
        for name, text in STUDENT_CODE.items():
            (Path(folder) / name).write_text(text)
        return discover(folder).model_dump()


def graded_result(out_dir: str | Path, file_name: str, quality: float, seed: int = 0, clips: int = 3,
                  declared: dict[str, str] | None = None, flawed: bool = False) -> SubmissionResult:
    """A graded result of ``quality`` (0..1: share of points, student SNR 0..25 dB) with its media, written to ``out_dir``.

    ``file_name``: the file handed in (``submissions/<file_name>``); the result's id and identity come from it,
    as the grader derives them. ``declared``: what its ``submission.toml`` declares (name, id).
    The result JSON goes to ``out_dir/results/<id>.json``, its audio to ``out_dir/media/<id>/``.
    ``flawed``: the student's output of the last clip is missing, and a handed-in
    sample is a file of garbage bytes, as a failed run and a careless student leave them.
    """
    out_dir = Path(out_dir)
    submission_id = intake.submission_id(file_name)
    rng = np.random.default_rng(seed)
    media = f"media/{submission_id}"
    items, runs = [], []
    for item in rubric().items:
        fraction = float(np.clip(quality + rng.normal(0, 0.15), 0, 1)) if quality < 1 else 1.0
        points = round(fraction * item.points, 2)
        status = "passed" if points >= item.points else ("partial" if points > 0 else "failed")
        evidence = [f"preprocess.py:{4 + k}: {item.check} evidence {HOSTILE_TEXT if k == 0 else ''}" for k in range(2)]
        evidence.append("a_very_long_token_" * 12)  # must wrap, not widen the page
        items.append(ItemResult(id=item.id, title=item.title, checklist=item.checklist, points=points,
                                max_points=item.points, status=status, visibility=item.visibility,
                                explanation=f"{points:g} of {item.points:g} points: the check saw what is listed.",
                                evidence=evidence, metrics={"fraction": round(fraction, 3)}, seconds=0.2))
        if item.check in ("reconstruct", "generation", "sample"):
            verdict = Verdict.OK if fraction > 0.3 else Verdict.TIMEOUT
            runs.append(RunEntry(item_id=item.id, purpose=f"{item.check} on 3 clips",
                                 result=run_result(verdict, 3 + 100 * (1 - quality) + rng.random(),
                                                   stdout=f"epoch 1 loss 0.5\n{HOSTILE_TEXT}\n",
                                                   stderr="Traceback (most recent call last):\n  ...\nKeyError: 'x'\n"
                                                   if verdict is not Verdict.OK else "")))
    student_snr = 25 * quality
    listen, rows, per_source = [], [], {"student": [], "reference": [], "griffin_lim": [], "floor": []}
    for index, (clip, truth) in enumerate(truth_clips(clips)):
        outputs = {"student": with_noise(truth, student_snr, seed * 100 + index),
                   "reference": with_noise(truth, 25.0, index), "griffin_lim": griffin_lim_of(clip),
                   "floor": with_noise(np.zeros_like(truth) + 1e-3, 0.0, index)}
        clip_metrics = {source: metrics_of(truth, wav) for source, wav in outputs.items()}
        for source, values in clip_metrics.items():
            per_source[source].append(values)
        rows.append({"name": clip, **{f"{source}": values for source, values in clip_metrics.items()}})
        listen.append(ListenClip(name=clip, truth=write_wav(out_dir, f"{media}/listen/{clip}/truth.wav", truth),
                                 reference=write_wav(out_dir, f"{media}/listen/{clip}/reference.wav",
                                                     outputs["reference"]),
                                 student=None if flawed and index == clips - 1 else
                                 write_wav(out_dir, f"{media}/listen/{clip}/student.wav", outputs["student"]),
                                 griffin_lim=write_wav(out_dir, f"{media}/listen/{clip}/griffin_lim.wav",
                                                       outputs["griffin_lim"]),
                                 metrics=clip_metrics))
    comparison = {source: {m: float(np.mean([v[m] for v in values])) for m in values[0]}
                  for source, values in per_source.items()}
    samples = [HandedInSample(name="sample_0.wav", valid=True, findings=["novel: far from every training clip"],
                              audio=write_wav(out_dir, f"{media}/samples/sample_0.wav",
                                              with_noise(truth_clips(clips)[0][1], 5.0, seed))),
               HandedInSample(name="sample_1.wav", valid=False, findings=["silent: peak below -60 dBFS"],
                              audio=write_wav(out_dir, f"{media}/samples/sample_1.wav",
                                              np.zeros(SAMPLE_RATE, np.float32))),
               HandedInSample(name="sample_2.ogg", valid=False, findings=["not handed in"])]
    if flawed:
        garbage = out_dir / media / "samples" / "sample_3.wav"
        garbage.write_bytes(b"RIFF not really a wave file" * 10)
        samples.append(HandedInSample(name="sample_3.wav", valid=False, findings=["not decodable"],
                                      audio=garbage.relative_to(out_dir).as_posix()))
    quiz = []
    for question in rubric().quiz.questions:
        right = rng.random() < quality
        answer = question.answer if right else next(c for c in question.choices if c != question.answer)
        quiz.append(QuestionOutcome(id=question.id, answered=answer, correct=right,
                                    points=rubric().quiz.points_per_question if right else 0.0,
                                    max_points=rubric().quiz.points_per_question))
    total = sum(i.points for i in items) + sum(q.points for q in quiz)
    result = SubmissionResult(
        submission_id=submission_id, source=f"submissions/{file_name}", status="graded", student=declared or {},
        total=total, max_total=rubric().rubric.total_points, items=items, quiz=quiz, runs=runs, clip_metrics=rows,
        comparison=comparison, listen=listen, samples=samples, discovery=discovery_dump(),
        versions=Versions(rubric=f"{rubric().rubric.id}@{rubric().rubric.version}", heldout="0" * 64),
        started_at="2025-01-01T10:00:00+00:00", finished_at="2025-01-01T10:01:00+00:00", seconds=60.0 + seed)
    result.write(out_dir / "results")
    return result


def refused_result(out_dir: str | Path, file_name: str) -> SubmissionResult:
    """A result of the archive ``file_name`` refused by intake (written to ``out_dir/results``)."""
    result = SubmissionResult.refused(intake.submission_id(file_name), f"submissions/{file_name}",
                                      "the archive holds a link (evil -> /etc/passwd); links are not accepted",
                                      rubric().rubric.total_points, Versions())
    result.write(Path(out_dir) / "results")
    return result


def grader_error_result(out_dir: str | Path, file_name: str) -> SubmissionResult:
    """A result of the grader itself failing on ``file_name`` (written to ``out_dir/results``)."""
    try:
        raise RuntimeError("the held-out set changed while grading")
    except RuntimeError as error:
        result = SubmissionResult.from_exception(intake.submission_id(file_name), f"submissions/{file_name}", error,
                                                 rubric().rubric.total_points, Versions())
    result.write(Path(out_dir) / "results")
    return result


CLASS_FILES = {
    "lovelace": "lovelaceada_1001_5001_hw3.zip",  # Canvas
    "turing": "Alan Turing_1002_assignsubmission_file_hw3.zip",  # Moodle
    "hopper": "hoppergrace_LATE_1003_5003_hw3.zip",  # Canvas, late
    "mallory": "mallory_1004_5004_hw3.zip",  # Canvas
    "unlucky": "unlucky hw3.zip",  # no LMS name: unmatched
}
"""The files of :func:`class_of_five`, as an LMS export (and one renamed by hand) names them."""


def class_of_five(out_dir: str | Path) -> list[SubmissionResult]:
    """A small class written to ``out_dir``: three graded (good, middling, poor and flawed), one refused, one failed.

    Their files are named as in :data:`CLASS_FILES`; the graded ones declare their authors in a manifest.
    """
    return [graded_result(out_dir, CLASS_FILES["lovelace"], 0.95, seed=1,
                          declared={"name": "Ada Lovelace", "id": "al1"}),
            graded_result(out_dir, CLASS_FILES["turing"], 0.55, seed=2, declared={"name": "Alan Turing"}),
            graded_result(out_dir, CLASS_FILES["hopper"], 0.15, seed=3,
                          declared={"name": "Grace Hopper", "id": "gh3"}, flawed=True),
            refused_result(out_dir, CLASS_FILES["mallory"]),
            grader_error_result(out_dir, CLASS_FILES["unlucky"])]
