"""Every limit the grader puts on a submission, with its default and its rubric key.

Two groups, each a pydantic model whose field names are the keys a rubric uses
(``[limits.intake]`` and ``[limits.run]`` tables, or a rubric item's own
``[...limits]`` override); an unknown key or a wrong type is a validation error that
names the key. Units are in the names: ``_bytes``, ``_seconds``.

- :class:`IntakeLimits`: what an archive may unpack to (the contract's hard limits).
- :class:`RunLimits`: what one sandboxed run of student code may use.

Then the grader's own bounds on reading what a submission (or a course folder) hands it on
the host, constants rather than rubric keys, one section per module that reads: sizes,
counts, depths and lengths, so that nothing parsed outside the sandbox takes unbounded
memory or time.
"""
from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

MB = 1_000_000
GiB = 1024**3


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def with_overrides(self, overrides: dict[str, Any] | None) -> Self:
        """A copy with the rubric's ``overrides`` applied and validated (unknown keys refused)."""
        if not overrides:
            return self
        return type(self).model_validate({**self.model_dump(), **overrides})


class IntakeLimits(_Limits):
    """Hard limits on a submitted archive (submission contract, "The archive")."""

    max_unpacked_bytes: int = Field(
        200 * MB, gt=0,
        description="Bytes the archive may unpack to, counted while decompressing (not from the headers).",
    )
    max_entries: int = Field(
        5000, gt=0, description="Entries (files and folders) the archive may hold, ignored ones included.",
    )
    max_depth: int = Field(
        32, gt=0, description="Folders an entry may lie in, one inside the other (a tree thousands deep "
        "is refused before anything walks it).",
    )


class RunLimits(_Limits):
    """Resources one run of student code may use inside the sandbox."""

    wall_seconds: float = Field(120.0, gt=0, description="Wall-clock time before the run is stopped (verdict timeout).")
    cpu_seconds: int = Field(
        300, gt=0,
        description="CPU time of each process (RLIMIT_CPU); a process past it is killed (verdict timeout).",
    )
    memory_bytes: int = Field(
        4 * GiB, gt=0,
        description="Memory of the whole run: a memory cgroup as root, else RLIMIT_DATA per process "
        "(verdict out_of_memory). The default holds the seed notebook's Keras CNN VAE (6.8 M parameters) training on "
        "128x216 mels at batch 32, which peaks at 1.5 GiB with TensorFlow loaded.",
    )
    processes: int = Field(
        256, gt=0,
        description="Processes and threads alive at once: a pids cgroup as root, else RLIMIT_NPROC inside "
        "the run's own user namespace.",
    )
    file_size_bytes: int = Field(200 * MB, gt=0, description="Largest file a process may write (RLIMIT_FSIZE).")
    open_files: int = Field(1024, gt=0, description="Open file descriptors per process (RLIMIT_NOFILE).")
    output_bytes: int = Field(
        10 * MB, gt=0,
        description="Bytes the run may print to stdout and stderr together before it is stopped "
        "(verdict output_limit).",
    )
    disk_bytes: int = Field(
        1000 * MB, gt=0,
        description="Bytes the run may add to its work folder, counted as allocated blocks (verdict "
        "output_limit); also the size of its private /tmp.",
    )
    disk_inodes: int = Field(
        10_000, gt=0,
        description="Files and folders the run may add to its work folder (verdict output_limit).",
    )
    captured_bytes: int = Field(
        64 * 1024, gt=0,
        description="Bytes of stdout and of stderr kept for the report (head and tail; the middle is cut).",
    )
    cell_seconds: float = Field(
        600.0, gt=0, description="Time one notebook cell may run (nbclient's per-cell timeout).",
    )
    notebook_seconds: float = Field(
        900.0, gt=0,
        description="Time a notebook entry's cells may take together, training included; the notebook runs "
        "once for every mode it serves, and this replaces wall_seconds for that run (cell_seconds still "
        "bounds each cell).",
    )
    cpu_threads: int = Field(
        1, gt=0,
        description="Threads numerical libraries start (OMP_NUM_THREADS, MKL, OpenBLAS, numba, torch's intra-op "
        "threads, TensorFlow's intra- and inter-op pools). One by "
        "default: outputs then never depend on how many submissions a batch grades at once (a parallel sum "
        "rounds differently), and N jobs fill N cores without oversubscribing them.",
    )


