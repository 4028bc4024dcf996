"""The CTC model as a graph an ONNX exporter can trace: the same parameters, standard operators only.

``Wav2Vec2ForCTC`` is written for fast torch training on the CPU: its first conv block is a batched matmul on
``unfold``-ed windows with fp64 statistics, its fp32 conv blocks are a custom autograd function on strided
views (``time_major_conv1d``), its positional convolution runs as a channels-last 2-D convolution behind a
weight-norm parametrisation. None of that is an ONNX operator. ``ExportableCTC`` computes the same function
of the same weights with ``Conv``, ``MatMul``, ``Softmax`` and elementwise operators:

- waveform block (BASE's ``group_norm`` extractor): ``Conv`` then a GroupNorm whose per-channel statistics are
  taken over each utterance's own frames only (``masked_group_norm``'s rule), so a padded batch gives every
  utterance what it gets alone. Alternatively the statistics of a whole recording's windows are given
  (``window_mean (k,)``, ``window_cov (k, k)``, ``use_window_statistics = 1``): the channel mean is then
  ``w . m`` and the variance ``w^T S w``, as ``windowed_group_norm_conv`` computes them, so chunks of a long
  recording are normalised as the recording is (``speechssl.decoding.transcribe``).
- conv blocks: ``Conv`` on ``(B, C, T)``; the positional convolution with its weight norm folded in.
- attention: ``softmax(q k^T / sqrt(d_h)) v`` with padded keys masked by a large negative bias (finite, so a
  batch row never turns NaN); dropout and LayerDrop are absent (inference).
- output: log-softmax over the vocabulary and each utterance's valid frames, computed from its valid samples
  layer by layer (``floor((L - k) / s) + 1``), the rule of ``conv_output_lengths``.

The graph's inputs are ``waveforms (B, L)`` float32 (right-padded with anything) and ``lengths (B,)`` int64
valid samples; its outputs ``log_probs (B, T, V)`` and ``output_lengths (B,)``. Per-utterance waveform
normalisation (``Wav2Vec2Config.normalize``, LARGE) stays outside the graph, as in ``ModelEmitter.prepare``:
a long recording is normalised once, before it is cut into chunks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechssl.models.config import Wav2Vec2Config
from speechssl.models.wav2vec2 import Wav2Vec2ForCTC

INPUT_NAMES = ("waveforms", "lengths")
"""Inputs every exported graph has."""
STATISTICS_INPUT_NAMES = ("window_mean", "window_cov", "use_window_statistics")
"""Inputs of graphs whose waveform block has a GroupNorm (BASE-style extractors)."""
OUTPUT_NAMES = ("log_probs", "output_lengths")
"""Outputs of the CTC graph."""
MASK_VALUE = -1.0e9
"""Added to the attention scores of padded keys: exp() of it is exactly 0 next to any real score."""


@dataclass(frozen=True, kw_only=True)
class GraphSpec:
    """What a caller of the graph needs to know, written to the export folder's ``config.json``."""

    input_names: tuple[str, ...]
    """Graph inputs in order."""
    output_names: tuple[str, ...]
    """Graph outputs in order."""
    window_kernel: int | None
    """Samples per window of the statistics inputs (the waveform block's kernel), or None without them."""
    window_stride: int | None
    """Stride of those windows."""


def has_window_statistics(config: Wav2Vec2Config) -> bool:
    """Whether the waveform block normalises over time (``group_norm``): then its statistics are inputs."""
    return config.extractor_mode == "group_norm"


def graph_spec(config: Wav2Vec2Config, *, hidden_states: bool = False) -> GraphSpec:
    """The inputs and outputs of the graph ``ExportableCTC(model)`` exports for ``config``."""
    statistics = has_window_statistics(config)
    outputs = ("hidden_states", "output_lengths") if hidden_states else OUTPUT_NAMES
    return GraphSpec(
        input_names=INPUT_NAMES + (STATISTICS_INPUT_NAMES if statistics else ()),
        output_names=outputs,
        window_kernel=config.conv_kernels[0] if statistics else None,
        window_stride=config.conv_strides[0] if statistics else None,
    )


