"""Context network: the CPU training attention path equals scaled_dot_product_attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechssl.models.context import SelfAttention, attention_with_dropout


def _qkv(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 4, 9, 8, generator=g) for _ in range(3))  # (B, H, T, d_h)


@pytest.mark.parametrize("masked", [False, True])
def test_attention_with_dropout_is_sdpa_with_the_same_keep_mask(masked):
    q, k, v = _qkv()
    attn_mask = None
    if masked:
        attn_mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
        attn_mask[1, ..., 6:] = False
    torch.manual_seed(3)
    out = attention_with_dropout(q, k, v, attn_mask, 0.3)
    torch.manual_seed(3)
    keep = torch.rand(2, 4, 9, 9) >= 0.3
    scores = (q @ k.transpose(-2, -1)) / 8**0.5
    if masked:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    ref = (scores.softmax(-1) * keep / 0.7) @ v
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    # without dropout both paths are SDPA's computation
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    torch.testing.assert_close(attention_with_dropout(q, k, v, attn_mask, 1e-12), sdpa, atol=1e-6, rtol=0)


def test_self_attention_drops_about_p_of_the_probabilities_in_training():
    torch.manual_seed(0)
    attn = SelfAttention(16, 2, dropout=0.5)
    x = torch.randn(4, 50, 16)
    attn.eval()
    ref = attn(x, None)
    attn.train()
    outs = torch.stack([attn(x, None) for _ in range(200)])
    assert not torch.allclose(outs[0], ref)
    torch.testing.assert_close(outs.mean(0), ref, atol=0.05, rtol=0)  # inverted dropout is unbiased
