"""The convolutional feature encoder: raw waveform -> latent frames (49 Hz for the standard 7 blocks).

Each block is Conv1d -> [norm] -> GELU. Two normalisation modes, as in fairseq's ConvFeatureExtractionModel:

* ``group_norm`` (BASE, fairseq ``default``): GroupNorm with one group per channel on the first block only,
  i.e. each channel normalised over time. Over a padded batch that statistic would include the padded
  frames, which is how fairseq and transformers leak padding into every frame (transformers issue #18501).
  Here the statistic is taken over each utterance's own frames only, so a padded batch gives every
  utterance exactly what it gets alone; without padding it equals torch's GroupNorm.
* ``layer_norm`` (LARGE): LayerNorm over channels after every block; per frame, so padding cannot leak.

The GroupNorm makes every frame depend on the whole input. To transcribe a long recording in chunks as if it
were one input, ``WaveformStatistics`` of the whole recording (``FeatureEncoder.waveform_statistics``) can be
given to the forward: each chunk is then normalised with the recording's statistics instead of its own.

Both norms run in fp32 even under autocast (fairseq's Fp32GroupNorm / Fp32LayerNorm).

Layout: blocks pass frames as (B, T, C), on the CPU time-major in memory too, so the encoder's output is
already the (B, T, C) memory the Transformer reads. In bf16 (autocast) on the CPU every Conv1d runs as
oneDNN's channels-last 2-D convolution on a (B, C, 1, T) view of them (~20 % faster forward and backward than
the (B, C, T) layout on an AMD EPYC). In fp32 on the CPU they run as matmuls on strided views of the frames
(`time_major_conv1d`): oneDNN's fp32 backward of the stride-2 convolutions ran at 30 GFLOP/s on an Intel Xeon
against ~300 for the matmuls. On a GPU they are plain Conv1d on (B, C, T) memory. Parameters keep
nn.Conv1d's shapes and names either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechssl.models.config import Wav2Vec2Config
from speechssl.models.time_major_conv import time_major_conv1d


class GradMultiply(torch.autograd.Function):
    """Identity forward; multiplies the gradient by `scale` backward (fairseq's feature_grad_mult)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None


def channels_last_pays(x: torch.Tensor) -> bool:
    """Whether the convolutions on `x` should run channels-last: on the CPU in bf16/fp16 (autocast or not)."""
    if x.device.type != "cpu":
        return False
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu") in (torch.bfloat16, torch.float16)
    return x.dtype in (torch.bfloat16, torch.float16)


def conv_output_lengths(lengths: torch.Tensor, kernels: list[int], strides: list[int]) -> torch.Tensor:
    """Frames produced from `lengths` samples by a stack of unpadded convolutions: floor((L - k) / s) + 1 per
    layer, 0 when the input is shorter than the kernel."""
    lengths = lengths.to(torch.long)
    for k, s in zip(kernels, strides):
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
        lengths = lengths.clamp(min=0)
    return lengths


def feature_lengths(input_lengths: torch.Tensor | list[int], cfg: Wav2Vec2Config) -> torch.Tensor:
    """(B,) sample counts -> (B,) frame counts for a config (what `model.encoder.output_lengths` gives)."""
    return conv_output_lengths(torch.as_tensor(input_lengths), cfg.conv_kernels, cfg.conv_strides)


def masked_group_norm(
    x: torch.Tensor, lengths: torch.Tensor | None, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """GroupNorm with one group per channel, statistics over each utterance's first `lengths[b]` frames.

    Args:
        x: (B, C, T) conv output.
        lengths: (B,) valid frames per utterance, or None when nothing is padded.
    Returns:
        (B, C, T) in x's dtype, computed in fp32; padded frames are normalised with their utterance's statistics
        (they are never read by a valid frame downstream).
    """
    xf = x.float()
    if lengths is None:
        return F.group_norm(xf, x.shape[1], weight.float(), bias.float(), eps).type_as(x)
    valid = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]  # (B, T)
    valid = valid[:, None, :].to(xf.dtype)  # (B, 1, T)
    count = lengths.clamp(min=1).to(xf.dtype)[:, None, None]  # (B, 1, 1)
    mean = (xf * valid).sum(-1, keepdim=True) / count  # (B, C, 1)
    var = (((xf - mean) * valid) ** 2).sum(-1, keepdim=True) / count  # biased, as GroupNorm
    y = (xf - mean) * torch.rsqrt(var + eps)
    y = y * weight.float()[None, :, None] + bias.float()[None, :, None]
    return y.type_as(x)


@dataclass(frozen=True, kw_only=True)
class WaveformStatistics:
    """What the waveform block's GroupNorm takes from its input: the mean and covariance of the input's
    (k,)-sample windows (k, stride: the block's kernel and stride), in fp64. Computed once over a whole
    recording, they normalise each chunk of it as the whole recording is normalised."""

    mean: torch.Tensor
    """(k,) mean window."""
    cov: torch.Tensor
    """(k, k) biased covariance of the windows."""
    frames: int
    """Windows they were taken over."""


def waveform_window_statistics(waveform: torch.Tensor, kernel: int, stride: int, *,
                               block_frames: int = 1 << 18) -> WaveformStatistics:
    """Mean and covariance of the (k,) windows of a (L,) waveform, in blocks of ``block_frames`` windows so
    that an hour of audio needs no (T, k) fp64 copy of itself (11.5 M windows x 10 x 8 bytes).

    Raises ValueError when the waveform is shorter than one window.
    """
    if waveform.dim() != 1:
        raise ValueError(f"waveform must be (L,), got shape {tuple(waveform.shape)}")
    frames = (waveform.shape[0] - kernel) // stride + 1 if waveform.shape[0] >= kernel else 0
    if frames < 1:
        raise ValueError(f"a waveform of {waveform.shape[0]} samples has no window of {kernel} samples")
    x = waveform.detach().double()
    shift = x.mean()  # sums of shifted windows: no cancellation from a DC offset
    total = torch.zeros(kernel, dtype=torch.float64, device=x.device)
    outer = torch.zeros(kernel, kernel, dtype=torch.float64, device=x.device)
    for first in range(0, frames, block_frames):
        last = min(frames, first + block_frames)  # windows [first, last)
        windows = (x[first * stride:(last - 1) * stride + kernel] - shift).unfold(0, kernel, stride)  # (n, k)
        total += windows.sum(0)
        outer += windows.T @ windows
    mean = total / frames  # of the shifted windows
    cov = outer / frames - torch.outer(mean, mean)
    return WaveformStatistics(mean=mean + shift, cov=cov, frames=frames)


def windowed_group_norm_conv(
    waveforms: torch.Tensor, lengths: torch.Tensor | None, weight: torch.Tensor, stride: int,
    norm_weight: torch.Tensor, norm_bias: torch.Tensor, eps: float, *, time_major: bool = True,
    statistics: WaveformStatistics | None = None,
) -> torch.Tensor:
    """Conv1d(1, C, k, stride) -> GroupNorm(C groups) -> (no activation), computed as one batched matmul.

    The convolution is linear in the waveform's windows, so each channel's mean and variance over an
    utterance follow from the windows' mean m (k,) and covariance S (k, k): mean_c = w_c . m,
    var_c = w_c^T S w_c. The normalisation then folds into per-utterance weights,
    y[b, c, t] = (x_bt - m_b) . w_c * gamma_c / sqrt(var_bc + eps) + beta_c, and the block's output comes from
    one (C, k) x (k, T) matmul per utterance on centred windows. No (B, C, T) fp32 copy, no GroupNorm pass
    and no GroupNorm backward over 3,200 frames per second (the first block dominated the memory-bound part
    of the step); the statistics, taken in fp64 on the (B, T, k) windows, are exact to fp32 rounding, and the
    centring keeps a DC offset from costing precision when the matmul runs in bf16. A conv bias cancels
    against the mean and is not needed.

    Args:
        waveforms: (B, L).
        lengths: (B,) valid output frames per utterance (statistics over those only), or None.
        weight: (C, 1, k) conv weight; norm_weight, norm_bias: (C,) GroupNorm affine.
        time_major: lay the output out as (B, T, C) in memory; else as (B, C, T) (the returned shape is
            (B, T, C) either way).
        statistics: normalise every row with these (a whole recording's) instead of its own; `lengths` is
            then not needed for the statistics.
    Returns:
        (B, T, C) normalised conv output (bf16 under autocast, else fp32).
    """
    kernel = weight.shape[-1]
    with torch.autocast(device_type=waveforms.device.type, enabled=False):
        windows = waveforms.double().unfold(-1, kernel, stride)  # (B, T, k)
        if statistics is not None:  # a whole recording's, shared by every row
            if statistics.mean.shape != (kernel,):
                raise ValueError(f"statistics of {tuple(statistics.mean.shape)} windows do not fit a kernel of "
                                 f"{kernel} samples")
            centred = windows - statistics.mean.to(windows)  # (B, T, k)
            cov = statistics.cov.to(windows)[None].expand(windows.shape[0], kernel, kernel)  # (B, k, k)
        elif lengths is None:
            centred = windows - windows.sum(1, keepdim=True) / windows.shape[1]  # (B, T, k)
            cov = torch.bmm(centred.transpose(1, 2), centred) / windows.shape[1]  # (B, k, k), biased as GroupNorm
        else:
            valid = (torch.arange(windows.shape[1], device=windows.device)[None, :] < lengths[:, None])
            valid = valid[:, :, None].to(windows.dtype)  # (B, T, 1)
            count = lengths.clamp(min=1).to(windows.dtype)[:, None, None]  # (B, 1, 1)
            centred = windows - (windows * valid).sum(1, keepdim=True) / count  # (B, T, k)
            weighted = centred * valid
            cov = torch.bmm(weighted.transpose(1, 2), weighted) / count  # (B, k, k)
        w = weight[:, 0, :].double()  # (C, k)
        var = torch.einsum("ck,bkl,cl->bc", w, cov, w)  # (B, C)
        scale = torch.rsqrt(var + eps) * norm_weight.double()  # (B, C)
        folded = (w[None, :, :] * scale[:, :, None]).float()  # (B, C, k)
        # beta rides in the matmul as a last weight column against a row of ones: adding it to the (B, C, T)
        # output (baddbmm) would cost a broadcast copy of the output and a reduction of it backward
        beta = norm_bias.float()[None, :, None].expand(folded.shape[0], -1, 1)  # (B, C, 1)
        folded = torch.cat([folded, beta], dim=2)  # (B, C, k + 1)
        ones = centred.new_ones(centred.shape[:2] + (1,))  # (B, T, 1)
        windows = torch.cat([centred, ones], dim=2).float()  # (B, T, k + 1)
    # (B, T, k + 1) x (B, k + 1, C) -> (B, T, C); in bf16 under autocast, like the convolution it replaces
    if time_major:
        return torch.bmm(windows, folded.transpose(1, 2))
    return torch.bmm(folded, windows.transpose(1, 2)).transpose(1, 2)  # (B, C, T) memory


class ConvBlock(nn.Module):
    """Conv1d(in, out, kernel, stride, bias) -> optional norm ('group' | 'layer' | None) -> GELU, on time-major
    frames (B, T, C)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, *, bias: bool, norm: str | None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.norm_kind, self.eps = kernel, stride, norm, eps
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        nn.init.kaiming_normal_(self.conv.weight)  # fairseq ConvFeatureExtractionModel init
        if norm == "group":
            self.norm: nn.Module | None = nn.GroupNorm(out_channels, out_channels, eps=eps, affine=True)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_channels, eps=eps, elementwise_affine=True)
        else:
            self.norm = None

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The block's Conv1d on frames x (B, T_in, C_in) -> (B, T_out, C_out) (see the module's Layout)."""
        if x.shape[-1] == 1:
            # One input channel (the waveform): a matmul over the (B, T, k) windows; oneDNN is slow at C_in = 1.
            windows = x[:, :, 0].unfold(-1, self.kernel, self.stride)  # (B, T_out, k)
            return F.linear(windows, self.conv.weight[:, 0, :], self.conv.bias)  # (B, T_out, C_out)
        if x.device.type == "cpu" and not channels_last_pays(x):  # fp32: matmuls on views of the frames
            return time_major_conv1d(x, self.conv.weight, self.conv.bias, self.stride)  # (B, T_out, C_out)
        if not channels_last_pays(x):
            y = F.conv1d(x.transpose(1, 2), self.conv.weight, self.conv.bias, stride=self.stride)  # (B, C, T)
            return y.transpose(1, 2)  # (B, T_out, C_out), (B, C, T) memory
        # (B, T, C) memory read as a channels-last (B, C, 1, T) image; the weight (C_out, C_in, 1, k) likewise
        weight = self.conv.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x.transpose(1, 2).unsqueeze(2), weight, self.conv.bias, stride=(1, self.stride))
        return y.squeeze(2).transpose(1, 2)  # (B, C_out, 1, T_out) channels-last -> (B, T_out, C_out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, *,
                statistics: WaveformStatistics | None = None) -> torch.Tensor:
        """x (B, T_in, C_in) frames (waveforms as (B, L, 1)), lengths (B,) valid output frames of this block
        -> (B, T_out, C_out); `statistics` replace the input's own in the waveform block's GroupNorm."""
        if self.norm_kind == "group" and x.shape[-1] == 1:  # the waveform block of BASE
            x = windowed_group_norm_conv(x[:, :, 0], lengths, self.conv.weight, self.stride, self.norm.weight,
                                         self.norm.bias, self.eps, time_major=x.device.type == "cpu",
                                         statistics=statistics)
            return F.gelu(x)
        x = self.convolve(x)
        if self.norm_kind == "group":  # over time per channel: a (B, C, T) view of the same memory
            x = masked_group_norm(x.transpose(1, 2), lengths, self.norm.weight, self.norm.bias, self.eps)
            x = x.transpose(1, 2)
        elif self.norm_kind == "layer":  # over channels per frame, in fp32
            xf = x.float()
            x = F.layer_norm(xf, (xf.shape[-1],), self.norm.weight.float(), self.norm.bias.float(),
                             self.eps).type_as(x)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    """Stack of `ConvBlock`s turning waveforms (B, L) into features (B, C, T) (on the CPU a transposed view of
    time-major (B, T, C) memory)."""

    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.kernels = list(cfg.conv_kernels)
        self.strides = list(cfg.conv_strides)
        blocks = []
        in_channels = 1
        for i, (dim, k, s) in enumerate(zip(cfg.conv_dims, cfg.conv_kernels, cfg.conv_strides)):
            if cfg.extractor_mode == "layer_norm":
                norm = "layer"
            else:
                norm = "group" if i == 0 else None
            blocks.append(ConvBlock(in_channels, dim, k, s, bias=cfg.conv_bias, norm=norm))
            in_channels = dim
        self.blocks = nn.ModuleList(blocks)
        self.receptive_field = cfg.receptive_field

    def output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        """(B,) sample counts -> (B,) frame counts (0 when shorter than the receptive field)."""
        return conv_output_lengths(input_lengths, self.kernels, self.strides)

    def waveform_statistics(self, waveform: torch.Tensor) -> WaveformStatistics | None:
        """The statistics of a whole (L,) recording that the first block's GroupNorm takes from its input, to
        pass to `forward` for each chunk of it; None when the encoder has no such norm (`layer_norm` mode
        normalises each frame alone, so a chunk's frames already equal the whole recording's)."""
        first = self.blocks[0]
        if first.norm_kind != "group":
            return None
        return waveform_window_statistics(waveform, first.kernel, first.stride)

    def check_lengths(self, lengths: torch.Tensor) -> None:
        """Raise ValueError when an utterance of (B,) `lengths` samples yields no frame (read on the host)."""
        too_short = lengths < self.receptive_field
        if bool(too_short.any()):
            raise ValueError(
                f"utterances of {lengths[too_short].tolist()} samples are shorter than the receptive field "
                f"({self.receptive_field} samples); drop or pad them before the model"
            )

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None, *,
                statistics: WaveformStatistics | None = None) -> torch.Tensor:
        """waveforms (B, L), lengths (B,) valid samples per row or None -> features (B, C, T) (on the CPU a
        view of time-major memory: `features.transpose(1, 2)` is contiguous). `statistics`
        (`waveform_statistics` of a longer recording) normalise the first block instead of each row's own.

        Raises ValueError when an input (or one utterance's valid part) yields no frame at all.
        """
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (B, L), got shape {tuple(waveforms.shape)}")
        if waveforms.shape[1] < self.receptive_field:
            raise ValueError(
                f"waveforms of {waveforms.shape[1]} samples are shorter than the receptive field of "
                f"{self.receptive_field} samples; no frame can be computed"
            )
        if lengths is not None and lengths.device.type == "cpu":
            self.check_lengths(lengths)  # (a device tensor's caller checks its host copy: Wav2Vec2Encoder)
        x = waveforms[:, :, None]  # (B, L, 1): samples as time-major frames of one channel
        block_lengths = lengths
        for i, block in enumerate(self.blocks):
            if block_lengths is not None:
                block_lengths = conv_output_lengths(block_lengths, [block.kernel], [block.stride])
            x = block(x, block_lengths, statistics=statistics if i == 0 else None)  # (B, T, C) frames
        return x.transpose(1, 2)  # (B, C, T)
