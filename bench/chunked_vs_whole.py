"""Long-audio transcription: chunked against whole-recording decoding of the same concatenated speech.

    .venv/bin/python bench/chunked_vs_whole.py CKPT DATA_DIR --subset test --minutes 3 --chunk-seconds 20
    .venv/bin/python bench/chunked_vs_whole.py CKPT DATA_DIR --decoder kenlm --lm LM.arpa --lexicon LEX.txt

Utterances of a labelled split are concatenated in manifest order until the recording is ``--minutes`` long
(their transcripts joined the same way are the reference). The recording is transcribed once whole
(``chunk_seconds=0``: the model sees all of it at once) and once in ``--chunk-seconds`` chunks overlapping by
``--overlap``, with the same model and decoder. Printed: the WER and CER of the chunked hypothesis taken
against the whole one (how far chunking moves the output), each hypothesis against the reference, the word
count of each, and whether every word's times are ordered (start <= end <= next start).

The tests (tests/decoding/test_transcribe.py) check the merging on a frame-local model, where chunked and
whole must agree exactly; this script measures a real model, whose Transformer sees 20 s of context in one
case and the whole recording in the other.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from speechssl.data.audio import load_audio
from speechssl.data.manifest import labels_for, read_split
from speechssl.decoding.beam import BeamSearchConfig
from speechssl.decoding.ctc import frame_shift_seconds
from speechssl.decoding.factory import DecoderConfig, build_decoder
from speechssl.decoding.inference import load_ctc
from speechssl.decoding.transcribe import ChunkConfig, Transcript, transcribe
from speechssl.decoding.wer import score


def concatenate(data_dir: Path, subset: str, seconds: float, sample_rate: int) -> tuple[np.ndarray, str, int]:
    """Utterances of ``subset`` in manifest order until ``seconds`` -> (waveform, reference words, count)."""
    split = read_split(data_dir, subset, require_labels=True)
    references = labels_for(split)
    pieces: list[np.ndarray] = []
    words: list[str] = []
    total = 0
    for index in range(len(split.manifest)):
        if total >= seconds * sample_rate:
            break
        audio = load_audio(split.manifest.audio_path(index), sample_rate)
        pieces.append(audio)
        words.append(references[index])
        total += len(audio)
    if total < seconds * sample_rate:
        raise ValueError(f"{data_dir}/{subset}.tsv holds {total / sample_rate:.1f} s of audio, "
                         f"less than --minutes {seconds / 60:g}")
    return np.concatenate(pieces), " ".join(words), len(pieces)


def times_ordered(result: Transcript) -> bool:
    """Every word starts no later than it ends, and no earlier than the previous word ends."""
    previous_end = 0.0
    for word in result.words:
        if not (previous_end <= word.start <= word.end):
            return False
        previous_end = word.end
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="CTC checkpoint")
    parser.add_argument("data_dir", type=Path, help="directory with SUBSET.tsv and SUBSET.wrd (or .ltr)")
    parser.add_argument("--subset", default="test")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the concatenation")
    parser.add_argument("--chunk-seconds", type=float, default=20.0)
    parser.add_argument("--overlap", type=float, default=2.0)
    parser.add_argument("--chunk-statistics", choices=("recording", "chunk"), default="recording",
                        help="as `speechssl transcribe --chunk-statistics`")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32")
    beam = BeamSearchConfig()
    parser.add_argument("--decoder", choices=("viterbi", "kenlm"), default="viterbi")
    parser.add_argument("--lm", type=Path, default=None, help="n-gram LM for --decoder kenlm")
    parser.add_argument("--lexicon", type=Path, default=None, help="lexicon (default: spelled from the LM)")
    parser.add_argument("--lm-weight", type=float, default=beam.lm_weight)
    parser.add_argument("--word-score", type=float, default=beam.word_score)
    parser.add_argument("--beam", type=int, default=beam.beam)
    args = parser.parse_args()

    chunking = ChunkConfig(chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap,
                           recording_statistics=args.chunk_statistics == "recording")
    chunking.validate()
    loaded = load_ctc(args.checkpoint, device=args.device, precision=args.precision)
    decoding = DecoderConfig(decoder=args.decoder, lm=args.lm, lexicon=args.lexicon,
                             beam=BeamSearchConfig(beam=args.beam, lm_weight=args.lm_weight, word_score=args.word_score))
    decoder = build_decoder(decoding, loaded.tokenizer, frame_shift=frame_shift_seconds(loaded.emitter.geometry))
    waveform, reference, count = concatenate(args.data_dir, args.subset, args.minutes * 60, chunking.sample_rate)
    waveform = loaded.emitter.prepare(waveform)
    print(f"{count} utterances of {args.subset}, {len(waveform) / chunking.sample_rate:.1f} s, "
          f"{len(reference.split())} reference words")

    results: dict[str, Transcript] = {}
    seconds: dict[str, float] = {}
    for name, config in (("whole", ChunkConfig(chunk_seconds=0)), ("chunked", chunking)):
        start = time.perf_counter()
        results[name] = transcribe(waveform, loaded.emitter, decoder, config)
        seconds[name] = time.perf_counter() - start

    whole, chunked = results["whole"], results["chunked"]
    between = score(["recording"], [whole.text], [chunked.text])
    against = {name: score(["recording"], [reference], [r.text]) for name, r in results.items()}
    report = {
        "checkpoint": str(args.checkpoint), "utterances": count,
        "seconds": round(len(waveform) / chunking.sample_rate, 2), "reference_words": len(reference.split()),
        "chunk_seconds": args.chunk_seconds, "overlap_seconds": args.overlap, "chunks": chunked.num_chunks,
        "chunk_statistics": args.chunk_statistics,
        "decoder": args.decoder, "precision": loaded.emitter.precision,
        "chunked_vs_whole_wer": round(100 * between.wer, 2), "chunked_vs_whole_cer": round(100 * between.cer, 2),
        **{f"{name}_{key}": value for name, r in results.items() for key, value in (
            ("words", len(r.words)), ("wer", round(100 * against[name].wer, 2)),
            ("cer", round(100 * against[name].cer, 2)), ("times_ordered", times_ordered(r)),
            ("wall_seconds", round(seconds[name], 2)))},
    }
    print(f"chunked ({chunked.num_chunks} chunks of {args.chunk_seconds:g} s, overlap {args.overlap:g} s) "
          f"against whole: WER {report['chunked_vs_whole_wer']:.2f} %, CER {report['chunked_vs_whole_cer']:.2f} %")
    print("| decoding | words | WER vs reference | CER vs reference | word times ordered | wall s |")
    print("|---|---|---|---|---|---|")
    for name in ("whole", "chunked"):
        print(f"| {name} | {report[name + '_words']} | {report[name + '_wer']:.2f} | {report[name + '_cer']:.2f} "
              f"| {report[name + '_times_ordered']} | {report[name + '_wall_seconds']:.1f} |")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
