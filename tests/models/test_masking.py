"""Span masks and distractor sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechssl.models.masking import compute_channel_mask, compute_mask_indices, sample_distractors


def test_masked_fraction_matches_paper_and_transformers():
    rng = np.random.default_rng(0)
    mask = compute_mask_indices((200, 500), None, 0.65, 10, min_masks=2, require_same_masks=False, rng=rng)
    ours = mask.mean()
    assert abs(ours - 0.49) < 0.01
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

    np.random.seed(0)
    theirs = np.mean([_compute_mask_indices((1, 500), 0.65, 10, min_masks=2).mean() for _ in range(200)])
    assert abs(theirs - 0.488) < 0.01
    assert abs(ours - theirs) < 0.01


def test_padding_is_never_masked_and_same_counts():
    padding = torch.zeros(4, 120, dtype=torch.bool)
    padding[1, 70:] = True
    padding[3, 30:] = True
    mask = compute_mask_indices((4, 120), padding, 0.65, 10, min_masks=2, rng=np.random.default_rng(1))
    assert not (mask & padding.numpy()).any()
    counts = mask.sum(1)
    assert (counts == counts[0]).all() and counts[0] > 0


def test_without_require_same_masks_counts_follow_lengths():
    padding = torch.zeros(2, 400, dtype=torch.bool)
    padding[1, 100:] = True
    mask = compute_mask_indices((2, 400), padding, 0.65, 10, min_masks=2, require_same_masks=False,
                                rng=np.random.default_rng(2))
    assert mask[0].sum() > 2 * mask[1].sum()
    assert not mask[1, 100:].any()


def test_min_masks_and_short_inputs():
    mask = compute_mask_indices((3, 12), None, 0.05, 10, min_masks=2, require_same_masks=False,
                                rng=np.random.default_rng(3))
    assert (mask.sum(1) >= 10).all()  # two spans of 10 over 12 frames cover at least 10
    mask = compute_mask_indices((2, 5), None, 0.65, 10, min_masks=2, rng=np.random.default_rng(3))
    assert mask.shape == (2, 5) and mask.any()


def test_no_overlap_keeps_spans_apart():
    mask = compute_mask_indices((8, 300), None, 0.3, 10, min_masks=2, no_overlap=True, min_space=1,
                                require_same_masks=False, rng=np.random.default_rng(4))
    for row in mask:
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0])))[::2]
        assert (runs == 10).all()


def test_row_seeds_make_a_mask_independent_of_the_batch():
    alone = compute_mask_indices((1, 200), None, 0.65, 10, min_masks=2, require_same_masks=False, seeds=[7])
    padding = torch.zeros(3, 200, dtype=torch.bool)
    padding[0, 150:] = True
    batch = compute_mask_indices((3, 200), padding, 0.65, 10, min_masks=2, require_same_masks=False,
                                 seeds=[1, 7, 9])
    np.testing.assert_array_equal(alone[0], batch[1])
    assert not np.array_equal(batch[1], batch[2])


def test_channel_mask_shape_and_rate():
    mask = compute_channel_mask(64, 256, 0.5, 64, rng=np.random.default_rng(5))
    assert mask.shape == (64, 256) and 0.25 < mask.mean() < 0.6


def test_channel_masks_with_same_count_as_fairseq():
    """fairseq's fine-tuning channel masks keep the batch's smallest count of masked channels per utterance, a
    subset of each one's own spans; at BASE 960h's p=0.1 (1.2 spans of 64 expected over 768 channels) that
    masks 64 channels where each utterance on its own would mask 75 on average (p=0.5: 248 against 310)."""
    rng = np.random.default_rng(3)
    free = compute_channel_mask(8, 768, 0.1, 64, rng=np.random.default_rng(3))
    same = compute_channel_mask(8, 768, 0.1, 64, require_same_masks=True, rng=rng)
    counts = same.sum(axis=1)
    assert (counts == counts[0]).all() and counts[0] == free.sum(axis=1).min()
    assert (same <= free).all()  # the same draws, subsampled: no channel outside the utterance's own spans
    many = np.concatenate([compute_channel_mask(8, 768, 0.1, 64, require_same_masks=True, rng=rng)
                           for _ in range(200)])
    assert 0.07 < many.mean() < 0.09 < compute_channel_mask(1600, 768, 0.1, 64, rng=rng).mean()


def _random_mask(b: int, t: int, p: float, seed: int, padding: torch.Tensor | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, t, generator=g) < p
    if padding is not None:
        mask &= ~padding
    return mask


def test_distractors_are_other_masked_steps_of_the_same_utterance():
    padding = torch.zeros(3, 50, dtype=torch.bool)
    padding[2, 20:] = True
    mask = _random_mask(3, 50, 0.5, 0, padding)  # different masked counts per utterance
    neg = sample_distractors(mask, 20, generator=torch.Generator().manual_seed(0))
    assert neg.shape == (3, 50, 20) and neg.dtype == torch.long
    flat_mask = mask.reshape(-1)
    for b, t in mask.nonzero().tolist():
        own = b * 50 + t
        idx = neg[b, t]
        assert (idx != own).all()  # never the positive
        assert flat_mask[idx].all()  # only masked steps: never padding, never unmasked
        assert ((idx // 50) == b).all()  # same utterance


def test_distractors_are_uniform_over_the_others():
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, [1, 3, 4, 8]] = True
    neg = sample_distractors(mask, 3000, generator=torch.Generator().manual_seed(1))
    picks = neg[0, 3]  # step 3: others are 1, 4, 8
    counts = torch.bincount(picks, minlength=10).float()
    assert counts[[0, 2, 3, 5, 6, 7, 9]].sum() == 0
    assert torch.allclose(counts[[1, 4, 8]] / 3000, torch.full((3,), 1 / 3), atol=0.04)


def test_distractor_seeds_are_per_utterance():
    mask = _random_mask(2, 40, 0.5, 2)
    a = sample_distractors(mask, 5, seeds=[3, 4])
    b = sample_distractors(mask[1:], 5, seeds=[4])
    assert torch.equal(a[1] - 40, b[0])


@pytest.mark.parametrize("bad", [torch.zeros(3, dtype=torch.bool)])
def test_distractors_reject_bad_shapes(bad):
    with pytest.raises(ValueError, match="mask_indices"):
        sample_distractors(bad, 4)
