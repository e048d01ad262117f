"""The course data sets: the embedded default made here, and real recordings from a folder.

Both are written as ``<out>/<split>/<name>.wav`` (16 kHz, mono, 16-bit PCM) with a
``manifest.csv`` beside them (path relative to the folder, class, split, group,
duration in s, sha256, description). Splits are train / test / heldout and never
share a group: a voice, a melody or a speaker belongs to one split only.

The embedded default mirrors the seed notebook's Human and Piano sets: speech
spoken by espeak-ng (several voices, rates and pitches; digit strings and short
sentences) and melodies rendered by FluidSynth with the FluidR3_GM soundfont.
Everything random comes from one seed, so a seed gives byte-identical files.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reference import SAMPLE_RATE
from reference.files import file_digest
from reference.preprocess import AUDIO_SUFFIXES, load_audio, peak_normalize

SPLITS = ("train", "test", "heldout")
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("path", "class", "split", "group", "duration", "sha256", "description")
SOUNDFONT_CANDIDATES = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")
PEAK = 0.9
"""Every clip is peak-normalised to this amplitude before it is written."""


class DataBuildError(RuntimeError):
    """A data set could not be built; the message says what is missing and how to fix it."""


NOT_SPEECH_CLASSES = frozenset({"piano"})
"""Classes of clips that are not speech (the embedded data set's melodies)."""


@dataclass(frozen=True)
class Clip:
    """One row of a manifest. ``path`` is absolute; ``duration`` in seconds."""

    path: Path
    cls: str
    split: str
    group: str
    duration: float
    sha256: str
    description: str = ""

    @property
    def is_speech(self) -> bool:
        """Whether PESQ and STOI apply: every class but :data:`NOT_SPEECH_CLASSES` (a clip of unknown class
        counts as speech)."""
        return self.cls not in NOT_SPEECH_CLASSES


# --------------------------------------------------------------------------- manifest

def write_clip(folder: Path, split: str, name: str, wav: np.ndarray, cls: str, group: str,
               description: str) -> Clip:
    """Write ``wav`` (samples,) at 16 kHz as ``folder/split/name.wav`` (PCM 16) and describe it."""
    import soundfile as sf

    path = folder / split / f"{name}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, peak_normalize(wav, PEAK), SAMPLE_RATE, subtype="PCM_16")
    return Clip(path, cls, split, group, round(len(wav) / SAMPLE_RATE, 4), file_digest(path), description)


def write_manifest(folder: Path, clips: list[Clip]) -> Path:
    """Write ``folder/manifest.csv`` for ``clips`` (sorted by path) and return its path."""
    target = folder / MANIFEST_NAME
    with open(target, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for c in sorted(clips, key=lambda c: str(c.path)):
            writer.writerow([c.path.relative_to(folder).as_posix(), c.cls, c.split, c.group,
                             f"{c.duration:.4f}", c.sha256, c.description])
    return target


def read_manifest(folder: str | Path) -> list[Clip]:
    """The clips of a data set folder, from its ``manifest.csv``.

    Raises:
        DataBuildError: the folder has no manifest (build it first) or the manifest is malformed.
    """
    folder = Path(folder).resolve()
    target = folder / MANIFEST_NAME
    if not target.is_file():
        raise DataBuildError(f"{target}: no manifest. Build the data set first: "
                             f"`python -m reference data build --out {folder}` (or `make data`).")
    with open(target, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise DataBuildError(f"{target}: missing columns {sorted(missing)}; rebuild the data set.")
        return [Clip(folder / row["path"], row["class"], row["split"], row["group"],
                     float(row["duration"]), row["sha256"], row["description"]) for row in reader]


def manifest_hash(folder: str | Path) -> str:
    """Hex sha256 of a data set's manifest: changes whenever any clip or split changes."""
    return file_digest(Path(folder) / MANIFEST_NAME)


# --------------------------------------------------------------------------- embedded: speech

# Accents of espeak-ng's own English voices; each split draws from its own accents,
# so the held-out voices are unheard in training, as a new speaker would be.
SPLIT_ACCENTS = {
    "train": ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan"),
    "test": ("en-gb-x-gbcwmd",),
    "heldout": ("en-029", "en-us-nyc"),
}
VOICE_VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: accent, variant, pitch (0-99) and rate (words per minute)."""

    accent: str
    variant: str
    pitch: int
    rate: int

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def group(self) -> str:
        return f"voice-{self.accent}-{self.variant}"


@dataclass(frozen=True)
class EmbeddedSpec:
    """How much the embedded data set holds: voices and melodies per split, clips per voice.

    The default holds 12 held-out clips (8 spoken, 4 piano), 16 test clips and 192 training clips
    (about 9 minutes of audio).
    """

    voices: dict[str, int] = field(default_factory=lambda: {"train": 6, "test": 2, "heldout": 2})
    utterances_per_voice: dict[str, int] = field(default_factory=lambda: {"train": 24, "test": 4, "heldout": 4})
    melodies: dict[str, int] = field(default_factory=lambda: {"train": 48, "test": 8, "heldout": 4})
    min_seconds: float = 2.0
    max_seconds: float = 4.0


def pick_voices(rng: np.random.Generator, spec: EmbeddedSpec) -> dict[str, list[Voice]]:
    """Draw each split's voices: distinct accent+variant pairs, pitch 25-75, rate 135-185 wpm."""
    voices: dict[str, list[Voice]] = {}
    for split in SPLITS:
        pairs = [(a, v) for a in SPLIT_ACCENTS[split] for v in VOICE_VARIANTS]
        chosen = rng.choice(len(pairs), size=spec.voices[split], replace=False)
        voices[split] = [Voice(*pairs[i], pitch=int(rng.integers(25, 76)), rate=int(rng.integers(135, 186)))
                         for i in sorted(chosen)]
    return voices


def random_text(rng: np.random.Generator) -> str:
    """A digit string of 5-7 digits (as words) or a short sentence, half and half."""
    if rng.random() < 0.5:
        return " ".join(DIGIT_WORDS[d] for d in rng.integers(0, 10, size=int(rng.integers(5, 8))))
    return SENTENCES[int(rng.integers(len(SENTENCES)))]


def speak(voice: Voice, text: str, workdir: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng in ``voice``: float32 (samples,) at 16 kHz, silence trimmed."""
    import librosa

    target = workdir / f"{hashlib.sha1(f'{voice}{text}'.encode()).hexdigest()}.wav"
    subprocess.run(["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.rate),
                    "-w", str(target), text], check=True, capture_output=True)
    wav = load_audio(target, SAMPLE_RATE)
    target.unlink()
    trimmed, _ = librosa.effects.trim(wav, top_db=40)
    pad = np.zeros(int(0.1 * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([pad, trimmed, pad])


def speech_clips(rng: np.random.Generator, spec: EmbeddedSpec, out: Path, workdir: Path,
                 pool: ThreadPoolExecutor) -> list[Clip]:
    """Every split's spoken clips, each between ``spec.min_seconds`` and ``spec.max_seconds``."""
    jobs = []
    for split, voices in pick_voices(rng, spec).items():
        for voice in voices:
            # Draw candidates up front so that the result does not depend on timing.
            candidates = [random_text(rng) for _ in range(4 * spec.utterances_per_voice[split])]
            jobs.append((split, voice, candidates))

    def render(job: tuple[str, Voice, list[str]]) -> list[Clip]:
        split, voice, candidates = job
        clips = []
        for text in candidates:
            wav = speak(voice, text, workdir)
            if spec.min_seconds <= len(wav) / SAMPLE_RATE <= spec.max_seconds:
                name = f"human_{voice.accent}-{voice.variant}_{len(clips):02d}"
                clips.append(write_clip(out, split, name, wav, "human", voice.group,
                                        f"espeak-ng {voice.name} pitch {voice.pitch} rate {voice.rate}: {text}"))
            if len(clips) == spec.utterances_per_voice[split]:
                return clips
        raise DataBuildError(f"espeak-ng voice {voice.name} gave too few clips of "
                             f"{spec.min_seconds}-{spec.max_seconds} s; widen the limits in EmbeddedSpec.")

    return [clip for clips in pool.map(render, jobs) for clip in clips]


# --------------------------------------------------------------------------- embedded: piano

PIANO_PROGRAMS = (0, 1, 2, 4, 5, 6, 7)
"""General MIDI programs of the piano family (acoustic, bright, electric grand, electric pianos, harpsichord, clavinet)."""
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


@dataclass(frozen=True)
class Melody:
    """A generated melody: MIDI notes with durations in beats, a tempo, a program and a bass note."""

    notes: tuple[int, ...]
    beats: tuple[float, ...]
    bpm: int
    program: int
    bass: int

    @property
    def seconds(self) -> float:
        return sum(self.beats) * 60.0 / self.bpm

    def describe(self) -> str:
        return f"program {self.program}, {self.bpm} bpm, notes {' '.join(map(str, self.notes))}"


def random_melody(rng: np.random.Generator, min_seconds: float, max_seconds: float) -> Melody:
    """A random walk on a major or minor scale, 1.5 to 3 s of notes, that rings within the limits."""
    scale = SCALES["major" if rng.random() < 0.5 else "minor"]
    tonic = int(rng.integers(55, 67))
    bpm = int(rng.integers(96, 145))
    degree, notes, beats = 7, [], []
    target = rng.uniform(min_seconds - 0.5 + 0.1, max_seconds - 0.8)
    while sum(beats) * 60 / bpm < target:
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 1, 1, 2, 3, -3]), 0, 14))
        notes.append(tonic + 12 * (degree // 7) + scale[degree % 7] - 12)
        beats.append(float(rng.choice([0.5, 0.5, 1.0])))
    return Melody(tuple(notes), tuple(beats), bpm, int(rng.choice(PIANO_PROGRAMS)), tonic - 24)


def melody_midi(melody: Melody, path: Path) -> None:
    """Write ``melody`` as a one-track Standard MIDI File with a held bass note under it."""
    import mido

    ticks = 480
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(melody.bpm), time=0))
    track.append(mido.Message("program_change", program=melody.program, time=0))
    track.append(mido.Message("note_on", note=melody.bass, velocity=60, time=0))
    for note, beats in zip(melody.notes, melody.beats):
        velocity = 70 + (hash_int(note, beats) % 30)
        track.append(mido.Message("note_on", note=note, velocity=velocity, time=0))
        track.append(mido.Message("note_off", note=note, velocity=0, time=int(beats * ticks)))
    track.append(mido.Message("note_off", note=melody.bass, velocity=0, time=0))
    midi = mido.MidiFile(ticks_per_beat=ticks)
    midi.tracks.append(track)
    midi.save(path)


