"""`speechssl label-efficiency DATA_DIR --minutes 1,5,10,60 --pretrained CKPT`: WER against labeled minutes.

    speechssl label-efficiency data/mine --minutes 1,5,10,60 --pretrained exp/pt/checkpoints/checkpoint_best.pt \\
        --out exp/label_efficiency --finetune-overrides "trainer.max_updates=3000 optim.lr=1e-4"
    speechssl label-efficiency data/an4 --minutes 10,30 --pretrained CKPT --override +experiment=finetune_10m \\
        --override trainer.max_updates=2000 --pretrained-override freeze_finetune_updates=500
    speechssl label-efficiency DATA --minutes 5 --pretrained CKPT --evaluate-args="--decoder kenlm --lm lm.arpa"

For each budget a seeded subset of the training split is drawn (nested: the 1-minute set lies inside the
5-minute one), fine-tuned with `speechssl finetune` from the pretrained checkpoint and from random weights of
the same architecture, with the same overrides and number of updates, and scored on the test split with
`speechssl evaluate`. Writes OUT/results.md, OUT/results.json and OUT/wer_vs_minutes.png (WER against labeled
minutes, log axis, one line per initialisation); each run's files are in OUT/runs/<budget>-<init>/ (its
finetune.log and evaluate.log, checkpoints/, decode/ with the recogs-, errs- and wer-summary- files).

Finished steps are skipped on a re-run (their .finetune.done / .evaluate.done markers), so an interrupted
experiment continues where it stopped, and new budgets can be added to an existing OUT. Scratch runs add
freeze_finetune_updates=0 (a random encoder is not worth keeping frozen) before --scratch-override.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split("\n\n", 1)[1]
    parser.add_argument("data_dir", type=Path,
                        help="prepared corpus: train.tsv/.ltr, valid and test splits, dict.ltr.txt")
    parser.add_argument("--minutes", required=True,
                        help="comma-separated label budgets in minutes of audio, e.g. 1,5,10,60")
    parser.add_argument("--pretrained", type=Path, default=None,
                        help="pretrained checkpoint (speechssl .pt, Hugging Face dir, fairseq .pt); "
                             "without it only scratch runs (architecture from model=...)")
    parser.add_argument("--out", type=Path, default=Path("exp/label_efficiency"),
                        help="output directory (default %(default)s)")
    parser.add_argument("--no-scratch", action="store_true", help="only the pretrained runs")
    parser.add_argument("--train-subset", default="train", help="split the budgets are drawn from (default train)")
    parser.add_argument("--valid-subset", default="valid",
                        help="split validated on while fine-tuning; '' for none (default valid)")
    parser.add_argument("--test-subset", default="test", help="split every model is scored on (default test)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the subsets and scratch weights (default 1)")
    parser.add_argument("--finetune-overrides", default="",
                        help="Hydra overrides for every fine-tuning, one string: \"trainer.max_updates=300 optim.lr=1e-4\"")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="one Hydra override for every fine-tuning (repeatable)")
    parser.add_argument("--pretrained-override", action="append", default=[], metavar="KEY=VALUE",
                        help="override for the pretrained runs only (repeatable)")
    parser.add_argument("--scratch-override", action="append", default=[], metavar="KEY=VALUE",
                        help="override for the scratch runs only (repeatable)")
    parser.add_argument("--evaluate-args", default="",
                        help="extra `speechssl evaluate` flags, one string: --evaluate-args=\"--decoder kenlm --lm lm.arpa\"")
    parser.add_argument("--in-process", action="store_true",
                        help="run the steps inside this process instead of one subprocess each (faster for "
                             "tiny models; a subprocess frees its GPU memory when it ends)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="checkpoint to evaluate: best validation WER, or the last (default best)")


def run(args: argparse.Namespace) -> int:
    from speechssl.cli.main import main
    from speechssl.recipes.label_efficiency import LabelEfficiencyConfig, parse_minutes, run_label_efficiency

    try:
        cfg = LabelEfficiencyConfig(
            data_dir=args.data_dir, out_dir=args.out, minutes=parse_minutes(args.minutes),
            pretrained=args.pretrained, scratch=not args.no_scratch, train_subset=args.train_subset,
            valid_subset=args.valid_subset or None, test_subset=args.test_subset, seed=args.seed,
            finetune_overrides=(*shlex.split(args.finetune_overrides), *args.override),
            pretrained_overrides=tuple(args.pretrained_override), scratch_overrides=tuple(args.scratch_override),
            evaluate_args=tuple(shlex.split(args.evaluate_args)), checkpoint=args.checkpoint,
            in_process=main if args.in_process else None)
        result = run_label_efficiency(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"speechssl label-efficiency: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"speechssl label-efficiency: {exc}", file=sys.stderr)
        return 1
    print(result.markdown.read_text(encoding="utf-8") if result.markdown else "")
    return 0
