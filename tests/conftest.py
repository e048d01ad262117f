"""Shared fixtures: where the real data is, and the embedded data set."""
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
