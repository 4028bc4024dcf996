"""Context network: the CPU training attention path equals scaled_dot_product_attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechssl.models.context import Dropout, SelfAttention, dropout_drop, matmul_attention


def _qkv(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 4, 9, 8, generator=g) for _ in range(3))  # (B, H, T, d_h)


@pytest.mark.parametrize("masked", [False, True])
def test_matmul_attention_is_sdpa_with_the_same_keep_mask(masked):
    q, k, v = _qkv()
    attn_mask = None
    if masked:
        attn_mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
        attn_mask[1, ..., 6:] = False
    torch.manual_seed(3)
    out = matmul_attention(q, k, v, attn_mask, 0.3)
    torch.manual_seed(3)
    keep = ~dropout_drop(torch.Size([2, 4, 9, 9]), 0.3, torch.device("cpu"))
    scores = (q @ k.transpose(-2, -1)) / 8**0.5
    if masked:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    ref = (scores.softmax(-1) * keep / 0.7) @ v
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    # without dropout both paths are SDPA's computation
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    torch.testing.assert_close(matmul_attention(q, k, v, attn_mask, 0.0), sdpa, atol=1e-6, rtol=0)


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


def test_dropout_drops_p_and_rescales_like_nn_dropout():
    torch.manual_seed(0)
    drop = Dropout(0.2)
    x = torch.ones(1000, 100, dtype=torch.bfloat16)
    y = drop(x)
    assert y.dtype == torch.bfloat16
    assert set(y.unique().tolist()) <= {0.0, float(torch.tensor(1.25, dtype=torch.bfloat16))}
    assert abs(float((y == 0).float().mean()) - 0.2) < 0.005
    drop.eval()
    assert torch.equal(drop(x), x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_drop_drops_p_in_every_lane_of_the_random_words(p):
    """Four masks come from each 64-bit random word: every 16-bit lane must drop p, the word's top lane
    (whose sign bit is always 0) included."""
    torch.manual_seed(0)
    drop = dropout_drop(torch.Size([400_000]), p, torch.device("cpu"))
    assert drop.dtype == torch.bool
    drop_by_lane = drop.view(-1, 4).float().mean(0)  # lane i of every word
    torch.testing.assert_close(drop_by_lane, torch.full((4,), p), atol=0.005, rtol=0)
    assert not torch.equal(drop, dropout_drop(torch.Size([400_000]), p, torch.device("cpu")))


def test_dropout_of_one_zeroes_everything_like_nn_dropout():
    drop = Dropout(1.0)
    x = torch.randn(3, 5, requires_grad=True)
    y = drop(x)
    assert torch.equal(y, torch.zeros(3, 5))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros(3, 5))


def test_positional_conv_equals_conv1d_on_the_transposed_input():
    """The channels-last 2-D convolution inside PositionalConvEmbedding is its weight-normed Conv1d."""
    from speechssl.models.context import PositionalConvEmbedding

    torch.manual_seed(1)
    pos = PositionalConvEmbedding(32, 16, 4)
    x = torch.randn(2, 10, 32, requires_grad=True)
    out = pos(x)
    ref = F.gelu(pos.conv(x.transpose(1, 2))[:, :, :-1]).transpose(1, 2)  # even kernel: drop the last frame
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    g = torch.randn_like(ref)
    params = [x, *pos.parameters()]
    for a, b in zip(torch.autograd.grad((out * g).sum(), params), torch.autograd.grad((ref * g).sum(), params)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_positional_conv_off_the_cpu_is_the_plain_conv1d(monkeypatch):
    """The channels-last conv2d is a oneDNN tuning, timed on the CPU only: any other device (meta here, which
    runs shapes only; CUDA in tests/training/test_cuda.py) gets the grouped Conv1d, with the same output shape."""
    from speechssl.models import context
    from speechssl.models.context import PositionalConvEmbedding

    def no_conv2d(*args, **kwargs):
        raise AssertionError("the channels-last conv2d ran off the CPU")

    pos = PositionalConvEmbedding(32, 16, 4).to("meta")
    monkeypatch.setattr(context.F, "conv2d", no_conv2d)
    assert pos(torch.empty(2, 10, 32, device="meta")).shape == (2, 10, 32)
    with pytest.raises(AssertionError, match="channels-last"):  # while the CPU still takes it
        PositionalConvEmbedding(32, 16, 4)(torch.randn(2, 10, 32))


@pytest.mark.parametrize("dim,groups", [(32, 4), (64, 16), (128, 8), (256, 16)])
def test_positional_conv_in_bf16_stays_within_bf16_rounding_of_fp32(dim, groups):
    """oneDNN's bf16 grouped conv is wrong for 2-12 channels per group (tiny: 8); those widths are computed
    from bf16-rounded operands in fp32. Every width must stay within bf16 rounding of the fp32 result, under
    autocast and with the weights cast to bf16."""
    from speechssl.models.context import PositionalConvEmbedding

    torch.manual_seed(0)
    pos = PositionalConvEmbedding(dim, 128 if dim > 32 else 16, groups).eval()
    x = torch.randn(2, 50, dim)
    with torch.no_grad():
        fp32 = pos(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = pos(x).float()
        cast = pos.to(torch.bfloat16)(x.bfloat16()).float()
    scale = fp32.abs().max()
    assert (autocast - fp32).abs().max() < 0.03 * scale
    assert (cast - fp32).abs().max() < 0.03 * scale
