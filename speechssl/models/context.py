"""The context network: convolutional relative positional embedding + Transformer encoder.

Post-LN (BASE): x = LN(x + pos_conv(x)) -> dropout -> layers with residual-then-norm.
Pre-LN (LARGE, fairseq `layer_norm_first`): x = x + pos_conv(x) -> dropout -> norm-then-residual layers ->
final LN. Padded frames are zeroed before the positional convolution (so they read as the convolution's own
zero padding) and masked out of attention as keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm
from torch.utils.checkpoint import checkpoint

from speechssl.models.config import Wav2Vec2Config


def _bf16_grouped_conv_is_exact(channels_per_group: int) -> bool:
    """oneDNN's bf16 grouped convolution on the CPU (torch 2.13; seen on the AMX Xeon and the CI machine)
    returns wrong values (errors the size of the output) when a group has 2-12 channels and the kernel is
    long; 1 channel (depthwise) and multiples of 16 (base, large, small) are exact to bf16 rounding. Checked in
    tests/models/test_context.py against fp32."""
    return channels_per_group == 1 or channels_per_group % 16 == 0


def _runs_in_bf16(x: torch.Tensor, bias: torch.Tensor) -> bool:
    autocast_bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return autocast_bf16 or x.dtype == torch.bfloat16 or bias.dtype == torch.bfloat16


class PositionalConvEmbedding(nn.Module):
    """Conv1d(D, D, k, padding=k//2, groups) with weight norm over dim 2 -> drop the extra frame (even k) ->
    GELU. Init (fairseq): weight N(0, sqrt(4 / (k * D))), bias 0, then weight_norm.

    State-dict keys are torch's parametrization ones (`conv.parametrizations.weight.original0/1`, as
    transformers saves them); the legacy `conv.weight_g` / `conv.weight_v` (fairseq, older transformers) are
    accepted on load and renamed.
    """

    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel * dim)))
        nn.init.zeros_(conv.bias)
        self.conv = weight_norm(conv, name="weight", dim=2)
        self.remove_last = kernel % 2 == 0
        self.bf16_safe_on_cpu = _bf16_grouped_conv_is_exact(dim // groups)
        self._register_load_state_dict_pre_hook(self._rename_legacy_weight_norm)

    @staticmethod
    def _rename_legacy_weight_norm(state_dict, prefix, *args, **kwargs) -> None:
        for old, new in (("weight_g", "original0"), ("weight_v", "original1")):
            key = f"{prefix}conv.{old}"
            if key in state_dict:
                state_dict[f"{prefix}conv.parametrizations.weight.{new}"] = state_dict.pop(key)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> positional embedding (B, T, D).

        On the CPU the (B, T, D) memory is read as a channels-last (B, D, 1, T) image by a 2-D convolution with
        the same weights (oneDNN: ~1.9x faster forward + backward than Conv1d on the transposed (B, D, T)); on
        a GPU, where that was never timed, the plain Conv1d runs."""
        conv = self.conv
        if x.device.type == "cpu" and not self.bf16_safe_on_cpu and _runs_in_bf16(x, conv.bias):
            # The bf16 convolution computed in fp32 from bf16-rounded operands, rounded back to bf16: the
            # same bits whether autocast rounds the fp32 weights or they were cast once (load_ctc).
            def rounded(t: torch.Tensor) -> torch.Tensor:
                return t.to(torch.bfloat16).float()

            with torch.autocast("cpu", enabled=False):
                y = self._convolve(rounded(x), rounded(conv.weight), rounded(conv.bias))
            return y.to(torch.bfloat16)
        return self._convolve(x, conv.weight, conv.bias)

    def _convolve(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if x.device.type == "cpu":  # a oneDNN tuning, measured on the CPU only
            weight = weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # (D, D/g, 1, k)
            y = F.conv2d(x.transpose(1, 2).unsqueeze(2), weight, bias, padding=(0, conv.padding[0]),
                         groups=conv.groups)  # (B, D, 1, T + 1) for even kernels, channels-last
            y = y.squeeze(2).transpose(1, 2)  # (B, T + 1, D)
        else:  # cuDNN: the plain grouped Conv1d, as fairseq and transformers run it
            y = F.conv1d(x.transpose(1, 2), weight, bias, padding=conv.padding[0],
                         groups=conv.groups).transpose(1, 2)  # (B, D, T + 1) -> (B, T + 1, D)
        if self.remove_last:
            y = y[:, :-1]
        return F.gelu(y)  # (B, T, D)


# Dropout masks on the CPU come from 15-bit integers cut out of 64-bit random words: torch's CPU generator
# makes a 64-bit word faster than one float (3.8 against 6.6 ns here), so four masks per draw cost a
# fraction of `torch.rand`'s one per draw (and of the `bernoulli_` inside F.dropout). The drop probability
# is p rounded to a multiple of 2^-15 (0.1 -> 0.100006); kept values are scaled by 1 / (1 - p) as nn.Dropout
# does.
_MASK_BITS = 15


def dropout_drop(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """Bool mask of `shape`, True (drop) with probability p (to 2^-15). A drop mask, for `masked_fill`: a bool
    multiplier would be converted to x's dtype on every use, forward and backward."""
    n = math.prod(shape)
    words = torch.empty(((n + 3) // 4,), dtype=torch.int64, device=device).random_()  # >= 0: bit 63 is 0
    # Each 64-bit word holds four 16-bit lanes; the low 15 bits of every lane are uniform (the top lane's
    # 16th bit is the word's always-zero sign bit, so the 16th bit is dropped in every lane).
    lanes = words.view(torch.int16)[:n].view(shape).bitwise_and_((1 << _MASK_BITS) - 1)
    return lanes.lt(round(p * (1 << _MASK_BITS)))


def apply_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout of x with a `dropout_drop` mask (what F.dropout computes in training)."""
    if p >= 1.0:
        return x.mul(0.0)
    return x.masked_fill(dropout_drop(x.shape, p, x.device), 0.0).mul_(1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """nn.Dropout (same semantics, no parameters) drawing its CPU mask with `dropout_drop`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        return apply_dropout(x, self.p)


def matmul_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None, dropout: float
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_h)) v with dropout on the probabilities, in the inputs' dtype.

    What `scaled_dot_product_attention` computes, for CPU training. There SDPA either falls back to its math
    path (with dropout), which upcasts bf16 inputs to fp32 (two fp32 batched matmuls at a third of the bf16
    rate, casts of q, k, v and their gradients) and draws the mask with `bernoulli_`, or (without dropout) runs
    its flash kernel, whose backward is ~3x slower than two bf16 bmm. Here the matmuls stay in bf16 under
    autocast (as fairseq's and transformers' eager attention do), the softmax accumulates in fp32 inside
    torch's kernel, and the dropout mask comes from `dropout_drop`.
    q, k, v (B, H, T, d_h); attn_mask (B, 1, 1, T) True for keys to attend to; 0 <= dropout < 1 -> (B, H, T, d_h).
    """
    # Both scalings act on the (B, H, T, d_h) side, not on the T/d_h times larger (B, H, T, T) scores:
    # 1/sqrt(d_h) on q (as fairseq does), dropout's 1/(1-p) on the output.
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))  # (B, H, T, T)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if dropout <= 0:
        return torch.matmul(probs, v)  # (B, H, T, d_h)
    probs = probs.masked_fill(dropout_drop(probs.shape, dropout, probs.device), 0.0)
    return torch.matmul(probs, v).mul_(1.0 / (1.0 - dropout))  # (B, H, T, d_h)


class SelfAttention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (scale head_dim ** -0.5); in CPU
    training through `matmul_attention` (the same computation, faster there)."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.dropout = num_heads, dim // num_heads, dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, D); attn_mask (B, 1, 1, T) True for keys to attend to, or None -> (B, T, D)."""
        b, t, d = x.shape

        def heads(proj: nn.Linear) -> torch.Tensor:
            return proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d_h)

        q, k, v = heads(self.q_proj), heads(self.k_proj), heads(self.v_proj)
        if self.training and x.device.type == "cpu":
            out = matmul_attention(q, k, v, attn_mask, self.dropout)  # (B, H, T, d_h)
        else:
            dropout = self.dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)  # (B, H, T, d_h)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))  # (B, T, D)


