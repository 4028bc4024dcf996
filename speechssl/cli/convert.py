"""`speechssl convert`: import Hugging Face / fairseq checkpoints, export to Hugging Face.

    speechssl convert --from hf      SRC_DIR  OUT.pt
    speechssl convert --from fairseq SRC.pt   OUT.pt  [--dict dict.ltr.txt]
    speechssl convert --to hf        CKPT.pt  OUT_DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    direction = parser.add_mutually_exclusive_group(required=True)
    direction.add_argument("--from", dest="source", choices=["hf", "fairseq"],
                           help="import SRC (a Hugging Face directory or a fairseq .pt) into a speechssl .pt")
    direction.add_argument("--to", dest="target", choices=["hf"],
                           help="export a checkpoint (speechssl, or anything --from reads) to a directory")
    parser.add_argument("src", help="input checkpoint file or directory")
    parser.add_argument("out", help="output .pt (import) or directory (export)")
    parser.add_argument("--dict", dest="dictionary", default=None,
                        help="fairseq CTC only: the dict.ltr.txt the model was fine-tuned with")


def run(args: argparse.Namespace) -> int:
    from speechssl.interop import (
        export_hf_directory,
        load_fairseq_checkpoint,
        load_hf_directory,
        load_model,
        save_speechssl_checkpoint,
    )

    if args.source == "hf":
        loaded = load_hf_directory(args.src)
    elif args.source == "fairseq":
        loaded = load_fairseq_checkpoint(args.src, dictionary=args.dictionary)
    else:
        loaded = load_model(args.src, dictionary=args.dictionary)

    n_params = sum(p.numel() for p in loaded.model.parameters())
    what = f"{loaded.source} {loaded.task} model, {n_params:,} parameters"
    if loaded.task == "ctc" and loaded.tokenizer is None:
        print(f"warning: {args.src}: CTC model without a vocabulary (pass --dict for fairseq checkpoints)")
    if args.target == "hf":
        out = export_hf_directory(loaded.model, args.out, tokenizer=loaded.tokenizer)
        print(f"exported {what} to {out}")
    else:
        out = save_speechssl_checkpoint(Path(args.out), loaded.model, tokenizer=loaded.tokenizer)
        print(f"wrote {what} to {out}")
    return 0
