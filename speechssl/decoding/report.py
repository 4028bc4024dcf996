"""Writing decoding results: icefall-style text files, a per-utterance table and a JSON summary.

For a subset ``S`` in the output directory:
- ``recogs-S.txt``: ``id:\\tref=...`` / ``id:\\thyp=...`` pairs (icefall's layout, words as plain text);
- ``errs-S.txt``: the totals, then per-utterance alignments and the most frequent substitutions,
  deletions and insertions (icefall's ``errs-*`` sections);
- ``wer-summary-S.txt``: ``settings<TAB>WER`` (icefall);
- ``utterances-S.tsv``: id, reference, hypothesis, word errors, reference words, char errors, reference chars;
- ``summary-S.json``: rates, counts, decoder settings and speed.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from speechssl.decoding.wer import CorpusScore


@dataclass(kw_only=True)
class ReportFiles:
    """Paths written by ``write_report``."""

    recogs: Path
    errs: Path
    wer_summary: Path
    utterances: Path
    summary: Path


def _percent(rate: float) -> float:
    return round(100.0 * rate, 2) if math.isfinite(rate) else rate


def summary_dict(result: CorpusScore, *, subset: str, settings: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``summary-S.json``: WER/CER in percent (jiwer's fractions x 100) and raw counts."""
    out: dict[str, Any] = {
        "subset": subset,
        "utterances": len(result.utterances),
        "wer": _percent(result.wer),
        "cer": _percent(result.cer),
        "wer_fraction": result.wer,
        "cer_fraction": result.cer,
        "words": {**asdict(result.words), "errors": result.words.errors,
                  "reference_length": result.words.reference_length},
        "chars": {**asdict(result.chars), "errors": result.chars.errors,
                  "reference_length": result.chars.reference_length},
        "settings": settings or {},
    }
    out.update(extra or {})
    return out


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def write_report(result: CorpusScore, out_dir: str | Path, *, subset: str, settings: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None, settings_name: str = "decode") -> ReportFiles:
    """Write the five result files of ``subset`` into ``out_dir`` (created if needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        recogs=out_dir / f"recogs-{subset}.txt", errs=out_dir / f"errs-{subset}.txt",
        wer_summary=out_dir / f"wer-summary-{subset}.txt", utterances=out_dir / f"utterances-{subset}.tsv",
        summary=out_dir / f"summary-{subset}.json",
    )
    with open(files.recogs, "w", encoding="utf-8") as f:
        f.writelines(f"{_clean(u.id)}:\tref={u.reference}\n{_clean(u.id)}:\thyp={u.hypothesis}\n" for u in result.utterances)

    w = result.words
    subs: Counter = Counter()
    dels: Counter = Counter()
    ins: Counter = Counter()
    for u in result.utterances:
        for piece in u.alignment.split():
            if piece.startswith("(") and piece.endswith(")") and "->" in piece:
                ref, hyp = piece[1:-1].split("->", 1)
                if ref == "*":
                    ins[hyp] += 1
                elif hyp == "*":
                    dels[ref] += 1
                else:
                    subs[f"{ref} -> {hyp}"] += 1
    with open(files.errs, "w", encoding="utf-8") as f:
        f.write(f"%WER {_percent(result.wer):.2f} [ {w.errors} / {w.reference_length}, {w.insertions} ins, "
                f"{w.deletions} del, {w.substitutions} sub ]\n")
        f.write(f"%CER {_percent(result.cer):.2f} [ {result.chars.errors} / {result.chars.reference_length} ]\n")
        f.write("\nPER-UTT DETAILS: corr or (ref->hyp)\n")
        for u in result.utterances:
            f.write(f"{_clean(u.id)}:\t{u.alignment}\n")
        for title, counter in (("SUBSTITUTIONS: count ref -> hyp", subs), ("DELETIONS: count ref", dels),
                               ("INSERTIONS: count hyp", ins)):
            f.write(f"\n{title}\n")
            f.writelines(f"{count}   {item}\n" for item, count in counter.most_common())

    with open(files.wer_summary, "w", encoding="utf-8") as f:
        f.write(f"settings\tWER\n{settings_name}\t{_percent(result.wer):.2f}\n")

    with open(files.utterances, "w", encoding="utf-8") as f:
        f.write("id\treference\thypothesis\tword_errors\treference_words\tchar_errors\treference_chars\n")
        for u in result.utterances:
            f.write(f"{_clean(u.id)}\t{u.reference}\t{u.hypothesis}\t{u.words.errors}\t{u.words.reference_length}"
                    f"\t{u.chars.errors}\t{u.chars.reference_length}\n")

    summary = summary_dict(result, subset=subset, settings=settings, extra=extra)
    files.summary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return files


def format_table(rows: list[tuple[str, str]]) -> str:
    """Two aligned columns for the terminal."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
