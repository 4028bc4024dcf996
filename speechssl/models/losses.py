"""The wav2vec 2.0 pretraining objective, as fairseq's Wav2Vec2 model + ``wav2vec`` criterion compute it.

loss = InfoNCE (sum over masked steps)
       + diversity_weight * (G*V - prob_perplexity) / (G*V) * sample_size
       + feature_pen_weight * mean(features ** 2) * sample_size
with sample_size = number of masked steps. The sum is what fairseq back-propagates; the trainer divides the
gradients by the total sample size (over devices and accumulation steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def contrastive_logits(
    predictions: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, logit_temp: float
) -> torch.Tensor:
    """Cosine similarities / logit_temp, positive first.

    Args:
        predictions: (S, F) projected context outputs at the masked steps.
        targets: (S, F) projected quantized features at the same steps (the positives).
        negatives: (S, K, F) projected quantized distractors.
    Returns:
        (S, 1 + K) fp32 logits; a distractor identical to its positive gets -inf (fairseq and transformers
        both do this, so a collapsed codebook cannot reward copying).
    """
    candidates = torch.cat([targets[:, None, :], negatives], dim=1)  # (S, 1 + K, F)
    with torch.autocast(device_type=predictions.device.type, enabled=False):
        logits = F.cosine_similarity(predictions.float()[:, None, :], candidates.float(), dim=-1)  # (S, 1 + K)
    logits = logits / logit_temp
    neg_is_pos = (targets[:, None, :] == negatives).all(-1)  # (S, K)
    if bool(neg_is_pos.any()):
        logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(neg_is_pos, float("-inf"))], dim=1)
    return logits


def infonce_loss(logits: torch.Tensor) -> torch.Tensor:
    """Sum over rows of cross-entropy with target index 0; logits (S, 1 + K)."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target, reduction="sum")


def diversity_loss(prob_perplexity: torch.Tensor, num_codevectors: int) -> torch.Tensor:
    """(G*V - prob_perplexity) / (G*V): 0 when every codebook entry is used equally, near 1 when collapsed."""
    return (num_codevectors - prob_perplexity) / num_codevectors


def num_correct(logits: torch.Tensor) -> int:
    """Rows whose argmax is the positive (index 0), fairseq's rule: rows whose logits are all equal (argmax
    and argmin both 0) never count as correct. transformers reports no accuracy."""
    if logits.numel() == 0:
        return 0
    with torch.no_grad():
        is_max = logits.argmax(-1) == 0
        is_min = logits.argmin(-1) == 0
        return int((is_max & ~is_min).sum())


@dataclass
class PretrainingLoss:
    """The terms of the pretraining loss (all tensors are scalars)."""

    loss: torch.Tensor
    """contrastive + weighted diversity + weighted penalty, SUM-reduced as fairseq."""
    contrastive_loss: torch.Tensor
    """InfoNCE summed over masked steps (nats)."""
    diversity_loss: torch.Tensor
    """(G*V - prob_perplexity) / (G*V), per step (multiply by sample_size for its share of `loss`)."""
    feature_penalty: torch.Tensor
    """Mean squared feature-encoder output, per step."""
    sample_size: int
    """Number of masked steps."""
    num_correct: int
    """Masked steps whose positive has the highest logit (fairseq rule)."""
    num_count: int
    """Masked steps counted for accuracy."""


def pretraining_loss(
    logits: torch.Tensor,
    prob_perplexity: torch.Tensor,
    feature_penalty: torch.Tensor,
    *,
    num_codevectors: int,
    diversity_weight: float,
    feature_pen_weight: float,
) -> PretrainingLoss:
    """Combine the terms as fairseq's wav2vec criterion: extra losses are scaled by the sample size so that the
    whole loss can be divided by it once."""
    sample_size = int(logits.shape[0])
    contrastive = infonce_loss(logits)
    diversity = diversity_loss(prob_perplexity.float(), num_codevectors)
    penalty = feature_penalty.float()
    loss = contrastive + diversity_weight * diversity * sample_size + feature_pen_weight * penalty * sample_size
    return PretrainingLoss(
        loss=loss, contrastive_loss=contrastive, diversity_loss=diversity, feature_penalty=penalty,
        sample_size=sample_size, num_correct=num_correct(logits), num_count=sample_size,
    )
