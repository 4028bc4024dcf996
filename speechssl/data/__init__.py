"""Audio data: reading, manifests, datasets, length-bucketed batching, letter vocabulary, preparation."""

import importlib

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

# Batching, datasets and loaders need torch; they load on first use, so that reading audio and
# vocabularies (the onnxruntime transcriber, speechssl.deploy.runtime) works where torch is not installed.
_TORCH_EXPORTS = {
    "AudioItem": "collate", "LabeledBatch": "collate", "UnlabeledBatch": "collate",
    "collate_labeled": "collate", "collate_unlabeled": "collate",
    "AudioDatasetConfig": "datasets", "LabeledAudioDataset": "datasets", "UnlabeledAudioDataset": "datasets",
    "AudioDataLoader": "loader", "LoaderConfig": "loader", "build_dataloader": "loader",
    "inference_loader": "loader",
}

__all__ = [
    "AN4_RAW", "SAMPLE_RATE", "AudioDataLoader", "AudioDatasetConfig", "AudioError", "AudioInfo", "AudioItem",
    "BucketBatchSampler", "LabeledAudioDataset", "LabeledBatch", "LabeledSplit", "LetterTokenizer",
    "LoaderConfig", "Manifest", "ManifestEntry", "RawFormat", "UnlabeledAudioDataset", "UnlabeledBatch",
    "audio_info", "build_dataloader", "collate_labeled", "collate_unlabeled", "inference_loader",
    "load_audio",
    "normalize_transcript", "read_labels", "read_letter_dict", "read_manifest", "read_split",
    "resampled_length", "words_to_letters", "write_labels", "write_letter_dict", "write_manifest",
]


def __getattr__(name: str):
    module = _TORCH_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
