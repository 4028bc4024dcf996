"""A strided Conv1d on time-major frames (B, T, C), computed as matmuls on views of the input (no unfold copy).

Why: oneDNN's fp32 backward of the feature encoder's stride-2 convolutions ran at 30 GFLOP/s on an Intel Xeon
(AVX-512, no AMX) against 342 GFLOP/s for a plain matmul: 1.7 s of a 4.3 s BASE pretraining step went to the
backward of the second conv block alone. On time-major memory the convolution is a few ordinary matmuls:
output frame t reads input frames s*t .. s*t + k - 1, so the taps g*s .. g*s + w - 1 (a block of w <= s taps)
of every output frame form a (T_out, w * C_in) matrix whose rows lie s * C_in elements apart, a strided view
that BLAS takes as it is (leading dimension s * C_in >= w * C_in). ceil(k / s) matmuls per utterance forward
(2 for the 3-tap stride-2 blocks of wav2vec 2.0, 1 for the 2-tap ones), the same backward for each gradient.
"""

from __future__ import annotations

import torch


def _tap_blocks(kernel: int, stride: int) -> list[tuple[int, int]]:
    """(first tap, number of taps) of each block of at most `stride` consecutive taps."""
    return [(first, min(stride, kernel - first)) for first in range(0, kernel, stride)]


def _block_view(x: torch.Tensor, first: int, width: int, stride: int, frames_out: int) -> torch.Tensor:
    """(B, T, C) contiguous -> (B, T_out, width * C) view: row t holds frames stride*t + first .. + width - 1."""
    batch, frames, channels = x.shape
    return x.as_strided((batch, frames_out, width * channels), (frames * channels, stride * channels, 1),
                        x.storage_offset() + first * channels)


def _block_weight(weight: torch.Tensor, first: int, width: int) -> torch.Tensor:
    """(C_out, C_in, k) -> (width * C_in, C_out): the taps first .. first + width - 1, tap-major like the view."""
    out_channels, in_channels, _ = weight.shape
    taps = weight[:, :, first:first + width].permute(0, 2, 1)  # (C_out, width, C_in)
    return taps.reshape(out_channels, width * in_channels).t()


class TimeMajorConv1d(torch.autograd.Function):
    """y (B, T_out, C_out) = Conv1d(x (B, T, C_in) time-major, weight (C_out, C_in, k), bias, stride)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # type: ignore[override]
                stride: int) -> torch.Tensor:
        x = x.contiguous()
        batch, frames, _ = x.shape
        out_channels, _, kernel = weight.shape
        frames_out = (frames - kernel) // stride + 1
        blocks = _tap_blocks(kernel, stride)
        y = x.new_empty(batch, frames_out, out_channels)
        for i, (first, width) in enumerate(blocks):
            view = _block_view(x, first, width, stride, frames_out)  # (B, T_out, width * C_in)
            w = _block_weight(weight, first, width)  # (width * C_in, C_out)
            for b in range(batch):  # per utterance: rows of different utterances are not evenly spaced
                if i > 0:
                    y[b].addmm_(view[b], w)
                elif bias is not None:
                    torch.addmm(bias, view[b], w, out=y[b])
                else:
                    torch.mm(view[b], w, out=y[b])
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.has_bias = stride, bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride = ctx.stride
        grad_y = grad_y.contiguous()  # (B, T_out, C_out)
        batch, _, in_channels = x.shape
        out_channels, _, kernel = weight.shape
        frames_out = grad_y.shape[1]
        blocks = _tap_blocks(kernel, stride)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = x.new_empty(x.shape)
            # the first block's rows tile frames 0 .. s*T_out - 1 exactly (when k >= s): written, not added
            covered = stride * frames_out if kernel >= stride else 0
            grad_x[:, covered:].zero_()
            for i, (first, width) in enumerate(blocks):
                view = _block_view(grad_x, first, width, stride, frames_out)
                w_t = _block_weight(weight, first, width).t()  # (C_out, width * C_in)
                for b in range(batch):
                    if i == 0 and covered:
                        torch.mm(grad_y[b], w_t, out=view[b])
                    else:
                        view[b].addmm_(grad_y[b], w_t)
        if ctx.needs_input_grad[1]:
            grad_weight = weight.new_empty(weight.shape)
            for first, width in blocks:
                view = _block_view(x, first, width, stride, frames_out)
                g = view[0].t() @ grad_y[0]  # (width * C_in, C_out)
                for b in range(1, batch):
                    g.addmm_(view[b].t(), grad_y[b])
                grad_weight[:, :, first:first + width] = g.t().reshape(out_channels, width, in_channels).permute(0, 2, 1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_y.sum((0, 1))
        return grad_x, grad_weight, grad_bias, None


def time_major_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """Conv1d (no padding, no dilation) of time-major frames x (B, T, C_in) -> (B, T_out, C_out), contiguous."""
    if x.dim() != 3 or weight.dim() != 3 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"expected x (B, T, C_in) and weight (C_out, C_in, k), got {tuple(x.shape)} and "
                         f"{tuple(weight.shape)}")
    if x.shape[1] < weight.shape[2]:
        raise ValueError(f"{x.shape[1]} frames are fewer than the kernel's {weight.shape[2]} taps")
    return TimeMajorConv1d.apply(x, weight, bias, stride)
