"""A class of hostile submissions, built by code: each row of the grader's threat table as a real zip.

``build(folder)`` writes every zip and returns them as :class:`Hostile` rows: the zip, what the
submission does, and what the grader must make of it (checked by tests/test_hostile_corpus.py,
which grades them all as one batch). Nothing here is committed as a binary.
"""
from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SECRET = "corpus-keyring-secret"
"""What the keyring submissions try to leave for each other."""
SCRIPT_MARKER = "hostile-script-ran"
"""What the HTML hidden in a handed-in sample would write into the page, were it ever run."""

ENTRY_ARGUMENTS = '''
import argparse
parser = argparse.ArgumentParser()
for flag in ("--mel-dir", "--out-dir", "--num", "--seed"):
    parser.add_argument(flag)
args = parser.parse_args()
'''
MANIFEST = '''[entry]
reconstruct = "python generate.py --mel-dir {mel_dir} --out-dir {out_dir}"
sample = "python generate.py --num {num} --seed {seed} --out-dir {out_dir}"
'''

DEEP_TREE = ENTRY_ARGUMENTS + '''
import os
folder = os.open(".", os.O_RDONLY)
for _ in range(1200):  # 2,400 characters of path and past Python's recursion limit for anything recursive
    os.mkdir("d", dir_fd=folder)
    inner = os.open("d", os.O_RDONLY, dir_fd=folder)
    os.close(folder)
    folder = inner
print("made a tree 1200 folders deep")
'''
DISK_FILLER = ENTRY_ARGUMENTS + '''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
held = 0
for k in range(8):  # blocks without size: each file stays 0 bytes long (FALLOC_FL_KEEP_SIZE), under RLIMIT_FSIZE
    fd = os.open(f"held-{k}", os.O_CREAT | os.O_WRONLY)
    if libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(190_000_000)) == 0:
        held += 190
    os.close(fd)
made = 0
try:
    for k in range(50_000):
        open(f"empty-{k}", "w").close()
        made += 1
except OSError as error:
    print("stopped making files:", error)
print(f"fallocated {held} MB, made {made} empty files")
'''
KEYRING = ENTRY_ARGUMENTS + f'''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
SYS_add_key, SYS_keyctl, USER_KEYRING, KEYCTL_SEARCH, KEYCTL_READ = 248, 250, -4, 10, 11
found = libc.syscall(SYS_keyctl, KEYCTL_SEARCH, USER_KEYRING, b"user", b"corpus", 0)
if found > 0:
    buffer = ctypes.create_string_buffer(256)
    size = libc.syscall(SYS_keyctl, KEYCTL_READ, found, buffer, 256)
    print("found a key left by another run:", buffer.raw[:max(size, 0)].decode(errors="replace"))
else:
    print("no key found:", os.strerror(ctypes.get_errno()))
payload = b"{SECRET}"
key = libc.syscall(SYS_add_key, b"user", b"corpus", payload, len(payload), USER_KEYRING)
print("add_key:", key if key > 0 else os.strerror(ctypes.get_errno()))
'''
SAMPLE_PARAMETERS_NOTEBOOK = '''
import os
import numpy as np
import soundfile as sf
os.makedirs(out_dir, exist_ok=True)
if mel_dir is None:  # the contract: a mode's unused placeholders are None
    rng = np.random.default_rng(seed)  # and num and seed are ints
    for k in range(num):
        sf.write(os.path.join(out_dir, f"{k}.wav"), 0.2 * rng.standard_normal(16000), 16000)
else:
    for name in sorted(os.listdir(mel_dir)):
        if name.endswith(".npy"):
            sf.write(os.path.join(out_dir, name[:-4] + ".wav"), np.zeros(16000), 16000)
'''
LOUD_NOTEBOOK = '''
import sys
line = "x" * 1_000_000 + "\\n"
for _ in range(30):  # 30 MB, three times the run's output_bytes
    sys.stdout.write(line)
'''


@dataclass(frozen=True)
class Hostile:
    """One submission of the corpus."""

    zip: Path
    does: str
    """What the submission does, in the words of the threat table."""


def _zip(target: Path, files: dict[str, bytes | str]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def _wav(seconds: float, frequency: float = 220.0) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * frequency * t), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _html_polyglot() -> bytes:
    """A valid WAV whose bytes also hold a page that runs a script (a RIFF chunk browsers sniff past)."""
    page = (f"<html><body><script>document.title='{SCRIPT_MARKER}';"
            f"document.body.innerText='{SCRIPT_MARKER}'</script></body></html>").encode()
    wav = bytearray(_wav(1.0))
    chunk = b"html" + struct.pack("<I", len(page)) + page + b"\0" * (len(page) % 2)
    wav[12:12] = chunk  # before the fmt chunk: decoders skip an unknown chunk
    wav[4:8] = struct.pack("<I", len(wav) - 8)
    return bytes(wav)


def _notebook(*sources: str, outputs_per_cell: int = 0, parameters: bool = False) -> str:
    cells = []
    if parameters:
        cells.append({"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None,
                      "outputs": [], "source": "mel_dir = 'mels'\nout_dir = 'out'\nnum = 2\nseed = 0\n"})
    for source in sources:
        outputs = [{}] * outputs_per_cell  # empty outputs: each one breaks the notebook schema
        cells.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": outputs,
                      "source": source})
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": cells,
                       "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}}})


