"""time_major_conv1d (the fp32 CPU convolutions of the feature encoder) equals F.conv1d, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechssl.models.time_major_conv import time_major_conv1d


@pytest.mark.parametrize("batch,frames,c_in,c_out,kernel,stride,bias", [
    (2, 37, 5, 7, 3, 2, True),   # wav2vec 2.0's 3-tap stride-2 blocks; an odd length leaves a frame unread
    (3, 40, 4, 6, 2, 2, False),  # the 2-tap stride-2 blocks: one matmul on a reshaped view
    (2, 41, 3, 5, 5, 2, True),   # three tap blocks
    (2, 30, 3, 4, 1, 3, True),   # kernel < stride: frames skipped, their gradient zero
    (1, 20, 3, 4, 4, 1, True),   # stride 1
    (2, 3, 6, 3, 3, 3, False),   # exactly one output frame
])
def test_equals_conv1d_forward_and_backward(batch, frames, c_in, c_out, kernel, stride, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, frames, c_in, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(c_out, c_in, kernel, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(c_out, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    inputs = [x, w] + ([b] if bias else [])

    y = time_major_conv1d(x, w, b, stride)
    expected = F.conv1d(x.transpose(1, 2), w, b, stride=stride).transpose(1, 2)
    assert y.shape == expected.shape and y.is_contiguous()
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)
    grad_y = torch.randn(y.shape, dtype=torch.float64, generator=g)
    for ours, ref in zip(torch.autograd.grad(y, inputs, grad_y), torch.autograd.grad(expected, inputs, grad_y)):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_only_the_needed_gradients_and_a_strided_input():
    x = torch.randn(2, 9, 16, dtype=torch.float64).transpose(1, 2)  # (B, T=16, C=9), not contiguous
    w = torch.randn(4, 9, 3, dtype=torch.float64, requires_grad=True)
    y = time_major_conv1d(x, w, None, 2)
    (gw,) = torch.autograd.grad(y.sum(), [w])
    torch.testing.assert_close(gw, torch.autograd.grad(F.conv1d(x.transpose(1, 2), w, None, 2).sum(), [w])[0])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="frames are fewer"):
        time_major_conv1d(torch.randn(1, 2, 3), torch.randn(4, 3, 3), None, 2)
    with pytest.raises(ValueError, match=r"\(B, T, C_in\)"):
        time_major_conv1d(torch.randn(1, 8, 5), torch.randn(4, 3, 3), None, 2)
