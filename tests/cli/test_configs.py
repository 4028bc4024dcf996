"""Every config in conf/ composes into the typed schema and builds a valid model config."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechssl.cli.train import compose, conf_dir
from speechssl.models import get_preset
from speechssl.training.config import FinetuneConfig, PretrainConfig, apply_overrides

EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (conf_dir() / "model").glob("*.yaml"))


def _check(app: str, overrides: list[str], tmp_path: Path):
    cfg, resolved = compose(app, [f"data.dir={tmp_path}", *overrides])
    assert isinstance(cfg, FinetuneConfig if app == "finetune" else PretrainConfig)
    model_cfg = apply_overrides(get_preset(cfg.model.preset), cfg.model.overrides)
    model_cfg.validate()
    cfg.optim.validate()
    cfg.schedule.validate()
    cfg.trainer.validate()
    assert resolved["data"]["dir"] == str(tmp_path)
    return cfg, model_cfg


def test_there_are_configs_to_check():
    assert {"pretrain_base", "pretrain_large", "pretrain_cpu", "finetune_10m", "finetune_cpu"} <= set(EXPERIMENTS)
    assert {"tiny", "small", "base", "large"} <= set(MODELS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes(name, tmp_path):
    app = "finetune" if name.startswith("finetune") else "pretrain"
    cfg, model_cfg = _check(app, [f"+experiment={name}"], tmp_path)
    assert cfg.trainer.max_updates >= 1
    if name == "pretrain_base":  # the paper's numbers survive composition
        assert (cfg.optim.lr, cfg.schedule.warmup_updates, cfg.trainer.max_updates) == (5e-4, 32000, 400000)
        assert model_cfg.encoder_layers == 12 and model_cfg.continuous_target_weight == 0.0
    if name == "finetune_10m":
        assert cfg.freeze_finetune_updates == 10000 and model_cfg.mask_channel_prob == 0.25
    # The kept heap is pretraining's trade (speed for memory); fine-tuning keeps glibc's defaults (README).
    assert cfg.trainer.keep_freed_memory is (app == "pretrain")


@pytest.mark.parametrize("app", ["pretrain", "finetune"])
@pytest.mark.parametrize("model", MODELS)
def test_every_model_composes_with_both_apps(app, model, tmp_path):
    _, model_cfg = _check(app, [f"model={model}"], tmp_path)
    assert model_cfg == get_preset(model)  # the preset itself: the app configs leave model fields alone