class TransformerLayer(nn.Module):
    """One encoder layer; `layer_norm_first` selects pre-LN (LARGE) over post-LN (BASE)."""

    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        d = cfg.encoder_embed_dim
        self.layer_norm_first = cfg.layer_norm_first
        self.attn = SelfAttention(d, cfg.encoder_attention_heads, cfg.attention_dropout)
        self.attn_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.fc1 = nn.Linear(d, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, d)
        self.ffn_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.dropout)
        self.activation_dropout = Dropout(cfg.activation_dropout)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.activation_dropout(F.gelu(self.fc1(x)))))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D)."""
        if self.layer_norm_first:
            x = x + self.dropout(self.attn(self.attn_norm(x), attn_mask))
            return x + self.feed_forward(self.ffn_norm(x))
        x = self.attn_norm(x + self.dropout(self.attn(x, attn_mask)))
        return self.ffn_norm(x + self.feed_forward(x))


@dataclass
class ContextOutput:
    """Output of the context network."""

    last_hidden_state: torch.Tensor
    """(B, T, D) final representations."""
    hidden_states: list[torch.Tensor] | None
    """When requested: [input to layer 1, output of layer 1, ..., output of layer N], each (B, T, D)
    (pre-LN models: the last entry is before the final LayerNorm; layers skipped by layerdrop repeat)."""


class ContextNetwork(nn.Module):
    """Positional conv + Transformer stack (fairseq's TransformerEncoder, transformers' Wav2Vec2Encoder)."""

    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.layer_norm_first = cfg.layer_norm_first
        self.layerdrop = cfg.encoder_layerdrop
        self.checkpoint_activations = cfg.checkpoint_activations
        self.pos_conv = PositionalConvEmbedding(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups)
        self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.dropout)
        self.layers = nn.ModuleList([TransformerLayer(cfg) for _ in range(cfg.encoder_layers)])
        self.apply(self._init_bert)

    @staticmethod
    def _init_bert(module: nn.Module) -> None:
        # fairseq init_bert_params: every Linear of the encoder (q/k/v/out, fc1, fc2) N(0, 0.02), bias 0
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            nn.init.zeros_(module.bias)

    def forward(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None = None, *, return_hidden_states: bool = False
    ) -> ContextOutput:
        """x (B, T, D), padding_mask (B, T) True where padded -> ContextOutput."""
        attn_mask = None
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[:, :, None], 0.0)
            attn_mask = (~padding_mask)[:, None, None, :]  # (B, 1, 1, T) keys to attend to
        x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        hidden: list[torch.Tensor] | None = [x] if return_hidden_states else None
        recompute = self.checkpoint_activations and self.training and torch.is_grad_enabled()
        for layer in self.layers:
            # LayerDrop (Fan et al., 2019): skip whole layers in training
            if not (self.training and self.layerdrop > 0 and float(torch.rand(())) < self.layerdrop):
                # checkpointing keeps the layer's input alone; its forward runs again in the backward pass, from
                # the same random state (the same dropout masks)
                x = checkpoint(layer, x, attn_mask, use_reentrant=False) if recompute else layer(x, attn_mask)
            if hidden is not None:
                hidden.append(x)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return ContextOutput(last_hidden_state=x, hidden_states=hidden)