def hash_int(*values: object) -> int:
    """A small integer that depends only on ``values`` (stable across runs, unlike ``hash``)."""
    return int.from_bytes(hashlib.sha1(repr(values).encode()).digest()[:4], "little")


def find_soundfont() -> Path:
    """The FluidR3_GM soundfont, or a DataBuildError that says which package provides it."""
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise DataBuildError("FluidR3_GM.sf2 not found; install Debian's fluid-soundfont-gm (`make setup` does).")


def render_melody(melody: Melody, soundfont: Path, workdir: Path, max_seconds: float) -> np.ndarray:
    """``melody`` rendered by FluidSynth at 16 kHz: float32 (samples,), with 0.5 s of release, faded out."""
    stem = workdir / f"melody-{hash_int(melody)}"
    midi, wav_path = stem.with_suffix(".mid"), stem.with_suffix(".wav")
    melody_midi(melody, midi)
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.7", "-r", str(SAMPLE_RATE),
                    "-F", str(wav_path), str(soundfont), str(midi)], check=True, capture_output=True)
    wav = load_audio(wav_path, SAMPLE_RATE)
    midi.unlink()
    wav_path.unlink()
    length = min(int((melody.seconds + 0.5) * SAMPLE_RATE), int(max_seconds * SAMPLE_RATE), len(wav))
    wav = wav[:length].copy()
    fade = int(0.05 * SAMPLE_RATE)
    wav[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return wav


def piano_clips(rng: np.random.Generator, spec: EmbeddedSpec, out: Path, workdir: Path,
                pool: ThreadPoolExecutor) -> list[Clip]:
    """Every split's piano clips: one melody each, melodies never shared between splits."""
    soundfont = find_soundfont()
    jobs = [(split, k, random_melody(rng, spec.min_seconds, spec.max_seconds))
            for split in SPLITS for k in range(spec.melodies[split])]

    def render(job: tuple[str, int, Melody]) -> Clip:
        split, k, melody = job
        wav = render_melody(melody, soundfont, workdir, spec.max_seconds)
        return write_clip(out, split, f"piano_{split}-{k:02d}", wav, "piano", f"melody-{split}-{k:02d}",
                          melody.describe())

    return list(pool.map(render, jobs))


# --------------------------------------------------------------------------- builders

def require_tools(*tools: str) -> None:
    """Raise DataBuildError naming the Debian packages to install when a tool is missing."""
    packages = {"espeak-ng": "espeak-ng", "fluidsynth": "fluidsynth"}
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise DataBuildError(f"missing {', '.join(missing)}: install Debian's "
                             f"{' '.join(packages[t] for t in missing)} (`make setup` does).")


def build_embedded(out: str | Path, seed: int = 0, spec: EmbeddedSpec = EmbeddedSpec(), jobs: int = 2) -> list[Clip]:
    """Build the embedded default data set in ``out`` (replacing what was there) and return its clips.

    Deterministic: the same ``seed`` and ``spec`` give byte-identical files.
    """
    require_tools("espeak-ng", "fluidsynth")
    out = Path(out)
    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    speech_rng, piano_rng = rng.spawn(2)
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(jobs) as pool:
        clips = speech_clips(speech_rng, spec, staging, Path(workdir), pool)
        clips += piano_clips(piano_rng, spec, staging, Path(workdir), pool)
    write_manifest(staging, clips)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)  # readers never see a half-built set
    return read_manifest(out)


