#!/usr/bin/env python3
"""Labelled subsets of a prepared split, written beside it as ordinary splits.

    make_subsets.py DATA_DIR --split train --minutes 10,60            # train_10min, train_1h (nested)
    make_subsets.py DATA_DIR --out LAB_DIR --hold-out test 5 --rest train --minutes 10

--hold-out NAME MINUTES first takes a seeded MINUTES of the split out as NAME (and the remainder as --rest);
the budgets of --minutes are then drawn from the remainder, one seeded order for all budgets so that every
smaller subset lies inside the larger ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechssl.data.manifest import read_split
from speechssl.data.prepare.splits import duration_subset
from speechssl.recipes.subsets import budget_name, copy_dictionaries, hold_out, select, write_split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--split", default="train", help="split to draw from (default train)")
    parser.add_argument("--minutes", default="", help="comma-separated budgets in minutes, e.g. 10,60")
    parser.add_argument("--prefix", default=None, help="subset names are PREFIX_<budget> (default: the split)")
    parser.add_argument("--hold-out", nargs=2, metavar=("NAME", "MINUTES"), default=None,
                        help="first hold MINUTES out of the split as NAME")
    parser.add_argument("--rest", default=None, help="name of what remains after --hold-out (required with it)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write (default DATA_DIR); the dict.*.txt files are copied there")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    split = read_split(args.data_dir, args.split)
    out = args.out or args.data_dir
    if out.resolve() != args.data_dir.resolve():
        copy_dictionaries(args.data_dir, out)
    if args.hold_out:
        if not args.rest:
            parser.error("--hold-out needs --rest NAME for the remaining utterances")
        name, minutes = args.hold_out[0], float(args.hold_out[1])
        rest, held = hold_out(split.manifest, minutes * 60, args.seed)
        for info in (write_split(out, name, select(split, held)),
                     write_split(out, args.rest, select(split, rest))):
            print(f"{info.name}: {info.utterances} utterances, {info.minutes:.1f} min")
        split = select(split, rest)
    prefix = args.prefix or args.rest or args.split
    for text in filter(None, (m.strip() for m in args.minutes.split(","))):
        minutes = float(text)
        indices = duration_subset(split.manifest.sizes, minutes * 60, args.seed)
        info = write_split(out, f"{prefix}_{budget_name(minutes)}", select(split, indices))
        print(f"{info.name}: {info.utterances} utterances, {info.minutes:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
