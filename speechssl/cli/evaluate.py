"""`speechssl evaluate CKPT DATA_DIR --subset test`: decode a prepared subset and report WER/CER.

    speechssl evaluate exp/ft/checkpoints/best.pt data/an4 --subset test
    speechssl evaluate CKPT DATA_DIR --subset dev --decoder kenlm --lm lm/3gram.arpa --grid
    speechssl evaluate CKPT DATA_DIR --subset test --decoder kenlm --lm lm/3gram.arpa --lm-weight 2 --word-score -1
    speechssl evaluate CKPT DATA_DIR --subset test --decoder kenlm --lm LM --out exp/decode_3gram \
        --greedy-out exp/decode_viterbi     # greedy and LM results from one model pass
    speechssl evaluate CKPT DATA_DIR --subset dev-other,dev-clean,test-clean,test-other --decoder kenlm --lm LM --grid
    speechssl evaluate ... --grid --grid-beam 500 --beam 1500    # tune at beam 500, decode every subset at 1500

Writes recogs-, errs-, wer-summary-, utterances- and summary- files for each subset into --out (default: a
``decode`` directory beside the checkpoint) and prints a short table per subset. Several comma-separated
subsets are decoded with one model load. ``--grid`` tunes the LM weight and word score on the (first) subset
(use a dev subset) and decodes every subset with the best setting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechssl.cli.decoding_args import (
    add_decoder_arguments,
    add_precision_argument,
    decoder_config_from_args,
)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="CTC model: speechssl .pt, Hugging Face dir or fairseq .pt")
    parser.add_argument("data_dir", type=Path, help="directory with <subset>.tsv and <subset>.wrd/.ltr")
    parser.add_argument("--subset", default="test",
                        help="manifest name, or comma-separated names decoded in turn (default %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results directory (default: 'decode' beside the checkpoint)")
    parser.add_argument("--batch-seconds", type=float, default=200.0,
                        help="padded audio seconds per batch (default %(default)s)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    add_precision_argument(parser)
    parser.add_argument("--num-workers", type=int, default=0, help="audio loading processes (default 0)")
    parser.add_argument("--allow-oov", action="store_true",
                        help="score references holding letters outside the model's vocabulary (each counts as an "
                             "error) instead of stopping with an error naming them")
    parser.add_argument("--grid", action="store_true",
                        help="tune --lm-weight and --word-score on the (first) subset, then decode every subset "
                             "with the best setting (kenlm decoder)")
    parser.add_argument("--grid-lm-weights", type=_floats, default=None,
                        help="comma-separated LM weights to try (default 0,0.5,1,1.5,2,3,4,5)")
    parser.add_argument("--grid-word-scores", type=_floats, default=None,
                        help="comma-separated word scores to try (default -3,-2,-1,0,1,2)")
    parser.add_argument("--grid-beam", type=int, default=None,
                        help="beam size while tuning with --grid (default: --beam); every subset is then decoded at "
                             "--beam (the paper tunes its 4-gram at 500 and decodes at 1500)")
    parser.add_argument("--greedy-out", type=Path, default=None,
                        help="with --decoder kenlm: also decode greedily (viterbi) from the same model pass and "
                             "write those results here (one forward pass for both reports)")
    add_decoder_arguments(parser)


def _subsets(text: str) -> list[str]:
    """``--subset`` value -> subset names (comma-separated, in order, duplicates dropped)."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise ValueError(f"--subset: expected a manifest name or comma-separated names, got {text!r}")
    return names


def config_from_args(args: argparse.Namespace):
    """The library call `speechssl evaluate ARGS` stands for."""
    from speechssl.decoding.evaluate import CheckpointEvaluationConfig
    from speechssl.decoding.grid import DEFAULT_LM_WEIGHTS, DEFAULT_WORD_SCORES

    config = CheckpointEvaluationConfig(
        checkpoint=args.checkpoint, data_dir=args.data_dir, subsets=tuple(_subsets(args.subset)),
        decoder=decoder_config_from_args(args, validate=False), out_dir=args.out, greedy_out=args.greedy_out,
        grid=args.grid, grid_lm_weights=tuple(args.grid_lm_weights or DEFAULT_LM_WEIGHTS),
        grid_word_scores=tuple(args.grid_word_scores or DEFAULT_WORD_SCORES), grid_beam=args.grid_beam,
        batch_seconds=args.batch_seconds, device=args.device, precision=args.precision,
        num_workers=args.num_workers, allow_oov=args.allow_oov, vocab=args.vocab, progress=sys.stderr.isatty())
    config.validate()  # the inputs, then the decoder's files, before the model is loaded
    return config


def _run(args: argparse.Namespace) -> int:
    from speechssl.decoding.evaluate import evaluate_checkpoint

    for index, report in enumerate(evaluate_checkpoint(config_from_args(args))):
        if index:
            print()
        _print_report(report)
    return 0


def _print_report(report) -> None:
    """The grid's line (when it ran) and the table of one subset's decoding."""
    from speechssl.decoding.report import format_table

    if report.grid is not None:
        best = report.grid.best
        print(f"grid at beam {report.grid.beam}: {len(report.grid.points)} settings, best lm_weight "
              f"{best.lm_weight:g} word_score {best.word_score:g} (WER {100 * best.wer:.2f} %) -> {report.grid_file}")
    s = report.evaluation.score
    w = s.words
    speed = report.speed
    rows = [
        ("subset", f"{report.subset} ({len(s.utterances)} utterances, {report.audio_seconds:.1f} s)"),
        ("decoder", report.decoder.describe()),
        ("WER", (f"{100 * s.wer:.2f} %  [{w.errors} / {w.reference_length}: {w.insertions} ins, "
                 f"{w.deletions} del, {w.substitutions} sub]")),
        ("CER", f"{100 * s.cer:.2f} %"),
        ("speed", (f"model {speed['model_x_real_time']}x real time ({speed['precision']}), "
                   f"decoder {speed['decode_x_real_time']}x")),
        ("results", str(report.files.summary.parent)),
    ]
    print(format_table(rows))


def run(args: argparse.Namespace) -> int:
    from speechssl.data.audio import AudioError, audio_error_message

    try:
        return _run(args)
    except (FileNotFoundError, ValueError, AudioError) as exc:
        print(f"speechssl evaluate: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # an AudioError in a --num-workers process comes back as a RuntimeError
        message = audio_error_message(exc)
        if message is None:
            raise
        print(f"speechssl evaluate: {message}", file=sys.stderr)
        return 2
