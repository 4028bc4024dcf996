"""Presets and config validation."""

from __future__ import annotations

import pytest
import torch

from speechssl.models import Wav2Vec2Config, Wav2Vec2ForPreTraining, get_preset


def _count(cfg: Wav2Vec2Config) -> tuple[int, int]:
    with torch.device("meta"):  # no memory, no init cost
        model = Wav2Vec2ForPreTraining(cfg)
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.encoder.parameters())


def test_base_parameter_count_is_exact():
    total, encoder = _count(get_preset("base"))
    assert total == 95_044_608
    assert encoder == 94_371_712  # without quantizer, project_q and final_proj


def test_large_parameter_count_is_exact():
    total, _ = _count(get_preset("large"))
    assert total == 317_390_592


def test_small_and_tiny_keep_every_mechanism():
    small, tiny = get_preset("small"), get_preset("tiny")
    assert 5_000_000 <= _count(small)[0] <= 10_000_000
    assert _count(tiny)[0] < 100_000
    for cfg in (small, tiny):
        assert cfg.frame_stride == 320 and cfg.receptive_field == 400
        assert len(cfg.conv_dims) == 7 and cfg.extractor_mode == "group_norm"
        assert cfg.latent_groups == 2 and cfg.mask_prob == 0.65


def test_receptive_field_and_stride_of_base():
    cfg = get_preset("base")
    assert (cfg.frame_stride, cfg.receptive_field) == (320, 400)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extractor_mode": "default"}, "extractor_mode"),
        ({"mask_prob": 1.2}, "mask_prob"),
        ({"encoder_attention_heads": 5}, "encoder_attention_heads"),
        ({"conv_kernels": [10, 3]}, "conv_kernels"),
        ({"min_temp": 3.0}, "min_temp"),
        ({"final_dim": 255}, "latent_groups"),
    ],
)
def test_validate_names_the_bad_field(change, message):
    with pytest.raises(ValueError, match=message):
        get_preset("tiny").replace(**change)


def test_unknown_field_is_rejected_and_dict_round_trips():
    cfg = get_preset("small")
    assert Wav2Vec2Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="encoder_layer"):
        Wav2Vec2Config.from_dict({"encoder_layer": 3})


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset"):
        get_preset("huge")
