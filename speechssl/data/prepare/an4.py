"""``speechssl prepare an4``: the CMU AN4 census corpus as distributed (an4_raw.bigendian).

Input layout: ``etc/an4_{train,test}.fileids`` (``an4_clstk/fash/an251-fash-b``),
``etc/an4_{train,test}.transcription`` (``<s> YES </s> (an251-fash-b)`` for train,
``RUBOUT G M E F THREE NINE (an406-fcaw-b)`` for test), ``wav/<fileid>.raw`` headerless big-endian 16-bit
PCM at 16 kHz. The raw files are decoded once to 16 kHz FLAC under ``OUT/audio`` (lossless, a third of the
size) so every loader reads ordinary files; splits: ``train`` / ``valid`` (a seeded share of the training
utterances), ``test`` (its own 10 speakers) and ``train_10min`` (a seeded 10-minute subset of ``train``).
"""

from __future__ import annotations

import re
from pathlib import Path

from speechssl.data.audio import AN4_RAW
from speechssl.data.prepare.report import PrepareReport
from speechssl.data.prepare.splits import split_by_percent
from speechssl.data.prepare.transcode import raw_to_flac
from speechssl.data.prepare.writer import CorpusWriter, SourceFile

_LINE = re.compile(r"^(?P<text>.*)\((?P<uid>[^()]+)\)\s*$")
_MARKERS = {"<s>", "</s>", "<sil>"}


def parse_transcription(path: str | Path) -> dict[str, str]:
    """``<s> YES </s> (an251-fash-b)`` lines -> ``{"an251-fash-b": "YES"}``."""
    path = Path(path)
    out: dict[str, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if m is None:
            raise ValueError(f"{path}:{line_no}: expected 'WORDS (utterance-id)', got {line!r}")
        words = [w for w in m.group("text").split() if w.lower() not in _MARKERS]
        out[m.group("uid").strip()] = " ".join(words)
    return out


def parse_fileids(path: str | Path) -> list[str]:
    """``an4_clstk/fash/an251-fash-b`` lines (paths under ``wav/`` without ``.raw``)."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def prepare_an4(
    root: str | Path,
    out_dir: str | Path,
    *,
    valid_percent: float = 0.05,
    seed: int = 42,
    jobs: int = 1,
    subset_minutes: tuple[float, ...] = (10.0,),
    progress: bool = True,
    echo: bool = True,
) -> PrepareReport:
    """Decode AN4 to FLAC under ``out_dir/audio`` and write train/valid/test/train_10min manifests."""
    root, out_dir = Path(root), Path(out_dir)
    etc = root / "etc"
    if not (etc / "an4_train.fileids").is_file():
        raise ValueError(f"{root} does not look like AN4: {etc / 'an4_train.fileids'} not found")
    audio_root = out_dir / "audio"
    audio_root.mkdir(parents=True, exist_ok=True)
    writer = CorpusWriter(out_dir, audio_root, labeled=True, jobs=jobs, progress=progress)
    kept_by_set = {}
    for name in ("train", "test"):
        fileids = parse_fileids(etc / f"an4_{name}.fileids")
        texts = parse_transcription(etc / f"an4_{name}.transcription")
        jobs_list, sources = [], []
        for fid in fileids:
            uid = fid.rsplit("/", 1)[-1]
            parts = fid.split("/")
            speaker = parts[-2] if len(parts) >= 2 else None
            rel = f"{name}/{speaker}/{uid}.flac" if speaker else f"{name}/{uid}.flac"
            jobs_list.append((str(root / "wav" / f"{fid}.raw"), str(audio_root / rel)))
            sources.append(SourceFile(path=audio_root / rel, relpath=rel, text=texts.get(uid), speaker=speaker))
        results = raw_to_flac(jobs_list, AN4_RAW, jobs=jobs, progress=progress, desc=f"an4 {name}")
        good_sources, good_samples = [], []
        for (src_raw, _), src, result in zip(jobs_list, sources, results):
            if result.error is not None:
                writer.skip(src_raw, "unreadable", result.error)
            else:
                good_sources.append(src)
                good_samples.append(result.num_samples)
        kept_by_set[name] = writer.probe(good_sources, known_samples=good_samples)
    train, valid = split_by_percent(kept_by_set["train"], valid_percent, seed)
    writer.write_split("train", train)
    writer.write_split("valid", valid)
    writer.write_split("test", kept_by_set["test"])
    for minutes in subset_minutes:
        writer.write_duration_subset(f"train_{minutes:g}min", train, minutes * 60, seed)
    writer.write_speakers(kept_by_set["train"] + kept_by_set["test"])
    return writer.finish(echo=echo)
