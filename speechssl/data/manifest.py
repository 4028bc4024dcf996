"""fairseq-compatible manifests and label files.

A manifest ``<split>.tsv`` has the root directory on its first line, then one ``relative/path<TAB>num_samples``
line per utterance (samples counted at 16 kHz). Labels sit beside it, one line per manifest line:
``<split>.wrd`` (upper-case words) and ``<split>.ltr`` (letters separated by spaces, ``|`` after every word,
including the last, as fairseq's libri_labels.py writes them). ``dict.ltr.txt`` lists ``SYMBOL COUNT`` lines,
most frequent first.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WORD_DELIMITER = "|"
_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"}


@dataclass(frozen=True, kw_only=True)
class ManifestEntry:
    """One utterance of a manifest."""

    path: str
    """Path relative to the manifest root (forward slashes)."""
    num_samples: int
    """Length at 16 kHz."""


@dataclass(kw_only=True)
class Manifest:
    """A split: the root directory and its utterances in file order."""

    root: Path
    """Directory the entry paths are relative to."""
    entries: list[ManifestEntry] = field(default_factory=list)
    """Utterances; an utterance's id is its position here."""

    def __len__(self) -> int:
        return len(self.entries)

    def audio_path(self, index: int) -> Path:
        """Absolute path of utterance ``index``."""
        return self.root / self.entries[index].path

    @property
    def sizes(self) -> np.ndarray:
        """``(N,)`` int64 lengths in samples."""
        return np.fromiter((e.num_samples for e in self.entries), dtype=np.int64, count=len(self.entries))

    @property
    def total_samples(self) -> int:
        return int(sum(e.num_samples for e in self.entries))


def read_manifest(path: str | Path) -> Manifest:
    """Parse a fairseq ``.tsv`` manifest; errors name the file and line."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if not lines:
        raise ValueError(f"{path}: empty manifest (expected the root directory on line 1)")
    entries: list[ManifestEntry] = []
    for line_no, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{path}:{line_no}: expected 'relative/path<TAB>num_samples', got {line!r}")
        try:
            num_samples = int(parts[1])
        except ValueError:
            raise ValueError(f"{path}:{line_no}: num_samples must be an integer, got {parts[1]!r}") from None
        entries.append(ManifestEntry(path=parts[0], num_samples=num_samples))
    return Manifest(root=Path(lines[0].strip()), entries=entries)


def write_manifest(path: str | Path, manifest: Manifest) -> None:
    """Write ``manifest`` in fairseq format."""
    lines = [str(manifest.root)] + [f"{e.path}\t{e.num_samples}" for e in manifest.entries]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- labels
def _char_role(char: str) -> str:
    """How :func:`normalize_transcript` treats one (apostrophe-folded) character: keep, space or drop."""
    category = unicodedata.category(char)
    if char == "'" or category[0] in ("L", "M", "N"):
        return "keep"
    if char in "-/_" or category[0] == "Z" or char.isspace():
        return "space"
    return "drop"  # other punctuation and symbols


def normalize_transcript(text: str) -> str:
    """Transcript -> ``.wrd`` form: upper-case words separated by one space.

    Punctuation (Unicode category P*) and symbols are dropped except the apostrophe inside words
    ("DON'T"); hyphens and slashes split words. Letters of any script are kept, so non-English corpora work.
    """
    text = unicodedata.normalize("NFC", text)
    out: list[str] = []
    for char in text:
        char = _APOSTROPHES.get(char, char)
        role = _char_role(char)
        if role == "keep":
            out.append(char)
        elif role == "space":
            out.append(" ")
    words = []
    for word in "".join(out).upper().split():
        word = word.strip("'")
        if word:
            words.append(word)
    return " ".join(words)


def dropped_characters(text: str) -> list[str]:
    """The characters of ``text`` that :func:`normalize_transcript` removes (punctuation, symbols, emoji)."""
    return [c for c in unicodedata.normalize("NFC", text) if _char_role(_APOSTROPHES.get(c, c)) == "drop"]


def words_to_letters(words: str) -> str:
    """``.wrd`` line -> ``.ltr`` line: ``HI YOU`` -> ``H I | Y O U |``."""
    tokens: list[str] = []
    for word in words.split():
        tokens.extend(word)
        tokens.append(WORD_DELIMITER)
    return " ".join(tokens)


def letters_to_words(letters: str) -> str:
    """``.ltr`` line -> words: ``H I | Y O U |`` -> ``HI YOU``."""
    return " ".join("".join(letters.split()).replace(WORD_DELIMITER, " ").split())


def read_labels(path: str | Path) -> list[str]:
    """One label per line (line order = manifest order)."""
    return Path(path).read_text(encoding="utf-8-sig").splitlines()


def write_labels(path: str | Path, labels: Iterable[str]) -> None:
    text = "".join(f"{label}\n" for label in labels)
    Path(path).write_text(text, encoding="utf-8")


def letter_counts(ltr_lines: Iterable[str]) -> Counter:
    """Counts of every symbol in ``.ltr`` lines (``|`` included)."""
    counts: Counter = Counter()
    for line in ltr_lines:
        counts.update(line.split())
    return counts


def write_letter_dict(path: str | Path, counts: Counter) -> None:
    """fairseq ``dict.ltr.txt``: ``SYMBOL COUNT`` lines, most frequent first (ties by symbol)."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    Path(path).write_text("".join(f"{s} {c}\n" for s, c in ordered), encoding="utf-8")


