"""Process-group set-up for `torchrun` (DDP): NCCL on GPU, gloo on CPU; a single process needs no launcher."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from speechssl.models.config import Wav2Vec2Config


@dataclass(kw_only=True)
class DistInfo:
    rank: int = 0
    """Global rank of this process."""
    world_size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank within the node (selects the GPU)."""

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes checkpoints, logs and plots."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str, *, timeout_minutes: float = 120.0) -> DistInfo:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

    `timeout_minutes` bounds every collective (trainer.dist_timeout_minutes): the other ranks wait at a
    barrier while rank 0 validates and writes a checkpoint, longer than NCCL's 10-minute default on a large
    valid set."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def sum_over_ranks(values: list[float | torch.Tensor], device: torch.device, info: DistInfo) -> torch.Tensor:
    """A few scalars (sample sizes, logging sums) summed over ranks, as a (N,) float64 tensor on `device`.

    Python floats travel to the device in one non-blocking copy and scalar tensors stay where they are: the
    host reads nothing here, and the caller reads the result once (a GPU's queue is waited for once)."""
    floats = torch.tensor([0.0 if isinstance(v, torch.Tensor) else float(v) for v in values], dtype=torch.float64)
    floats = floats.to(device, non_blocking=True)  # (N,)
    parts = [v.detach().to(device=device, dtype=torch.float64).reshape(1) if isinstance(v, torch.Tensor)
             else floats[i:i + 1] for i, v in enumerate(values)]
    tensor = torch.cat(parts)  # (N,)
    if info.enabled:
        dist.all_reduce(tensor)
    return tensor


def broadcast_from_main(value: Any, info: DistInfo) -> Any:
    """Rank 0's `value` on every rank (a picklable object); `value` itself for one process.

    For choices a rank makes by measuring (precision `auto` times a matmul): ranks must not disagree.
    """
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(value: Any, info: DistInfo) -> list[Any]:
    """Every rank's `value` (picklable), in rank order, on every rank; `[value]` for one process."""
    if not info.enabled:
        return [value]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every rank (on NCCL on this rank's GPU: a barrier without one guesses the device)."""
    if info.enabled:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def cleanup(info: DistInfo, *, synchronize: bool = False) -> None:
    """Leave the process group. `synchronize` (after a run every rank finished) first waits for all ranks, so
    that no rank tears its group down while another still works in it: rank 0 writes the summary after the
    training loop's last barrier. Not after a failure, where the other ranks may never arrive."""
    if info.enabled and dist.is_initialized():
        if synchronize:
            barrier(info)
        dist.destroy_process_group()


def unused_parameter_reasons(model: Wav2Vec2Config, *, ctc: bool, freeze_finetune_updates: int = 0) -> list[str]:
    """Why a training step of this model may leave trainable parameters without a gradient (empty: every one
    gets a gradient at every step).

    DDP needs `find_unused_parameters=True` exactly then: without it the reducer waits for gradients that never
    come and the next step fails ("Expected to have finished reduction in the prior iteration"); with it, every
    step pays a traversal of the autograd graph. `ctc`: the model is `Wav2Vec2ForCTC` (no quantizer; masks only
    with mask_prob > 0); else `Wav2Vec2ForPreTraining`, whose loss reads every module (masked steps are
    required, so mask_emb always takes part). tests/training/test_distributed.py checks this list against the
    parameters a real step leaves without a gradient.
    """
    reasons = []
    if model.encoder_layerdrop > 0:
        reasons.append(f"model.encoder_layerdrop={model.encoder_layerdrop:g} skips whole Transformer layers")
    if model.feature_grad_mult == 0:
        reasons.append("model.feature_grad_mult=0 runs the feature encoder without gradient")
    if ctc and freeze_finetune_updates > 0:
        reasons.append(f"freeze_finetune_updates={freeze_finetune_updates} trains the CTC head alone at first")
    if ctc and model.mask_prob == 0:
        reasons.append("model.mask_prob=0 leaves the mask embedding unused")
    return reasons
