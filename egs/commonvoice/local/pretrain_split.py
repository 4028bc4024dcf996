#!/usr/bin/env python3
"""The unlabeled audio of the Common Voice recipe: a table's clips minus those of the evaluation tables.

    pretrain_split.py DATA OUT --from validated --exclude dev test --valid dev

Common Voice's validated.tsv lists every validated clip, dev and test ones included; pretraining on it as it
is would show the model the test audio. This writes OUT/train (the --from split without any clip of the
--exclude splits, transcripts kept: they make the LM text) and OUT/valid (a copy of --valid).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechssl.data.manifest import read_manifest, read_split
from speechssl.recipes.subsets import copy_split, select, write_split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="prepared Common Voice splits (prepare commonvoice)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--from", dest="source", default="validated", help="split to take (default validated)")
    parser.add_argument("--exclude", nargs="*", default=["dev", "test"], help="splits whose clips to leave out")
    parser.add_argument("--valid", default="dev", help="split copied as OUT/valid (default dev)")
    args = parser.parse_args(argv)

    split = read_split(args.data, args.source)
    excluded = {e.path for name in args.exclude for e in read_manifest(args.data / f"{name}.tsv").entries}
    keep = [i for i, e in enumerate(split.manifest.entries) if e.path not in excluded]
    train = write_split(args.out, "train", select(split, keep))
    valid = copy_split(args.data, args.valid, args.out, "valid")
    print(f"{args.out}: train {train.utterances} utterances ({train.minutes / 60:.2f} h; "
          f"{len(split.manifest) - len(keep)} clips of {', '.join(args.exclude) or 'nothing'} left out), "
          f"valid {valid.utterances} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
