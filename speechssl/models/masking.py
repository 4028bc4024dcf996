"""Span masks (time and channel) and distractor sampling for wav2vec 2.0.

`compute_mask_indices` follows fairseq's ``data_utils.compute_mask_indices`` (static span lengths): per
utterance of unpadded length ``sz``, ``num_mask = max(min_masks, int(mask_prob * sz / mask_length + u))``
span starts drawn without replacement from ``sz - mask_length`` positions, spans clipped at ``sz``, overlaps
allowed (or placed apart with `no_overlap`), and with `require_same_masks` every utterance is subsampled to
the batch's smallest masked count. About 49 % of frames are masked at p=0.65, length 10.

`sample_distractors` draws, for each masked step, K indices uniformly with replacement from the OTHER masked
steps of the same utterance (fairseq ``sample_negatives``), vectorised over the batch, in transformers'
``sampled_negative_indices`` layout: (B, T, K) indices into the flattened B*T axis.

Both take per-utterance seeds (`mask_seed`) so that an utterance's masks depend on the utterance, never on
the batch it shares or the rank it lands on.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch


def _as_numpy_bool(mask: torch.Tensor | np.ndarray | None) -> np.ndarray | None:
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask, dtype=bool)


def _span_starts_no_overlap(rng: np.random.Generator, sz: int, lengths: np.ndarray, min_space: int) -> np.ndarray:
    """Frames covered by non-overlapping spans placed one by one into the free intervals (fairseq's
    `no_overlap` algorithm: an interval is chosen with probability proportional to its usable size)."""
    covered: list[int] = []
    parts = [(0, sz)]
    keep_length = int(min(lengths))
    for length in sorted((int(v) for v in lengths), reverse=True):
        sizes = np.array([e - s if e - s >= length + min_space else 0 for s, e in parts], dtype=np.int64)
        if sizes.sum() == 0:
            break
        s, e = parts.pop(int(rng.choice(len(parts), p=sizes / sizes.sum())))
        start = int(rng.integers(s, e - length))
        covered.extend(range(start, start + length))
        if start - s - min_space >= keep_length:
            parts.append((s, start - min_space + 1))
        if e - start - length - min_space > keep_length:
            parts.append((start + length + min_space, e))
    return np.asarray(covered, dtype=np.int64)


def compute_mask_indices(
    shape: tuple[int, int],
    padding_mask: torch.Tensor | np.ndarray | None,
    mask_prob: float,
    mask_length: int,
    *,
    min_masks: int = 0,
    no_overlap: bool = False,
    min_space: int = 0,
    require_same_masks: bool = True,
    rng: np.random.Generator | None = None,
    seeds: Sequence[int] | None = None,
) -> np.ndarray:
    """Random span mask of shape (B, T), True where masked; padded frames are never masked.

    Args:
        shape: (B, T).
        padding_mask: (B, T) True where padded (right padding), or None.
        mask_prob, mask_length, min_masks, no_overlap, min_space, require_same_masks: fairseq semantics.
        rng: the generator for the whole batch (a fresh unseeded one when None).
        seeds: one seed per utterance; utterance b then draws its spans from its own generator, so its
            candidate mask depends only on its seed and length, not on the batch it is in. (With
            require_same_masks the final subsampling still depends on the batch's smallest count.)
    Returns:
        np.ndarray bool (B, T).
    """
    batch_size, all_sz = shape
    if mask_length < 1:
        raise ValueError(f"`mask_length` must be >= 1, got {mask_length}")
    if not 0.0 <= mask_prob < 1.0:
        raise ValueError(f"`mask_prob` must be in [0, 1), got {mask_prob}")
    if seeds is not None and len(seeds) != batch_size:
        raise ValueError(f"`seeds` must hold one seed per utterance ({batch_size}), got {len(seeds)}")
    pad = _as_numpy_bool(padding_mask)
    rng = rng if rng is not None else np.random.default_rng()
    mask = np.zeros((batch_size, all_sz), dtype=bool)
    if mask_prob == 0.0 and min_masks == 0:
        return mask

    row_rngs = [np.random.default_rng(int(s)) for s in seeds] if seeds is not None else [rng] * batch_size
    chosen: list[np.ndarray] = []
    for b in range(batch_size):
        r = row_rngs[b]
        sz = all_sz - int(pad[b].sum()) if pad is not None else all_sz
        if sz <= 0:
            chosen.append(np.zeros(0, dtype=np.int64))
            continue
        # probabilistic rounding of the expected number of spans
        num_mask = max(min_masks, int(mask_prob * sz / float(mask_length) + r.random()))
        lengths = np.full(num_mask, mask_length, dtype=np.int64)
        if num_mask == 0:
            chosen.append(np.zeros(0, dtype=np.int64))
            continue
        if no_overlap:
            idx = _span_starts_no_overlap(r, sz, lengths, min_space)
        else:
            min_len = mask_length
            if sz - min_len <= num_mask:  # too short for num_mask distinct starts: widen the start range
                min_len = sz - num_mask - 1
            starts = r.choice(sz - min_len, num_mask, replace=False)
            idx = (starts[:, None] + np.arange(mask_length)[None, :]).reshape(-1)  # (num_mask * mask_length,)
        chosen.append(np.unique(idx[idx < sz]))

    min_count = min(len(c) for c in chosen)
    for b, idx in enumerate(chosen):
        if require_same_masks and len(idx) > min_count:
            idx = row_rngs[b].choice(idx, min_count, replace=False)
        mask[b, idx] = True
    return mask


def mask_seed(seed: int, num_updates: int, utterance_id: int) -> int:
    """A per-utterance mask seed: masks then depend on (seed, update, utterance), never on the batch an
    utterance shares or the rank it lands on, so accumulation and DDP see the same masks as one big batch."""
    return zlib.crc32(f"{seed}:{num_updates}:{utterance_id}".encode()) & 0x7FFFFFFF


def compute_channel_mask(
    batch_size: int, num_channels: int, mask_prob: float, mask_length: int, *, min_masks: int = 0,
    require_same_masks: bool = False, rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Channel (feature-axis) span mask (B, C), True where the channel is zeroed for every frame (fairseq's
    mask_channel_*, applied after time masking). `require_same_masks`: every utterance keeps the batch's smallest
    count of masked channels, a random subset of its own (fairseq always does this for channels: its call keeps
    compute_mask_indices' default; transformers does not)."""
    return compute_mask_indices((batch_size, num_channels), None, mask_prob, mask_length, min_masks=min_masks,
                                require_same_masks=require_same_masks, rng=rng)


def sample_distractors(
    mask_indices: torch.Tensor,
    num_negatives: int,
    *,
    generator: torch.Generator | None = None,
    seeds: Sequence[int] | None = None,
) -> torch.Tensor:
    """Distractor indices for every masked step.

    For a masked step of utterance b with M_b masked steps, K indices are drawn uniformly with replacement
    from the M_b - 1 other masked steps of b (draw from M_b - 1 values, shift those >= the step's own rank by
    one), so a distractor is never the positive and never a padded or unmasked frame. Utterances may have
    different M_b. An utterance with a single masked step has no other step to draw from: its distractors
    point at the step itself, which the contrastive logits then set to -inf (they carry no signal).

    Args:
        mask_indices: (B, T) bool, True at masked steps.
        num_negatives: K.
        generator: torch generator for the draws (global RNG when None).
        seeds: one seed per utterance, making each utterance's draws independent of the batch.
    Returns:
        (B, T, K) long indices into the flattened (B*T) axis; rows of unmasked steps hold b*T (unused).
    """
    if mask_indices.dim() != 2:
        raise ValueError(f"mask_indices must be (B, T), got shape {tuple(mask_indices.shape)}")
    mask = mask_indices.to(torch.bool)
    batch_size, num_frames = mask.shape
    device = mask.device
    counts = mask.sum(1)  # (B,)
    rank = mask.long().cumsum(1) - 1  # (B, T) rank of each masked step within its utterance
    # positions of the masked steps first, in time order: (B, T); row b's first counts[b] entries
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)

    shape = (batch_size, num_frames, num_negatives)
    if seeds is not None:
        if len(seeds) != batch_size:
            raise ValueError(f"`seeds` must hold one seed per utterance ({batch_size}), got {len(seeds)}")
        rows = [torch.rand(shape[1:], generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
                for s in seeds]
        u = torch.stack(rows).to(device)  # (B, T, K)
    else:
        draw_device = generator.device if generator is not None else device
        u = torch.rand(shape, generator=generator, dtype=torch.float64, device=draw_device).to(device)
    others = (counts - 1).clamp(min=1)[:, None, None]  # (B, 1, 1) how many steps to draw from
    draw = torch.minimum((u * others).long(), others - 1)  # (B, T, K) in [0, M_b - 2]
    draw = draw + (draw >= rank[:, :, None]).long()  # skip the step's own rank
    draw = torch.minimum(draw, (counts - 1).clamp(min=0)[:, None, None])  # M_b == 1: the step itself
    positions = order.gather(1, draw.reshape(batch_size, -1)).reshape(shape)  # (B, T, K) time positions
    offsets = (torch.arange(batch_size, device=device) * num_frames)[:, None, None]  # (B, 1, 1)
    flat = positions + offsets
    return torch.where(mask[:, :, None], flat, offsets.expand(shape))
