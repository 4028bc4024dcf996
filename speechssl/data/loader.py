"""A DataLoader over a manifest dataset driven by :class:`BucketBatchSampler`, resumable mid-epoch.

Workers load and collate whole batches (the batch sampler runs in the main process). Workers persist from
one epoch to the next (no fork and dataset copy per epoch): each batch carries its epoch (which seeds crop
offsets) in its keys, since a worker's copy of the dataset never sees `set_epoch`. Because workers fetch
ahead, the resume position is the number of batches *consumed* from this loader, counted here, not the
number the sampler has handed out.
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
    """Pin batches (page-locked memory) so that host-to-GPU copies can run asynchronously (training on CUDA)."""
    persistent_workers: bool = True
    """With num_workers > 0: keep the worker processes from one epoch (and one validation) to the next."""
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


class _EpochBatches:
    """The sampler's batches as ``(epoch, index)`` keys, the epoch read when the iteration starts."""

    def __init__(self, sampler: BucketBatchSampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.sampler.epoch
        for batch in self.sampler:
            yield [(epoch, index) for index in batch]


class _AtEpoch(torch.utils.data.Dataset):
    """A dataset read with ``(epoch, index)`` keys and collated at that epoch: a persistent worker holds a copy
    of the dataset made when it started, which `AudioDataLoader.set_epoch` never reaches."""

    def __init__(self, dataset: UnlabeledAudioDataset | LabeledAudioDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, object]:
        epoch, index = key
        return epoch, self.dataset[index]

    def collate(self, keyed: list[tuple[int, object]]) -> UnlabeledBatch | LabeledBatch:
        self.dataset.set_epoch(keyed[0][0])
        return self.dataset.collate([item for _, item in keyed])


class AudioDataLoader:
    """Iterable of :class:`UnlabeledBatch` / :class:`LabeledBatch` with ``set_epoch`` and resume state."""

    def __init__(self, dataset: UnlabeledAudioDataset | LabeledAudioDataset, sampler: BucketBatchSampler,
                 config: LoaderConfig) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.config = config
        self._consumed = 0
        self._exhausted = False  # the last iteration consumed the whole epoch
        self._persistent: torch.utils.data.DataLoader | None = None

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
        for batch in self.torch_loader():
            self._consumed += 1
            yield batch
        # stay at the end: a checkpoint taken now records the epoch as finished
        self._exhausted = True

    def torch_loader(self) -> torch.utils.data.DataLoader:
        """The torch DataLoader an iteration reads: one for the loader's lifetime when its workers persist, else
        a new one per iteration."""
        if self._persistent is not None:
            return self._persistent
        cfg = self.config
        persistent = cfg.persistent_workers and cfg.num_workers > 0
        kwargs = {}
        if cfg.num_workers > 0:
            kwargs = {"prefetch_factor": cfg.prefetch_factor, "persistent_workers": persistent}
        # A private generator: creating a DataLoader iterator otherwise draws a seed from the global torch
        # RNG, so a run resumed mid-epoch would diverge from an uninterrupted one. (It seeds the workers' torch
        # RNG only, which loading and collating never draw from: crops come from (seed, epoch, id).)
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.sampler.epoch)
        keyed = _AtEpoch(self.dataset)
        loader = torch.utils.data.DataLoader(
            keyed, batch_sampler=_EpochBatches(self.sampler), collate_fn=keyed.collate,
            num_workers=cfg.num_workers, pin_memory=cfg.pin_memory, generator=generator, **kwargs)
        if persistent:
            self._persistent = loader
        return loader

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
                                                  num_workers=num_workers,
                                                  persistent_workers=False))  # read once
