"""The one writer every preparer goes through: probe audio, skip bad files with a reason, write splits.

A preparer lists its audio as :class:`SourceFile` records (absolute path, path relative to the manifest root,
optional transcript), calls :meth:`CorpusWriter.probe` to read every header, assigns the kept utterances to
splits, and calls :meth:`CorpusWriter.write_split` for each. :meth:`CorpusWriter.finish` writes
``dict.ltr.txt`` (when labeled) and ``report.json`` and prints the summary.

Output per split ``<name>``: ``<name>.tsv`` (fairseq manifest, lengths at 16 kHz), and with transcripts
``<name>.wrd`` (upper-case words) and ``<name>.ltr`` (letters, ``|`` after each word).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechssl.data.audio import TARGET_SAMPLE_RATE, resampled_length
from speechssl.data.manifest import (
    Manifest,
    ManifestEntry,
    dropped_characters,
    letter_counts,
    normalize_transcript,
    words_to_letters,
    write_labels,
    write_letter_dict,
    write_manifest,
)

# What libsndfile decodes (Opus in its Ogg container; AIFF); not MP4/M4A/AAC, which it cannot read.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
# The feature encoder's receptive field: shorter audio gives no frame at all.
MIN_SAMPLES = 400
SKIP_REASONS = ("unreadable", "empty", "too_short", "no_transcript")
# frames read back from the end of a file to catch truncation that the header cannot show
_TAIL_FRAMES = 2048
# libsndfile's log line for a WAV data chunk whose declared size differs from what the file holds
_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# streaming writers declare an unknown length as 0xFFFFFFFF (or close): not a truncation
_WAV_STREAMING_SIZE = 0xFFFFFF00


@dataclass(frozen=True, kw_only=True)
class SourceFile:
    """An audio file a preparer found."""

    path: Path
    """Absolute path."""
    relpath: str
    """Path relative to the manifest root, as written in the manifest (forward slashes)."""
    text: str | None = None
    """Raw transcript (normalised by the writer), or None for unlabeled audio."""
    speaker: str | None = None
    """Speaker id when the corpus has one."""


@dataclass(frozen=True, kw_only=True)
class Utterance:
    """A kept file: its source and its length at 16 kHz."""

    source: SourceFile
    """Where it came from."""
    num_samples: int
    """Samples at 16 kHz."""
    words: str | None
    """Normalised transcript (``.wrd`` form) or None."""


@dataclass(frozen=True, kw_only=True)
class SkippedFile:
    """A file left out, with why."""

    path: str
    """The file."""
    reason: str
    """One of ``unreadable``, ``empty``, ``too_short``, ``no_transcript``."""
    detail: str
    """Human-readable specifics (the decoder's message, the length...)."""


@dataclass(kw_only=True)
class SplitSummary:
    """What one written split holds."""

    name: str
    """Split name (``train``, ``valid``, ``test``, ``train_10min``...)."""
    utterances: int
    """Utterances written."""
    hours: float
    """Audio hours at 16 kHz."""


@dataclass(kw_only=True)
class PrepareReport:
    """Counts kept/skipped, each skipped file named, hours per split."""

    out_dir: str
    """Where the manifests are."""
    root: str
    """Manifest root directory."""
    kept: int = 0
    """Files that passed the checks."""
    skipped: list[SkippedFile] = field(default_factory=list)
    """Files left out."""
    splits: list[SplitSummary] = field(default_factory=list)
    """Written splits."""
    total_hours: float = 0.0
    """Hours of the kept files."""
    unmatched_transcripts: list[str] = field(default_factory=list)
    """Transcript lines naming an audio file that is not there (the line is ignored)."""
    dropped_characters: dict[str, int] = field(default_factory=dict)
    """Characters normalisation removed from the kept transcripts (punctuation, symbols), with counts."""
    not_scanned: dict[str, int] = field(default_factory=dict)
    """Files under the audio directory not read because of their extension, counted by extension."""

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        counts = Counter(s.reason for s in self.skipped)
        return {reason: counts.get(reason, 0) for reason in SKIP_REASONS}

    def to_json(self) -> dict:
        out = asdict(self)
        out["skipped_by_reason"] = self.skipped_by_reason
        out["num_skipped"] = len(self.skipped)
        out["num_unmatched_transcripts"] = len(self.unmatched_transcripts)
        return out

    def format(self, max_listed: int = 50) -> str:
        lines = [f"prepared {self.out_dir}: kept {self.kept} files ({self.total_hours:.3f} h), "
                 f"skipped {len(self.skipped)}"
                 + (" (" + ", ".join(f"{r} {n}" for r, n in self.skipped_by_reason.items() if n) + ")"
                    if self.skipped else "")]
        for s in self.splits:
            lines.append(f"  {s.name}: {s.utterances} utterances, {s.hours:.3f} h")
        for s in self.skipped[:max_listed]:
            lines.append(f"  skipped [{s.reason}] {s.path}: {s.detail}")
        if len(self.skipped) > max_listed:
            lines.append(f"  ... {len(self.skipped) - max_listed} more skipped files listed in report.json")
        for rel in self.unmatched_transcripts[:max_listed]:
            lines.append(f"  ignored transcript line: no audio file {rel}")
        if len(self.unmatched_transcripts) > max_listed:
            lines.append(f"  ... {len(self.unmatched_transcripts) - max_listed} more transcript lines without "
                         "audio listed in report.json")
        if self.not_scanned:
            listed = sorted(self.not_scanned.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append("  not read (extension): " + ", ".join(f"{ext or '(none)'} x{n}" for ext, n in listed[:10])
                         + (" ..." if len(listed) > 10 else "")
                         + "; --extensions chooses what is read")
        if self.dropped_characters:
            listed = sorted(self.dropped_characters.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
            lines.append("  characters dropped from transcripts (not letters, digits or apostrophes): "
                         + " ".join(f"{c!r} x{n}" for c, n in listed)
                         + (" ..." if len(self.dropped_characters) > len(listed) else ""))
        return "\n".join(lines)


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
    num_samples = resampled_length(frames, rate, TARGET_SAMPLE_RATE)
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


def _probe_many(paths: Sequence[str], min_samples: int) -> list[ProbeResult]:
    return [probe_file(p, min_samples=min_samples) for p in paths]


def scan_audio(directory: str | Path, extensions: Iterable[str] = AUDIO_EXTENSIONS, *,
               others: Counter | None = None) -> list[Path]:
    """Audio files under ``directory`` (recursive, following no symlinked dirs), sorted by path. ``others``, when
    given, counts the files left out by extension (lower case, ``""`` for none)."""
    exts = {e.lower() for e in extensions}
    found: list[Path] = []
    for dirpath, _, filenames in os.walk(directory):
        for name in filenames:
            ext = os.path.splitext(name)[1].lower()
            if ext in exts:
                found.append(Path(dirpath) / name)
            elif others is not None:
                others[ext] += 1
    return sorted(found)



def relative_path(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def split_by_percent(utterances: Sequence[Utterance], percent: float, seed: int) -> tuple[list[Utterance],
                                                                                              list[Utterance]]:
    """``(rest, held)``: ``round(percent * N)`` utterances drawn by ``seed`` (manifest order kept)."""
    if not 0.0 <= percent < 1.0:
        raise ValueError(f"`valid_percent` must be in [0, 1), got {percent}")
    n = len(utterances)
    n_held = round(percent * n)
    if percent > 0 and n_held == 0 and n > 1:
        n_held = 1
    held_idx = set(np.random.default_rng(seed).permutation(n)[:n_held].tolist())
    rest = [u for i, u in enumerate(utterances) if i not in held_idx]
    held = [u for i, u in enumerate(utterances) if i in held_idx]
    return rest, held


def subset_by_duration(utterances: Sequence[Utterance], seconds: float, seed: int) -> list[Utterance] | None:
    """A seeded random subset holding at least ``seconds`` of audio (manifest order kept); None if too little.

    Utterances are drawn in a random order until the duration is reached, so a larger subset drawn with the
    same seed contains every smaller one.
    """
    total = sum(u.num_samples for u in utterances) / TARGET_SAMPLE_RATE
    if total < seconds:
        return None
    order = np.random.default_rng(seed).permutation(len(utterances))
    chosen: set[int] = set()
    acc = 0.0
    for i in order.tolist():
        if acc >= seconds:
            break
        chosen.add(i)
        acc += utterances[i].num_samples / TARGET_SAMPLE_RATE
    return [u for i, u in enumerate(utterances) if i in chosen]


class CorpusWriter:
    """Probes sources, writes splits and labels, keeps the report."""

    def __init__(self, out_dir: str | Path, root: str | Path, *, labeled: bool, jobs: int = 1,
                 min_samples: int = MIN_SAMPLES, progress: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.root = Path(root).resolve()
        self.labeled = labeled
        self.jobs = max(1, int(jobs))
        self.min_samples = int(min_samples)
        self.progress = progress
        self.report = PrepareReport(out_dir=str(self.out_dir), root=str(self.root))
        self._letters: Counter = Counter()
        self._dropped_chars: Counter = Counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def skip(self, path: str | Path, reason: str, detail: str) -> None:
        """Record a file left out (preparers call this for files they reject themselves)."""
        if reason not in SKIP_REASONS:
            raise ValueError(f"skip reason must be one of {SKIP_REASONS}, got {reason!r}")
        self.report.skipped.append(SkippedFile(path=str(path), reason=reason, detail=detail))

    def probe(self, sources: Sequence[SourceFile], known_samples: Sequence[int] | None = None) -> list[Utterance]:
        """Read every header; returns the kept utterances in input order, records the rest as skipped.

        ``known_samples`` (lengths at 16 kHz) skips the header reads for files the caller just wrote.
        """
        words: list[str | None] = []
        for src in sources:
            words.append(normalize_transcript(src.text) if src.text is not None else None)
        if known_samples is not None:
            results = [ProbeResult(num_samples=int(n)) if n >= self.min_samples else
                       ProbeResult(num_samples=int(n), reason="too_short" if n else "empty",
                                   detail=f"{n} samples at 16 kHz") for n in known_samples]
        else:
            results = self._probe_all([str(s.path) for s in sources])
        kept: list[Utterance] = []
        for src, wrd, res in zip(sources, words, results):
            if res.reason is not None:
                self.skip(src.path, res.reason, res.detail)
            elif self.labeled and not wrd:
                self.skip(src.path, "no_transcript",
                          "no transcript line" if src.text is None else f"transcript {src.text!r} is empty")
            else:
                kept.append(Utterance(source=src, num_samples=res.num_samples, words=wrd))
                if src.text is not None:
                    self._dropped_chars.update(dropped_characters(src.text))
        self.report.kept += len(kept)
        self.report.total_hours += sum(u.num_samples for u in kept) / TARGET_SAMPLE_RATE / 3600
        return kept

    def _probe_all(self, paths: list[str]) -> list[ProbeResult]:
        if self.jobs == 1 or len(paths) < 64:
            it = (probe_file(p, min_samples=self.min_samples) for p in paths)
            return list(tqdm(it, total=len(paths), desc="reading headers", disable=not self.progress,
                             unit="file"))
        chunk = max(16, len(paths) // (self.jobs * 8))
        chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
        results: list[ProbeResult] = []
        with ProcessPoolExecutor(self.jobs) as pool:
            futures = pool.map(_probe_many, chunks, [self.min_samples] * len(chunks))
            for part in tqdm(futures, total=len(chunks), desc="reading headers", disable=not self.progress,
                             unit="chunk"):
                results.extend(part)
        return results

    def write_split(self, name: str, utterances: Sequence[Utterance], *, subset: bool = False) -> SplitSummary:
        """Write ``<name>.tsv`` (+ ``.wrd``/``.ltr`` when labeled).

        ``subset`` marks a split drawn from another one (``train_10min``): its letters are not counted twice
        in ``dict.ltr.txt``.
        """
        manifest = Manifest(root=self.root, entries=[ManifestEntry(path=u.source.relpath,
                                                                   num_samples=u.num_samples)
                                                     for u in utterances])
        write_manifest(self.out_dir / f"{name}.tsv", manifest)
        if self.labeled:
            wrd = [u.words or "" for u in utterances]
            ltr = [words_to_letters(w) for w in wrd]
            write_labels(self.out_dir / f"{name}.wrd", wrd)
            write_labels(self.out_dir / f"{name}.ltr", ltr)
            if not subset:
                self._letters.update(letter_counts(ltr))
        summary = SplitSummary(name=name, utterances=len(utterances),
                               hours=manifest.total_samples / TARGET_SAMPLE_RATE / 3600)
        self.report.splits.append(summary)
        return summary

    def write_speakers(self, utterances: Iterable[Utterance], extra: dict[str, dict[str, str]] | None = None) -> None:
        """``speakers.tsv``: ``speaker<TAB>utterances<TAB>seconds`` (+ extra columns per speaker)."""
        count: Counter = Counter()
        seconds: Counter = Counter()
        for u in utterances:
            if u.source.speaker is not None:
                count[u.source.speaker] += 1
                seconds[u.source.speaker] += u.num_samples / TARGET_SAMPLE_RATE
        extra = extra or {}
        columns = sorted({k for v in extra.values() for k in v})
        lines = ["\t".join(["speaker", "utterances", "seconds", *columns])]
        for spk in sorted(set(count) | set(extra)):
            cols = [extra.get(spk, {}).get(c, "") for c in columns]
            lines.append("\t".join([spk, str(count[spk]), f"{seconds[spk]:.2f}", *cols]))
        (self.out_dir / "speakers.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def finish(self, *, echo: bool = True) -> PrepareReport:
        """Write ``dict.ltr.txt`` (labeled corpora) and ``report.json``; print the summary."""
        if self.labeled and self._letters:
            write_letter_dict(self.out_dir / "dict.ltr.txt", self._letters)
        self.report.dropped_characters = dict(sorted(self._dropped_chars.items()))
        (self.out_dir / "report.json").write_text(json.dumps(self.report.to_json(), indent=2) + "\n",
                                                  encoding="utf-8")
        if echo:
            print(self.report.format())
        return self.report
