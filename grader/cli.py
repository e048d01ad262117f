"""`grade ...`: the grader's command line (thin: parses, calls the pipeline, prints)."""
import argparse
import sys

from grader import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grade",
        description="Grade submissions of the assignment 'Develop a Basic Audio Generative Model'.",
    )
    parser.add_argument("--version", action="version", version=f"grade {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    parser.print_help()
    return 0
