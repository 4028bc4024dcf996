"""Map-style datasets over a manifest: they load one utterance per index and collate a batch.

The batch sampler decides which utterances go together (by length); the dataset only loads and collates, as
in lhotse. Items shorter than ``min_sample_size`` are dropped up front from the manifest's lengths (fairseq's
FileAudioDataset does the same and logs the count), so dataset index ``i`` maps to manifest line
``kept_ids[i]``; batches carry manifest positions as ``ids``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.utils.data

from speechssl.data.audio import SAMPLE_RATE, AudioError, RawFormat, load_audio
from speechssl.data.collate import AudioItem, LabeledBatch, UnlabeledBatch, collate_labeled, collate_unlabeled
from speechssl.data.manifest import Manifest, letters_to_words, read_split
from speechssl.data.tokenizer import LetterTokenizer

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class AudioDatasetConfig:
    """How utterances are loaded and batched. Defaults are fairseq's BASE pretraining values."""

    sample_rate: int = SAMPLE_RATE
    """Rate the model expects; files at other rates are resampled."""
    max_sample_size: int | None = 250000
    """Pretraining: longer utterances are randomly cropped to this. Fine-tuning: longer ones are dropped.
    None = no limit."""
    min_sample_size: int = 32000
    """Utterances shorter than this (manifest length) are dropped and counted."""
    normalize: bool = False
    """Zero-mean unit-variance per utterance (True for LARGE models; must match pretraining)."""
    pad: bool = False
    """Pretraining: pad to the longest with a mask instead of cropping to the shortest."""
    skip_bad_files: bool = False
    """A missing/undecodable file is skipped and counted instead of raising an error naming it."""
    seed: int = 0
    """Seeds the crop offsets together with the epoch and the item id."""
    raw_format: RawFormat | None = None
    """For headerless audio files only."""

    def validate(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"`sample_rate` must be > 0, got {self.sample_rate}")
        if self.max_sample_size is not None and self.max_sample_size <= 0:
            raise ValueError(f"`max_sample_size` must be > 0 or None, got {self.max_sample_size}")
        if self.min_sample_size < 0:
            raise ValueError(f"`min_sample_size` must be >= 0, got {self.min_sample_size}")
        if self.max_sample_size is not None and self.min_sample_size > self.max_sample_size:
            raise ValueError(f"`min_sample_size` ({self.min_sample_size}) must be <= `max_sample_size` "
                             f"({self.max_sample_size})")
        if self.raw_format is not None:
            self.raw_format.validate()


