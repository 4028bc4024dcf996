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
    assert 1_000_000 <= _count(small)[0] <= 2_000_000
    assert _count(tiny)[0] < 100_000
    for cfg in (small, tiny):
        assert cfg.frame_stride == 320 and cfg.receptive_field == 400
        assert len(cfg.conv_dims) == 7 and cfg.extractor_mode == "group_norm"
        assert cfg.latent_groups == 2 and cfg.mask_prob == 0.65
    assert get_preset("base").conv_smooth_init == 0.0  # the paper's kaiming init for BASE and LARGE


def test_smooth_conv_init_makes_neighbouring_frames_alike():
    """`conv_smooth_init`: a kaiming-random encoder gives neighbouring frames unrelated features; the smooth
    init makes them clearly more alike than distant frames (what gives small-scale pretraining a signal)."""
    import torch

    from speechssl.models import Wav2Vec2Encoder

    t = torch.arange(16000) / 16000
    # a slowly gliding tone with a 5 Hz amplitude envelope: neighbouring 20 ms frames hold similar sound
    x = (torch.sin(2 * torch.pi * (300 * t + 400 * t**2)) * (1.2 + torch.sin(2 * torch.pi * 5 * t)))[None]

    def neighbour_minus_distant(share: float) -> float:
        torch.manual_seed(0)
        enc = Wav2Vec2Encoder(get_preset("small").replace(conv_smooth_init=share)).eval()
        with torch.no_grad():
            f = enc.feature_encoder(x)[0].T  # (T, C)
        f = torch.nn.functional.normalize(f - f.mean(0), dim=-1)
        cos = f @ f.T
        idx = torch.arange(len(f))
        near = cos[idx[:-1], idx[:-1] + 1].mean()
        far = cos[(idx[:, None] - idx[None, :]).abs() >= 10].mean()
        return float(near - far)

    assert neighbour_minus_distant(0.7) > neighbour_minus_distant(0.0) + 0.1


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
