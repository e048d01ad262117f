"""The time a grading may spend beyond the rubric's limits (grader/time_budget.py): a cap on each run
(``grade --max-run-seconds``) and a deadline, and the words a run they stopped carries."""
from __future__ import annotations

import argparse

import pytest

from grader.limits import RunLimits
from grader.sandbox.types import RunResult, Verdict
from grader.time_budget import MIN_RUN_SECONDS, TimeBudget

RUBRIC = RunLimits(wall_seconds=120, notebook_seconds=900, cell_seconds=600)


def timeout(message: str) -> RunResult:
    return RunResult(verdict=Verdict.TIMEOUT, message=message, command=["python", "generate.py"])


def test_no_budget_leaves_the_rubric_limits_as_they_are():
    assert TimeBudget().unlimited
    assert TimeBudget().bound(RUBRIC) is RUBRIC


def test_a_cap_cuts_every_time_limit_and_nothing_else():
    bounded = TimeBudget(max_run_seconds=30).bound(RUBRIC)
    assert (bounded.wall_seconds, bounded.notebook_seconds, bounded.cell_seconds) == (30, 30, 30)
    assert bounded.memory_bytes == RUBRIC.memory_bytes and bounded.output_bytes == RUBRIC.output_bytes


def test_a_cap_above_the_rubric_changes_nothing():
    assert TimeBudget(max_run_seconds=1000).bound(RUBRIC) is RUBRIC


def test_a_deadline_cuts_to_what_is_left_and_stops_runs_that_would_only_time_out():
    bounded = TimeBudget.until(20, "Gradescope's timeout", max_run_seconds=30).bound(RUBRIC)
    assert 19 < bounded.wall_seconds <= 20
    assert TimeBudget.until(MIN_RUN_SECONDS - 1, "Gradescope's timeout").bound(RUBRIC) is None
    not_run = TimeBudget.until(0, "Gradescope's timeout of 600 s, less 60 s").not_run(["python", "generate.py"])
    assert not_run.verdict is Verdict.TIMEOUT
    assert not_run.message == "not run: the grading's time is spent (Gradescope's timeout of 600 s, less 60 s)"


def test_a_run_the_cap_stopped_says_so_with_what_the_rubric_allows():
    budget = TimeBudget(max_run_seconds=30)
    result = budget.explain(timeout("stopped after 30 s of wall time (limit wall_seconds = 30)"), RUBRIC,
                            budget.bound(RUBRIC))
    assert result.message == ("stopped after 30 s of wall time (limit wall_seconds = 30); the time was cut to 30 s "
                              "by --max-run-seconds 30 (the rubric allows 120 s)")


def test_a_notebook_the_cap_stopped_names_the_rubrics_notebook_seconds():
    budget = TimeBudget(max_run_seconds=30)
    result = budget.explain(timeout("stopped: the notebook's cells ran past 30 s in all, in cell 3 "
                                    "(limit notebook_seconds = 30)"), RUBRIC, budget.bound(RUBRIC))
    assert result.message.endswith("; the time was cut to 30 s by --max-run-seconds 30 (the rubric allows 900 s)")


def test_a_run_the_deadline_stopped_names_the_deadline():
    budget = TimeBudget.until(20, "Gradescope's timeout of 600 s, less 60 s", max_run_seconds=30)
    bounded = budget.bound(RUBRIC)
    result = budget.explain(timeout(f"stopped after {bounded.wall_seconds:g} s of wall time "
                                    f"(limit wall_seconds = {bounded.wall_seconds:g})"), RUBRIC, bounded)
    assert "by Gradescope's timeout of 600 s, less 60 s (the rubric allows 120 s)" in result.message


@pytest.mark.parametrize("result", [
    RunResult(verdict=Verdict.OK, message="finished (exit code 0)", command=["python"]),
    RunResult(verdict=Verdict.OUT_OF_MEMORY, message="ran out of memory", command=["python"]),
    timeout("stopped: a process used more than 300 s of CPU time (limit cpu_seconds = 300)"),
], ids=["ok", "out_of_memory", "cpu_seconds"])
def test_runs_the_budget_did_not_stop_keep_their_message(result):
    budget = TimeBudget(max_run_seconds=30)
    assert budget.explain(result, RUBRIC, budget.bound(RUBRIC)) is result


def test_a_timeout_under_a_cap_that_cut_nothing_keeps_its_message():
    budget = TimeBudget(max_run_seconds=1000)
    result = timeout("stopped after 120 s of wall time (limit wall_seconds = 120)")
    assert budget.explain(result, RUBRIC, budget.bound(RUBRIC)) is result


def test_grade_takes_a_cap_in_seconds_above_zero():
    from grader.commands.common import add_grading_options

    parser = argparse.ArgumentParser()
    add_grading_options(parser)
    assert parser.parse_args(["--max-run-seconds", "30"]).max_run_seconds == 30
    assert parser.parse_args([]).max_run_seconds is None
    for wrong in ("0", "-5", "soon"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--max-run-seconds", wrong])
