"""CTC decoding without a language model: greedy (Viterbi) search and frame alignment.

Emissions are CTC log-probabilities ``(B, T, V)`` with ``lengths (B,)`` valid frames per utterance.
Greedy decoding takes the arg-max token per frame, merges repeats and drops blanks, which is what
the wav2vec 2.0 paper calls "Viterbi" decoding (fairseq's ``W2lViterbiDecoder`` does the same on the
arg-max path). The same frame path gives word start/end times: a word spans the frames of its
characters, from the first frame of its first character to the last frame of its last character.

``forced_align`` is the other direction: given the transcript, the most likely CTC path through the
emissions (the same dynamic programme as ``torchaudio.functional.forced_align``), for aligning
references or a beam-search output whose path is not known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Protocol

import numpy as np

from speechssl.data.audio import SAMPLE_RATE
from speechssl.models.config import FrameGeometry, Wav2Vec2Config

if TYPE_CHECKING:  # decoding takes torch tensors or numpy arrays; it never needs torch itself (onnxruntime)
    import torch


def frame_shift_seconds(geometry: FrameGeometry, sample_rate: int = SAMPLE_RATE) -> float:
    """Seconds between two emission frames of a model with this ``geometry`` (its config's)."""
    return geometry.frame_stride / sample_rate


FRAME_SHIFT_SECONDS = frame_shift_seconds(Wav2Vec2Config().geometry)
"""The frame shift of wav2vec 2.0's feature encoder (0.02 s): what decoders built without a model assume."""


class Tokenizer(Protocol):
    """What decoding needs from ``speechssl.data.tokenizer.LetterTokenizer``."""

    symbols: list[str]
    blank_index: int
    word_delimiter_index: int
    unk_index: int

    def __len__(self) -> int: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(kw_only=True)
class TokenSpan:
    """One collapsed CTC token and the frames it occupies on the path."""

    token: int
    """Index in the tokenizer's symbols."""
    start_frame: int
    """First frame of the token (inclusive)."""
    end_frame: int
    """One past the last frame of the token (exclusive)."""


@dataclass(kw_only=True)
class WordSpan:
    """A decoded word and its time on the frame axis."""

    word: str
    """The word as text (upper-case letters for the default tokenizer)."""
    start_frame: int
    """First frame of the word's first character (inclusive)."""
    end_frame: int
    """One past the last frame of the word's last character (exclusive)."""
    start: float
    """Start time in seconds: ``start_frame * frame_shift``."""
    end: float
    """End time in seconds: ``end_frame * frame_shift`` (the end of the last frame)."""


@dataclass(kw_only=True)
class Hypothesis:
    """The decoding of one utterance."""

    text: str
    """Words separated by single spaces."""
    tokens: list[int]
    """Collapsed token ids (repeats merged, blanks dropped), delimiters included."""
    words: list[WordSpan]
    """Words with frame spans and times, in order; ``" ".join(w.word for w in words) == text`` (for the
    lexicon beam search, when its word count differs from the path's, ``text`` holds the LM words)."""
    score: float = 0.0
    """Total score of the path (sum of frame log-probabilities for greedy; decoder score for beam)."""
    token_spans: list[TokenSpan] = field(default_factory=list)
    """Each collapsed token with its frames."""


class CTCDecoder(Protocol):
    """Anything that turns emissions into hypotheses (greedy, beam search)."""

    def decode(self, emissions: torch.Tensor | np.ndarray,
               lengths: torch.Tensor | np.ndarray | None = None) -> list[Hypothesis]: ...


def emissions_array(emissions: torch.Tensor | np.ndarray) -> np.ndarray:
    """Emissions as a float32 numpy array: a torch tensor is detached and read on the CPU (no copy when it is
    already float32 there), a numpy array is taken as it is; torch is not imported for it."""
    if hasattr(emissions, "detach"):  # a torch tensor
        emissions = emissions.detach().float().cpu().numpy()
    return np.asarray(emissions, dtype=np.float32)


def collapse_path(path: Sequence[int], blank: int) -> list[TokenSpan]:
    """Frame path ``(T,)`` -> spans of the non-blank tokens, repeats merged (a blank separates repeats)."""
    spans: list[TokenSpan] = []
    previous = -1
    for frame, token in enumerate(path):
        token = int(token)
        if token != previous and token != blank:
            spans.append(TokenSpan(token=token, start_frame=frame, end_frame=frame + 1))
        elif token == previous and token != blank:
            spans[-1].end_frame = frame + 1
        previous = token
    return spans


def spans_to_words(
    spans: Sequence[TokenSpan], tokenizer: Tokenizer, frame_shift: float = FRAME_SHIFT_SECONDS
) -> list[WordSpan]:
    """Group token spans into words at the word delimiter; text of each word via ``tokenizer.decode``.

    Tokens that decode to nothing (special ``<...>`` symbols) neither form a word nor extend one's time.
    """
    words: list[WordSpan] = []
    current: list[TokenSpan] = []

    def flush() -> None:
        kept = [s for s in current if tokenizer.decode([s.token]).strip()]
        if kept:
            text = tokenizer.decode([s.token for s in kept]).strip()
            start, end = kept[0].start_frame, kept[-1].end_frame
            words.append(
                WordSpan(word=text, start_frame=start, end_frame=end, start=start * frame_shift,
                         end=end * frame_shift)
            )
        current.clear()

    for span in spans:
        if span.token == tokenizer.word_delimiter_index:
            flush()
        else:
            current.append(span)
    flush()
    return words


def path_to_hypothesis(
    path: Sequence[int],
    tokenizer: Tokenizer,
    *,
    score: float = 0.0,
    frame_shift: float = FRAME_SHIFT_SECONDS,
) -> Hypothesis:
    """A frame path ``(T,)`` of token ids -> text, collapsed tokens and word times."""
    spans = collapse_path(path, tokenizer.blank_index)
    words = spans_to_words(spans, tokenizer, frame_shift)
    return Hypothesis(
        text=" ".join(w.word for w in words),
        tokens=[s.token for s in spans],
        words=words,
        score=score,
        token_spans=spans,
    )


def check_emissions(emissions: torch.Tensor | np.ndarray,
                    lengths: torch.Tensor | np.ndarray | None) -> np.ndarray:
    """Validate emissions ``(B, T, V)`` and lengths ``(B,)``; returns lengths as an int64 array (all T if None)."""
    if len(emissions.shape) != 3:
        raise ValueError(f"emissions must be (B, T, V), got shape {tuple(emissions.shape)}")
    batch, frames = emissions.shape[:2]
    if lengths is None:
        return np.full((batch,), frames, dtype=np.int64)
    if hasattr(lengths, "detach"):  # a torch tensor
        lengths = lengths.detach().cpu().numpy()
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must be ({batch},), got shape {tuple(lengths.shape)}")
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > frames):
        raise ValueError(f"lengths must be in [0, {frames}], got {lengths.tolist()}")
    return lengths


