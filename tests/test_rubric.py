"""The rubric as data: the bundled rubric follows the assignment; wrong rubrics get line-numbered errors."""
import re
from pathlib import Path

import pytest

from grader.limits import RunLimits
from grader.rubric import CHECKLIST, DEFAULT_RUBRIC, RubricError, load_rubric

BUNDLED_KINDS = {"static", "mfcc", "files", "reconstruct", "samples", "generation", "sample", "claims", "checkpoint"}


def test_bundled_rubric_covers_the_assignment():
    rubric = load_rubric(DEFAULT_RUBRIC, known_checks=BUNDLED_KINDS)
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
        load_rubric(path, known_checks=BUNDLED_KINDS)
    assert f"rubric.toml:{line_of(path, 'points = -6')}: items[2].points: Input should be greater than 0" in str(error.value)


def test_an_unknown_visibility_limit_and_check_are_reported(tmp_path):
    path = broken(tmp_path, 'visibility = "hidden"', 'visibility = "secret"')
    path.write_text(path.read_text().replace("limits = { wall_seconds = 120 }", "limits = { wall_secs = 120 }", 1))
    with pytest.raises(RubricError) as error:
        load_rubric(path, known_checks=BUNDLED_KINDS)
    problems = "\n".join(error.value.problems)
    assert re.search(rf":{line_of(path, 'secret')}: items\[9\]\.visibility: Input should be 'visible'", problems)
    assert f":{line_of(path, 'wall_secs')}: items[6].limits" in problems and "wall_secs" in problems
    with pytest.raises(RubricError, match=r"items\[0\]\.check: unknown check 'static'"):
        load_rubric(DEFAULT_RUBRIC, known_checks={"mfcc"})


def test_points_must_add_up_and_answers_must_be_choices(tmp_path):
    with pytest.raises(RubricError, match="add up to 93 points, but rubric.total_points is 100"):
        load_rubric(broken(tmp_path, "points_per_question = 2", "points_per_question = 1"), known_checks=BUNDLED_KINDS)
    path = broken(tmp_path, 'answer = "PESQ"', 'answer = "MOS"')
    with pytest.raises(RubricError) as error:
        load_rubric(path, known_checks=BUNDLED_KINDS)
    line = line_of(path, 'id = "q2"') - 1  # a problem of the whole question points at its header
    assert f"rubric.toml:{line}: quiz.questions[1]: answer 'MOS'" in str(error.value)


def test_unreadable_rubrics(tmp_path):
    with pytest.raises(RubricError, match="cannot read"):
        load_rubric(tmp_path / "missing.toml")
    with pytest.raises(RubricError, match="not valid TOML"):
        load_rubric(write(tmp_path, "[rubric\nid = 1"))


def test_the_environment_and_mounts_are_read_and_checked(tmp_path):
    rubric = load_rubric(DEFAULT_RUBRIC, known_checks=BUNDLED_KINDS)
    assert rubric.environment.legacy_keras and rubric.mounts == []
    assert rubric.requirements_path() == DEFAULT_RUBRIC.parents[1] / "environments" / "course.txt"

    (tmp_path / "fsdd").mkdir()
    mounts = ('\n[[mounts]]\nhost = "fsdd"\ninside = "Data/fsdd"\n'
              '\n[[mounts]]\nhost = "/srv/hw3"\ninside = "/content/drive/MyDrive/hw3/data"\n')
    path = broken(tmp_path, "legacy_keras = true\n", "legacy_keras = true\n" + mounts)
    assert load_rubric(path, known_checks=BUNDLED_KINDS).mount_paths() == {
        "Data/fsdd": tmp_path / "fsdd", "/content/drive/MyDrive/hw3/data": Path("/srv/hw3")}

    path.write_text(path.read_text().replace('inside = "Data/fsdd"', 'inside = "../fsdd"'))
    with pytest.raises(RubricError) as error:
        load_rubric(path, known_checks=BUNDLED_KINDS)
    assert f"rubric.toml:{line_of(path, '../fsdd')}: mounts[0].inside: '../fsdd': a mount point" in str(
        error.value)
    path.write_text(path.read_text().replace('inside = "../fsdd"', 'inside = "/usr/share/fsdd"'))
    with pytest.raises(RubricError, match=r"mounts\[0\]\.inside: .*the sandbox's own folders"):
        load_rubric(path, known_checks=BUNDLED_KINDS)

    path = broken(tmp_path, 'requirements = "environments/course.txt"', 'requirements = "environments/none.txt"')
    with pytest.raises(RubricError) as error:
        load_rubric(path, known_checks=BUNDLED_KINDS)
    assert f"rubric.toml:{line_of(path, 'none.txt')}: environment.requirements: no such file" in str(error.value)
