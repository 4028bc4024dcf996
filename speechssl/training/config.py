"""Typed configuration of the training apps.

Hydra composes `conf/` in the CLI (`speechssl.cli.train`), which merges the result into these dataclasses
(so an unknown or mistyped key fails before any compute) and hands plain dataclasses to the package.
`ModelSection` names a preset and overrides any of `Wav2Vec2Config`'s fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechssl.training.effective_batch import check_batch_settings
from speechssl.training.health import HealthConfig
from speechssl.training.optim import OptimConfig, ScheduleConfig


@dataclass(kw_only=True)
class TrainerConfig:
    """How long to train, where to write, and how often to log, validate and save."""

    run_dir: str = "exp/run"
    """Directory holding the resolved config, logs, TensorBoard events and checkpoints of this run."""
    max_updates: int = 1000
    """Number of updates to train for (the schedule's length)."""
    stop_at_update: int | None = None
    """End this invocation at this update (validated and saved as every update is then), as an interruption
    would: the schedule still runs over max_updates, and the same command without it goes on from there (resume
    auto). The CPU recipes' best-of-several starts (egs/common/compare.sh, STARTS) train each start this far.
    None: train to max_updates."""
    update_freq: int = 1
    """Micro-batches accumulated per update (derived when `tokens_per_update` is set; leave it at 1 then)."""
    tokens_per_update: int | None = None
    """The batch per update in samples, padding included, over all ranks and accumulation steps: what a
    recipe's learning rate and schedule were tuned for (BASE pretraining 64 x 1.4 M = 89.6 M). When set,
    update_freq = tokens_per_update / (world size x data.max_tokens) at start-up, printed
    (training/effective_batch.py). null: update_freq as given."""
    max_batch_deviation: float = 0.1
    """With tokens_per_update: the largest relative difference accepted (with a warning) when the world size
    does not divide the batch; beyond it the run is refused, naming the data.max_tokens that would fit."""
    seed: int = 1
    """Seeds python, numpy and torch; batches and masks derive from it too."""
    device: str = "auto"
    """`auto` (CUDA when present), `cpu`, `cuda`, `cuda:1`, ..."""
    precision: str = "auto"
    """`auto` (bf16 where a bf16 matmul measures >= 1.25x fp32, else fp32; never fp16 on CPU), `fp32`, `bf16`,
    `fp16` (GPU)."""
    resume: str = "auto"
    """`auto`: continue from the newest valid checkpoint of run_dir if any; `none`: start fresh; or a path."""
    log_interval: int = 10
    """Updates between two train log records."""
    valid_interval: int = 500
    """Updates between two validations (0: only at the end)."""
    save_interval: int = 500
    """Updates between two checkpoints (`checkpoint_last.pt` + `checkpoint_<N>.pt`)."""
    keep_interval_checkpoints: int = 2
    """How many numbered checkpoints to keep (-1: all)."""
    max_consecutive_nonfinite: int = 10
    """Stop the run after this many non-finite updates in a row (fp32/bf16; under fp16 the run stops once the
    loss scaler, which halves its scale at each overflow, falls below 1e-4, fairseq's min_loss_scale)."""
    patience: int = 0
    """Stop early after this many validations in a row without a new best (the task's best metric: valid loss
    in pretraining, `best_metric` in fine-tuning); 0 trains to max_updates. With it, max_updates is a ceiling
    and the learning-rate schedule keeps its shape over max_updates."""
    patience_from: float | None = None
    """Count patience only once the best metric is better than this value (None: from the first validation).
    A CTC model from scratch first sits in an all-blank stage, valid CER ~100 %, for hundreds to thousands of
    updates (egs/an4: 300 to 1,000+ by seed): a plateau there is not convergence (best_metric=cer: 95)."""
    patience_progress_metric: str | None = None
    """A second validation metric, lower is better, whose new lowest value also resets patience: the run stops
    only when neither it nor the best metric improved for `patience` validations (None: the best metric
    alone). CER leaving CTC's all-blank stage is noisy (egs/an4, scratch seed 2: 83 at update 400, then 86-96
    while valid CTC loss fell from 52 to 38, and patience ended it at 1,200); `ctc_loss` keeps such a run going."""
    tensorboard: bool = True
    """Write TensorBoard event files."""
    progress: bool = True
    """Show a progress bar."""
    threads: int = 0
    """torch intra-op threads on the CPU (0: torch's default)."""
    keep_freed_memory: bool = True
    """Serve CPU allocations from the heap and never trim it (glibc only; see training/allocator.py): each step
    reuses the previous one's memory instead of page-faulting it in again. Resident memory then stays at
    the run's peak, which is higher (BASE bf16 pretraining step: 2.4 -> 2.8 GB for 6.3 -> 6.8 audio-s/s)."""
    tf32: bool = True
    """On a CUDA device, fp32 matmuls and convolutions use TF32 tensor cores (Ampere and later; no effect on the
    CPU or on autocast's bf16/fp16 regions)."""
    dist_timeout_minutes: float = 120.0
    """How long a rank waits in a collective (all-reduce, barrier) before the process group gives up. Rank 0
    validates and writes checkpoints alone while the others wait at a barrier: this must exceed the longest
    validation plus checkpoint write (NCCL's own default, 10 minutes, does not for a large valid set)."""
    find_unused_parameters: bool | None = None
    """DDP's search for parameters a step leaves without a gradient. null: on exactly when the model and task
    can leave some (LayerDrop, feature_grad_mult 0, freeze_finetune_updates, no time masks in fine-tuning;
    `speechssl.training.distributed.unused_parameter_reasons`), printed at start-up; true/false forces it."""
    compile: bool = False
    """torch.compile the model's training forward (and its backward) with `compile_backend`. Each new batch
    shape can cost a recompilation at first; validation and checkpoints use the uncompiled model."""
    compile_backend: str = "inductor"
    """torch.compile's backend: `inductor` (generated kernels), or `aot_eager` / `eager` (tracing only: checks
    that the model compiles, no speed-up)."""
    health: HealthConfig = field(default_factory=HealthConfig)
    """Training-health monitor settings."""

    def validate(self) -> None:
        positive = {"max_updates": self.max_updates, "update_freq": self.update_freq,
                    "log_interval": self.log_interval, "max_consecutive_nonfinite": self.max_consecutive_nonfinite}
        for key, value in positive.items():
            if value < 1:
                raise ValueError(f"trainer.{key} must be >= 1, got {value}")
        if self.dist_timeout_minutes <= 0:
            raise ValueError(f"trainer.dist_timeout_minutes must be > 0, got {self.dist_timeout_minutes}")
        if self.compile:
            import torch._dynamo

            backends = torch._dynamo.list_backends(exclude_tags=())
            if self.compile_backend not in backends:
                raise ValueError(f"trainer.compile_backend={self.compile_backend!r} is no torch.compile backend; "
                                 f"expected one of {backends}")
        if self.stop_at_update is not None and self.stop_at_update < 1:
            raise ValueError(f"trainer.stop_at_update must be None or >= 1, got {self.stop_at_update}")
        if self.stop_at_update is not None and self.valid_interval and self.stop_at_update % self.valid_interval:
            # a validation between two regular ones would move patience and checkpoint_best: the resumed run
            # would then differ from an uninterrupted one
            raise ValueError(f"trainer.stop_at_update={self.stop_at_update} must be a multiple of "
                             f"trainer.valid_interval={self.valid_interval}")
        if self.patience < 0:
            raise ValueError(f"trainer.patience must be >= 0, got {self.patience}")
        if self.patience and not self.valid_interval:
            raise ValueError("trainer.patience counts validations: it needs trainer.valid_interval > 0")
        for key in ("valid_interval", "save_interval"):
            if getattr(self, key) < 0:
                raise ValueError(f"trainer.{key} must be >= 0, got {getattr(self, key)}")
        check_batch_settings(tokens_per_update=self.tokens_per_update, update_freq=self.update_freq)
        if self.max_batch_deviation < 0:
            raise ValueError(f"trainer.max_batch_deviation must be >= 0, got {self.max_batch_deviation}")
        if self.resume not in {"auto", "none"} and not Path(self.resume).is_file():
            raise ValueError(f"trainer.resume must be auto, none or an existing checkpoint file, got {self.resume!r}")


@dataclass(kw_only=True)
class DataSection:
    """Where the prepared data is and how it is batched."""

    dir: str = "???"
    """Directory with `<subset>.tsv` manifests (+ `<subset>.<labels>` and `dict.<labels>.txt` for fine-tuning)."""
    train_subset: str = "train"
    """Manifest name (without .tsv) to train on."""
    valid_subset: str = "valid"
    """Manifest to validate on; empty string: no validation."""
    labels: str | None = None
    """Label extension for fine-tuning (`ltr`); null for pretraining."""
    max_tokens: int = 1_400_000
    """Samples per batch and rank, padding included."""
    max_batch_size: int | None = None
    """At most this many utterances per batch and rank (fairseq's dataset.batch_size; 4 in its LARGE
    pretraining config); null: only max_tokens limits a batch."""
    required_batch_size_multiple: int = 8
    """A batch cut by the budget keeps a multiple of this many utterances (the rest starts the next batch), as
    fairseq's dataset.required_batch_size_multiple (8)."""
    max_sample_size: int = 250_000
    """Longer utterances are randomly cropped to this many samples."""
    min_sample_size: int = 32_000
    """Shorter utterances are dropped (counted)."""
    crop_to_shortest: bool = True
    """Crop each batch to its shortest item (fairseq pretraining) instead of padding."""
    normalize: bool = False
    """Zero-mean unit-variance per utterance (LARGE models); must match between pretraining and fine-tuning."""
    num_workers: int = 2
    """DataLoader worker processes."""
    skip_bad_files: bool = False
    """Skip (and count) files that are gone or fail to decode instead of stopping."""

    def validate(self) -> None:
        if self.dir in ("???", "", None):
            raise ValueError("data.dir is required: the directory written by `speechssl prepare`")
        root = Path(self.dir)
        if not root.is_dir():
            raise ValueError(f"data.dir={self.dir!r} is not a directory")
        for subset in filter(None, [self.train_subset, self.valid_subset]):
            manifest = root / f"{subset}.tsv"
            if not manifest.is_file():
                raise ValueError(f"missing manifest {manifest} (data.dir / data.*_subset)")
            if self.labels and not (root / f"{subset}.{self.labels}").is_file():
                raise ValueError(f"missing labels {root / f'{subset}.{self.labels}'} (data.labels={self.labels!r})")
        if self.max_tokens < 1:
            raise ValueError(f"data.max_tokens must be >= 1, got {self.max_tokens}")
        if self.min_sample_size < 0 or self.max_sample_size < 1:
            raise ValueError("data.min_sample_size must be >= 0 and data.max_sample_size >= 1, got "
                             f"{self.min_sample_size} / {self.max_sample_size}")
        if self.min_sample_size > self.max_sample_size:
            raise ValueError(f"data.min_sample_size ({self.min_sample_size}) exceeds data.max_sample_size "
                             f"({self.max_sample_size})")
        # (the model's receptive field bounds max_tokens too: checked where the loaders meet the model,
        # speechssl.training.data_setup.build_loader)
        if self.max_tokens < self.min_sample_size:
            raise ValueError(f"data.max_tokens={self.max_tokens} is smaller than one minimum-size utterance "
                             f"(data.min_sample_size={self.min_sample_size})")
        if self.max_batch_size is not None and self.max_batch_size < 1:
            raise ValueError(f"data.max_batch_size must be >= 1 or null, got {self.max_batch_size}")
        if self.required_batch_size_multiple < 1:
            raise ValueError(f"data.required_batch_size_multiple must be >= 1, got {self.required_batch_size_multiple}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")


@dataclass(kw_only=True)
class ModelSection:
    """A preset (`tiny`, `small`, `base`, `large`) plus field overrides of `Wav2Vec2Config`."""

    preset: str = "small"
    """Name passed to `speechssl.models.get_preset`."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """`Wav2Vec2Config` fields to change, e.g. {encoder_layers: 4}; unknown names fail at start-up."""


@dataclass(kw_only=True)
class PretrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    init: str | None = None
    """Continue pretraining from this checkpoint (speechssl, Hugging Face dir or fairseq), quantizer included."""
    temp_anneal_fraction: float | None = None
    """Pretraining: the Gumbel temperature falls from `model.max_temp` to `model.min_temp` over this fraction of
    `trainer.max_updates` (sets `model.temp_decay` at start-up, so the checkpoint stores the value used). The
    paper's per-update decay (0.999995) takes 277k updates to reach 0.5; a run of a few thousand updates would
    end near 2.0, with a codebook that never sharpens. null: `model.temp_decay` as given."""

    def validate(self) -> None:
        self.data.validate()
        self.optim.validate()
        self.schedule.validate()
        self.trainer.validate()
        if self.init is not None and not Path(self.init).exists():
            raise ValueError(f"init={self.init!r} does not exist")
        if self.temp_anneal_fraction is not None and not 0.0 < self.temp_anneal_fraction <= 1.0:
            raise ValueError(f"temp_anneal_fraction must be in (0, 1] or null, got {self.temp_anneal_fraction}")


# Validation metrics of CTC fine-tuning that can pick checkpoint_best (all lower-is-better).
BEST_METRICS = ("wer", "cer", "ctc_loss")


@dataclass(kw_only=True)
class FinetuneConfig(PretrainConfig):
    freeze_finetune_updates: int = 0
    """Updates during which only the CTC head trains."""
    best_metric: str = "wer"
    """Validation metric that picks checkpoint_best, lower is better: `wer` (greedy, fairseq's choice), `cer` or
    `ctc_loss`."""

    def validate(self) -> None:
        super().validate()
        if not self.data.labels:
            raise ValueError("data.labels must name the label extension (e.g. ltr) for fine-tuning")
        if self.temp_anneal_fraction is not None:
            raise ValueError("temp_anneal_fraction applies to pretraining (the quantizer); fine-tuning has none")
        if self.freeze_finetune_updates < 0:
            raise ValueError(f"freeze_finetune_updates must be >= 0, got {self.freeze_finetune_updates}")
        if self.best_metric not in BEST_METRICS:
            raise ValueError(f"best_metric must be one of {', '.join(BEST_METRICS)}, got {self.best_metric!r}")


def temp_decay_for(max_temp: float, min_temp: float, updates: int) -> float:
    """The per-update Gumbel temperature factor that takes `max_temp` to `min_temp` in `updates` updates."""
    if updates < 1 or min_temp >= max_temp:
        return 1.0
    return (min_temp / max_temp) ** (1.0 / updates)


def apply_overrides(cfg: Any, overrides: dict[str, Any], *, where: str = "model") -> Any:
    """`dataclasses.replace` with a clear error naming an unknown key (nested dataclasses by dotted names)."""
    names = {f.name: f for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head not in names:
            raise ValueError(f"unknown key {where}.{key}: {type(cfg).__name__} has no field {head!r} "
                             f"(fields: {', '.join(sorted(names))})")
        if rest:
            nested.setdefault(head, {})[rest] = value
        elif dataclasses.is_dataclass(getattr(cfg, head)) and isinstance(value, dict):
            nested.setdefault(head, {}).update(value)
        else:
            changes[head] = value
    for head, sub in nested.items():
        changes[head] = apply_overrides(getattr(cfg, head), sub, where=f"{where}.{head}")
    return dataclasses.replace(cfg, **changes)
