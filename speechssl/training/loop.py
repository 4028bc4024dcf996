"""The training loop shared by pretraining and fine-tuning.

One update = `update_freq` micro-batches, each forward/backward with a SUM-reduced loss; the summed gradient
is then divided by the total sample size over micro-batches and ranks (fairseq's normalisation), so that
accumulated or distributed steps equal one large batch. Task differences (what the loss is, how validation
scores) live in the task object, not in hooks: see `speechssl.training.pretrain` and `.finetune`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from speechssl.data.audio import SAMPLE_RATE
from speechssl.data.tokenizer import LetterTokenizer
from speechssl.interop.checkpoint import atomic_alias, atomic_torch_save, checkpoint_dict, load_checkpoint
from speechssl.models.precision import autocast, make_grad_scaler, resolve_precision
from speechssl.training.checkpoint import (
    find_resume_checkpoint,
    remove_interrupted_writes,
    restore_rank_rng,
    rng_state,
)
from speechssl.training.config import TrainerConfig
from speechssl.training.distributed import (
    DistInfo,
    all_gather_object,
    barrier,
    broadcast_from_main,
    sum_over_ranks,
)
from speechssl.training.health import HealthMonitor, schedule_warnings
from speechssl.training.logging import RunLogger
from speechssl.training.optim import LRSchedule, OptimConfig, ScheduleConfig, build_optimizer, resolve_warmup

# Fault injection for the reliability tests: SIGKILL this process right after the update with this number
# (before its checkpoint is written), exactly as a crash or an OOM killer would.
KILL_AFTER_UPDATE_ENV = "SPEECHSSL_KILL_AFTER_UPDATE"

# fp16: a loss scale below this (fairseq's min_loss_scale) means the run only overflows; it stops.
MIN_LOSS_SCALE = 1e-4


@dataclass(kw_only=True)
class StepOutput:
    """What a task's forward returns for one micro-batch."""

    loss: torch.Tensor
    """Scalar, SUM-reduced over the micro-batch."""
    sample_size: float
    """What the loss is normalised by (masked steps in pretraining, utterances in CTC)."""
    stats: dict[str, float | torch.Tensor]
    """Sums to log (divided by sample_size or counts later by the task's `reduce`). Scalar tensors stay on the
    device: the trainer reads them all at once per update, not one host sync per statistic and micro-batch."""
    audio_samples: int
    """Unpadded input samples in the micro-batch, for throughput."""


class Task(Protocol):
    """What the loop needs from pretraining or fine-tuning."""

    name: str
    model: nn.Module
    tokenizer: LetterTokenizer | None
    """The CTC vocabulary the checkpoints record (None for pretraining)."""

    def train_batches(self, epoch: int, start: int) -> Iterator[Any]: ...
    def batches_per_epoch(self, epoch: int) -> int: ...
    def forward(self, model: nn.Module, batch: Any, num_updates: int) -> StepOutput: ...
    def reduce(self, sums: dict[str, float], sample_size: float) -> dict[str, float]: ...
    def before_update(self, model: nn.Module, num_updates: int) -> None: ...
    def validate(self, model: nn.Module) -> dict[str, float]: ...
    def best_key(self) -> tuple[str, bool]: ...
    def health_sizes(self) -> dict[str, int | None]: ...
    def unused_parameter_reasons(self) -> list[str]: ...


@dataclass(kw_only=True)
class TrainState:
    num_updates: int = 0
    epoch: int = 1
    batches_done: int = 0
    """Batches of `epoch` already consumed (the sampler position to resume from)."""
    best: float | None = None
    best_metric: str | None = None
    """The validation metric `best` is a value of (a resumed run that picks by another one starts afresh)."""
    validations_since_best: int = 0
    """Validations in a row without a new best (`TrainerConfig.patience`)."""
    best_progress: float | None = None
    """The lowest value of `TrainerConfig.patience_progress_metric` so far."""
    stopped_early: bool = False
    """The run ended before max_updates because its best metric stopped improving."""
    skipped_nonfinite: int = 0
    consecutive_nonfinite: int = 0
    audio_seconds: float = 0.0
    train_seconds: float = 0.0


class NonFiniteError(RuntimeError):
    """Too many non-finite updates in a row."""


def _is_better(value: float, best: float | None, lower_is_better: bool) -> bool:
    if best is None:
        return True
    return value < best if lower_is_better else value > best


