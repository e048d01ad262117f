"""The rubric: what is graded, for how many points, who sees it, and under which limits.

A rubric is a TOML file (``rubrics/*.toml``) validated with pydantic, each item's
``params`` by its check kind's model (:mod:`grader.rubric_params`). A wrong rubric raises
:class:`RubricError` listing every problem with its line, key and item, the value given
and, for a value or key not allowed, those that are, e.g.
``rubric.toml:92: items[6].points (id "model-quality"): Input should be greater than 0; got -6`` or
``rubric.toml:98: items[6].params.metric (id "model-quality"): "mcd_dtw" is not a metric the grader
scores on held-out clips; allowed: estoi, lsd, ...``.
"""
from __future__ import annotations

import json
import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, SerializeAsAny, ValidationError,
                      ValidationInfo, field_validator, model_validator)
from pydantic_core import PydanticCustomError

from grader.limits import IntakeLimits, RunLimits
from grader.rubric_params import CHECK_PARAMS, CheckParams, one_of
from grader.sandbox import mount_point_problem, mount_target
from reference import PROJECT_ROOT

DEFAULT_RUBRIC = PROJECT_ROOT / "rubrics" / "audio-generative-models.toml"
CHECKLIST = ("Audio data pre-processed", "Model implemented and trained", "Audio samples generated",
             "Evaluation conducted")
"""The assignment's own checklist; every item belongs to one of these."""
Visibility = Literal["visible", "hidden", "after_due_date", "after_published"]
"""Gradescope's words: who sees an item, and when."""


CLASS_SECTIONS = frozenset({"similarity", "listening", "term"})
"""Rubric sections about the class and its dates, not about grading one submission: left out of the keys by which
a submission's result and evidence are reused (:mod:`grader.cache`, :mod:`grader.evidence`)."""