# --------------------------------------------------------------------------- bounds on reading student files
# Not rubric keys: the grader's own bounds on every file a submission (or a course folder) hands it, so that
# nothing parsed on the host can take unbounded memory or time.

# What student code's outputs may be (grader/outputs.py)

MAX_OUTPUT_FILE_BYTES = 50_000_000
"""The contract's largest output file (50 MB)."""
MAX_CLIP_SECONDS = 60.0
"""Longest clip read from any file, an output or a held-out recording (the contract: 60 s a clip)."""

# Course data folders mounted into runs (grader/mounts.py)

MAX_MOUNT_FILES = 50_000
"""Files a mount folder may hold; a larger one is refused (the first check costs some 10 ms an audio file)."""
MAX_MOUNT_FILE_BYTES = 50_000_000
"""Files larger than this are not read: skipped, with a note (a held-out clip is some 100 kB)."""
MAX_MOUNT_AUDIO_SECONDS = 600.0
"""Audio longer than this is not decoded: skipped, with a note (a held-out clip lasts a few seconds)."""

# A held-out set read from a plain folder (grader/heldout.py)

MAX_HELDOUT_FILES = 2000
"""Audio files a plain folder may hold (every submission reconstructs every held-out clip)."""
MAX_HELDOUT_FILE_BYTES = 100_000_000
"""Largest audio file of a plain folder that is read (a minute of 48 kHz stereo 24-bit WAV is 17 MB)."""
MAX_HELDOUT_FILE_SAMPLES = int(MAX_CLIP_SECONDS) * 192_000 * 2
"""Samples (all channels) of one file read at most: a minute of 192 kHz stereo; its header is checked first."""

# Finding a submission's parts (grader/discovery.py)

MAX_CODE_BYTES = 5_000_000
"""Code parsed (or searched) in all, per submission and reader; a submission's code is some 100 kB."""
MAX_MANIFEST_BYTES = 128_000
"""A manifest is a few lines; a larger one is refused, and everything is guessed."""
MAX_DECLARED_PATTERNS = 20
"""Patterns a file role may list; each is matched against every file of the submission."""
MAX_ANSWER_CANDIDATES = 5
"""Answers files, then notebooks (the shallowest first), read at most to find the quiz's answers:
each read is bounded (a notebook's 20 MB takes some 2 s at worst); a submission has one or two."""

# Parsing student files on the host (grader/student_files.py)

MAX_NOTEBOOK_BYTES = 20_000_000
"""Larger notebooks are not read (outputs, pictures and audio players included, make most of a notebook)."""
MAX_JSON_VALUES = 500_000
"""Containers and commas (outside strings) a JSON file may hold: each may cost some 150 bytes of objects."""
MAX_JSON_DEPTH = 100
"""Nesting a JSON file may have; a notebook nests some 6 deep, plots and widgets a few more."""
MAX_TOML_DOTS = 256
"""Dots on one line of a TOML file: a dotted key's parts cost tomllib time and memory quadratic in their number."""
MAX_PARSE_BYTES = 200_000
"""Python parsed with ast per file (a notebook's code cells together): the worst source found
(``a`` on each line) takes about 0.9 kB of memory per byte, so about 180 MB here."""
MAX_PARSE_BRACES = 5_000
"""Braces (``{``) per parsed file: Python 3.11 locates each f-string field by scanning its
string from the start, so fields x length is quadratic (40,000 fields in 120 kB took 1 s)."""

# Quiz answers (grader/checks/quiz.py)

MAX_ANSWERS_BYTES = 128_000
"""An answers file is a few lines; a larger one is refused (a notebook has the notebook's own cap)."""
MAX_MARKDOWN_LINES = 100_000
"""Lines of a notebook's markdown searched for answers, from its first cell: a notebook's prose is some
thousand lines. A 20 MB notebook of short markdown lines (1.2 million) took 3 s to search; its first
100,000 lines take under 1 s, reading included."""
MAX_QUESTION_LINE = 1_000
"""Characters a line that holds a question's text may have (the longest question is some 80): longer lines
are not normalised and searched for the questions' texts, which costs some 0.1 s a MB."""

