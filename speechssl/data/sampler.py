"""Length-bucketed batches bounded by a sample budget, shuffled per epoch, sharded across ranks, resumable.

Follows fairseq's ``batch_by_size`` for wav2vec 2.0: utterances sorted by length (ties broken by a per-epoch
random permutation), grouped greedily so that ``batch_size * longest <= max_tokens`` (padding counts), batch
sizes rounded down to a multiple (``required_batch_size_multiple``, 8 in fairseq) when the budget forces a
cut, and the list of batches shuffled each epoch by ``(seed, epoch)``.

Distributed data parallel needs every rank to run the same number of steps. fairseq pads the shard with
repeated batches; we instead split the largest batches in two until the batch count divides the number of
replicas, so each utterance is still seen exactly once per epoch over all ranks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(kw_only=True)
class SamplerState:
    """Where a sampler is: enough to resume mid-epoch."""

    epoch: int
    """Current epoch."""
    position: int
    """Batches of this rank's epoch already consumed."""
    seed: int
    """Seed the batches were built with (checked on load)."""
    num_replicas: int
    """World size the shard was built for (checked on load)."""


def _rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), stream])


def batch_by_size(
    order: np.ndarray,
    lengths: np.ndarray,
    *,
    max_tokens: int,
    max_batch_size: int | None = None,
    required_batch_size_multiple: int = 1,
) -> list[np.ndarray]:
    """Greedy batches over indices ``order`` sorted by ascending length.

    A batch closes when adding the next (longer) item would make ``count * longest`` exceed ``max_tokens``
    or the count exceed ``max_batch_size``; the closed batch then keeps a multiple of
    ``required_batch_size_multiple`` items (the remainder starts the next batch), as fairseq does.
    """
    batches: list[np.ndarray] = []
    mult = max(1, int(required_batch_size_multiple))
    start = 0
    n = len(order)
    sorted_lengths = lengths[order]
    i = 0
    while i < n:
        count = i - start + 1
        longest = int(sorted_lengths[i])  # ascending order: the newest item is the longest
        too_many = max_batch_size is not None and count > max_batch_size
        if count > 1 and (count * longest > max_tokens or too_many):
            size = count - 1
            if size > mult:
                size = max(mult * (size // mult), size % mult)
            batches.append(order[start:start + size])
            start += size
            i = max(i, start)
            continue
        i += 1
    if start < n:
        batches.append(order[start:n])
    return batches


class BucketBatchSampler:
    """Yields lists of dataset indices; pass as ``batch_sampler`` to a DataLoader.

    Args:
        lengths: ``(N,)`` per-item length in samples as it will be batched (cropped lengths when the
            collater crops).
        max_tokens: upper bound on ``batch_size * longest item`` (samples, padding included).
        max_batch_size: optional cap on items per batch.
        required_batch_size_multiple: round batch sizes down to this multiple when the budget cuts a batch
            (8 in fairseq); batches split for sharding may break it.
        shuffle: shuffle batch order (and tie order) each epoch; False keeps ascending length order.
        seed: base seed; epoch ``e`` uses ``(seed, e)``.
        num_replicas, rank: distributed sharding; every rank gets the same number of batches.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        *,
        max_tokens: int,
        max_batch_size: int | None = None,
        required_batch_size_multiple: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1:
            raise ValueError(f"`lengths` must be 1-D, got shape {self.lengths.shape}")
        if max_tokens <= 0:
            raise ValueError(f"`max_tokens` must be > 0, got {max_tokens}")
        if max_batch_size is not None and max_batch_size <= 0:
            raise ValueError(f"`max_batch_size` must be > 0 or None, got {max_batch_size}")
        if required_batch_size_multiple <= 0:
            raise ValueError(f"`required_batch_size_multiple` must be > 0, got {required_batch_size_multiple}")
        if num_replicas <= 0:
            raise ValueError(f"`num_replicas` must be > 0, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"`rank` must be in [0, {num_replicas}), got {rank}")
        too_long = np.flatnonzero(self.lengths > max_tokens)
        if too_long.size:
            i = int(too_long[0])
            raise ValueError(f"item {i} has {int(self.lengths[i])} samples, more than `max_tokens`={max_tokens} "
                             f"({too_long.size} such items); raise max_tokens or crop (max_sample_size)")
        if 0 < len(self.lengths) < num_replicas:
            raise ValueError(f"{len(self.lengths)} items cannot give every one of {num_replicas} ranks a batch")
        self.max_tokens = int(max_tokens)
        self.max_batch_size = max_batch_size
        self.required_batch_size_multiple = int(required_batch_size_multiple)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self._position = 0  # batches of this epoch already handed out (or restored from a checkpoint)
        self._exhausted = False  # the last iteration ran to the end of the epoch
        self._cache: tuple[int, list[np.ndarray]] | None = None

    # ------------------------------------------------------------------ batches
    def _all_batches(self, epoch: int) -> list[np.ndarray]:
        """Every rank's batches of ``epoch`` in global order (rank r takes r, r+R, ...)."""
        n = len(self.lengths)
        if self.shuffle:
            # fairseq sorts by (size, random permutation): equal lengths land in a random order each epoch.
            tie = _rng(self.seed, epoch, 0).permutation(n)
            order = np.lexsort((tie, self.lengths))
        else:
            order = np.argsort(self.lengths, kind="stable")
        batches = batch_by_size(order, self.lengths, max_tokens=self.max_tokens,
                                max_batch_size=self.max_batch_size,
                                required_batch_size_multiple=self.required_batch_size_multiple)
        batches = self._equalize(batches)
        if self.shuffle:
            perm = _rng(self.seed, epoch, 1).permutation(len(batches))
            batches = [batches[j] for j in perm]
        return batches

    def _equalize(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Split the largest batches until the count is a multiple of ``num_replicas``."""
        while len(batches) % self.num_replicas:
            sizes = [len(b) for b in batches]
            j = int(np.argmax(sizes))
            if sizes[j] < 2:  # cannot happen when len(lengths) >= num_replicas
                raise ValueError(f"cannot split {len(batches)} batches evenly over {self.num_replicas} ranks")
            b = batches[j]
            half = len(b) // 2
            batches[j:j + 1] = [b[:half], b[half:]]
        return batches

    def _rank_batches(self) -> list[np.ndarray]:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._all_batches(self.epoch)[self.rank::self.num_replicas])
        return self._cache[1]

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches of ``epoch`` (default: current), from the start of the epoch."""
        if epoch is None or epoch == self.epoch:
            return [b.tolist() for b in self._rank_batches()]
        return [b.tolist() for b in self._all_batches(epoch)[self.rank::self.num_replicas]]

    @property
    def num_batches(self) -> int:
        """Batches of this rank in the whole current epoch."""
        return len(self._rank_batches())

    def __len__(self) -> int:
        """Batches the next iteration will yield (the whole epoch minus a restored position)."""
        if self._exhausted:
            return self.num_batches
        return max(0, self.num_batches - self._position)

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._rank_batches()
        if self._exhausted:  # iterating a finished epoch again (e.g. a validation set) starts it over
            self._position, self._exhausted = 0, False
        for k in range(self._position, len(batches)):
            self._position = k + 1
            yield batches[k].tolist()
        # the position stays at the end so a checkpoint taken now says "epoch finished"
        self._exhausted = True

    # ------------------------------------------------------------------ epochs and resume
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; a new epoch starts at position 0, the restored epoch keeps its position."""
        epoch = int(epoch)
        if epoch != self.epoch:
            self.epoch = epoch
            self._position, self._exhausted = 0, False

    def seek(self, position: int) -> None:
        """Make the next iteration start after ``position`` batches of the current epoch."""
        if not 0 <= position <= self.num_batches:
            raise ValueError(f"position {position} outside [0, {self.num_batches}] for epoch {self.epoch}")
        self._position, self._exhausted = int(position), False

    def state_dict(self, position: int | None = None) -> dict:
        """``{"epoch", "position", "seed", "num_replicas"}``.

        ``position`` defaults to the batches this sampler has handed out in the current epoch (``num_batches``
        once the epoch has run to its end: a resume then yields nothing more of it). A DataLoader with workers
        fetches ahead, so a training loop should pass the number of batches it has consumed.
        """
        pos = self._position if position is None else int(position)
        return vars(SamplerState(epoch=self.epoch, position=pos, seed=self.seed,
                                 num_replicas=self.num_replicas)).copy()

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration yields exactly the batches after ``position`` of ``epoch``."""
        s = SamplerState(**state)
        if s.seed != self.seed:
            raise ValueError(f"sampler state has seed {s.seed}, this sampler was built with seed {self.seed}")
        if s.num_replicas != self.num_replicas:
            raise ValueError(f"sampler state was saved with num_replicas={s.num_replicas}, "
                             f"now {self.num_replicas}: the shards would differ")
        self.epoch = int(s.epoch)
        self._cache = None
        if not 0 <= s.position <= self.num_batches:
            raise ValueError(f"sampler state position {s.position} outside [0, {self.num_batches}] "
                             f"for epoch {s.epoch}")
        self._position, self._exhausted = int(s.position), False
