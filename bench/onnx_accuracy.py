"""ONNX parity and the int8 WER change on a test set: torch fp32, torch bf16, onnxruntime fp32 and int8.

    python bench/onnx_accuracy.py CKPT DATA_DIR --subset test
    python bench/onnx_accuracy.py CKPT DATA_DIR --subset test --lm data/lm/3gram.arpa --lexicon data/lm/lexicon.txt

The checkpoint is exported twice (``speechssl export``, fp32 and ``--quantize int8``) into --out (default a
temporary folder). Every utterance of the subset goes through the four models in the same length-sorted
padded batches (``speechssl.decoding.evaluate.compute_emissions``, as ``speechssl evaluate`` runs it); the
table gives, against torch fp32, the largest |log-probability difference| over all valid frames, the share
of frames with another arg-max, the number of greedy transcripts that differ, and each model's greedy WER and
CER (and with --lm the KenLM beam-search WER).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speechssl.decoding.evaluate import EvaluateConfig, compute_emissions, evaluate
from speechssl.decoding.inference import Emissions, load_ctc
from speechssl.deploy.export import ExportConfig, export_onnx
from speechssl.deploy.runtime import OnnxEmitter


class TorchView:
    """An OnnxEmitter whose emissions come back as tensors (what compute_emissions collects)."""

    def __init__(self, emitter: OnnxEmitter) -> None:
        self.emitter = emitter
        self.geometry = emitter.geometry  # the folder's copy of the model config's

    def __call__(self, waveforms, padding_mask=None) -> Emissions:
        out = self.emitter(np.asarray(waveforms), None if padding_mask is None else np.asarray(padding_mask))
        return Emissions(log_probs=torch.from_numpy(out.log_probs), lengths=torch.from_numpy(out.lengths))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--subset", default="test")
    parser.add_argument("--out", type=Path, default=None, help="where the exports go (default: a temporary folder)")
    parser.add_argument("--lm", type=Path, default=None, help="ARPA LM: also score KenLM beam search")
    parser.add_argument("--lexicon", type=Path, default=None)
    parser.add_argument("--beam", type=int, default=50)
    parser.add_argument("--lm-weight", type=float, default=1.0)
    parser.add_argument("--word-score", type=float, default=0.0)
    parser.add_argument("--batch-seconds", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        exported = {}
        for name, quantize in (("onnx fp32", None), ("onnx int8", "int8")):
            start = time.perf_counter()
            result = export_onnx(args.checkpoint, out / name.replace(" ", "_"), ExportConfig(quantize=quantize))
            exported[name] = result.folder
            print(f"exported {name} in {time.perf_counter() - start:.1f} s; check on noise: max |diff| "
                  f"{result.check.max_abs_diff:.2e}", file=sys.stderr)
        reference = load_ctc(args.checkpoint)
        tokenizer = reference.tokenizer
        models = {
            "torch fp32": reference.emitter,
            "torch bf16": load_ctc(args.checkpoint, precision="bf16").emitter,
            **{name: TorchView(OnnxEmitter(folder, threads=args.threads)) for name, folder in exported.items()},
        }
        config = EvaluateConfig(subset=args.subset, batch_seconds=args.batch_seconds, progress=False,
                                normalize=bool(getattr(reference.config, "normalize", False)))
        emissions = {name: compute_emissions(model, args.data_dir, tokenizer, config)
                     for name, model in models.items()}

    from speechssl.decoding.factory import DecoderConfig, build_decoder

    decoders = {"greedy": build_decoder(DecoderConfig(), tokenizer)}
    if args.lm is not None:
        from speechssl.decoding.beam import BeamSearchConfig

        beam = BeamSearchConfig(beam=args.beam, lm_weight=args.lm_weight, word_score=args.word_score)
        lm_config = DecoderConfig(decoder="kenlm", lm=args.lm, lexicon=args.lexicon, beam=beam)
        decoders["kenlm"] = build_decoder(lm_config, tokenizer)
    results = {(name, d): evaluate(decoder, data) for name, data in emissions.items()
               for d, decoder in decoders.items()}

    base = emissions["torch fp32"]
    print(f"\n{args.checkpoint} on {args.data_dir}/{args.subset}: {len(base.ids)} utterances, "
          f"{base.audio_seconds / 60:.1f} min; {cpu_name()}, torch {torch.__version__}, {args.threads} threads\n")
    header = "| model | max abs diff vs torch fp32 | frames with another arg-max | greedy transcripts differing |"
    header += " greedy WER | greedy CER |" + (" KenLM WER |" if args.lm else "")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, data in emissions.items():
        diffs, other, frames = [], 0, 0
        for ours, theirs in zip(data.emissions, base.emissions):
            diffs.append(float((ours - theirs).abs().max()))
            other += int((ours.argmax(-1) != theirs.argmax(-1)).sum())
            frames += ours.shape[0]
        greedy = results[(name, "greedy")]
        torch_greedy = results[("torch fp32", "greedy")].hypotheses
        differing = sum(a.text != b.text for a, b in zip(greedy.hypotheses, torch_greedy))
        row = (f"| {name} | {max(diffs):.2e} | {other} of {frames} | {differing} of {len(data.ids)} | "
               f"{100 * greedy.score.wer:.2f} | {100 * greedy.score.cer:.2f} |")
        if args.lm:
            row += f" {100 * results[(name, 'kenlm')].score.wer:.2f} |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
