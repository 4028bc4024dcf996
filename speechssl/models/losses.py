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


def sampled_contrastive_logits(
    predictions: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor, counts: torch.Tensor, logit_temp: float,
    *, target_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """`contrastive_logits(predictions, targets, targets[rows], logit_temp)` without its (S, K, F) copies.

    The distractors of a masked step are other masked steps of the same utterance (fairseq and transformers
    both sample them so), so every logit is an entry of one utterance's (M_b, M_b) cosine matrix: unit-normalise
    predictions and targets once, take one batched matmul per utterance and gather the (S, K) entries. The
    (S, 1 + K, F) concatenation, its norms and the (S, K, F) equality test of `contrastive_logits` (the largest
    tensors of the pretraining step after the Transformer's) are never built. Values match `contrastive_logits`
    to fp32 rounding (a different summation order).

    The index arithmetic runs where `rows` and `counts` are: the model passes them on the host, so a GPU step
    never waits for its queue here (device tensors work too, at one read of the device).

    Args:
        predictions: (S, F) projected context outputs at the masked steps, rows in (utterance, time) order.
        targets: (S, F) projected quantized features at the same steps.
        rows: (S, K) row of each distractor in `targets`.
        counts: (B,) masked steps per utterance (sum S): utterance b owns rows [sum(counts[:b]), +counts[b]).
        target_ids: (S,) an id per target with equal ids for equal targets (the quantizer's code ids), which
            finds the distractors equal to their positive without a device read; None: identical target rows
            are grouped with `torch.unique(dim=0)` (exact `==` semantics, one read of the device).
    Returns:
        (S, 1 + K) fp32 logits, positive first, -inf where a distractor equals its positive.
    """
    device = predictions.device
    num_steps = rows.shape[0]
    index_rows = rows.long()
    counts = counts.to(rows.device, torch.long)
    batch_size = counts.numel()
    utterance = torch.repeat_interleave(torch.arange(batch_size, device=rows.device), counts,
                                        output_size=num_steps)  # (S,)
    within_utterance = bool((utterance[index_rows] == utterance[:, None]).all())
    rows_on_device = index_rows.to(device, non_blocking=True)  # (S, K)
    with torch.autocast(device_type=device.type, enabled=False):
        # F.cosine_similarity normalises each side by max(norm, 1e-8) before the product; so do we.
        p = predictions.float()
        t = targets.float()
        p = p / torch.linalg.vector_norm(p, dim=-1, keepdim=True).clamp_min(1e-8)  # (S, F)
        t = t / torch.linalg.vector_norm(t, dim=-1, keepdim=True).clamp_min(1e-8)  # (S, F)
        positive = (p * t).sum(-1, keepdim=True)  # (S, 1)
        if within_utterance:
            first = counts.cumsum(0) - counts  # (B,) first row of each utterance
            local = torch.arange(num_steps, device=rows.device) - first[utterance]  # (S,) rank within utterance
            longest = int(counts.max())
            if bool((counts == longest).all()):  # require_same_masks: a plain reshape
                p_b = p.view(batch_size, longest, -1)  # (B, M, F)
                t_b = t.view(batch_size, longest, -1)  # (B, M, F)
            else:  # zero-padded (B, M_max, F) blocks
                at = (utterance.to(device, non_blocking=True), local.to(device, non_blocking=True))
                p_b = p.new_zeros(batch_size, longest, p.shape[-1]).index_put(at, p)
                t_b = t.new_zeros(batch_size, longest, t.shape[-1]).index_put(at, t)
            cosines = torch.bmm(p_b, t_b.transpose(1, 2))  # (B, M, M): [b, i, j] = cos(pred_i, target_j)
            entry = (utterance[:, None] * longest + local[:, None]) * longest + (index_rows - first[utterance][:, None])
            negative = cosines.reshape(-1)[entry.to(device, non_blocking=True)]  # (S, K)
        else:  # distractors from other utterances: gather them (S, K, F) after all
            negative = torch.bmm(t[rows_on_device], p[:, :, None]).squeeze(-1)  # (S, K)
    logits = torch.cat([positive, negative], dim=1) / logit_temp  # (S, 1 + K)
    if target_ids is None:
        # fp32 for the grouping: CUDA's `unique` had no bf16 kernel before torch 2.5 (pyproject allows 2.4) and
        # targets come out of autocast; widening is exact, so identical rows stay identical and no others become so.
        _, target_ids = torch.unique(targets.detach().float(), dim=0, return_inverse=True)  # (S,)
    neg_is_pos = target_ids[rows_on_device] == target_ids[:, None]  # (S, K)
    # Filled unconditionally: asking whether any is set would read the device; filling none changes nothing.
    return torch.cat([logits[:, :1], logits[:, 1:].masked_fill(neg_is_pos, float("-inf"))], dim=1)


def infonce_loss(logits: torch.Tensor) -> torch.Tensor:
    """Sum over rows of cross-entropy with target index 0; logits (S, 1 + K)."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target, reduction="sum")


def diversity_loss(prob_perplexity: torch.Tensor, num_codevectors: int) -> torch.Tensor:
    """(G*V - prob_perplexity) / (G*V): 0 when every codebook entry is used equally, near 1 when collapsed."""
    return (num_codevectors - prob_perplexity) / num_codevectors


def num_correct(logits: torch.Tensor) -> torch.Tensor:
    """Rows whose argmax is the positive (index 0), fairseq's rule: rows whose logits are all equal (argmax
    and argmin both 0) never count as correct. transformers reports no accuracy.

    A 0-d long tensor on the logits' device (`int()` it to read it): reading it waits for the GPU, so the
    trainer reads all of a step's statistics at once."""
    if logits.numel() == 0:
        return torch.zeros((), dtype=torch.long, device=logits.device)
    with torch.no_grad():
        is_max = logits.argmax(-1) == 0
        is_min = logits.argmin(-1) == 0
        return (is_max & ~is_min).sum()


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
    num_correct: torch.Tensor
    """Masked steps whose positive has the highest logit (fairseq rule; a 0-d tensor, see `num_correct`)."""
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
