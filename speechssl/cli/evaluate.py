"""`speechssl evaluate CKPT DATA_DIR --subset test`: decode a prepared subset and report WER/CER.

    speechssl evaluate exp/ft/checkpoints/best.pt data/an4 --subset test
    speechssl evaluate CKPT DATA_DIR --subset dev --decoder kenlm --lm lm/3gram.arpa --grid
    speechssl evaluate CKPT DATA_DIR --subset test --decoder kenlm --lm lm/3gram.arpa --lm-weight 2 --word-score -1
    speechssl evaluate CKPT DATA_DIR --subset test --decoder kenlm --lm LM --out exp/decode_3gram \
        --greedy-out exp/decode_viterbi     # greedy and LM results from one model pass
    speechssl evaluate CKPT DATA_DIR --subset dev-other,dev-clean,test-clean,test-other --decoder kenlm --lm LM --grid

Writes recogs-, errs-, wer-summary-, utterances- and summary- files for each subset into --out (default: a
``decode`` directory beside the checkpoint) and prints a short table per subset. Several comma-separated
subsets are decoded with one model load. ``--grid`` tunes the LM weight and word score on the (first) subset
(use a dev subset) and decodes every subset with the best setting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_decoder_arguments(parser: argparse.ArgumentParser) -> None:
    """Decoder flags shared by evaluate and transcribe."""
    from speechssl.decoding.beam import BeamSearchConfig

    defaults = BeamSearchConfig()
    group = parser.add_argument_group("decoding")
    group.add_argument("--decoder", choices=("viterbi", "kenlm"), default="viterbi",
                       help="viterbi: greedy CTC (no LM); kenlm: beam search with an n-gram LM (flashlight)")
    group.add_argument("--lm", type=Path, default=None, help="n-gram LM (ARPA or KenLM binary) for --decoder kenlm")
    group.add_argument("--lexicon", type=Path, default=None,
                       help="lexicon file (default: spelled from the LM's words with the model's letters)")
    group.add_argument("--lexicon-free", action="store_true",
                       help="beam search without a lexicon (the LM, if any, must be a char LM: lm build --unit char)")
    group.add_argument("--lm-weight", type=float, default=defaults.lm_weight, help="LM weight (default %(default)s)")
    group.add_argument("--word-score", type=float, default=defaults.word_score,
                       help="score added per word (default %(default)s)")
    group.add_argument("--beam", type=int, default=defaults.beam, help="beam size (default %(default)s)")
    group.add_argument("--beam-threshold", type=float, default=defaults.beam_threshold,
                       help="prune hypotheses this far below the best (default %(default)s)")
    group.add_argument("--beam-size-token", type=int, default=None,
                       help="tokens considered per frame (default: the whole vocabulary)")
    group.add_argument("--vocab", type=Path, default=None,
                       help="vocabulary file overriding the checkpoint's (JSON list, vocab.json or dict.ltr.txt)")


def decoder_config_from_args(args: argparse.Namespace):
    from speechssl.decoding.beam import BeamSearchConfig
    from speechssl.decoding.factory import DecoderConfig

    beam = BeamSearchConfig(beam=args.beam, beam_size_token=args.beam_size_token,
                            beam_threshold=args.beam_threshold, lm_weight=args.lm_weight,
                            word_score=args.word_score, lexicon_free=args.lexicon_free)
    config = DecoderConfig(decoder=args.decoder, lm=args.lm, lexicon=args.lexicon, beam=beam)
    config.validate()
    return config


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                        help="model arithmetic: fp32 (default; the published numbers), bf16 autocast (~1.7x faster "
                             "where the CPU's bf16 matmuls are fast), fp16 (CUDA), auto (bf16 where a bf16 matmul "
                             "measures >= 1.25x fp32 on this CPU, or on a GPU)")


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


def _check_inputs(args: argparse.Namespace) -> None:
    if not args.checkpoint.exists():
        raise FileNotFoundError(f"CKPT: checkpoint not found: {args.checkpoint}")
    if not args.data_dir.is_dir():
        raise FileNotFoundError(f"DATA_DIR: directory not found: {args.data_dir}")
    for subset in _subsets(args.subset):
        manifest = args.data_dir / f"{subset}.tsv"
        if not manifest.is_file():
            raise FileNotFoundError(f"--subset: manifest not found: {manifest}")
        if not any((args.data_dir / f"{subset}.{ext}").is_file() for ext in ("wrd", "ltr")):
            raise FileNotFoundError(f"--subset: no {subset}.wrd or {subset}.ltr in {args.data_dir}")
    if args.vocab is not None and not args.vocab.is_file():
        raise FileNotFoundError(f"--vocab: file not found: {args.vocab}")
    if args.grid and args.decoder != "kenlm":
        raise ValueError("--grid tunes the LM weight and word score: use it with --decoder kenlm")
    if args.greedy_out is not None and args.decoder != "kenlm":
        raise ValueError("--greedy-out adds a greedy report to an LM decoding: use it with --decoder kenlm "
                         "(without an LM, --out is the greedy report)")
    if args.batch_seconds <= 0:
        raise ValueError(f"--batch-seconds must be > 0, got {args.batch_seconds}")


def _run(args: argparse.Namespace) -> int:
    from speechssl.cli.lm import load_vocab
    from speechssl.decoding.factory import build_decoder
    from speechssl.decoding.inference import load_ctc

    _check_inputs(args)
    decoder_config = decoder_config_from_args(args)
    out_dir = args.out or (args.checkpoint if args.checkpoint.is_dir() else args.checkpoint.parent) / "decode"
    device = args.device or default_device()
    tokenizer = load_vocab(args.vocab) if args.vocab is not None else None
    loaded = load_ctc(args.checkpoint, device=device, tokenizer=tokenizer, precision=args.precision)
    args.precision = loaded.emitter.precision  # `auto` resolved, for the reports
    if not args.allow_oov:  # every subset, before any compute
        from speechssl.decoding.evaluate import check_subset_vocabulary

        for subset in _subsets(args.subset):
            check_subset_vocabulary(loaded.tokenizer, args.data_dir, subset)
    decoder = build_decoder(decoder_config, loaded.tokenizer)
    for index, subset in enumerate(_subsets(args.subset)):
        if index:
            print()
        _evaluate_subset(args, subset, loaded, decoder, decoder_config, out_dir, device, grid=args.grid and not index)
    return 0


def _evaluate_subset(args: argparse.Namespace, subset: str, loaded, decoder, decoder_config, out_dir: Path,
                     device: str, *, grid: bool) -> None:
    """Decode one subset and write its reports; with ``grid``, tune the LM weight and word score on it first
    (the best setting then stays in ``decoder_config`` for the subsets that follow)."""
    from speechssl.decoding.evaluate import EvaluateConfig, compute_emissions, evaluate
    from speechssl.decoding.grid import DEFAULT_LM_WEIGHTS, DEFAULT_WORD_SCORES, grid_search

    eval_config = EvaluateConfig(subset=subset, batch_seconds=args.batch_seconds,
                                 normalize=loaded.emitter.normalize, num_workers=args.num_workers,
                                 progress=sys.stderr.isatty(), allow_oov=True)  # checked by _run
    data = compute_emissions(loaded.emitter, args.data_dir, loaded.tokenizer, eval_config)

    if grid:
        result = grid_search(decoder, data.emissions, data.references,  # type: ignore[arg-type]
                             lm_weights=args.grid_lm_weights or DEFAULT_LM_WEIGHTS,
                             word_scores=args.grid_word_scores or DEFAULT_WORD_SCORES)
        out_dir.mkdir(parents=True, exist_ok=True)
        grid_path = out_dir / f"grid-{subset}.tsv"
        grid_path.write_text("lm_weight\tword_score\twer\n" + "".join(
            f"{p.lm_weight:g}\t{p.word_score:g}\t{100 * p.wer:.2f}\n" for p in result.points))
        decoder_config.beam.lm_weight = result.best.lm_weight
        decoder_config.beam.word_score = result.best.word_score
        print(f"grid: {len(result.points)} settings, best lm_weight {result.best.lm_weight:g} "
              f"word_score {result.best.word_score:g} (WER {100 * result.best.wer:.2f} %) -> {grid_path}")

    _report(args, subset, data, evaluate(decoder, data, progress=sys.stderr.isatty()), decoder_config, out_dir,
            device)
    if args.greedy_out is not None:
        from speechssl.decoding.factory import DecoderConfig, build_decoder

        greedy_config = DecoderConfig(decoder="viterbi")
        greedy = build_decoder(greedy_config, loaded.tokenizer)
        print()
        _report(args, subset, data, evaluate(greedy, data, progress=False), greedy_config, args.greedy_out, device)


def _report(args: argparse.Namespace, subset: str, data, evaluation, decoder_config, out_dir: Path,
            device: str) -> None:
    """Write the result files of one decoding of ``subset`` and print its table."""
    from speechssl.decoding.report import format_table, write_report

    s = evaluation.score
    audio = data.audio_seconds
    speed = {
        "audio_seconds": round(audio, 3),
        "model_seconds": round(data.model_seconds, 3),
        "decode_seconds": round(evaluation.decode_seconds, 3),
        "model_x_real_time": round(audio / data.model_seconds, 2) if data.model_seconds > 0 else None,
        "decode_x_real_time": round(audio / evaluation.decode_seconds, 2) if evaluation.decode_seconds > 0 else None,
        "device": str(device),
        "precision": args.precision,
        "checkpoint": str(args.checkpoint),
        "data_dir": str(args.data_dir),
        "dropped_utterances": data.num_dropped,
    }
    files = write_report(s, out_dir, subset=subset, settings=decoder_config.to_dict(), extra=speed,
                         settings_name=decoder_config.describe())
    w = s.words
    rows = [
        ("subset", f"{subset} ({len(s.utterances)} utterances, {audio:.1f} s)"),
        ("decoder", decoder_config.describe()),
        ("WER", (f"{100 * s.wer:.2f} %  [{w.errors} / {w.reference_length}: {w.insertions} ins, "
                 f"{w.deletions} del, {w.substitutions} sub]")),
        ("CER", f"{100 * s.cer:.2f} %"),
        ("speed", (f"model {speed['model_x_real_time']}x real time ({args.precision}), "
                   f"decoder {speed['decode_x_real_time']}x")),
        ("results", str(files.summary.parent)),
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
