"""Turning loaded utterances into batches.

Pretraining batches follow fairseq's RawAudioDataset collater: by default every item is cropped to the
batch's shortest (capped at ``max_sample_size``) at a random offset, so no padding and no mask; with
``pad=True`` items longer than ``max_sample_size`` are cropped and the rest padded with zeros and a mask.
Fine-tuning batches are always padded (crops would cut transcripts).

Random offsets come from a generator seeded by ``(seed, epoch, item id)`` rather than global state, so the
same batch is rebuilt bit for bit after a resume, whatever worker process builds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

TARGET_PAD = -100  # ignored by F.ctc_loss users (we mask by target_lengths) and by HF's CTC head


@dataclass(kw_only=True)
class AudioItem:
    """One loaded utterance."""

    id: int
    """Position of the utterance in its manifest."""
    waveform: np.ndarray
    """``(L,)`` float32 at 16 kHz."""
    target: np.ndarray | None = None
    """``(S,)`` int64 token ids (labeled data only)."""
    text: str | None = None
    """Word transcript (labeled data only)."""


@dataclass(kw_only=True)
class UnlabeledBatch:
    """A pretraining batch."""

    waveforms: torch.Tensor
    """``(B, L)`` float32."""
    padding_mask: torch.Tensor | None
    """``(B, L)`` bool, True where padded; None when every item was cropped to the same length."""
    ids: torch.Tensor
    """``(B,)`` int64 manifest positions."""
    num_samples: int
    """Real (unpadded) samples in the batch."""
    num_skipped: int = 0
    """Items of this batch dropped because their file was gone or undecodable (``skip_bad_files``)."""

    def __len__(self) -> int:
        return int(self.waveforms.shape[0])

    DEVICE_FIELDS = ("waveforms",)
    """What `to` moves. The padding mask stays on the host: the model reads it there (lengths, masks and
    distractors are drawn on the host), so a device copy would be one more transfer and a read back."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> UnlabeledBatch:
        return _moved(self, device, non_blocking)

    def pin_memory(self) -> UnlabeledBatch:
        # Called by DataLoader(pin_memory=True) on custom batch types.
        return _pinned(self)


@dataclass(kw_only=True)
class LabeledBatch:
    """A fine-tuning batch."""

    waveforms: torch.Tensor
    """``(B, L)`` float32, zero-padded."""
    padding_mask: torch.Tensor
    """``(B, L)`` bool, True where padded."""
    targets: torch.Tensor
    """``(B, S)`` int64 token ids, padded with -100."""
    target_lengths: torch.Tensor
    """``(B,)`` int64 number of real tokens per row."""
    ids: torch.Tensor
    """``(B,)`` int64 manifest positions."""
    texts: list[str]
    """Word transcripts (for WER)."""
    num_samples: int = 0
    """Real (unpadded) samples in the batch."""
    num_skipped: int = 0
    """Items dropped because their file was gone or undecodable (``skip_bad_files``)."""

    def __len__(self) -> int:
        return int(self.waveforms.shape[0])

    DEVICE_FIELDS = ("waveforms", "targets")
    """What `to` moves. The padding mask and target lengths stay on the host, where the model and ctc_loss
    read them."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LabeledBatch:
        return _moved(self, device, non_blocking)

    def pin_memory(self) -> LabeledBatch:
        return _pinned(self)


def _moved(batch, device: torch.device | str, non_blocking: bool):
    """`batch` with its DEVICE_FIELDS on `device`, the other fields as they are."""
    return dataclasses.replace(batch, **{name: getattr(batch, name).to(device, non_blocking=non_blocking)
                                         for name in batch.DEVICE_FIELDS})


def _pinned(batch):
    """`batch` with its DEVICE_FIELDS in pinned memory (what `to` copies asynchronously)."""
    return dataclasses.replace(batch, **{name: getattr(batch, name).pin_memory() for name in batch.DEVICE_FIELDS})


def crop_rng(seed: int, epoch: int, item_id: int) -> np.random.Generator:
    """Generator for one item's crop offset, independent of process and global RNG state."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(item_id)])


