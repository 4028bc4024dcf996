#!/usr/bin/env python3
"""Stage 2 of the LibriSpeech recipe: the pretraining and fine-tuning data directories, in one process.

    make_dirs.py DATA --pretrain-sets train-clean-100 train-clean-360 train-other-500 --valid-set dev-other \
        --decode-sets dev-other dev-clean test-clean test-other --labels 10min 1h 10h 100h

Reads DATA/librispeech (prepare librispeech) and DATA/librilight (prepare librilight); writes
- DATA/pretrain/train.tsv (the pretraining subsets, concatenated) and valid.tsv (--valid-set);
- DATA/finetune/train_<labels> for each label set (10min/1h/10h from Libri-light, 100h = train-clean-100,
  960h = the three training subsets), the decoded sets, and dict.ltr.txt: fairseq's LibriSpeech letter
  dictionary ``| E T A O N I H S R D L U M W C F G Y P B V K ' X J Q Z`` in that order, so every label set
  shares one vocabulary and a converted fairseq CTC model reads the same ids (counts from the label sets).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from speechssl.data.manifest import letter_counts, read_labels
from speechssl.data.tokenizer import ENGLISH_LETTERS
from speechssl.recipes.subsets import concat_splits

LETTERS = ("|", *ENGLISH_LETTERS)
TRAIN_960 = ("train-clean-100", "train-clean-360", "train-other-500")


def label_parts(data: Path, labels: str) -> list[tuple[Path, str]]:
    """The (directory, split) parts of a label set."""
    if labels in ("10min", "1h", "10h"):
        return [(data / "librilight", f"train_{labels}")]
    if labels == "100h":
        return [(data / "librispeech", "train-clean-100")]
    if labels == "960h":
        return [(data / "librispeech", s) for s in TRAIN_960]
    raise ValueError(f"unknown label set {labels!r} (expected 10min, 1h, 10h, 100h or 960h)")


def write_letter_dict(path: Path, ltr_files: list[Path]) -> None:
    counts: Counter = Counter()
    for ltr in ltr_files:
        found = letter_counts(read_labels(ltr))
        unknown = sorted(set(found) - set(LETTERS))
        if unknown:
            raise ValueError(f"{ltr}: symbols {unknown} are not in the LibriSpeech letter dictionary")
        counts.update(found)
    path.write_text("".join(f"{s} {counts[s]}\n" for s in LETTERS), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--pretrain-sets", nargs="+", required=True)
    parser.add_argument("--valid-set", required=True)
    parser.add_argument("--decode-sets", nargs="+", required=True)
    parser.add_argument("--labels", nargs="+", required=True)
    args = parser.parse_args(argv)

    ls, pretrain, finetune = args.data / "librispeech", args.data / "pretrain", args.data / "finetune"
    written = [concat_splits([(ls, s) for s in args.pretrain_sets], pretrain, "train"),
               concat_splits([(ls, args.valid_set)], pretrain, "valid")]
    print(f"{pretrain}: " + ", ".join(f"{i.name} {i.utterances} utterances ({i.minutes / 60:.2f} h)" for i in written))
    written = [concat_splits([(ls, s)], finetune, s) for s in dict.fromkeys(args.decode_sets)]
    written += [concat_splits(label_parts(args.data, labels), finetune, f"train_{labels}")
                for labels in dict.fromkeys(args.labels)]
    write_letter_dict(finetune / "dict.ltr.txt", [finetune / f"train_{labels}.ltr" for labels in args.labels])
    print(f"{finetune}: " + ", ".join(f"{i.name} {i.utterances} utterances ({i.minutes / 60:.2f} h)"
                                      for i in written) + ", dict.ltr.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
