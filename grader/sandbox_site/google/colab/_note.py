"""How the stand-in tells a notebook's reader what it did instead of Colab."""
import sys


def note(text: str) -> None:
    """Print ``text`` to stderr, marked as the grader's: it shows in the cell's output."""
    print(f"[grader's google.colab] {text}", file=sys.stderr)