class _ManifestDataset(torch.utils.data.Dataset):
    """Shared loading, filtering and error policy."""

    def __init__(self, manifest: Manifest, config: AudioDatasetConfig, keep: np.ndarray) -> None:
        config.validate()
        self.manifest = manifest
        self.config = config
        self.epoch = 0
        sizes = manifest.sizes
        self.kept_ids = np.flatnonzero(keep).astype(np.int64)
        """``(N,)`` manifest positions of the kept utterances."""
        self.sizes = sizes[self.kept_ids]
        """``(N,)`` manifest lengths of the kept utterances."""
        self.num_dropped_short = int(((sizes < config.min_sample_size)).sum())
        """Utterances dropped for being shorter than ``min_sample_size``."""
        self.num_bad_files = 0
        """Files skipped at load time in this process (``skip_bad_files``)."""

    def __len__(self) -> int:
        return int(self.kept_ids.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Crop offsets depend on the epoch; set before creating the DataLoader iterator."""
        self.epoch = int(epoch)

    def _load(self, index: int) -> np.ndarray | None:
        manifest_id = int(self.kept_ids[index])
        path = self.manifest.audio_path(manifest_id)
        try:
            waveform = load_audio(path, self.config.sample_rate, normalize=self.config.normalize,
                                  raw_format=self.config.raw_format)
            if waveform.shape[0] == 0:
                raise AudioError(path, "no samples")
        except AudioError as exc:
            if not self.config.skip_bad_files:
                raise
            self.num_bad_files += 1
            log.warning("skipping bad audio file (skip_bad_files=true): %s", exc)
            return None
        return waveform


class UnlabeledAudioDataset(_ManifestDataset):
    """Audio only, for pretraining. ``dataset[i]`` -> :class:`AudioItem` (or None for a skipped bad file)."""

    def __init__(self, manifest: Manifest, config: AudioDatasetConfig | None = None) -> None:
        config = config or AudioDatasetConfig()
        super().__init__(manifest, config, manifest.sizes >= config.min_sample_size)
        if self.num_dropped_short:
            log.info("dropped %d of %d utterances shorter than %d samples", self.num_dropped_short,
                     len(manifest), config.min_sample_size)

    @classmethod
    def from_tsv(cls, path: str | Path, config: AudioDatasetConfig | None = None) -> UnlabeledAudioDataset:
        from speechssl.data.manifest import read_manifest

        return cls(read_manifest(path), config)

    @property
    def batch_lengths(self) -> np.ndarray:
        """``(N,)`` lengths the sampler should budget: cropped lengths, as fairseq's ``size()`` returns."""
        if self.config.max_sample_size is None:
            return self.sizes
        return np.minimum(self.sizes, self.config.max_sample_size)

    def __getitem__(self, index: int) -> AudioItem | None:
        waveform = self._load(index)
        if waveform is None:
            return None
        return AudioItem(id=int(self.kept_ids[index]), waveform=waveform)

    def collate(self, items: Sequence[AudioItem | None]) -> UnlabeledBatch:
        """Crop to the shortest (or pad), offsets from ``(seed, epoch, id)``."""
        return collate_unlabeled(items, pad=self.config.pad, max_sample_size=self.config.max_sample_size,
                                 seed=self.config.seed, epoch=self.epoch)


class LabeledAudioDataset(_ManifestDataset):
    """Audio + transcripts, for CTC fine-tuning. ``dataset[i]`` -> :class:`AudioItem` with ``target``/``text``.

    ``labels`` are ``.ltr`` lines (``label_format="ltr"``, fairseq's fine-tuning targets: the trailing ``|``
    is kept) or ``.wrd`` lines (``"wrd"``, encoded with :meth:`LetterTokenizer.encode`). Utterances outside
    ``[min_sample_size, max_sample_size]`` or with an empty transcript are dropped and counted.
    """

    def __init__(
        self,
        manifest: Manifest,
        labels: Sequence[str],
        tokenizer: LetterTokenizer,
        config: AudioDatasetConfig | None = None,
        *,
        label_format: str = "ltr",
        texts: Sequence[str] | None = None,
    ) -> None:
        config = config or AudioDatasetConfig(max_sample_size=None, min_sample_size=0, pad=True)
        if label_format not in ("ltr", "wrd"):
            raise ValueError(f"`label_format` must be 'ltr' or 'wrd', got {label_format!r}")
        if len(labels) != len(manifest):
            raise ValueError(f"{len(labels)} labels for a manifest of {len(manifest)} utterances "
                             f"(root {manifest.root})")
        if texts is not None and len(texts) != len(manifest):
            raise ValueError(f"{len(texts)} texts for a manifest of {len(manifest)} utterances")
        self.tokenizer = tokenizer
        self.label_format = label_format
        sizes = manifest.sizes
        encode = tokenizer.encode_letters if label_format == "ltr" else tokenizer.encode
        self._targets = [np.asarray(encode(label), dtype=np.int64) for label in labels]
        if texts is None:
            texts = [letters_to_words(x) for x in labels] if label_format == "ltr" else list(labels)
        self._texts = list(texts)
        nonempty = np.fromiter((t.shape[0] > 0 for t in self._targets), dtype=bool, count=len(labels))
        keep = (sizes >= config.min_sample_size) & nonempty
        if config.max_sample_size is not None:
            keep &= sizes <= config.max_sample_size
        super().__init__(manifest, config, keep)
        self.num_dropped_long = 0 if config.max_sample_size is None else int((sizes > config.max_sample_size).sum())
        """Utterances dropped for being longer than ``max_sample_size``."""
        self.num_dropped_empty = int((~nonempty).sum())
        """Utterances dropped for an empty transcript."""
        dropped = len(manifest) - len(self)
        if dropped:
            log.info("dropped %d of %d labeled utterances (%d short, %d long, %d empty transcript)", dropped,
                     len(manifest), self.num_dropped_short, self.num_dropped_long, self.num_dropped_empty)

    @classmethod
    def from_split(cls, directory: str | Path, split: str, tokenizer: LetterTokenizer,
                   config: AudioDatasetConfig | None = None, *, label_format: str = "ltr") -> LabeledAudioDataset:
        """Read ``<directory>/<split>.tsv`` and its ``.ltr``/``.wrd`` labels."""
        data = read_split(directory, split, require_labels=True)
        labels = data.letters if label_format == "ltr" else data.words
        if labels is None:
            raise ValueError(f"{Path(directory) / f'{split}.{label_format}'}: label file not found")
        return cls(data.manifest, labels, tokenizer, config, label_format=label_format, texts=data.words)

    @property
    def batch_lengths(self) -> np.ndarray:
        """``(N,)`` lengths (never cropped)."""
        return self.sizes

    def __getitem__(self, index: int) -> AudioItem | None:
        waveform = self._load(index)
        if waveform is None:
            return None
        manifest_id = int(self.kept_ids[index])
        return AudioItem(id=manifest_id, waveform=waveform, target=self._targets[manifest_id],
                         text=self._texts[manifest_id])

    def collate(self, items: Sequence[AudioItem | None]) -> LabeledBatch:
        return collate_labeled(items)
