"""Audio in the report folder is written by the grader from decoded samples; no student byte gets there as it came.

A polyglot (a valid WAV whose extra chunk is an HTML page with a script, handed in as
``samples/clip.html``) is graded by the real pipeline; every file of the media folder and
the student's page are then opened in a real headless Chromium, which must run no script
of the student's and still play every sample.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from grader.outputs import MediaRefused, copy_media
from grader.report.html import student_audience, write_submission_page
from tests.helpers import grade, rubric_of, sine

PAYLOAD = b"<html><script>document.title = 'pwned'; console.log('pwned');</script></html>"


def polyglot(path: Path) -> bytes:
    """A 16 kHz mono 16-bit WAV of 1 s of tone whose ``html`` chunk, before the samples, is an HTML page."""
    t = np.arange(16000) / 16000
    data = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    chunks = b"".join(name + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)
                      for name, body in ((b"fmt ", fmt), (b"html", PAYLOAD), (b"data", data)))
    content = b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return content


def test_a_polyglot_sample_reaches_the_report_only_as_a_fresh_wav_that_runs_no_script(small_heldout, browser, tmp_path):
    folder = tmp_path / "polyglot"
    student_bytes = polyglot(folder / "samples" / "clip.html")
    assert sf.info(str(folder / "samples" / "clip.html")).frames == 16000  # a valid WAV indeed
    sine(folder / "samples" / "tone.wav", 330)
    (folder / "samples" / "page.html").write_bytes(PAYLOAD)  # no audio at all
    (folder / "submission.toml").write_text('[files]\nsamples = "samples/*"\n')
    out = tmp_path / "out"
    result = grade(folder, small_heldout, out, "samples-handed-in")

    by_name = {sample.name: sample for sample in result.samples}
    assert by_name["samples/clip.html"].valid and by_name["samples/tone.wav"].valid
    assert by_name["samples/page.html"].audio is None
    assert "not a readable audio file" in by_name["samples/page.html"].findings[0]
    media = sorted((out / "media" / result.submission_id).iterdir())
    assert [path.name for path in media] == ["sample-01.wav", "sample-03.wav"]  # samples/*: clip, page, tone
    assert all(b"<script" not in path.read_bytes() and path.read_bytes() != student_bytes for path in media)
    assert np.allclose(sf.read(media[0])[0], sf.read(folder / "samples" / "clip.html")[0], atol=1e-4)

    rubric = rubric_of("samples-handed-in")
    page_path = write_submission_page(result, out, rubric=rubric, audience=student_audience(rubric))
    messages: list[str] = []
    for path in [*media, page_path]:
        page = browser.new_page()
        page.on("console", lambda message: messages.append(message.text))
        page.on("pageerror", lambda error: messages.append(str(error)))
        page.goto(path.as_uri())
        if path == page_path:
            durations = page.evaluate("""async () => Promise.all(Array.from(document.querySelectorAll("audio"))
                .map(a => a.readyState >= 1 ? a.duration : new Promise(done => {
                    a.addEventListener("loadedmetadata", () => done(a.duration), {once: true});
                    a.addEventListener("error", () => done(null), {once: true});
                    a.load();
                })))""")
            assert len(durations) == 2 and all(d == pytest.approx(1.0) for d in durations), durations
        page.wait_for_timeout(200)
        assert page.title() != "pwned" and page.evaluate("document.title") != "pwned", path
        page.close()
    assert messages == []


def test_copy_media_refuses_what_it_cannot_or_should_not_decode(tmp_path):
    media, out = tmp_path / "out" / "media" / "s", tmp_path / "out"
    empty, long, text = tmp_path / "empty.wav", tmp_path / "long.flac", tmp_path / "notes.wav"
    sf.write(empty, np.zeros(0), 16000)
    with sf.SoundFile(long, "w", samplerate=8000, channels=1) as handle:  # 75 s of silence: a few kB
        handle.write(np.zeros(8000 * 75, dtype=np.float32))
    text.write_text("not audio")
    for source, words in ((empty, "holds 0 samples"), (long, "75.0 s long, longer than 60 s"),
                          (text, "not a readable audio file")):
        with pytest.raises(MediaRefused, match=words):
            copy_media(source, media, "x", out)
    assert not media.exists()


def test_copy_media_writes_16_bit_pcm_under_a_safe_name_of_the_graders(tmp_path):
    source = tmp_path / "in.wav"
    stereo = np.stack([np.linspace(-2, 2, 800), np.full(800, np.nan)], axis=1)  # beyond full scale, and NaN
    sf.write(source, stereo, 8000, subtype="FLOAT")
    relative = copy_media(source, tmp_path / "out" / "media" / "s", "../a b<script>", tmp_path / "out")
    assert relative == "media/s/a-b-script-.wav"
    info = sf.info(str(tmp_path / "out" / relative))
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == ("WAV", "PCM_16", 8000, 2, 800)
    written, _ = sf.read(tmp_path / "out" / relative)
    assert written[:, 0].min() == -1 and written[:, 0].max() == pytest.approx(1, abs=1e-4) and not written[:, 1].any()
