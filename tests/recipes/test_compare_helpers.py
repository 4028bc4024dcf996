"""egs/common/compare.sh: how a pretrained run's conv feature encoder trains (FEATURE_ENCODER_LR_SCALE), the
setting egs/synthetic and egs/an4 share; the Hydra overrides finetune_pretrained hands to the fine-tuning run;
the best of several starts (STARTS, START_UPDATES)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def probe_recipe(tmp_path, settings: str, body: str) -> Path:
    """A recipe script egs/probe/run.sh that sets SETTINGS, sources stages.sh and compare.sh as the recipes do,
    then runs BODY (bash: stubs and calls of compare.sh's functions)."""
    recipe = tmp_path / "egs" / "probe"
    recipe.mkdir(parents=True)
    (recipe / "run.sh").write_text(f"""
LM_ORDER=3 PRETRAIN_OVERRIDES= FINETUNE_OVERRIDES= {settings}
. {REPO}/egs/common/stages.sh
REPO_DIR={REPO}
quick_common=()
. {REPO}/egs/common/compare.sh
{body}
""")
    return recipe / "run.sh"


def run_probe(script: Path) -> subprocess.CompletedProcess:
    # stages.sh looks for the speechssl command on PATH outside the repository: this interpreter's
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True, env=env)


def pretrained_run_overrides(tmp_path, scale: str | None) -> list[str]:
    """The overrides `finetune_pretrained ft d train_10min init.pt trainer.seed=2` passes on (fine-tuning stubbed)."""
    setting = "" if scale is None else f"FEATURE_ENCODER_LR_SCALE={scale}"
    script = probe_recipe(tmp_path, setting, """finetune_run() { shift 3; printf '%s\\n' "$@"; }
finetune_pretrained ft d train_10min init.pt trainer.seed=2""")
    out = run_probe(script).stdout
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


def test_best_start_goes_on_with_the_start_of_lowest_valid_ctc_loss(tmp_path):
    """STARTS=3: seeds 2, 1002, 2002 each train START_UPDATES updates (trainer.stop_at_update), the one with the
    lowest valid CTC loss there (1002 here) moves to EXP/finetune/NAME and finetune_run goes on with its seed; the
    others stay in NAME.starts/. A rerun trains nothing again. `speechssl` is stubbed: it logs a validation whose
    loss depends on the seed, and records its arguments."""
    exp = tmp_path / "exp"
    script = probe_recipe(tmp_path, f"STARTS=3 START_UPDATES=20 FINETUNE_UPDATES=60 EXP={exp}", f"""
speechssl() {{
  local arg dir seed stop=60
  for arg in "$@"; do
    case $arg in trainer.run_dir=*) dir=${{arg#*=}};; trainer.seed=*) seed=${{arg#*=}};;
                 trainer.stop_at_update=*) stop=${{arg#*=}};; esac
  done
  declare -A loss=([2]=50.5 [1002]=30.25 [2002]=40)
  echo "{{\\"split\\": \\"valid\\", \\"update\\": $stop, \\"ctc_loss\\": ${{loss[$seed]}}}}" >> "$dir/log.jsonl"
  printf 'trainer:\\n  seed: %s\\n' "$seed" > "$dir/config.yaml"
  echo "$*" >> "$dir/calls"
}}
finetune_pretrained ft d train_10min init.pt trainer.seed=2""")
    run = run_probe(script)
    assert "ft_pretrained: going on with trainer.seed=1002 (of 3 starts)" in run.stderr
    calls = (exp / "finetune/ft_pretrained/calls").read_text().splitlines()
    assert len(calls) == 2  # the start, then the run to the end in the same directory
    assert "trainer.stop_at_update=20" in calls[0] and "trainer.seed=1002" in calls[0]
    assert "stop_at_update" not in calls[1] and "trainer.seed=1002" in calls[1] and "trainer.seed=2" not in calls[1]
    assert f"trainer.run_dir={exp}/finetune/ft_pretrained " in calls[1] + " "
    assert sorted(p.name for p in (exp / "finetune/ft_pretrained.starts").iterdir() if p.is_dir()) == [
        "seed2", "seed2002"]
    assert (exp / "finetune/ft_pretrained/.done").is_file()

    again = run_probe(script)
    assert "going on with" not in again.stderr
    assert len((exp / "finetune/ft_pretrained/calls").read_text().splitlines()) == 2
    # interrupted after the choice, before the end: the chosen start goes on, no start runs again
    (exp / "finetune/ft_pretrained/.done").unlink()
    resumed = run_probe(script)
    assert "start with" not in resumed.stderr
    calls = (exp / "finetune/ft_pretrained/calls").read_text().splitlines()
    assert len(calls) == 3 and "trainer.seed=1002" in calls[2] and "stop_at_update" not in calls[2]


def test_a_run_no_longer_than_the_choice_point_starts_once(tmp_path):
    """STARTS=3 with FINETUNE_UPDATES=4 and START_UPDATES=20 (a smoke run): the starts would end before the update
    they are compared at, so the run trains once, in its own directory, with its own seed, and says so."""
    exp = tmp_path / "exp"
    script = probe_recipe(tmp_path, f"STARTS=3 START_UPDATES=20 FINETUNE_UPDATES=4 EXP={exp}", f"""
speechssl() {{ local arg dir; for arg in "$@"; do [[ $arg == trainer.run_dir=* ]] && dir=${{arg#*=}}; done
  echo "$*" >> "$dir/calls"; }}
finetune_scratch ft d train trainer.seed=2""")
    run = run_probe(script)
    assert "ft_scratch: one start, not 3: the run's 4 updates end before START_UPDATES=20" in run.stderr
    calls = (exp / "finetune/ft_scratch/calls").read_text().splitlines()
    assert len(calls) == 1 and "trainer.seed=2" in calls[0] and "stop_at_update" not in calls[0]
    assert not (exp / "finetune/ft_scratch.starts").exists()
