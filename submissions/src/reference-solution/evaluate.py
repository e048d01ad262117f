"""Evaluation: reconstruct test clips from their log-mels, then PESQ (wide-band) and SNR against the originals.

    python evaluate.py --data DATA/test --out report.md [--clips 6]
"""
import argparse
from pathlib import Path

import librosa
import numpy as np
from pesq import pesq

from refsol.generate import vocode
from refsol.preprocess import LogMelParams, logmel

HERE = Path(__file__).resolve().parent
SAMPLE_RATE = 16000


def snr_db(ref, deg):
    """Signal-to-noise ratio of ``deg`` against ``ref`` in dB."""
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - deg) ** 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of test .wav clips")
    parser.add_argument("--out", type=Path, default=Path("report.md"))
    parser.add_argument("--clips", type=int, default=6)
    args = parser.parse_args()
    files = sorted(args.data.glob("*.wav"))
    files = files[:: max(1, len(files) // args.clips)][: args.clips]  # spread over speech and piano
    params = LogMelParams()
    truths = [librosa.load(path, sr=SAMPLE_RATE)[0] for path in files]
    outputs = vocode([logmel(wav, params) for wav in truths], params, "magnitude",
                     checkpoint=HERE / "checkpoints" / "magnitude.pt")
    rows = []
    for path, ref, deg in zip(files, truths, outputs):
        n = min(len(ref), len(deg))
        rows.append((path.name, pesq(SAMPLE_RATE, ref[:n], deg[:n], "wb"), snr_db(ref[:n], deg[:n])))
    lines = ["# Evaluation", "",
             f"The magnitude vocoder reconstructs {len(rows)} test clips from their log-mels; each output is compared",
             "with the original clip.", "",
             "| clip | PESQ (wide-band) | SNR (dB) |", "| --- | --- | --- |"]
    lines += [f"| {name} | {p:.2f} | {s:.1f} |" for name, p, s in rows]
    lines += ["", f"Mean PESQ (wide-band): {np.mean([r[1] for r in rows]):.2f}",
              f"Mean SNR: {np.mean([r[2] for r in rows]):.1f} dB", "",
              "SNR compares waveforms sample by sample, so it stays low for a vocoder, which does not",
              "reproduce the original phase; PESQ compares what a listener hears.", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
