"""Fixtures of the recipe tests: tiny tone corpora (speechssl.data.dummies) and running egs/*/run.sh."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A tiny model trained for a few updates on one CPU thread, without the extras that cost start-up time.
TINY_FINETUNE = ("model=tiny", "trainer.device=cpu", "trainer.precision=fp32", "trainer.tensorboard=false",
                 "trainer.threads=1", "data.num_workers=0", "trainer.max_updates=3", "trainer.log_interval=1",
                 "optim.lr=1e-3", "model.mask_length=2", "model.mask_channel_length=4")


@pytest.fixture
def tiny_finetune() -> tuple[str, ...]:
    """Hydra overrides of a fast fine-tuning: tiny model, 3 updates, one thread."""
    return TINY_FINETUNE


# --quick plus fewer updates on one CPU thread, for every recipe test.
QUICK = ("--quick", "PRETRAIN_UPDATES=4", "FINETUNE_UPDATES=4",
         "PRETRAIN_OVERRIDES=trainer.device=cpu trainer.threads=1",
         "FINETUNE_OVERRIDES=trainer.device=cpu trainer.threads=1")
# What `once` logs when it runs a step (the recipe's commands), as opposed to "done already".
RAN_A_STEP = re.compile(r"\(stages\.sh:\d+\)   (?!done already)")


@pytest.fixture
def run_recipe(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """``run_recipe("librispeech", "--stage", "0", "KEY=VALUE", ...)``: egs/<name>/run.sh --quick with DATA and
    EXP under tmp_path, on one CPU thread; returns the finished process (stdout, stderr as text)."""

    def run(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        command = ["bash", str(REPO / "egs" / name / "run.sh"), *QUICK, f"DATA={tmp_path / 'data'}",
                   f"EXP={tmp_path / 'exp'}", *args]
        proc = subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=600)
        if check:
            assert proc.returncode == 0, proc.stderr[-4000:]
        return proc

    return run


@pytest.fixture
def ran_steps() -> Callable[[str], list[str]]:
    """The steps a recipe's log says it ran (``once`` lines that are not "done already")."""
    return lambda log: [line for line in log.splitlines() if RAN_A_STEP.search(line)]


def summary(decode_dir: Path, subset: str) -> dict:
    return json.loads((decode_dir / f"summary-{subset}.json").read_text())


@pytest.fixture
def read_summary() -> Callable[[Path, str], dict]:
    """``summary-<subset>.json`` of an evaluate --out directory."""
    return summary
