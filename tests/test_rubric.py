"""The rubric as data: the bundled rubric follows the assignment; wrong rubrics get line-numbered errors."""
import ast
import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import grader.checks
from grader.limits import RunLimits
from grader.rubric import CHECKLIST, DEFAULT_RUBRIC, RubricError, load_rubric
from grader.rubric_params import CHECK_PARAMS, GenerationParams, QualityParams
from reference import PROJECT_ROOT

RUBRIC_FILES = sorted([*(PROJECT_ROOT / "rubrics").glob("*.toml"), *(PROJECT_ROOT / "tests").rglob("*.toml")])
"""Every rubric the project ships or tests with."""


def test_bundled_rubric_covers_the_assignment():
    rubric = load_rubric(DEFAULT_RUBRIC)
    assert rubric.rubric.total_points == 100
    assert {item.checklist for item in rubric.items} == set(CHECKLIST)
    assert len(rubric.quiz.questions) == 7
    seed = next((DEFAULT_RUBRIC.parents[2] / "shared" / "seeds").glob("000_*.txt"), None)
    if seed is not None:  # every quiz question and answer of the assignment text, verbatim
        text = seed.read_text()
        for question in rubric.quiz.questions:
            assert f"**{question.text}**" in text
            assert f"**Answer:** {question.answer}" in text
    slow = next(item for item in rubric.items if item.id == "model-quality")
    assert rubric.run_limits(slow).wall_seconds == 120
    assert rubric.run_limits(rubric.items[0]) == RunLimits().with_overrides({"wall_seconds": 60})


def write(tmp_path, text):
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    return path


def broken(tmp_path, old, new):
    return write(tmp_path, DEFAULT_RUBRIC.read_text().replace(old, new, 1))


def line_of(path, fragment):
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_a_wrong_value_is_reported_with_its_line_and_key(tmp_path):
    path = broken(tmp_path, "points = 6\nvisibility", "points = -6\nvisibility")
    with pytest.raises(RubricError) as error:
        load_rubric(path)
    assert (f'rubric.toml:{line_of(path, "points = -6")}: items[2].points (id "preprocess-augmentation"): Input '
            f"should be greater than 0; got -6") in str(error.value)


def test_an_unknown_visibility_limit_and_check_are_reported(tmp_path):
    path = broken(tmp_path, 'visibility = "hidden"', 'visibility = "secret"')
    path.write_text(path.read_text().replace("limits = { wall_seconds = 120 }", "limits = { wall_secs = 120 }", 1))
    with pytest.raises(RubricError) as error:
        load_rubric(path)
    problems = "\n".join(error.value.problems)
    assert re.search(rf':{line_of(path, "secret")}: items\[9\]\.visibility \(id "samples-diversity"\): Input should '
                     rf"be 'visible'.*; got \"secret\"", problems)
    assert f":{line_of(path, 'wall_secs')}: items[6].limits" in problems and "wall_secs" in problems
    with pytest.raises(RubricError, match=r'items\[0\]\.check \(id "preprocess-mfcc-code"\): "static" is not a check '
                       r"kind; allowed: mfcc\n"):
        load_rubric(DEFAULT_RUBRIC, known_checks={"mfcc"})


def test_points_must_add_up_and_answers_must_be_choices(tmp_path):
    with pytest.raises(RubricError, match="add up to 93 points, but rubric.total_points is 100"):
        load_rubric(broken(tmp_path, "points_per_question = 2", "points_per_question = 1"))
    path = broken(tmp_path, 'answer = "PESQ"', 'answer = "MOS"')
    with pytest.raises(RubricError) as error:
        load_rubric(path)
    line = line_of(path, 'id = "q2"') - 1  # a problem of the whole question points at its header
    assert f"rubric.toml:{line}: quiz.questions[1]: answer 'MOS'" in str(error.value)


def test_unreadable_rubrics(tmp_path):
    with pytest.raises(RubricError, match="cannot read"):
        load_rubric(tmp_path / "missing.toml")
    with pytest.raises(RubricError, match="not valid TOML"):
        load_rubric(write(tmp_path, "[rubric\nid = 1"))


