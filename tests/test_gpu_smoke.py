"""bench/gpu_smoke.sh --device cpu: the GPU smoke script's stages on `tiny`, so that the script never rots
before a GPU runs it (the GPU run itself: bench/README.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_smoke_script_runs_every_stage_on_the_cpu(tmp_path):
    """~45 s of CPU (nine processes that each import torch); longer in wall time on a loaded machine."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(REPO / "bench/gpu_smoke.sh"), "--device", "cpu", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("| ")}
    for stage in ("cuda-tests", "corpus", "pretrain-fp32", "pretrain-bf16", "compiled", "finetune", "evaluate",
                  "bench-model"):
        assert stage in rows and "| ok |" in rows[stage], (stage, proc.stdout)
    # the checks ran, and said what they found
    assert "skipped" in rows["cuda-tests"] and "passed" not in rows["cuda-tests"]  # no GPU here
    assert "unchanged, then trained" in rows["finetune"]
    assert "skipped 0" in rows["pretrain-bf16"] and "greedy WER" in rows["evaluate"]
    assert "tiny pretrain fp32: speechssl" in proc.stdout
    assert "eager, fp32: 5 updates" in rows["compiled"] and "(eager: " in rows["compiled"]


def test_gpu_smoke_report_fails_a_failed_or_unchecked_stage(tmp_path):
    """A stage that exited non-zero, one skipped for it, and one whose outputs do not pass its check each fail
    the report (exit 1), named in the table."""
    (tmp_path / "stages.tsv").write_text("corpus\t0\t1\npretrain-fp32\t3\t5\nfinetune\tskipped\t0\n"
                                         "pretrain-bf16\t0\t4\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/train.tsv").write_text("/root\na.wav\t16000\n")
    run = tmp_path / "pretrain-bf16"
    run.mkdir()
    (run / "summary.json").write_text('{"updates": 4, "skipped_nonfinite": 0, "audio_hours_per_hour": 1.0}')
    (run / "log.jsonl").write_text("".join(f'{{"split": "train", "update": {i}, "loss": {5 + i}}}\n'
                                           for i in range(1, 5)))  # the loss rises
    proc = subprocess.run([sys.executable, str(REPO / "bench/gpu_smoke_report.py"), str(tmp_path), "--device",
                           "cpu", "--precisions", "fp32", "bf16", "--freeze", "2"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "| corpus | ok |" in proc.stdout and "train 1 utterances" in proc.stdout
    assert "| pretrain-fp32 | FAILED (exit 3) |" in proc.stdout
    assert "| finetune | skipped |" in proc.stdout
    assert "| pretrain-bf16 | FAILED |" in proc.stdout and "loss 6.500 -> 8.500" in proc.stdout
    assert "FAILED: pretrain-fp32, finetune, pretrain-bf16" in proc.stdout
