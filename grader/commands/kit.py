"""``grade kit --out DIR``: write the student kit (:mod:`grader.kit`)."""
from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str]) -> int:
    """Write the kit into ``--out``; 0."""
    parser = argparse.ArgumentParser(prog="grade kit", description="Write the student kit: the contract, templates, "
                                     "the public clips and the public rubric.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--rubric", type=Path, default=None,
                        help="rubric TOML whose public part the kit holds (default: the bundled one)")
    args = parser.parse_args(argv)
    from grader.kit import write_kit
    from grader.rubric import DEFAULT_RUBRIC, load_rubric

    write_kit(args.out, load_rubric(args.rubric or DEFAULT_RUBRIC))
    print(f"student kit written to {args.out}")
    return 0