class GreedyCTCDecoder:
    """Arg-max per frame, merge repeats, drop blanks; the paper's "Viterbi" decoding (no LM).

    Args:
        tokenizer: maps ids to text; its ``blank_index`` and ``word_delimiter_index`` are used.
        frame_shift: seconds per emission frame (``frame_shift_seconds(config.geometry)``; wav2vec 2.0's by
            default).
    """

    def __init__(self, tokenizer: Tokenizer, *, frame_shift: float = FRAME_SHIFT_SECONDS) -> None:
        self.tokenizer = tokenizer
        self.frame_shift = frame_shift

    def decode(self, emissions: torch.Tensor | np.ndarray,
               lengths: torch.Tensor | np.ndarray | None = None) -> list[Hypothesis]:
        """emissions ``(B, T, V)`` log-probs (torch or numpy), lengths ``(B,)`` -> one hypothesis per utterance."""
        lengths = check_emissions(emissions, lengths)
        if emissions.shape[-1] != len(self.tokenizer.symbols):
            raise ValueError(f"emissions have {emissions.shape[-1]} classes, the tokenizer "
                             f"{len(self.tokenizer.symbols)}")
        emissions = emissions_array(emissions)
        best_tokens = emissions.argmax(axis=-1)  # (B, T), the first maximum as torch's max
        best_scores = np.take_along_axis(emissions, best_tokens[..., None], axis=-1)[..., 0]  # (B, T)
        hypotheses = []
        for b, length in enumerate(lengths.tolist()):
            path = best_tokens[b, :length].tolist()
            score = float(best_scores[b, :length].sum())
            hypotheses.append(path_to_hypothesis(path, self.tokenizer, score=score,
                                                 frame_shift=self.frame_shift))
        return hypotheses


@dataclass(kw_only=True)
class Alignment:
    """A forced alignment of a token sequence to emissions."""

    path: list[int]
    """Token id per frame ``(T,)``, blanks included."""
    score: float
    """Log-probability of the path (sum over frames)."""


def forced_align(emissions: torch.Tensor | np.ndarray, targets: Sequence[int], blank: int) -> Alignment:
    """Most likely CTC path of ``targets`` through ``emissions (T, V)`` log-probs (Viterbi).

    The CTC topology: states are ``blank, y1, blank, y2, ..., yN, blank``; a state can stay, move to the
    next one, or skip a blank between two different labels. Raises ValueError when the targets need
    more frames than there are (each label one frame, plus one blank between repeated labels).
    """
    if len(emissions.shape) != 2:
        raise ValueError(f"emissions must be (T, V), got shape {tuple(emissions.shape)}")
    log_probs = emissions_array(emissions)  # (T, V)
    frames = log_probs.shape[0]
    targets = [int(t) for t in targets]
    if any(t == blank for t in targets):
        raise ValueError("targets must not contain the blank index")
    repeats = sum(1 for a, b in pairwise(targets) if a == b)
    if len(targets) + repeats > frames:
        raise ValueError(f"{len(targets)} targets ({repeats} repeats) cannot fit in {frames} frames")
    states = np.full(2 * len(targets) + 1, blank, dtype=np.int64)
    states[1::2] = targets
    num_states = len(states)
    # A skip from s-2 to s is allowed into a label that differs from the label two states back.
    can_skip = np.zeros(num_states, dtype=bool)
    can_skip[3::2] = states[3::2] != states[1:-2:2]
    neg_inf = -np.inf
    score = np.full(num_states, neg_inf)
    score[0] = log_probs[0, states[0]]
    if num_states > 1:
        score[1] = log_probs[0, states[1]]
    back = np.zeros((frames, num_states), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, frames):
        stay = score
        step = np.concatenate([[neg_inf], score[:-1]])
        skip = np.where(can_skip, np.concatenate([[neg_inf, neg_inf], score[:-2]]), neg_inf)
        candidates = np.stack([stay, step, skip])  # (3, S)
        back[t] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[t, states]
    # The path ends in the last label or the final blank.
    finals = [num_states - 1] + ([num_states - 2] if num_states > 1 else [])
    state = max(finals, key=lambda s: score[s])
    total = float(score[state])
    path = [0] * frames
    for t in range(frames - 1, -1, -1):
        path[t] = int(states[state])
        state -= int(back[t, state])
    return Alignment(path=path, score=total)
