"""A run directory's checkpoints: resume takes the newest one that loads."""

import torch

from speechssl.interop.checkpoint import atomic_torch_save
from speechssl.training import checkpoint as ck


def _state(n):
    return {"format": "speechssl", "version": 1, "num_updates": n, "w": torch.full((4,), float(n))}


def test_resume_skips_torn_file_and_picks_newest(tmp_path):
    d = tmp_path / "checkpoints"
    atomic_torch_save(_state(10), d / "checkpoint_10.pt")
    atomic_torch_save(_state(20), d / "checkpoint_20.pt")
    (d / "checkpoint_30.pt").write_bytes(b"torn")  # a crash mid-write by some other tool
    path, state = ck.find_resume_checkpoint(tmp_path)
    assert path.name == "checkpoint_20.pt" and state["num_updates"] == 20
