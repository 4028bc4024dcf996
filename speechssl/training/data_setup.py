"""Datasets and loaders for the training apps, built from a `DataSection`."""

from __future__ import annotations

from pathlib import Path

import torch

from speechssl.data import (
    AudioDatasetConfig,
    LabeledAudioDataset,
    LetterTokenizer,
    LoaderConfig,
    UnlabeledAudioDataset,
    build_dataloader,
    read_letter_dict,
)
from speechssl.data.loader import AudioDataLoader
from speechssl.models.config import FrameGeometry
from speechssl.training.config import DataSection
from speechssl.training.distributed import DistInfo

NATIVE_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def tokenizer_from_data(data: DataSection) -> LetterTokenizer:
    """Native layout (blank = <pad> = 0, as transformers' CTC vocabularies) over `dict.<labels>.txt`."""
    path = Path(data.dir) / f"dict.{data.labels}.txt"
    if not path.is_file():
        raise ValueError(f"missing letter dictionary {path} (data.dir / data.labels)")
    symbols = list(NATIVE_SPECIALS)
    symbols += [s for s, _ in read_letter_dict(path) if s not in symbols]
    if "|" not in symbols:
        symbols.append("|")
    return LetterTokenizer(symbols)


def _dataset_config(data: DataSection, *, seed: int, train: bool, labeled: bool,
                    geometry: FrameGeometry) -> AudioDatasetConfig:
    if labeled:
        # Fine-tuning never crops (targets cover the whole utterance); long ones are dropped and counted.
        return AudioDatasetConfig(max_sample_size=data.max_sample_size, min_sample_size=data.min_sample_size,
                                  normalize=data.normalize, pad=True, skip_bad_files=data.skip_bad_files,
                                  seed=seed)
    return AudioDatasetConfig(max_sample_size=data.max_sample_size,
                              # validation keeps every utterance that gives the model a frame
                              min_sample_size=(data.min_sample_size if train
                                               else min(data.min_sample_size, geometry.receptive_field)),
                              normalize=data.normalize, pad=not data.crop_to_shortest,
                              skip_bad_files=data.skip_bad_files, seed=seed)


def dropped_counts(dataset: UnlabeledAudioDataset | LabeledAudioDataset, cfg: AudioDatasetConfig) -> dict[str, int]:
    """Why utterances of the manifest were left out of `dataset`, and how many for each reason."""
    rate = cfg.sample_rate
    counts = {f"shorter than {cfg.min_sample_size} samples ({cfg.min_sample_size / rate:g} s, data.min_sample_size)":
              dataset.num_dropped_short}
    if isinstance(dataset, LabeledAudioDataset):
        counts[f"longer than {cfg.max_sample_size} samples ({(cfg.max_sample_size or 0) / rate:g} s, "
               "data.max_sample_size)"] = dataset.num_dropped_long
        counts["with an empty transcript"] = dataset.num_dropped_empty
    return {why: n for why, n in counts.items() if n}


def build_loader(data: DataSection, subset: str, *, seed: int, dist: DistInfo, train: bool, geometry: FrameGeometry,
                 tokenizer: LetterTokenizer | None = None, device: torch.device | str = "cpu") -> AudioDataLoader:
    """Loader over `<data.dir>/<subset>.tsv`, sharded over ranks; labeled when a tokenizer is given. `geometry`
    is the model's (its config's): no utterance shorter than its receptive field reaches it. On a CUDA `device`
    batches come in pinned memory, so that `batch.to(device, non_blocking=True)` copies them asynchronously;
    with data.num_workers > 0 the workers persist across epochs."""
    if data.max_tokens < geometry.receptive_field:
        raise ValueError(f"data.max_tokens={data.max_tokens} is smaller than the model's "
                         f"{geometry.receptive_field}-sample receptive field")
    labeled = tokenizer is not None
    cfg = _dataset_config(data, seed=seed, train=train, labeled=labeled, geometry=geometry)
    if labeled:
        dataset = LabeledAudioDataset.from_split(data.dir, subset, tokenizer, cfg, label_format=data.labels)
    else:
        dataset = UnlabeledAudioDataset.from_tsv(Path(data.dir) / f"{subset}.tsv", cfg)
    manifest_path = Path(data.dir) / f"{subset}.tsv"
    if len(dataset.manifest) == 0:
        raise ValueError(f"{manifest_path}: the manifest lists no utterances (only its root line)")
    if len(dataset) == 0:
        raise ValueError(f"{manifest_path}: no utterance left after length filtering "
                         f"(min_sample_size={cfg.min_sample_size}, max_sample_size={cfg.max_sample_size})")
    dropped = dropped_counts(dataset, cfg)
    if dropped and dist.is_main:
        print(f"warning: {manifest_path}: left out {len(dataset.manifest) - len(dataset)} of {len(dataset.manifest)} utterances: "
              + ", ".join(f"{n} {why}" for why, n in dropped.items()), flush=True)
    too_long = dataset.batch_lengths > data.max_tokens
    if too_long.any():
        raise ValueError(f"data.max_tokens={data.max_tokens} is smaller than {int(too_long.sum())} utterance(s) of "
                         f"{Path(data.dir) / f'{subset}.tsv'} (the longest: {int(dataset.batch_lengths.max())} "
                         "samples): raise data.max_tokens, or lower data.max_sample_size")
    loader_cfg = LoaderConfig(max_tokens=data.max_tokens, max_batch_size=data.max_batch_size, shuffle=train,
                              seed=seed, num_workers=data.num_workers,
                              required_batch_size_multiple=data.required_batch_size_multiple,
                              pin_memory=torch.device(device).type == "cuda")
    return build_dataloader(dataset, loader_cfg, num_replicas=dist.world_size if train else 1,
                            rank=dist.rank if train else 0)
