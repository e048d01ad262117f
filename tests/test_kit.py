"""The student kit holds nothing secret, and `grade check` grades with it, as a student would."""
import subprocess
import sys

import pytest

from grader.kit import write_kit
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from reference import PROJECT_ROOT
from reference.data import read_manifest
from tests.helpers import write_submission


@pytest.fixture(scope="module")
def kit(tmp_path_factory, small_data):
    root = tmp_path_factory.mktemp("kit")
    return write_kit(root / "kit", load_rubric(DEFAULT_RUBRIC), data_dir=small_data), small_data


def test_the_kit_holds_no_answer_key_no_hidden_item_and_no_heldout_clip(kit):
    folder, data = kit
    rubric = load_rubric(DEFAULT_RUBRIC)
    secret = [item for item in rubric.items if item.visibility != "visible"]
    assert secret, "the bundled rubric has hidden items to keep out"
    texts = {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    for path, content in texts.items():
        for item in secret:
            assert item.id.encode() not in content and item.title.encode() not in content, (path, item.id)
        assert b"answer =" not in content and b'"answer"' not in content, path
    public = load_rubric(folder / "rubric.toml")
    assert all(q.answer is None for q in public.quiz.questions)
    assert {i.id for i in public.items} == {i.id for i in rubric.items if i.visibility == "visible"}
    heldout = {clip.sha256 for clip in read_manifest(data) if clip.split == "heldout"}
    kit_clips = read_manifest(folder / "data")
    assert kit_clips and {clip.split for clip in kit_clips} == {"test"}
    assert heldout.isdisjoint({clip.sha256 for clip in kit_clips})
    assert 'q1 = ""' in (folder / "answers.toml").read_text()


def test_grade_check_runs_the_visible_items_on_the_kit(kit, tmp_path):
    folder, _ = kit
    submission = write_submission(tmp_path / "mine")
    result = subprocess.run([sys.executable, "-m", "grader.cli", "check", str(submission), "--rubric",
                             str(folder / "rubric.toml"), "--data", str(folder / "data"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "out" / "pages" / "mine.html").read_text()
    assert "mine" in result.stdout and "preprocess-mfcc-run" in report
    assert "samples-diversity" not in report and "evaluation-claims" not in report
    assert "answer key" not in report  # the key's column is never on a student's page
