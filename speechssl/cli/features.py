"""`speechssl features CKPT DATA_DIR --subset S --layers 0,6,12 --out DIR`: layer-wise representations.

    speechssl features exp/pt/checkpoints/last.pt data/an4 --subset train --layers 0,6,12 --out exp/feats
    speechssl features CKPT DATA_DIR --subset test --layers all --format safetensors --dtype float16

Works with pretraining and CTC checkpoints (the encoder is the same). Layer 0 is the Transformer input, layer
k the output of Transformer layer k. See ``speechssl.decoding.features`` for the file layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="speechssl .pt, Hugging Face dir or fairseq .pt")
    parser.add_argument("data_dir", type=Path, help="directory with <subset>.tsv")
    parser.add_argument("--subset", default="train", help="manifest name (default %(default)s)")
    parser.add_argument("--layers", default=None,
                        help="comma-separated layer indices or 'all' (default: 0, the middle layer and the last: "
                             "0,6,12 for BASE, 0,2,4 for a 4-layer model)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--format", choices=("npy", "safetensors"), default="npy", help="file format")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="on-disk dtype")
    parser.add_argument("--batch-seconds", type=float, default=100.0, help="padded audio seconds per batch")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def default_layers(num_layers: int) -> str:
    """The Transformer input, the middle layer and the last layer."""
    return ",".join(str(k) for k in sorted({0, num_layers // 2, num_layers}))


def _run(args: argparse.Namespace) -> int:
    from speechssl.cli.decoding_args import default_device
    from speechssl.decoding.features import FeatureDumpConfig, dump_features, parse_layers
    from speechssl.interop import load_model

    if not args.checkpoint.exists():
        raise FileNotFoundError(f"CKPT: checkpoint not found: {args.checkpoint}")
    manifest = args.data_dir / f"{args.subset}.tsv"
    if not manifest.is_file():
        raise FileNotFoundError(f"--subset: manifest not found: {manifest}")
    FeatureDumpConfig(layers=(0,), format=args.format, dtype=args.dtype,
                      batch_seconds=args.batch_seconds).validate()  # flags checked before the model loads
    loaded = load_model(str(args.checkpoint))
    encoder = getattr(loaded.model, "encoder", None)
    if encoder is None:
        raise ValueError(f"CKPT: {args.checkpoint}: the model has no `encoder` to take hidden states from")
    num_layers = len(encoder.context.layers)
    config = FeatureDumpConfig(subset=args.subset, layers=parse_layers(args.layers or default_layers(num_layers), num_layers), format=args.format,
                               dtype=args.dtype, batch_seconds=args.batch_seconds,
                               normalize=bool(getattr(loaded.config, "normalize", False)),
                               progress=sys.stderr.isatty())
    dump = dump_features(encoder, args.data_dir, args.out, config, device=args.device or default_device())
    print(f"wrote {len(dump.files)} files to {dump.directory}: {dump.utterances} utterances, {dump.frames} frames, "
          f"layers {','.join(map(str, config.layers))}, dim {dump.dim} ({dump.seconds:.1f} s)")
    return 0


def run(args: argparse.Namespace) -> int:
    from speechssl.data.audio import AudioError

    try:
        return _run(args)
    except (FileNotFoundError, ValueError, AudioError) as exc:
        print(f"speechssl features: {exc}", file=sys.stderr)
        return 2
