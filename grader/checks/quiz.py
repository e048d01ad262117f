"""The quiz: reading a student's answers and matching them against the rubric's key.

Answers are read where students put them (:func:`read_answers`): ``answers.toml`` or
JSON, a list of lines in ``answers.md`` or ``answers.txt`` (``q1: MFCC``, ``1. MFCC``,
``1) MFCC``, ``Q1 - MFCC``, ``Question 1: MFCC``), or a notebook's own markdown in the
assignment's format: the question, then ``**Answer:** MFCC`` on that line or the next
non-empty one. Labels name questions by their rubric id or by number, counted in the
rubric's order; a notebook's question is known by its text or a ``Question N`` heading.

Matching ignores case, surrounding space and punctuation, nothing else: an answer is
right when it equals the right choice's text under :func:`normalise`, or when it is
that choice's letter (``a`` for the first choice, ``(b)`` and ``C.`` work too).
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from grader.artefacts import provides
from grader.rubric import Question, Quiz
from grader.student_files import StudentFileError, read_bytes, read_json, read_notebook, read_toml
from grader.limits import MAX_ANSWERS_BYTES, MAX_MARKDOWN_LINES, MAX_QUESTION_LINE

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}\u2010-\u2015\u2018-\u201f]+")
_LIST_ANSWER = re.compile(
    r"[ \t]*+(?:[-*+][ \t]++)?+[*_]*+"
    r"(?P<label>question[ \t]*+[0-9]++|q[ \t]*+[0-9]++|[0-9]++|[a-z][a-z0-9_-]*+)"
    r"[*_]*+[ \t]*+(?:[:=.)]|-(?=[ \t]))[ \t*_]*+(?P<answer>.*+)", re.IGNORECASE)
"""A line that answers the question its label names: ``- q1: MFCC``, ``1. MFCC``, ``1) MFCC``,
``Q1 - MFCC``, ``**Question 1:** MFCC``, ``q1 = MFCC`` (matched from a line's start).

Linear in the line: every quantifier is possessive, so each run is taken once and never given
back; the label's four alternatives are each tried at most once, from the same place (the
last takes at most the line once); what follows the label fails at once or matches, and the
answer is the rest of the line, taken whole."""
_ANSWER_MARK = re.compile(r"[ \t>+*_-]*+answer[ \t*_]*+:[ \t*_]*+(?P<answer>.*+)", re.IGNORECASE)
"""The assignment's ``**Answer:** MFCC`` (and ``Answer: MFCC``, ``**Answer**: MFCC``, in a list or a
quote), from a line's start; the answer may be empty (it is then on the next non-empty line).
Linear: three possessive runs of characters, then the rest of the line, with no alternation."""
_QUESTION_HEADING = re.compile(r"[ \t#>*_-]*+(?:question|q)[ \t.]*+(?P<number>[0-9]{1,3}+)(?![0-9a-z_])",
                               re.IGNORECASE)
"""``### Question 3``, ``**Q3.** ...``, ``Question 3: ...`` from a line's start. Linear: possessive
runs; the alternation's second choice is one letter; the number takes at most three digits."""
_NUMBER = re.compile(r"(?:question|q)?+[ \t.]*+(?P<number>[0-9]{1,3}+)", re.IGNORECASE)
"""A label that numbers a question (``3``, ``q3``, ``Question 3``), matched whole. Linear: possessive
runs; three digits at most, so ``int`` never meets Python's limit on the digits it converts."""
_ANSWER_EDGES = " \t*_`"
"""Emphasis and code marks around an answer (``**MFCC**``), stripped with the spaces."""


class AnswersError(ValueError):
    """An answers file that cannot be read; the message names the file and the expected layout."""


class NoAnswers(AnswersError):
    """An answers file that was read but holds no answer (an empty template, or markdown without any)."""


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


def question_id(label: str, quiz: Quiz | None) -> str | None:
    """The id of the question ``label`` names, or None.

    A rubric id names its question (any letter case); a number (``3``, ``q3``, ``Question 3``)
    names the rubric's third question. Without ``quiz``, a number gives ``q3`` and any other
    label is kept as written.
    """
    label = label.strip()
    if quiz is not None:
        for question in quiz.questions:
            if label.casefold() == question.id.casefold():
                return question.id
    number = _NUMBER.fullmatch(label)
    if quiz is None:
        return f"q{int(number['number'])}" if number else label
    if number and 1 <= int(number["number"]) <= len(quiz.questions):
        return quiz.questions[int(number["number"]) - 1].id
    return None


