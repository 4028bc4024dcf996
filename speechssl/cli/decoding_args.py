"""The decoder and precision flags shared by `speechssl evaluate` and `speechssl transcribe`."""

from __future__ import annotations

import argparse
from pathlib import Path


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


def decoder_config_from_args(args: argparse.Namespace, *, validate: bool = True):
    """The `DecoderConfig` of the decoder flags (validated unless the caller checks other inputs first)."""
    from speechssl.decoding.beam import BeamSearchConfig
    from speechssl.decoding.factory import DecoderConfig

    beam = BeamSearchConfig(beam=args.beam, beam_size_token=args.beam_size_token,
                            beam_threshold=args.beam_threshold, lm_weight=args.lm_weight,
                            word_score=args.word_score, lexicon_free=args.lexicon_free)
    config = DecoderConfig(decoder=args.decoder, lm=args.lm, lexicon=args.lexicon, beam=beam)
    if validate:
        config.validate()
    return config


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                        help="model arithmetic: fp32 (default; the published numbers), bf16 autocast (~1.7x faster "
                             "where the CPU's bf16 matmuls are fast), fp16 (CUDA), auto (bf16 where a bf16 matmul "
                             "measures >= 1.25x fp32 on this CPU, or on a GPU)")


def default_device() -> str:
    """CUDA when present, else the CPU (what `--device` defaults to)."""
    from speechssl.models.precision import resolve_device

    return str(resolve_device("auto"))
