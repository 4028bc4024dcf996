"""Gumbel-softmax product quantizer (wav2vec 2.0 section 2, fairseq's GumbelVectorQuantizer).

Features (N, C) are projected to G groups of V logits; each group picks one of its V codevectors (hard
Gumbel-softmax with straight-through gradients in training, argmax in eval) and the G picks are
concatenated. Logits, Gumbel noise and perplexities are computed in fp32 even under autocast, since they
are what overflows first in fp16 training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class QuantizerOutput:
    """Result of quantizing N feature vectors."""

    codevectors: torch.Tensor
    """(N, G * d) concatenated codevectors (d = codevector_dim / G)."""
    code_perplexity: torch.Tensor
    """Scalar: sum over groups of exp(entropy) of the hard-choice histogram (no gradient)."""
    prob_perplexity: torch.Tensor
    """Scalar: sum over groups of exp(entropy) of the frame-averaged softmax (carries the diversity gradient)."""
    temperature: float
    """Gumbel temperature used."""
    indices: torch.Tensor
    """(N, G) chosen entry per group."""


def perplexity(probs: torch.Tensor) -> torch.Tensor:
    """probs (N, G, V) -> sum_g exp(H(mean_n probs[n, g])): the effective number of entries in use."""
    marginal = probs.float().mean(dim=0)  # (G, V)
    entropy = -torch.xlogy(marginal, marginal).sum(-1)  # (G,)
    return entropy.exp().sum()


class GumbelVectorQuantizer(nn.Module):
    """G groups x V entries; codevector dim `codevector_dim` split evenly over the groups.

    Parameters (names as transformers, shapes as fairseq): `codevectors` (1, G*V, codevector_dim / G)
    uniform[0, 1); `weight_proj` Linear(input_dim, G*V) with N(0, 1) weights and zero bias.
    """

    def __init__(
        self, input_dim: int, *, num_groups: int, num_vars: int, codevector_dim: int,
        max_temp: float = 2.0, min_temp: float = 0.5, temp_decay: float = 0.999995,
    ) -> None:
        super().__init__()
        if codevector_dim % num_groups:
            raise ValueError(f"codevector_dim ({codevector_dim}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_vars = num_groups, num_vars
        self.codevectors = nn.Parameter(torch.empty(1, num_groups * num_vars, codevector_dim // num_groups))
        self.weight_proj = nn.Linear(input_dim, num_groups * num_vars)
        nn.init.uniform_(self.codevectors)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        self.max_temp, self.min_temp, self.temp_decay = max_temp, min_temp, temp_decay
        self.num_updates = 0

    @property
    def num_codevectors(self) -> int:
        return self.num_groups * self.num_vars

    @property
    def temperature(self) -> float:
        """max(max_temp * temp_decay ** updates, min_temp) (fairseq's latent_temp schedule)."""
        return max(self.max_temp * self.temp_decay**self.num_updates, self.min_temp)

    def code_ids(self, indices: torch.Tensor) -> torch.Tensor:
        """(N, G) chosen entries -> (N,) one id per codevector combination: equal ids give equal codevectors
        (each group's pick is an exact copy of one codebook row), and distinct ids distinct ones unless two
        codebook rows are equal."""
        place = self.num_vars ** torch.arange(self.num_groups, device=indices.device)  # (G,)
        return (indices.long() * place).sum(-1)

    def set_num_updates(self, num_updates: int) -> None:
        self.num_updates = int(num_updates)

    def forward(self, features: torch.Tensor) -> QuantizerOutput:
        """features (N, C) -> QuantizerOutput with codevectors (N, codevector_dim)."""
        n = features.shape[0]
        if n == 0:
            raise ValueError("the quantizer needs at least one frame (no masked step in the batch?)")
        groups, num_vars = self.num_groups, self.num_vars
        with torch.autocast(device_type=features.device.type, enabled=False):
            logits = F.linear(features.float(), self.weight_proj.weight.float(), self.weight_proj.bias.float())
        logits = logits.view(n, groups, num_vars)  # (N, G, V)

        indices = logits.argmax(dim=-1)  # (N, G)
        # scatter, not F.one_hot: one_hot checks the index range, a read of the device on a GPU
        hard = torch.zeros_like(logits).scatter_(-1, indices[..., None], 1.0)  # (N, G, V)
        code_ppl = perplexity(hard)
        prob_ppl = perplexity(torch.softmax(logits, dim=-1))
        temperature = self.temperature
        if self.training:
            # straight-through: forward is one-hot, backward the soft Gumbel-softmax gradient
            onehot = F.gumbel_softmax(logits, tau=temperature, hard=True, dim=-1)  # (N, G, V) fp32
            indices = onehot.argmax(dim=-1)
        else:
            onehot = hard
        book = self.codevectors.view(groups, num_vars, -1)  # (G, V, d)
        onehot = onehot.to(book.dtype)
        # sum_v onehot[n, g, v] * book[g, v] as a batched matmul (no (N, G, V, d) intermediate)
        picked = torch.einsum("ngv,gvd->ngd", onehot, book)  # (N, G, d)
        return QuantizerOutput(
            codevectors=picked.reshape(n, -1),  # (N, G * d)
            code_perplexity=code_ppl.detach(),
            prob_perplexity=prob_ppl,
            temperature=temperature,
            indices=indices,
        )
