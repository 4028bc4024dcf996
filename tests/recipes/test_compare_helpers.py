"""egs/common/compare.sh: how a pretrained run's conv feature encoder trains (FEATURE_ENCODER_LR_SCALE), the
setting egs/synthetic and egs/an4 share; the Hydra overrides finetune_pretrained hands to the fine-tuning run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pretrained_run_overrides(tmp_path, scale: str | None) -> list[str]:
    """The overrides `finetune_pretrained ft d train_10min init.pt trainer.seed=2` passes on (fine-tuning stubbed)."""
    recipe = tmp_path / "egs" / "probe"
    recipe.mkdir(parents=True)
    setting = "" if scale is None else f"FEATURE_ENCODER_LR_SCALE={scale}"
    (recipe / "run.sh").write_text(f"""
LM_ORDER=3 PRETRAIN_OVERRIDES= FINETUNE_OVERRIDES= {setting}
. {REPO}/egs/common/stages.sh
REPO_DIR={REPO}
quick_common=()
. {REPO}/egs/common/compare.sh
finetune_run() {{ shift 3; printf '%s\\n' "$@"; }}
finetune_pretrained ft d train_10min init.pt trainer.seed=2
""")
    # stages.sh looks for the speechssl command on PATH outside the repository: this interpreter's
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run(["bash", str(recipe / "run.sh")], check=True, capture_output=True, text=True,
                         env=env).stdout
    return out.splitlines()


@pytest.mark.parametrize(("scale", "expected"), [
    ("0.1", ["model.feature_grad_mult=1.0", "optim.feature_encoder_lr_scale=0.1"]),
    ("1", ["model.feature_grad_mult=1.0", "optim.feature_encoder_lr_scale=1"]),
    ("0", ["model.feature_grad_mult=0.0"]),
    ("0.0", ["model.feature_grad_mult=0.0"]),
    (None, ["model.feature_grad_mult=0.0"]),  # a recipe without the setting keeps fairseq's frozen encoder
])
def test_pretrained_runs_train_their_feature_encoder_at_the_recipes_scale(tmp_path, scale, expected):
    # the caller's overrides come last, so that they win
    assert pretrained_run_overrides(tmp_path, scale) == ["init=init.pt", *expected, "trainer.seed=2"]
