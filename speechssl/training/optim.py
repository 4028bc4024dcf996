"""Optimiser and learning-rate schedules of the wav2vec 2.0 recipes.

Pretraining (fairseq `polynomial_decay`): linear warmup from 0 to `lr` over `warmup_updates`, then linear
(power 1) decay to `end_lr` at `total_updates`. Fine-tuning (fairseq `tri_stage`): warmup from
`init_lr_scale * lr`, hold, then exponential decay to `final_lr_scale * lr`, in the ratio `phase_ratio`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch


@dataclass(kw_only=True)
class OptimConfig:
    """Adam with decoupled weight decay (fairseq `adam` with `weight_decay` is AdamW-style)."""

    lr: float = 5e-4
    """Peak learning rate."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    """Adam betas (the paper's 0.9/0.98)."""
    eps: float = 1e-6
    """Adam epsilon (1e-6 pretraining, 1e-8 fine-tuning)."""
    weight_decay: float = 0.01
    """Decoupled weight decay."""
    clip_norm: float = 0.0
    """Clip the global gradient norm to this value; 0 disables clipping (the BASE recipe does not clip)."""
    feature_encoder_lr_scale: float = 1.0
    """The convolutional feature encoder's learning rate as a fraction of the scheduled one (its own parameter
    group). 1: one rate for all, as the paper. It matters only where the encoder trains (model.feature_grad_mult
    > 0): egs/an4 fine-tunes a pretrained encoder at 0.1, where the full rate threw it into all-blank output."""

    def validate(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optim.betas must be two values in [0, 1), got {self.betas}")
        if not self.eps > 0:
            raise ValueError(f"optim.eps must be > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.clip_norm < 0:
            raise ValueError(f"optim.clip_norm must be >= 0, got {self.clip_norm}")
        if not self.feature_encoder_lr_scale > 0:
            raise ValueError("optim.feature_encoder_lr_scale must be > 0 (to freeze the feature encoder set "
                             f"model.feature_grad_mult=0), got {self.feature_encoder_lr_scale}")


@dataclass(kw_only=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped once per update."""

    kind: str = "polynomial"
    """`polynomial` (warmup + polynomial decay), `tri_stage`, or `constant` (after warmup)."""
    warmup_updates: int = 32_000
    """Warmup length for `polynomial`/`constant` (ignored by `tri_stage`, which uses `phase_ratio`)."""
    warmup_fraction: float | None = None
    """Warmup as a fraction of `trainer.max_updates`, for runs whose length varies (the CPU recipes); when set it
    replaces `warmup_updates` at start-up (`resolve_warmup`). null: `warmup_updates` as given (the paper's)."""
    end_lr: float = 0.0
    """Learning rate reached at the last update (`polynomial`)."""
    power: float = 1.0
    """Decay power (`polynomial`; 1.0 = linear)."""
    phase_ratio: list[float] = field(default_factory=lambda: [0.1, 0.4, 0.5])
    """Warmup / hold / decay fractions of the updates (`tri_stage`)."""
    init_lr_scale: float = 0.01
    """Start of the tri-stage warmup, as a fraction of lr."""
    final_lr_scale: float = 0.05
    """End of the tri-stage decay, as a fraction of lr."""

    def validate(self) -> None:
        if self.kind not in {"polynomial", "tri_stage", "constant"}:
            raise ValueError(f"schedule.kind must be polynomial, tri_stage or constant, got {self.kind!r}")
        if self.warmup_updates < 0:
            raise ValueError(f"schedule.warmup_updates must be >= 0, got {self.warmup_updates}")
        if self.warmup_fraction is not None and not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"schedule.warmup_fraction must be in [0, 1) or null, got {self.warmup_fraction}")
        if len(self.phase_ratio) != 3 or abs(sum(self.phase_ratio) - 1.0) > 1e-6:
            raise ValueError(f"schedule.phase_ratio must be three fractions summing to 1, got {self.phase_ratio}")


def resolve_warmup(cfg: ScheduleConfig, max_updates: int) -> ScheduleConfig:
    """`cfg` with `warmup_fraction` turned into `warmup_updates` for a run of `max_updates` (unchanged without)."""
    if cfg.warmup_fraction is None:
        return cfg
    return dataclasses.replace(cfg, warmup_updates=round(cfg.warmup_fraction * max_updates), warmup_fraction=None)


def lr_at(update: int, *, lr: float, total_updates: int, cfg: ScheduleConfig) -> float:
    """Learning rate for update number `update` (0-based: the rate used by the update after `update` steps)."""
    if cfg.kind == "tri_stage":
        warmup = int(total_updates * cfg.phase_ratio[0])
        hold = int(total_updates * cfg.phase_ratio[1])
        decay = max(1, total_updates - warmup - hold)
        init_lr = cfg.init_lr_scale * lr
        if update < warmup:
            return init_lr + (lr - init_lr) * update / warmup
        if update < warmup + hold:
            return lr
        # Exponential decay from lr to final_lr over the decay phase, held at final_lr afterwards.
        progress = min(1.0, (update - warmup - hold) / decay)
        return lr * math.exp(math.log(cfg.final_lr_scale) * progress)
    if cfg.warmup_updates > 0 and update < cfg.warmup_updates:
        # fairseq starts at lr / warmup for the first update, then lr * updates / warmup.
        return lr * max(update, 1) / cfg.warmup_updates
    if cfg.kind == "constant":
        return lr
    remaining = max(1, total_updates - cfg.warmup_updates)
    progress = min(1.0, (update - cfg.warmup_updates) / remaining)
    return (lr - cfg.end_lr) * (1.0 - progress) ** cfg.power + cfg.end_lr


class LRSchedule:
    """Sets the optimiser's learning rate from the update count; its state is the update count alone.

    Each parameter group runs at the scheduled rate times its `lr_scale` (1 where it has none), as the
    optimiser was built: the scales are read once here, so a resumed optimiser state cannot change them."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, lr: float, total_updates: int, cfg: ScheduleConfig):
        self.optimizer, self.lr, self.total_updates, self.cfg = optimizer, lr, total_updates, cfg
        self.lr_scales = [group.get("lr_scale", 1.0) for group in optimizer.param_groups]
        self.step(0)

    def step(self, num_updates: int) -> float:
        """Set every group's rate for update `num_updates`; returns the scheduled (unscaled) rate."""
        value = lr_at(num_updates, lr=self.lr, total_updates=self.total_updates, cfg=self.cfg)
        for group, scale in zip(self.optimizer.param_groups, self.lr_scales, strict=True):
            group["lr"] = value * scale
        return value


# A parameter of the convolutional feature encoder has this component in its name (Wav2Vec2Encoder's
# `feature_encoder`, under the pretraining and the CTC model alike).
FEATURE_ENCODER_NAME = "feature_encoder"


def parameter_groups(named_params, cfg: OptimConfig) -> list[dict]:
    """The trainable parameters as the optimiser's groups: one group, or, where `feature_encoder_lr_scale` is not
    1 and the feature encoder has trainable parameters, the rest first and the feature encoder second (with its
    `lr_scale`)."""
    trainable, rest, feature_encoder = [], [], []
    for item in named_params:
        if isinstance(item, torch.Tensor) or len(item) != 2:
            raise TypeError("the optimiser takes (name, parameter) pairs, as model.named_parameters() gives them; "
                            f"got {type(item).__name__}")
        name, p = item
        if p.requires_grad:
            trainable.append(p)
            (feature_encoder if FEATURE_ENCODER_NAME in name.split(".") else rest).append(p)
    if cfg.feature_encoder_lr_scale == 1.0 or not feature_encoder:
        # The model's own order: an optimiser state saved before the groups existed maps onto it by position.
        return [{"params": trainable}]
    return [{"params": rest}, {"params": feature_encoder, "lr_scale": cfg.feature_encoder_lr_scale}]


def build_optimizer(named_params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters (`(name, parameter)` pairs, as `named_parameters()` gives them) in
    `parameter_groups`; biases and norm weights are decayed too, as in fairseq.

    The fused kernel (one pass over each parameter instead of a dozen elementwise ops) where torch has one for
    the device: on 2 CPU cores it takes the BASE optimizer step from ~310 ms to ~75 ms (bench/README.md)."""
    groups = parameter_groups(named_params, cfg)
    trainable = [p for group in groups for p in group["params"]]
    fused = bool(trainable) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in trainable)
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
        fused=fused or None,
    )