def folded_conv(conv: nn.Conv1d) -> nn.Conv1d:
    """A plain Conv1d with ``conv``'s effective weight (its weight norm computed once, in fp32).

    Not ``remove_parametrizations`` on a copy: that deletes the weight property from the parametrised class,
    which the original module shares with its copy."""
    plain = nn.Conv1d(conv.in_channels, conv.out_channels, conv.kernel_size[0], padding=conv.padding[0],
                      groups=conv.groups, bias=conv.bias is not None)
    with torch.no_grad():
        plain.weight.copy_(conv.weight.float())
        if conv.bias is not None:
            plain.bias.copy_(conv.bias.float())
    return plain.eval()


class ExportableCTC(nn.Module):
    """``Wav2Vec2ForCTC``'s inference forward in exportable operators (see the module docstring).

    Args:
        model: the trained CTC model (copied; the original is left as it is).
        hidden_states: output every layer's states ``(N + 1, B, T, D)`` (layer 0: the Transformer's input, as
            ``Wav2Vec2Encoder(return_hidden_states=True)``) instead of the log-probabilities.
    """

    def __init__(self, model: Wav2Vec2ForCTC, *, hidden_states: bool = False) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).float().eval()
        self.pos_conv = folded_conv(self.model.encoder.context.pos_conv.conv)
        self.config: Wav2Vec2Config = self.model.config
        self.hidden_states = hidden_states
        self.statistics = has_window_statistics(self.config)
        self.eval()  # nothing here behaves differently in training, but exporters check the flag

    # ------------------------------------------------------------------ lengths
    def frame_lengths(self, lengths: torch.Tensor) -> list[torch.Tensor]:
        """(B,) valid samples -> valid frames after each conv block, ``floor((L - k) / s) + 1`` or 0."""
        out = []
        for k, s in zip(self.config.conv_kernels, self.config.conv_strides):
            # Truncating division of a clamped, non-negative count is floor division, and exports as an int64
            # Div (a "floor" division exports through float32, which rounds lengths above 2^24 samples).
            steps = torch.div(torch.clamp(lengths - k, min=0), s, rounding_mode="trunc")
            lengths = torch.where(lengths >= k, steps + 1, torch.zeros_like(lengths))
            out.append(lengths)
        return out

    @staticmethod
    def valid_frames(lengths: torch.Tensor, frames: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(B, T) 1.0 at valid frames, 0.0 at padded ones, in ``like``'s dtype."""
        positions = torch.arange(frames, device=lengths.device)[None, :]  # (1, T)
        return (positions < lengths[:, None]).to(like.dtype)  # (B, T)

    # ------------------------------------------------------------------ feature encoder
    def waveform_group_norm(self, y: torch.Tensor, frame_lengths: torch.Tensor, window_mean: torch.Tensor | None,
                            window_cov: torch.Tensor | None, use_window_statistics: torch.Tensor | None
                            ) -> torch.Tensor:
        """The first block's GroupNorm on its conv output y (B, C, T), statistics over valid frames (or from
        a recording's window statistics where ``use_window_statistics`` is 1)."""
        block = self.model.encoder.feature_encoder.blocks[0]
        valid = self.valid_frames(frame_lengths, y.shape[-1], y)[:, None, :]  # (B, 1, T)
        count = frame_lengths.clamp(min=1).to(y.dtype)[:, None, None]  # (B, 1, 1)
        mean = (y * valid).sum(-1, keepdim=True) / count  # (B, C, 1)
        var = (((y - mean) * valid) ** 2).sum(-1, keepdim=True) / count  # (B, C, 1), biased as GroupNorm
        if window_mean is not None:
            w = block.conv.weight[:, 0, :]  # (C, k)
            recording_mean = (w @ window_mean)[None, :, None]  # (1, C, 1)
            recording_var = ((w @ window_cov) * w).sum(-1)[None, :, None]  # (1, C, 1): w^T S w per channel
            share = use_window_statistics.reshape(1, 1, 1).to(y.dtype)
            mean = share * recording_mean + (1 - share) * mean
            var = share * recording_var + (1 - share) * var
        y = (y - mean) * torch.rsqrt(var + block.eps)
        return y * block.norm.weight[None, :, None] + block.norm.bias[None, :, None]

    def extract_features(self, waveforms: torch.Tensor, lengths: torch.Tensor,
                         window_mean: torch.Tensor | None, window_cov: torch.Tensor | None,
                         use_window_statistics: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """waveforms (B, L), lengths (B,) -> features (B, T, C) and valid frames (B,)."""
        block_lengths = self.frame_lengths(lengths)
        x = waveforms[:, None, :]  # (B, 1, L)
        for i, block in enumerate(self.model.encoder.feature_encoder.blocks):
            x = F.conv1d(x, block.conv.weight, block.conv.bias, stride=block.stride)  # (B, C, T_i)
            if block.norm_kind == "group":
                x = self.waveform_group_norm(x, block_lengths[i], window_mean, window_cov, use_window_statistics)
            elif block.norm_kind == "layer":
                x = F.layer_norm(x.transpose(1, 2), (x.shape[1],), block.norm.weight, block.norm.bias,
                                 block.eps).transpose(1, 2)  # over channels per frame, (B, C, T_i)
            x = F.gelu(x)
        return x.transpose(1, 2), block_lengths[-1]  # (B, T, C), (B,)

    # ------------------------------------------------------------------ context network
    def attention(self, layer, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), key_bias (B, 1, 1, T) 0 or MASK_VALUE -> (B, T, D)."""
        attn = layer.attn
        b, t, d = x.shape

        def heads(proj: nn.Linear) -> torch.Tensor:
            return proj(x).reshape(b, t, attn.num_heads, attn.head_dim).transpose(1, 2)  # (B, H, T, d_h)

        q, k, v = heads(attn.q_proj), heads(attn.k_proj), heads(attn.v_proj)
        scores = torch.matmul(q * attn.head_dim ** -0.5, k.transpose(-2, -1)) + key_bias  # (B, H, T, T)
        out = torch.matmul(torch.softmax(scores, dim=-1), v)  # (B, H, T, d_h)
        return attn.out_proj(out.transpose(1, 2).reshape(b, t, d))  # (B, T, D)

    def transformer_layer(self, layer, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        def feed_forward(h: torch.Tensor) -> torch.Tensor:
            return layer.fc2(F.gelu(layer.fc1(h)))

        if layer.layer_norm_first:
            x = x + self.attention(layer, layer.attn_norm(x), key_bias)
            return x + feed_forward(layer.ffn_norm(x))
        x = layer.attn_norm(x + self.attention(layer, x, key_bias))
        return layer.ffn_norm(x + feed_forward(x))

    def positional_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D), the weight-normed grouped convolution of ``PositionalConvEmbedding``."""
        y = self.pos_conv(x.transpose(1, 2))  # (B, D, T + 1) for even kernels
        if self.model.encoder.context.pos_conv.remove_last:
            y = y[:, :, :-1]
        return F.gelu(y).transpose(1, 2)  # (B, T, D)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor, window_mean: torch.Tensor | None = None,
                window_cov: torch.Tensor | None = None, use_window_statistics: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """waveforms (B, L) float32, lengths (B,) int64 valid samples -> (log_probs (B, T, V), output_lengths
        (B,)), or (hidden_states (N + 1, B, T, D), output_lengths) for a features graph."""
        encoder = self.model.encoder
        features, frame_lengths = self.extract_features(waveforms, lengths, window_mean, window_cov,
                                                        use_window_statistics)  # (B, T, C), (B,)
        x = encoder.feature_proj(encoder.feature_norm(features))  # (B, T, D)
        valid = self.valid_frames(frame_lengths, x.shape[1], x)  # (B, T)
        x = x * valid[:, :, None]  # padded frames read as the positional convolution's zero padding
        key_bias = ((1.0 - valid) * MASK_VALUE)[:, None, None, :]  # (B, 1, 1, T)
        context = encoder.context
        x = x + self.positional_embedding(x)
        if not context.layer_norm_first:
            x = context.layer_norm(x)
        states = [x]
        for layer in context.layers:
            x = self.transformer_layer(layer, x, key_bias)
            states.append(x)
        if self.hidden_states:
            return torch.stack(states), frame_lengths  # (N + 1, B, T, D)
        if context.layer_norm_first:
            x = context.layer_norm(x)
        logits = self.model.head(x)  # (B, T, V)
        return torch.log_softmax(logits, dim=-1), frame_lengths
