"""`speechssl export CKPT OUT --format onnx [--quantize int8]`: a folder that transcribes without torch.

    speechssl export exp/ft/checkpoints/checkpoint_best.pt model_onnx --format onnx
    speechssl export CKPT model_int8 --format onnx --quantize int8
    speechssl export CKPT model_lm --format onnx --decoder kenlm --lm lm/3gram.arpa --lexicon lm/lexicon.txt

OUT holds ``model.onnx`` (raw waveform and lengths in; per-frame log-probabilities and output lengths out;
dynamic batch and time axes), ``config.json`` (vocabulary, sample rate, frame geometry, decoder settings)
and, with ``--lm``, the LM and lexicon. Transcribe it with ``speechssl transcribe --backend onnx OUT
AUDIO...`` or ``speechssl.load(OUT)``; both need onnxruntime, numpy and soundfile, not torch.

Before it finishes the command runs the graph in onnxruntime on a padded batch of noise against the torch
model and prints the largest log-probability difference (fp32 must be within 1e-4).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from speechssl.cli.decoding_args import add_decoder_arguments

    parser.add_argument("checkpoint", type=Path, help="CTC model: speechssl .pt, Hugging Face dir or fairseq .pt")
    parser.add_argument("out", type=Path, help="output folder (created; files it writes are replaced)")
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default %(default)s)")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="int8: dynamic quantization of the linear layers (onnxruntime's quantize_dynamic)")
    parser.add_argument("--per-tensor", action="store_true",
                        help="with --quantize int8: one weight scale per tensor instead of per output channel")
    parser.add_argument("--keep-fp32", default="",
                        help="with --quantize int8: linear layers left in fp32, comma-separated: feature_proj, head "
                             "(default: none)")
    parser.add_argument("--no-optimize", action="store_true",
                        help="write the graph as traced: no 2-D convolutions or onnxruntime-only fused operators "
                             "(for ONNX runtimes other than onnxruntime; slower on onnxruntime)")
    parser.add_argument("--features", action="store_true",
                        help="also export features.onnx (every layer's hidden states, for Recognizer.features)")
    parser.add_argument("--dict", dest="dictionary", type=Path, default=None,
                        help="fairseq CTC only: the dict.ltr.txt the model was fine-tuned with")
    add_decoder_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from speechssl.data.tokenizer import LetterTokenizer
    from speechssl.deploy.bundle import DecoderSettings
    from speechssl.deploy.export import FP32_TOLERANCE, ExportConfig, export_onnx
    from speechssl.deploy.quantize import QuantizeConfig

    try:
        decoder = DecoderSettings(
            decoder=args.decoder, lm=str(args.lm) if args.lm else None,
            lexicon=str(args.lexicon) if args.lexicon else None,
            beam={"beam": args.beam, "beam_threshold": args.beam_threshold, "lm_weight": args.lm_weight,
                  "word_score": args.word_score, "lexicon_free": args.lexicon_free,
                  "beam_size_token": args.beam_size_token} if args.decoder == "kenlm" else {},
        )
        config = ExportConfig(
            format=args.format, quantize=args.quantize, features=args.features, decoder=decoder,
            optimize=not args.no_optimize,
            quantization=QuantizeConfig(per_channel=not args.per_tensor,
                                        keep_fp32=[p for p in args.keep_fp32.split(",") if p.strip()]),
        )
        tokenizer = LetterTokenizer.from_file(args.vocab) if args.vocab is not None else None
        result = export_onnx(args.checkpoint, args.out, config, dictionary=args.dictionary, tokenizer=tokenizer)
    except (FileNotFoundError, ValueError) as exc:
        print(f"speechssl export: {exc}", file=sys.stderr)
        return 2
    check, bundle = result.check, result.config
    print(f"exported {args.checkpoint} to {result.folder}/ ({bundle.precision}, opset {bundle.opset}, "
          f"{len(bundle.tokenizer['symbols'])} symbols, decoder {bundle.decoder.decoder})")
    for path in result.files:
        print(f"  {path.name:<14} {path.stat().st_size / 1e6:9.2f} MB")
    if result.optimization is not None:
        fused = ", ".join(f"{count} {op}" for op, count in sorted(result.optimization.fused.items())) or "none"
        print(f"graph rewritten for onnxruntime: {result.optimization.convs_as_2d} convolutions as 2-D; fused: {fused}")
    tolerance = f" (fp32 tolerance {FP32_TOLERANCE:g})" if bundle.precision == "fp32" else ""
    print(f"check against torch on padded noise: max |log-prob diff| {check.max_abs_diff:.2e}{tolerance}, "
          f"same arg-max on {100 * check.same_argmax:.1f} % of frames")
    return 0
