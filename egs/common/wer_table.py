#!/usr/bin/env python3
"""Print and save the WER table of a recipe from the decoding directories of its models.

    wer_table.py --subset test --groups test=data/lab/test.groups --out exp/results \
        --row "10 min" pretrained exp/finetune/10min_pretrained/decode \
        --row "10 min" scratch    exp/finetune/10min_scratch/decode

One row per model (labels, init), a WER and a CER column per subset, a WER column per group of a subset
(utterance-id<TAB>group files), then pretrained vs scratch per label budget: the relative WER reduction.
Several rows with the same (labels, init) are runs of one setting (fine-tuning seeds): the tables use their
mean, shown as "mean ± standard deviation" (sample, n - 1), and a third table lists each run.
Writes OUT.md (both tables) and OUT.json (every number).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from speechssl.recipes.results import group_scores, markdown_table, read_groups, read_score, relative_reduction


def mean_over_runs(runs: list[dict], columns: list[str]) -> list[dict]:
    """One record per (labels, init), in first-seen order: the mean of every column over the runs that share
    it (fine-tuning seeds), their count in "runs", their decoding directories in "decode_dirs" and, with several
    runs, each column's sample standard deviation in "<column> sd"."""
    grouped: dict[tuple, list[dict]] = {}
    for run in runs:
        grouped.setdefault((run["labels"], run["init"]), []).append(run)
    records = []
    for (labels, init), group in grouped.items():
        record: dict[str, object] = {"labels": labels, "init": init, "runs": len(group),
                                     "decode_dirs": [r["decode_dir"] for r in group]}
        for c in columns:
            values = [float(r[c]) for r in group if r.get(c) is not None]
            if values:
                record[c] = round(sum(values) / len(values), 2) if len(values) > 1 else values[0]
                if len(values) > 1:
                    record[f"{c} sd"] = round(statistics.stdev(values), 2)
        records.append(record)
    return records


def with_spread(record: dict, column: str) -> object:
    """The table's cell: the mean and, over several runs, its spread ("61.16 ± 1.20")."""
    mean, sd = record.get(column), record.get(f"{column} sd")
    return mean if mean is None or sd is None else f"{mean:.2f} ± {sd:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--row", nargs=3, action="append", required=True, metavar=("LABELS", "INIT", "DECODE_DIR"),
                        help="one model: its label budget, its initialisation, its `evaluate --out` directory")
    parser.add_argument("--subset", action="append", required=True, help="evaluated subset (repeatable)")
    parser.add_argument("--groups", action="append", default=[], metavar="SUBSET=FILE",
                        help="utterance-id<TAB>group file splitting a subset (repeatable)")
    parser.add_argument("--title", default="WER (%)", help="heading of the table")
    parser.add_argument("--init-header", default="init",
                        help="heading of the INIT column (default init; e.g. 'decoder' for rows of LMs)")
    parser.add_argument("--out", type=Path, required=True, help="output prefix: OUT.md and OUT.json")
    args = parser.parse_args(argv)

    groups = {}
    for spec in args.groups:
        subset, _, path = spec.partition("=")
        groups[subset] = read_groups(path)
    columns: list[str] = []
    records = []
    for labels, init, decode_dir in args.row:
        record: dict[str, object] = {"labels": labels, "init": init, "decode_dir": decode_dir}
        for subset in args.subset:
            score = read_score(decode_dir, subset)
            record[f"{subset} WER"] = score.wer
            record[f"{subset} CER"] = score.cer
            for group, gscore in group_scores(decode_dir, subset, groups.get(subset, {})).items():
                record[f"{subset} WER ({group})"] = gscore.wer
        columns += [k for k in record if k not in columns and k not in ("labels", "init", "decode_dir")]
        records.append(record)

    runs = records
    records = mean_over_runs(runs, columns)
    repeated = any(r["runs"] > 1 for r in records)
    headers = ["labels", args.init_header, *(["runs"] if repeated else []), *columns]
    table = markdown_table(headers, [[r["labels"], r["init"], *([r["runs"]] if repeated else []),
                                      *(with_spread(r, c) for c in columns)] for r in records])
    comparisons = []
    wer_columns = [c for c in columns if " WER" in c]
    for labels in dict.fromkeys(r["labels"] for r in records):
        by_init = {r["init"]: r for r in records if r["labels"] == labels}
        if "pretrained" in by_init and "scratch" in by_init:
            for c in wer_columns:
                s, p = by_init["scratch"].get(c), by_init["pretrained"].get(c)
                if s is not None and p is not None:
                    gain = relative_reduction(float(s), float(p))
                    comparisons.append({"labels": labels, "measure": c, "scratch": s, "pretrained": p,
                                        "relative_reduction": gain})
    text = f"### {args.title}\n\n{table}\n"
    if repeated:
        text += ("\nRows with several runs (fine-tuning seeds) show their mean ± the sample standard deviation;"
                 " each run:\n\n"
                 + markdown_table(["labels", args.init_header, "run", *columns],
                                  [[r["labels"], r["init"], Path(r["decode_dir"]).parent.name,
                                    *(r.get(c) for c in columns)] for r in runs]) + "\n")
    if comparisons:
        text += "\n### pretrained vs scratch\n\n" + markdown_table(
            ["labels", "measure", "scratch WER", "pretrained WER", "relative reduction"],
            [[c["labels"], c["measure"], c["scratch"], c["pretrained"],
              None if c["relative_reduction"] is None else f"{100 * c['relative_reduction']:.1f} %"]
             for c in comparisons]) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps({"rows": records, "runs": runs, "comparisons": comparisons},
                                                        indent=2)
                                             + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
