"""``speechssl prepare commonvoice``: a Mozilla Common Voice language folder.

Layout: ``validated.tsv``, ``train.tsv``, ``dev.tsv``, ``test.tsv`` (tab-separated with a header naming the
``client_id``, ``path`` and ``sentence`` columns) and ``clips/*.mp3``. Each requested table becomes a split
of the same name; manifest paths are relative to ``clips/``; the speaker is the ``client_id``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from speechssl.data.prepare.report import PrepareReport
from speechssl.data.prepare.writer import CorpusWriter, SourceFile

TABLES = ("train", "dev", "test")


def read_table(path: Path, clips: Path) -> list[SourceFile]:
    """Rows of a Common Voice TSV -> sources (text from the ``sentence`` column)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        fields = reader.fieldnames or []
        for column in ("path", "sentence"):
            if column not in fields:
                raise ValueError(f"{path}: column {column!r} missing (columns: {fields})")
        sources = []
        for row in reader:
            rel = (row.get("path") or "").strip()
            if not rel:
                continue
            sources.append(SourceFile(path=clips / rel, relpath=rel, text=row.get("sentence") or "",
                                      speaker=row.get("client_id") or None))
    return sources


def prepare_commonvoice(
    root: str | Path,
    out_dir: str | Path,
    *,
    tables: Sequence[str] = TABLES,
    jobs: int = 1,
    progress: bool = True,
    echo: bool = True,
) -> PrepareReport:
    """One split per table (``train``, ``dev``, ``test``, ``validated``, ...)."""
    root = Path(root)
    clips = root / "clips"
    if not clips.is_dir():
        raise ValueError(f"{clips} not found: expected a Common Voice language folder")
    writer = CorpusWriter(out_dir, clips, labeled=True, jobs=jobs, progress=progress)
    for table in tables:
        path = root / f"{table}.tsv"
        if not path.is_file():
            raise ValueError(f"Common Voice table {path} not found")
        writer.write_split(table, writer.probe(read_table(path, clips.resolve())))
    return writer.finish(echo=echo)