def test_the_environment_and_mounts_are_read_and_checked(tmp_path):
    rubric = load_rubric(DEFAULT_RUBRIC)
    assert rubric.environment.legacy_keras and rubric.mounts == []
    assert rubric.requirements_path() == DEFAULT_RUBRIC.parents[1] / "environments" / "course.txt"

    (tmp_path / "fsdd").mkdir()
    mounts = ('\n[[mounts]]\nhost = "fsdd"\ninside = "Data/fsdd"\n'
              '\n[[mounts]]\nhost = "/srv/hw3"\ninside = "/content/drive/MyDrive/hw3/data"\n')
    path = broken(tmp_path, "legacy_keras = true\n", "legacy_keras = true\n" + mounts)
    assert load_rubric(path).mount_paths() == {
        "Data/fsdd": tmp_path / "fsdd", "/content/drive/MyDrive/hw3/data": Path("/srv/hw3")}

    path.write_text(path.read_text().replace('inside = "Data/fsdd"', 'inside = "../fsdd"'))
    with pytest.raises(RubricError) as error:
        load_rubric(path)
    assert f"rubric.toml:{line_of(path, '../fsdd')}: mounts[0].inside: '../fsdd': a mount point" in str(
        error.value)
    path.write_text(path.read_text().replace('inside = "../fsdd"', 'inside = "/usr/share/fsdd"'))
    with pytest.raises(RubricError, match=r"mounts\[0\]\.inside: .*the sandbox's own folders"):
        load_rubric(path)

    path = broken(tmp_path, 'requirements = "environments/course.txt"', 'requirements = "environments/none.txt"')
    with pytest.raises(RubricError) as error:
        load_rubric(path)
    assert f"rubric.toml:{line_of(path, 'none.txt')}: environment.requirements: no such file" in str(error.value)


# --------------------------------------------------------------------------- typed parameters

@pytest.mark.parametrize("path", RUBRIC_FILES, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_every_rubric_of_the_project_loads(path):
    assert load_rubric(path).items


def test_the_check_kinds_are_the_checks_modules_and_each_has_a_params_model():
    """A check kind is a module of grader/checks/ with a ``check(ctx, item)`` function (quiz.py has none)."""
    modules = {module.name: importlib.import_module(f"grader.checks.{module.name}")
               for module in pkgutil.iter_modules(grader.checks.__path__)}
    assert {name for name, module in modules.items() if callable(getattr(module, "check", None))} == set(CHECK_PARAMS)
    assert "quiz" in modules and "quiz" not in CHECK_PARAMS


def _params_read(module) -> list[tuple[str, ast.expr | None]]:
    """Every ``<...>params.get("key", fallback)`` and ``<...>params["key"]`` in ``module``'s source: (key, fallback)."""
    read = []
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and ast.unparse(node.func.value).endswith("params")):
            read.append((ast.literal_eval(node.args[0]), node.args[1] if len(node.args) > 1 else None))
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("params"):
            read.append((ast.literal_eval(node.slice), None))
    return read


def test_every_parameter_the_checks_read_is_typed_with_the_checks_own_fallback():
    """What a check reads from its params is a key of its model, and a fallback it keeps is the model's default,
    so that a rubric grades as it did before the parameters were typed."""
    readers = [(importlib.import_module(f"grader.checks.{kind}"), model) for kind, model in CHECK_PARAMS.items()]
    readers += [(importlib.import_module(name), GenerationParams) for name in ("grader.context", "grader.model_use")]
    for module, model in readers:
        for key, fallback in _params_read(module):
            assert key in model.model_fields, f"{module.__name__} reads params[{key!r}], which {model.__name__} lacks"
            if fallback is not None:
                value = eval(compile(ast.Expression(fallback), module.__name__, "eval"), vars(module))
                assert model.model_fields[key].default == value, (module.__name__, key)


def test_typed_params_read_as_the_dict_the_rubric_wrote_and_serialise_as_written():
    rubric = load_rubric(DEFAULT_RUBRIC)
    by_id = {item.id: item for item in rubric.items}
    quality, sample = by_id["model-quality"].params, by_id["samples-diversity"].params
    assert isinstance(quality, QualityParams) and quality.metric == "pesq_wb" and quality["jobs"] == 2
    assert sample.get("diversity_share", 0.9) == 0.5 and sample.get("no such key", 7) == 7
    assert {**sample} == {"num": 4, "seed": 0, "dnsmos": False, "diversity_share": 0.5}
    with pytest.raises(KeyError):
        sample["no such key"]
    written = {item["id"]: item.get("params", {}) for item in json.loads(rubric.model_dump_json())["items"]}
    assert written["samples-diversity"] == {"num": 4, "seed": 0, "dnsmos": False}  # defaults are not written