def build(folder: Path) -> list[Hostile]:
    """Write the corpus's zips under ``folder`` (LMS-style names, so the class page reads like a class)."""
    rows = [
        Hostile(_zip(folder / "deep_1001_1_hw3.zip", {"/".join(["a"] * 2000) + "/f.txt": "x",
                                                      "generate.py": "print(1)\n"}),
                "an entry 2,000 folders deep (an 8 kB zip)"),
        Hostile(_zip(folder / "tree_1002_1_hw3.zip", {"generate.py": DEEP_TREE, "submission.toml": MANIFEST}),
                "generate.py makes a tree 1,200 folders deep"),
        Hostile(_zip(folder / "outputs_1003_1_hw3.zip", {"evaluation.ipynb": _notebook(
                    "print('PESQ 2.0')", outputs_per_cell=20_000)}),
                "a 60 kB notebook whose one cell has 20,000 empty outputs"),
        Hostile(_zip(folder / "outputs2mb_1004_1_hw3.zip", {"evaluation.ipynb": _notebook(
                    "print('PESQ 2.0')", outputs_per_cell=500_000)}),
                "the same notebook at 2 MB"),
        Hostile(_zip(folder / "filler_1005_1_hw3.zip", {"generate.py": DISK_FILLER, "submission.toml": MANIFEST}),
                "fallocate(FALLOC_FL_KEEP_SIZE) of 1.5 GB in 0-byte files, then 50,000 empty files"),
        Hostile(_zip(folder / "regex_1006_1_hw3.zip", {"answers.md": "- q1: MFCC\n- q2: a" + " " * 80_000 + "b\n"}),
                "answers.md with '- q2: a', 80,000 spaces and 'b' (a 290-byte zip)"),
        Hostile(_zip(folder / "regex2mb_1007_1_hw3.zip", {"answers.md": "- q1: MFCC\n- q2: a" + " " * 2_000_000 + "b\n"}),
                "the same answers line at 2 MB"),
        Hostile(_zip(folder / "keys_1008_1_hw3.zip", {"generate.py": KEYRING, "submission.toml": MANIFEST}),
                "add_key(KEY_SPEC_USER_KEYRING) in every run, after looking for a key left by another run"),
        Hostile(_zip(folder / "keyreader_1009_1_hw3.zip",
                     {"generate.py": KEYRING, "submission.toml": MANIFEST}),
                "another submission looking for that key"),
        Hostile(_zip(folder / "polyglot_1010_1_hw3.zip", {"samples/clip.html": _html_polyglot(),
                                                          "samples/ok.wav": _wav(1.0, 330.0),
                                                          "submission.toml": '[files]\nsamples = "samples/*"\n'}),
                "a valid WAV holding a script, handed in as samples/clip.html"),
        Hostile(_zip(folder / "mallory_424242_999_hw3.zip", {
                    "submission.toml": '[student]\nname = "=HYPERLINK(\\"http://example.invalid\\",\\"Victim Student\\")"\n'
                                       'id = "313131"\n', "answers.toml": '[quiz]\nq1 = "MFCC"\n'}),
                "a Canvas zip of user 424242 whose manifest claims to be 'Victim Student', 313131, as a formula"),
        Hostile(_zip(folder / "params_1011_1_hw3.zip", {
                    "model.ipynb": _notebook(SAMPLE_PARAMETERS_NOTEBOOK, parameters=True),
                    "submission.toml": '[entry]\nsample = "model.ipynb"\n'}),
                "a notebook entry in sample mode that tests mel_dir is None and seeds numpy with seed"),
        Hostile(_zip(folder / "loud_1012_1_hw3.zip", {"model.ipynb": _notebook(LOUD_NOTEBOOK),
                                                      "submission.toml": '[entry]\nsample = "model.ipynb"\n'}),
                "a notebook that prints 30 MB"),
        Hostile(_zip(folder / "nested_1013_1_hw3.zip", {"hw3.zip": _zip(folder / "inner" / "hw3.zip", {
                    "preprocess.py": "import librosa\n"}).read_bytes()}),
                "a zip holding only another zip"),
        Hostile(_zip(folder / "emptywav_1014_1_hw3.zip", {"README.md": "Our samples.\n",
                                                          "samples/0.wav": _wav(2.0, 200.0),
                                                          "samples/1.wav": _wav(2.0, 300.0),
                                                          "samples/2.wav": _wav(2.0, 450.0),
                                                          "samples/3.wav": _wav(0.0)}),
                "three good samples and a WAV with 0 samples"),
    ]
    for attempt, place in enumerate(("first", "second"), start=1):  # one LMS export holding a resubmission
        resubmitted = _zip(folder / place / "twice_1015_1_hw3.zip", {"answers.toml": f'[quiz]\nq1 = "{attempt}"\n'})
        os.utime(resubmitted, (1_700_000_000 + attempt, 1_700_000_000 + attempt))  # the second is the later
        rows.append(Hostile(resubmitted, f"two zips that map to one id ({place} of them)"))
    return rows
