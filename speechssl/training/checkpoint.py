"""The checkpoints of a run directory: `resume=auto` picks the newest one that loads, crash leftovers are
removed, and the RNG states a resumed run needs are captured and restored.

The file format (what a checkpoint holds, how it is written atomically and read back) belongs to
`speechssl.interop.checkpoint`; this module only knows where a run keeps its checkpoints.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from speechssl.interop.checkpoint import CheckpointError, checkpoint_update, load_checkpoint

_UPDATE_RE = re.compile(r"checkpoint_(\d+)\.pt$")


def checkpoint_candidates(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints of a run directory, newest first (by recorded update, then modification time)."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    if not ckpt_dir.is_dir():
        return []
    files = [p for p in ckpt_dir.glob("checkpoint_*.pt") if not p.name.startswith(".")]

    def key(p: Path) -> tuple[int, float]:
        m = _UPDATE_RE.search(p.name)
        update = int(m.group(1)) if m else -1
        return (update, p.stat().st_mtime)

    return sorted(files, key=key, reverse=True)


def find_resume_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, dict] | None:
    """Newest loadable checkpoint of the run (checkpoint_last first, then numbered ones), or None.

    `checkpoint_last.pt` is preferred when it is the newest by recorded update; an unreadable file is skipped
    with a warning rather than ending the resume.
    """
    ckpt_dir = Path(run_dir) / "checkpoints"
    candidates = []
    for path in [ckpt_dir / "checkpoint_last.pt", *checkpoint_candidates(run_dir)]:
        if path.is_file() and path not in candidates:
            candidates.append(path)
    best: tuple[Path, dict] | None = None
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            print(f"warning: skipping unreadable checkpoint: {exc}")
            continue
        if best is None or checkpoint_update(state) > checkpoint_update(best[1]):
            best = (path, state)
    return best


def remove_interrupted_writes(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the temp files of checkpoint writes that a crash cut short; returns them.

    A SIGKILL during `atomic_torch_save` leaves its `.checkpoint_*.tmp` behind (the target is intact); each is
    a whole checkpoint's worth of disk. Call only where no other process is writing into this run directory.
    """
    ckpt_dir = Path(run_dir) / "checkpoints"
    removed = sorted(ckpt_dir.glob(".checkpoint_*.tmp")) if ckpt_dir.is_dir() else []
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def rng_state() -> dict:
    """Every RNG a training step draws from: python, numpy, torch CPU and CUDA."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
