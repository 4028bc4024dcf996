"""Atomic, self-describing checkpoints and `resume=auto`.

A checkpoint is written to a temporary file in the same directory, flushed and fsync'ed, then renamed over
the target and the directory fsync'ed: a crash or a full disk at any point leaves either the previous file or
the new one, never a torn file. `find_resume_checkpoint` picks the newest checkpoint that actually loads.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = "speechssl"
CHECKPOINT_VERSION = 1
_UPDATE_RE = re.compile(r"checkpoint_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, torn or not a speechssl checkpoint."""


def _replace_atomically(path: Path, fill: Callable[[Path], None]) -> None:
    """`fill` a temp file beside `path`, then rename it onto `path`: `path` always names a complete file (old
    or new). On any failure the temp file is removed and the previous file stays untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fill(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # do not litter the run directory
        raise
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save `obj` to `path` so that `path` always holds a complete file (old or new)."""

    def write(tmp: Path) -> None:
        with open(tmp, "xb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())

    _replace_atomically(Path(path), write)


def atomic_alias(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make `path` name the same complete file as `source`, atomically (old or new, never torn).

    A hard link: checkpoint_last and checkpoint_best are the newest numbered checkpoint, so writing the same
    state three times cost three times the disk (3 x 1.1 GB for BASE with its optimizer). Every checkpoint
    write replaces a name and never rewrites a file in place, so names sharing one file cannot change each
    other. Falls back to a copy where the file system has no hard links.
    """

    def link(tmp: Path) -> None:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)

    _replace_atomically(Path(path), link)


def _fsync_dir(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a speechssl checkpoint dict, raising CheckpointError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torn zip, wrong format, ...
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a speechssl checkpoint (no format={CHECKPOINT_FORMAT!r} key)")
    return state


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


def checkpoint_update(state: dict) -> int:
    """The update a checkpoint was written at (-1 when it does not say): the trainer keeps it in train_state."""
    train_state = state.get("train_state")
    if isinstance(train_state, dict) and "num_updates" in train_state:
        return int(train_state["num_updates"])
    return int(state.get("num_updates", -1))


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