FSDD_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[^_]+)_(?P<index>\d+)$")


def group_by_speaker(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """FSDD-named recordings (``{digit}_{speaker}_{index}``) by speaker, and the files that are not."""
    speakers: dict[str, list[Path]] = {}
    skipped = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        match = FSDD_NAME.match(path.stem)
        if match:
            speakers.setdefault(match["speaker"], []).append(path)
        else:
            skipped.append(path)
    return speakers, skipped


def assign_speakers(speakers: list[str], heldout: list[str] | None, test: list[str] | None) -> dict[str, str]:
    """speaker -> split. Defaults: the last speaker by name is held out, the one before it is test."""
    ordered = sorted(speakers)
    if heldout is None and test is None and len(ordered) < 3:
        raise DataBuildError(f"need at least 3 speakers for speaker-disjoint splits, found {ordered}")
    heldout = heldout if heldout is not None else ordered[-1:]
    test = test if test is not None else [s for s in ordered if s not in heldout][-1:]
    unknown = [s for s in heldout + test if s not in ordered]
    if unknown:
        raise DataBuildError(f"speakers {unknown} are not in the folder (found {ordered})")
    if set(heldout) & set(test):
        raise DataBuildError(f"speakers {sorted(set(heldout) & set(test))} are both test and held out")
    return {s: "heldout" if s in heldout else "test" if s in test else "train" for s in ordered}


def phone_number(rng: np.random.Generator, files: list[Path], min_seconds: float, max_seconds: float,
                 cache: dict[Path, np.ndarray]) -> tuple[np.ndarray, str]:
    """5-7 digit recordings of one speaker joined with 60-200 ms gaps into ``min_seconds``-``max_seconds``.

    More digits are added while the clip is shorter than ``min_seconds``; a digit that
    would pass ``max_seconds`` is left out.

    Returns:
        wav: float32 (samples,) at 16 kHz; the digits spoken, as a string.
    """
    count = int(rng.integers(5, 8))
    edge = np.zeros(int(0.1 * SAMPLE_RATE), dtype=np.float32)
    pieces, digits, length = [edge], "", 2 * len(edge)
    for index in rng.permutation(len(files)):
        path = files[int(index)]
        if len(digits) >= count and length >= min_seconds * SAMPLE_RATE:
            break
        if path not in cache:
            cache[path] = peak_normalize(load_audio(path, SAMPLE_RATE))
        gap = np.zeros(int(rng.uniform(0.06, 0.2) * SAMPLE_RATE) if digits else 0, dtype=np.float32)
        if length + len(gap) + len(cache[path]) > max_seconds * SAMPLE_RATE:
            continue
        pieces += [gap, cache[path]]
        digits += path.name[0]
        length += len(gap) + len(cache[path])
    return np.concatenate([*pieces, edge]), digits


def build_from_recordings(source: str | Path, out: str | Path, seed: int = 0, per_speaker: int = 30,
                          heldout_speakers: list[str] | None = None, test_speakers: list[str] | None = None,
                          min_seconds: float = 2.5, max_seconds: float = 4.0) -> list[Clip]:
    """Speaker-disjoint "phone number" clips from a folder of FSDD-named recordings.

    Each clip joins 5-7 digits of one speaker, resampled to 16 kHz, into 2.5-4 s of
    speech (PESQ wants multi-second speech). Files of any rate, WAV/FLAC/OGG.
    Returns the clips; ``out/manifest.csv`` lists them.
    """
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise DataBuildError(f"{source}: not a folder of recordings")
    speakers, skipped = group_by_speaker(source)
    if skipped:
        print(f"note: {len(skipped)} files not named {{digit}}_{{speaker}}_{{index}} were skipped, "
              f"e.g. {skipped[0].name}", file=sys.stderr)
    split_of = assign_speakers(list(speakers), heldout_speakers, test_speakers)
    rng = np.random.default_rng(seed)
    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    clips: list[Clip] = []
    cache: dict[Path, np.ndarray] = {}
    for speaker in sorted(speakers):
        for k in range(per_speaker):
            wav, digits = phone_number(rng, speakers[speaker], min_seconds, max_seconds, cache)
            clips.append(write_clip(staging, split_of[speaker], f"speech_{speaker}_{k:03d}", wav, "speech",
                                    f"speaker-{speaker}", f"digits {digits} by {speaker}"))
    write_manifest(staging, clips)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return read_manifest(out)


# --------------------------------------------------------------------------- summary and command

def summary(clips: list[Clip]) -> str:
    """A table of clip counts and minutes by class and split, as text."""
    rows = {}
    for c in clips:
        count, seconds = rows.get((c.cls, c.split), (0, 0.0))
        rows[(c.cls, c.split)] = (count + 1, seconds + c.duration)
    lines = [f"{'class':<8} {'split':<8} {'clips':>6} {'minutes':>8} {'groups':>7}"]
    for (cls, split), (count, seconds) in sorted(rows.items(), key=lambda kv: (kv[0][0], SPLITS.index(kv[0][1]))):
        groups = len({c.group for c in clips if c.cls == cls and c.split == split})
        lines.append(f"{cls:<8} {split:<8} {count:>6} {seconds / 60:>8.2f} {groups:>7}")
    total = sum(c.duration for c in clips)
    lines.append(f"{'all':<17} {len(clips):>6} {total / 60:>8.2f}")
    return "\n".join(lines)


def main(argv: list[str], prog: str) -> int:
    """`data build|real|summary`: build the embedded data set, or splits from real recordings."""
    parser = argparse.ArgumentParser(prog=prog, description="The course data sets.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="make the embedded default (espeak-ng speech, FluidSynth piano)")
    build.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    build.add_argument("--seed", type=int, default=0, help="the same seed gives byte-identical files (default 0)")
    real = commands.add_parser("real", help="speaker-disjoint phone-number clips from FSDD-named recordings")
    real.add_argument("--in", dest="source", type=Path, required=True,
                      help="folder of {digit}_{speaker}_{index}.wav recordings (any rate)")
    real.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    real.add_argument("--seed", type=int, default=0)
    real.add_argument("--per-speaker", type=int, default=30, help="clips per speaker (default 30)")
    real.add_argument("--heldout-speakers", nargs="+", help="default: the last speaker by name")
    real.add_argument("--test-speakers", nargs="+", help="default: the speaker before the held-out one")
    show = commands.add_parser("summary", help="print what a data set folder holds")
    show.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if args.command == "build":
            clips = build_embedded(args.out, seed=args.seed)
        elif args.command == "real":
            clips = build_from_recordings(args.source, args.out, seed=args.seed, per_speaker=args.per_speaker,
                                          heldout_speakers=args.heldout_speakers, test_speakers=args.test_speakers)
        else:
            clips = read_manifest(args.folder)
    except DataBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command != "summary":
        print(f"built {len(clips)} clips in {args.out} in {time.perf_counter() - started:.1f} s")
    print(summary(clips))
    return 0
