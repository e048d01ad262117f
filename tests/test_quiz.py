"""Quiz answers read where students put them (answers files, answers.txt, a notebook's markdown), and
matched by choice text or letter: case, surrounding space and punctuation ignored, nothing else."""
import json
import time

import pytest

from grader.checks.quiz import (AnswersError, NoAnswers, chosen_index, count_notebook_answers, grade_quiz, normalise,
                                question_id, read_answers)
from grader.discovery import discover
from grader.kit import answers_template
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from tests.helpers import BUNDLED_KINDS

QUIZ = load_rubric(DEFAULT_RUBRIC, known_checks=BUNDLED_KINDS).quiz
SNR = next(q for q in QUIZ.questions if q.id == "q7")
TWO_MB = 2_000_000


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


# --------------------------------------------------------------------------- answers where students put them

KEY = {"q1": "MFCC", "q2": "PESQ", "q3": "Increases data diversity", "q4": "Bitmap", "q5": "Feature Extraction",
       "q6": "WaveNet", "q7": "Signal-to-Noise Ratio"}


def notebook_json(*cells: tuple[str, str]) -> str:
    """An nbformat 4 notebook of (kind, source) cells, as Jupyter writes it (sources as lists of lines)."""
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True),
         **({"outputs": [], "execution_count": None} if kind == "code" else {})} for kind, source in cells]})


ASSIGNMENT_STYLE = [  # the assignment's own quiz, answered in the ways students write it
    ("markdown", "# Audio generative model\n\n1. Load the data\n2. Extract MFCC features\n3. Train WaveNet\n"),
    ("code", "import librosa\nanswer = 42\n"),
    ("markdown", "### Check for Understanding\n\n"
                 "**What technique did you use for feature extraction in the audio?**\n\n"
                 "- MFCC\n- Spectrogram\n- Waveform\n\n**Answer:** MFCC\n"),
    ("markdown", "**Which evaluation metric is used for objective audio quality assessment?**\n\n- RMSE\n- PESQ\n"
                 "- FFT\n\n**Answer:**\n\nPESQ\n"),
    ("markdown", "**What purpose does data augmentation serve in audio processing?**\n\n"
                 "- Reduces noise\n- Increases data diversity\n- Decreases training time\n"),
    ("markdown", "Answer: Increases data diversity\n"),  # the answer in a cell of its own
    ("markdown", "**Quizzes:**\n\n**Which of the following is NOT a common representation of audio data?**\n"
                 "- Waveform\n- Spectrogram\n- Bitmap\n\n**Answer**: c\n"),
    ("markdown", "#### 5. What is MFCC used for in audio processing?\n\n**Answer:**\n- Feature Extraction\n"),
    ("markdown", "### Question 6\nWhich model is primarily used for high-fidelity audio generation?\n\n"
                 "> **Answer:** **WaveNet**\n"),
    ("markdown", "**Q7.** What does SNR stand for?\n\n*Answer:* Signal-to-Noise Ratio\n"),
]


@pytest.mark.parametrize("line", ["q1: MFCC", "1. MFCC", "1) MFCC", "Q1 - MFCC", "Question 1: MFCC", "- q1: MFCC",
                                  "**Q1:** MFCC", "q1 = MFCC", "Q1: **MFCC**", "question 1 - a"])
def test_answers_txt_in_every_listed_style(tmp_path, line):
    (tmp_path / "answers.txt").write_text(f"My quiz answers\n\n{line}\n")
    answers = read_answers(tmp_path / "answers.txt", QUIZ)
    assert answers.keys() == {"q1"} and grade_quiz(QUIZ, answers)[0].correct


def test_a_whole_answers_txt_earns_every_point(tmp_path):
    (tmp_path / "answers.txt").write_text("\ufeffName: Ada\n\nQuestion 1: MFCC\n2. b\n3) Increases data diversity\n"
                                          "Q4 - Bitmap\nq5: Feature Extraction\n6. WaveNet\n7) c\n")
    answers = read_answers(tmp_path / "answers.txt", QUIZ)
    assert answers == {**KEY, "q2": "b", "q7": "c"}  # "Name" names no question
    assert sum(r.points for r in grade_quiz(QUIZ, answers)) == 14


def test_numbers_follow_the_rubric_order_and_ids_win_over_numbers():
    assert [question_id(label, QUIZ) for label in ("1", "Q7", "question 3", "q8", "0", "Q1", "name")] == [
        "q1", "q7", "q3", None, None, "q1", None]
    assert [question_id(label, None) for label in ("1", "Question 2", "extra")] == ["q1", "q2", "extra"]


def test_a_notebook_in_the_assignment_format_earns_every_point(tmp_path):
    (tmp_path / "model.ipynb").write_text(notebook_json(*ASSIGNMENT_STYLE))
    answers = read_answers(tmp_path / "model.ipynb", QUIZ)
    assert answers == {**KEY, "q4": "c"}
    assert [r.correct for r in grade_quiz(QUIZ, answers)] == [True] * 7
    assert count_notebook_answers(tmp_path / "model.ipynb") == 7


def test_answers_md_in_the_assignment_format(tmp_path):
    seed = "".join(source + "\n" for kind, source in ASSIGNMENT_STYLE if kind == "markdown")
    (tmp_path / "answers.md").write_text(seed)
    assert read_answers(tmp_path / "answers.md", QUIZ) == {**KEY, "q4": "c"}


def test_an_unanswered_question_takes_no_answer_from_the_next_one(tmp_path):
    (tmp_path / "model.ipynb").write_text(notebook_json(("markdown", (
        "**What technique did you use for feature extraction in the audio?**\n\n**Answer:**\n\n"
        "**Which evaluation metric is used for objective audio quality assessment?**\n\n**Answer:** PESQ\n"))))
    assert read_answers(tmp_path / "model.ipynb", QUIZ) == {"q2": "PESQ"}


