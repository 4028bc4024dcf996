"""Word and character error rates, computed by jiwer.

The corpus rates are jiwer's own (``process_words`` / ``process_characters`` over all utterances: total edit
operations over total reference words, as sclite and fairseq's ``infer.py`` count them). Per-utterance counts
are read from jiwer's alignment chunks of the same call, so they add up to the corpus totals exactly.
CER counts spaces as characters, as jiwer does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jiwer


@dataclass(kw_only=True)
class ErrorCounts:
    """Edit operations between references and hypotheses (words or characters)."""

    hits: int = 0
    """Units equal in both."""
    substitutions: int = 0
    """Reference units replaced."""
    deletions: int = 0
    """Reference units missing from the hypothesis."""
    insertions: int = 0
    """Hypothesis units not in the reference."""

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def reference_length(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def rate(self) -> float:
        """errors / reference length (inf when the reference is empty and there are errors)."""
        if self.reference_length == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.reference_length

    def add(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(hits=self.hits + other.hits, substitutions=self.substitutions + other.substitutions,
                           deletions=self.deletions + other.deletions,
                           insertions=self.insertions + other.insertions)


@dataclass(kw_only=True)
class UtteranceScore:
    """One utterance's reference, hypothesis and errors."""

    id: str
    """Utterance id (manifest path or index)."""
    reference: str
    """Reference words."""
    hypothesis: str
    """Decoded words."""
    words: ErrorCounts
    """Word-level edit counts."""
    chars: ErrorCounts
    """Character-level edit counts."""
    alignment: str
    """Words with errors marked: ``A (B->X) C (*->D) (E->*)``."""


@dataclass(kw_only=True)
class CorpusScore:
    """WER/CER of a set of utterances."""

    wer: float
    """Word error rate as returned by jiwer (a fraction, not a percentage)."""
    cer: float
    """Character error rate as returned by jiwer."""
    words: ErrorCounts
    """Word-level totals."""
    chars: ErrorCounts
    """Character-level totals."""
    utterances: list[UtteranceScore]
    """Per utterance, in input order."""


def _counts_from_chunks(chunks) -> ErrorCounts:
    counts = ErrorCounts()
    for chunk in chunks:
        ref_span = chunk.ref_end_idx - chunk.ref_start_idx
        if chunk.type == "equal":
            counts.hits += ref_span
        elif chunk.type == "substitute":
            counts.substitutions += ref_span
        elif chunk.type == "delete":
            counts.deletions += ref_span
        elif chunk.type == "insert":
            counts.insertions += chunk.hyp_end_idx - chunk.hyp_start_idx
        else:  # a jiwer version with other chunk types would silently miscount
            raise ValueError(f"unknown jiwer alignment chunk type {chunk.type!r}")
    return counts


def _alignment_text(reference: list[str], hypothesis: list[str], chunks) -> str:
    pieces: list[str] = []
    for chunk in chunks:
        ref = reference[chunk.ref_start_idx:chunk.ref_end_idx]
        hyp = hypothesis[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type == "equal":
            pieces.extend(ref)
        elif chunk.type == "substitute":
            pieces.extend(f"({r}->{h})" for r, h in zip(ref, hyp))
        elif chunk.type == "delete":
            pieces.extend(f"({r}->*)" for r in ref)
        else:
            pieces.extend(f"(*->{h})" for h in hyp)
    return " ".join(pieces)


def score(ids: Sequence[str], references: Sequence[str], hypotheses: Sequence[str]) -> CorpusScore:
    """WER and CER of ``hypotheses`` against ``references`` (one string of words per utterance)."""
    if not (len(ids) == len(references) == len(hypotheses)):
        raise ValueError(f"ids, references and hypotheses must have one entry per utterance, got "
                         f"{len(ids)}, {len(references)}, {len(hypotheses)}")
    if not references:
        raise ValueError("nothing to score: no utterances")
    references = [" ".join(r.split()) for r in references]
    hypotheses = [" ".join(h.split()) for h in hypotheses]
    word_out = jiwer.process_words(references, hypotheses)
    char_out = jiwer.process_characters(references, hypotheses)
    utterances = []
    for i, uid in enumerate(ids):
        word_chunks = word_out.alignments[i]
        utterances.append(UtteranceScore(
            id=str(uid), reference=references[i], hypothesis=hypotheses[i],
            words=_counts_from_chunks(word_chunks), chars=_counts_from_chunks(char_out.alignments[i]),
            alignment=_alignment_text(word_out.references[i], word_out.hypotheses[i], word_chunks),
        ))
    words = ErrorCounts(hits=word_out.hits, substitutions=word_out.substitutions, deletions=word_out.deletions,
                        insertions=word_out.insertions)
    chars = ErrorCounts(hits=char_out.hits, substitutions=char_out.substitutions, deletions=char_out.deletions,
                        insertions=char_out.insertions)
    return CorpusScore(wer=float(word_out.wer), cer=float(char_out.cer), words=words, chars=chars,
                       utterances=utterances)