def random_crop(waveform: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A window of ``size`` samples at a uniform offset in ``[0, L - size]`` (whole array if shorter)."""
    excess = waveform.shape[0] - size
    if excess <= 0:
        return waveform
    start = int(rng.integers(0, excess + 1))
    return waveform[start:start + size]


def _pad_stack(waveforms: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = [w.shape[0] for w in waveforms]
    longest = max(lengths, default=0)
    out = np.zeros((len(waveforms), longest), dtype=np.float32)  # (B, L)
    mask = np.ones((len(waveforms), longest), dtype=bool)  # (B, L) True = padding
    for row, w in enumerate(waveforms):
        out[row, :w.shape[0]] = w
        mask[row, :w.shape[0]] = False
    return torch.from_numpy(out), torch.from_numpy(mask)


def collate_unlabeled(
    items: Sequence[AudioItem | None],
    *,
    pad: bool = False,
    max_sample_size: int | None = None,
    seed: int = 0,
    epoch: int = 0,
) -> UnlabeledBatch:
    """Items -> :class:`UnlabeledBatch`; ``None`` items (skipped bad files) are counted and dropped.

    ``pad=False``: crop all to ``min(shortest, max_sample_size)`` (random offsets), no mask.
    ``pad=True``: crop those longer than ``max_sample_size``, then zero-pad to the longest with a mask.
    """
    kept = [item for item in items if item is not None]
    skipped = len(items) - len(kept)
    if not kept:
        return UnlabeledBatch(waveforms=torch.zeros(0, 0), padding_mask=None,
                              ids=torch.zeros(0, dtype=torch.long), num_samples=0, num_skipped=skipped)
    cap = max_sample_size if max_sample_size is not None else np.iinfo(np.int64).max
    ids = torch.tensor([item.id for item in kept], dtype=torch.long)
    if pad:
        crops = [random_crop(it.waveform, cap, crop_rng(seed, epoch, it.id)) for it in kept]
        waveforms, mask = _pad_stack(crops)
        return UnlabeledBatch(waveforms=waveforms, padding_mask=mask, ids=ids,
                              num_samples=sum(c.shape[0] for c in crops), num_skipped=skipped)
    size = min(min(it.waveform.shape[0] for it in kept), cap)
    crops = [random_crop(it.waveform, size, crop_rng(seed, epoch, it.id)) for it in kept]
    waveforms = torch.from_numpy(np.stack(crops).astype(np.float32, copy=False))  # (B, size)
    return UnlabeledBatch(waveforms=waveforms, padding_mask=None, ids=ids,
                          num_samples=size * len(crops), num_skipped=skipped)


def collate_labeled(items: Sequence[AudioItem | None]) -> LabeledBatch:
    """Items with targets -> :class:`LabeledBatch` (padded audio and targets)."""
    kept = [item for item in items if item is not None]
    skipped = len(items) - len(kept)
    waveforms, mask = _pad_stack([it.waveform for it in kept])
    target_lengths = [0 if it.target is None else int(it.target.shape[0]) for it in kept]
    targets = np.full((len(kept), max(target_lengths, default=0)), TARGET_PAD, dtype=np.int64)  # (B, S)
    for row, it in enumerate(kept):
        if it.target is not None:
            targets[row, :it.target.shape[0]] = it.target
    return LabeledBatch(
        waveforms=waveforms, padding_mask=mask, targets=torch.from_numpy(targets),
        target_lengths=torch.tensor(target_lengths, dtype=torch.long),
        ids=torch.tensor([it.id for it in kept], dtype=torch.long),
        texts=[it.text or "" for it in kept],
        num_samples=sum(it.waveform.shape[0] for it in kept), num_skipped=skipped)