class Trainer:
    """Runs updates, validation, logging and checkpointing for a task."""

    def __init__(self, task: Task, *, trainer: TrainerConfig, optim: OptimConfig, schedule: ScheduleConfig,
                 device: torch.device, dist: DistInfo, resolved_config: dict | None = None):
        self.task, self.cfg, self.optim_cfg, self.dist = task, trainer, optim, dist
        self.device = device
        self.precision = resolve_precision(trainer.precision, device)
        if trainer.precision == "auto":  # on a CPU a timing: every rank trains at rank 0's choice
            self.precision = broadcast_from_main(self.precision, dist)
        self.model = task.model.to(device)
        self.ddp_model: nn.Module = self.model
        if dist.enabled:
            reasons = task.unused_parameter_reasons()
            forced = trainer.find_unused_parameters
            find_unused = bool(reasons) if forced is None else forced
            if dist.is_main:
                why = ("trainer.find_unused_parameters" if forced is not None
                       else "; ".join(reasons) or "every parameter gets a gradient at every step")
                print(f"DDP find_unused_parameters={find_unused} ({why})", flush=True)
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=find_unused,
            )
        if trainer.compile:  # (the backend's name was checked by TrainerConfig.validate)
            # The DDP module itself is compiled (torch's DDPOptimizer then splits the graph at the gradient
            # buckets, so all-reduces still overlap the backward); self.model stays the plain module.
            self.ddp_model = torch.compile(self.ddp_model, backend=trainer.compile_backend)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.model.named_parameters(), optim)
        if schedule.warmup_fraction is not None and dist.is_main and schedule.kind != "tri_stage":
            print(f"learning-rate warm-up: {round(schedule.warmup_fraction * trainer.max_updates)} updates "
                  f"(schedule.warmup_fraction {schedule.warmup_fraction:g} of {trainer.max_updates})", flush=True)
        schedule = resolve_warmup(schedule, trainer.max_updates)
        self.schedule = LRSchedule(self.optimizer, lr=optim.lr, total_updates=trainer.max_updates, cfg=schedule)
        self.scaler = make_grad_scaler(self.precision, device)
        self.state = TrainState()
        self.run_dir = Path(trainer.run_dir)
        self.resolved_config = resolved_config or {}
        sizes = task.health_sizes()
        self.health = HealthMonitor(trainer.health, num_codes=sizes.get("num_codes"),
                                    num_negatives=sizes.get("num_negatives"), total_updates=trainer.max_updates)
        self.warmup_updates = (int(trainer.max_updates * schedule.phase_ratio[0]) if schedule.kind == "tri_stage"
                               else schedule.warmup_updates)
        self.logger: RunLogger | None = None
        self.last_saved: tuple[Path, int] | None = None
        """The newest complete checkpoint of this run and its update (resumed from or written)."""

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The model's checkpoint (speechssl.interop.checkpoint's format) with the training state added."""
        return checkpoint_dict(
            self.model, tokenizer=self.task.tokenizer,
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            train_state=asdict(self.state),
            rng=all_gather_object(rng_state(), self.dist),  # one per rank, in rank order
            config=self.resolved_config,
        )

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        saved_groups, groups = len(state["optimizer"]["param_groups"]), len(self.optimizer.param_groups)
        if saved_groups != groups:
            raise ValueError(
                f"the checkpoint's optimiser has {saved_groups} parameter group(s), this run's has {groups}: "
                "optim.feature_encoder_lr_scale must stay as the run began (1: one group; any other value gives "
                "the feature encoder its own group where it trains)")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.state = TrainState(**state["train_state"])
        warning = restore_rank_rng(state["rng"], rank=self.dist.rank, world_size=self.dist.world_size,
                                   seed=self.cfg.seed, num_updates=self.state.num_updates)
        if warning and self.dist.is_main:
            print(f"warning: {warning}", flush=True)
        self.schedule.step(self.state.num_updates)

    def save(self, *, best: bool = False) -> None:
        """Write checkpoint_last (+ numbered, + best); atomic. Every rank calls it (each hands rank 0 its RNG
        state); rank 0 writes."""
        state = self.state_dict()
        if not self.dist.is_main:
            return
        ckpt_dir = self.run_dir / "checkpoints"
        n = self.state.num_updates
        numbered_path = ckpt_dir / f"checkpoint_{n}.pt"
        atomic_torch_save(state, numbered_path)
        # last and best are the same bytes: names for one file, not two more copies of it
        atomic_alias(numbered_path, ckpt_dir / "checkpoint_last.pt")
        if best:
            atomic_alias(numbered_path, ckpt_dir / "checkpoint_best.pt")
        self.last_saved = (numbered_path, n)
        keep = self.cfg.keep_interval_checkpoints
        if keep >= 0:
            numbered = sorted(ckpt_dir.glob("checkpoint_[0-9]*.pt"), key=lambda p: int(p.stem.split("_")[1]))
            for old in numbered[: max(0, len(numbered) - max(keep, 1))]:
                old.unlink(missing_ok=True)

    def _progressed(self, metrics: dict) -> bool:
        """Whether `metrics` holds a new lowest `patience_progress_metric` (recorded in the train state)."""
        name = self.cfg.patience_progress_metric
        if name is None:
            return False
        if name not in metrics:
            raise KeyError(f"trainer.patience_progress_metric={name!r} is not a validation metric of this task "
                           f"(it reports {sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))})")
        if not _is_better(metrics[name], self.state.best_progress, lower_is_better=True):
            return False
        self.state.best_progress = metrics[name]
        return True

    def maybe_resume(self) -> bool:
        if self.dist.is_main:
            for tmp in remove_interrupted_writes(self.run_dir):
                print(f"removed {tmp}: a checkpoint write cut short by a crash", flush=True)
        if self.cfg.resume == "none":
            return False
        if self.cfg.resume == "auto":
            found = find_resume_checkpoint(self.run_dir)
            if found is None:
                return False
            path, state = found
        else:
            path, state = Path(self.cfg.resume), load_checkpoint(self.cfg.resume)
        self.load_state_dict(state)
        self.last_saved = (path, self.state.num_updates)
        if self.dist.is_main:
            print(f"resumed from {path} at update {self.state.num_updates}", flush=True)
        return True

    # ------------------------------------------------------------------ one update
    def _micro_batches(self) -> Iterator[list[Any]]:
        """Group the stream of batches into updates of `update_freq` micro-batches, across epochs."""
        group: list[Any] = []
        while True:
            for batch in self.task.train_batches(self.state.epoch, self.state.batches_done):
                self.state.batches_done += 1
                group.append(batch)
                if len(group) == self.cfg.update_freq:
                    yield group
                    group = []
            # An epoch's remainder (fewer than update_freq batches) joins the next epoch's first batches.
            self.state.epoch += 1
            self.state.batches_done = 0

    def train_update(self, micro_batches: list[Any]) -> dict[str, float]:
        """Forward/backward every micro-batch, normalise, clip, step. Returns the update's statistics."""
        model, n = self.ddp_model, self.state.num_updates
        model.train()
        self.task.before_update(self.model, n)
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float | torch.Tensor] = {}
        sample_size, audio_samples = 0.0, 0.0
        loss_sum: float | torch.Tensor = 0.0
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            # Gradients are all-reduced once, on the last micro-batch of the update.
            sync = contextlib.nullcontext() if (last or not self.dist.enabled) else model.no_sync()
            with sync:
                with autocast(self.precision, self.device):
                    out = self.task.forward(model, batch, n)
                loss = out.loss.float()
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            sample_size += out.sample_size
            audio_samples += out.audio_samples
            # fp64 sums on the device, read once below (the values and the arithmetic of python floats)
            loss_sum = loss_sum + loss.detach().double()
            for k, v in out.stats.items():
                sums[k] = sums.get(k, 0.0) + (v.detach().double() if isinstance(v, torch.Tensor) else float(v))
        keys = sorted(sums)
        # Summed over ranks on the device: nothing is read until the gradient norm is known, then everything once.
        reduced = sum_over_ranks([sample_size, audio_samples, loss_sum] + [sums[k] for k in keys],
                                 self.device, self.dist)  # (3 + len(keys),) float64

        for p in self.params:
            if not p.requires_grad:  # frozen for now (fine-tuning): no gradient, so no Adam/decay step
                p.grad = None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        # DDP averaged the summed gradients over ranks; fairseq divides the grand sum by the total sample size
        # (a 0-d device tensor: the total is on the device, and multiplies as the python float did).
        factor = self.dist.world_size / reduced[0].clamp_min(1.0)
        for p in self.params:
            if p.grad is not None:
                p.grad.mul_(factor)
        max_norm = self.optim_cfg.clip_norm if self.optim_cfg.clip_norm > 0 else float("inf")
        grad_norm_on_device = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        # The update's one read of the device: the statistics and the gradient norm, which decides the step.
        *read, grad_norm = torch.cat([reduced, grad_norm_on_device.detach().to(torch.float64).reshape(1)]).tolist()
        sample_size, audio_samples, loss_sum = read[:3]
        sums = dict(zip(keys, read[3:]))
        finite = math.isfinite(grad_norm) and math.isfinite(loss_sum)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the step itself on inf/nan
            self.scaler.update()
        elif finite:
            self.optimizer.step()
        if finite:
            self.state.consecutive_nonfinite = 0
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.state.skipped_nonfinite += 1
            self.state.consecutive_nonfinite += 1
        self.state.num_updates += 1
        lr = self.schedule.step(self.state.num_updates)
        self.state.audio_seconds += audio_samples / SAMPLE_RATE
        stats = self.task.reduce(sums, sample_size)
        stats.update({"loss": loss_sum / max(sample_size, 1.0) / math.log(2), "grad_norm": grad_norm, "lr": lr,
                      "sample_size": sample_size, "audio_seconds": audio_samples / SAMPLE_RATE,
                      "skipped": 0 if finite else 1})
        if not finite and self.scaler is None and self.state.consecutive_nonfinite >= self.cfg.max_consecutive_nonfinite:
            raise NonFiniteError(
                f"{self.state.consecutive_nonfinite} non-finite updates in a row (last at update "
                f"{self.state.num_updates}): stopping. Lower optim.lr, check the data for NaN/inf samples, "
                "or use trainer.precision=fp32 / bf16."
            )
        # Under fp16 an overflow is how the loss scaler learns its scale (each one halves it), so a run of
        # them is no failure by itself; a scale driven below fairseq's min_loss_scale is: the loss or the
        # gradients are non-finite at any scale, and the run would skip every update from here on.
        if not finite and self.scaler is not None and self.scaler.get_scale() < MIN_LOSS_SCALE:
            raise NonFiniteError(
                f"{self.state.consecutive_nonfinite} non-finite updates in a row (last at update "
                f"{self.state.num_updates}) drove the fp16 loss scale to {self.scaler.get_scale():.3g} "
                f"(< {MIN_LOSS_SCALE:g}): stopping. Lower optim.lr, check the data for NaN/inf samples, "
                "or use trainer.precision=bf16 / fp32."
            )
        return stats

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        self.maybe_resume()
        if self.state.num_updates >= cfg.max_updates or self.state.stopped_early:
            if self.dist.is_main:
                why = (f"stopped early at update {self.state.num_updates} (no new best in {cfg.patience} "
                       "validations)" if self.state.stopped_early else
                       f"already at update {self.state.num_updates} >= max_updates {cfg.max_updates}")
                print(f"run {why}: nothing to do")
            return self.summary()
        pause_at = cfg.stop_at_update
        if pause_at is not None and self.state.num_updates >= pause_at:
            if self.dist.is_main:
                print(f"run already at update {self.state.num_updates} >= trainer.stop_at_update {pause_at}: "
                      "nothing to do", flush=True)
            return self.summary()
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main, tensorboard=cfg.tensorboard,
                                progress=cfg.progress, total_updates=cfg.max_updates,
                                initial_update=self.state.num_updates)
        log_sums: dict[str, float] = {}
        log_count, window_start, window_audio = 0, time.perf_counter(), 0.0
        best_key, lower_is_better = self.task.best_key()
        if self.state.best_metric not in (None, best_key) and self.state.best is not None:
            if self.dist.is_main:
                print(f"checkpoint_best was picked by {self.state.best_metric}, now by {best_key}: the next "
                      "validation starts the comparison afresh", flush=True)
            self.state.best = None
        self.state.best_metric = best_key
        if self.cfg.health.enabled:
            for w in schedule_warnings(warmup_updates=self.warmup_updates, max_updates=cfg.max_updates,
                                       start_update=self.state.num_updates):
                self.logger.message(f"[health] {w.message}")
                self.logger.log("health", w.update, {"kind": w.kind, "message": w.message})
        kill_after = int(os.environ.get(KILL_AFTER_UPDATE_ENV, "0") or 0)
        completed = False
        try:
            for micro_batches in self._micro_batches():
                t0 = time.perf_counter()
                stats = self.train_update(micro_batches)
                self.state.train_seconds += time.perf_counter() - t0
                n = self.state.num_updates
                if kill_after and n == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                for w in self.health.observe(n, stats):
                    self.logger.message(f"[health] {w.message}")
                    self.logger.log("health", n, {"kind": w.kind, "message": w.message})
                for k, v in stats.items():
                    log_sums[k] = log_sums.get(k, 0.0) + v
                log_count += 1
                window_audio += stats["audio_seconds"]
                if n % cfg.log_interval == 0 or n == cfg.max_updates:
                    elapsed = time.perf_counter() - window_start
                    record = {k: v / log_count for k, v in log_sums.items() if k not in {"skipped", "audio_seconds"}}
                    record["skipped"] = log_sums.get("skipped", 0)
                    record["audio_s_per_s"] = window_audio / max(elapsed, 1e-9)
                    record["epoch"] = self.state.epoch
                    self.logger.log("train", n, record)
                    self.logger.progress(n, {"loss": record["loss"], "lr": record["lr"],
                                             "audio_s/s": record["audio_s_per_s"]})
                    log_sums, log_count, window_start, window_audio = {}, 0, time.perf_counter(), 0.0
                is_last = n >= cfg.max_updates
                # trainer.stop_at_update: validate and save here, as at the end, but leave the run resumable
                pause = not is_last and pause_at is not None and n >= pause_at
                best = False
                if (cfg.valid_interval and n % cfg.valid_interval == 0) or is_last or pause:
                    metrics = self.task.validate(self.model)
                    if metrics:
                        self.logger.log("valid", n, metrics)
                        self.logger.message(f"[valid] update {n}: " + ", ".join(
                            f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))))
                        progress = self._progressed(metrics)
                        if best_key in metrics and _is_better(metrics[best_key], self.state.best, lower_is_better):
                            self.state.best, best = metrics[best_key], True
                            self.state.validations_since_best = 0
                        elif progress:
                            self.state.validations_since_best = 0
                        elif best_key in metrics and (cfg.patience_from is None or _is_better(
                                self.state.best, cfg.patience_from, lower_is_better)):
                            self.state.validations_since_best += 1
                    # Every rank stops, and saves a new best, together: only rank 0 validates, so it decides
                    # (every rank takes part in writing a checkpoint: each hands over its RNG state).
                    stop = cfg.patience > 0 and self.state.validations_since_best >= cfg.patience
                    if self.dist.enabled:
                        stop, best, self.state.best = broadcast_from_main((stop, best, self.state.best), self.dist)
                    if stop and not is_last:
                        self.state.stopped_early = is_last = True
                        also = ("" if cfg.patience_progress_metric is None or self.state.best_progress is None else
                                f" nor a lower valid {cfg.patience_progress_metric} than {self.state.best_progress:.4g}")
                        self.logger.message(
                            f"[early stop] update {n}: no better valid {best_key} than {self.state.best:.4g}{also} "
                            f"in {cfg.patience} validations (trainer.patience); checkpoint_best holds it")
                validated = bool(cfg.valid_interval and n % cfg.valid_interval == 0) or is_last or pause
                saved = bool(cfg.save_interval and n % cfg.save_interval == 0) or is_last or best or pause
                if saved:
                    self.save(best=best)
                if validated or saved:
                    # Rank 0 validated and wrote alone: the others wait here, in a barrier bounded by
                    # trainer.dist_timeout_minutes, rather than inside the next update's all-reduce.
                    barrier(self.dist)
                if is_last:
                    break
                if pause:
                    self.logger.message(f"[stop] update {n}: trainer.stop_at_update; the same command without it "
                                        f"goes on to max_updates {cfg.max_updates}")
                    break
            completed = True
        finally:
            barrier(self.dist)
            if self.logger is not None:
                summary = self.summary()
                try:
                    self.logger.log("summary", self.state.num_updates, summary)
                    if self.dist.is_main:
                        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
                except OSError:
                    if completed:  # else the error that stopped training (a full disk, say) is the one to report
                        raise
                self.logger.close()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        s = self.state
        speed = s.audio_seconds / s.train_seconds if s.train_seconds > 0 else 0.0
        out = {
            "updates": s.num_updates,
            "best": s.best,
            "stopped_early": s.stopped_early,
            "skipped_nonfinite": s.skipped_nonfinite,
            "audio_hours": s.audio_seconds / 3600,
            "train_hours": s.train_seconds / 3600,
            # Audio-hours per hour of training, the whole run (all ranks together).
            "audio_hours_per_hour": speed,
            "device": str(self.device),
            "precision": self.precision,
            "world_size": self.dist.world_size,
        }
        if self.device.type == "cuda":
            out["audio_hours_per_gpu_hour"] = speed / self.dist.world_size
            out["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return out

