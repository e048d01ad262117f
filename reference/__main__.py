"""`python -m reference COMMAND ...`: the reference solution's commands.

Each command lives in the module that owns the work; this file only dispatches,
importing the module lazily so that `--help` and light commands start fast.
"""
import importlib
import sys

COMMANDS = {
    "data": ("reference.data", "main", "build the embedded data set, or splits from a folder of real recordings"),
    "features": ("reference.preprocess", "features_main", "MFCC or log-mel features for every audio file in a folder"),
    "warm": ("reference.warm", "warm_main", "warm numba's cache so librosa starts fast"),
    "evaluate": ("reference.evaluation", "main", "score a folder of degraded clips against reference clips"),
    "train": ("reference.train", "main", "train the WaveNet, the VAE or the magnitude vocoder"),
    "train-vocoder": ("reference.train_vocoder", "main",
                      "the reference vocoder's recipe: pack its data here, train it on a GPU machine"),
    "generate": ("reference.generate", "main", "the submission contract's reconstruct and sample entry points"),
}


def usage() -> str:
    lines = ["usage: python -m reference COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, _, help_text) in COMMANDS.items()]
    lines += ["", "`python -m reference COMMAND --help` explains a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[name]
    command = getattr(importlib.import_module(module_name), function_name)
    return command(rest, prog=f"python -m reference {name}")


if __name__ == "__main__":
    sys.exit(main())
