"""Result tables of the recipes: read what ``speechssl evaluate`` wrote, score groups, print markdown.

``speechssl evaluate ... --out DIR`` writes ``summary-<subset>.json`` (WER/CER in percent) and
``utterances-<subset>.tsv`` (per-utterance word and character errors) into DIR. A group score (for example
the utterances of voices never heard in training) is the corpus-level rate over the group's utterances:
total errors over total reference words, as jiwer computes a corpus WER.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Score:
    """Corpus-level error rates of a set of utterances, in percent."""

    wer: float
    """Word error rate (%)."""
    cer: float
    """Character error rate (%)."""
    utterances: int
    """Utterances scored."""


def read_score(decode_dir: str | Path, subset: str) -> Score:
    """The overall score of ``subset`` from ``summary-<subset>.json``."""
    path = Path(decode_dir) / f"summary-{subset}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `speechssl evaluate CKPT DATA --subset {subset} "
                                f"--out {decode_dir}` first")
    summary = json.loads(path.read_text(encoding="utf-8-sig"))
    return Score(wer=float(summary["wer"]), cer=float(summary["cer"]), utterances=int(summary["utterances"]))


def group_scores(decode_dir: str | Path, subset: str, groups: Mapping[str, str]) -> dict[str, Score]:
    """Scores per group from ``utterances-<subset>.tsv``; ``groups`` maps an utterance id to its group.

    Utterances whose id is not in ``groups`` are left out of every group.
    """
    path = Path(decode_dir) / f"utterances-{subset}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `speechssl evaluate` on {subset!r} first")
    sums: dict[str, list[int]] = {}
    with path.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            group = groups.get(row["id"])
            if group is None:
                continue
            acc = sums.setdefault(group, [0, 0, 0, 0, 0])
            acc[0] += int(row["word_errors"])
            acc[1] += int(row["reference_words"])
            acc[2] += int(row["char_errors"])
            acc[3] += int(row["reference_chars"])
            acc[4] += 1
    return {g: Score(wer=100.0 * a[0] / max(a[1], 1), cer=100.0 * a[2] / max(a[3], 1), utterances=a[4])
            for g, a in sorted(sums.items())}


def read_groups(path: str | Path) -> dict[str, str]:
    """``utterance-id<TAB>group`` lines -> mapping."""
    groups: dict[str, str] = {}
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{line_no}: expected 'utterance-id<TAB>group', got {line!r}")
        uid, group = line.split("\t", 1)
        groups[uid] = group.strip()
    return groups


def relative_reduction(scratch: float, pretrained: float) -> float | None:
    """How much lower the pretrained WER is, relative to scratch (0.25 = 25 % lower); None if scratch is 0."""
    return None if scratch <= 0 else (scratch - pretrained) / scratch


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats with two decimals, None as an empty cell."""

    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
