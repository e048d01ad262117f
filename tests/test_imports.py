"""A package the course environment lacks is a finding, not a mystery: named, with whether the course has it
and what the instructor can do; a notebook's install lines are listed with the same knowledge."""
from __future__ import annotations

import dataclasses

import pytest

from grader.environment import bundled
from grader.imports import install_finding, missing_module, missing_package_finding
from grader.pipeline import grade_submission
from grader.report.html import render_submission

TRACEBACK = """Traceback (most recent call last):
  File "/submission/generate.py", line 2, in <module>
    import pydub.effects
ModuleNotFoundError: No module named 'pydub'
"""


@pytest.fixture(scope="module")
def course():
    environment = bundled()
    if not environment.ready:
        pytest.skip(environment.missing_message())
    return environment


def test_the_missing_module_is_read_from_the_end_of_the_output():
    assert missing_module(TRACEBACK) == "pydub"
    assert missing_module("ImportError: No module named google.colab.drive\n") == "google.colab.drive"
    assert missing_module("x" * 100_000 + TRACEBACK) == "pydub"
    assert missing_module("ValueError: bad shape\n") is None
    assert missing_module("No module named " + "a" * 2_000_000) is None  # no backtracking on a hostile line


def test_findings_say_whether_the_course_has_the_package_and_what_to_do(course):
    lacking = missing_package_finding("pydub", course)
    assert "does not provide `pydub`" in lacking and "grade env build" in lacking and str(course.requirements) in lacking
    assert "cannot provide `torchaudio`" in missing_package_finding("torchaudio", course)
    assert "has `sklearn`" in missing_package_finding("sklearn.nope", course)
    assert "course environment has seaborn, tensorflow" in install_finding(
        2, "pip install seaborn==0.13.2 tensorflow", ["seaborn==0.13.2", "tensorflow"], course)
    assert "does not provide pydub" in install_finding(3, "pip install pydub", ["pydub"], course)
    assert "was not run" in install_finding(4, "apt-get update", [], course)


def test_a_run_that_cannot_import_a_package_says_so_on_the_page(setup_factory, tmp_path, course):  # noqa: F811
    folder = tmp_path / "ivy_5151_1_hw3"
    folder.mkdir()
    (folder / "generate.py").write_text("import argparse\nparser = argparse.ArgumentParser()\n"
                                        "parser.add_argument('--mel-dir')\nparser.add_argument('--out-dir')\n"
                                        "import pydub\n")
    setup = setup_factory("out-imports")
    item = next(item for item in setup.rubric.items if item.id == "samples-generation-runs")
    setup = dataclasses.replace(setup, rubric=setup.rubric.model_copy(update={"items": [item], "quiz": None}))
    result = grade_submission(folder, setup)
    assert len(result.runs) == 1 and result.runs[0].result.verdict == "exit_code"
    assert any("does not provide `pydub`" in finding for finding in result.runs[0].findings), result.runs[0].findings
    assert "course" in result.runs[0].result.environment
    assert "does not provide `pydub`" in render_submission(result, setup.out_dir)
