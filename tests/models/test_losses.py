"""The fast contrastive logits equal the reference formulation (cosine against gathered distractors)."""

from __future__ import annotations

import pytest
import torch

from speechssl.models import sample_distractors
from speechssl.models.losses import contrastive_logits, sampled_contrastive_logits


def _rows(mask: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    flat = mask.reshape(-1)
    row_of = torch.full((flat.numel(),), -1, dtype=torch.long)
    row_of[flat] = torch.arange(int(flat.sum()))
    return row_of[negatives[mask]]  # (S, K)


@pytest.mark.parametrize("same_counts", [True, False])
def test_sampled_logits_equal_gathered_logits_and_gradients(same_counts):
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(3, 40, generator=g) < 0.5
    if same_counts:
        mask = torch.zeros(3, 40, dtype=torch.bool)
        mask[:, 5:25] = True
    mask[2, :] = False
    mask[2, 7] = True  # one utterance with a single masked step: its distractors are itself (-inf)
    rows = _rows(mask, sample_distractors(mask, 10, generator=g))
    s = rows.shape[0]
    pred = torch.randn(s, 16, generator=g, requires_grad=True)
    targets = torch.randn(s, 16, generator=g)
    targets[3] = targets[int(rows[3, 0])]  # a distractor identical to its positive
    targets.requires_grad_(True)

    ref = contrastive_logits(pred, targets, targets[rows], 0.1)
    fast = sampled_contrastive_logits(pred, targets, rows, mask.sum(1), 0.1)
    assert fast.dtype == torch.float32 and fast.shape == (s, 11)
    assert torch.equal(torch.isinf(ref), torch.isinf(fast)) and bool(torch.isinf(fast[3, 1]))
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
    target = torch.zeros(s, dtype=torch.long)
    grads_ref = torch.autograd.grad(torch.nn.functional.cross_entropy(ref, target), (pred, targets))
    grads_fast = torch.autograd.grad(torch.nn.functional.cross_entropy(fast, target), (pred, targets))
    for a, b in zip(grads_ref, grads_fast):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_sampled_logits_accept_distractors_from_other_utterances():
    g = torch.Generator().manual_seed(1)
    pred, targets = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    rows = torch.tensor([[1, 4], [0, 5], [3, 0], [2, 1], [5, 3], [4, 2]])  # rows 0-2 utterance 0, 3-5 utterance 1
    fast = sampled_contrastive_logits(pred, targets, rows, torch.tensor([3, 3]), 0.1)
    torch.testing.assert_close(fast, contrastive_logits(pred, targets, targets[rows], 0.1), atol=1e-5, rtol=0)


def test_sampled_logits_group_bf16_targets_without_a_bf16_unique(monkeypatch):
    """Targets from autocast are bf16; CUDA's `unique` had no bf16 kernel before torch 2.5 (pyproject allows
    2.4). A `unique` that refuses bf16, as that one did, still finds the distractor equal to its positive."""
    real_unique = torch.unique

    def unique_without_bf16(x, *args, **kwargs):
        if x.dtype in (torch.bfloat16, torch.float16):
            raise RuntimeError(f'"unique_dim" not implemented for {x.dtype}')
        return real_unique(x, *args, **kwargs)

    monkeypatch.setattr(torch, "unique", unique_without_bf16)
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(6, 8, generator=g).bfloat16()
    targets = torch.randn(6, 8, generator=g).bfloat16()
    rows = torch.tensor([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]])
    targets[4] = targets[3]  # step 3's first distractor is its positive
    fast = sampled_contrastive_logits(pred, targets, rows, torch.tensor([3, 3]), 0.1)
    ref = contrastive_logits(pred, targets, targets[rows], 0.1)
    assert torch.equal(torch.isinf(fast), torch.isinf(ref)) and bool(torch.isinf(fast[3, 1]))
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=0)
