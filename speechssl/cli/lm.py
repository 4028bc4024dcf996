"""`speechssl lm build|lexicon`: n-gram language models (ARPA) and lexicons for the beam search.

    speechssl lm build TEXT [TEXT ...] OUT.arpa --order 3 [--unit word|char] [--lexicon FILE] [--vocab FILE]
    speechssl lm lexicon WORDS OUT [--vocab FILE]

TEXT: transcripts, one utterance per line (``.wrd`` or plain text; ``.ltr`` files are read back as words).
The lexicon spells every LM word with the tokenizer's letters plus ``|``; ``--vocab`` names the model's
vocabulary (a tokenizer JSON list, a Hugging Face vocab.json, or a fairseq dict.ltr.txt); default: the
built-in English letters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lm_command", metavar="{build,lexicon}", required=True)
    build = sub.add_parser("build", help="estimate an ARPA n-gram (Kneser-Ney back-off) from transcripts")
    build.add_argument("text", nargs="+", type=Path, help="transcript files, one utterance per line")
    build.add_argument("out", type=Path, help="output ARPA file")
    build.add_argument("--order", type=int, default=3, help="n-gram order, 1-5 (default 3)")
    build.add_argument("--unit", choices=("word", "char"), default="word",
                       help="word LM for the lexicon decoder, or char LM for lexicon-free decoding")
    build.add_argument("--lexicon", type=Path, default=None,
                       help="lexicon to write (word LMs; default OUT with suffix .lexicon.txt)")
    build.add_argument("--vocab", type=Path, default=None, help="the model's vocabulary, to spell the lexicon")
    build.add_argument("--no-normalize", action="store_true",
                       help="take words as they are (default: upper-case, punctuation dropped, as .wrd labels)")
    lex = sub.add_parser("lexicon", help="write a lexicon from an ARPA LM's words or a text file")
    lex.add_argument("words", type=Path, help="an ARPA file, or text whose words to spell")
    lex.add_argument("out", type=Path, help="output lexicon file")
    lex.add_argument("--vocab", type=Path, default=None, help="the model's vocabulary")


def _tokenizer(path: Path | None):
    """``--vocab``'s tokenizer, or the built-in English letters without it."""
    from speechssl.data.tokenizer import LetterTokenizer

    if path is None:
        return LetterTokenizer.default_english()
    if not path.is_file():
        raise FileNotFoundError(f"--vocab: file not found: {path}")
    return LetterTokenizer.from_file(path)


def _build(args: argparse.Namespace) -> int:
    from itertools import chain

    from speechssl.decoding.lexicon import lexicon_from_words
    from speechssl.decoding.lm import LMBuildConfig, build_arpa, read_transcripts

    for path in args.text:
        if not path.is_file():
            raise FileNotFoundError(f"TEXT: transcript file not found: {path}")
    config = LMBuildConfig(order=args.order, unit=args.unit, normalize=not args.no_normalize)
    config.validate()
    tokenizer = _tokenizer(args.vocab)
    sentences = chain.from_iterable(read_transcripts(p) for p in args.text)
    result = build_arpa(sentences, args.out, config, show_progress=sys.stderr.isatty())
    counts = ", ".join(f"{n + 1}-grams {c}" for n, c in enumerate(result.ngram_counts))
    print(f"wrote {result.path}: {result.sentences} sentences, {len(result.vocabulary)} {args.unit}s, {counts}")
    if args.unit == "word":
        lexicon_path = args.lexicon or args.out.with_suffix(".lexicon.txt")
        lexicon = lexicon_from_words(result.vocabulary, tokenizer)
        lexicon.save(lexicon_path)
        print(f"wrote {lexicon_path}: {len(lexicon)} words"
              + (f" ({len(lexicon.skipped)} skipped: letters outside the vocabulary)" if lexicon.skipped else ""))
    else:
        unknown = sorted(set(result.vocabulary) - set(tokenizer.symbols))
        if unknown:
            print(f"warning: symbols not in the vocabulary: {' '.join(unknown[:20])}", file=sys.stderr)
    return 0


def _lexicon(args: argparse.Namespace) -> int:
    from speechssl.decoding.lexicon import lexicon_from_words
    from speechssl.decoding.lm import normalize_line, read_arpa_vocabulary, read_transcripts

    if not args.words.is_file():
        raise FileNotFoundError(f"WORDS: file not found: {args.words}")
    tokenizer = _tokenizer(args.vocab)
    with open(args.words, encoding="utf-8-sig") as f:
        is_arpa = f.readline().strip() == "\\data\\" or args.words.suffix == ".arpa"
    if is_arpa:
        words = read_arpa_vocabulary(args.words)
    else:
        words = [w for line in read_transcripts(args.words) for w in normalize_line(line).split()]
    lexicon = lexicon_from_words(words, tokenizer)
    lexicon.save(args.out)
    print(f"wrote {args.out}: {len(lexicon)} words ({len(lexicon.skipped)} skipped)")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _build(args) if args.lm_command == "build" else _lexicon(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"speechssl lm {args.lm_command}: {exc}", file=sys.stderr)
        return 2
