"""Report rendering: time and size of a submission page and of the class page for N submissions.

Made in this run: N graded results with real audio (tests/result_fixtures.py: held-out
clips, noisy outputs, Griffin-Lim; 3 clips x 4 sources and 2 samples per page). Printed,
all measured in this run:

- a submission page rendered cold (its spectrograms drawn) and warm (drawn before: the
  cache by content), as a ratio; the page's size alone, with the files it links, and
  with its audio and pictures embedded;
- the class page's render time and size;
- ``render_all`` over the N submissions, cold and warm (the re-render of `grade report`),
  as a ratio.

    .venv/bin/python bench/report.py [--submissions 30]
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reference  # noqa: E402,F401  (sets numba's cache folder first)
from grader.report import read_results, render_all  # noqa: E402
from grader.report.html import render_class_page, render_submission  # noqa: E402
from tests import result_fixtures  # noqa: E402


def timed(function, repeats: int = 1) -> tuple[float, object]:
    """(median seconds of ``repeats`` calls, the last call's value)."""
    times, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def linked_bytes(html: str, page_dir: Path) -> int:
    """Bytes of the local files a page links with src= (audio and pictures)."""
    paths = {(page_dir / src).resolve() for src in re.findall(r'src="([^"]+)"', html) if not src.startswith("data:")}
    return sum(path.stat().st_size for path in paths)


def kib(count: int) -> str:
    return f"{count / 1024:,.0f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=30)
    args = parser.parse_args()
    rubric = result_fixtures.rubric()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        started = time.perf_counter()
        for k in range(args.submissions):
            result_fixtures.graded_result(out, f"student_{k:04d}", quality=(k % 10 + 0.5) / 10, seed=k)
        print(f"{args.submissions} graded results with media made in {time.perf_counter() - started:.1f} s")
        results, _ = read_results(out)
        one = results[0]
        render_submission(one, out, rubric=rubric)  # imports and template compilation, outside the timings
        shutil.rmtree(out / "spectrograms")

        cold, html = timed(lambda: render_submission(one, out, rubric=rubric))
        warm, _ = timed(lambda: render_submission(one, out, rubric=rubric), repeats=5)
        _, embedded = timed(lambda: render_submission(one, out, rubric=rubric, embed_media=True))
        print("\nsubmission page (3 clips x 4 sources, 2 samples: 14 players and spectrograms)")
        print(f"  render, spectrograms drawn      {cold * 1000:8.0f} ms")
        print(f"  render, spectrograms cached     {warm * 1000:8.0f} ms   ({cold / warm:.0f}x faster than drawn)")
        print(f"  size: page {kib(len(html.encode()))}, with linked audio and pictures "
              f"{kib(len(html.encode()) + linked_bytes(html, out / 'pages'))}, "
              f"embedded single file {kib(len(embedded.encode()))}")

        class_seconds, class_html = timed(lambda: render_class_page(results), repeats=3)
        print(f"\nclass page ({args.submissions} submissions)")
        print(f"  render                          {class_seconds * 1000:8.0f} ms, size {kib(len(class_html.encode()))}")

        shutil.rmtree(out / "spectrograms")
        all_cold, _ = timed(lambda: render_all(out, rubric))
        all_warm, _ = timed(lambda: render_all(out, rubric), repeats=3)
        pictures = len(list((out / "spectrograms").glob("*.png")))
        print(f"\nrender_all: {args.submissions} pages, the class page and every export ({pictures} spectrograms)")
        print(f"  first render (draws)            {all_cold:8.2f} s   ({all_cold / args.submissions * 1000:.0f} ms a page)")
        print(f"  re-render (cached)              {all_warm:8.2f} s   ({all_cold / all_warm:.0f}x faster than the first)")


if __name__ == "__main__":
    main()
