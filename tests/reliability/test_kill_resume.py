"""bench/torture_resume.py, small: a `tiny` pretraining run SIGKILLed 3 times (once per kind: after an update,
at a random wall time, inside a checkpoint write), resumed with trainer.resume=auto each time, ends with the
weights of an uninterrupted run. The full version (10 kills) and its figures are in bench/README.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from speechssl.interop.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_three_sigkills_then_resume_equals_uninterrupted_run(tmp_path):
    summary_path = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench/torture_resume.py"), "--kills", "3", "--updates", "24",
         "--save-interval", "3", "--seed", "1", "--run-dir", str(tmp_path / "work"), "--json", str(summary_path)],
        check=False, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["by_mode"] == {"update": 1, "wall": 1, "write": 1}
    assert summary["kills_landed"] == summary["kills_survived"] == 3
    for kill in summary["kills"]:
        assert kill["returncode"] == -9  # SIGKILL, not a clean exit
        assert kill["start_update"] == kill["expected_start"]  # resumed from the newest checkpoint
    assert summary["unreadable_checkpoints"] == 0 and summary["log_updates_missing"] == []
    assert summary["final_resume_ok"]

    # Checked here too, not only by the script: every checkpoint loads, no temp file is left, and the final
    # weights are those of the uninterrupted run, bit for bit.
    work = tmp_path / "work"
    ckpts = sorted((work / "tortured/checkpoints").iterdir())
    assert ckpts and all(p.suffix == ".pt" for p in ckpts), [p.name for p in ckpts]
    for path in ckpts:
        load_checkpoint(path)
    a = load_checkpoint(work / "reference/checkpoints/checkpoint_last.pt")
    b = load_checkpoint(work / "tortured/checkpoints/checkpoint_last.pt")
    assert a["train_state"]["num_updates"] == b["train_state"]["num_updates"] == 24
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    launches = sorted(p.name for p in work.glob("launch_*.log"))
    assert len(launches) == 4  # three killed, one to the end
