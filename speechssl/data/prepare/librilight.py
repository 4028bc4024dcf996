"""``speechssl prepare librilight``: the Libri-light limited-supervision sets (10 min, 1 h, 10 h).

Layout of ``librispeech_finetuning``: ``1h/{0..5}/{clean,other}/<spk>/<chapter>/*.flac`` (six 10-minute
folds) and ``9h/{clean,other}/...``, transcripts as in LibriSpeech. Splits, as in the wav2vec 2.0 paper:
``train_10min`` = fold ``1h/<fold>`` (fold 0 by default), ``train_1h`` = all of ``1h``, ``train_10h`` =
``1h`` + ``9h``. Validation and test sets come from LibriSpeech's dev/test subsets (``prepare librispeech``).
"""

from __future__ import annotations

from pathlib import Path

from speechssl.data.prepare.librispeech import find_root, transcribed_flacs
from speechssl.data.prepare.report import PrepareReport
from speechssl.data.prepare.writer import CorpusWriter


def prepare_librilight(
    root: str | Path,
    out_dir: str | Path,
    *,
    fold: int = 0,
    jobs: int = 1,
    progress: bool = True,
    echo: bool = True,
) -> PrepareReport:
    """Write ``train_10min``, ``train_1h`` and ``train_10h`` manifests and labels."""
    base = find_root(root, "librispeech_finetuning").resolve()
    one_hour, nine_hours = base / "1h", base / "9h"
    if not one_hour.is_dir():
        raise ValueError(f"{one_hour} not found: expected the librispeech_finetuning layout (1h/, 9h/)")
    folds = sorted((p for p in one_hour.iterdir() if p.is_dir()), key=lambda p: p.name)
    fold_dir = one_hour / str(fold)
    if not fold_dir.is_dir():
        raise ValueError(f"fold {fold} not found under {one_hour} (folds: {[p.name for p in folds]})")
    writer = CorpusWriter(out_dir, base, labeled=True, jobs=jobs, progress=progress)
    # Read every file once, then assemble the nested sets from the kept utterances.
    kept_folds = {p.name: writer.probe(transcribed_flacs(p, base)) for p in folds}
    kept_nine = writer.probe(transcribed_flacs(nine_hours, base)) if nine_hours.is_dir() else []
    ten_minutes = kept_folds[str(fold)]
    one = [u for name in sorted(kept_folds) for u in kept_folds[name]]
    writer.write_split("train_10min", ten_minutes, subset=True)
    writer.write_split("train_1h", one, subset=True)
    writer.write_split("train_10h", one + kept_nine)
    return writer.finish(echo=echo)
