"""Tiny corpora laid out like the real ones, for tests and for smoke runs of the egs/ recipes.

Every word is spoken as a tone (``A`` 400 Hz, ``B`` 900 Hz, ``C`` 1600 Hz; any other word a tone derived from
its spelling) under a Hann envelope, followed by 80 ms of silence, with a little noise: a tiny model learns
to transcribe it in a few hundred updates, and every file is written by soundfile with a fixed seed.

    python -m speechssl.data.dummies librispeech /tmp/ls      # LibriSpeech/ + librispeech_finetuning/
    python -m speechssl.data.dummies commonvoice /tmp/cv/xx   # validated/train/dev/test.tsv + clips/*.mp3
    python -m speechssl.data.dummies folder /tmp/mine         # audio/*.wav + transcripts.tsv

Layouts (as the preparers in :mod:`speechssl.data.prepare` expect them):
- LibriSpeech: ``LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` and one
  ``<speaker>-<chapter>.trans.txt`` per chapter;
- Libri-light limited supervision: ``librispeech_finetuning/1h/{0..5}/{clean,other}/<spk>/<chapter>/`` (six
  10-minute folds) and ``9h/{clean,other}/...``;
- Common Voice: ``clips/*.mp3`` (48 kHz) and ``validated.tsv`` (every clip), ``train.tsv``, ``dev.tsv``,
  ``test.tsv`` with Common Voice's header (``client_id``, ``path``, ``sentence``, ...);
- a folder: ``audio/<speaker>/*.wav`` and ``transcripts.tsv`` (``relative/path<TAB>text``).
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from speechssl.data.audio import SAMPLE_RATE

TONES: dict[str, float] = {"A": 400.0, "B": 900.0, "C": 1600.0}
"""Frequency of each tone word (Hz)."""
COMMONVOICE_HEADER = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent")


def word_frequency(word: str) -> float:
    """The tone of ``word``: its entry in :data:`TONES`, else 300-2300 Hz from a checksum of its spelling."""
    if word in TONES:
        return TONES[word]
    return 300.0 + zlib.crc32(word.encode("utf-8")) % 2000


def tone_utterance(words: Sequence[str], rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``(L,)`` float32: each word a 0.35-0.5 s Hann-shaped tone then 80 ms of silence, plus noise at -40 dB."""
    pieces = []
    for word in words:
        n = int(sample_rate * rng.uniform(0.35, 0.5))
        t = np.arange(n) / sample_rate
        pieces.append(0.5 * np.hanning(n) * np.sin(2 * np.pi * word_frequency(word) * t))
        pieces.append(np.zeros(int(sample_rate * 0.08)))
    audio = np.concatenate(pieces) if pieces else np.zeros(int(sample_rate * 0.1))
    return (audio + 0.01 * rng.standard_normal(audio.shape)).astype(np.float32)


def random_sentence(rng: np.random.Generator, vocabulary: Sequence[str] = tuple(TONES), max_words: int = 3) -> str:
    """1 to ``max_words`` words drawn from ``vocabulary``."""
    return " ".join(str(w) for w in rng.choice(list(vocabulary), size=int(rng.integers(1, max_words + 1))))


def write_audio(path: str | Path, data: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``data`` with soundfile (format from the suffix), creating the parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate)
    return path


