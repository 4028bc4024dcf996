"""Feature encoder: lengths, masked group norm, gradient scaling, too-short inputs."""

from __future__ import annotations

import pytest
import torch

from speechssl.models import get_preset
from speechssl.models.feature_encoder import FeatureEncoder, GradMultiply, masked_group_norm


def test_output_lengths_match_the_convolutions(tiny_cfg):
    enc = FeatureEncoder(tiny_cfg)
    for n in (400, 401, 719, 720, 8000, 16000):
        frames = enc(torch.randn(1, n)).shape[-1]
        assert enc.output_lengths(torch.tensor([n])).item() == frames
    assert enc.output_lengths(torch.tensor([16000, 399, 0])).tolist() == [49, 0, 0]


def test_masked_group_norm_equals_group_norm_on_the_valid_part():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 30)
    w, b = torch.randn(6), torch.randn(6)
    lengths = torch.tensor([30, 17])
    out = masked_group_norm(x, lengths, w, b, 1e-5)
    ref0 = torch.nn.functional.group_norm(x[:1], 6, w, b, 1e-5)
    ref1 = torch.nn.functional.group_norm(x[1:, :, :17], 6, w, b, 1e-5)
    torch.testing.assert_close(out[:1], ref0, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1:, :, :17], ref1, atol=1e-5, rtol=0)
    torch.testing.assert_close(masked_group_norm(x, None, w, b, 1e-5),
                               torch.nn.functional.group_norm(x, 6, w, b, 1e-5))


def test_norms_run_in_fp32_under_autocast(tiny_cfg):
    enc = FeatureEncoder(tiny_cfg.replace(extractor_mode="layer_norm"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        block = enc.blocks[0]
        conv_out = block.conv(torch.randn(2, 1, 800))
        assert conv_out.dtype == torch.bfloat16
        out = block(torch.randn(2, 1, 800))
    assert out.dtype == torch.bfloat16  # fp32 inside, cast back like fairseq's Fp32LayerNorm
    assert torch.isfinite(out.float()).all()


def test_grad_multiply_scales_only_the_gradient():
    x = torch.ones(3, requires_grad=True)
    y = GradMultiply.apply(x, 0.1)
    assert torch.equal(y, x.detach())
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.1))


def test_too_short_input_raises_a_clear_error(tiny_cfg):
    enc = FeatureEncoder(tiny_cfg)
    with pytest.raises(ValueError, match="receptive field"):
        enc(torch.randn(2, 399))
    with pytest.raises(ValueError, match="receptive field"):
        enc(torch.randn(2, 0))
    with pytest.raises(ValueError, match="shorter than the receptive field"):
        enc(torch.randn(2, 800), torch.tensor([800, 100]))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        enc(torch.randn(800))


def test_layer_norm_mode_has_a_norm_per_block():
    enc = FeatureEncoder(get_preset("tiny").replace(extractor_mode="layer_norm", conv_bias=True))
    assert all(isinstance(b.norm, torch.nn.LayerNorm) for b in enc.blocks)
    assert all(b.conv.bias is not None for b in enc.blocks)
