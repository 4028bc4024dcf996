"""``speechssl prepare <corpus> ...``: write fairseq manifests, labels, dict.ltr.txt and report.json.

Corpora: ``folder`` (any audio directory), ``librispeech``, ``librilight``, ``commonvoice``, ``an4`` and
``synthetic`` (espeak-ng speech generated offline). Every one goes through the same writer
(:mod:`speechssl.data.prepare.writer`), which names each skipped file and its reason.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_extensions(text: str) -> tuple[str, ...]:
    """``--extensions "wav,.FLAC"`` -> ``(".wav", ".flac")``. Raises ValueError on an empty list."""
    exts = tuple(dict.fromkeys("." + e.strip().lower().lstrip(".") for e in text.split(",") if e.strip(" .")))
    if not exts:
        raise ValueError(f"--extensions: expected a comma-separated list such as wav,flac, got {text!r}")
    return exts


def _jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="worker processes (default: min(4, CPUs))")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from speechssl.cli.raw_audio import add_raw_format_arguments

    sub = parser.add_subparsers(dest="corpus", metavar="CORPUS", required=True)

    p = sub.add_parser("folder", help="a directory of audio files (recursive: wav, flac, ogg, opus, mp3, aiff)")
    p.add_argument("audio_dir", help="directory scanned recursively")
    p.add_argument("--extensions", default=None,
                   help="comma-separated file extensions to read (default: wav,flac,ogg,opus,mp3,aiff,aif; "
                        "anything libsndfile decodes; with --raw-rate: raw,pcm)")
    add_raw_format_arguments(p, "headerless PCM (every scanned file is decoded once to FLAC under OUT_DIR/audio)")
    p.add_argument("out_dir", help="where train.tsv/valid.tsv (+ labels) go")
    p.add_argument("--transcripts", default=None, help="TSV of 'relative/path<TAB>text' lines")
    p.add_argument("--valid-percent", type=float, default=0.01, help="share held out as valid (default 0.01)")
    p.add_argument("--seed", type=int, default=42, help="seed of the valid split (default 42)")
    _jobs(p)

    p = sub.add_parser("librispeech", help="LibriSpeech subsets")
    p.add_argument("root", help="folder holding LibriSpeech/ (or LibriSpeech itself)")
    p.add_argument("out_dir")
    p.add_argument("--subsets", nargs="+", default=["train-clean-100", "dev-clean", "dev-other", "test-clean",
                                                     "test-other"], help="subset folder names")
    p.add_argument("--no-labels", action="store_true", help="manifests only (pretraining)")
    _jobs(p)

    p = sub.add_parser("librilight", help="Libri-light limited supervision: 10 min / 1 h / 10 h")
    p.add_argument("root", help="folder holding librispeech_finetuning/ (or that folder)")
    p.add_argument("out_dir")
    p.add_argument("--fold", type=int, default=0, help="which 10-minute fold of 1h/ is train_10min")
    _jobs(p)

    p = sub.add_parser("commonvoice", help="a Common Voice language folder (tsv tables + clips/)")
    p.add_argument("root")
    p.add_argument("out_dir")
    p.add_argument("--tables", nargs="+", default=["train", "dev", "test"], help="tables to turn into splits")
    _jobs(p)

    p = sub.add_parser("an4", help="CMU AN4 (raw big-endian layout)")
    p.add_argument("root", help="the an4 folder (etc/, wav/)")
    p.add_argument("out_dir")
    p.add_argument("--valid-percent", type=float, default=0.05, help="share of train held out as valid")
    p.add_argument("--seed", type=int, default=42)
    _jobs(p)

    p = sub.add_parser("synthetic", help="English speech synthesised offline with espeak-ng")
    p.add_argument("out_dir")
    p.add_argument("--hours", type=float, default=1.0, help="hours of audio to generate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid-percent", type=float, default=0.05,
                   help="share of seen-speaker utterances held out as valid")
    p.add_argument("--test-speakers", type=int, default=8, help="speakers held out of train for test")
    p.add_argument("--extra-variants", default="none", metavar="none|all|V1,V2",
                   help="more espeak-ng voice variants, combined with every voice; never held out, so the "
                        "held-out voices stay those of the same seed without them (default: none)")
    p.add_argument("--first-index", type=int, default=0,
                   help="index of the first utterance: a corpus of the same seed starting past another's last "
                        "index shares none of its utterances (default: 0)")
    p.add_argument("--speed", default="1,1", metavar="MIN,MAX",
                   help="speed perturbation range (resampling; tempo and pitch together), e.g. 0.9,1.1 "
                        "(default: 1,1 = none)")
    p.add_argument("--band-limit", type=float, default=0.0, metavar="P",
                   help="share of utterances band-limited to 100-400 Hz .. 2.8-7 kHz (default: 0)")
    _jobs(p)


def parse_variants(text: str) -> tuple[str, ...]:
    """``none`` -> (), ``all`` -> every intelligible extra espeak-ng variant, else a comma-separated list."""
    from speechssl.data.prepare.synthetic import EXTRA_VARIANTS

    text = text.strip()
    if text in ("", "none"):
        return ()
    if text == "all":
        return EXTRA_VARIANTS
    return tuple(v.strip() for v in text.split(",") if v.strip())


def parse_range(text: str, flag: str) -> tuple[float, float]:
    """``"0.9,1.1"`` -> (0.9, 1.1)."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{flag}: expected MIN,MAX such as 0.9,1.1, got {text!r}") from None
    return lo, hi


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        # what the preparers check (paths, tables, settings) is the user's input: one line, no traceback
        print(f"speechssl prepare {args.corpus}: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    progress = not args.quiet
    if args.corpus == "folder":
        from speechssl.cli.raw_audio import raw_format_from_args
        from speechssl.data.prepare.folder import prepare_folder

        raw_format = raw_format_from_args(args)
        extensions = parse_extensions(args.extensions) if args.extensions is not None else None
        prepare_folder(args.audio_dir, args.out_dir, transcripts=args.transcripts,
                       valid_percent=args.valid_percent, seed=args.seed, jobs=args.jobs, progress=progress,
                       extensions=extensions, raw_format=raw_format)
    elif args.corpus == "librispeech":
        from speechssl.data.prepare.librispeech import prepare_librispeech

        prepare_librispeech(args.root, args.out_dir, subsets=args.subsets, labeled=not args.no_labels,
                            jobs=args.jobs, progress=progress)
    elif args.corpus == "librilight":
        from speechssl.data.prepare.librilight import prepare_librilight

        prepare_librilight(args.root, args.out_dir, fold=args.fold, jobs=args.jobs, progress=progress)
    elif args.corpus == "commonvoice":
        from speechssl.data.prepare.commonvoice import prepare_commonvoice

        prepare_commonvoice(args.root, args.out_dir, tables=args.tables, jobs=args.jobs, progress=progress)
    elif args.corpus == "an4":
        from speechssl.data.prepare.an4 import prepare_an4

        prepare_an4(args.root, args.out_dir, valid_percent=args.valid_percent, seed=args.seed, jobs=args.jobs,
                    progress=progress)
    elif args.corpus == "synthetic":
        from speechssl.data.prepare.synthetic import SyntheticConfig, prepare_synthetic

        config = SyntheticConfig(hours=args.hours, seed=args.seed, valid_percent=args.valid_percent,
                                 test_speakers=args.test_speakers, extra_variants=parse_variants(args.extra_variants),
                                 first_index=args.first_index, speed_range=parse_range(args.speed, "--speed"),
                                 band_limit_probability=args.band_limit)
        prepare_synthetic(args.out_dir, config, jobs=args.jobs, progress=progress)
    else:  # argparse restricts the choices
        raise ValueError(f"unknown corpus {args.corpus!r}")
    return 0
