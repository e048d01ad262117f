"""The example submissions' build (submissions/build.py): deterministic zips, a reference package that stands alone."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile

import pytest

from reference import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("examples_build", PROJECT_ROOT / "submissions" / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

SOURCE_ONLY = [name for name in build.EXAMPLES if name not in build.BUILDERS]


@pytest.mark.parametrize("name", SOURCE_ONLY)
def test_an_example_zip_is_the_same_byte_for_byte(name, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = build.build(name, tmp_path / "a"), build.build(name, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        entries = archive.infolist()
        assert entries and all(e.filename.startswith(f"{name}/") for e in entries)
        assert {e.date_time for e in entries} == {build.ZIP_TIME}
        assert [e.filename for e in entries] == sorted(e.filename for e in entries)
        sources = sorted(p.relative_to(build.SOURCES / name).as_posix()
                         for p in (build.SOURCES / name).rglob("*") if p.is_file())
        assert [e.filename.removeprefix(f"{name}/") for e in entries] == sources


def test_the_reference_package_imports_where_reference_is_not_installed(tmp_path):
    files = build.reference_package("refsol", ("generate",))
    assert {"refsol/__init__.py", "refsol/generate.py", "refsol/train.py", "refsol/wavenet.py", "refsol/vae.py",
            "refsol/vocoder.py", "refsol/preprocess.py"} <= set(files)
    for name, source in files.items():
        assert not build.REFERENCE_IMPORT.search(source.decode()), name
    build.add_files(tmp_path, files)
    # `reference` made unimportable, as in the sandbox: any import of it left in the copies fails here.
    code = ("import sys; sys.modules['reference'] = None; sys.path.insert(0, sys.argv[1]); "
            "import refsol.generate, refsol.train, refsol.vocoder; "
            "from refsol.generate import load_vae; print(type(load_vae(sys.argv[2])).__name__)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(build.CHECKPOINTS / "vae.pt")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "MelVAE"


def test_unknown_examples_are_refused_with_the_list():
    with pytest.raises(SystemExit):
        build.main(["no-such-example"])
