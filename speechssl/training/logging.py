"""Training logs: a JSONL line per logged update, TensorBoard event files, and a tqdm progress bar.

Only rank 0 creates a `RunLogger` that writes; other ranks get one with `enabled=False`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


class RunLogger:
    """Writes `<run_dir>/log.jsonl` (train/valid records) and TensorBoard events under `<run_dir>/tb`."""

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True,
                 progress: bool = True, total_updates: int = 0, initial_update: int = 0):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._writer = None
        self._bar = None
        self._jsonl = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "log.jsonl"
        self._jsonl = open(path, "a", buffering=1)  # noqa: SIM115 -- open for the logger's lifetime; close()
        if self._jsonl.tell() > 0 and not _ends_with_newline(path):
            # A run killed mid-write left a torn last line: end it, so that the resumed run's first record is
            # not glued to it (read_log skips the torn line alone).
            self._jsonl.write("\n")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        if progress and sys.stderr.isatty():  # redirected into a file, a bar is a stream of carriage returns
            self._bar = tqdm(total=total_updates, initial=initial_update, unit="upd", dynamic_ncols=True,
                             smoothing=0.1, mininterval=1.0)

    def log(self, split: str, update: int, values: dict[str, Any]) -> None:
        """Record one set of scalars for `split` (`train`, `valid`, `health`, `summary`) at `update`."""
        if not self.enabled:
            return
        record = {"split": split, "update": update, "time": round(time.time(), 3)}
        record.update({k: _clean(v) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._writer.add_scalar(f"{split}/{key}", value, update)

    def progress(self, update: int, postfix: dict[str, Any]) -> None:
        if self._bar is None:
            return
        self._bar.n = update
        self._bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()},
                              refresh=False)
        self._bar.refresh()

    def message(self, text: str) -> None:
        """A line for the user that does not break the progress bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.close()
        if self._jsonl is not None:
            self._jsonl.close()


def read_log(run_dir: str | Path) -> list[dict]:
    """All records of a run's log.jsonl (a torn last line from a crash is ignored)."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no log.jsonl in run directory {run_dir}")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
