"""The one writer every preparer goes through: probe audio, skip bad files with a reason, write splits.

A preparer lists its audio as :class:`SourceFile` records (absolute path, path relative to the manifest root,
optional transcript), calls :meth:`CorpusWriter.probe` to read every header, assigns the kept utterances to
splits (`speechssl.data.prepare.splits`), and calls :meth:`CorpusWriter.write_split` for each.
:meth:`CorpusWriter.finish` writes ``dict.ltr.txt`` (when labeled) and ``report.json`` and prints the summary
(`speechssl.data.prepare.report`).

Output per split ``<name>``: ``<name>.tsv`` (fairseq manifest, lengths at 16 kHz), and with transcripts
``<name>.wrd`` (upper-case words) and ``<name>.ltr`` (letters, ``|`` after each word).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from speechssl.data.audio import SAMPLE_RATE
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
from speechssl.data.prepare.probe import MIN_SAMPLES, ProbeResult, probe_file, probe_many
from speechssl.data.prepare.report import SKIP_REASONS, PrepareReport, SkippedFile, SplitSummary
from speechssl.data.prepare.splits import duration_subset


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


# What an English letter vocabulary holds (besides the word boundary `|`): anything else in a transcript is named.
_ENGLISH_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ'|")


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
        self.report.total_hours += sum(u.num_samples for u in kept) / SAMPLE_RATE / 3600
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
            futures = pool.map(probe_many, chunks, [self.min_samples] * len(chunks))
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
                self.report.transcripts_with_digits += sum(any(c.isdigit() for c in w) for w in wrd)
        summary = SplitSummary(name=name, utterances=len(utterances),
                               hours=manifest.total_samples / SAMPLE_RATE / 3600)
        self.report.splits.append(summary)
        return summary

    def write_duration_subset(self, name: str, utterances: Sequence[Utterance], seconds: float,
                              seed: int) -> SplitSummary | None:
        """Write a seeded subset of ``utterances`` holding at least ``seconds`` of audio (`duration_subset`, in
        manifest order) as split ``name``; None, writing nothing, when they hold less (the report lists only the
        splits written)."""
        if sum(u.num_samples for u in utterances) / SAMPLE_RATE < seconds:  # duration_subset's own test
            return None
        chosen = duration_subset([u.num_samples for u in utterances], seconds, seed)
        return self.write_split(name, [utterances[i] for i in chosen], subset=True)

    def write_speakers(self, utterances: Iterable[Utterance], extra: dict[str, dict[str, str]] | None = None) -> None:
        """``speakers.tsv``: ``speaker<TAB>utterances<TAB>seconds`` (+ extra columns per speaker)."""
        count: Counter = Counter()
        seconds: Counter = Counter()
        for u in utterances:
            if u.source.speaker is not None:
                count[u.source.speaker] += 1
                seconds[u.source.speaker] += u.num_samples / SAMPLE_RATE
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
        self.report.letters_outside_english = {c: n for c, n in sorted(self._letters.items())
                                               if c not in _ENGLISH_LETTERS}
        (self.out_dir / "report.json").write_text(json.dumps(self.report.to_json(), indent=2) + "\n",
                                                  encoding="utf-8")
        if echo:
            print(self.report.format())
        return self.report
