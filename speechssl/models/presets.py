"""Named model sizes: `base`, `large` (the paper's), `small` (CPU demo) and `tiny` (tests).

Each preset starts from `base()` and changes only what differs, so a reader sees what makes LARGE large.
"""

from __future__ import annotations

from collections.abc import Callable

from speechssl.models.config import Wav2Vec2Config


def base() -> Wav2Vec2Config:
    """BASE (LibriSpeech 960 h): 95,044,608 parameters with the pretraining heads."""
    return Wav2Vec2Config()


def large() -> Wav2Vec2Config:
    """LARGE as released for LV-60k (`wav2vec2-large-lv60`): pre-LN, layer-norm extractor with conv bias,
    1024/24/16/4096, final_dim 768; 317,390,592 parameters with the pretraining heads."""
    return base().replace(
        extractor_mode="layer_norm",
        conv_bias=True,
        encoder_layers=24,
        encoder_embed_dim=1024,
        encoder_ffn_embed_dim=4096,
        encoder_attention_heads=16,
        layer_norm_first=True,
        final_dim=768,
        # fairseq's LV-60k pretraining config (wav2vec2_large_librivox.yaml): no dropout anywhere, full gradient
        # into the encoder, lower temperature floor, no feature penalty (loss_weights [0.1, 0]), normalised input.
        dropout=0.0,
        attention_dropout=0.0,
        dropout_input=0.0,
        dropout_features=0.0,
        encoder_layerdrop=0.0,
        feature_grad_mult=1.0,
        min_temp=0.1,
        feature_pen_weight=0.0,
        normalize=True,
    )


def small() -> Wav2Vec2Config:
    """CPU demo: every mechanism of BASE (7 conv blocks with the same kernels and strides, group norm, quantizer,
    masking, post-LN Transformer) at 1/70 of the size: 1.33 M parameters (128 conv channels, D 128, FFN 512,
    4 layers, final_dim 64), so that 2 CPU cores pretrain it on an hour of speech in minutes. Its conv blocks
    start smooth (`conv_smooth_init` 0.7): at this scale a kaiming-random encoder leaves nothing to predict
    for a long time (egs/synthetic/README.md has the measurements)."""
    return base().replace(
        conv_dims=[128] * 7,
        encoder_layers=4,
        encoder_embed_dim=128,
        encoder_ffn_embed_dim=512,
        encoder_attention_heads=4,
        conv_pos=64,
        conv_pos_groups=8,
        final_dim=64,
        conv_smooth_init=0.7,
    )


def tiny() -> Wav2Vec2Config:
    """Tests: a few ten thousand parameters, runs in milliseconds; all mechanisms kept."""
    return base().replace(
        conv_dims=[32] * 7,
        encoder_layers=2,
        encoder_embed_dim=32,
        encoder_ffn_embed_dim=64,
        encoder_attention_heads=4,
        conv_pos=16,
        conv_pos_groups=4,
        final_dim=16,
        latent_vars=32,
        num_negatives=10,
        mask_length=4,
    )


PRESETS: dict[str, Callable[[], Wav2Vec2Config]] = {"base": base, "large": large, "small": small, "tiny": tiny}


def get_preset(name: str) -> Wav2Vec2Config:
    """A fresh, validated config for a preset name (`base`, `large`, `small`, `tiny`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]()
