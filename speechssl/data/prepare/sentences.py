"""Seeded English sentence generator over the word list shipped with the package (``words.txt``).

Templates fill nouns, verbs, adjectives, adverbs, prepositions and names into simple clauses ("the old farmer
carried a heavy basket to the market"); one to three clauses joined by conjunctions make an utterance of
roughly 2-10 seconds when spoken. Everything is drawn from the generator passed in, so a sentence is a pure
function of its seed. Text uses only letters, spaces and the apostrophe (the English letter vocabulary).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

_SUBJECT_PRONOUNS = ("I", "you", "he", "she", "we", "they")
_DETERMINERS = ("the", "the", "the", "a", "this", "that", "my", "your", "his", "her", "our", "their", "every")
_PLURAL_DETERMINERS = ("the", "some", "many", "these", "those", "my", "our", "their", "a few")
_TIMES = ("this morning", "last night", "on monday", "on friday", "in the evening", "at noon", "last week",
          "after lunch", "before dinner", "in the spring", "every day", "once again", "at midnight")
_NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
            "fifteen", "twenty", "thirty", "forty", "fifty", "a hundred")
_CONJUNCTIONS = ("and", "but", "so", "because", "while", "when", "after", "although", "until")
_INTENSIFIERS = ("very", "quite", "rather", "too", "so", "really")


@dataclass(kw_only=True)
class WordList:
    """Words by role, parsed from ``words.txt``."""

    nouns: list[tuple[str, str]] = field(default_factory=list)
    """(singular, plural)."""
    transitive: list[tuple[str, str]] = field(default_factory=list)
    """(base, past) verbs taking an object."""
    intransitive: list[tuple[str, str]] = field(default_factory=list)
    """(base, past) verbs without an object."""
    adjectives: list[str] = field(default_factory=list)
    adverbs: list[str] = field(default_factory=list)
    prepositions: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def vocabulary(self) -> set[str]:
        """Every distinct word a sentence may contain (lower-case)."""
        words: set[str] = set()
        for pairs in (self.nouns, self.transitive, self.intransitive):
            for a, b in pairs:
                words.update((a, b))
        for group in (self.adjectives, self.adverbs, self.prepositions, self.names, _SUBJECT_PRONOUNS,
                      _DETERMINERS, _PLURAL_DETERMINERS, _TIMES, _NUMBERS, _CONJUNCTIONS, _INTENSIFIERS):
            for item in group:
                words.update(item.split())
        words.update(["there", "were", "was", "is", "will", "did", "didn't", "it's", "not", "and", "said", "that", "an", "please"])
        return {w.lower() for w in words}


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def load_word_list(path: str | Path | None = None) -> WordList:
    """Parse ``words.txt`` (the packaged one by default)."""
    if path is None:
        text = resources.files("speechssl.data.prepare").joinpath("words.txt").read_text(encoding="utf-8-sig")
        source = "speechssl/data/prepare/words.txt"
    else:
        text = Path(path).read_text(encoding="utf-8-sig")
        source = str(path)
    words = WordList()
    section = None
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        parts = line.split()
        if section == "noun":
            words.nouns.append((parts[0], parts[1] if len(parts) > 1 else _plural(parts[0])))
        elif section in ("verb_transitive", "verb_intransitive"):
            if len(parts) != 2:
                raise ValueError(f"{source}:{line_no}: a verb line needs 'base past', got {line!r}")
            (words.transitive if section == "verb_transitive" else words.intransitive).append((parts[0], parts[1]))
        elif section == "adjective":
            words.adjectives.append(parts[0])
        elif section == "adverb":
            words.adverbs.append(parts[0])
        elif section == "preposition":
            words.prepositions.append(parts[0])
        elif section == "name":
            words.names.append(parts[0])
        else:
            raise ValueError(f"{source}:{line_no}: entry outside a known [section]: {line!r}")
    return words


class SentenceGenerator:
    """``sentence(rng)`` -> a plain English sentence drawn from ``rng``."""

    def __init__(self, words: WordList | None = None) -> None:
        self.words = words or load_word_list()

    def _pick(self, rng: np.random.Generator, items):
        return items[int(rng.integers(len(items)))]

    def _noun_phrase(self, rng: np.random.Generator, *, plural: bool = False) -> str:
        singular, many = self._pick(rng, self.words.nouns)
        adjective = self._pick(rng, self.words.adjectives) + " " if rng.random() < 0.5 else ""
        if plural:
            return f"{self._pick(rng, _PLURAL_DETERMINERS)} {adjective}{many}"
        det = self._pick(rng, _DETERMINERS)
        if det == "a" and (adjective or singular)[0] in "aeiou":
            det = "an"
        return f"{det} {adjective}{singular}"

    def _subject(self, rng: np.random.Generator) -> str:
        r = rng.random()
        if r < 0.3:
            return self._pick(rng, self.words.names)
        if r < 0.5:
            return self._pick(rng, _SUBJECT_PRONOUNS)
        return self._noun_phrase(rng)

    def _tail(self, rng: np.random.Generator) -> str:
        r = rng.random()
        if r < 0.35:
            return f" {self._pick(rng, self.words.prepositions)} {self._noun_phrase(rng)}"
        if r < 0.55:
            return f" {self._pick(rng, self.words.adverbs)}"
        if r < 0.7:
            return f" {self._pick(rng, _TIMES)}"
        return ""

    def clause(self, rng: np.random.Generator) -> str:
        w = self.words
        kind = int(rng.integers(9))
        if kind <= 2:
            return (f"{self._subject(rng)} {self._pick(rng, w.transitive)[1]} "
                    f"{self._noun_phrase(rng, plural=rng.random() < 0.25)}{self._tail(rng)}")
        if kind == 3:
            return f"{self._subject(rng)} {self._pick(rng, w.intransitive)[1]}{self._tail(rng)}"
        if kind == 4:
            return (f"{self._subject(rng)} will {self._pick(rng, w.transitive)[0]} "
                    f"{self._noun_phrase(rng)}{self._tail(rng)}")
        if kind == 5:
            return (f"there were {self._pick(rng, _NUMBERS)} {self._pick(rng, w.nouns)[1]} "
                    f"{self._pick(rng, w.prepositions)} {self._noun_phrase(rng)}")
        if kind == 6:
            return (f"{self._pick(rng, w.names)} said that {self._noun_phrase(rng)} was "
                    f"{self._pick(rng, _INTENSIFIERS)} {self._pick(rng, w.adjectives)}")
        if kind == 7:
            return f"{self._subject(rng)} didn't {self._pick(rng, w.intransitive)[0]}{self._tail(rng)}"
        return (f"it's {self._pick(rng, _INTENSIFIERS)} {self._pick(rng, w.adjectives)} "
                f"{self._pick(rng, _TIMES)}")

    def sentence(self, rng: np.random.Generator) -> str:
        """One to three clauses (30/50/20 %) joined by conjunctions."""
        count = 1 + int(rng.choice(3, p=[0.3, 0.5, 0.2]))
        text = self.clause(rng)
        for _ in range(count - 1):
            text += f" {self._pick(rng, _CONJUNCTIONS)} {self.clause(rng)}"
        return text
