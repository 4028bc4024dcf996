"""Run by test_ddp_matches_single_process (and tests/training/test_distributed.py) under torchrun: 3 CTC
updates, each rank on its half of a batch; rank 0 saves the weights after each update and the last gradients."""

import sys

import torch

from speechssl.cli.train import compose
from speechssl.training.app import build_trainer
from speechssl.training.distributed import cleanup

corpus, run_dir, out = sys.argv[1:4]
overrides = sys.argv[4:]
cfg, resolved = compose("finetune", [f"data.dir={corpus}", f"trainer.run_dir={run_dir}", *overrides])
trainer = build_trainer("finetune", cfg, resolved)
rank, world = trainer.dist.rank, trainer.dist.world_size
ds = trainer.task.train_loader.dataset
steps = []
for step in range(3):
    items = [ds[i] for i in range(step * 6, step * 6 + 6)]
    half = len(items) // world
    trainer.train_update([ds.collate(items[rank * half:(rank + 1) * half])])
    steps.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
if rank == 0:
    # The normalised gradient of the last update too: Adam's update hides a wrong gradient scale.
    torch.save({"model": trainer.model.state_dict(), "grads": [p.grad for p in trainer.params],
                "update_freq": trainer.cfg.update_freq, "steps": steps}, out)
# Tear down together, as `speechssl finetune` does: a rank that left its gloo group while rank 0 was still
# saving aborted once in a full suite run ("terminate called without an active exception"; not reproduced in
# 60 runs alone).
cleanup(trainer.dist, synchronize=True)
