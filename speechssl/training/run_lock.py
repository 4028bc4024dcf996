"""One training process per run directory: a lock file that a second `speechssl pretrain`/`finetune` on the same
`trainer.run_dir` finds taken, so two runs never interleave `log.jsonl` or overwrite each other's checkpoints.

The lock is an advisory `flock` on `RUN_DIR/.lock`, which the kernel drops when its process dies however it
dies: a run killed with SIGKILL leaves the file behind with its pid in it, and the next run takes it over (and
says so), so kill -9 and `resume=auto` keep working. The pid in the file is only for the message.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Self

LOCK_NAME = ".lock"


class RunDirLockedError(RuntimeError):
    """Another live process holds the run directory."""


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "an unknown process"
    except OSError:
        return "an unknown process"


class RunDirLock:
    """Held from `acquire()` until `release()` or the end of the process."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None
        self.stale_holder: str | None = None
        """What the file named when it was taken over from a process that is gone (None: it was free)."""

    def acquire(self) -> RunDirLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirLockedError(
                f"run dir {self.run_dir} is in use by {_holder(self.path)}: two runs in one directory would "
                "interleave log.jsonl and overwrite each other's checkpoints. Wait for it to finish, stop it, or "
                "give this run another trainer.run_dir") from None
        previous = os.read(fd, 4096).decode("utf-8", errors="replace").strip()
        if previous:
            self.stale_holder = previous
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        # Empty the file before unlocking: a later run then sees a clean lock, not a stale one.
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
