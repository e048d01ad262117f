"""Spectrogram pictures depend on the audio alone, however many were drawn before and on which thread."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from grader.report.spectrograms import LOG_MAX, LOG_MIN, PARAMS, draw


def test_a_picture_depends_on_its_log_mel_alone():
    rng = np.random.default_rng(0)
    mels = [rng.uniform(LOG_MIN, LOG_MAX, (PARAMS.n_mels, frames)) for frames in (94, 3, 400)]
    mels.append(mels[0].copy())
    with ThreadPoolExecutor(1) as fresh_thread:
        first_drawn = fresh_thread.submit(draw, mels[0]).result()
    pictures = [draw(mel) for mel in mels]
    assert pictures[0] == pictures[3] == first_drawn  # the same after a shorter and a longer clip, and elsewhere
    assert len(set(pictures)) == 3 and all(p.startswith(b"\x89PNG") for p in pictures)
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(draw, mels * 3)) == pictures * 3


def test_a_change_to_the_drawing_code_renames_every_cached_picture(tmp_path, monkeypatch):
    """The cached picture's name covers the audio, the style and the drawing code's digest."""
    from grader import cache
    from grader.report import spectrograms

    audio = tmp_path / "clip.wav"
    audio.write_bytes(b"RIFF same bytes")
    before = spectrograms.content_key(audio)
    assert spectrograms.content_key(audio) == before
    monkeypatch.setattr(cache, "code_digest", lambda grain: "edited" if grain == spectrograms.DRAWING_CODE else "")
    assert spectrograms.content_key(audio) != before
