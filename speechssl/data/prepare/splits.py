"""Drawing splits: a seeded share held out (valid sets) and seeded duration budgets (``train_10min``); the
one implementation that preparers (`CorpusWriter.write_duration_subset`) and recipes
(`speechssl.recipes.subsets`) share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from speechssl.data.audio import SAMPLE_RATE

if TYPE_CHECKING:
    from speechssl.data.prepare.writer import Utterance


def split_by_percent(utterances: Sequence[Utterance], percent: float, seed: int) -> tuple[list[Utterance],
                                                                                              list[Utterance]]:
    """``(rest, held)``: ``round(percent * N)`` utterances drawn by ``seed`` (manifest order kept)."""
    if not 0.0 <= percent < 1.0:
        raise ValueError(f"`valid_percent` must be in [0, 1), got {percent}")
    n = len(utterances)
    n_held = round(percent * n)
    if percent > 0 and n_held == 0 and n > 1:
        n_held = 1
    held_idx = set(np.random.default_rng(seed).permutation(n)[:n_held].tolist())
    rest = [u for i, u in enumerate(utterances) if i not in held_idx]
    held = [u for i, u in enumerate(utterances) if i in held_idx]
    return rest, held


def duration_subset(sizes: Sequence[int] | np.ndarray, seconds: float, seed: int) -> list[int]:
    """Indices (ascending) of a seeded random subset holding at least ``seconds`` of audio, given the lengths
    (samples) of a split's utterances.

    Utterances are taken in one seeded random order until the budget is reached, so with the same seed a
    larger budget contains every smaller one. Raises ValueError when ``seconds <= 0`` or the split is shorter
    than the budget.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum()) / SAMPLE_RATE
    if seconds <= 0:
        raise ValueError(f"subset duration must be > 0 seconds, got {seconds}")
    if total < seconds:
        raise ValueError(f"a {seconds / 60:g}-minute subset was asked of a split holding {total / 60:.2f} minutes")
    order = np.random.default_rng(seed).permutation(len(sizes))
    cumulative = np.cumsum(sizes[order]) / SAMPLE_RATE  # (N,) seconds after taking each utterance
    count = int(np.searchsorted(cumulative, seconds)) + 1  # first prefix reaching the budget
    return sorted(order[:count].tolist())
