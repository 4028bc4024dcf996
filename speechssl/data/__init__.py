"""Audio data: reading, manifests, datasets, length-bucketed batching, letter vocabulary, preparation."""

from speechssl.data.audio import (
    AN4_RAW,
    SAMPLE_RATE,
    AudioError,
    AudioInfo,
    RawFormat,
    audio_info,
    load_audio,
    resampled_length,
)
from speechssl.data.collate import AudioItem, LabeledBatch, UnlabeledBatch, collate_labeled, collate_unlabeled
from speechssl.data.datasets import AudioDatasetConfig, LabeledAudioDataset, UnlabeledAudioDataset
from speechssl.data.loader import AudioDataLoader, LoaderConfig, build_dataloader, inference_loader
from speechssl.data.manifest import (
    LabeledSplit,
    Manifest,
    ManifestEntry,
    normalize_transcript,
    read_labels,
    read_letter_dict,
    read_manifest,
    read_split,
    words_to_letters,
    write_labels,
    write_letter_dict,
    write_manifest,
)
from speechssl.data.sampler import BucketBatchSampler
from speechssl.data.tokenizer import LetterTokenizer

__all__ = [
    "AN4_RAW", "SAMPLE_RATE", "AudioDataLoader", "AudioDatasetConfig", "AudioError", "AudioInfo", "AudioItem",
    "BucketBatchSampler", "LabeledAudioDataset", "LabeledBatch", "LabeledSplit", "LetterTokenizer",
    "LoaderConfig", "Manifest", "ManifestEntry", "RawFormat", "UnlabeledAudioDataset", "UnlabeledBatch",
    "audio_info", "build_dataloader", "collate_labeled", "collate_unlabeled", "inference_loader",
    "load_audio",
    "normalize_transcript", "read_labels", "read_letter_dict", "read_manifest", "read_split",
    "resampled_length", "words_to_letters", "write_labels", "write_letter_dict", "write_manifest",
]
