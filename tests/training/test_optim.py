import math

import pytest
import torch

from speechssl.training.optim import LRSchedule, OptimConfig, ScheduleConfig, build_optimizer, lr_at


def test_polynomial_warmup_then_linear_decay():
    cfg = ScheduleConfig(kind="polynomial", warmup_updates=100, end_lr=0.0)
    assert lr_at(0, lr=1.0, total_updates=1000, cfg=cfg) == pytest.approx(0.01)  # fairseq: lr / warmup first
    assert lr_at(50, lr=1.0, total_updates=1000, cfg=cfg) == pytest.approx(0.5)
    assert lr_at(100, lr=1.0, total_updates=1000, cfg=cfg) == pytest.approx(1.0)
    assert lr_at(550, lr=1.0, total_updates=1000, cfg=cfg) == pytest.approx(0.5)
    assert lr_at(1000, lr=1.0, total_updates=1000, cfg=cfg) == pytest.approx(0.0)


def test_tri_stage_matches_paper_shape():
    cfg = ScheduleConfig(kind="tri_stage", phase_ratio=[0.1, 0.4, 0.5], init_lr_scale=0.01, final_lr_scale=0.05)
    total, lr = 1000, 5e-5
    assert lr_at(0, lr=lr, total_updates=total, cfg=cfg) == pytest.approx(0.01 * lr)
    assert lr_at(100, lr=lr, total_updates=total, cfg=cfg) == pytest.approx(lr)
    assert lr_at(499, lr=lr, total_updates=total, cfg=cfg) == pytest.approx(lr)
    assert lr_at(1000, lr=lr, total_updates=total, cfg=cfg) == pytest.approx(0.05 * lr)
    mid = lr_at(750, lr=lr, total_updates=total, cfg=cfg)
    assert mid == pytest.approx(lr * math.sqrt(0.05))  # exponential: geometric mean halfway


def test_schedule_sets_optimizer_lr_and_adam_settings():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer([p], OptimConfig(lr=1e-3))
    assert opt.param_groups[0]["betas"] == (0.9, 0.98)
    assert opt.param_groups[0]["eps"] == 1e-6
    assert opt.param_groups[0]["weight_decay"] == 0.01
    sched = LRSchedule(opt, lr=1e-3, total_updates=10, cfg=ScheduleConfig(warmup_updates=5))
    assert sched.step(5) == pytest.approx(1e-3)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("bad", [{"lr": 0.0}, {"betas": [0.9]}, {"eps": -1.0}, {"clip_norm": -1.0}])
def test_optim_validate_names_key(bad):
    with pytest.raises(ValueError, match="optim"):
        OptimConfig(**bad).validate()
