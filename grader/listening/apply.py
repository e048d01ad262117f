"""The listening test's scores put into a class's results already graded (``grade listen results``): each rubric
``listening`` item judged again from ``OUT/listening.csv`` by the check's own function, running nothing of the
submission. Apart from :mod:`grader.listening.results`, which the grading pipeline reads, so that neither imports
the other."""
from __future__ import annotations

from pathlib import Path

from grader.cache import read_result
from grader.checks.listening import judge
from grader.listening.results import RATINGS_CHECKS, read_scores
from grader.pipeline import RESULTS_FOLDER, item_result
from grader.rubric import Rubric


def apply_ratings(out_dir: Path, rubric: Rubric) -> int:
    """Judge every ``listening`` item of ``rubric`` again, in every result of ``OUT/results`` that has it, from
    ``OUT/listening.csv`` (:func:`grader.checks.listening.judge`, the check's own function: nothing of the
    submission runs), and rewrite each result whose item changed, its total and maximum with it. Returns how many
    results changed.

    A result rewritten keeps its cache key, made with the ratings it was graded with: a later ``grade`` of the
    class re-scores it from its kept evidence (:mod:`grader.evidence`), again without running student code.

    Raises:
        UnreadableScores: ``OUT/listening.csv`` is there but unreadable.
    """
    items = [item for item in rubric.items if item.check in RATINGS_CHECKS]
    if not items:
        return 0
    scores = read_scores(out_dir)
    changed = 0
    for path in sorted((Path(out_dir) / RESULTS_FOLDER).glob("*.json")):
        result = read_result(path)
        if result is None:
            continue
        before = result.model_copy(deep=True)
        for item in items:
            for index, old in enumerate(result.items):
                if old.id == item.id:
                    new = item_result(item, judge(item.params, result.submission_id, scores), old.seconds)
                    result.items[index] = new
                    result.total = round(result.total + new.points - old.points, 4)
                    result.max_total = round(result.max_total + new.max_points - old.max_points, 4)
        if result != before:
            result.write(path.parent)
            changed += 1
    return changed
