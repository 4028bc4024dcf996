"""The training steps never make the host wait for the device: no read of a device value in a micro-batch's
forward and backward (pretraining and fine-tuning). A read there would stall the GPU's queue once per
micro-batch.

How reads are counted on a CPU-only machine: on a GPU, reading a value the device computed (`.item()`, `bool(t)`, `.tolist()`, `.cpu()`, boolean indexing,
`nonzero`, `unique`, ...) makes the host wait until the device's queue has run up to it, which starves the GPU
of work. A CPU run has no device to wait for, so here every tensor that would live on the device is *tainted*:
the model's parameters and buffers and the batch once moved to the device, and every result of an operation
on a tainted tensor. Reads of tainted tensors are counted, with the line of speechssl that made them; reads of
host tensors (a padding mask the loader made, a mask numpy drew, a CPU random draw) are free and not counted.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from speechssl.cli.train import compose
from speechssl.data.collate import LabeledBatch, UnlabeledBatch
from speechssl.training.app import build_trainer

# Operators whose result the host must read before it can go on: a scalar out, or an output sized by the data.
_READS = {"_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_dim", "unique_consecutive",
          "_unique", "repeat_interleave", "equal", "allclose", "masked_scatter"}
_TAINT = "_on_device"


def taint(*tensors: torch.Tensor) -> None:
    """Mark tensors as device-resident."""
    for t in tensors:
        setattr(t, _TAINT, True)


def _tainted(value: object) -> bool:
    return isinstance(value, torch.Tensor) and getattr(value, _TAINT, False)


def _where() -> str:
    frames = [f for f in traceback.extract_stack() if "/speechssl/" in f.filename and "/tests/" not in f.filename]
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{frame.filename.split('/speechssl/')[-1]}:{frame.name}: {frame.line}"


class HostReads(TorchDispatchMode):
    """`with HostReads() as reads:` ... `reads.counts`: {(operator, where): n} for reads of tainted tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def record(self, name: str) -> None:
        self.counts[(name, _where())] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs, _ = tree_flatten((args, kwargs))
        name = func.overloadpacket.__name__
        tainted = any(_tainted(a) for a in inputs)
        if name in _READS and tainted:
            self.record(name)
        elif name in ("index", "index_put", "index_put_") and any(
                _tainted(i) and i.dtype == torch.bool for i in tree_flatten(args[1])[0]):
            self.record(f"{name}[bool mask]")
        out = func(*args, **kwargs)
        if tainted:
            for o in tree_flatten(out)[0]:
                if isinstance(o, torch.Tensor):
                    taint(o)
        return out


@contextmanager
def count_host_reads() -> Iterator[HostReads]:
    """Count reads of tainted tensors, including `.tolist()`, `.numpy()` and `.cpu()`, which leave the
    dispatcher untouched on a CPU tensor."""
    mode = HostReads()
    originals = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy", "cpu")}
    own = {name for name in originals if name in vars(torch.Tensor)}

    def wrap(name):
        original = originals[name]

        def method(self, *args, **kwargs):
            if _tainted(self):
                mode.record(f"Tensor.{name}")
            return original(self, *args, **kwargs)
        return method

    for name in originals:
        setattr(torch.Tensor, name, wrap(name))
    try:
        with mode:
            yield mode
    finally:
        for name, original in originals.items():
            if name in own:
                setattr(torch.Tensor, name, original)
            else:  # inherited from the C base class: remove the wrapper, do not shadow the base's method
                delattr(torch.Tensor, name)


COMMON = ["model=tiny", "trainer.device=cpu", "trainer.precision=fp32", "trainer.progress=false",
          "trainer.tensorboard=false", "trainer.threads=1", "data.num_workers=0"]


@pytest.fixture
def batches_land_on_the_device(monkeypatch):
    """Batch.to returns device copies: clones of the tensors it moves (DEVICE_FIELDS), tainted (on a CPU `.to("cpu")` returns them as they
    are, host and device copy would be one object)."""
    for cls in (UnlabeledBatch, LabeledBatch):
        original = cls.to

        def to(self, device, non_blocking=False, _original=original):
            moved = _original(self, device, non_blocking)
            copies = {}
            for name in moved.DEVICE_FIELDS:
                copies[name] = getattr(moved, name).clone()
                taint(copies[name])
            return dataclasses.replace(moved, **copies)
        monkeypatch.setattr(cls, "to", to)


