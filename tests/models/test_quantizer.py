"""Gumbel vector quantizer."""

from __future__ import annotations

import math

import torch

from speechssl.models.quantizer import GumbelVectorQuantizer, perplexity


def _quantizer(**kw) -> GumbelVectorQuantizer:
    torch.manual_seed(0)
    return GumbelVectorQuantizer(16, num_groups=2, num_vars=8, codevector_dim=12, **kw)


def test_init_and_shapes():
    q = _quantizer()
    assert q.codevectors.shape == (1, 16, 6)
    assert (q.codevectors >= 0).all() and (q.codevectors < 1).all()
    assert torch.count_nonzero(q.weight_proj.bias) == 0
    out = q(torch.randn(40, 16))
    assert out.codevectors.shape == (40, 12) and out.indices.shape == (40, 2)


def test_eval_picks_the_argmax_codevector():
    q = _quantizer().eval()
    x = torch.randn(5, 16)
    out = q(x)
    logits = q.weight_proj(x).view(5, 2, 8)
    idx = logits.argmax(-1)
    book = q.codevectors.view(2, 8, 6)
    expected = torch.cat([book[0, idx[:, 0]], book[1, idx[:, 1]]], dim=-1)
    torch.testing.assert_close(out.codevectors, expected)
    assert torch.equal(out.indices, idx)


def test_training_is_hard_but_differentiable():
    q = _quantizer().train()
    x = torch.randn(30, 16, requires_grad=True)
    out = q(x)
    book = q.codevectors.view(2, 8, 6)
    chosen = torch.cat([book[0, out.indices[:, 0]], book[1, out.indices[:, 1]]], dim=-1)
    torch.testing.assert_close(out.codevectors, chosen)  # forward is exactly one entry per group
    (out.codevectors.sum() + out.prob_perplexity).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert q.weight_proj.weight.grad.abs().sum() > 0


def test_perplexity_definition():
    uniform = torch.full((4, 2, 8), 1 / 8)
    assert math.isclose(perplexity(uniform).item(), 16.0, rel_tol=1e-6)
    onehot = torch.zeros(4, 2, 8)
    onehot[:, :, 3] = 1
    assert math.isclose(perplexity(onehot).item(), 2.0, rel_tol=1e-6)


def test_temperature_schedule():
    q = _quantizer(max_temp=2.0, min_temp=0.5, temp_decay=0.999995)
    assert q.temperature == 2.0
    q.set_num_updates(100_000)
    assert math.isclose(q.temperature, 2.0 * 0.999995**100_000)
    q.set_num_updates(10_000_000)
    assert q.temperature == 0.5


def test_fp32_under_autocast():
    q = _quantizer().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(torch.randn(10, 16))
    assert out.prob_perplexity.dtype == torch.float32
    assert out.code_perplexity.dtype == torch.float32