BAD_PARAMS = [
    ('check = "claims"', 'check = "quiz"', r'items\[11\]\.check \(id "evaluation-claims"\): "quiz" is not a check '
     r"kind; allowed: checkpoint, claims, files, generation, listening, mfcc, reconstruct, sample, samples, static$"),
    ('metric = "pesq_wb"', 'metric = "mcd_dtw"', r'items\[6\]\.params\.metric \(id "model-quality"\): "mcd_dtw" is not '
     r"a metric the grader scores on held-out clips; allowed: estoi, lsd, mcd, mel_l1, pesq_nb, pesq_wb, seg_snr, "
     r"si_sdr, snr, stoi$"),
    ("tolerance_db = 1.0", "tolerence_db = 1.0", r'items\[1\]\.params\.tolerence_db \(id "preprocess-mfcc-run"\): '
     r"unknown key; allowed: clips, tolerance_db$"),
    ("{ min_count = 3 }", '{ min_count = "three" }', r'items\[7\]\.params\.min_count \(id "samples-handed-in"\): '
     r'Input should be a valid integer.*; got "three"$'),
    ('role = "checkpoints"', 'role = "weights"', r'items\[5\]\.params\.role \(id "model-checkpoint"\): "weights" is '
     r"not a discovery role; allowed: answers, checkpoints, evaluation, mfcc, reconstruct, sample, samples$"),
    ('evidence = ["augmentation"]', 'evidence = ["augmentaton"]', r'items\[2\]\.params\.evidence\[0\] \(id '
     r'"preprocess-augmentation"\): "augmentaton" is not an evidence kind; allowed: architecture, augmentation, '),
    ('full_at = "reference"', 'full_at = "teacher"', r'items\[6\]\.params\.full_at \(id "model-quality"\): "teacher" '
     r"is not a baseline source or a number; allowed: griffin_lim, reference$"),
    ("clips = 6", "clips = 10", r'items\[1\]\.params\.clips \(id "preprocess-mfcc-run"\): the mfcc check runs on the '
     r"held-out set's 6 probe clips"),
    ("dnsmos = false", 'dnsmos = "maybe"', r'items\[9\]\.params\.dnsmos \(id "samples-diversity"\): Input should be a '
     r'valid boolean.*; got "maybe"$'),
    ("[limits.intake]\n", "[limits.intake]\nmax_size = 3\n", r"limits\.intake\.max_size: unknown key; allowed: "
     r"max_unpacked_bytes, max_entries, max_depth$"),
]


@pytest.mark.parametrize("old, new, said", BAD_PARAMS, ids=[new for _, new, _ in BAD_PARAMS])
def test_a_wrong_check_metric_key_or_type_names_the_item_the_key_and_what_is_allowed(tmp_path, old, new, said):
    path = broken(tmp_path, old, new)
    with pytest.raises(RubricError) as error:
        load_rubric(path)
    [problem] = error.value.problems
    assert problem.startswith(f"{path}:{line_of(path, new.strip().splitlines()[-1])}: "), problem
    assert re.search(said, problem), problem


def test_grade_rubric_check_prints_every_wrong_value_and_fails(tmp_path):
    path = broken(tmp_path, 'check = "claims"', 'check = "quiz"')
    for old, new in (('metric = "pesq_wb"', 'metric = "mcd_dtw"'), ("tolerance_db = 1.0", "tolerence_db = 1.0"),
                     ("{ min_count = 3 }", '{ min_count = "three" }')):
        path.write_text(path.read_text().replace(old, new, 1))
    result = subprocess.run([sys.executable, "-m", "grader.cli", "rubric", "check", str(path)],
                            capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 1 and "4 problem(s)" in result.stderr, result.stderr
    for said in ('items[11].check (id "evaluation-claims"): "quiz" is not a check kind; allowed: checkpoint, claims',
                 'items[6].params.metric (id "model-quality"): "mcd_dtw" is not a metric',
                 'items[1].params.tolerence_db (id "preprocess-mfcc-run"): unknown key; allowed: clips, tolerance_db',
                 'items[7].params.min_count (id "samples-handed-in"): Input should be a valid integer'):
        assert said in result.stderr, result.stderr
