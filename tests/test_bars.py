"""Quality bars (grader/bars.py): the instructor's full_at and floor_at, checked at rubric load and at the baseline."""
from pathlib import Path

import pytest

from grader.bars import Bars, BarsError, check_bars, resolve
from grader.pipeline import GradingSetup
from grader.rubric import DEFAULT_RUBRIC, RubricError, load_rubric
from grader.rubric_params import QualityParams
from grader.scoring import HELDOUT_METRICS, Baseline
from reference.evaluation import METRICS

MEANS = {"reference": {"pesq_wb": 2.9, "lsd": 0.9}, "floor": {"pesq_wb": 1.05, "lsd": 3.0},
         "griffin_lim": {"pesq_wb": 2.4, "lsd": 1.2}}


def rubric_with_quality_params(tmp_path: Path, params: str) -> Path:
    """The bundled rubric with the model-quality item's params replaced by ``params`` (TOML inline table)."""
    lines = DEFAULT_RUBRIC.read_text().splitlines()
    start = lines.index('id = "model-quality"')
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("params = "))
    lines[at] = f"params = {params}"
    path = tmp_path / "rubric.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_bundled_rubric_puts_full_points_at_the_reference_on_pesq():
    params = next(i for i in load_rubric(DEFAULT_RUBRIC).items if i.id == "model-quality").params
    assert (params.metric, params.full_at, params.floor_at, params.model_free_share) == \
        ("pesq_wb", "reference", "untrained", 0.0)


@pytest.mark.parametrize("params, said", [
    ('{ metric = "pesq_wb", full_at = 1.5, floor_at = 2.0 }', "full points must lie above the floor"),
    ('{ metric = "pesq_wb", full_at = 2.0, floor_at = 2.0 }', "full points must lie above the floor"),
    ('{ metric = "lsd", full_at = 3.0, floor_at = 1.0 }', "full points must lie below the floor"),
    ('{ metric = "pesq", full_at = "reference" }', '"pesq" is not a metric the grader scores'),
    ('{ metric = "dnsmos" }', '"dnsmos" is not a metric the grader scores'),
    ('{ full_at = "teacher" }', '"teacher" is not a baseline source or a number'),
])
def test_numbers_that_leave_no_room_are_a_rubric_error_naming_the_item(tmp_path, params, said):
    path = rubric_with_quality_params(tmp_path, params)
    with pytest.raises(RubricError) as raised:
        load_rubric(path)
    text = str(raised.value)
    assert "model-quality" in text and said in text and f"{path}:" in text


def test_bars_named_by_a_source_are_read_from_the_baseline():
    bars = resolve(QualityParams(full_at="griffin_lim"), MEANS, "model-quality")
    assert (bars.full, bars.floor, bars.full_source, bars.floor_source) == (2.4, 1.05, "griffin_lim", "untrained")
    bars = resolve(QualityParams(full_at=3.5, floor_at=1.5), MEANS, "model-quality")
    assert (bars.full, bars.floor, bars.full_source, bars.floor_source) == (3.5, 1.5, "number", "number")
    lower = resolve(QualityParams(metric="lsd"), MEANS, "model-quality")
    assert lower.fraction(0.9) == 1.0 and lower.fraction(3.0) == 0.0 and lower.fraction(1.95) == pytest.approx(0.5)


def test_source_bars_that_leave_no_room_stop_grading_before_any_student(tmp_path):
    """An untrained floor above the reference (a reference that does not beat noise) names the item and the fix."""
    means = {**MEANS, "reference": {"pesq_wb": 1.04}}
    with pytest.raises(BarsError, match="'model-quality'.*Set full_at or floor_at to a number"):
        check_bars(load_rubric(DEFAULT_RUBRIC).items, means)
    with pytest.raises(BarsError, match="no pesq_wb score"):
        resolve(QualityParams(full_at="griffin_lim"), {**MEANS, "griffin_lim": {"pesq_wb": None}}, "model-quality")
    setup = GradingSetup(rubric=load_rubric(DEFAULT_RUBRIC), heldout=None,
                         load_baseline=lambda: Baseline({}, means, tmp_path), out_dir=tmp_path, environment=object())
    with pytest.raises(BarsError, match="model-quality"):
        setup.check_bars()
    ok = GradingSetup(rubric=load_rubric(DEFAULT_RUBRIC), heldout=None,
                      load_baseline=lambda: Baseline({}, MEANS, tmp_path), out_dir=tmp_path, environment=object())
    ok.check_bars()


def test_a_quality_item_may_score_every_held_out_metric_in_its_own_direction():
    """The metrics and their directions are reference.evaluation's registry's: full points above the floor where
    higher is better, below it where lower is."""
    for metric in HELDOUT_METRICS:
        sign = 1.0 if METRICS[metric].higher_is_better else -1.0
        bars = resolve(QualityParams(metric=metric, full_at=sign, floor_at=0.0), {}, "model-quality")
        assert bars.higher_is_better == METRICS[metric].higher_is_better and bars.fraction(sign / 2) == 0.5
        with pytest.raises(ValueError, match="full points must lie"):
            QualityParams(metric=metric, full_at=-sign, floor_at=0.0)


def test_points_between_the_bars_and_where_a_score_sits():
    bars = Bars("pesq_wb", full=3.0, floor=1.0, full_source="reference", floor_source="untrained")
    assert [bars.fraction(v) for v in (None, 0.5, 1.0, 2.0, 3.0, 4.0)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert Bars("pesq_wb", 3.0, 1.0, "reference", "untrained", curve="sqrt").fraction(2.0) == pytest.approx(0.5 ** 0.5)
    said = bars.describe(2.0)
    assert "50% of the way" in said and "the reference solution" in said and "untrained" in said
    assert "at or below the floor" in bars.describe(0.9) and "at or past full points" in bars.describe(3.2)
