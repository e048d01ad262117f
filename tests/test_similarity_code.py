"""Copied code between submissions (grader/similarity/code.py), on the example submissions' real code.

A disguised copy (every identifier renamed, functions in another order, comments and blank lines
changed) must score high; independent solutions of the same contract, starter code and code much of
the class shares must not; hostile units must be fingerprinted within bounds, fast.
"""
from __future__ import annotations

import ast
import builtins
import itertools
import json
import random
import sqlite3
import time
from pathlib import Path

import pytest

from grader.similarity.code import (
    MAX_UNIT_CHARS,
    MAX_UNIT_TOKENS,
    MIN_HASHES,
    REPORT_FROM,
    CodeFingerprint,
    compare,
    fingerprint,
)
from grader.similarity.code_index import CodeIndex

EXAMPLES = Path(__file__).resolve().parent.parent / "submissions" / "src"
EXAMPLE_NAMES = sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir())


def class_index(prints: list[CodeFingerprint], starter: frozenset[int] = frozenset(), *, database: str = ":memory:",
                **bounds: float) -> tuple[CodeIndex, set[int], dict[tuple[int, int], float]]:
    """A class's fingerprints in a :class:`CodeIndex` (submission ``k`` as id ``"{k:04d}"``), the starter's and the
    class's common hashes ignored: the index, the hashes ignored, and the pairs it lists by index, with their scores."""
    index = CodeIndex(sqlite3.connect(database))
    for k, print_ in enumerate(prints):
        index.add(f"{k:04d}", print_, current=True)
    index.ignore(starter, **bounds)
    return index, index.ignored_hashes(), {(int(p.a), int(p.b)): p.score for p in index.pairs()}


def example_units(name: str) -> list[tuple[str, str]]:
    """An example submission's code as units: each .py file, and each code cell of each notebook."""
    units = []
    for path in sorted((EXAMPLES / name).iterdir()):
        if path.suffix == ".py":
            units.append((path.name, path.read_text()))
        elif path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            units += [(f"{path.name}, cell {k}", "".join(cell["source"])) for k, cell in enumerate(cells)
                      if cell["cell_type"] == "code"]
    return units


def defined_names(units: list[tuple[str, str]]) -> set[str]:
    """The identifiers a submission chose: what it defines, assigns, takes as a parameter or imports as."""
    names = set()
    for _, text in units:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.alias) and node.name != "*":
                names.add(node.asname or node.name.split(".")[0])
    return names - set(dir(builtins)) - {"self"}


class _Disguise(ast.NodeTransformer):
    """Renames the submission's own identifiers (not a module's attributes) and reverses the order of
    the functions and classes of every body."""

    def __init__(self, new: dict[str, str], modules: set[str]) -> None:
        self.new, self.modules = new, modules

    def visit_Module(self, node: ast.Module) -> ast.Module:
        self.generic_visit(node)
        node.body = _reversed_definitions(node.body)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.name = self.new.get(node.name, node.name)
        self.generic_visit(node)
        node.body = _reversed_definitions(node.body)
        return node

    visit_ClassDef = visit_FunctionDef

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self.new.get(node.arg, node.arg)
        return node

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self.new.get(node.id, node.id)
        return node

    def visit_keyword(self, node: ast.keyword) -> ast.keyword:
        self.generic_visit(node)
        if node.arg is not None:
            node.arg = self.new.get(node.arg, node.arg)
        return node

    def visit_alias(self, node: ast.alias) -> ast.alias:
        bound = node.asname or node.name.split(".")[0]
        if node.name != "*" and bound in self.new and (node.asname or "." not in node.name):
            node.asname = self.new[bound]
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.Attribute:
        self.generic_visit(node)
        if not (isinstance(node.value, ast.Name) and node.value.id in self.modules):
            node.attr = self.new.get(node.attr, node.attr)
        return node


