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
    opt = build_optimizer([("w", p)], OptimConfig(lr=1e-3))
    assert opt.param_groups[0]["betas"] == (0.9, 0.98)
    assert opt.param_groups[0]["eps"] == 1e-6
    assert opt.param_groups[0]["weight_decay"] == 0.01
    sched = LRSchedule(opt, lr=1e-3, total_updates=10, cfg=ScheduleConfig(warmup_updates=5))
    assert sched.step(5) == pytest.approx(1e-3)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)


def _tiny_ctc():
    from speechssl.models import Wav2Vec2ForCTC, get_preset

    torch.manual_seed(0)
    return Wav2Vec2ForCTC(get_preset("tiny").replace(feature_grad_mult=1.0), 5)


def test_feature_encoder_lr_scale_gives_the_encoder_its_own_rate():
    """Adam's first step moves every weight by ~lr (|m / sqrt(v)| = 1): the conv feature encoder's by lr x 0.1."""
    model = _tiny_ctc()
    encoder_ids = {id(p) for p in model.encoder.feature_encoder.parameters()}
    opt = build_optimizer(model.named_parameters(), OptimConfig(lr=1e-3, weight_decay=0.0,
                                                                 feature_encoder_lr_scale=0.1))
    assert [len(g["params"]) for g in opt.param_groups] == [
        sum(1 for p in model.parameters() if id(p) not in encoder_ids), len(encoder_ids)]
    assert {id(p) for p in opt.param_groups[1]["params"]} == encoder_ids
    sched = LRSchedule(opt, lr=1e-3, total_updates=10, cfg=ScheduleConfig(kind="constant", warmup_updates=0))
    assert sched.step(3) == pytest.approx(1e-3)  # the scheduled rate; the groups run at their scales
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-4])
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.randn_like(p).sign()  # |g| = 1 >> eps
    opt.step()
    for (name, p), old in zip(model.named_parameters(), before, strict=True):
        expected = 1e-4 if id(p) in encoder_ids else 1e-3
        assert (p.detach() - old).abs().max().item() == pytest.approx(expected, rel=1e-3), name


def test_feature_encoder_lr_scale_of_one_keeps_one_group():
    """The paper's optimiser: a single group over every trainable parameter, frozen ones left out."""
    model = _tiny_ctc()
    model.head.weight.requires_grad_(False)
    opt = build_optimizer(model.named_parameters(), OptimConfig(lr=1e-3))
    assert len(opt.param_groups) == 1
    # in the model's order, so that an optimiser state saved before the groups existed still maps by position
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model.parameters() if p.requires_grad]


def test_optimizer_asks_for_named_parameters():
    with pytest.raises(TypeError, match="named_parameters"):
        build_optimizer(_tiny_ctc().parameters(), OptimConfig())


@pytest.mark.parametrize("bad", [{"lr": 0.0}, {"betas": [0.9]}, {"eps": -1.0}, {"clip_norm": -1.0},
                                 {"feature_encoder_lr_scale": 0.0}])
def test_optim_validate_names_key(bad):
    with pytest.raises(ValueError, match="optim"):
        OptimConfig(**bad).validate()