def _step_reads(app, overrides):
    cfg, resolved = compose(app, [*COMMON, *overrides])
    cfg.validate()
    trainer = build_trainer(app, cfg, resolved)
    batch = next(trainer.task.train_batches(1, 0))
    model = trainer.model.train()
    taint(*model.parameters(), *model.buffers())
    with count_host_reads() as reads:
        out = trainer.task.forward(model, batch, 0)
        out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    return batch, dict(reads.counts)


@pytest.mark.usefixtures("batches_land_on_the_device")
@pytest.mark.parametrize("padded", [False, True], ids=["cropped", "padded"])
def test_a_pretraining_micro_batch_reads_nothing_from_the_device(tone_corpus, tmp_path, padded):
    """Masks, distractors and the masked steps are chosen on the host; the loss is computed without asking the
    device anything (cropped batches, and padded ones: data.crop_to_shortest=false). The continuous-target
    term (a training aid of the CPU recipes; the paper configs have none) groups equal feature rows with
    `torch.unique`: its one read per micro-batch is the only one."""
    overrides = [f"data.dir={tone_corpus}", "data.max_tokens=64000", "data.max_sample_size=16000",
                 "data.min_sample_size=4000", f"data.crop_to_shortest={not padded}"]
    batch, reads = _step_reads("pretrain", [*overrides, f"trainer.run_dir={tmp_path / 'a'}"])
    assert (batch.padding_mask is not None and bool(batch.padding_mask.any())) == padded
    assert reads == {}
    _, reads = _step_reads("pretrain", [*overrides, f"trainer.run_dir={tmp_path / 'b'}",
                                        "model.continuous_target_weight=1.0"])
    assert [(name, where.split(":")[1], n) for (name, where), n in reads.items()] == [
        ("unique_dim", "sampled_contrastive_logits", 1)]


@pytest.mark.usefixtures("batches_land_on_the_device")
def test_a_finetuning_micro_batch_reads_nothing_from_the_device(tone_corpus, tmp_path):
    """Padded utterances, time and channel masks, CTC: lengths go to ctc_loss from the host."""
    batch, reads = _step_reads("finetune", [f"data.dir={tone_corpus}", f"trainer.run_dir={tmp_path}",
                                            "model.mask_prob=0.3", "model.mask_channel_prob=0.2"])
    assert bool(batch.padding_mask.any())
    assert reads == {}


def test_the_counter_sees_the_reads_it_is_for(tone_corpus):
    """The counter is not blind: the reads that the step used to make are each counted once, host reads not."""
    device_values = torch.arange(6.0)
    taint(device_values)
    host_values = torch.arange(6.0)
    with count_host_reads() as reads:
        bool(device_values.any())
        device_values[device_values > 2]
        device_values.tolist()
        torch.unique(device_values)
        float(host_values.sum())
        host_values[host_values > 2].tolist()
    assert sorted(name for name, _ in reads.counts) == sorted(
        ["_local_scalar_dense", "index[bool mask]", "Tensor.tolist", "_unique2"])


@pytest.mark.usefixtures("batches_land_on_the_device")
@pytest.mark.parametrize("app", ["pretrain", "finetune"])
def test_an_update_reads_the_device_once(tone_corpus, tmp_path, app):
    """Whole updates (2 micro-batches each in pretraining, a frozen then a trained encoder in fine-tuning): the
    statistics and the gradient norm, which decides whether the step is taken, come back in one read."""
    extra = (["data.max_tokens=64000", "data.max_sample_size=16000", "data.min_sample_size=4000",
              "trainer.update_freq=2"] if app == "pretrain" else ["model.mask_prob=0.3", "freeze_finetune_updates=2"])
    cfg, resolved = compose(app, [*COMMON, *extra, f"data.dir={tone_corpus}", f"trainer.run_dir={tmp_path}",
                                  "trainer.max_updates=4", "trainer.log_interval=2", "trainer.valid_interval=0",
                                  "trainer.save_interval=0"])
    cfg.validate()
    trainer = build_trainer(app, cfg, resolved)
    taint(*trainer.model.parameters(), *trainer.model.buffers())
    batches = (b for epoch in itertools.count(1) for b in trainer.task.train_batches(epoch, 0))
    with count_host_reads() as reads:
        for _ in range(4):
            trainer.train_update([next(batches) for _ in range(cfg.trainer.update_freq)])
    assert [(name, where.split(":")[1], n) for (name, where), n in reads.counts.items()] == [
        ("Tensor.tolist", "train_update", 4)]
