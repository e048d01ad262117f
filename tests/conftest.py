"""Shared fixtures: where the real data is, the embedded data set, and the small data set with its held-out set
and baseline, each built once per session (helpers for test modules are in tests/helpers.py)."""
import os
from pathlib import Path

import pytest

from reference import PROJECT_ROOT

SHARED_DATA = Path(os.environ.get("SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
EMBEDDED_DATA = PROJECT_ROOT / "data" / "embedded"


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """The real FSDD recordings (../shared/data/fsdd); the test is skipped where absent."""
    folder = SHARED_DATA / "fsdd"
    if not folder.is_dir():
        pytest.skip(f"real recordings not found at {folder} (set SHARED_DATA to the folder holding fsdd/)")
    return folder


@pytest.fixture(scope="session")
def pesq_pair_dir() -> Path:
    """The PESQ conformance pair (../shared/data/pesq); skipped where absent."""
    folder = SHARED_DATA / "pesq"
    if not folder.is_dir():
        pytest.skip(f"PESQ conformance pair not found at {folder} (set SHARED_DATA)")
    return folder


@pytest.fixture(scope="session")
def embedded_data() -> Path:
    """The embedded data set that `make data` builds (manifest.csv and splits)."""
    if not (EMBEDDED_DATA / "manifest.csv").is_file():
        from reference.data import build_embedded

        build_embedded(EMBEDDED_DATA)
    return EMBEDDED_DATA


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """The small embedded data set (:data:`tests.helpers.SMALL`, seed 5), built once per session: read it, never
    write into it."""
    from reference.data import build_embedded
    from tests.helpers import SMALL

    folder = tmp_path_factory.mktemp("small") / "data"
    build_embedded(folder, seed=5, spec=SMALL)
    return folder


@pytest.fixture(scope="session")
def small_heldout(small_data):
    """The held-out set of :func:`small_data`, prepared once per session (under ``small_data``'s parent)."""
    from grader.heldout import load_heldout

    return load_heldout(small_data, cache_root=small_data.parent / "heldout")


@pytest.fixture(scope="session")
def small_baseline(small_data, small_heldout):
    """``small_baseline()``: the reference baseline of :func:`small_heldout`, computed once per session (about
    10 s) and read from its cache at each call. A partial of :func:`grader.scoring.load_baseline`, so that a
    :class:`~grader.pipeline.GradingSetup` holding it can be sent to another process (a dask worker)."""
    import functools

    from grader.scoring import load_baseline

    baseline = functools.partial(load_baseline, small_heldout, jobs=1,
                                 cache_root=small_data.parent / "baseline")
    baseline()
    return baseline


@pytest.fixture(scope="module")
def setup_factory(tmp_path_factory, small_heldout, small_baseline):
    """``setup_factory(out_name, student_mode=False)``: a grading setup on the small held-out set with the
    bundled rubric, writing into ``out_name`` of a folder of this module's own."""
    from grader.pipeline import GradingSetup
    from grader.rubric import DEFAULT_RUBRIC, load_rubric

    root = tmp_path_factory.mktemp("grading")
    rubric = load_rubric(DEFAULT_RUBRIC)

    def make(out_name: str, student_mode: bool = False) -> GradingSetup:
        return GradingSetup(rubric=rubric, heldout=small_heldout, load_baseline=small_baseline, out_dir=root / out_name,
                            student_mode=student_mode)
    return make


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven by playwright (Debian's /usr/bin/chromium); skipped where absent."""
    from tests.helpers import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: `make setup` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
