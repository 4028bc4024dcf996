"""Fixtures for the data tests: real audio files written by soundfile into tmp_path.

Helpers are exposed as fixtures (tests/ has no packages, so test modules cannot import each other).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# /work/shared beside the repository (absent in a user's clone: tests using it skip)
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def _sine(frequency: float, seconds: float, sample_rate: int, channels: int = 1,
          amplitude: float = 0.5) -> np.ndarray:
    """``(L,)`` or ``(L, C)`` float32 sine (channel c shifted by c * 0.3 rad)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    cols = [amplitude * np.sin(2 * np.pi * frequency * t + 0.3 * c) for c in range(channels)]
    data = np.stack(cols, axis=1) if channels > 1 else cols[0]
    return data.astype(np.float32)


def _write_audio(path: Path, data: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, subtype=subtype)
    return path


@pytest.fixture
def sine() -> Callable[..., np.ndarray]:
    return _sine


@pytest.fixture
def write_audio() -> Callable[..., Path]:
    return _write_audio


@pytest.fixture
def shared_dir() -> Path:
    return SHARED.resolve()


@pytest.fixture
def speech_tree(tmp_path) -> Callable[..., Path]:
    """Writes ``{relpath: seconds}`` as 16 kHz noise-modulated tones under a root; returns the root."""

    def make(files: dict[str, float], root: Path | None = None, sample_rate: int = 16000) -> Path:
        root = root or tmp_path / "audio"
        rng = np.random.default_rng(7)
        for rel, seconds in files.items():
            n = round(seconds * sample_rate)
            data = (0.1 * rng.standard_normal(n)).astype(np.float32)
            _write_audio(root / rel, data, sample_rate)
        return root

    return make
