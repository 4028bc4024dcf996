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
    """Every RNG this process's training step draws from: python, numpy, torch CPU and this process's GPU.

    Per process: under DDP each rank draws its own dropout masks on batches of its own shapes, so the ranks'
    generators differ and a checkpoint keeps one of these per rank (`gather_rng_states`). Only the current
    GPU's CUDA state is kept (rank r drives GPU r), so a resume on a machine with fewer visible GPUs works.
    """
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):  # older checkpoints: every visible GPU's state, in device order
            index = torch.cuda.current_device()
            if index >= len(cuda):
                return
            cuda = cuda[index]
        torch.cuda.set_rng_state(cuda)


def seed_rng(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every GPU) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rank_rng_states(saved: dict | list[dict]) -> list[dict]:
    """The per-rank RNG states of a checkpoint's `rng` entry (a single dict: a checkpoint of one process, or
    written before states were kept per rank)."""
    return [saved] if isinstance(saved, dict) else list(saved)


def restore_rank_rng(saved: dict | list[dict], *, rank: int, world_size: int, seed: int, num_updates: int) -> str | None:
    """Restore this rank's generators from a checkpoint's `rng` entry; returns a warning, or None when the
    checkpoint was written by as many ranks as are resuming it (the resumed run is then bit-identical).

    On another number of ranks the run cannot be bit-identical anyway (each rank's batches change), so:
    rank r restores the state rank r saved when there was one, and any further rank seeds its generators from
    (trainer.seed, update, rank), so that no two ranks share a stream.
    """
    states = rank_rng_states(saved)
    if rank < len(states):
        set_rng_state(states[rank])
    else:
        seed_rng(seed * 1_000_003 + num_updates * 1_009 + rank)
    if len(states) == world_size:
        return None
    return (f"the checkpoint holds the RNG state of {len(states)} rank(s), the run resumes on {world_size}: "
            f"ranks 0-{min(len(states), world_size) - 1} continue their saved random streams, "
            + (f"ranks {len(states)}-{world_size - 1} start streams seeded from (trainer.seed, update, rank); "
               if world_size > len(states) else "")
            + "batches and dropout differ from an uninterrupted run")
