"""The student kit: the contract in the project's words, templates, public clips, public rubric.

Nothing in it is secret: no answer key, no hidden item, no held-out clip.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import tomli_w

from grader.heldout import DEFAULT_DATA, PUBLIC_SPLIT
from grader.rubric import Rubric
from reference.data import read_manifest, write_manifest

GUIDE = Path(__file__).with_name("student_guide.md")
SUBMISSION_TEMPLATE = '''# submission.toml: every key is optional; delete what you do not need.
[student]
name = ""
id = ""

[entry]
mfcc = "preprocess.py:extract_mfcc"
reconstruct = "python generate.py --mel-dir {mel_dir} --out-dir {out_dir}"
sample = "python generate.py --num {num} --seed {seed} --out-dir {out_dir}"

[files]
samples = "samples/*.wav"
# answers = "answers.toml"  # found without this: answers.toml, .json, .md or .txt, else your notebook's **Answer:** lines
evaluation = ["evaluation.*", "*.ipynb", "report.*"]
checkpoints = ["checkpoints/*", "*.pt"]
'''


def answers_template(rubric: Rubric) -> str:
    """answers.toml with every question as comments and an empty answer to fill in."""
    lines = ["# Write the text of your choice (or its letter) between the quotes.", "[quiz]"]
    for question in rubric.quiz.questions if rubric.quiz else []:
        lines += ["", f"# {question.text}"]
        lines += [f"#   {chr(ord('a') + k)}) {choice}" for k, choice in enumerate(question.choices)]
        lines.append(f'{question.id} = ""')
    return "\n".join(lines) + "\n"


def write_kit(out: str | Path, rubric: Rubric, data_dir: Path = DEFAULT_DATA) -> Path:
    """Write the kit into ``out`` (replaced): guide, templates, public rubric and the public clips."""
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "data").mkdir(parents=True)
    shutil.copyfile(GUIDE, out / "README.md")
    (out / "submission.toml").write_text(SUBMISSION_TEMPLATE)
    (out / "answers.toml").write_text(answers_template(rubric))
    (out / "rubric.toml").write_text(tomli_w.dumps(rubric.public().model_dump(mode="json", exclude_none=True)))
    public = []
    for clip in read_manifest(data_dir):
        if clip.split == PUBLIC_SPLIT:
            target = out / "data" / clip.split / clip.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clip.path, target)
            public.append(clip.__class__(**{**clip.__dict__, "path": target}))
    write_manifest(out / "data", public)
    return out
