"""Checks declare the artefacts they read (issue 16, item 1): every declaration is made by a provider, a check
gets only what it declares, items are graded after what makes their artefacts, and the rubric's order of items
never changes a point."""
from __future__ import annotations

import importlib
import pkgutil
import random

import pytest

import grader.checks
from grader.artefacts import closure, needs_of, provider
from grader.context import CheckContext
from grader.listening.results import RATINGS_CHECKS
from grader.pipeline import GradingSetup, grade_submission, grading_order
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from grader.rubric_params import CHECK_PARAMS
from tests.helpers import write_submission, zip_folder


def test_every_check_declares_what_it_reads_and_every_artefact_has_a_provider():
    """Every check (and the quiz) reads kept artefacts only, so that a re-scoring makes nothing again; its SCORING
    parameters are its own; every artefact needed, however deep, has a provider that says what it makes."""
    for check in (module.name for module in pkgutil.iter_modules(grader.checks.__path__)):
        module = importlib.import_module(f"grader.checks.{check}")
        assert module.NEEDS or check in RATINGS_CHECKS, check  # a ratings check reads the class's scores
        if check in CHECK_PARAMS:
            assert set(module.SCORING) <= set(CHECK_PARAMS[check].model_fields), check
        for name in closure(module.NEEDS):
            assert provider(name).make.__doc__, name
        transient = [name for name in module.NEEDS if provider(name).kept is None]
        assert not transient, f"{check} reads {transient}, which a re-scoring would have to make again"


def test_an_undeclared_need_is_refused():
    ctx = CheckContext(unpack=None, discovery=None, rubric=None, heldout=None, load_baseline=None, scratch=None,
                       media_dir=None, out_root=None, artefacts={"student.claims": []})
    with ctx.granted("check 'claims'", needs_of("claims")):
        assert ctx.need("student.claims") == []
        with pytest.raises(LookupError, match="check 'claims' needs the artefact 'model.use' without declaring it"):
            ctx.need("model.use")
    with pytest.raises(KeyError, match="no provider makes the artefact 'no.such'"):
        ctx.need("no.such")


def test_items_are_graded_after_the_check_that_makes_what_they_need_and_otherwise_in_rubric_order():
    rubric = load_rubric(DEFAULT_RUBRIC)
    assert grading_order(rubric.items) == rubric.items  # the bundled rubric's order serves already
    claims = next(item for item in rubric.items if item.check == "claims")
    moved = [claims, *(item for item in rubric.items if item is not claims)]
    order = [item.id for item in grading_order(moved)]
    assert order.index("evaluation-claims") == order.index("model-quality") + 1  # claims reads its metrics
    assert [i for i in order if i != "evaluation-claims"] == [i.id for i in moved if i is not claims]


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    folder = tmp_path_factory.mktemp("order")
    return zip_folder(write_submission(folder / "ada"), folder / "ada_111_1_hw3.zip")


def test_the_rubric_order_never_changes_a_point(setup_factory, submission):
    """The bundled rubric, its claims item first (it scored "cannot measure" before reconstruct had run), and its
    items shuffled: the same points item by item, the runs under the same items, items listed in rubric order."""
    default = setup_factory("out-order")
    rubric = default.rubric
    claims = next(item for item in rubric.items if item.check == "claims")
    shuffled = list(rubric.items)
    random.Random(16).shuffle(shuffled)
    graded = {}
    for name, items in (("bundled", rubric.items), ("claims first", [claims, *(i for i in rubric.items
                                                                              if i is not claims)]),
                        ("shuffled", shuffled)):
        setup = GradingSetup(rubric=rubric.model_copy(update={"items": items}), heldout=default.heldout,
                             load_baseline=default.load_baseline, out_dir=default.out_dir)
        result = grade_submission(submission, setup)
        assert [item.id for item in result.items] == [item.id for item in items]
        graded[name] = result
    points = {name: {item.id: (item.points, item.explanation) for item in result.items}
              for name, result in graded.items()}
    assert "could not measure" not in points["claims first"]["evaluation-claims"][1]
    assert points["claims first"] == points["bundled"] and points["shuffled"] == points["bundled"]
    assert {result.total for result in graded.values()} == {graded["bundled"].total}
    runs = {name: sorted((run.item_id, run.purpose) for run in result.runs) for name, result in graded.items()}
    assert runs["claims first"] == runs["bundled"] and runs["shuffled"] == runs["bundled"]
