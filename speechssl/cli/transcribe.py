"""`speechssl transcribe CKPT AUDIO...`: transcripts with word times for files of any length and format.

    speechssl transcribe exp/ft/checkpoints/best.pt talk.flac
    speechssl transcribe CKPT a.wav b.ogg --chunk-seconds 20 --overlap 2 --format jsonl > words.jsonl
    speechssl transcribe CKPT talk.wav --decoder kenlm --lm lm/3gram.arpa --plot talk.png
    speechssl transcribe --backend onnx model_onnx/ talk.wav      # a `speechssl export` folder: no torch

Audio: anything soundfile reads, at any rate (resampled to 16 kHz), channels averaged; headerless PCM with
``--raw-rate`` (and ``--raw-subtype``, ``--raw-endian``, ``--raw-channels``), e.g. CMU AN4's ``.raw`` files:
``--raw-rate 16000 --raw-endian BIG``. Long files are cut into overlapping chunks whose emissions are merged
frame-exactly before one decode. ``--format text`` prints ``FILE<TAB>TRANSCRIPT`` lines; ``jsonl`` prints one
JSON object per file with ``words`` (word, start, end in seconds).

AUDIO may name folders: every audio file under one (recursively, symlinks followed; with ``--raw-rate`` the
headerless extensions) is transcribed, in path order. A file that cannot be decoded (or is shorter than 25 ms)
and a path that does not exist are skipped with a line on stderr naming them, and the others are transcribed;
the exit status is then 1.

``--backend onnx`` (the default for a folder written by ``speechssl export``) runs the exported graph in
onnxruntime with the same chunking and decoders and never imports torch. Without ``--decoder`` it decodes
as the folder's config.json says (greedy, or the LM exported beside the model); ``--decoder`` and the flags
after it replace those settings.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from speechssl.cli.decoding_args import add_decoder_arguments, add_precision_argument
    from speechssl.cli.raw_audio import add_raw_format_arguments

    parser.add_argument("checkpoint", type=Path,
                        help="CTC model: speechssl .pt, Hugging Face dir, fairseq .pt or a `speechssl export` folder")
    parser.add_argument("audio", type=Path, nargs="+", help="audio files or folders of them")
    parser.add_argument("--chunk-seconds", type=float, default=20.0,
                        help="chunk length for long audio; 0 = whole file at once (default %(default)s)")
    parser.add_argument("--overlap", type=float, default=2.0,
                        help="least overlap between chunks in seconds; chunks are spread evenly, so the spare length "
                             "widens every overlap (default %(default)s)")
    parser.add_argument("--chunk-statistics", choices=("recording", "chunk"), default="recording",
                        help="normalise each chunk's feature-encoder GroupNorm with the whole recording's "
                             "statistics (as the unchunked file is) or with the chunk's own (default %(default)s)")
    parser.add_argument("--format", choices=("text", "jsonl"), default="text", help="output format")
    parser.add_argument("--output", type=Path, default=None, help="write to this file instead of stdout")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG of emissions and aligned characters (one file: this path; several: "
                             "PLOT stem + -<audio stem>.png)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                        help="torch, or onnx (onnxruntime, no torch) for a `speechssl export` folder; auto picks onnx "
                             "for such a folder (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnx backend: onnxruntime threads (default: one per core)")
    add_raw_format_arguments(parser, "headerless audio (every AUDIO file is then read as raw samples)")
    add_precision_argument(parser)
    add_decoder_arguments(parser)
    # No --decoder: viterbi, or for an export folder the decoder its config.json names.
    parser.set_defaults(decoder=None)


def _plot_path(plot: Path, audio: Path, several: bool) -> Path:
    return plot.with_name(f"{plot.stem}-{audio.stem}.png") if several else plot


def _expand_audio_paths(paths: list[Path], extensions: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """(files to transcribe, paths that do not exist): each folder replaced by the audio files under it."""
    from speechssl.data.prepare.probe import scan_audio

    files: list[Path] = []
    missing: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = scan_audio(path, extensions)
            if not found:
                print(f"speechssl transcribe: no audio files ({', '.join(extensions)}) under {path}", file=sys.stderr)
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            missing.append(path)
    return files, missing


def _run(args: argparse.Namespace) -> int:
    from speechssl.cli.decoding_args import decoder_config_from_args
    from speechssl.cli.raw_audio import raw_format_from_args
    from speechssl.data.audio import RAW_EXTENSIONS, AudioError, load_audio
    from speechssl.data.prepare.probe import AUDIO_EXTENSIONS
    from speechssl.data.tokenizer import LetterTokenizer
    from speechssl.decoding.transcribe import ChunkConfig, transcribe
    from speechssl.deploy.bundle import is_bundle

    if not args.checkpoint.exists():
        raise FileNotFoundError(f"CKPT: checkpoint not found: {args.checkpoint}")
    if args.vocab is not None and not args.vocab.is_file():
        raise FileNotFoundError(f"--vocab: file not found: {args.vocab}")
    chunking = ChunkConfig(chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap,
                           recording_statistics=args.chunk_statistics == "recording")
    chunking.validate()
    raw_format = raw_format_from_args(args)
    audio_paths, missing = _expand_audio_paths(args.audio, RAW_EXTENSIONS if raw_format else AUDIO_EXTENSIONS)
    if not audio_paths and not missing:
        raise FileNotFoundError(f"AUDIO: no audio files under {' '.join(map(str, args.audio))}")
    for path in missing:
        print(f"speechssl transcribe: skipped {path}: no such file or folder", file=sys.stderr)
    skipped = len(missing)
    total = len(audio_paths) + len(missing)
    backend = args.backend if args.backend != "auto" else ("onnx" if is_bundle(args.checkpoint) else "torch")
    from_folder = backend == "onnx" and args.decoder is None  # the export folder's decoder settings
    if args.decoder is None:
        args.decoder = "viterbi"
    decoder_config = None if from_folder else decoder_config_from_args(args)
    tokenizer = LetterTokenizer.from_file(args.vocab) if args.vocab is not None else None
    loaded = _load(args, backend, decoder_config, tokenizer)
    decoder = loaded.decoder
    geometry, sample_rate = loaded.geometry, loaded.sample_rate  # the model's (its config, or the folder's)
    chunking.sample_rate = sample_rate
    chunking.validate(geometry)

    with open(args.output, "w", encoding="utf-8") if args.output else contextlib.nullcontext(sys.stdout) as out:
        for path in audio_paths:
            try:
                samples = load_audio(path, chunking.sample_rate, raw_format=raw_format)
            except AudioError as exc:
                hint = ""
                if raw_format is None and path.suffix.lower() in RAW_EXTENSIONS:
                    hint = " (headerless PCM? give its format: --raw-rate HZ --raw-subtype --raw-endian)"
                print(f"speechssl transcribe: skipped {exc}{hint}", file=sys.stderr)
                skipped += 1
                continue
            if len(samples) < geometry.receptive_field:  # not a single frame
                print(f"speechssl transcribe: skipped {path}: shorter than "
                      f"{1000 * geometry.receptive_field / sample_rate:g} ms ({len(samples)} samples at "
                      f"{sample_rate / 1000:g} kHz)", file=sys.stderr)
                skipped += 1
                continue
            waveform = loaded.emitter.prepare(samples)
            result = transcribe(waveform, loaded.emitter, decoder, chunking)
            if args.format == "text":
                out.write(f"{path}\t{result.text}\n")
            else:
                record = {
                    "audio": str(path), "text": result.text, "duration": round(result.duration, 3),
                    "chunks": result.num_chunks,
                    "words": [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
                              for w in result.words],
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            if args.plot is not None:
                from speechssl.decoding.plot import plot_alignment

                target = _plot_path(args.plot, path, len(audio_paths) > 1)
                emissions = result.emissions
                if backend == "onnx":  # plotting reads tensors (needs torch; the transcription did not)
                    import torch

                    emissions = torch.from_numpy(emissions)
                plot_alignment(emissions, result.hypothesis, loaded.tokenizer, target, title=str(path),
                               frame_shift=loaded.decoder.frame_shift)
                print(f"wrote {target}", file=sys.stderr)
    if skipped:
        rest = "none transcribed" if skipped == total else "the others transcribed"
        print(f"speechssl transcribe: {skipped} of {total} file(s) skipped, {rest}", file=sys.stderr)
        return 1
    return 0


def _load(args: argparse.Namespace, backend: str, decoder_config, tokenizer):
    """The model as a ``speechssl.api.Recognizer`` (emitter, decoder, tokenizer, geometry)."""
    from speechssl.api import load

    options = {}
    if decoder_config is not None:
        options = {"decoder": decoder_config.decoder, "lm": decoder_config.lm, "lexicon": decoder_config.lexicon,
                   "beam": dataclasses.asdict(decoder_config.beam)}
    if backend == "onnx":
        if tokenizer is not None:
            raise ValueError("--vocab: an export folder carries its vocabulary in config.json")
        return load(args.checkpoint, backend="onnx", threads=args.threads, **options)
    from speechssl.cli.decoding_args import default_device

    return load(args.checkpoint, backend="torch", device=args.device or default_device(), precision=args.precision,
                tokenizer=tokenizer, **options)


def run(args: argparse.Namespace) -> int:
    from speechssl.data.audio import AudioError

    try:
        return _run(args)
    except (FileNotFoundError, ValueError, AudioError) as exc:
        print(f"speechssl transcribe: {exc}", file=sys.stderr)
        return 2
