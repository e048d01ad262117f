"""The quiz: reading a student's answers and matching them against the rubric's key.

Matching ignores case, surrounding space and punctuation, nothing else: an answer is
right when it equals the right choice's text under :func:`normalise`, or when it is
that choice's letter (``a`` for the first choice, ``(b)`` and ``C.`` work too).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

from grader.rubric import Question, Quiz
from grader.student_files import StudentFileError, read_bytes, read_json, read_toml

MAX_ANSWERS_BYTES = 128_000
"""An answers file is a few lines; a larger one is refused."""
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}\u2010-\u2015\u2018-\u201f]+")
_MARKDOWN_ANSWER = re.compile(r"\s*+(?:[-*+]\s*+)?(?P<id>[A-Za-z0-9_-]++)\s*+[:=.)]\s*+(?P<answer>.*\S)\s*+$")
"""``- q1: MFCC`` (matched from a line's start). Linear in the line: every run is possessive, so
it is taken once; ``.*\\S`` backs off once, from the line's end to its last visible character;
and a failure retries only without the bullet (``-`` is also an id character)."""


class AnswersError(ValueError):
    """An answers file that cannot be read; the message names the file and the expected layout."""


def normalise(text: str) -> str:
    """Lower case, punctuation turned into spaces, runs of space collapsed, ends stripped."""
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).split())


def chosen_index(answer: str, question: Question) -> int | None:
    """Index of the choice ``answer`` names (by text or by letter), or None."""
    given = normalise(answer)
    for index, choice in enumerate(question.choices):
        if given == normalise(choice):
            return index
    if len(given) == 1 and given.isalpha() and ord(given) - ord("a") < len(question.choices):
        return ord(given) - ord("a")
    return None


@dataclass(frozen=True)
class QuestionResult:
    """One question's outcome: what was answered, whether it is right, the points earned."""

    id: str
    answered: str | None
    correct: bool | None
    """None where the key is not known here (a public rubric) or not to be revealed."""
    points: float
    max_points: float


def grade_quiz(quiz: Quiz, answers: dict[str, str], reveal: bool = True) -> list[QuestionResult]:
    """Score ``answers`` (question id -> answer text) against the quiz, one result per question.

    With ``reveal`` False, or for a question without an answer key, only whether it was
    answered is recorded: ``correct`` is None and no points are given.
    """
    results = []
    for question in quiz.questions:
        given = answers.get(question.id)
        if not reveal or question.answer is None:
            results.append(QuestionResult(question.id, given, None, 0.0, quiz.points_per_question))
            continue
        right = given is not None and chosen_index(given, question) == question.choices.index(question.answer)
        results.append(QuestionResult(question.id, given, right, quiz.points_per_question if right else 0.0,
                                      quiz.points_per_question))
    return results


def read_answers(path: str | Path) -> dict[str, str]:
    """Question id -> answer from ``answers.toml`` (a ``[quiz]`` table), JSON, or a Markdown list.

    TOML and JSON may hold the answers at the top level or under ``quiz``; Markdown
    lines look like ``- q1: MFCC``. The file is read with :mod:`grader.student_files`'
    bounds (at most :data:`MAX_ANSWERS_BYTES`). Raises AnswersError naming the file otherwise.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = read_toml(path, MAX_ANSWERS_BYTES, "an answers file")
        elif suffix == ".json":
            data = read_json(path, MAX_ANSWERS_BYTES, "an answers file")
        else:
            text = read_bytes(path, MAX_ANSWERS_BYTES, "an answers file").decode(errors="replace")
            data = {m["id"]: m["answer"] for line in text.splitlines() if (m := _MARKDOWN_ANSWER.match(line))}
    except StudentFileError as error:
        raise AnswersError(f"{path.name}: cannot be read (it {error.problem}). Start from the template that "
                           f"`grade kit` writes: a [quiz] table with lines like q1 = \"MFCC\".") from None
    table = data.get("quiz", data) if isinstance(data, dict) else None
    if not isinstance(table, dict) or not table:
        raise AnswersError(f"{path.name}: no answers found. Write a [quiz] table with lines like q1 = \"MFCC\".")
    return {str(key): str(value) for key, value in table.items() if isinstance(value, (str, int, float))}
