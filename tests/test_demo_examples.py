"""The ``misbehaving`` example that ``make demo`` grades (submissions/src/misbehaving): each of its runs breaks a
different limit, and does so in seconds, so that the demo shows all three verdicts without waiting."""
from __future__ import annotations

import importlib.util

from reference import PROJECT_ROOT

CAP_SECONDS = 8
"""The cap on each run (``grade --max-run-seconds``): the endless generation loop ends there; the other two runs
end sooner (the MFCC run takes some 4 s on a loaded machine, librosa's import and first load included)."""
MEMORY_BYTES = 1024**3
"""The run memory limit graded with: a quarter of the rubric's, so that the allocations pass it four times sooner."""


def test_the_misbehaving_example_shows_each_verdict_within_seconds(small_heldout, small_baseline, tmp_path):
    from grader.limits import MB
    from grader.pipeline import GradingSetup, grade_submission
    from grader.rubric import DEFAULT_RUBRIC, load_rubric
    from grader.time_budget import TimeBudget

    spec = importlib.util.spec_from_file_location("examples_build", PROJECT_ROOT / "submissions" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rubric = load_rubric(DEFAULT_RUBRIC)
    limits = rubric.limits.model_copy(update={"run": rubric.limits.run.with_overrides({"memory_bytes": MEMORY_BYTES})})
    setup = GradingSetup(rubric=rubric.model_copy(update={"limits": limits}), heldout=small_heldout,
                         load_baseline=small_baseline, out_dir=tmp_path / "out",
                         time_budget=TimeBudget(max_run_seconds=CAP_SECONDS))

    result = grade_submission(build.build("misbehaving", tmp_path), setup)

    runs = {run.purpose.split(" (")[0]: run.result for run in result.runs}
    assert {purpose: run.verdict.value for purpose, run in runs.items()} == {
        "mfcc": "output_limit", "reconstruct": "out_of_memory", "sample": "timeout"}, \
        {purpose: run.message for purpose, run in runs.items()}
    assert runs["mfcc"].output_bytes > 10 * MB and runs["mfcc"].wall_seconds < CAP_SECONDS
    assert runs["reconstruct"].wall_seconds < CAP_SECONDS
    assert runs["sample"].message.endswith(f"; the time was cut to {CAP_SECONDS} s by --max-run-seconds "
                                           f"{CAP_SECONDS} (the rubric allows 120 s)")
