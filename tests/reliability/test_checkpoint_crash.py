"""A process killed in the middle of a checkpoint write (or of a log line) loses nothing already saved.

tests/training/test_checkpoint.py covers a write that fails with an exception (disk full); here the writer is
SIGKILLed at each stage of `atomic_torch_save`, so no `except`/`finally` can tidy up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from speechssl.interop import checkpoint as ck
from speechssl.training import checkpoint as run_dir
from speechssl.training.logging import RunLogger, read_log

# Runs in a child process: patch one step of atomic_torch_save to SIGKILL the process, then save.
_DIE_DURING_SAVE = """
import os, signal, sys
import torch
from speechssl.interop import checkpoint as ck

stage, path = sys.argv[1], sys.argv[2]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if stage == "torch.save":  # half the bytes out, then killed
    def half_save(obj, handle, *a, **k):
        handle.write(b"PK\\x03\\x04" + bytes(5000))
        handle.flush()
        die()
    ck.torch.save = half_save
elif stage == "fsync":  # everything written, not yet durable
    ck.os.fsync = die
elif stage == "rename":  # durable temp file, not yet renamed over the target
    ck.os.replace = die
state = {"format": "speechssl", "version": 1, "train_state": {"num_updates": 2}, "w": torch.full((1000,), 2.0)}
ck.atomic_torch_save(state, path)
"""


def _state(n: int) -> dict:
    return {"format": "speechssl", "version": 1, "train_state": {"num_updates": n}, "w": torch.full((1000,), float(n))}


@pytest.mark.parametrize("stage", ["torch.save", "fsync", "rename"])
def test_sigkill_during_checkpoint_write_keeps_previous(tmp_path, stage):
    path = tmp_path / "checkpoints" / "checkpoint_last.pt"
    ck.atomic_torch_save(_state(1), path)
    proc = subprocess.run([sys.executable, "-c", _DIE_DURING_SAVE, stage, str(path)], check=False,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    leftovers = sorted(p.name for p in path.parent.iterdir() if p.name != path.name)
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")  # the interrupted write, never the target
    state = ck.load_checkpoint(path)
    assert state["train_state"]["num_updates"] == 1 and torch.equal(state["w"], torch.full((1000,), 1.0))
    found_path, found = run_dir.find_resume_checkpoint(tmp_path)
    assert found_path == path and ck.checkpoint_update(found) == 1
    assert [p.name for p in run_dir.remove_interrupted_writes(tmp_path)] == leftovers
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_resume_takes_the_newest_trainer_checkpoint(tmp_path):
    """A kill between the numbered write and checkpoint_last leaves the numbered one newer: resume takes it."""
    d = tmp_path / "checkpoints"
    ck.atomic_torch_save(_state(3), d / "checkpoint_3.pt")
    ck.atomic_torch_save(_state(3), d / "checkpoint_last.pt")
    ck.atomic_torch_save(_state(6), d / "checkpoint_6.pt")
    path, state = run_dir.find_resume_checkpoint(tmp_path)
    assert path.name == "checkpoint_6.pt" and ck.checkpoint_update(state) == 6
    ck.atomic_torch_save(_state(6), d / "checkpoint_last.pt")  # same update: checkpoint_last is preferred
    assert run_dir.find_resume_checkpoint(tmp_path)[0].name == "checkpoint_last.pt"


def test_torn_log_line_does_not_swallow_the_next_record(tmp_path):
    first = RunLogger(tmp_path, tensorboard=False, progress=False)
    first.log("train", 1, {"loss": 1.0})
    first.close()
    with open(tmp_path / "log.jsonl", "a") as handle:  # killed in the middle of update 2's line
        handle.write(json.dumps({"split": "train", "update": 2, "loss": 0.5})[:17])
    resumed = RunLogger(tmp_path, tensorboard=False, progress=False)
    resumed.log("train", 2, {"loss": 0.5})
    resumed.close()
    assert [(r["split"], r["update"]) for r in read_log(tmp_path)] == [("train", 1), ("train", 2)]
