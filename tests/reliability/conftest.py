"""A corpus of bad inputs written by soundfile beside good tone utterances, and a helper to run the CLI.

Each word is a tone (as in tests/training/conftest.py) so the `tiny` model has something to learn; the bad
files are the issue's list: every way a real folder of audio goes wrong. `BAD_FILES` names each one with
the reason `prepare` must give; `KEPT_ODD_FILES` are unusual but valid and must be kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
SR = 16_000
TONES = {"A": 400.0, "B": 900.0, "C": 1600.0}

# file -> (skip reason, a word its detail must contain)
BAD_FILES = {
    "corrupt_header.wav": ("unreadable", "header"),
    "truncated.wav": ("unreadable", "truncated"),
    "zero_length.wav": ("unreadable", "zero-length"),
    "no_frames.wav": ("empty", "no samples"),
    "clip_100_samples.wav": ("too_short", "100 samples"),
    "not_audio.wav": ("unreadable", "header"),
    "nan_inf_float.wav": ("unreadable", "non-finite"),
    "no_transcript.wav": ("no_transcript", "no transcript"),
    "only_symbols.wav": ("no_transcript", "empty"),
}
# valid but unusual: kept, read back at 16 kHz mono
KEPT_ODD_FILES = ("clipped_full_scale.wav", "stereo_44k1_24bit.wav", "mono_8k.mp3", "oov_transcript.wav")
# a transcript line whose audio file does not exist
GHOST = "ghost.wav"


def tone_utterance(words: list[str], rng: np.random.Generator, sample_rate: int = SR) -> np.ndarray:
    """(L,) float32: each word a Hann-windowed tone, 80 ms gaps, a little noise."""
    pieces = []
    for w in words:
        n = int(sample_rate * rng.uniform(0.35, 0.5))
        t = np.arange(n) / sample_rate
        pieces.append(0.5 * np.hanning(n) * np.sin(2 * np.pi * TONES[w] * t))
        pieces.append(np.zeros(int(sample_rate * 0.08)))
    audio = np.concatenate(pieces)
    return (audio + 0.01 * rng.standard_normal(audio.shape)).astype(np.float32)


def make_bad_corpus(root: Path, n_good: int = 16, seed: int = 0) -> tuple[Path, Path]:
    """Writes `root/audio/` (good + bad files) and `root/transcripts.tsv`; returns (audio dir, transcripts)."""
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    audio.mkdir(parents=True)
    lines: list[str] = []

    def words() -> list[str]:
        return list(rng.choice(list(TONES), size=int(rng.integers(1, 4))))

    for i in range(n_good):
        w = words()
        sf.write(audio / f"good{i:03d}.wav", tone_utterance(w, rng), SR, subtype="PCM_16")
        lines.append(f"good{i:03d}.wav\t{' '.join(w)}")

    def labeled(name: str, text: str | None = None) -> Path:
        lines.append(f"{name}\t{text if text is not None else ' '.join(words())}")
        return audio / name

    # --- bad: prepare must skip each, naming it and why
    header = labeled("corrupt_header.wav")
    sf.write(header, tone_utterance(["A", "B"], rng), SR, subtype="PCM_16")
    data = bytearray(header.read_bytes())
    data[:16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()  # RIFF/WAVE/fmt ids gone
    header.write_bytes(bytes(data))
    truncated = labeled("truncated.wav")
    sf.write(truncated, tone_utterance(["C", "A"], rng), SR, subtype="PCM_16")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    labeled("zero_length.wav").write_bytes(b"")
    sf.write(labeled("no_frames.wav"), np.zeros(0, np.float32), SR, subtype="PCM_16")
    sf.write(labeled("clip_100_samples.wav"), tone_utterance(["A"], rng)[:100], SR, subtype="PCM_16")
    labeled("not_audio.wav").write_text("this is a text file with a .wav name\n" * 20)
    wave = tone_utterance(["B", "C"], rng)
    wave[1000:1010] = np.nan
    wave[5000] = np.inf
    wave[6000] = -np.inf
    sf.write(labeled("nan_inf_float.wav"), wave, SR, subtype="FLOAT")
    sf.write(audio / "no_transcript.wav", tone_utterance(["A"], rng), SR, subtype="PCM_16")
    sf.write(labeled("only_symbols.wav", "☃ ♫ !!"), tone_utterance(["B"], rng), SR, subtype="PCM_16")

    # --- odd but valid: kept
    w = words()
    loud = np.clip(20.0 * tone_utterance(w, rng), -1.0, 1.0)  # most samples at full scale
    sf.write(labeled("clipped_full_scale.wav", " ".join(w)), loud, SR, subtype="PCM_16")
    w = words()
    mono = tone_utterance(w, rng, 44_100)
    sf.write(labeled("stereo_44k1_24bit.wav", " ".join(w)), np.stack([mono, 0.5 * mono], axis=1), 44_100,
             subtype="PCM_24")
    w = words()
    sf.write(labeled("mono_8k.mp3", " ".join(w)), tone_utterance(w, rng, 8_000), 8_000)
    w = words()
    # ☃ and ¿ are no letters (dropped by normalisation); Ω is a letter outside the English vocabulary.
    sf.write(labeled("oov_transcript.wav", " ".join(w) + " ☃ Ω¿"), tone_utterance(w, rng), SR, subtype="PCM_16")

    lines.append(f"{GHOST}\tA B C")  # a transcript with no audio
    transcripts = root / "transcripts.tsv"
    transcripts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return audio, transcripts


def run_cli(args: list[str], env_extra: dict[str, str] | None = None, timeout: float = 300):
    """`python -m speechssl.cli.main ARGS` in the repo, one thread; returns the CompletedProcess."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "speechssl.cli.main", *args], check=False, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True, kw_only=True)
class BadCorpus:
    """What `make_bad_corpus` wrote and what `prepare` must make of it (a fixture: tests/ has no packages)."""

    audio: Path
    transcripts: Path
    bad_files: dict[str, tuple[str, str]]
    kept_odd_files: tuple[str, ...]
    ghost: str


@pytest.fixture(scope="session")
def bad_corpus(tmp_path_factory) -> BadCorpus:
    audio, transcripts = make_bad_corpus(tmp_path_factory.mktemp("bad_corpus"))
    return BadCorpus(audio=audio, transcripts=transcripts, bad_files=BAD_FILES, kept_odd_files=KEPT_ODD_FILES,
                     ghost=GHOST)


@pytest.fixture(scope="session")
def prepared_bad_corpus(bad_corpus, tmp_path_factory) -> tuple[BadCorpus, Path, str]:
    """`speechssl prepare folder` over the bad corpus: (corpus, data dir, what prepare printed)."""
    import contextlib
    import io

    from speechssl.cli.main import main

    out = tmp_path_factory.mktemp("bad_prepared") / "data"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["prepare", "folder", str(bad_corpus.audio), str(out), "--transcripts", str(bad_corpus.transcripts),
                   "--valid-percent", "0.25", "--seed", "1", "--jobs", "1", "--quiet"])
    assert rc == 0
    return bad_corpus, out, printed.getvalue()
