#!/usr/bin/env python3
"""Concatenate prepared splits into one, optionally writing which part each utterance came from.

    concat_splits.py OUT_DIR NAME DIR:SPLIT [DIR:SPLIT ...]
    concat_splits.py data/lab test "data/lab:test_seen=seen voices" "data/synthetic:test=held-out voices"

Labels are kept when every part has them. A part written DIR:SPLIT=GROUP tags its utterances with GROUP in
OUT_DIR/NAME.groups (utterance-id<TAB>group), which wer_table.py --groups turns into per-group WERs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechssl.data.manifest import read_manifest
from speechssl.recipes.subsets import concat_splits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("parts", nargs="+", help="DIR:SPLIT or DIR:SPLIT=GROUP")
    args = parser.parse_args(argv)

    parts, tags = [], []
    for spec in args.parts:
        location, _, group = spec.partition("=")
        directory, sep, split = location.rpartition(":")
        if not sep or not directory or not split:
            parser.error(f"expected DIR:SPLIT or DIR:SPLIT=GROUP, got {spec!r}")
        parts.append((directory, split))
        tags.append(group or None)
    info = concat_splits(parts, args.out_dir, args.name)
    print(f"{info.name}: {info.utterances} utterances, {info.minutes:.1f} min")
    if any(tags):
        merged = read_manifest(args.out_dir / f"{args.name}.tsv")
        lines, start = [], 0
        for (directory, split), group in zip(parts, tags):
            n = len(read_manifest(Path(directory) / f"{split}.tsv"))
            if group:
                lines += [f"{e.path}\t{group}\n" for e in merged.entries[start:start + n]]
            start += n
        (args.out_dir / f"{args.name}.groups").write_text("".join(lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
