"""``speechssl prepare folder``: any directory of audio -> train/valid manifests (+ labels).

Like fairseq's ``wav2vec_manifest.py`` (recursive scan, random valid split, default 1 % with seed 42) but it
reads every header, counts lengths at 16 kHz whatever the file's rate, and names each file it skips.
Headerless PCM (given a ``RawFormat``) is decoded once to FLAC under ``OUT/audio``, keeping the folder's layout,
and the manifests point there.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from speechssl.data.audio import RAW_EXTENSIONS, RawFormat
from speechssl.data.prepare.probe import AUDIO_EXTENSIONS, relative_path, scan_audio
from speechssl.data.prepare.report import PrepareReport
from speechssl.data.prepare.splits import split_by_percent
from speechssl.data.prepare.transcode import raw_to_flac
from speechssl.data.prepare.writer import CorpusWriter, SourceFile


def read_transcripts(path: str | Path) -> dict[str, str]:
    """TSV lines ``relative/path<TAB>text`` -> mapping (paths as given, ``./`` prefix removed)."""
    path = Path(path)
    mapping: dict[str, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{line_no}: expected 'relative/path<TAB>text', got {line!r}")
        rel, text = line.split("\t", 1)
        rel = rel.strip().removeprefix("./")
        if rel in mapping:
            raise ValueError(f"{path}:{line_no}: {rel!r} has a second transcript")
        mapping[rel] = text.strip()
    return mapping


def prepare_folder(
    audio_dir: str | Path,
    out_dir: str | Path,
    *,
    transcripts: str | Path | None = None,
    valid_percent: float = 0.01,
    seed: int = 42,
    jobs: int = 1,
    extensions: tuple[str, ...] | None = None,
    raw_format: RawFormat | None = None,
    progress: bool = True,
    echo: bool = True,
) -> PrepareReport:
    """Scan ``audio_dir`` and write ``train.tsv``/``valid.tsv`` (``valid.tsv`` only when valid_percent > 0).

    With ``transcripts`` every kept file needs a transcript line (paths as found under ``audio_dir``);
    ``.wrd``/``.ltr`` and ``dict.ltr.txt`` are written beside the manifests. ``extensions`` defaults to
    AUDIO_EXTENSIONS, or to RAW_EXTENSIONS with a ``raw_format``, which reads every scanned file as headerless
    samples of that format and decodes it to ``out_dir/audio/<its path>.flac``.
    """
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise ValueError(f"audio directory {audio_dir} does not exist or is not a directory")
    if not 0.0 <= valid_percent < 1.0:
        raise ValueError(f"`valid_percent` must be in [0, 1), got {valid_percent}")
    if extensions is None:
        extensions = RAW_EXTENSIONS if raw_format is not None else AUDIO_EXTENSIONS
    texts = read_transcripts(transcripts) if transcripts is not None else None
    root = audio_dir.resolve()
    sources = []
    others: Counter = Counter()
    for path in scan_audio(audio_dir, extensions, others=others):
        rel = relative_path(path, audio_dir)
        sources.append(SourceFile(path=path, relpath=rel, text=None if texts is None else texts.get(rel)))
    found = {s.relpath for s in sources}
    if raw_format is not None:
        root = Path(out_dir).resolve() / "audio"
    writer = CorpusWriter(out_dir, root, labeled=texts is not None, jobs=jobs, progress=progress)
    writer.report.not_scanned = dict(others)
    if texts is not None:
        writer.report.unmatched_transcripts = sorted(set(texts) - found)
    if raw_format is None:
        kept = writer.probe(sources)
    else:
        flac = [SourceFile(path=root / f"{s.relpath}.flac", relpath=f"{s.relpath}.flac", text=s.text)
                for s in sources]  # a.raw -> a.raw.flac: a.raw and a.pcm side by side stay apart
        results = raw_to_flac([(s.path, f.path) for s, f in zip(sources, flac)], raw_format, jobs=jobs,
                              progress=progress, desc="decode raw")
        decoded, samples = [], []
        for src, dst, result in zip(sources, flac, results):
            if result.error is not None:
                writer.skip(src.path, "unreadable", result.error)
            else:
                decoded.append(dst)
                samples.append(result.num_samples)
        kept = writer.probe(decoded, known_samples=samples)
    train, valid = split_by_percent(kept, valid_percent, seed)
    writer.write_split("train", train)
    if valid_percent > 0:
        writer.write_split("valid", valid)
    return writer.finish(echo=echo)