# ------------------------------------------------------------------------------------------- LibriSpeech
def librispeech_chapter(directory: str | Path, speaker: str, chapter: str, texts: Sequence[str], *,
                        rng: np.random.Generator | None = None, seconds: float | None = None) -> list[Path]:
    """One chapter folder: ``<speaker>-<chapter>-<k:04d>.flac`` per text and the chapter's ``.trans.txt``.

    Audio is the texts' tone words (``rng``, default seed 0), or with ``seconds`` a constant 0.01 signal of
    exactly that length (for tests that check lengths).
    """
    directory = Path(directory)
    rng = rng if rng is not None else np.random.default_rng(0)
    lines, paths = [], []
    for k, text in enumerate(texts):
        uid = f"{speaker}-{chapter}-{k:04d}"
        audio = (np.full(int(SAMPLE_RATE * seconds), 0.01, np.float32) if seconds is not None
                 else tone_utterance(text.split(), rng))
        paths.append(write_audio(directory / f"{uid}.flac", audio))
        lines.append(f"{uid} {text}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def librispeech_tree(root: str | Path, subsets: Mapping[str, int], *, speakers: int = 2, seed: int = 0) -> Path:
    """``root/LibriSpeech/<subset>/...`` with ``subsets[name]`` utterances per subset over ``speakers``
    speakers (one chapter each); returns ``root``. Speaker ids differ between subsets, as in LibriSpeech."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for s, (subset, count) in enumerate(subsets.items()):
        for k in range(speakers):
            n = count // speakers + (1 if k < count % speakers else 0)
            if n:
                speaker, chapter = str(100 * (s + 1) + k), str(1000 + s)
                librispeech_chapter(root / "LibriSpeech" / subset / speaker / chapter, speaker, chapter,
                                    [random_sentence(rng) for _ in range(n)], rng=rng)
    return root


def librilight_tree(root: str | Path, *, per_fold: int = 1, nine_hours: int = 2, seed: int = 0) -> Path:
    """``root/librispeech_finetuning/``: six folds of ``1h/`` with ``per_fold`` utterances in each of clean
    and other, and ``nine_hours`` utterances in each of ``9h/clean`` and ``9h/other``; returns ``root``."""
    base = Path(root) / "librispeech_finetuning"
    rng = np.random.default_rng(seed)
    for fold in range(6):
        for kind in ("clean", "other"):
            speaker = f"{700 + 10 * fold + (kind == 'other')}"
            librispeech_chapter(base / f"1h/{fold}/{kind}/{speaker}/5", speaker, "5",
                                [random_sentence(rng) for _ in range(per_fold)], rng=rng)
    for kind in ("clean", "other"):
        speaker = "800" if kind == "clean" else "801"
        librispeech_chapter(base / f"9h/{kind}/{speaker}/7", speaker, "7",
                            [random_sentence(rng) for _ in range(nine_hours)], rng=rng)
    return Path(root)


# ------------------------------------------------------------------------------------------- Common Voice
def commonvoice_table(path: str | Path, rows: Sequence[Sequence[str]]) -> Path:
    """A Common Voice TSV: the header, then ``(client_id, path, sentence)`` rows (other columns filled)."""
    lines = ["\t".join(COMMONVOICE_HEADER)]
    for client, clip, sentence in rows:
        lines.append(f"{client}\t{clip}\t{sentence}\t2\t0\t\t\t")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def commonvoice_tree(root: str | Path, tables: Mapping[str, int], *, extra_validated: int = 0,
                     vocabulary: Sequence[str] = tuple(TONES), speakers: int = 4, seed: int = 0) -> Path:
    """A Common Voice language folder at ``root``: ``tables[name]`` clips per table (speakers disjoint between
    tables, as in Common Voice), ``extra_validated`` more clips only in ``validated.tsv`` (which lists every
    clip), mp3 at 48 kHz. ``vocabulary`` holds the words, e.g. ``("A", "B", "É")`` for non-English letters."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    validated: list[tuple[str, str, str]] = []
    groups = {**tables, "validated": extra_validated}
    for t, (table, count) in enumerate(groups.items()):
        rows = []
        for i in range(count):
            client = f"{table}-speaker{i % speakers}"
            clip = f"common_voice_xx_{t}{i:04d}.mp3"
            sentence = random_sentence(rng, vocabulary).capitalize() + "."
            audio = tone_utterance(sentence.rstrip(".").upper().split(), rng, sample_rate=48_000)
            write_audio(root / "clips" / clip, audio, 48_000)
            rows.append((client, clip, sentence))
        if table != "validated":
            commonvoice_table(root / f"{table}.tsv", rows)
        validated += rows
    commonvoice_table(root / "validated.tsv", validated)
    return root


# ------------------------------------------------------------------------------------------- folder
def folder_tree(root: str | Path, utterances: int = 24, *, speakers: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """``root/audio/speaker<k>/utt<i>.wav`` (16 kHz PCM) and ``root/transcripts.tsv``; returns both paths."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(utterances):
        rel = f"speaker{i % speakers}/utt{i:03d}.wav"
        text = random_sentence(rng)
        write_audio(root / "audio" / rel, tone_utterance(text.split(), rng))
        lines.append(f"{rel}\t{text}")
    transcripts = root / "transcripts.tsv"
    transcripts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "audio", transcripts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speechssl.data.dummies",
                                     description="Write a tiny tone corpus laid out like a real one.")
    parser.add_argument("layout", choices=("librispeech", "commonvoice", "folder"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.layout == "librispeech":
        librispeech_tree(args.out, {"train-clean-100": 24, "dev-clean": 6, "dev-other": 6, "test-clean": 6,
                                    "test-other": 6}, seed=args.seed)
        librilight_tree(args.out, per_fold=2, nine_hours=6, seed=args.seed)
        print(f"wrote {args.out}/LibriSpeech and {args.out}/librispeech_finetuning")
    elif args.layout == "commonvoice":
        commonvoice_tree(args.out, {"train": 24, "dev": 6, "test": 6}, extra_validated=12, seed=args.seed)
        print(f"wrote {args.out}/clips and {args.out}/{{validated,train,dev,test}}.tsv")
    else:
        audio, transcripts = folder_tree(args.out, seed=args.seed)
        print(f"wrote {audio} and {transcripts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
