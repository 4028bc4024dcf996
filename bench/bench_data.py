"""Data pipeline throughput: decode + resample + batch, in audio-seconds per second per core.

Writes its own files to a temp dir: speech synthesised with espeak-ng (as ``prepare synthetic`` does) stored
as 16 kHz FLAC, 44.1 kHz MP3 and 44.1 kHz OGG/Vorbis. For each format it runs the pretraining loader path
(UnlabeledAudioDataset -> BucketBatchSampler -> crop-to-shortest collate) in ONE process with one thread, so
the figure is per core; it also times decode alone and resample alone. Best of ``--repeat`` runs.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_data.py [--minutes 10] [--file-seconds 12] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from speechssl.data import (
    SAMPLE_RATE,
    AudioDatasetConfig,
    LoaderConfig,
    UnlabeledAudioDataset,
    build_dataloader,
)
from speechssl.data.prepare.writer import CorpusWriter, SourceFile


def make_speech(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """About ``seconds`` of espeak-ng speech at ``sample_rate`` (float32, mono)."""
    from speechssl.data.prepare.espeak import EspeakSynthesizer
    from speechssl.data.prepare.sentences import SentenceGenerator

    synth, gen, rng = EspeakSynthesizer(), SentenceGenerator(), np.random.default_rng(seed)
    chunks, total = [], 0
    while total < seconds * synth.sample_rate:
        pcm = synth.synthesize(gen.sentence(rng), voice="en-us+m3")
        chunks.append(pcm)
        total += pcm.shape[0]
    x = np.concatenate(chunks).astype(np.float32) / 32768
    x += 0.003 * rng.standard_normal(x.shape[0]).astype(np.float32)  # recordings are never digital silence
    return soxr.resample(x, synth.sample_rate, sample_rate).astype(np.float32)


def write_set(directory: Path, ext: str, sample_rate: int, speech: np.ndarray, n_files: int,
              file_seconds: float) -> Path:
    directory.mkdir(parents=True)
    step = int(file_seconds * sample_rate)
    for i in range(n_files):
        start = (i * step) % max(1, speech.shape[0] - step)
        sf.write(str(directory / f"u{i:04d}.{ext}"), speech[start:start + step], sample_rate)
    writer = CorpusWriter(directory.parent / f"{ext}-manifest", directory, labeled=False, progress=False)
    sources = [SourceFile(path=p, relpath=p.name) for p in sorted(directory.iterdir())]
    writer.write_split("train", writer.probe(sources))
    return directory.parent / f"{ext}-manifest" / "train.tsv"


def time_loader(manifest: Path, max_tokens: int) -> tuple[float, float, int]:
    """(wall seconds, audio seconds in the manifest, batches) for one epoch of the pretraining loader."""
    ds = UnlabeledAudioDataset.from_tsv(manifest, AudioDatasetConfig(min_sample_size=0, seed=0))
    loader = build_dataloader(ds, LoaderConfig(max_tokens=max_tokens, num_workers=0))
    audio_seconds = float(ds.sizes.sum()) / SAMPLE_RATE
    start = time.perf_counter()
    batches = 0
    for batch in loader:
        batches += 1
        assert batch.waveforms.dtype == torch.float32
    return time.perf_counter() - start, audio_seconds, batches


def time_decode_resample(files: list[Path]) -> tuple[float, float]:
    """(decode seconds, resample seconds) over ``files``."""
    decode = resample = 0.0
    for path in files:
        t0 = time.perf_counter()
        data, rate = sf.read(str(path), dtype="float32")
        t1 = time.perf_counter()
        if rate != SAMPLE_RATE:
            soxr.resample(data, rate, SAMPLE_RATE, quality="HQ")
        resample += time.perf_counter() - t1
        decode += t1 - t0
    return decode, resample


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="audio per format")
    parser.add_argument("--file-seconds", type=float, default=12.0, help="length of each file")
    parser.add_argument("--repeat", type=int, default=3, help="best of N epochs")
    parser.add_argument("--max-tokens", type=int, default=1_400_000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    n_files = max(1, int(args.minutes * 60 / args.file_seconds))
    formats = [("flac", SAMPLE_RATE), ("mp3", 44100), ("ogg", 44100)]
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs visible; "
          f"torch threads {torch.get_num_threads()}; libsndfile {sf.__libsndfile_version__}, soxr {soxr.__version__}")
    print(f"{n_files} files x {args.file_seconds:g} s per format; one process, best of {args.repeat}")
    print(f"{'format':<16}{'loader x RT/core':>18}{'decode x RT':>14}{'resample x RT':>16}{'batches':>9}")
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        speech = {rate: make_speech(min(args.minutes * 60, 120) + args.file_seconds, rate) for rate in (SAMPLE_RATE, 44100)}
        for ext, rate in formats:
            manifest = write_set(Path(tmp) / ext, ext, rate, speech[rate], n_files, args.file_seconds)
            files = sorted((Path(tmp) / ext).iterdir())
            best_loader, best_dec, best_res = float("inf"), float("inf"), float("inf")
            for _ in range(args.repeat):
                wall, audio_seconds, batches = time_loader(manifest, args.max_tokens)
                best_loader = min(best_loader, wall)
                dec, res = time_decode_resample(files)
                best_dec, best_res = min(best_dec, dec), min(best_res, res)
            res_rt = f"{audio_seconds / best_res:>16.0f}" if best_res > 1e-4 else f"{'-':>16}"
            print(f"{ext + f' {rate / 1000:g} kHz':<16}{audio_seconds / best_loader:>18.0f}"
                  f"{audio_seconds / best_dec:>14.0f}{res_rt}{batches:>9}")


if __name__ == "__main__":
    main()