def test_ordinary_markdown_holds_no_answers(tmp_path):
    """Numbered steps, headings that say Question or Q, colons and the word answer: none is an answer."""
    (tmp_path / "model.ipynb").write_text(notebook_json(
        ("markdown", "# Question 1 of the project: can we generate speech?\n\n1. Load the data: FSDD\n"
                     "2) Extract features - MFCC\nQ3 was hard.\n\nTo answer this, we trained WaveNet.\n"
                     "Answers follow below: none yet\n\n**Note:** PESQ is 2.1\n"),
        ("code", "# Answer: MFCC\nprint('Answer: MFCC')\n"),
        ("raw", "**Answer:** MFCC\n")))
    with pytest.raises(NoAnswers, match=r"model.ipynb: no answers found in its markdown. .*\*\*Answer:\*\*"):
        read_answers(tmp_path / "model.ipynb", QUIZ)
    assert count_notebook_answers(tmp_path / "model.ipynb") == 0


@pytest.mark.parametrize("line", [
    " " * TWO_MB, "**Answer:**" + " " * TWO_MB + "x", "Question 1" + " \t" * (TWO_MB // 2), "1." + " " * TWO_MB + "?",
    "q" * TWO_MB, "-" * TWO_MB, "*" * TWO_MB + ":", "a" * TWO_MB + ":", "1" * TWO_MB + ". x", "q1" + "*" * TWO_MB,
    "What technique did you use for feature extraction in the audio " * (TWO_MB // 64),
])
def test_a_hostile_2_mb_markdown_line_is_read_in_linear_time(tmp_path, line):
    """Each line is 2 MB in one markdown cell, before the answers; patterns that backtrack would take hours."""
    (tmp_path / "model.ipynb").write_text(notebook_json(("markdown", line + "\n"), *ASSIGNMENT_STYLE))
    start = time.perf_counter()
    answers = read_answers(tmp_path / "model.ipynb", QUIZ)
    assert time.perf_counter() - start < 2.0
    assert len(answers) == 7


def test_a_hostile_answers_txt_is_read_in_linear_time(tmp_path):
    """Lines just under the 128 kB an answers file may be, in every shape the patterns meet."""
    lines = ["- q1:" + " " * 20_000 + "x", "Question" + " " * 20_000, "q" * 20_000, "1" * 20_000 + ")",
             "**Answer:**" + "*" * 20_000, "a-" * 10_000 + ":", "q7: c"]
    (tmp_path / "answers.txt").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    answers = read_answers(tmp_path / "answers.txt", QUIZ)
    assert time.perf_counter() - start < 2.0
    assert answers == {"q1": "x", "q7": "c"}


# --------------------------------------------------------------------------- which file discovery chooses

def grade_as_the_pipeline_does(folder) -> float:
    """Discovery's answers file, read with the rubric's quiz and graded: the quiz's points."""
    files = discover(folder).findings["answers"].files
    return sum(r.points for r in grade_quiz(QUIZ, read_answers(folder / files[0], QUIZ)))


def test_a_notebook_submission_with_answers_in_its_markdown_earns_every_quiz_point(tmp_path):
    (tmp_path / "analysis.ipynb").write_text(notebook_json(("markdown", "# Notes\n"), ("code", "x = 1\n")))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "model.ipynb").write_text(notebook_json(*ASSIGNMENT_STYLE))
    finding = discover(tmp_path).findings["answers"]
    assert (finding.status, finding.files) == ("guessed", ["work/model.ipynb"])
    assert finding.how == ("the contract's default answers.toml, answers.json, answers.md, answers.txt matched "
                           "nothing; the markdown of work/model.ipynb holds 7 answers (**Answer:** lines), the "
                           "most of 2 notebooks")
    assert grade_as_the_pipeline_does(tmp_path) == 14


def test_answers_txt_beside_a_notebook_is_the_answers_file(tmp_path):
    (tmp_path / "model.ipynb").write_text(notebook_json(("markdown", "**Answer:** MFCC\n")))
    (tmp_path / "answers.txt").write_text("".join(f"{n}. {answer}\n" for n, answer in enumerate(KEY.values(), 1)))
    assert discover(tmp_path).findings["answers"].files == ["answers.txt"]
    assert grade_as_the_pipeline_does(tmp_path) == 14


def test_the_blank_template_gives_way_to_the_notebooks_answers(tmp_path):
    (tmp_path / "answers.toml").write_text(answers_template(load_rubric(DEFAULT_RUBRIC)))
    (tmp_path / "model.ipynb").write_text(notebook_json(*ASSIGNMENT_STYLE))
    finding = discover(tmp_path).findings["answers"]
    assert finding.files == ["model.ipynb"] and finding.how.startswith("answers.toml holds no answer; the markdown "
                                                                        "of model.ipynb holds 7 answers")
    assert grade_as_the_pipeline_does(tmp_path) == 14


def test_without_answers_anywhere_the_named_file_says_why(tmp_path):
    (tmp_path / "answers.toml").write_text(answers_template(load_rubric(DEFAULT_RUBRIC)))
    (tmp_path / "model.ipynb").write_text(notebook_json(("markdown", "1. Load the data: FSDD\n")))
    finding = discover(tmp_path).findings["answers"]
    assert (finding.status, finding.files) == ("guessed", ["answers.toml"])
    assert finding.how == "answers.toml holds no answer; no notebook's markdown holds an **Answer:** line"
    with pytest.raises(NoAnswers, match=r"answers.toml: no answers found. Write a \[quiz\] table"):
        read_answers(tmp_path / "answers.toml", QUIZ)
