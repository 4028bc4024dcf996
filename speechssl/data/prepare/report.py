"""What a preparation did: every file kept or skipped (with its reason), the splits written, the hours.

`PrepareReport` is what every preparer returns and what ``report.json`` holds; `CorpusWriter` fills it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

SKIP_REASONS = ("unreadable", "empty", "too_short", "no_transcript")


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
    letters_outside_english: dict[str, int] = field(default_factory=dict)
    """Characters of the kept transcripts outside A-Z and the apostrophe (digits, accented letters), with
    counts: each becomes a letter of its own in ``dict.ltr.txt``."""
    transcripts_with_digits: int = 0
    """Kept transcripts holding a digit (a model learns to write "42" only from audio saying it)."""

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
        if self.letters_outside_english:
            listed = sorted(self.letters_outside_english.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
            lines.append("  warning: characters outside A-Z and ' kept as letters of their own in dict.ltr.txt: "
                         + " ".join(f"{c!r} x{n}" for c, n in listed)
                         + (" ..." if len(self.letters_outside_english) > len(listed) else ""))
        if self.transcripts_with_digits:
            lines.append(f"  warning: {self.transcripts_with_digits} transcript(s) hold digits; spell numbers out "
                         "(\"forty two\") where the audio says words")
        return "\n".join(lines)
