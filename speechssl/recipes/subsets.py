"""Labelled subsets for recipes: seeded duration budgets, held-out splits and merged manifests.

A subset is written as an ordinary split (``<name>.tsv`` + the ``.wrd``/``.ltr`` lines of the same
utterances) so every command reads it like a prepared split. Manifests keep their absolute root on line 1,
which is why a split can be written into another directory than the one it came from.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from speechssl.data.audio import SAMPLE_RATE
from speechssl.data.manifest import (
    LabeledSplit,
    Manifest,
    ManifestEntry,
    read_split,
    write_labels,
    write_manifest,
)
from speechssl.data.prepare.splits import duration_subset


@dataclass(frozen=True, kw_only=True)
class SplitInfo:
    """What a written split holds."""

    name: str
    """Split name (``train_10min``...)."""
    utterances: int
    """Number of utterances."""
    seconds: float
    """Audio duration at 16 kHz."""

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0


def budget_name(minutes: float) -> str:
    """``10`` -> ``10min``, ``60`` -> ``1h``, ``600`` -> ``10h`` (Libri-light's names), ``1.5`` -> ``1.5min``."""
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes / 60:g}h"
    return f"{minutes:g}min"


def split_seconds(split: LabeledSplit) -> float:
    return split.manifest.total_samples / SAMPLE_RATE


def hold_out(manifest: Manifest, seconds: float, seed: int) -> tuple[list[int], list[int]]:
    """``(rest, held)`` indices: a seeded ``seconds`` of audio held out (e.g. a test set) and the rest."""
    held = duration_subset(manifest.sizes, seconds, seed)
    chosen = set(held)
    return [i for i in range(len(manifest)) if i not in chosen], held


def select(split: LabeledSplit, indices: Sequence[int]) -> LabeledSplit:
    """The utterances ``indices`` of ``split`` (labels kept aligned)."""
    entries = [split.manifest.entries[i] for i in indices]

    def pick(lines: list[str] | None) -> list[str] | None:
        return None if lines is None else [lines[i] for i in indices]

    return LabeledSplit(manifest=Manifest(root=split.manifest.root, entries=entries),
                        words=pick(split.words), letters=pick(split.letters))


def write_split(out_dir: str | Path, name: str, split: LabeledSplit) -> SplitInfo:
    """Write ``<name>.tsv`` and whichever of ``.wrd``/``.ltr`` the split has into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(out_dir / f"{name}.tsv", split.manifest)
    if split.words is not None:
        write_labels(out_dir / f"{name}.wrd", split.words)
    if split.letters is not None:
        write_labels(out_dir / f"{name}.ltr", split.letters)
    return SplitInfo(name=name, utterances=len(split.manifest), seconds=split_seconds(split))


def copy_split(src_dir: str | Path, name: str, out_dir: str | Path, new_name: str | None = None) -> SplitInfo:
    """Copy split ``name`` (manifest + labels) from ``src_dir`` to ``out_dir`` as ``new_name``."""
    return write_split(out_dir, new_name or name, read_split(src_dir, name))


def copy_dictionaries(src_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Copy the ``dict.*.txt`` files (the fine-tuning vocabulary) from ``src_dir`` to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(Path(src_dir).glob("dict.*.txt")):
        shutil.copyfile(path, out_dir / path.name)
        copied.append(out_dir / path.name)
    return copied


def concat_splits(parts: Sequence[tuple[str | Path, str]], out_dir: str | Path, name: str) -> SplitInfo:
    """One split over several ``(directory, split)`` parts, e.g. two corpora for pretraining.

    The root is the deepest directory common to every part's root (entry paths are re-rooted under it);
    ``.wrd``/``.ltr`` labels are kept when every part has them.
    """
    if not parts:
        raise ValueError("concat_splits needs at least one (directory, split) part")
    splits = [read_split(d, s) for d, s in parts]
    root = Path(os.path.commonpath([str(Path(s.manifest.root).resolve()) for s in splits]))
    entries: list[ManifestEntry] = []
    for s in splits:
        prefix = Path(s.manifest.root).resolve().relative_to(root)
        entries += [ManifestEntry(path=(prefix / e.path).as_posix(), num_samples=e.num_samples)
                    for e in s.manifest.entries]

    def joined(kind: str) -> list[str] | None:
        lines = [getattr(s, kind) for s in splits]
        return None if any(x is None for x in lines) else [line for x in lines for line in x]

    merged = LabeledSplit(manifest=Manifest(root=root, entries=entries), words=joined("words"),
                          letters=joined("letters"))
    return write_split(out_dir, name, merged)
