"""The course's own example of student work, run as it was written: the seed's Keras 2 CNN VAE notebook
(shared/seeds/003_*.txt) with one contract cell, training on course data the rubric mounts at ``Data/``,
in the course environment (TensorFlow with tf-keras), graded end to end."""
from __future__ import annotations

import shutil

import pytest

from grader import sandbox
from grader.environment import for_rubric
from grader.pipeline import GradingSetup, grade_submission
from grader.rubric import DEFAULT_RUBRIC, Mount, load_rubric
from reference import PROJECT_ROOT
from reference.data import read_manifest
from tests.seed_notebook import seed_notebook

SEEDS = PROJECT_ROOT.parent / "shared" / "seeds"
ITEMS = ("samples-generation-runs", "model-quality", "samples-diversity")
"""The items a notebook entry's run serves: the run happens once for all of them."""

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sandbox.BWRAP is None, reason="bubblewrap is not installed")]


@pytest.fixture(scope="module")
def graded(tmp_path_factory, small_data, small_heldout, request):
    seeds = sorted(SEEDS.glob("003_*.txt"))
    if not seeds:
        pytest.skip(f"the seed notebook is not at {SEEDS}")
    root = tmp_path_factory.mktemp("seed")
    heldout = small_heldout
    course = root / "course"
    clips = [small_data / row.path for row in read_manifest(small_data) if row.split in ("train", "test")]
    for kind, first in (("Piano", 23), ("Human", 20)):  # 14 spectrograms: the seed keeps 10 for validation
        (course / kind).mkdir(parents=True)
        for k in range(7):
            shutil.copy(clips[k % len(clips)], course / kind / f"{kind}{first + k}.wav")
        (course / kind).chmod(0o755)
    course.chmod(0o755)
    rubric = load_rubric(DEFAULT_RUBRIC)
    rubric = rubric.model_copy(update={
        "items": [item for item in rubric.items if item.id in ITEMS], "quiz": None,
        "mounts": [Mount(host=str(course / "Piano"), inside="Data/Piano"),
                   Mount(host=str(course / "Human"), inside="Data/Human")]})
    environment = for_rubric(rubric)
    if not environment.ready:
        pytest.skip(environment.missing_message())
    setup = GradingSetup(rubric=rubric, heldout=heldout, out_dir=root / "out",
                         load_baseline=request.getfixturevalue("small_baseline"))  # only where not skipped
    submission = root / "hw" / "student_4242_1_hw3"
    seed_notebook(seeds[0], submission / "vae_pipeline.ipynb")
    return grade_submission(submission, setup)


def test_the_seed_notebook_trains_saves_and_generates_in_one_run(graded):
    assert len(graded.runs) == 1, [run.purpose for run in graded.runs]
    run = graded.runs[0]
    assert run.result.verdict == "ok" and run.notebook.error is None, (run.notebook.error, run.notebook.traceback)
    assert "reconstruct and sample" in run.purpose
    assert "tensorflow 2.21.0" in run.result.environment
    statuses = {cell.status for cell in run.notebook.cells}
    assert statuses == {"ok"}, [(cell.number, cell.status) for cell in run.notebook.cells]
    assert max(cell.seconds or 0 for cell in run.notebook.cells) > 1  # the report says which cell spent the time


def test_its_reconstructions_and_samples_earn_points(graded):
    items = {item.id: item for item in graded.items}
    assert items["samples-generation-runs"].status == "passed", items["samples-generation-runs"].explanation
    assert items["model-quality"].points > 0, items["model-quality"].explanation
    assert items["samples-diversity"].status != "error", items["samples-diversity"].explanation