def read_letter_dict(path: str | Path) -> list[tuple[str, int]]:
    """Parse ``dict.ltr.txt`` into ``(symbol, count)`` pairs in file order."""
    pairs: list[tuple[str, int]] = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            pairs.append((parts[0], int(parts[1]) if len(parts) > 1 else 0))
        except ValueError:
            raise ValueError(f"{path}:{line_no}: expected 'SYMBOL COUNT', got {line!r}") from None
    return pairs


@dataclass(kw_only=True)
class LabeledSplit:
    """A manifest with its transcripts, as read from ``<dir>/<split>.{tsv,wrd,ltr}``."""

    manifest: Manifest
    """The audio."""
    words: list[str] | None
    """``.wrd`` lines, or None when absent."""
    letters: list[str] | None
    """``.ltr`` lines, or None when absent."""


def read_split(directory: str | Path, split: str, *, require_labels: bool = False) -> LabeledSplit:
    """Read ``<directory>/<split>.tsv`` and the ``.wrd``/``.ltr`` beside it (when present).

    Raises ValueError naming the file when a label file does not have one line per manifest line.
    """
    directory = Path(directory)
    manifest = read_manifest(directory / f"{split}.tsv")
    loaded: dict[str, list[str] | None] = {}
    for ext in ("wrd", "ltr"):
        label_path = directory / f"{split}.{ext}"
        if label_path.exists():
            labels = read_labels(label_path)
            if len(labels) != len(manifest):
                raise ValueError(f"{label_path}: {len(labels)} lines but the manifest has {len(manifest)}")
            loaded[ext] = labels
        else:
            loaded[ext] = None
    if require_labels and loaded["wrd"] is None and loaded["ltr"] is None:
        raise ValueError(f"{directory}: no {split}.wrd or {split}.ltr beside {split}.tsv")
    return LabeledSplit(manifest=manifest, words=loaded["wrd"], letters=loaded["ltr"])


def labels_for(split: LabeledSplit) -> Sequence[str]:
    """Word transcripts of a split (from ``.wrd``, else rebuilt from ``.ltr``)."""
    if split.words is not None:
        return split.words
    if split.letters is not None:
        return [letters_to_words(line) for line in split.letters]
    raise ValueError(f"split rooted at {split.manifest.root} has no labels")
