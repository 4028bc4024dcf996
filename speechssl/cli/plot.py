"""`speechssl plot RUN_DIR`: PNG training curves from a run's log.jsonl."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by speechssl pretrain/finetune")
    parser.add_argument("--out", default=None, help="output directory (default RUN_DIR/plots)")


def run(args: argparse.Namespace) -> int:
    from speechssl.training.plots import plot_run

    try:
        paths = plot_run(args.run_dir, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"speechssl plot: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0
