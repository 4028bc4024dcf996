#!/usr/bin/env python
"""Print one validation metric of a training run at one update, from RUN_DIR/log.jsonl.

    python egs/common/valid_metric.py RUN_DIR METRIC UPDATE      # e.g. exp/finetune/all_pretrained ctc_loss 900
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def valid_metric(run_dir: Path, metric: str, update: int) -> float:
    """The value of `metric` in the run's last validation record at `update`."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"no {log}: not a training run directory")
    found = None
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record.get("split") == "valid" and record.get("update") == update:
            found = record
    if found is None:
        raise ValueError(f"{log} has no validation at update {update}")
    if metric not in found:
        raise KeyError(f"{log}: the validation at update {update} has no {metric!r} "
                       f"(it has {', '.join(k for k in found if k not in ('split', 'update', 'time'))})")
    return float(found[metric])


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip())
    try:
        print(valid_metric(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
    except (OSError, ValueError, KeyError) as err:
        sys.exit(f"valid_metric.py: {err}")


if __name__ == "__main__":
    main()