def _reversed_definitions(body: list[ast.stmt]) -> list[ast.stmt]:
    """``body`` with its functions and classes in reverse order (other statements where they were)."""
    places = [k for k, statement in enumerate(body) if isinstance(statement, (ast.FunctionDef, ast.ClassDef))]
    body = list(body)
    for place, definition in zip(places, [body[k] for k in reversed(places)]):
        body[place] = definition
    return body


def disguised(units: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What a copier hands in: every identifier renamed (consistently across units), functions and classes
    in reverse order, the code re-formatted (``ast.unparse``: comments dropped, docstrings kept), a new
    comment and a blank line before each definition."""
    names = sorted(defined_names(units))
    new = {name: f"v{k}_{name[::-1]}" for k, name in enumerate(names)}
    modules = set()
    for _, text in units:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.alias):
                modules.add(new.get(node.asname or node.name.split(".")[0], node.asname or node.name))
    out = []
    for label, text in units:
        lines = []
        for line in ast.unparse(_Disguise(new, modules).visit(ast.parse(text))).split("\n"):
            code = line.lstrip()
            if code.startswith(("def ", "class ", "@")):
                lines += ["", line[:len(line) - len(code)] + "# my own helper, written from scratch"]
            lines.append(line)
        out.append((label, "\n".join(lines) + "\n"))
    return out


def random_program(rng: random.Random, statements: int = 40) -> str:
    """Code no one else wrote: functions of random arithmetic on random names (independent of any other
    program from another seed, while every line is ordinary Python), formatted as ``ast.unparse`` does."""
    calls = ["np.sqrt", "np.mean", "np.log10", "librosa.load", "torch.tanh", "math.exp", "len", "abs"]

    def expression(depth: int) -> str:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice([f"x{rng.randrange(50)}", str(rng.randrange(100)), f"'{rng.randrange(9)}'"])
        shape = rng.randrange(4)
        if shape == 0:
            return f"{rng.choice(calls)}({expression(depth - 1)})"
        if shape == 1:
            return f"({expression(depth - 1)} {rng.choice('+-*/%')} {expression(depth - 1)})"
        if shape == 2:
            return f"{expression(depth - 1)}[{expression(depth - 1)}]"
        return f"[{expression(depth - 1)} for x{rng.randrange(50)} in {expression(depth - 1)}]"

    lines = []
    for k in range(statements):
        if k % 8 == 0:
            lines.append(f"def f{rng.randrange(10**6)}(x{rng.randrange(50)}, x{rng.randrange(50)}):")
        keyword = rng.choice(["", "", "", "return ", "if x1 > "])
        lines.append(f"    x{rng.randrange(50)} = {expression(3)}" if not keyword.strip() else
                     f"    {keyword}{expression(3)}" + (":\n        pass" if keyword.startswith("if") else ""))
    return ast.unparse(ast.parse("\n".join(lines))) + "\n"


def test_disguised_copy_of_each_example_scores_high():
    """Renamed identifiers, functions in reverse order, new comments and blank lines: still a copy."""
    scores = {}
    for name in EXAMPLE_NAMES:
        original = example_units(name)
        copy = disguised(original)
        copied_text = "".join(text for _, text in copy)
        assert not {n for n in defined_names(original) if len(n) > 1 and f" {n}(" in copied_text}, "a name survived"
        assert [text for _, text in copy] != [text for _, text in original]
        scores[name] = compare(fingerprint(original), fingerprint(copy)).score
    assert all(score >= 0.8 for score in scores.values()), scores


def test_independent_examples_score_low():
    """Every pair of the example submissions (independent solutions of the same contract) scores below 0.25,
    with nothing ignored, and still lower once the class's common code is left out."""
    prints = {name: fingerprint(example_units(name)) for name in EXAMPLE_NAMES}
    _, common, _ = class_index(list(prints.values()))
    raw = {(a, b): compare(prints[a], prints[b]).score for a, b in itertools.combinations(EXAMPLE_NAMES, 2)}
    assert len(raw) == 15
    assert all(score < 0.25 for score in raw.values()), raw
    assert all(compare(prints[a], prints[b], common).score <= raw[a, b] for a, b in raw)


STARTER = {
    "preprocess.py": '''import librosa


def extract_mfcc(path):
    """MFCCs (20, frames) of the audio file at ``path``: the assignment's recipe."""
    y, sr = librosa.load(path, sr=16000)
    return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
''',
    "generate.py": '''"""Entry points: generate.py --mel-dir MELS --out-dir OUT, or --num N --seed S --out-dir OUT."""
import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf


def reconstruct(mel, params):
    """TODO: your model's audio (samples,) for one log-mel (80, frames)."""
    raise NotImplementedError


def sample(num, seed):
    """TODO: ``num`` clips of your model's audio, the same ones for the same ``seed``."""
    raise NotImplementedError


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mel-dir", type=Path)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--num", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.mel_dir is not None:
        params = json.loads((args.mel_dir / "params.json").read_text())
        for path in sorted(args.mel_dir.glob("*.npy")):
            sf.write(args.out_dir / f"{path.stem}.wav", reconstruct(np.load(path), params), 16000)
    if args.num is not None:
        for k, wav in enumerate(sample(args.num, args.seed)):
            sf.write(args.out_dir / f"{k}.wav", wav, 16000)
''',
}
"""An instructor's starter folder (``--starter DIR``): the assignment's MFCC recipe and an entry-point
skeleton. (``grade kit`` writes no code: README.md, submission.toml, answers.toml, rubric.toml, data/.)"""


def test_starter_code_alone_makes_no_pair():
    """Two students who hand in the starter code (one re-formatted and renamed) are the same code, until the
    starter's hashes are ignored: then neither has code of its own, and the pair scores 0."""
    starter = fingerprint(list(STARTER.items())).hashes
    first = fingerprint(list(STARTER.items()))
    second = fingerprint(disguised(list(STARTER.items())))
    assert len(starter) >= MIN_HASHES
    assert compare(first, second).score >= 0.8
    assert compare(first, second, starter).score == 0
    assert class_index([first, second], starter)[2] == {}


def test_starter_code_is_left_out_of_real_pairs():
    """Students who built on the starter: the starter's hashes ignored, only their own code is compared."""
    starter = fingerprint(list(STARTER.items())).hashes
    own = [fingerprint(list(STARTER.items()) + example_units(name)) for name in ("reference-solution", "vae-only")]
    assert compare(*own).score > compare(*own, starter).score
    assert compare(*own, starter).score < 0.25


def test_common_hashes_remove_what_much_of_the_class_shares():
    """A snippet in 3 of 10 submissions (30%) is common, and left out; one that two students share
    (20%, fewer than 3) is not: it is what a copied pair looks like."""
    snippet = example_units("reference-solution")[0][1]  # evaluate.py, some 50 lines
    copied = random_program(random.Random(99), 24)
    programs = [random_program(random.Random(seed), 16) for seed in range(10)]
    holders, pair = (0, 3, 6), (1, 8)
    units = [[("main.py", program)] for program in programs]
    for k in holders:
        units[k].append(("evaluate.py", snippet))
    for k in pair:
        units[k].append(("helpers.py", copied))
    prints = [fingerprint(u) for u in units]
    _, common, candidates = class_index(prints)

    assert fingerprint([("evaluate.py", snippet)]).hashes <= common
    assert not common & fingerprint([("helpers.py", copied)]).hashes
    assert class_index(prints, min_count=4)[1] == set()
    assert class_index(prints, min_fraction=0.5)[1] == set()
    assert compare(prints[0], prints[3]).score >= REPORT_FROM
    assert compare(prints[0], prints[3], common).score < 0.25
    assert compare(prints[1], prints[8], common).score >= REPORT_FROM
    assert pair in candidates
    for i, j in itertools.combinations(range(10), 2):
        assert ((i, j) in candidates) == bool((prints[i].hashes & prints[j].hashes) - common)
        assert candidates.get((i, j), 0.0) == compare(prints[i], prints[j], common).score
        assert (i, j) == pair or compare(prints[i], prints[j], common).score < 0.25


HOSTILE = {
    "10 MB": "x = f(a, b) + 1\n" * 700_000,
    "100,000 nested parentheses": "(" * 100_000 + ")" * 100_000 + "\n",
    "NUL bytes": "a = 1\x00\n\x00\x00\n" * 20_000,
    "replacement characters": "def f(\ufffd):\n    return \ufffd\ufffd\n" * 5_000,
    "unterminated strings": "'\n\"\"\"\n" * 40_000,
    "a line of one-character tokens": "+" * 5_000_000,
    "all at once": "(" * 100_000 + "\x00" + "\ufffd" * 1_000 + "x = f(a, b) + 1\n" * 700_000,
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_unit_is_fingerprinted_within_bounds_fast(kind):
    """Each hostile text is read up to the bounds, in well under a second, and its hashes' lines are lines read."""
    text = HOSTILE[kind]
    started = time.perf_counter()
    hostile = fingerprint([("hostile.py", text)])
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{kind}: {elapsed:.2f} s"
    assert hostile.truncated and hostile.units[0].truncated
    assert len(hostile.units[0].hashes) <= MAX_UNIT_TOKENS
    read_lines = text[:MAX_UNIT_CHARS].count("\n") + 1
    assert all(1 <= first <= last <= read_lines for first, last in hostile.units[0].spans)


def test_code_around_nul_and_replacement_characters_still_matches():
    """A NUL byte, or undecodable bytes read as U+FFFD, in the middle of a file spoil one line, not the file."""
    code = example_units("reference-solution")[0][1]
    lines = code.split("\n")
    for bad in ("\x00", "\ufffd\ufffd"):
        spoiled = "\n".join(lines[:30] + [lines[30] + bad] + lines[31:])
        assert compare(fingerprint([("a.py", code)]), fingerprint([("b.py", spoiled)])).score >= 0.9


def test_notebook_cells_with_magics_and_shell_lines_are_fingerprinted():
    """IPython's %magic and !shell lines are skipped, wherever they are; the rest of the cell is fingerprinted,
    on the cell's own lines."""
    code = example_units("notebook")[5][1]  # cell 10: the model loaded, reconstruction and sampling
    lines = code.split("\n")
    blank = [k for k, line in enumerate(lines) if not line.strip()]
    lines[blank[0]], lines[blank[-1]] = "%matplotlib inline", "!pip install soundfile"
    plain = fingerprint([("model.ipynb, cell 10", code)])
    with_magics = fingerprint([("model.ipynb, cell 10", "\n".join(lines))])
    assert len(plain.hashes) >= MIN_HASHES
    assert with_magics == plain


def test_regions_point_at_the_copied_lines_of_both_files():
    """A function copied (renamed, with the imports it needs) into another student's file: one region,
    on its lines in both files."""
    original = example_units("reference-solution")[0][1]  # evaluate.py
    lines = original.split("\n")
    first_a = next(k for k, line in enumerate(lines, 1) if line.startswith("def main"))
    last_a = next(k for k, line in enumerate(lines, 1) if line.startswith("if __name__")) - 3
    imports = "import argparse\nfrom pathlib import Path\nimport librosa\nimport numpy as np\nfrom pesq import pesq\n"
    (_, renamed), = disguised([("f.py", imports + "\n".join(lines[first_a - 1:last_a]))])
    pasted = renamed.rstrip("\n").split("\n")
    host = example_units("vae-only")[2][1].split("\n")  # generate.py
    copy = "\n".join(host[:16] + pasted + host[16:])
    first_b = 17 + next(k for k, line in enumerate(pasted) if line.startswith("def "))
    last_b = 16 + len(pasted)

    match = compare(fingerprint([("evaluate.py", original)]), fingerprint([("generate.py", copy)]))
    regions = [region for region in match.regions if region.last_a - region.first_a >= 10]
    assert len(regions) == 1, match.regions
    region = regions[0]
    assert (region.label_a, region.label_b) == ("evaluate.py", "generate.py")
    assert first_a <= region.first_a <= first_a + 2 and last_a - 2 <= region.last_a <= last_a, region
    assert first_b <= region.first_b <= first_b + 2 and last_b - 2 <= region.last_b <= last_b, region


def test_fingerprint_and_match_survive_json():
    units = example_units("notebook")
    print_ = fingerprint(units)
    read_back = CodeFingerprint.from_dict(json.loads(json.dumps(print_.to_dict())))
    assert read_back == print_
    assert read_back.hashes == print_.hashes
    match = compare(print_, fingerprint(disguised(units)))
    assert json.loads(json.dumps(match.to_dict()))["regions"][0] == list(match.regions[0])


def test_too_little_code_scores_zero():
    """Below MIN_HASHES there is nothing to judge: the same few lines in two submissions score 0."""
    few = [("preprocess.py", STARTER["preprocess.py"])]
    assert 0 < len(fingerprint(few).hashes) < MIN_HASHES
    assert compare(fingerprint(few), fingerprint(few)).score == 0


def test_class_of_300_is_compared_in_seconds():
    """300 submissions, each the starter plus code of its own, three disguised copies among them: the
    starter and common code ignored, only pairs sharing a hash are listed, and the copies are what is found."""
    rng = random.Random(7)
    units = [list(STARTER.items()) + [("model.py", random_program(rng, 30))] for _ in range(300)]
    copies = {(12, 140), (77, 78), (201, 299)}
    for source, target in copies:
        units[target] = list(STARTER.items()) + disguised(units[source][2:])
    prints = [fingerprint(u) for u in units]

    started = time.perf_counter()
    _, ignored, pairs = class_index(prints, fingerprint(list(STARTER.items())).hashes)
    found = {pair for pair, score in pairs.items() if score >= REPORT_FROM}
    elapsed = time.perf_counter() - started
    assert found == copies
    assert len(pairs) < 300 * 299 // 2 // 4, "the inverted index should rule out most pairs"
    assert elapsed < 3.0, f"{elapsed:.2f} s for {len(pairs)} candidate pairs"


def test_a_class_compared_again_counts_only_what_changed(tmp_path):
    """The index kept on disk: a class compared again with one submission more counts only the pairs its contexts
    touch and lists the same pairs as a fresh index; a submission left out and brought back (two contexts that were
    never in one comparison) is counted alone, not missed."""
    rng = random.Random(3)
    units = [list(STARTER.items()) + [("model.py", random_program(rng, 20))] for _ in range(30)]
    units[29] = list(STARTER.items()) + disguised(units[4][2:])
    prints = [fingerprint(u) for u in units]
    database = str(tmp_path / "similarity.sqlite")
    starter = fingerprint(list(STARTER.items())).hashes

    first, _, before = class_index(prints[:29], starter, database=database)
    first.db.commit()
    again, _, after = class_index(prints, starter, database=database)
    _, _, fresh = class_index(prints, starter)
    assert after == fresh and (4, 29) in after and after[4, 29] >= REPORT_FROM
    assert again.reused == len(before), "pairs of the 29 kept, not counted again"
    again.db.commit()

    without = prints[:10] + prints[11:]  # number 10 left out: 11 onwards move down by one
    class_index(without, starter, database=database)[0].db.commit()
    index = CodeIndex(sqlite3.connect(database))
    for k, print_ in enumerate(prints):
        index.add(f"{k:04d}", print_, current=True)
    index.ignore(starter)
    assert {(int(p.a), int(p.b)): p.score for p in index.pairs()} == fresh


def test_imports_moved_below_the_code_still_bind_the_library_calls():
    """A copier who moves the import block to the end (Python runs it before the functions are called) keeps the
    library's attribute names as tokens: the copy still matches."""
    for name in EXAMPLE_NAMES:
        original = example_units(name)
        moved = []
        for label, text in original:
            imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
            rest = [line for line in text.splitlines() if not line.startswith(("import ", "from "))]
            moved.append((label, "\n".join(rest + imports)))
        assert compare(fingerprint(original), fingerprint(moved)).score >= 0.9, name
