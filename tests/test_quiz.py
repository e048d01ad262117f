"""Quiz matching: choice text or letter; case, surrounding space and punctuation ignored, nothing else."""
import pytest

from grader.checks.quiz import AnswersError, chosen_index, grade_quiz, normalise, read_answers
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from tests.test_rubric import BUNDLED_KINDS

QUIZ = load_rubric(DEFAULT_RUBRIC, known_checks=BUNDLED_KINDS).quiz
SNR = next(q for q in QUIZ.questions if q.id == "q7")


@pytest.mark.parametrize("answer", ["Signal-to-Noise Ratio", "signal to noise ratio", "  SIGNAL-TO-NOISE RATIO. ",
                                    "signal–to–noise ratio", "c", "C", "(c)", "c."])
def test_right_answers_match(answer):
    assert chosen_index(answer, SNR) == 2


@pytest.mark.parametrize("answer", ["Signal to Noise", "SNR", "signal-to-noise-ratios", "d", "", "2", "Sound Noise Ratio"])
def test_near_misses_do_not(answer):
    assert chosen_index(answer, SNR) != 2


def test_normalise():
    assert normalise("  Increases   data-diversity! ") == "increases data diversity"


def test_grading_a_whole_quiz():
    answers = {"q1": "mfcc", "q2": "b", "q3": "Reduces noise", "q7": "Signal-to-noise ratio"}
    results = grade_quiz(QUIZ, answers)
    assert [r.correct for r in results] == [True, True, False, False, False, False, True]
    assert sum(r.points for r in results) == 6 and sum(r.max_points for r in results) == 14
    assert results[3].answered is None


@pytest.mark.parametrize("name, text", [
    ("answers.toml", '[quiz]\nq1 = "MFCC"\nq2 = "b"\n'),
    ("answers.json", '{"quiz": {"q1": "MFCC", "q2": "b"}}'),
    ("answers.json", '{"q1": "MFCC", "q2": "b"}'),
    ("answers.md", "# My answers\n\n- q1: MFCC\n- q2: b\n"),
])
def test_answers_files_in_every_accepted_form(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    assert read_answers(tmp_path / name) == {"q1": "MFCC", "q2": "b"}


@pytest.mark.parametrize("name, text", [("answers.toml", "[quiz\nq1 = "), ("answers.json", "{"),
                                        ("answers.md", "I think MFCC is right"),
                                        ("answers.json", "[" * 100_000), ("answers.toml", "q1 = " + "[" * 100_000)])
def test_unreadable_answers_name_the_file_and_the_layout(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(AnswersError, match=rf"{name}: .*q1 = \"MFCC\""):
        read_answers(tmp_path / name)
