"""Evaluating a CTC model on a prepared subset: batched emissions, decoding, WER/CER.

The subset is ``<data_dir>/<subset>.tsv`` with ``.wrd`` (or ``.ltr``) labels beside it, read by the data
pipeline's ``LabeledAudioDataset``. Batches come from its ``BucketBatchSampler`` without shuffling (ascending
length, so little padding) under a padded-samples budget; the model sees a padding mask. Emissions are kept
(``(T_i, V)`` per utterance) so that several decoders or a grid search can reuse them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from speechssl.decoding.ctc import CTCDecoder, Hypothesis, Tokenizer
from speechssl.decoding.inference import EmissionModel
from speechssl.decoding.wer import CorpusScore, score


@dataclass(kw_only=True)
class EvaluateConfig:
    """What to evaluate and how to batch it."""

    subset: str = "test"
    """Manifest name inside the data directory (``<subset>.tsv``)."""
    batch_seconds: float = 200.0
    """Padded audio per batch (seconds); a longer utterance gets a batch of its own."""
    normalize: bool = False
    """Zero-mean unit-variance waveforms (must match the model's training; read from its config)."""
    sample_rate: int = 16000
    """Rate the model expects."""
    num_workers: int = 0
    """DataLoader worker processes for audio loading."""
    progress: bool = True
    """Show tqdm progress bars."""
    allow_oov: bool = False
    """Score references holding letters the model's vocabulary lacks (each counts as an error) instead of
    refusing: such a model was fine-tuned on other letters than the data's."""

    def validate(self) -> None:
        if not self.subset:
            raise ValueError("`subset` must be a manifest name, got ''")
        if not self.batch_seconds > 0:
            raise ValueError(f"`batch_seconds` must be > 0, got {self.batch_seconds}")
        if self.num_workers < 0:
            raise ValueError(f"`num_workers` must be >= 0, got {self.num_workers}")


@dataclass(kw_only=True)
class SubsetEmissions:
    """Model outputs for every utterance of a subset, in manifest order."""

    ids: list[str]
    """Utterance ids (manifest relative paths)."""
    references: list[str]
    """Word transcripts."""
    emissions: list[torch.Tensor]
    """``(T_i, V)`` log-probs per utterance."""
    audio_seconds: float
    """Total audio duration."""
    model_seconds: float
    """Wall time of loading audio and running the model."""
    num_dropped: int
    """Manifest lines left out by the dataset (empty transcripts)."""


@dataclass(kw_only=True)
class EvaluationResult:
    """Decoding output and scores of a subset."""

    hypotheses: list[Hypothesis]
    """One per utterance, in manifest order."""
    score: CorpusScore
    """WER/CER (jiwer) with per-utterance errors."""
    decode_seconds: float
    """Wall time of the decoder alone."""


def unknown_symbols(tokenizer: Tokenizer, labels: list[str], *, label_format: str) -> Counter:
    """Symbols of ``.wrd`` (normalised as the tokenizer encodes them) or ``.ltr`` lines outside the vocabulary."""
    known = set(tokenizer.symbols)
    counts: Counter = Counter()
    for line in labels:
        if label_format == "ltr":
            tokens = line.split()
        else:
            normalize = getattr(tokenizer, "normalize", None)
            tokens = [c for c in (normalize(line) if normalize else line) if not c.isspace()]
        counts.update(t for t in tokens if t not in known)
    return counts


def check_vocabulary(tokenizer: Tokenizer, labels: list[str], *, label_format: str, source: str | Path) -> None:
    """Raise ValueError naming the letters of ``labels`` that the model's vocabulary lacks (before any compute):
    the model can never output them, so the WER would measure the vocabulary, not the model."""
    unknown = unknown_symbols(tokenizer, labels, label_format=label_format)
    if unknown:
        listed = ", ".join(f"{s!r} x{n}" for s, n in unknown.most_common(10))
        raise ValueError(f"{source}: {len(unknown)} symbol(s) outside the model's vocabulary of {len(tokenizer)} "
                         f"({listed}): the checkpoint was fine-tuned on other letters than this data's; evaluate "
                         "a model fine-tuned on this data, or allow_oov (--allow-oov) to count them as errors")


def check_subset_vocabulary(tokenizer: Tokenizer, data_dir: str | Path, subset: str) -> None:
    """:func:`check_vocabulary` on ``<data_dir>/<subset>.wrd`` (or ``.ltr``, when there is no ``.wrd``)."""
    from speechssl.data.manifest import read_split

    split = read_split(data_dir, subset, require_labels=True)
    label_format = "wrd" if split.words is not None else "ltr"
    check_vocabulary(tokenizer, split.words if label_format == "wrd" else split.letters,  # type: ignore[arg-type]
                     label_format=label_format, source=Path(data_dir) / f"{subset}.{label_format}")


def compute_emissions(model: EmissionModel, data_dir: str | Path, tokenizer: Tokenizer,
                      config: EvaluateConfig) -> SubsetEmissions:
    """Run ``model`` over ``<data_dir>/<subset>.tsv`` in length-sorted padded batches."""
    from speechssl.data.datasets import AudioDatasetConfig, LabeledAudioDataset
    from speechssl.data.manifest import read_split
    from speechssl.data.sampler import BucketBatchSampler

    config.validate()
    data_dir = Path(data_dir)
    manifest_path = data_dir / f"{config.subset}.tsv"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest_path} (check DATA_DIR and --subset)")
    split = read_split(data_dir, config.subset, require_labels=True)
    label_format = "wrd" if split.words is not None else "ltr"
    if not config.allow_oov:
        check_subset_vocabulary(tokenizer, data_dir, config.subset)
    dataset = LabeledAudioDataset.from_split(
        data_dir, config.subset, tokenizer,  # type: ignore[arg-type]
        AudioDatasetConfig(sample_rate=config.sample_rate, max_sample_size=None, min_sample_size=0, pad=True,
                           normalize=config.normalize),
        label_format=label_format,
    )
    lengths = dataset.batch_lengths
    budget = max(int(config.batch_seconds * config.sample_rate), int(lengths.max()) if len(lengths) else 1)
    sampler = BucketBatchSampler(lengths, max_tokens=budget, shuffle=False)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate,
                                         num_workers=config.num_workers)
    by_id: dict[int, torch.Tensor] = {}
    texts: dict[int, str] = {}
    start = time.perf_counter()
    for batch in tqdm(loader, desc=f"emissions {config.subset}", unit="batch", disable=not config.progress):
        out = model(batch.waveforms, batch.padding_mask)  # log_probs (B, T, V)
        for row, manifest_id in enumerate(batch.ids.tolist()):
            by_id[manifest_id] = out.log_probs[row, :int(out.lengths[row])].clone()  # (T_i, V)
            texts[manifest_id] = batch.texts[row]
    model_seconds = time.perf_counter() - start
    order = sorted(by_id)
    manifest = dataset.manifest
    return SubsetEmissions(
        ids=[manifest.entries[i].path for i in order],
        references=[" ".join(texts[i].split()) for i in order],
        emissions=[by_id[i] for i in order],
        audio_seconds=float(sum(manifest.entries[i].num_samples for i in order)) / config.sample_rate,
        model_seconds=model_seconds,
        num_dropped=len(manifest) - len(order),
    )


def decode_all(decoder: CTCDecoder, emissions: list[torch.Tensor], *, progress: bool = False,
               desc: str = "decode") -> list[Hypothesis]:
    """Decode each ``(T_i, V)`` emission on its own (beam search is per utterance anyway)."""
    return [decoder.decode(e.unsqueeze(0))[0]  # (T_i, V) -> (1, T_i, V)
            for e in tqdm(emissions, desc=desc, unit="utt", disable=not progress)]


def evaluate(decoder: CTCDecoder, data: SubsetEmissions, *, progress: bool = False) -> EvaluationResult:
    """Decode a subset's emissions and score them with jiwer."""
    start = time.perf_counter()
    hypotheses = decode_all(decoder, data.emissions, progress=progress)
    decode_seconds = time.perf_counter() - start
    result = score(data.ids, data.references, [h.text for h in hypotheses])
    return EvaluationResult(hypotheses=hypotheses, score=result, decode_seconds=decode_seconds)
