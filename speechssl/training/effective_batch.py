"""The effective batch: how much audio one update sees, whatever the number of GPUs.

The paper's hyperparameters (learning rate, schedule length, the diversity weight's scale) were tuned for a
batch per update, not for a number of GPUs: BASE pretraining 64 GPUs x 1.4 M samples, BASE fine-tuning 8
GPU-steps x 3.2 M samples. fairseq reaches the same batch on k GPUs by `update_freq = 64 / k` (its README).
Here a recipe states the batch itself (`trainer.tokens_per_update`, in samples, padding included) and the
accumulation steps follow from the world size and the per-rank budget at start-up:

    update_freq = tokens_per_update / (world_size x data.max_tokens)

so that a smaller GPU (a lower `data.max_tokens`) or fewer GPUs raise `update_freq` and keep the batch. When the
world size does not divide it, the nearest whole `update_freq` is taken and a warning states the batch that
results; beyond `trainer.max_batch_deviation` the run is refused, with the `data.max_tokens` that would give the
exact batch. All of this is a pure function of numbers every rank knows, so ranks agree without talking.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


def _mega(samples: int | Fraction) -> str:
    """89600000 -> '89.6 M' (samples at 16 kHz; the unit the recipes are written in)."""
    return f"{float(samples) / 1e6:.4g} M"


@dataclass(frozen=True, kw_only=True)
class EffectiveBatch:
    """The batch one update sees, and where its `update_freq` came from."""

    world_size: int
    """Ranks (GPUs, or CPU processes) training together."""
    max_tokens: int
    """Samples per micro-batch and rank (`data.max_tokens`, padding included)."""
    update_freq: int
    """Micro-batches accumulated per update on each rank."""
    target: int | None
    """`trainer.tokens_per_update` the update_freq was derived from; None when update_freq was given."""
    exact_max_tokens: int | None = None
    """When the target is missed: the per-rank budget (<= max_tokens) that meets it with `exact_update_freq`."""
    exact_update_freq: int | None = None
    """The update_freq that goes with `exact_max_tokens`."""

    @property
    def tokens_per_update(self) -> int:
        """Samples per update over all ranks and accumulation steps (an upper bound: batches fill up to it)."""
        return self.world_size * self.max_tokens * self.update_freq

    @property
    def deviation(self) -> Fraction:
        """(actual - target) / target; 0 when update_freq was given or the target is met exactly."""
        if self.target is None:
            return Fraction(0)
        return Fraction(self.tokens_per_update - self.target, self.target)

    def describe(self) -> str:
        """One line for the start-up log."""
        text = (f"batch {_mega(self.tokens_per_update)} samples per update = {self.world_size} rank(s) x "
                f"{_mega(self.max_tokens)} (data.max_tokens) x update_freq {self.update_freq}")
        if self.target is None:
            return text + " (trainer.update_freq as given)"
        return text + f", derived from trainer.tokens_per_update={self.target}"

    def warning(self) -> str | None:
        """What to print when the batch differs from the target (None when it does not)."""
        if self.deviation == 0:
            return None
        return (f"trainer.tokens_per_update={self.target} ({_mega(self.target)}) is not a whole number of "
                f"micro-batches over {self.world_size} rank(s) x {_mega(self.max_tokens)} (data.max_tokens): "
                f"update_freq {self.update_freq} gives {_mega(self.tokens_per_update)} samples per update "
                f"({float(self.deviation):+.1%}). For the exact batch set data.max_tokens={self.exact_max_tokens} "
                f"(update_freq {self.exact_update_freq})")


def check_batch_settings(*, tokens_per_update: int | None, update_freq: int) -> None:
    """Raise ValueError when both ways of sizing the batch are given (or the target is out of range)."""
    if tokens_per_update is None:
        return
    if tokens_per_update < 1:
        raise ValueError(f"trainer.tokens_per_update must be >= 1 or null, got {tokens_per_update}")
    if update_freq != 1:
        raise ValueError(f"trainer.update_freq={update_freq} and trainer.tokens_per_update={tokens_per_update} are "
                         "both set: update_freq is derived from tokens_per_update (world size x data.max_tokens x "
                         "update_freq). Drop trainer.update_freq, or set trainer.tokens_per_update=null to give "
                         "update_freq yourself")


def derive_update_freq(*, tokens_per_update: int | None, update_freq: int, max_tokens: int, world_size: int,
                       max_deviation: float) -> EffectiveBatch:
    """The update_freq that gives `tokens_per_update` on `world_size` ranks of `max_tokens` samples each.

    Args:
        tokens_per_update: the batch per update in samples; None keeps `update_freq` as given.
        update_freq: `trainer.update_freq` (must be 1, its default, when `tokens_per_update` is set).
        max_tokens: per-rank micro-batch budget in samples (`data.max_tokens`).
        world_size: number of ranks.
        max_deviation: largest accepted |actual - target| / target when the target cannot be met exactly.
    Raises:
        ValueError: naming the setting, when the nearest whole update_freq misses the target by more than
            `max_deviation` (with the data.max_tokens that would meet it), or for out-of-range values.
    """
    if world_size < 1 or max_tokens < 1 or update_freq < 1:
        raise ValueError(f"world size, data.max_tokens and trainer.update_freq must be >= 1, got {world_size}, "
                         f"{max_tokens}, {update_freq}")
    if tokens_per_update is None:
        return EffectiveBatch(world_size=world_size, max_tokens=max_tokens, update_freq=update_freq, target=None)
    check_batch_settings(tokens_per_update=tokens_per_update, update_freq=update_freq)
    per_step = world_size * max_tokens  # samples of one micro-batch on every rank
    ratio = Fraction(tokens_per_update, per_step)
    nearest = max(1, int(ratio + Fraction(1, 2)))  # round half up, at least one micro-batch
    # The exact batch within the memory budget: one more accumulation step where needed, smaller micro-batches.
    exact_freq = max(1, -(-tokens_per_update // per_step))
    exact_tokens = tokens_per_update // (world_size * exact_freq)
    batch = EffectiveBatch(world_size=world_size, max_tokens=max_tokens, update_freq=nearest,
                           target=tokens_per_update, exact_max_tokens=exact_tokens, exact_update_freq=exact_freq)
    if abs(batch.deviation) > Fraction(max_deviation).limit_denominator(10**6):
        raise ValueError(
            f"trainer.tokens_per_update={tokens_per_update} ({_mega(tokens_per_update)}) cannot be met on "
            f"{world_size} rank(s) x {_mega(max_tokens)} (data.max_tokens): the nearest, update_freq {nearest}, "
            f"gives {_mega(batch.tokens_per_update)} samples per update ({float(batch.deviation):+.1%}, beyond "
            f"trainer.max_batch_deviation={max_deviation}). Set data.max_tokens={exact_tokens} (update_freq "
            f"{exact_freq}) for the exact batch, or raise trainer.max_batch_deviation to accept "
            f"{_mega(batch.tokens_per_update)}")
    return batch
