"""n-gram language models in ARPA format, estimated from transcripts.

The estimator is ``kaldingram`` (PyPI; the Next-gen Kaldi team's packaging of Kaldi/icefall's
``make_kn_lm.py``): back-off (not interpolated) Kneser-Ney, equal to SRILM's
``ngram-count -ukndiscount -kn-modify-counts-at-end -gtNmin 0``. We only prepare its input and write its
output; the ARPA files it writes load in flashlight's KenLM (tested). KenLM's own ``lmplz`` is not on PyPI
(the ``kenlm`` wheels only query models).

Two units:
- ``word``: the usual word n-gram for the lexicon beam search (wav2vec 2.0 paper: 4-gram on LibriSpeech).
- ``char``: an n-gram over tokenizer symbols with ``|`` between words, for the lexicon-free beam search.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from speechssl.data.manifest import letters_to_words, normalize_transcript

MAX_ORDER = 5
"""kaldingram's command line accepts orders 1 to 5."""


@dataclass(kw_only=True)
class LMBuildConfig:
    """How to estimate an ARPA n-gram from transcripts."""

    order: int = 3
    """n-gram order (1 to 5)."""
    unit: str = "word"
    """``word`` (for the lexicon decoder) or ``char`` (symbols with ``|`` between words, lexicon-free)."""
    normalize: bool = True
    """Normalise text as ``.wrd`` labels are (``speechssl.data.manifest.normalize_transcript``: upper-case,
    punctuation dropped) so LM words match decoded words; False takes the words as they are."""

    def validate(self) -> None:
        if not 1 <= self.order <= MAX_ORDER:
            raise ValueError(f"`order` must be in [1, {MAX_ORDER}], got {self.order}")
        if self.unit not in ("word", "char"):
            raise ValueError(f"`unit` must be 'word' or 'char', got {self.unit!r}")


@dataclass(kw_only=True)
class LMBuildResult:
    """What ``build_arpa`` wrote."""

    path: Path
    """The ARPA file."""
    sentences: int
    """Non-empty lines counted."""
    vocabulary: list[str]
    """Units seen (words or symbols), sorted, without ``<s>``/``</s>``."""
    ngram_counts: list[int]
    """Number of n-grams of each order, as in the ARPA header."""


def normalize_line(line: str, *, normalize: bool = True) -> str:
    """A transcript line in ``.wrd`` form (or only whitespace-collapsed when ``normalize`` is False)."""
    return normalize_transcript(line) if normalize else " ".join(line.split())


def read_transcripts(path: str | Path) -> Iterator[str]:
    """Lines of a text file; a fairseq ``.ltr`` file (``C A T | S A T |``) is turned back into words."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transcript file not found: {path}")
    is_ltr = path.suffix == ".ltr"
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            yield letters_to_words(line) if is_ltr else line


def to_char_units(sentence: str) -> str:
    """``CAT SAT`` -> ``C A T | S A T``: symbols for a lexicon-free token LM."""
    return " | ".join(" ".join(word) for word in sentence.split())


def build_arpa(sentences: Iterable[str], out: str | Path, config: LMBuildConfig,
               *, show_progress: bool = False) -> LMBuildResult:
    """Estimate a Kneser-Ney back-off n-gram on ``sentences`` and write it as ARPA to ``out``.

    Raises ValueError when there is no text.
    """
    from kaldingram.train import NgramCounts

    config.validate()
    out = Path(out)
    counts = NgramCounts(config.order)
    vocabulary: set[str] = set()
    lines = 0
    for sentence in sentences:
        sentence = normalize_line(sentence, normalize=config.normalize)
        if not sentence:
            continue
        if config.unit == "char":
            sentence = to_char_units(sentence)
        vocabulary.update(sentence.split())
        counts.add_raw_counts_from_line(sentence)
        lines += 1
    if lines == 0:
        raise ValueError("no text to build a language model from (all lines empty)")
    out.parent.mkdir(parents=True, exist_ok=True)
    # kaldingram reports every stage with tqdm on stderr; keep library calls quiet unless asked.
    quiet = contextlib.nullcontext() if show_progress else contextlib.redirect_stderr(io.StringIO())
    with quiet:
        counts.cal_discounting_constants()
        counts.cal_f()
        counts.cal_bow()
        # Written as UTF-8 (kaldingram's own CLI writes latin-1 bytes, which fails on non-latin text).
        with open(out, "w", encoding="utf-8") as f:
            counts.print_as_arpa(fout=f)
    return LMBuildResult(path=out, sentences=lines, vocabulary=sorted(vocabulary),
                         ngram_counts=read_arpa_header(out))


def read_arpa_header(path: str | Path) -> list[int]:
    """Numbers of n-grams per order from an ARPA ``\\data\\`` section."""
    counts: list[int] = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            line = line.strip()
            if line.startswith("ngram "):
                counts.append(int(line.split("=")[1]))
            elif line.startswith("\\1-grams:"):
                break
    if not counts:
        raise ValueError(f"{path}: not an ARPA file (no 'ngram N=' lines in the header)")
    return counts


def read_arpa_vocabulary(path: str | Path) -> list[str]:
    """Words of the 1-gram section of an ARPA file (``<s>``, ``</s>``, ``<unk>`` excluded), in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"language model file not found: {path}")
    words: list[str] = []
    inside = False
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
                continue
            if inside:
                if not line or line.startswith("\\"):
                    break
                word = line.split()[1]
                if word not in ("<s>", "</s>", "<unk>"):
                    words.append(word)
    if not inside:
        raise ValueError(f"{path}: not an ARPA file (no \\1-grams: section); binary KenLM models need "
                         "--lexicon")
    return words
