"""Letter vocabulary for CTC: text <-> ids.

The index of a symbol is its position in ``symbols``. The native layout is the one of the Hugging Face
``facebook/wav2vec2-base-960h`` vocabulary: ``<pad> <s> </s> <unk> |`` then the letters, with the CTC blank
being ``<pad>`` at index 0. fairseq dictionaries put ``<s> <pad> </s> <unk>`` first and use ``<s>`` (index 0,
the dictionary's bos) as the blank; :meth:`LetterTokenizer.from_fairseq_dict` reproduces that layout so that
fairseq checkpoints keep their output rows.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

# fairseq's letter dictionary for LibriSpeech, most frequent first (the order of its dict.ltr.txt); the HF
# base-960h vocabulary lists the letters in the same order after its five specials.
ENGLISH_LETTERS: tuple[str, ...] = tuple("ETAONIHSRDLUMWCFGYPBVK'XJQZ")
NATIVE_SPECIALS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<unk>")
FAIRSEQ_SPECIALS: tuple[str, ...] = ("<s>", "<pad>", "</s>", "<unk>")

# Typographic apostrophes/quotes folded to the ASCII apostrophe before lookup.
_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"}


def is_special(symbol: str) -> bool:
    """A `<...>` symbol (pad, bos, eos, unk): never a letter of a transcript."""
    return len(symbol) > 2 and symbol.startswith("<") and symbol.endswith(">")


def _to_int_list(ids: Iterable[int]) -> list[int]:
    # Accept lists, numpy arrays and torch tensors without importing torch here.
    if hasattr(ids, "tolist"):
        ids = ids.tolist()  # type: ignore[union-attr]
    return [int(i) for i in ids]


class LetterTokenizer:
    """Maps text to letter ids and back.

    Args:
        symbols: the vocabulary; a symbol's id is its position.
        blank: the CTC blank symbol (also the padding symbol of the native layout).
        unk: symbol used for characters outside the vocabulary.
        word_delimiter: symbol standing for the space between words.
        uppercase: upper-case text before lookup (the English vocabularies are upper-case).
    """

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        blank: str = "<pad>",
        unk: str = "<unk>",
        word_delimiter: str = "|",
        uppercase: bool = True,
    ) -> None:
        symbols = [str(s) for s in symbols]
        if len(set(symbols)) != len(symbols):
            dupes = sorted({s for s in symbols if symbols.count(s) > 1})
            raise ValueError(f"`symbols` must be unique, got duplicates {dupes}")
        for name, value in (("blank", blank), ("unk", unk), ("word_delimiter", word_delimiter)):
            if value not in symbols:
                raise ValueError(f"`{name}` must be one of the symbols, got {value!r} (symbols: {symbols[:8]}...)")
        self.symbols: list[str] = symbols
        self.blank = blank
        self.unk = unk
        self.word_delimiter = word_delimiter
        self.uppercase = uppercase
        self._index = {s: i for i, s in enumerate(symbols)}
        self.blank_index: int = self._index[blank]
        self.unk_index: int = self._index[unk]
        self.word_delimiter_index: int = self._index[word_delimiter]
        # Ids dropped by decode(): the blank and every `<...>` special (bos/eos/unk/pad).
        self._dropped = {i for i, s in enumerate(symbols) if s == blank or is_special(s)}

    # ------------------------------------------------------------------ construction
    @classmethod
    def default_english(cls) -> LetterTokenizer:
        """The native English layout: ``<pad> <s> </s> <unk> |`` + 26 letters + apostrophe (32 symbols)."""
        return cls([*NATIVE_SPECIALS, "|", *ENGLISH_LETTERS])

    @classmethod
    def from_fairseq_dict(cls, path: str | Path) -> LetterTokenizer:
        """Read a fairseq ``dict.ltr.txt`` (``SYMBOL COUNT`` lines).

        fairseq's Dictionary prepends ``<s> <pad> </s> <unk>`` (ids 0..3) and CTC uses bos ``<s>`` as blank.
        """
        symbols = list(FAIRSEQ_SPECIALS)
        for line_no, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            symbol = line.split()[0]
            if symbol in symbols:
                raise ValueError(f"{path}:{line_no}: symbol {symbol!r} appears twice")
            symbols.append(symbol)
        return cls(symbols, blank="<s>")

    @classmethod
    def from_hf_vocab(cls, path: str | Path, *, pad_token: str = "<pad>", unk_token: str = "<unk>",
                      word_delimiter: str = "|") -> LetterTokenizer:
        """Read a Hugging Face ``vocab.json`` (symbol -> id); the blank is the pad token as in transformers."""
        vocab = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        if not isinstance(vocab, dict):
            raise ValueError(f"{path}: expected a JSON object symbol -> id, got {type(vocab).__name__}")  # noqa: TRY004
        ordered = sorted(vocab.items(), key=lambda kv: int(kv[1]))
        ids = [int(i) for _, i in ordered]
        if ids != list(range(len(ids))):
            raise ValueError(f"{path}: ids must be 0..{len(ids) - 1} without gaps, got {ids[:10]}...")
        return cls([s for s, _ in ordered], blank=pad_token, unk=unk_token, word_delimiter=word_delimiter)

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> LetterTokenizer:
        """Read a JSON list written by :meth:`save` (keyword arguments go to the constructor)."""
        symbols = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        if not isinstance(symbols, list):
            raise ValueError(f"{path}: expected a JSON list of symbols, got {type(symbols).__name__}")  # noqa: TRY004
        return cls(symbols, **kwargs)

    @classmethod
    def from_file(cls, path: str | Path) -> LetterTokenizer:
        """A model's vocabulary file, told apart by content: a JSON list (:meth:`save`), a Hugging Face
        ``vocab.json`` (an object) or a fairseq ``dict.ltr.txt`` (any other suffix)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        if path.suffix == ".json":
            content = json.loads(path.read_text(encoding="utf-8-sig"))
            return cls.from_hf_vocab(path) if isinstance(content, dict) else cls.load(path)
        return cls.from_fairseq_dict(path)

    def save(self, path: str | Path) -> None:
        """Write the symbols as a JSON list (ids are positions)."""
        Path(path).write_text(json.dumps(self.symbols, ensure_ascii=False) + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ text <-> ids
    def __len__(self) -> int:
        return len(self.symbols)

    def __repr__(self) -> str:
        return (f"LetterTokenizer({len(self)} symbols, blank={self.blank!r}@{self.blank_index}, "
                f"unk={self.unk!r}, word_delimiter={self.word_delimiter!r})")

    def normalize(self, text: str) -> str:
        """Unicode NFC, typographic apostrophes -> ``'``, optional upper-case, whitespace runs -> one space."""
        text = unicodedata.normalize("NFC", text)
        text = "".join(_APOSTROPHES.get(c, c) for c in text)
        if self.uppercase:
            text = text.upper()
        return " ".join(text.split())

    def encode(self, text: str) -> list[int]:
        """Normalised text -> ids; spaces become the word delimiter, unknown characters ``unk``."""
        ids: list[int] = []
        for char in self.normalize(text):
            if char == " ":
                ids.append(self.word_delimiter_index)
            else:
                ids.append(self._index.get(char, self.unk_index))
        return ids

    def encode_letters(self, line: str) -> list[int]:
        """A fairseq ``.ltr`` line (symbols separated by spaces, ``|`` between words) -> ids."""
        return [self._index.get(tok, self.unk_index) for tok in line.split()]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids (already CTC-collapsed) -> text: drops blank and ``<...>`` specials, ``|`` -> space."""
        pieces: list[str] = []
        for i in _to_int_list(ids):
            if i < 0 or i >= len(self.symbols):
                raise ValueError(f"id {i} is outside the vocabulary of {len(self.symbols)} symbols")
            if i in self._dropped:
                continue
            pieces.append(" " if i == self.word_delimiter_index else self.symbols[i])
        return " ".join("".join(pieces).split())

    def ctc_collapse(self, ids: Iterable[int]) -> list[int]:
        """Merge consecutive repeats, then drop blanks (greedy CTC rule)."""
        out: list[int] = []
        previous: int | None = None
        for i in _to_int_list(ids):
            if i != previous and i != self.blank_index:
                out.append(i)
            previous = i
        return out