def read_answers(path: str | Path, quiz: Quiz | None = None) -> dict[str, str]:
    """Question id -> answer from an answers file or a notebook's markdown.

    - ``.toml`` / ``.json``: a table of answers at the top level or under ``quiz``;
    - ``.ipynb``: the markdown cells in the assignment's format (:func:`_answers_in_lines`);
    - anything else (``answers.md``, ``answers.txt``): lines like ``q1: MFCC`` or ``1. MFCC``,
      and the assignment's format too.

    Labels become question ids by :func:`question_id` with ``quiz`` (pass the rubric's quiz:
    without it, numbers give ``q1``, ``q2``... and a notebook's questions are known only by
    their ``Question N`` headings); labels naming no question and empty answers are left out. Files are read with :mod:`grader.student_files`' bounds (answers files up to
    :data:`MAX_ANSWERS_BYTES`, notebooks up to their own cap).

    Raises:
        NoAnswers: the file was read and holds no answer.
        AnswersError: the file cannot be read; the message names it and the expected layout.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".toml", ".json"):
            data = (read_toml if suffix == ".toml" else read_json)(path, MAX_ANSWERS_BYTES, "an answers file")
            table = data.get("quiz", data) if isinstance(data, dict) else None
            pairs = ((question_id(str(key), quiz), str(value)) for key, value in table.items()
                     if isinstance(value, (str, int, float))) if isinstance(table, dict) else ()
            answers = {qid: given.strip() for qid, given in pairs if qid and given.strip()}
        elif suffix == ".ipynb":
            answers, _ = _answers_in_lines(_markdown_lines(path), quiz, lists=False)
        else:
            text = read_bytes(path, MAX_ANSWERS_BYTES, "an answers file").decode("utf-8-sig", errors="replace")
            answers, _ = _answers_in_lines(text.splitlines(), quiz, lists=True)
    except StudentFileError as error:
        raise AnswersError(f"{path.name}: cannot be read (it {error.problem}). Start from the template that "
                           f"`grade kit` writes: a [quiz] table with lines like q1 = \"MFCC\".") from None
    except OSError as error:
        raise AnswersError(f"{path.name}: cannot be read ({error.strerror or error}).") from None
    if not answers and suffix == ".ipynb":
        raise NoAnswers(f"{path.name}: no answers found in its markdown. Under each question write **Answer:** "
                        f"and your choice, or hand in answers.toml: a [quiz] table with lines like q1 = \"MFCC\".")
    if not answers:
        raise NoAnswers(f"{path.name}: no answers found. Write a [quiz] table with lines like q1 = \"MFCC\".")
    return answers


@dataclass(frozen=True)
class HandedAnswers:
    """The quiz's answers as handed in (question id -> answer) and, when the answers file could not be read,
    why, in words for the student ('' otherwise)."""

    answers: dict[str, str]
    problem: str = ""


NEEDS = ("student.answers",)
"""What grading the quiz reads (the pipeline grades it after the rubric's items)."""


@provides("student.answers", kept=HandedAnswers)
def handed_answers(ctx) -> HandedAnswers:
    """The answers in the file discovery chose (:func:`read_answers` with the rubric's quiz); none without one.
    (``ctx``: the :class:`grader.context.CheckContext`, not imported here: it imports discovery, which imports
    this module.)"""
    files = ctx.discovery.findings["answers"].files
    if not files:
        return HandedAnswers({})
    try:
        return HandedAnswers(read_answers(ctx.submission.work_dir / files[0], ctx.rubric.quiz))
    except AnswersError as error:
        return HandedAnswers({}, str(error))


def count_notebook_answers(path: str | Path) -> int:
    """How many ``**Answer:**`` marks in the notebook's markdown are followed by an answer, whatever their
    questions: how discovery compares notebooks without the rubric. 0 for a notebook that cannot be read."""
    try:
        return _answers_in_lines(_markdown_lines(path), None, lists=False)[1]
    except (StudentFileError, OSError):
        return 0


def _markdown_lines(path: str | Path) -> list[str]:
    """The first :data:`MAX_MARKDOWN_LINES` lines of the notebook's markdown cells, in order.

    Raises:
        StudentFileError: the notebook cannot be read (:func:`read_notebook`).
        OSError: it is missing or unreadable.
    """
    lines: list[str] = []
    for cell in read_notebook(path):
        if cell.kind == "markdown" and len(lines) < MAX_MARKDOWN_LINES:
            lines += cell.source.splitlines()[:MAX_MARKDOWN_LINES - len(lines)]
    return lines


def _answers_in_lines(lines: Iterable[str], quiz: Quiz | None, lists: bool) -> tuple[dict[str, str], int]:
    """The answers in ``lines`` (question id -> answer), and how many answer marks have an answer.

    A line that holds a rubric question's text (compared under :func:`normalise`, in lines of
    at most :data:`MAX_QUESTION_LINE` characters), or starts with a ``Question N`` heading,
    opens that question; the answer after the next answer mark (:data:`_ANSWER_MARK`), on its
    line or the next non-empty line, is its answer (a question, heading or list answer on that
    next line means there was none). With ``lists``, a line such as ``q1: MFCC``
    (:data:`_LIST_ANSWER`) answers the question its label names, unless it holds a question's
    text or ends with ``?``. A later answer to a question replaces an earlier one. Linear in
    the text: each line is matched once by each pattern, each linear, and a short one is
    searched for each question's text.
    """
    texts = [(normalise(q.text), q.id) for q in quiz.questions] if quiz is not None else []
    answers: dict[str, str] = {}
    marks = 0
    asked: str | None = None  # the question whose answer comes next
    waiting = False  # an answer mark without text: the answer is on the next non-empty line
    for line in lines:
        line = line.strip()
        if not line:
            continue
        mark = _ANSWER_MARK.match(line)
        if mark:
            waiting = not _clean(mark["answer"])
            if not waiting:
                marks += 1
                if asked:
                    answers[asked], asked = _clean(mark["answer"]), None
            continue
        said = normalise(line) if texts and len(line) <= MAX_QUESTION_LINE else ""
        named = next((qid for text, qid in texts if text in said), None) if said else None
        listed = _LIST_ANSWER.match(line) if lists and named is None and not line.endswith("?") else None
        listed_id = question_id(listed["label"], quiz) if listed and _clean(listed["answer"]) else None
        if named is None and listed_id is None and (heading := _QUESTION_HEADING.match(line)):
            named = question_id(heading["number"], quiz)
        if waiting and named is None and listed_id is None:
            marks += 1
            if asked:
                answers[asked], asked = _clean(line.lstrip(">-+ \t")), None
        elif listed_id:
            answers[listed_id], asked = _clean(listed["answer"]), None
        elif named:
            asked = named
        waiting = False
    return answers, marks


def _clean(answer: str) -> str:
    """An answer without the spaces, emphasis and code marks around it."""
    return answer.strip(_ANSWER_EDGES)