# Handed-in samples (grader/checks/samples.py)

MAX_SAMPLES = 12
"""Samples examined (and put in the report) at most."""

# Static evidence in the code (grader/checks/static.py)

MAX_SOURCE_BYTES = 2_000_000
"""Larger .py files (and cells) are data, not code: not read at all. Smaller ones that are more
than :class:`~grader.student_files.CodeParser` parses are searched as text."""
MAX_BUILDER_ROUNDS = 4
"""Definitions followed from a layer to the model that builds it (block -> stack -> model -> wrapper)."""
MAX_TEXT_FINDINGS = 20
"""Findings kept per call pattern and unit searched as text (the report shows eight)."""

# MFCC arrays (grader/checks/mfcc.py)

MAX_ARRAY_BYTES = 64 * 2**20
"""Largest array read back from a run (an MFCC of a probe clip takes a few kB)."""

# Claimed figures (grader/checks/claims.py)

MAX_CLAIM_FIGURES = 20
"""Figures kept per metric and file (a list counts each of its figures)."""
MAX_CLAIM_TEXT_BYTES = 200_000
"""Bytes of a text file searched for figures (a report is a few pages)."""

# A notebook's package installs (grader/notebook.py)

MAX_INSTALL_PACKAGES = 50
MAX_INSTALL_COMMAND_CHARS = 4000
"""Characters of a command read for packages (shlex takes about 1 s a megabyte; a command is a line)."""

# Weight files read on the host (grader/weights.py)

MAX_WEIGHTS_ZIP_ENTRIES = 20_000
"""Entries a checkpoint's zip may list (a large model's torch zip has one per tensor, a few hundred)."""
MAX_SAFETENSORS_HEADER = 10_000_000
"""Bytes of a safetensors JSON header (its own format caps it at 100 MB; a model's is some kB)."""
MAX_NPY_HEADER = 65_536

# Code fingerprints for similar submissions (grader/similarity/code.py)

MAX_UNIT_CHARS = 100_000
"""Characters of one file or cell read: some 2,500 lines of code (a longer file is generated, or data).
The worst text (a token a character) takes some 0.3 s at this size."""
MAX_LINE_CHARS = 1_000
"""Characters of a line read (after its indentation): a line of code has some 80. Python 3.12's
tokenizer takes time quadratic in a line's length (a 100,000-character line takes 2 s)."""
MAX_SUBMISSION_CHARS = 1_000_000
"""Characters read from one submission's units together, in their order; a submission's code is some 100 kB."""
MAX_UNITS = 2_000
"""Units read from one submission (a notebook has tens of cells); empty units count."""
MAX_UNIT_TOKENS = 20_000
"""Normalised tokens kept per unit: real code has some 20 per 100 characters, so this bounds only hostile text."""
MAX_RESUMES = 200
"""Times the tokenizer may resume after an error in one unit; the rest of a unit that has more is dropped."""
MAX_LABEL_CHARS = 300
"""Characters of a unit's label kept (a label holds a file name the student chose)."""

# Checkpoint fingerprints (grader/similarity/weights.py; weights_inside.py, which runs in the sandbox with
# numpy alone, keeps its own)

MAX_PICKLE_BYTES = 10 * 10**6
"""Bytes of a ``data.pkl`` read (a state dict's is some 100 bytes a tensor: 100,000 tensors)."""
MAX_PICKLE_OPS = 500_000
"""Opcodes of a ``data.pkl`` walked at most: some 20 a tensor of a state dict, 60 with its Adam state (20,000 and
8,000 tensors); walking them all takes some 0.4 s."""
MAX_PICKLE_STACK = 100_000
"""Items (and marks) the symbolic stack may hold (a state dict's nests some 5 deep: 20 items)."""
MAX_PICKLE_MEMO = 1_000_000
"""Entries the symbolic memo may hold (some 8 a tensor)."""

MAX_SKETCH_JSON_BYTES = 64 * 10**6
"""Bytes of sketches read back from the sandbox: :data:`grader.similarity.weights_inside.MAX_SKETCHES` of some 6 kB each, and their names."""
MAX_CHECKPOINT_FILES = 1000
"""Files one fingerprint (read back from the sandbox) may list; a submission hands in a few."""
