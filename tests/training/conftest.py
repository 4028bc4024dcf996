"""A tiny transcribed corpus written by soundfile: each word is a tone, so a tiny model can learn it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16_000
TONES = {"A": 400.0, "B": 900.0, "C": 1600.0}


def _utterance(words: list[str], rng: np.random.Generator) -> np.ndarray:
    pieces = []
    for w in words:
        n = int(SR * rng.uniform(0.35, 0.5))
        t = np.arange(n) / SR
        env = np.hanning(n)
        pieces.append(0.5 * env * np.sin(2 * np.pi * TONES[w] * t))
        pieces.append(np.zeros(int(SR * 0.08)))
    audio = np.concatenate(pieces)
    return (audio + 0.01 * rng.standard_normal(audio.shape)).astype(np.float32)


def make_tone_corpus(root: Path, n: int = 24, seed: int = 0) -> Path:
    """`root/audio/*.wav` + `root/data` (train/valid manifests, .ltr/.wrd, dict.ltr.txt)."""
    from speechssl.data.prepare.folder import prepare_folder

    rng = np.random.default_rng(seed)
    audio_dir = root / "audio"
    audio_dir.mkdir(parents=True)
    lines = []
    for i in range(n):
        words = list(rng.choice(list(TONES), size=int(rng.integers(1, 4))))
        sf.write(audio_dir / f"utt{i:03d}.wav", _utterance(words, rng), SR, subtype="PCM_16")
        lines.append(f"utt{i:03d}.wav\t{' '.join(words)}")
    tsv = root / "transcripts.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    data = root / "data"
    prepare_folder(audio_dir, data, transcripts=tsv, valid_percent=0.25, seed=1, progress=False, echo=False)
    return data


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory) -> Path:
    return make_tone_corpus(tmp_path_factory.mktemp("tones"))
