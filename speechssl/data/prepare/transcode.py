"""Decode headerless audio once to FLAC under the output directory, so that every loader reads ordinary files.

Headerless PCM (CMU AN4's ``.raw``, a call centre's raw 8 kHz mu-law) cannot be opened without being told its
format, and manifests carry no format. The preparers that meet it write each file once as FLAC at its own rate
(lossless for 8- and 16-bit sources, PCM_24 for wider ones) and point the manifest there.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from speechssl.data.audio import SAMPLE_RATE, AudioError, RawFormat, load_audio, resampled_length

# Source encodings wider than 16 bits keep 24 in FLAC (its widest integer format).
_WIDE_SUBTYPES = ("PCM_24", "PCM_32", "FLOAT", "DOUBLE")


@dataclass(frozen=True, kw_only=True)
class Transcoded:
    """What became of one source file."""

    num_samples: int = 0
    """Length at 16 kHz (what manifests record); 0 when nothing was written."""
    error: str | None = None
    """Why the source could not be decoded, or None."""


def _transcode(job: tuple[str, str, RawFormat]) -> Transcoded:
    src, dst, raw_format = job
    try:
        audio = load_audio(src, raw_format.sample_rate, raw_format=raw_format)  # (L,) at the source's own rate
    except AudioError as exc:
        return Transcoded(error=str(exc))
    if audio.shape[0]:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        subtype = "PCM_24" if raw_format.subtype in _WIDE_SUBTYPES else "PCM_16"
        sf.write(dst, audio, raw_format.sample_rate, subtype=subtype, format="FLAC")
    return Transcoded(num_samples=resampled_length(audio.shape[0], raw_format.sample_rate, SAMPLE_RATE))


def raw_to_flac(pairs: Sequence[tuple[str | Path, str | Path]], raw_format: RawFormat, *, jobs: int = 1,
                progress: bool = True, desc: str = "decode") -> list[Transcoded]:
    """Decode each ``(source, destination)`` pair's headerless source to FLAC at the destination, in order.

    Sources that cannot be decoded come back with their error (nothing is written for them).
    """
    raw_format.validate()
    work = [(str(src), str(dst), raw_format) for src, dst in pairs]
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(jobs) as pool:
            return list(tqdm(pool.map(_transcode, work, chunksize=32), total=len(work), desc=desc,
                             disable=not progress, unit="file"))
    return [_transcode(job) for job in tqdm(work, desc=desc, disable=not progress, unit="file")]
