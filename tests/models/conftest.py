"""Shared fixtures for the model tests: tiny configs and seeded waveforms."""

from __future__ import annotations

import pytest
import torch

from speechssl.models import Wav2Vec2Config, get_preset


@pytest.fixture
def tiny_cfg() -> Wav2Vec2Config:
    """The `tiny` preset (group-norm extractor, post-LN)."""
    return get_preset("tiny")


@pytest.fixture
def tiny_ln_cfg() -> Wav2Vec2Config:
    """`tiny` in the LARGE layout: layer-norm extractor with conv bias, pre-LN."""
    return get_preset("tiny").replace(extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True)


@pytest.fixture
def waveforms() -> torch.Tensor:
    """(3, 8000) seeded noise: 0.5 s at 16 kHz, 24 frames each."""
    return torch.randn(3, 8000, generator=torch.Generator().manual_seed(0))
