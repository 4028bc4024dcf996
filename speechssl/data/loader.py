"""A DataLoader over a manifest dataset driven by :class:`BucketBatchSampler`, resumable mid-epoch.

Workers load and collate whole batches (the batch sampler runs in the main process). Workers are not
persistent: the dataset's epoch (which seeds crop offsets) reaches them when each epoch's iterator starts.
Because workers fetch ahead, the resume position is the number of batches *consumed* from this loader,
counted here, not the number the sampler has handed out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch.utils.data

from speechssl.data.collate import LabeledBatch, UnlabeledBatch
from speechssl.data.datasets import LabeledAudioDataset, UnlabeledAudioDataset
from speechssl.data.sampler import BucketBatchSampler


@dataclass(kw_only=True)
class LoaderConfig:
    """Batching and worker settings."""

    max_tokens: int = 1_400_000
    """Samples per batch including padding (fairseq BASE: 1.4M per GPU)."""
    max_batch_size: int | None = None
    """Optional cap on utterances per batch."""
    required_batch_size_multiple: int = 8
    """Round batch sizes down to this multiple when the budget cuts a batch (fairseq: 8)."""
    shuffle: bool = True
    """Shuffle batches each epoch (False for evaluation)."""
    seed: int = 0
    """Batch order seed (with the epoch)."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the main process)."""
    pin_memory: bool = False
    """Pin batches for faster host-to-GPU copies."""
    prefetch_factor: int = 2
    """Batches prefetched per worker."""

    def validate(self) -> None:
        if self.max_tokens <= 0:
            raise ValueError(f"`max_tokens` must be > 0, got {self.max_tokens}")
        if self.num_workers < 0:
            raise ValueError(f"`num_workers` must be >= 0, got {self.num_workers}")
        if self.prefetch_factor <= 0:
            raise ValueError(f"`prefetch_factor` must be > 0, got {self.prefetch_factor}")
        if self.required_batch_size_multiple <= 0:
            raise ValueError(f"`required_batch_size_multiple` must be > 0, got "
                             f"{self.required_batch_size_multiple}")


class AudioDataLoader:
    """Iterable of :class:`UnlabeledBatch` / :class:`LabeledBatch` with ``set_epoch`` and resume state."""

    def __init__(self, dataset: UnlabeledAudioDataset | LabeledAudioDataset, sampler: BucketBatchSampler,
                 config: LoaderConfig) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.config = config
        self._consumed = 0
        self._exhausted = False  # the last iteration consumed the whole epoch

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Call before iterating each epoch (sets batch order and crop offsets)."""
        if int(epoch) != self.sampler.epoch:
            self._consumed, self._exhausted = 0, False
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        """Batches the next iteration yields on this rank."""
        if self._exhausted:
            return self.sampler.num_batches
        return self.sampler.num_batches - self._consumed

    def __iter__(self) -> Iterator[UnlabeledBatch | LabeledBatch]:
        self.dataset.set_epoch(self.sampler.epoch)
        if self._exhausted:  # a finished epoch iterated again (validation sets) starts over
            self._consumed, self._exhausted = 0, False
        # workers fetch ahead of the consumer: restart the sampler where consumption stopped
        self.sampler.seek(self._consumed)
        kwargs = {}
        if self.config.num_workers > 0:
            kwargs = {"prefetch_factor": self.config.prefetch_factor, "persistent_workers": False}
        # A private generator: creating a DataLoader iterator otherwise draws a seed from the global torch
        # RNG, so a run resumed mid-epoch would diverge from an uninterrupted one.
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.sampler.epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self.sampler, collate_fn=self.dataset.collate,
            num_workers=self.config.num_workers, pin_memory=self.config.pin_memory, generator=generator,
            **kwargs)
        for batch in loader:
            self._consumed += 1
            yield batch
        # stay at the end: a checkpoint taken now records the epoch as finished
        self._exhausted = True

    def state_dict(self) -> dict:
        """Sampler state at the number of batches consumed from this loader so far."""
        return self.sampler.state_dict(position=self._consumed)

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self.dataset.set_epoch(self.sampler.epoch)
        self._consumed, self._exhausted = int(state["position"]), False


def build_dataloader(
    dataset: UnlabeledAudioDataset | LabeledAudioDataset,
    config: LoaderConfig | None = None,
    *,
    num_replicas: int = 1,
    rank: int = 0,
) -> AudioDataLoader:
    """Bucketed, sharded, resumable loader over ``dataset`` (lengths from ``dataset.batch_lengths``)."""
    config = config or LoaderConfig()
    config.validate()
    sampler = BucketBatchSampler(
        dataset.batch_lengths, max_tokens=config.max_tokens, max_batch_size=config.max_batch_size,
        required_batch_size_multiple=config.required_batch_size_multiple, shuffle=config.shuffle,
        seed=config.seed, num_replicas=num_replicas, rank=rank)
    return AudioDataLoader(dataset, sampler, config)


def inference_loader(dataset: UnlabeledAudioDataset | LabeledAudioDataset, *, max_tokens: int,
                     num_workers: int = 0) -> AudioDataLoader:
    """The loader of evaluation, validation scoring and feature dumps: batches in ascending length (little
    padding), never shuffled, under ``max_tokens`` padded samples; an utterance longer than that gets a batch
    of its own instead of being refused (inference holds no gradients)."""
    lengths = dataset.batch_lengths
    budget = max(int(max_tokens), int(lengths.max()) if len(lengths) else 1)
    return build_dataloader(dataset, LoaderConfig(max_tokens=budget, shuffle=False, required_batch_size_multiple=1,
                                                  num_workers=num_workers))
