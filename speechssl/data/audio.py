"""Reading audio: any soundfile format (wav, flac, ogg, mp3, headerless raw) -> mono float32 at 16 kHz.

Resampling uses soxr (the library behind librosa's default ``soxr_hq``), called directly because the librosa
wrapper adds overhead per call. The resampled length is ``round(L * target / source)`` with halves rounded
up, which :func:`resampled_length` reproduces so manifests can state lengths from headers alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
"""The one sampling rate of the pipeline: every waveform is read, batched and fed to a model at this rate, and
the model's frame geometry (`Wav2Vec2Config.frame_stride`, `receptive_field`) counts samples at it."""
# fairseq normalises waveforms with F.layer_norm(x, x.shape), whose epsilon is 1e-5.
NORMALIZE_EPS = 1e-5


class AudioError(RuntimeError):
    """An audio file is missing, cannot be decoded, or holds unusable samples. ``path`` names the file."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


def audio_error_message(exc: BaseException) -> str | None:
    """The one-line message of an :class:`AudioError`, raised here or in a DataLoader worker; else None.

    torch re-raises a worker's exception as a RuntimeError holding the worker's traceback when the
    exception's constructor does not take one message (AudioError takes the path too): its last line is ours.
    """
    if isinstance(exc, AudioError):
        return str(exc)
    prefix = f"{AudioError.__module__}.{AudioError.__qualname__}: "
    last = str(exc).strip().splitlines()[-1:] if isinstance(exc, RuntimeError) else []
    if last and last[0].startswith(prefix) and "Caught AudioError" in str(exc):
        return last[0][len(prefix):]
    return None


@dataclass(frozen=True, kw_only=True)
class RawFormat:
    """How to read a headerless file (e.g. AN4's big-endian 16-bit PCM)."""

    sample_rate: int = SAMPLE_RATE
    """Sampling rate of the samples in the file."""
    channels: int = 1
    """Interleaved channel count."""
    subtype: str = "PCM_16"
    """soundfile subtype of one sample (PCM_16, PCM_24, FLOAT, ...)."""
    endian: str = "BIG"
    """Byte order: ``BIG``, ``LITTLE`` or ``FILE``."""

    def validate(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"`sample_rate` must be > 0, got {self.sample_rate}")
        if self.channels <= 0:
            raise ValueError(f"`channels` must be > 0, got {self.channels}")
        if self.endian not in ("BIG", "LITTLE", "FILE", "CPU"):
            raise ValueError(f"`endian` must be BIG, LITTLE, FILE or CPU, got {self.endian!r}")
        subtypes = sorted(sf.available_subtypes("RAW"))
        if self.subtype not in subtypes:
            raise ValueError(f"`subtype` must be one of {', '.join(subtypes)}, got {self.subtype!r}")

    def soundfile_kwargs(self) -> dict:
        return {"format": "RAW", "samplerate": self.sample_rate, "channels": self.channels,
                    "subtype": self.subtype, "endian": self.endian}


# What headerless PCM files are usually called.
RAW_EXTENSIONS = (".raw", ".pcm")

# The AN4 census corpus as distributed by CMU (an4_raw.bigendian).
AN4_RAW = RawFormat(sample_rate=16000, channels=1, subtype="PCM_16", endian="BIG")


@dataclass(frozen=True, kw_only=True)
class AudioInfo:
    """What a file's header says."""

    path: str
    """The file."""
    sample_rate: int
    """Native sampling rate."""
    channels: int
    """Channel count (mixed to mono on load)."""
    frames: int
    """Samples per channel at the native rate."""
    format: str
    """Container (WAV, FLAC, OGG, MP3, RAW, ...)."""
    subtype: str
    """Sample encoding (PCM_16, FLOAT, VORBIS, ...)."""

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    def num_samples(self, sample_rate: int = SAMPLE_RATE) -> int:
        """Length after :func:`load_audio` resamples to ``sample_rate``."""
        return resampled_length(self.frames, self.sample_rate, sample_rate)


def resampled_length(frames: int, source_rate: int, target_rate: int = SAMPLE_RATE) -> int:
    """``round(frames * target / source)`` with halves up: the length soxr returns."""
    if source_rate == target_rate:
        return int(frames)
    return (2 * int(frames) * target_rate + source_rate) // (2 * source_rate)


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise AudioError(path, "audio file not found" if not path.exists() else "not a regular file")


def audio_info(path: str | Path, *, raw_format: RawFormat | None = None) -> AudioInfo:
    """Read the header only. Raises :class:`AudioError` naming the file when it cannot be opened."""
    path = Path(path)
    _check_exists(path)
    try:
        if raw_format is not None:
            with sf.SoundFile(str(path), **raw_format.soundfile_kwargs()) as f:
                return AudioInfo(path=str(path), sample_rate=f.samplerate, channels=f.channels,
                                 frames=int(f.frames), format=f.format, subtype=f.subtype)
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(path, f"cannot read audio header ({exc})") from exc
    return AudioInfo(path=str(path), sample_rate=int(info.samplerate), channels=int(info.channels),
                     frames=int(info.frames), format=info.format, subtype=info.subtype)


def normalize_waveform(waveform: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole utterance (fairseq's ``F.layer_norm(x, x.shape)``)."""
    x = waveform.astype(np.float64, copy=False)
    mean = x.mean() if x.size else 0.0
    var = x.var() if x.size else 0.0
    return ((x - mean) / np.sqrt(var + NORMALIZE_EPS)).astype(np.float32)


def resample(waveform: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 ``(L,)`` -> ``(round(L * target / source),)`` with soxr's high-quality filter."""
    if source_rate == target_rate:
        return waveform
    return soxr.resample(waveform, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    *,
    normalize: bool = False,
    raw_format: RawFormat | None = None,
) -> np.ndarray:
    """Decode a file to mono float32 ``(L,)`` at ``sample_rate``.

    Integer formats are scaled to [-1, 1); several channels are averaged; other rates are resampled with
    soxr. ``normalize`` makes the utterance zero-mean, unit-variance (used by LARGE models). Headerless files
    need ``raw_format``. Raises :class:`AudioError` naming the file when it is missing, cannot be decoded or
    holds NaN/inf samples.
    """
    path = Path(path)
    _check_exists(path)
    try:
        kwargs = raw_format.soundfile_kwargs() if raw_format is not None else {}
        data, native_rate = sf.read(str(path), dtype="float32", always_2d=True, **kwargs)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(path, f"cannot decode audio ({exc})") from exc
    # data (L, C) -> (L,)
    waveform = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    waveform = np.ascontiguousarray(waveform, dtype=np.float32)
    if not np.isfinite(waveform).all():
        bad = int((~np.isfinite(waveform)).sum())
        raise AudioError(path, f"{bad} non-finite (NaN/inf) samples")
    waveform = resample(waveform, int(native_rate), sample_rate)
    if normalize:
        waveform = normalize_waveform(waveform)
    return waveform
