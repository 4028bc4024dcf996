"""``speechssl prepare librispeech``: LibriSpeech subsets -> one manifest (+ labels) per subset.

Layout: ``LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with one
``<speaker>-<chapter>.trans.txt`` per chapter holding ``<utterance-id> TEXT`` lines. Each subset becomes a
split named after it (``train-clean-100.tsv``, ``dev-clean.wrd``...), all relative to the LibriSpeech root.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from speechssl.data.prepare.probe import relative_path
from speechssl.data.prepare.report import PrepareReport
from speechssl.data.prepare.writer import CorpusWriter, SourceFile

SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean",
           "test-other")


def find_root(root: str | Path, marker: str) -> Path:
    """``root/marker`` when it exists (an extracted archive's parent), else ``root`` itself."""
    root = Path(root)
    return root / marker if (root / marker).is_dir() else root


def transcribed_flacs(directory: Path, root: Path) -> list[SourceFile]:
    """Every ``*.flac`` under ``directory`` with its text from the ``*.trans.txt`` beside it.

    Files without a transcript line come back with ``text=None`` (the writer skips them as no_transcript
    for labeled corpora); lines naming a missing file are ignored.
    """
    sources: list[SourceFile] = []
    for dirpath, _, filenames in sorted(os.walk(directory)):
        here = Path(dirpath)
        texts: dict[str, str] = {}
        for name in sorted(filenames):
            if name.endswith(".trans.txt"):
                for line in (here / name).read_text(encoding="utf-8-sig").splitlines():
                    if line.strip():
                        uid, _, text = line.strip().partition(" ")
                        texts[uid] = text
        for name in sorted(filenames):
            if name.endswith(".flac"):
                uid = name[: -len(".flac")]
                path = here / name
                sources.append(SourceFile(path=path, relpath=relative_path(path, root), text=texts.get(uid),
                                          speaker=uid.split("-")[0]))
    return sources


def prepare_librispeech(
    root: str | Path,
    out_dir: str | Path,
    *,
    subsets: Sequence[str] = SUBSETS,
    labeled: bool = True,
    jobs: int = 1,
    progress: bool = True,
    echo: bool = True,
) -> PrepareReport:
    """One split per subset found under ``root`` (or ``root/LibriSpeech``)."""
    base = find_root(root, "LibriSpeech").resolve()
    missing = [s for s in subsets if not (base / s).is_dir()]
    if missing:
        raise ValueError(f"LibriSpeech subsets {missing} not found under {base}")
    writer = CorpusWriter(out_dir, base, labeled=labeled, jobs=jobs, progress=progress)
    for subset in subsets:
        sources = transcribed_flacs(base / subset, base)
        if not labeled:
            sources = [SourceFile(path=s.path, relpath=s.relpath, speaker=s.speaker) for s in sources]
        writer.write_split(subset, writer.probe(sources))
    return writer.finish(echo=echo)
