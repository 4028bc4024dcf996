"""Tuning the LM weight and word score of the beam search on a dev set.

The wav2vec 2.0 paper tunes both on dev-other (LM weight in [0, 5], word score in [-5, 5]; beam 500 for its
4-gram, then beam 1500 on every set). Emissions are computed once; each grid point only re-runs the beam search
with the same loaded LM and trie.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from speechssl.decoding.beam import BeamSearchDecoder
from speechssl.decoding.wer import score

DEFAULT_LM_WEIGHTS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)
DEFAULT_WORD_SCORES: tuple[float, ...] = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0)


@dataclass(kw_only=True)
class GridPoint:
    """WER at one setting."""

    lm_weight: float
    word_score: float
    wer: float
    """jiwer's WER (fraction)."""


@dataclass(kw_only=True)
class GridSearchResult:
    """Every point tried, in order, and the best (lowest WER; first one on ties)."""

    points: list[GridPoint]
    best: GridPoint
    beam: int
    """The beam size every point was decoded at."""


def grid_search(
    decoder: BeamSearchDecoder,
    emissions: Sequence[torch.Tensor],
    references: Sequence[str],
    *,
    lm_weights: Sequence[float] = DEFAULT_LM_WEIGHTS,
    word_scores: Sequence[float] = DEFAULT_WORD_SCORES,
    beam: int | None = None,
    progress: Callable[[GridPoint], None] | None = None,
) -> GridSearchResult:
    """Decode ``emissions`` (a list of ``(T_i, V)`` log-probs) at every (lm_weight, word_score) pair.

    ``beam``: search at this beam size instead of the decoder's (the paper tunes its 4-gram at 500 and tests at
    1500). The decoder is left set to the best pair, at its own beam size.
    """
    if len(emissions) != len(references):
        raise ValueError(f"{len(emissions)} emissions but {len(references)} references")
    if not lm_weights or not word_scores:
        raise ValueError("lm_weights and word_scores must each hold at least one value")
    ids = [str(i) for i in range(len(references))]
    own_beam = decoder.config.beam
    if beam is not None:
        decoder.set_beam(beam)
    points: list[GridPoint] = []
    for lm_weight in lm_weights:
        for word_score in word_scores:
            decoder.set_weights(lm_weight=float(lm_weight), word_score=float(word_score))
            hypotheses = [decoder.decode(e.unsqueeze(0))[0].text for e in emissions]  # e (T, V) -> (1, T, V)
            point = GridPoint(lm_weight=float(lm_weight), word_score=float(word_score),
                              wer=score(ids, references, hypotheses).wer)
            points.append(point)
            if progress is not None:
                progress(point)
    best = min(points, key=lambda p: p.wer)
    if beam is not None:
        decoder.config.beam = own_beam  # set_weights rebuilds the search at it
    decoder.set_weights(lm_weight=best.lm_weight, word_score=best.word_score)
    return GridSearchResult(points=points, best=best, beam=beam if beam is not None else own_beam)
