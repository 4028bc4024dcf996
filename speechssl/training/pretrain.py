"""The pretraining task: contrastive + diversity + feature-penalty loss on masked frames."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from speechssl.models.masking import mask_seed
from speechssl.training.config import PretrainConfig, apply_overrides, temp_decay_for
from speechssl.training.data_setup import build_loader
from speechssl.training.distributed import DistInfo, unused_parameter_reasons
from speechssl.training.loop import StepOutput

LN2 = math.log(2)


def _scalar(value: Any) -> float | torch.Tensor:
    """A statistic as a float64 value: a detached tensor where it is one (still on the device, read by the
    trainer once per update), else a float."""
    return value.detach().double() if isinstance(value, torch.Tensor) else float(value)


def _anneal_temperature(model_cfg: Any, cfg: PretrainConfig) -> Any:
    """`model_cfg` with the temp_decay that `cfg.temp_anneal_fraction` asks for (unchanged when null)."""
    if cfg.temp_anneal_fraction is None:
        return model_cfg
    updates = max(1, round(cfg.temp_anneal_fraction * cfg.trainer.max_updates))
    decay = temp_decay_for(model_cfg.max_temp, model_cfg.min_temp, updates)
    print(f"Gumbel temperature {model_cfg.max_temp:g} -> {model_cfg.min_temp:g} over {updates} updates "
          f"(temp_anneal_fraction {cfg.temp_anneal_fraction:g} of {cfg.trainer.max_updates}): "
          f"model.temp_decay={decay:.8g}", flush=True)
    return model_cfg.replace(temp_decay=decay)


def build_pretraining_model(cfg: PretrainConfig) -> nn.Module:
    from speechssl.models import Wav2Vec2ForPreTraining, get_preset

    if cfg.init:
        from speechssl.interop import load_model

        loaded = load_model(cfg.init)
        if loaded.task != "pretrain":
            raise ValueError(f"init={cfg.init!r} is a {loaded.task} checkpoint; continued pretraining needs a "
                             "pretraining checkpoint (quantizer included)")
        model_cfg = _anneal_temperature(apply_overrides(loaded.config, cfg.model.overrides), cfg)
        model = Wav2Vec2ForPreTraining(model_cfg)
        model.load_state_dict(loaded.model.state_dict())
        return model
    model_cfg = _anneal_temperature(apply_overrides(get_preset(cfg.model.preset), cfg.model.overrides), cfg)
    model_cfg.validate()
    return Wav2Vec2ForPreTraining(model_cfg)


class PretrainTask:
    name = "pretrain"
    tokenizer = None  # pretraining checkpoints carry no vocabulary

    def __init__(self, cfg: PretrainConfig, *, device: torch.device, dist: DistInfo):
        self.cfg, self.device, self.dist = cfg, device, dist
        self.model = build_pretraining_model(cfg)
        self.model_config = self.model.config
        seed = cfg.trainer.seed
        geometry = self.model_config.geometry
        self.train_loader = build_loader(cfg.data, cfg.data.train_subset, seed=seed, dist=dist, train=True,
                                         geometry=geometry, device=device)
        self.valid_loader = (build_loader(cfg.data, cfg.data.valid_subset, seed=seed, dist=dist, train=False,
                                          geometry=geometry, device=device)
                             if cfg.data.valid_subset else None)

    # -- data
    def train_batches(self, epoch: int, start: int) -> Iterator[Any]:
        loader = self.train_loader
        loader.set_epoch(epoch)
        loader.load_state_dict(loader.sampler.state_dict(position=start))
        return iter(loader)

    def batches_per_epoch(self, epoch: int) -> int:
        return len(self.train_loader)

    # -- one micro-batch
    def forward(self, model: nn.Module, batch: Any, num_updates: int) -> StepOutput:
        seeds = [mask_seed(self.cfg.trainer.seed, num_updates, int(i)) for i in batch.ids.tolist()]
        batch = batch.to(self.device, non_blocking=True)  # pinned on a GPU: overlaps the copy; the mask stays
        out = model(batch.waveforms, batch.padding_mask, mask_seeds=seeds)
        return StepOutput(loss=out.loss, sample_size=float(out.sample_size), stats=self._stats(out),
                          audio_samples=int(batch.num_samples))

    @staticmethod
    def _stats(out: Any) -> dict[str, float | torch.Tensor]:
        n = float(out.sample_size)
        # Per-batch values (perplexities, temperature) are weighted by sample size so sums average right.
        return {
            "contrastive_loss": _scalar(out.contrastive_loss),
            "diversity": _scalar(out.diversity_loss) * n,
            "feature_penalty": _scalar(out.feature_penalty) * n,
            "num_correct": _scalar(out.num_correct),
            "num_count": _scalar(out.num_count),
            "code_perplexity": _scalar(out.code_perplexity) * n,
            "prob_perplexity": _scalar(out.prob_perplexity) * n,
            "temperature": _scalar(out.temperature) * n,
            **({} if out.continuous_loss is None else {
                "continuous_loss": _scalar(out.continuous_loss),
                "continuous_correct": _scalar(out.continuous_num_correct)}),
        }

    def reduce(self, sums: dict[str, float], sample_size: float) -> dict[str, float]:
        n = max(sample_size, 1.0)
        return {
            "contrastive_loss": sums["contrastive_loss"] / n / LN2,  # bits per masked step, as fairseq logs
            "accuracy": sums["num_correct"] / max(sums["num_count"], 1.0),
            "diversity": sums["diversity"] / n,
            "feature_penalty": sums["feature_penalty"] / n,
            "code_perplexity": sums["code_perplexity"] / n,
            "prob_perplexity": sums["prob_perplexity"] / n,
            "temperature": sums["temperature"] / n,
            **({} if "continuous_loss" not in sums else {
                "continuous_loss": sums["continuous_loss"] / n / LN2,
                "continuous_accuracy": sums["continuous_correct"] / max(sums["num_count"], 1.0)}),
        }

    def before_update(self, model: nn.Module, num_updates: int) -> None:
        model.set_num_updates(num_updates)

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        if self.valid_loader is None or not self.dist.is_main:
            return {}
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        sample_size, loss_sum = 0.0, 0.0
        self.valid_loader.set_epoch(1)
        for batch in self.valid_loader:
            batch = batch.to(self.device, non_blocking=True)
            # Fixed seeds: validation masks are the same at every validation.
            seeds = [mask_seed(self.cfg.trainer.seed, -1, int(i)) for i in batch.ids.tolist()]
            out = model(batch.waveforms, batch.padding_mask, mask_seeds=seeds)
            sample_size += float(out.sample_size)
            loss_sum += float(out.loss)
            for k, v in self._stats(out).items():
                sums[k] = sums.get(k, 0.0) + float(v)
        model.train(was_training)
        if sample_size == 0:
            return {}
        metrics = self.reduce(sums, sample_size)
        metrics["loss"] = loss_sum / sample_size / LN2
        return metrics

    def best_key(self) -> tuple[str, bool]:
        return "loss", True

    def health_sizes(self) -> dict[str, int | None]:
        """The codebook size and distractor count the health monitor judges perplexity and accuracy by."""
        cfg = self.model_config
        return {"num_codes": cfg.latent_groups * cfg.latent_vars, "num_negatives": cfg.num_negatives}

    def unused_parameter_reasons(self) -> list[str]:
        return unused_parameter_reasons(self.model_config, ctc=False)
