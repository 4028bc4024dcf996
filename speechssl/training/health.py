"""Training-health monitor: warns, with advice, before a pretraining run is wasted.

The failure modes users of fairseq (#4530), transformers (#14387) and SpeechBrain (#2512) report are:
codebook collapse (code perplexity falls to a handful of entries, the diversity term climbs toward 1),
a contrastive task that is trivially solved (loss near 0: negatives leak the answer) or never learnt
(accuracy stuck at chance, loss at ln(K+1)), and gradient norms that explode or vanish. Each check looks
at a window of recent updates and warns at most once per `cooldown` updates per kind.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(kw_only=True)
class HealthConfig:
    enabled: bool = True
    """Run the monitor."""
    warmup: int = 200
    """Updates before the checks start (perplexities and accuracy move fast early on)."""
    window: int = 50
    """Updates averaged by each check."""
    cooldown: int = 1000
    """Updates between two warnings of the same kind."""
    min_code_perplexity_fraction: float = 0.05
    """Warn when code perplexity falls below this fraction of the G*V entries."""
    max_diversity: float = 0.9
    """Warn when the diversity term (1 - prob_perplexity / (G*V)) stays above this and is rising."""
    stall_updates: int = 1000
    """Warn when accuracy is still within 2 points of chance after this many updates..."""
    stall_fraction: float = 0.5
    """...or after this share of trainer.max_updates, whichever comes first (a short run is told while it runs)."""
    max_grad_norm_ratio: float = 20.0
    """Warn when the gradient norm exceeds this multiple of its running median."""


@dataclass(kw_only=True)
class HealthWarning:
    kind: str
    update: int
    message: str


def schedule_warnings(*, warmup_updates: int, max_updates: int, start_update: int = 0) -> list[HealthWarning]:
    """Before the first update: a warm-up the run never finishes (the paper's 32k updates in a run of 2k) leaves
    the learning rate a fraction of optim.lr throughout, and the model learns next to nothing."""
    if warmup_updates < max_updates or start_update >= max_updates:
        return []
    return [HealthWarning(
        kind="warmup_longer_than_run", update=start_update,
        message=f"the learning-rate warm-up ({warmup_updates} updates) does not end before the run does "
                f"(trainer.max_updates={max_updates}): the learning rate never reaches optim.lr. Set "
                "schedule.warmup_fraction=0.1 (a share of the run), a smaller schedule.warmup_updates, or use "
                "+experiment=pretrain_cpu / finetune_cpu for CPU-sized runs.")]


class HealthMonitor:
    def __init__(self, cfg: HealthConfig, *, num_codes: int | None, num_negatives: int | None,
                 total_updates: int | None = None):
        self.cfg = cfg
        self.total_updates = total_updates
        self.num_codes = num_codes
        self.num_negatives = num_negatives
        self.history: dict[str, deque] = {}
        self._last_warned: dict[str, int] = {}

    def _push(self, key: str, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        self.history.setdefault(key, deque(maxlen=max(self.cfg.window * 4, 200))).append(value)

    def _recent(self, key: str, n: int | None = None) -> list[float]:
        values = list(self.history.get(key, ()))
        return values[-(n or self.cfg.window):]

    def _warn(self, kind: str, update: int, message: str, out: list[HealthWarning]) -> None:
        last = self._last_warned.get(kind)
        if last is not None and update - last < self.cfg.cooldown:
            return
        self._last_warned[kind] = update
        out.append(HealthWarning(kind=kind, update=update, message=message))

    def observe(self, update: int, stats: dict[str, float]) -> list[HealthWarning]:
        """Feed one update's statistics; returns the warnings raised now."""
        if not self.cfg.enabled:
            return []
        for key in ("code_perplexity", "prob_perplexity", "accuracy", "contrastive_loss", "diversity",
                    "grad_norm", "loss"):
            self._push(key, stats.get(key))
        warnings: list[HealthWarning] = []
        grad_norm = stats.get("grad_norm")
        if grad_norm is not None and not math.isfinite(grad_norm):
            self._warn("nonfinite_grad", update,
                       f"non-finite gradient norm at update {update}: the update was skipped. If this repeats, "
                       "lower optim.lr, use bf16 instead of fp16, or check the data for NaN/inf samples.",
                       warnings)
        window = self.cfg.window
        acc = self._recent("accuracy")
        stall_after = self.cfg.stall_updates
        if self.total_updates:
            stall_after = min(stall_after, max(window, round(self.cfg.stall_fraction * self.total_updates)))
        if self.num_negatives and update >= stall_after and len(acc) >= window // 2:
            chance = 1.0 / (self.num_negatives + 1)
            mean_acc = sum(acc) / len(acc)
            if mean_acc < chance + 0.02:
                self._warn("accuracy_stalled", update,
                           f"accuracy {mean_acc:.3f} still at chance ({chance:.3f}) after {update} updates: the "
                           "model is not learning. Raise optim.lr or the batch size (max_tokens / update_freq), "
                           "or shorten the warmup (+experiment=pretrain_cpu for the `small` model on a CPU).",
                           warnings)
        if update < self.cfg.warmup:
            return warnings

        ppl = self._recent("code_perplexity")
        if self.num_codes and len(ppl) >= window // 2:
            mean_ppl = sum(ppl) / len(ppl)
            if mean_ppl < self.cfg.min_code_perplexity_fraction * self.num_codes:
                self._warn("codebook_collapse", update,
                           f"codebook collapse: code perplexity {mean_ppl:.1f} of {self.num_codes} entries "
                           f"(mean of the last {len(ppl)} updates). Lower optim.lr, raise the diversity weight "
                           "(model.diversity_weight), or lengthen the warmup; check that negatives are not "
                           "drawn from padding.", warnings)
        div = self._recent("diversity")
        if len(div) >= window:
            half = len(div) // 2
            first, second = sum(div[:half]) / half, sum(div[half:]) / (len(div) - half)
            if second > self.cfg.max_diversity and second > first:
                self._warn("diversity_rising", update,
                           f"diversity term {second:.3f} and rising (was {first:.3f}): the quantizer is using "
                           "fewer and fewer codes. Lower optim.lr or raise the diversity weight.", warnings)
        closs = self._recent("contrastive_loss")
        if len(closs) >= window // 2 and max(closs) < 1e-3:
            self._warn("trivial_task", update,
                       "contrastive loss is ~0: the task is trivially solved, usually because the positive "
                       "leaks into the negatives or masking is off. Check model.mask_prob and the data.",
                       warnings)
        norms = self._recent("grad_norm", self.cfg.window * 4)
        if grad_norm is not None and math.isfinite(grad_norm) and len(norms) >= window:
            median = sorted(norms)[len(norms) // 2]
            if median > 0 and grad_norm > self.cfg.max_grad_norm_ratio * median:
                self._warn("grad_spike", update,
                           f"gradient norm {grad_norm:.3g} is {grad_norm / median:.0f}x its running median "
                           f"{median:.3g}. Consider optim.clip_norm or a lower optim.lr.", warnings)
            elif median < 1e-7:
                self._warn("grad_vanished", update,
                           f"gradient norm median {median:.2e}: nothing is being learnt. Check frozen "
                           "parameters and the learning rate.", warnings)
        return warnings