def _check_kind(value: str) -> str:
    return one_of(value, CHECK_PARAMS, "a check kind")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RubricInfo(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Short name, used in file names.")
    title: str
    version: str = Field(description="Changes whenever points or checks change; part of every result.")
    total_points: float = Field(gt=0, description="Must equal the sum of the items' and the quiz's points.")


class Limits(_Strict):
    intake: IntakeLimits = IntakeLimits()
    run: RunLimits = RunLimits()


class Environment(_Strict):
    """The packages student code runs with (:mod:`grader.environment`)."""

    requirements: str = Field(
        "environments/course.txt",
        description="The requirements file, every package pinned exactly (installed with pip --no-deps): absolute, "
        "or relative to the rubric's folder, else to the project's root. `grade env build --rubric FILE` builds it.")
    legacy_keras: bool = Field(
        False, description="Run with TF_USE_LEGACY_KERAS=1, so that tensorflow.keras is Keras 2 (tf-keras): "
        "the API of students' notebooks (K.random_normal, add_loss on symbolic tensors, Lambda losses).")


class Mount(_Strict):
    """An instructor's folder that student code sees read-only (a data set its notebook reads, say)."""

    host: str = Field(description="The folder (or file) on the grading machine: absolute, or relative to the "
                      "rubric's folder, else to the project's root. It must exist when grading.")
    inside: str = Field(description="Where student code sees it: relative to the submission (\"Data/fsdd\"), or "
                        "absolute (\"/content/drive/MyDrive/hw3/data\"; /content is the submission, as in Colab).")

    @field_validator("inside")
    @classmethod
    def _usable_mount_point(cls, value: str) -> str:
        problem = mount_point_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class Item(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    checklist: str = Field(description="One of the assignment's checklist items.")
    title: str
    points: float = Field(gt=0)
    visibility: Visibility = "visible"
    check: Annotated[str, AfterValidator(_check_kind)] = Field(
        description="The check kind: a module of grader/checks/ (grader.rubric_params.CHECK_PARAMS).")
    params: SerializeAsAny[CheckParams] = Field(
        default_factory=dict, validate_default=True,
        description="The check's own parameters, validated by its model in grader.rubric_params.CHECK_PARAMS.")
    limits: dict[str, Any] = Field(default_factory=dict, description="Overrides of [limits.run] for this item.")

    @field_validator("checklist")
    @classmethod
    def _known_checklist(cls, value: str) -> str:
        if value not in CHECKLIST:
            raise ValueError(f"must be one of {list(CHECKLIST)}")
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _params_of_the_check(cls, value: Any, info: ValidationInfo) -> Any:
        """The written params validated by the check's model; none to check when the check kind is wrong."""
        if "check" not in info.data:
            return CheckParams()
        return CHECK_PARAMS[info.data["check"]].model_validate(value)

    @field_validator("limits")
    @classmethod
    def _valid_run_limits(cls, value: dict[str, Any]) -> dict[str, Any]:
        RunLimits().with_overrides(value)  # raises on an unknown key or a wrong value
        return value


class Question(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    text: str
    choices: list[str] = Field(min_length=2)
    answer: str | None = Field(None, description="The right choice's text; absent in a public rubric.")

    @model_validator(mode="after")
    def _answer_is_a_choice(self) -> "Question":
        if self.answer is not None and self.answer not in self.choices:
            raise ValueError(f"answer {self.answer!r} is not one of the choices {self.choices}")
        return self


class Quiz(_Strict):
    points_per_question: float = Field(gt=0)
    visibility: Visibility = "visible"
    answers_visibility: Visibility = "after_due_date"
    questions: list[Question] = Field(min_length=1)

    @property
    def points(self) -> float:
        return self.points_per_question * len(self.questions)


class Similarity(_Strict):
    """``[similarity]``: how the class's pairs of submissions are reported (:mod:`grader.similarity`); it never
    changes a grade."""

    report_from: float = Field(0.5, ge=0.0, le=1.0, description=(
        "Score (0-1) from which a pair of submissions sharing code or a checkpoint's tensors is reported; "
        "two independent solutions of the contract's code score at most 0.25."))
    starter: list[str] = Field(default_factory=list, description=(
        "Folders (beside the rubric, or from the project's root) of code every student was given: the "
        "assignment's own snippets, templates. Code pairs leave it out."))


class LatePenalty(_Strict):
    """``[term] late = { per = "day", percent = 10, cap_percent = 50 }``: points off late work
    (:mod:`grader.term.late`)."""

    per: Literal["day", "hour"] = Field(description=(
        "The unit late work is counted in: every started day (24 hours) or hour past the due date and its grace "
        "period costs ``percent``."))
    percent: float = Field(gt=0, le=100, description=(
        "Percent of the submission's maximum (the items' and quiz's total) taken off per started unit."))
    cap_percent: float = Field(100, gt=0, le=100, description=(
        "The most taken off, in percent of the maximum (default 100: late work can lose everything)."))


class Term(_Strict):
    """``[term]``: the course's dates and how the term's grades are made (:mod:`grader.term`)."""

    due: datetime | None = Field(None, description=(
        "The due date, ISO 8601 with a UTC offset (\"2026-12-04T23:59:00-05:00\"): late work is measured against "
        "it, and a listening test's peer mode (which plays the held-out clips to students) is refused before it."))
    attempts: Literal["last", "best", "last_before_due"] = Field("last", description=(
        "Which of a student's attempts counts: the last handed in, the best graded, or the last handed in before "
        "the due date (and its grace period)."))
    grace_minutes: int = Field(0, ge=0, le=7 * 24 * 60, description=(
        "Minutes after the due date that still count as on time (at most a week); lateness is counted from the "
        "due date plus this grace."))
    late: LatePenalty | Literal["not_accepted"] | None = Field(None, description=(
        "What late work costs: ``{ per = \"day\" | \"hour\", percent = 10, cap_percent = 50 }`` (percent of the "
        "maximum off per started day or hour late, at most cap_percent), \"not_accepted\" (late work gets 0), or "
        "absent (late work is flagged on its page, no points off). Needs ``due``."))

    @field_validator("late", mode="before")
    @classmethod
    def _late_policy(cls, value: Any) -> Any:
        """One clear problem for a wrong policy (not one for each way the union could have read it)."""
        if value is None or value == "not_accepted" or isinstance(value, LatePenalty):
            return value
        if not isinstance(value, dict):
            raise ValueError("write late = \"not_accepted\", or late = { per = \"day\" (or \"hour\"), percent = 10, "
                             "cap_percent = 50 }, or leave it out (late work flagged, no points off)")
        try:
            return LatePenalty.model_validate(value)
        except ValidationError as error:
            problems = []
            for problem in error.errors():
                key = ".".join(map(str, problem["loc"]))
                if problem["type"] == "extra_forbidden":
                    problems.append(f"unknown key {key}; allowed: {', '.join(LatePenalty.model_fields)}")
                else:
                    got = problem["input"]
                    problems.append(f"{key}: {problem['msg']}" + (
                        f" (got {json.dumps(got)})" if isinstance(got, (str, int, float, bool)) else ""))
            raise ValueError("; ".join(problems)) from None

    @model_validator(mode="after")
    def _late_needs_due(self) -> "Term":
        if self.due is None and (self.late is not None or self.grace_minutes):
            raise ValueError("late and grace_minutes need a due date: add due = \"2026-12-04T23:59:00-05:00\" "
                             "(with its UTC offset) to [term]")
        return self

    @field_validator("due", mode="before")
    @classmethod
    def _with_offset(cls, value: Any) -> Any:
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
        if isinstance(when, datetime) and when.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset: write it as e.g. \"2026-12-04T23:59:00-05:00\" or "
                             "with Z for UTC")
        return when


class Listening(_Strict):
    """``[listening]``: listening tests of the class's audio (``grade listen``, :mod:`grader.listening`)."""

    ratings_per_submission: int = Field(5, ge=1, le=100, description=(
        "Ratings each submission gets at least (each a rated stimulus of its audio)."))
    submissions_per_trial: int = Field(4, ge=1, le=12, description=(
        "MUSHRA: students' outputs in one trial, beside the hidden reference, the anchor, the reference solution "
        "and Griffin-Lim (BS.1534-3 advises at most 12 conditions in all)."))


class Rubric(_Strict):
    rubric: RubricInfo
    limits: Limits = Limits()
    environment: Environment = Environment()
    mounts: list[Mount] = Field(default_factory=list)
    items: list[Item] = Field(min_length=1)
    quiz: Quiz | None = None
    similarity: Similarity = Similarity()
    term: Term = Term()
    listening: Listening = Listening()
    _folder: Path = PrivateAttr(default=PROJECT_ROOT / "rubrics")
    """The rubric file's folder: relative paths in it are tried there first (set by :func:`load_rubric`)."""

    @model_validator(mode="after")
    def _consistent(self) -> "Rubric":
        targets = sorted(mount_target(mount.inside) for mount in self.mounts)  # data, /content/data: one place
        if any(later.is_relative_to(earlier) for earlier, later in zip(targets, targets[1:])):
            raise ValueError(f"two mounts share a place inside, or one lies in another: {[str(t) for t in targets]}")
        ids = [item.id for item in self.items]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"item ids must be unique; repeated: {duplicates}")
        total = sum(item.points for item in self.items) + (self.quiz.points if self.quiz else 0)
        if abs(total - self.rubric.total_points) > 1e-9:
            raise ValueError(f"items and quiz add up to {total:g} points, but rubric.total_points is "
                             f"{self.rubric.total_points:g}")
        return self

    def public(self) -> "Rubric":
        """The rubric a student may see: visible items only, no answer key, totals recomputed."""
        items = [item for item in self.items if item.visibility == "visible"]
        quiz = None if self.quiz is None else self.quiz.model_copy(
            update={"questions": [q.model_copy(update={"answer": None}) for q in self.quiz.questions]})
        total = sum(item.points for item in items) + (quiz.points if quiz else 0)
        info = self.rubric.model_copy(update={"total_points": total, "version": self.rubric.version + "-public"})
        return self.model_copy(update={"rubric": info, "items": items, "quiz": quiz})

    def run_limits(self, item: Item) -> RunLimits:
        """The run limits of ``item``: the rubric's [limits.run] with the item's overrides."""
        return self.limits.run.with_overrides(item.limits)

    def requirements_path(self) -> Path:
        """The environment's requirements file (``[environment] requirements``), resolved."""
        return self._resolve(self.environment.requirements)

    def mount_paths(self) -> dict[str, Path]:
        """``{inside: host folder}`` of the ``[[mounts]]``, host paths resolved (whether they exist is the caller's
        to check, when grading)."""
        return {mount.inside: self._resolve(mount.host) for mount in self.mounts}

    def starter_folders(self) -> list[Path]:
        """The ``[similarity] starter`` folders, resolved."""
        return [self._resolve(folder) for folder in self.similarity.starter]

    def _resolve(self, written: str) -> Path:
        path = Path(written).expanduser()
        if path.is_absolute():
            return path
        beside = self._folder / path
        return beside if beside.exists() else PROJECT_ROOT / path


class RubricError(ValueError):
    """A rubric that cannot be used; ``problems`` lists 'file:line: key (id "item"): message' strings."""

    def __init__(self, path: Path, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(f"{path}: {len(problems)} problem(s) in the rubric:\n" + "\n".join(f"  {p}" for p in problems))


def load_rubric(path: str | Path = DEFAULT_RUBRIC, known_checks: set[str] | None = None) -> Rubric:
    """Read and validate a rubric file, each item's params by its check's model (:mod:`grader.rubric_params`).

    Args:
        path: the TOML file.
        known_checks: the check kinds items may name; default: every kind there is
            (:data:`grader.rubric_params.CHECK_PARAMS`).

    Raises:
        RubricError: the file is missing, is not TOML, or breaks the schema; every problem
            is reported with its line number, its key, the item's id, the value given and,
            for a value or key not allowed, those that are.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RubricError(path, [f"{path}: cannot read the file ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(path, [f"{path}: not valid TOML: {exc}"]) from None
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        raise RubricError(path, [f"{path}:{_line_of(text, error['loc'])}: {_where(error['loc'], data)}: "
                                 f"{_message(error, data)}" for error in exc.errors()]) from None
    rubric._folder = path.resolve().parent
    if not rubric.requirements_path().is_file():
        raise RubricError(path, [f"{path}:{_line_of(text, ('environment', 'requirements'))}: environment.requirements: "
                                 f"no such file {rubric.requirements_path()}"])
    problems = []
    for index, item in enumerate(rubric.items):
        try:
            one_of(item.check, CHECK_PARAMS if known_checks is None else known_checks, "a check kind")
        except PydanticCustomError as error:
            loc = ("items", index, "check")
            problems.append(f"{path}:{_line_of(text, loc)}: {_where(loc, data)}: {error.message()}")
    if problems:
        raise RubricError(path, problems)
    return rubric


def _where(loc: tuple, data: dict) -> str:
    """The key at ``loc``, and the id of the item it lies in: 'items[3].check (id "quality")'."""
    key = _key(loc)
    if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
        item = _at(data, loc[:2])
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            key += f" (id {json.dumps(item['id'])})"
    return key


def _message(error: dict, data: dict) -> str:
    """Pydantic's words for a person: for a key not allowed, the keys that are; else the value given."""
    if error["type"] == "extra_forbidden":
        model = _table_model(error["loc"][:-1], data)
        return "unknown key" + (f"; allowed: {', '.join(model.model_fields)}" if model is not None else "")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] != "not_allowed" and isinstance(error["input"], (str, int, float, bool)):
        message += f"; got {json.dumps(error['input'])}"
    return message


def _table_model(loc: tuple, data: dict) -> type[BaseModel] | None:
    """The model of the table at ``loc``: a field's model, or for an item's params its check's model."""
    model: type[BaseModel] | None = Rubric
    for depth, part in enumerate(loc):
        if model is None:
            return None
        if isinstance(part, int):
            continue  # an element of an array of tables: the array field's model already
        if model is Item and part == "params":  # reported only for a known check (else params are not checked)
            model = CHECK_PARAMS[_at(data, (*loc[:depth], "check"))]
        else:
            field = model.model_fields.get(part)
            model = None if field is None else _model_in(field.annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field's type holds: ``Quiz | None`` -> Quiz, ``list[Item]`` -> Item; None for plain values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def _at(data: Any, loc: tuple) -> Any:
    """The value at ``loc`` in the TOML ``data`` (None where there is none)."""
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _key(loc: tuple) -> str:
    """("items", 3, "points") -> "items[3].points"."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _line_of(text: str, loc: tuple) -> int:
    """The 1-based line where the value at ``loc`` is written in the TOML ``text``.

    Walks TOML's layout: a name with a ``[name]`` or ``[[name]]`` header moves to that
    header, a name only written as part of longer headers (``limits`` of ``[limits.run]``)
    is passed through, an index picks the n-th ``[[name]]`` header, and any other name is a
    key searched for below the current header. Falls back to the closest line found.
    """
    lines = text.splitlines()
    headers = {n: m.group(1).strip() for n, line in enumerate(lines) if (m := re.match(r"^\s*\[+([^\]]+)\]+", line))}
    line, table = 0, ""
    for part in loc:
        if isinstance(part, int):
            arrays = [n for n, name in headers.items() if name == table and lines[n].lstrip().startswith("[[")]
            line = arrays[part] if part < len(arrays) else line
            continue
        name = f"{table}.{part}" if table else str(part)
        header = next((n for n, h in headers.items() if h == name and n >= line), None)
        if header is not None:
            line, table = header, name
            continue
        if any(h.startswith(f"{name}.") for h in headers.values()):
            table = name
            continue
        end = next((n for n in headers if n > line), len(lines))
        key = next((n for n in range(line, end) if re.match(rf"^\s*{re.escape(str(part))}\s*=", lines[n])), None)
        if key is None:
            break
        line = key
    return line + 1
