"""Run a training app from a validated config: set up device, processes, task and trainer."""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechssl.data.audio import audio_error_message
from speechssl.interop.checkpoint import CheckpointError, DiskFullError
from speechssl.models.precision import auto_precision_reason, configure_matmul_precision, resolve_device
from speechssl.training.allocator import keep_freed_memory
from speechssl.training.config import FinetuneConfig, PretrainConfig
from speechssl.training.distributed import cleanup, init_distributed
from speechssl.training.effective_batch import EffectiveBatch, derive_update_freq
from speechssl.training.loop import NonFiniteError, Trainer
from speechssl.training.run_lock import RunDirLock, RunDirLockedError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def apply_effective_batch(app: str, cfg: PretrainConfig | FinetuneConfig, resolved: dict[str, Any], *,
                          world_size: int, is_main: bool) -> EffectiveBatch:
    """Set cfg.trainer.update_freq for this world size (from trainer.tokens_per_update when set), record it in the
    resolved config written to the run directory, and print the batch (rank 0). Raises ValueError (a config error)
    when the batch cannot be met within trainer.max_batch_deviation."""
    t = cfg.trainer
    batch = derive_update_freq(tokens_per_update=t.tokens_per_update, update_freq=t.update_freq,
                               max_tokens=cfg.data.max_tokens, world_size=world_size,
                               max_deviation=t.max_batch_deviation)
    cfg.trainer = dataclasses.replace(t, update_freq=batch.update_freq)
    resolved.setdefault("trainer", {})["update_freq"] = batch.update_freq
    if is_main:
        print(f"speechssl {app}: {batch.describe()}", flush=True)
        if batch.warning():
            print(f"speechssl {app}: warning: {batch.warning()}", file=sys.stderr, flush=True)
    return batch


def build_trainer(app: str, cfg: PretrainConfig | FinetuneConfig, resolved: dict[str, Any]) -> Trainer:
    device = resolve_device(cfg.trainer.device)
    dist = init_distributed(device.type, timeout_minutes=cfg.trainer.dist_timeout_minutes)
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
    if cfg.trainer.threads > 0:
        torch.set_num_threads(cfg.trainer.threads)
    # The glibc setting exists for the CPU's activations: on a GPU they live in CUDA's caching allocator, and
    # the host's heap would only hold the data pipeline's peak for the whole run.
    if cfg.trainer.keep_freed_memory and device.type == "cpu":
        keep_freed_memory()
    configure_matmul_precision(device, tf32=cfg.trainer.tf32)
    apply_effective_batch(app, cfg, resolved, world_size=dist.world_size, is_main=dist.is_main)
    seed_everything(cfg.trainer.seed)
    if app == "pretrain":
        from speechssl.training.pretrain import PretrainTask

        task = PretrainTask(cfg, device=device, dist=dist)
    else:
        from speechssl.training.finetune import FinetuneTask

        task = FinetuneTask(cfg, device=device, dist=dist)
    return Trainer(task, trainer=cfg.trainer, optim=cfg.optim, schedule=cfg.schedule, device=device, dist=dist,
                   resolved_config=resolved)


def write_resolved_config(run_dir: Path, resolved: dict[str, Any]) -> None:
    import yaml

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))


def disk_full_message(exc: DiskFullError, trainer: Trainer) -> str:
    """One line: what could not be written, what is intact, how to go on."""
    if trainer.last_saved is None:
        kept = "no checkpoint had been written yet; free space and run the same command again"
    else:
        path, update = trainer.last_saved
        kept = (f"{path} (update {update}) is intact and nothing else was lost; free space and run the same "
                f"command again: it resumes from update {update} (trainer.resume=auto)")
    return (f"disk full: writing {exc.path} needs about {exc.needed_bytes / 1e6:.1f} MB, "
            f"{exc.free_bytes / 1e6:.1f} MB free; {kept}")


def run_training(app: str, cfg: PretrainConfig | FinetuneConfig, resolved: dict[str, Any]) -> int:
    try:
        trainer = build_trainer(app, cfg, resolved)
    except (ValueError, CheckpointError, FileNotFoundError) as exc:
        # What building checks (model field values, the init checkpoint and its vocabulary, utterance lengths
        # against data.max_tokens) is still configuration: one line, before any compute, as cfg.validate().
        print(f"speechssl {app}: config error: {exc}", file=sys.stderr)
        return 2
    lock = RunDirLock(trainer.run_dir)
    if trainer.dist.is_main:
        try:
            lock.acquire()
        except RunDirLockedError as exc:
            print(f"speechssl {app}: {exc}", file=sys.stderr)
            cleanup(trainer.dist, synchronize=False)
            return 2
        if lock.stale_holder is not None:
            print(f"took over the lock of {trainer.run_dir} from {lock.stale_holder}, which is no longer running",
                  flush=True)
        write_resolved_config(trainer.run_dir, resolved)
        n_params = sum(p.numel() for p in trainer.model.parameters())
        precision = trainer.precision
        if cfg.trainer.precision == "auto":  # say why: bf16's speed on a CPU is measured, not assumed
            precision = f"auto -> {auto_precision_reason(trainer.device)}"
        print(f"speechssl {app}: {n_params / 1e6:.2f} M parameters, device {trainer.device}, "
              f"precision {precision}, world size {trainer.dist.world_size}, run dir {trainer.run_dir}",
              flush=True)
    finished = False
    try:
        summary = trainer.fit()
        if trainer.dist.is_main:
            print(json.dumps(summary, indent=2))
        finished = True
    except NonFiniteError as exc:
        print(f"speechssl {app}: {exc}", file=sys.stderr)
        return 3
    except DiskFullError as exc:
        print(f"speechssl {app}: {disk_full_message(exc, trainer)}", file=sys.stderr)
        return 4
    except Exception as exc:
        message = audio_error_message(exc)
        if message is None:
            raise
        print(f"speechssl {app}: bad audio file: {message}. Run `speechssl prepare` again (it skips such files) "
              "or set data.skip_bad_files=true", file=sys.stderr)
        return 2
    finally:
        cleanup(trainer.dist, synchronize=finished)
        lock.release()
    return 0
