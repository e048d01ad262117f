"""Many submissions: graded one after another or in worker processes, with a progress bar.

Each submission is graded in its own scratch folder and sandbox runs; a result JSON is
written as each finishes, so an interrupted batch keeps what was done.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from grader.pipeline import GradingSetup, grade_submission
from grader.results import SubmissionResult


def grade_all(sources: list[Path], setup: GradingSetup, jobs: int = 1) -> list[SubmissionResult]:
    """Grade every source (zip or folder); ``jobs`` > 1 grades that many at once in processes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
               TimeRemainingColumn())
    results: list[SubmissionResult] = []
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("grading", total=len(sources), last="")
        if jobs <= 1 or len(sources) <= 1:
            for source in sources:
                progress.update(task, last=Path(source).name)
                results.append(grade_submission(source, setup))
                progress.advance(task)
        else:
            setup.load_baseline()  # computed once here, then read from the cache by every worker
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(grade_submission, source, setup) for source in sources]
                for future in as_completed(futures):
                    results.append(future.result())
                    progress.update(task, advance=1, last=results[-1].submission_id)
    return results
