"""The class's similarity pages: ``OUT/similarity.html`` (every pair reported) and one page per pair,
``OUT/similarity/<a>--<b>--<kind>.html``, rendered from a :class:`grader.similarity.classwide.Comparison`.

A code pair shows both submissions' units side by side, the matching lines marked; an audio pair plays each
pair of matching clips with their spectrograms (a handed-in sample from the report's re-encoded copy, an output of
a run from its fingerprint's 4 kHz signal, written here as WAV); a checkpoint pair lists the matching tensors.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from grader.report.html import MediaLinks, _player, environment
from grader.similarity.audio import VERIFY_RATE
from grader.similarity.classwide import Comparison, Pair
from grader.similarity.prints import SubmissionPrints, path_of
from reference.files import atomic_write

SIMILARITY_PAGE = "similarity.html"
PAIRS_FOLDER = "similarity"
CODE_LINES_SHOWN = 400
"""Lines of one unit a pair's page shows at most (the matching ones first among them)."""


def write_similarity_pages(comparison: Comparison, out_dir: str | os.PathLike, report_from: float) -> Path:
    """Write ``OUT/similarity.html`` and every pair's page (atomically); return the first."""
    out_dir = Path(out_dir)
    env = environment()
    for pair in comparison.pairs:
        atomic_write(out_dir / pair.page, env.get_template("similarity_pair.html.j2").render(
            pair=pair, **_pair_context(pair, out_dir)))
    return atomic_write(out_dir / SIMILARITY_PAGE, env.get_template("similarity.html.j2").render(
        comparison=comparison, report_from=report_from))


def _pair_context(pair: Pair, out_dir: Path) -> dict[str, Any]:
    if pair.kind == "code":
        return {"units": _code_sides(pair, out_dir), "players": [], "tensors": []}
    if pair.kind == "audio":
        return {"units": [], "players": _audio_sides(pair, out_dir), "tensors": []}
    return {"units": [], "players": [], "tensors": pair.detail}


def _prints(out_dir: Path, sid: str) -> SubmissionPrints | None:
    """A submission's kept fingerprints (an earlier class's ``<folder>/<id>`` has none here: its side is not shown)."""
    path = path_of(out_dir, sid)
    return SubmissionPrints.from_json(path.read_text()) if "/" not in sid and path.is_file() else None


def _code_sides(pair: Pair, out_dir: Path) -> list[dict[str, Any]]:
    """Per pair of units that match: both units' lines, each marked where it matches the other."""
    sides = [_prints(out_dir, pair.a), _prints(out_dir, pair.b)]
    marked: dict[tuple[str, str], tuple[set[int], set[int]]] = {}
    for label_a, first_a, last_a, label_b, first_b, last_b in pair.detail:
        lines = marked.setdefault((label_a, label_b), (set(), set()))
        lines[0].update(range(first_a, last_a + 1))
        lines[1].update(range(first_b, last_b + 1))
    shown = []
    for (label_a, label_b), (lines_a, lines_b) in marked.items():
        shown.append({"a": _lines(sides[0], label_a, lines_a), "b": _lines(sides[1], label_b, lines_b),
                      "label_a": label_a, "label_b": label_b})
    return shown


def _lines(prints: SubmissionPrints | None, label: str, marked: set[int]) -> list[dict[str, Any]]:
    """The unit's numbered lines (at most :data:`CODE_LINES_SHOWN`), each with whether it matches."""
    if prints is None or label not in prints.sources:
        return []
    return [{"number": number, "text": text, "match": number in marked}
            for number, text in enumerate(prints.sources[label].splitlines()[:CODE_LINES_SHOWN], 1)]


def _audio_sides(pair: Pair, out_dir: Path) -> list[dict[str, Any]]:
    """Per matching clip pair: a player with its spectrogram for each side."""
    sides = {pair.a: _prints(out_dir, pair.a), pair.b: _prints(out_dir, pair.b)}
    links = MediaLinks(out_dir, (out_dir / pair.page).parent, embed=False)
    rows = []
    for match in pair.detail:
        players = []
        for sid, role, clip in ((pair.a, match["role_a"], match["clip_a"]), (pair.b, match["role_b"], match["clip_b"])):
            relative = _clip_media(out_dir, sid, sides[sid], role, clip)
            players.append(_player(links, relative, f"{sid}: {role} {clip}"))
        rows.append({"match": match, "players": players})
    return rows


def _clip_media(out_dir: Path, sid: str, prints: SubmissionPrints | None, role: str, clip: str) -> str | None:
    """The clip as a file in the report folder: a handed-in sample's re-encoded copy, else its fingerprint's
    signal written as WAV at :data:`VERIFY_RATE` (what the comparison heard); None where there is neither."""
    if prints is None:
        return None
    if role == "handed_in" and clip in prints.media:
        return prints.media[clip]
    fingerprint = prints.audio.get(role, {}).get(clip)
    if fingerprint is None or not fingerprint.signal.size:
        return None
    relative = f"{PAIRS_FOLDER}/media/{''.join(c if c.isalnum() or c in '._-' else '_' for c in f'{sid}-{role}-{clip}')}.wav"
    wave = fingerprint.waveform()
    peak = float(np.max(np.abs(wave))) or 1.0
    (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    sf.write(out_dir / relative, wave / peak * 0.9, VERIFY_RATE, subtype="PCM_16", format="WAV")
    return relative
