"""Lexicon for the lexicon-constrained beam search: word -> letter spelling ending in the delimiter.

The file format is the one flashlight (and fairseq's ``W2lKenLMDecoder``, torchaudio's ``ctc_decoder``)
reads: one word per line, then its tokens separated by spaces, e.g. ``CAT\tC A T |``. The spelling ends
with the word delimiter ``|`` so that the delimiter acts as flashlight's silence token between words;
without it, WER on LibriSpeech rises from about 3 % to about 10 % (the pitfall named in REFERENCE.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from speechssl.decoding.ctc import Tokenizer


@dataclass(kw_only=True)
class Lexicon:
    """Words and their spellings in tokenizer symbols."""

    spellings: dict[str, list[list[str]]]
    """word -> one or more spellings, each a list of token symbols ending in the delimiter."""
    skipped: list[str] = field(default_factory=list)
    """Words left out because a character is not in the tokenizer's vocabulary."""

    def __len__(self) -> int:
        return len(self.spellings)

    @property
    def words(self) -> list[str]:
        return list(self.spellings)

    def save(self, path: str | Path) -> None:
        """Write ``word<TAB>t1 t2 ... |`` lines (one per spelling)."""
        with open(path, "w", encoding="utf-8") as f:
            for word, spellings in self.spellings.items():
                f.writelines(f"{word}\t{' '.join(spelling)}\n" for spelling in spellings)

    @classmethod
    def load(cls, path: str | Path) -> Lexicon:
        """Read a lexicon file; a word listed on several lines gets several spellings."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"lexicon file not found: {path}")
        spellings: dict[str, list[list[str]]] = {}
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise ValueError(f"{path}:{number}: expected 'WORD t1 t2 ...', got {line.strip()!r}")
                spellings.setdefault(parts[0], []).append(parts[1:])
        return cls(spellings=spellings)


def spell(word: str, tokenizer: Tokenizer) -> list[str] | None:
    """Letters of ``word`` as tokenizer symbols plus the delimiter; None when a letter is unknown."""
    known = set(tokenizer.symbols)
    letters = list(word)
    if not letters or any(letter not in known for letter in letters):
        return None
    return letters + [tokenizer.symbols[tokenizer.word_delimiter_index]]


def lexicon_from_words(words: Iterable[str], tokenizer: Tokenizer) -> Lexicon:
    """Spell every word letter by letter (sorted, de-duplicated); specials like ``<s>`` are ignored."""
    spellings: dict[str, list[list[str]]] = {}
    skipped: list[str] = []
    for word in sorted(set(words)):
        if word.startswith("<") and word.endswith(">"):
            continue
        spelling = spell(word, tokenizer)
        if spelling is None:
            skipped.append(word)
        else:
            spellings[word] = [spelling]
    return Lexicon(spellings=spellings, skipped=skipped)
