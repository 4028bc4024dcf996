"""Corpora for measuring long-audio transcription (chunked against whole) with a model that fits its audio.

    .venv/bin/python bench/long_audio/make_corpus.py OUT [--hours 2.4] [--seed 11] [--test-seeds 7 8 9]

A model trained on 5-second utterances transcribes a 3-minute recording worse in one pass than in chunks: its
self-attention and the first block's GroupNorm (statistics over the whole input) never saw that much context.
To measure what chunking itself changes, the model must know long inputs and fit its audio well, which a
small CPU-trained model can only do on easy speech. So: one clean espeak-ng voice (en-us, variants m1 and
m3, fixed pitch and rate, no reverberation, 50 dB SNR), and training files of 1-8 consecutive utterances
joined (up to ``--max-seconds``).

Writes:
    OUT/corpus/    the synthetic utterances (train, valid)
    OUT/long/      train = the joined files (.tsv, .wrd, .ltr), valid = corpus/valid, dict.ltr.txt
    OUT/heldout/seed<N>/   test = other sentences by the same voices (one set per ``--test-seeds``), each
                           long enough for a 3-minute concatenation
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from speechssl.data.audio import SAMPLE_RATE
from speechssl.data.manifest import (
    Manifest,
    ManifestEntry,
    labels_for,
    letter_counts,
    read_split,
    words_to_letters,
    write_labels,
    write_letter_dict,
    write_manifest,
)
from speechssl.data.prepare.synthetic import SyntheticConfig, prepare_synthetic


def clean_voice(hours: float, seed: int, valid_percent: float) -> SyntheticConfig:
    """One voice, two variants, no acoustic variety: speech a 1.3 M-parameter model can learn well."""
    return SyntheticConfig(hours=hours, seed=seed, voices=("en-us",), variants=("m1", "m3"), test_speakers=0,
                           valid_percent=valid_percent, rate_range=(160, 160), pitch_range=(54, 54),
                           snr_db=(50.0, 50.0), reverb_probability=0.0, subsets_minutes=())


def join_utterances(corpus: Path, out: Path, max_seconds: float, seed: int) -> tuple[int, float]:
    """corpus/train in manifest order, cut into runs of 1-8 utterances, each run one file -> (files, hours)."""
    split = read_split(corpus, "train", require_labels=True)
    words = labels_for(split)
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    entries: list[ManifestEntry] = []
    transcripts: list[str] = []
    index = 0
    while index < len(split.manifest):
        run = range(index, min(index + rng.randint(1, 8), len(split.manifest)))
        index = run.stop
        pieces = [sf.read(split.manifest.audio_path(i), dtype="float32")[0] for i in run]
        audio = np.concatenate(pieces)
        if len(audio) > max_seconds * SAMPLE_RATE:
            continue  # rare: eight long utterances; dropped rather than cut mid-word
        name = f"joined{len(entries):05d}.flac"
        sf.write(audio_dir / name, audio, SAMPLE_RATE)
        entries.append(ManifestEntry(path=name, num_samples=len(audio)))
        transcripts.append(" ".join(words[i] for i in run))
    write_manifest(out / "train.tsv", Manifest(root=audio_dir.resolve(), entries=entries))
    write_labels(out / "train.wrd", transcripts)
    letters = [words_to_letters(t) for t in transcripts]
    write_labels(out / "train.ltr", letters)
    write_letter_dict(out / "dict.ltr.txt", letter_counts(letters))
    for suffix in ("tsv", "wrd", "ltr"):
        shutil.copy(corpus / f"valid.{suffix}", out / f"valid.{suffix}")
    return len(entries), sum(e.num_samples for e in entries) / SAMPLE_RATE / 3600


def make_heldout(out: Path, hours: float, seed: int, jobs: int, training: Path) -> int:
    """Other sentences by the same voices as ``out/test.*`` -> how many of them are also training sentences."""
    prepare_synthetic(out, clean_voice(hours, seed, 0.0), jobs=jobs, progress=False)
    for suffix in ("tsv", "wrd", "ltr"):  # everything landed in train (no valid share): it is the test set
        (out / f"train.{suffix}").replace(out / f"test.{suffix}")
    train = set(training.read_text().splitlines())
    return sum(line in train for line in (out / "test.wrd").read_text().splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--hours", type=float, default=2.4, help="training speech to synthesise")
    parser.add_argument("--seed", type=int, default=11, help="seed of the training corpus")
    parser.add_argument("--test-seeds", type=int, nargs="+", default=[7, 8, 9],
                        help="one held-out set per seed (OUT/heldout/seed<N>)")
    parser.add_argument("--test-hours", type=float, default=0.1, help="held-out speech per set (>= the concatenation)")
    parser.add_argument("--max-seconds", type=float, default=40.0, help="longest joined training file")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    # Each part is skipped when it exists, so held-out sets can be added to a finished run.
    if not (args.out / "corpus" / "train.tsv").exists():
        prepare_synthetic(args.out / "corpus", clean_voice(args.hours, args.seed, 0.02), jobs=args.jobs,
                          progress=False)
    if not (args.out / "long" / "train.tsv").exists():
        files, hours = join_utterances(args.out / "corpus", args.out / "long", args.max_seconds, args.seed)
        print(f"joined into {files} training files, {hours:.2f} h")
    for seed in args.test_seeds:
        heldout = args.out / "heldout" / f"seed{seed}"
        if not (heldout / "test.tsv").exists():
            shared = make_heldout(heldout, args.test_hours, seed, args.jobs, args.out / "corpus" / "train.wrd")
            print(f"held-out set seed {seed}: {shared} of its sentences also in training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
