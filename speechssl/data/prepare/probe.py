"""Finding and probing audio files for preparation: which files a folder holds, and whether each one is whole
and long enough, from its header and its last frames (without decoding it all)."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from speechssl.data.audio import SAMPLE_RATE, resampled_length
from speechssl.models.config import Wav2Vec2Config

# What libsndfile decodes (Opus in its Ogg container; AIFF); not MP4/M4A/AAC, which it cannot read.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
# wav2vec 2.0's receptive field (its feature encoder's, from the model config): shorter audio gives no frame.
MIN_SAMPLES = Wav2Vec2Config().receptive_field
# frames read back from the end of a file to catch truncation that the header cannot show
_TAIL_FRAMES = 2048
# libsndfile's log line for a WAV data chunk whose declared size differs from what the file holds
_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# streaming writers declare an unknown length as 0xFFFFFFFF (or close): not a truncation
_WAV_STREAMING_SIZE = 0xFFFFFF00


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """Outcome of reading one file's header (and its last frames)."""

    num_samples: int = 0
    """Length at 16 kHz when readable."""
    reason: str | None = None
    """Skip reason, None when fine."""
    detail: str = ""
    """Why it was skipped."""


def probe_file(path: str | Path, *, min_samples: int = MIN_SAMPLES) -> ProbeResult:
    """Read the header, then the last frames, so truncated files are caught without decoding everything.

    Float files (``FLOAT``/``DOUBLE`` subtypes) are read in full: only they can hold NaN/inf samples.
    """
    errors = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)
    try:
        f = sf.SoundFile(str(path))
    except errors as exc:
        if Path(path).is_file() and Path(path).stat().st_size == 0:
            return ProbeResult(reason="unreadable", detail="zero-length file (0 bytes)")
        return ProbeResult(reason="unreadable", detail=f"cannot read header: {str(exc).strip() or type(exc).__name__}")
    with f:
        frames, rate = int(f.frames), int(f.samplerate)
        if frames <= 0:
            return ProbeResult(reason="empty", detail="no samples")
        tail = min(frames, _TAIL_FRAMES)
        try:
            f.seek(frames - tail)
            got = f.read(tail, dtype="float32", always_2d=True).shape[0]
        except errors as exc:
            return ProbeResult(reason="unreadable", detail=f"truncated or corrupt: reading the last frames failed "
                                                           f"({str(exc).strip() or type(exc).__name__})")
        if got < tail:
            return ProbeResult(reason="unreadable",
                               detail=f"truncated: header says {frames} frames, data ends early")
        # libsndfile quietly shortens a WAV whose data chunk runs past the end of the file; its log says so.
        declared = _WAV_DATA_SIZE.search(f.extra_info)
        if declared and int(declared.group(2)) < int(declared.group(1)) < _WAV_STREAMING_SIZE:
            return ProbeResult(reason="unreadable",
                               detail=f"truncated: header declares {declared.group(1)} data bytes, the file holds "
                                      f"{declared.group(2)}")
        if f.subtype in ("FLOAT", "DOUBLE"):
            # Only float encodings can hold NaN/inf, which would poison every update the file is in.
            bad = _count_non_finite(f)
            if bad:
                return ProbeResult(reason="unreadable", detail=f"{bad} non-finite (NaN/inf) samples")
    num_samples = resampled_length(frames, rate, SAMPLE_RATE)
    if num_samples < min_samples:
        return ProbeResult(num_samples=num_samples, reason="too_short",
                           detail=f"{num_samples} samples at 16 kHz < {min_samples}")
    return ProbeResult(num_samples=num_samples)


def _count_non_finite(f: sf.SoundFile, block: int = 1 << 18) -> int:
    """NaN/inf samples of an open float file, read in blocks (so long files need no large buffer)."""
    f.seek(0)
    bad = 0
    for chunk in f.blocks(blocksize=block, dtype="float32", always_2d=True):
        bad += int(chunk.size - np.isfinite(chunk).sum())
    return bad


def probe_many(paths: Sequence[str], min_samples: int) -> list[ProbeResult]:
    return [probe_file(p, min_samples=min_samples) for p in paths]


def scan_audio(directory: str | Path, extensions: Iterable[str] = AUDIO_EXTENSIONS, *,
               others: Counter | None = None) -> list[Path]:
    """Audio files under ``directory`` (recursive), sorted by path. Symlinked files and folders are followed, and
    paths keep the link's name (under ``directory`` as given); a folder reached a second time (a link loop, or two
    links to one folder) is walked once. ``others``, when given, counts the files left out by extension (lower
    case, ``""`` for none)."""
    exts = {e.lower() for e in extensions}
    found: list[Path] = []
    walked: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        here = os.stat(dirpath)
        if (here.st_dev, here.st_ino) in walked:
            dirnames[:] = []
            continue
        walked.add((here.st_dev, here.st_ino))
        dirnames.sort()  # the real folder and a link to it: the first name in order is the one kept
        for name in filenames:
            ext = os.path.splitext(name)[1].lower()
            if ext in exts:
                found.append(Path(dirpath) / name)
            elif others is not None:
                others[ext] += 1
    return sorted(found)


def relative_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, by name when it lies under it (symlinks kept, so the manifest names the
    link), else by its resolved location."""
    lexical = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root)))
    if lexical.parts and lexical.parts[0] != "..":
        return lexical.as_posix()
    return path.resolve().relative_to(root.resolve()).as_posix()
