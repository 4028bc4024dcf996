"""Evaluating a CTC model on a prepared subset: batched emissions, decoding, WER/CER.

The subset is ``<data_dir>/<subset>.tsv`` with ``.wrd`` (or ``.ltr``) labels beside it, read once and loaded
by the data pipeline's ``LabeledAudioDataset``. Batches come from ``inference_loader`` (ascending length, so
little padding, under a padded-samples budget); the model sees a padding mask. Emissions are kept
(``(T_i, V)`` per utterance) so that several decoders or a grid search can reuse them.

This is the one measurement of a CTC model: `speechssl evaluate` (`evaluate_checkpoint`), fine-tuning's
validation (`collect_emissions` + `evaluate` with the greedy decoder), the recipes and the benchmarks all
decode with `speechssl.decoding.ctc` and score with `speechssl.decoding.wer.score` through it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from speechssl.data.audio import SAMPLE_RATE
from speechssl.data.collate import LabeledBatch
from speechssl.data.datasets import AudioDatasetConfig, LabeledAudioDataset
from speechssl.data.loader import inference_loader
from speechssl.data.manifest import LabeledSplit, Manifest, read_split
from speechssl.decoding.ctc import CTCDecoder, Hypothesis, Tokenizer, frame_shift_seconds
from speechssl.decoding.factory import DecoderConfig, build_decoder
from speechssl.decoding.grid import DEFAULT_LM_WEIGHTS, DEFAULT_WORD_SCORES, GridSearchResult, grid_search
from speechssl.decoding.inference import EmissionModel, Emissions, LoadedCTC, load_ctc
from speechssl.decoding.report import ReportFiles, write_report
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
    sample_rate: int = SAMPLE_RATE
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


def check_split_vocabulary(tokenizer: Tokenizer, split: LabeledSplit, source: str | Path) -> None:
    """:func:`check_vocabulary` on a split's ``.wrd`` lines (or ``.ltr``, when it has no ``.wrd``); ``source`` is
    the split's path without the extension."""
    label_format = "wrd" if split.words is not None else "ltr"
    check_vocabulary(tokenizer, split.words if label_format == "wrd" else split.letters,  # type: ignore[arg-type]
                     label_format=label_format, source=f"{source}.{label_format}")


def check_subset_vocabulary(tokenizer: Tokenizer, data_dir: str | Path, subset: str) -> None:
    """:func:`check_split_vocabulary` on ``<data_dir>/<subset>``."""
    check_split_vocabulary(tokenizer, read_split(data_dir, subset, require_labels=True), Path(data_dir) / subset)


def collect_emissions(model: EmissionModel, loader: Iterable[LabeledBatch], manifest: Manifest, *,
                      sample_rate: int = SAMPLE_RATE, progress: bool = False, desc: str = "emissions",
                      on_batch: Callable[[LabeledBatch, Emissions], None] | None = None) -> SubsetEmissions:
    """Run ``model`` over every batch of ``loader`` (a labeled split's) and keep each utterance's emissions,
    in manifest order. ``on_batch(batch, emissions)`` sees every batch as it is computed (fine-tuning's
    validation sums its CTC loss there)."""
    by_id: dict[int, torch.Tensor] = {}
    texts: dict[int, str] = {}
    start = time.perf_counter()
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        out = model(batch.waveforms, batch.padding_mask)  # log_probs (B, T, V)
        if on_batch is not None:
            on_batch(batch, out)
        for row, manifest_id in enumerate(batch.ids.tolist()):
            by_id[manifest_id] = out.log_probs[row, :int(out.lengths[row])].clone()  # (T_i, V)
            texts[manifest_id] = batch.texts[row]
    model_seconds = time.perf_counter() - start
    order = sorted(by_id)
    return SubsetEmissions(
        ids=[manifest.entries[i].path for i in order],
        references=[" ".join(texts[i].split()) for i in order],
        emissions=[by_id[i] for i in order],
        audio_seconds=float(sum(manifest.entries[i].num_samples for i in order)) / sample_rate,
        model_seconds=model_seconds,
        num_dropped=len(manifest) - len(order),
    )


def compute_emissions(model: EmissionModel, data_dir: str | Path, tokenizer: Tokenizer,
                      config: EvaluateConfig) -> SubsetEmissions:
    """Run ``model`` over ``<data_dir>/<subset>.tsv`` in length-sorted padded batches."""
    config.validate()
    data_dir = Path(data_dir)
    manifest_path = data_dir / f"{config.subset}.tsv"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest_path} (check DATA_DIR and --subset)")
    split = read_split(data_dir, config.subset, require_labels=True)
    if not config.allow_oov:
        check_split_vocabulary(tokenizer, split, data_dir / config.subset)
    return split_emissions(model, split, tokenizer, config)


def split_emissions(model: EmissionModel, split: LabeledSplit, tokenizer: Tokenizer,
                    config: EvaluateConfig) -> SubsetEmissions:
    """:func:`compute_emissions` of a split already read (and checked against the vocabulary)."""
    config.validate()
    label_format = "wrd" if split.words is not None else "ltr"
    dataset = LabeledAudioDataset(
        split.manifest, split.words if label_format == "wrd" else split.letters,  # type: ignore[arg-type]
        tokenizer,  # type: ignore[arg-type]
        AudioDatasetConfig(sample_rate=config.sample_rate, max_sample_size=None, min_sample_size=0, pad=True,
                           normalize=config.normalize),
        label_format=label_format, texts=split.words,
    )
    loader = inference_loader(dataset, max_tokens=int(config.batch_seconds * config.sample_rate),
                              num_workers=config.num_workers)
    return collect_emissions(model, loader, split.manifest, sample_rate=config.sample_rate,
                             progress=config.progress, desc=f"emissions {config.subset}")


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


# ---------------------------------------------------------------------------------------------- a checkpoint
@dataclass(kw_only=True)
class CheckpointEvaluationConfig:
    """Everything `speechssl evaluate` does, as a library call: which model, which subsets, which decoder,
    where the reports go (`evaluate_checkpoint`)."""

    checkpoint: Path
    """CTC model: speechssl .pt, Hugging Face directory or fairseq .pt."""
    data_dir: Path
    """Directory with ``<subset>.tsv`` and ``<subset>.wrd``/``.ltr``."""
    subsets: tuple[str, ...] = ("test",)
    """Subsets decoded in turn with one model load."""
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    """The decoder (greedy by default); with ``grid``, its LM weight and word score end at the best setting."""
    out_dir: Path | None = None
    """Results directory (default: ``decode`` beside the checkpoint)."""
    greedy_out: Path | None = None
    """With an LM decoder: also decode greedily from the same emissions and write those reports here."""
    grid: bool = False
    """Tune the LM weight and word score on the first subset, then decode every subset with the best."""
    grid_lm_weights: tuple[float, ...] = DEFAULT_LM_WEIGHTS
    """LM weights the grid tries."""
    grid_word_scores: tuple[float, ...] = DEFAULT_WORD_SCORES
    """Word scores the grid tries."""
    grid_beam: int | None = None
    """Beam size of the grid's decodings (None: the decoder's); every subset is then decoded at the decoder's
    beam (the paper tunes its 4-gram at 500 and decodes at 1500)."""
    batch_seconds: float = 200.0
    """Padded audio seconds per batch."""
    device: str | None = None
    """torch device (default: CUDA when present, else the CPU)."""
    precision: str = "fp32"
    """Model arithmetic: fp32 (the published numbers), bf16, fp16 (CUDA) or auto (`ModelEmitter`)."""
    num_workers: int = 0
    """Audio loading processes."""
    allow_oov: bool = False
    """Score references holding letters outside the model's vocabulary instead of refusing them."""
    vocab: Path | None = None
    """A vocabulary file overriding the checkpoint's (`LetterTokenizer.from_file`)."""
    progress: bool = False
    """Progress bars on stderr."""

    def validate(self) -> None:
        """Every input exists and the options fit together, before the model is loaded."""
        if not self.subsets:
            raise ValueError("--subset: expected a manifest name or comma-separated names, got none")
        if not self.checkpoint.exists():
            raise FileNotFoundError(f"CKPT: checkpoint not found: {self.checkpoint}")
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"DATA_DIR: directory not found: {self.data_dir}")
        for subset in self.subsets:
            manifest = self.data_dir / f"{subset}.tsv"
            if not manifest.is_file():
                raise FileNotFoundError(f"--subset: manifest not found: {manifest}")
            if not any((self.data_dir / f"{subset}.{ext}").is_file() for ext in ("wrd", "ltr")):
                raise FileNotFoundError(f"--subset: no {subset}.wrd or {subset}.ltr in {self.data_dir}")
        if self.vocab is not None and not self.vocab.is_file():
            raise FileNotFoundError(f"--vocab: file not found: {self.vocab}")
        if self.grid and self.decoder.decoder != "kenlm":
            raise ValueError("--grid tunes the LM weight and word score: use it with --decoder kenlm")
        if self.grid_beam is not None and (not self.grid or self.grid_beam < 1):
            raise ValueError(f"--grid-beam is the beam size of --grid's tuning: >= 1 and with --grid, got "
                             f"{self.grid_beam}")
        if self.greedy_out is not None and self.decoder.decoder != "kenlm":
            raise ValueError("--greedy-out adds a greedy report to an LM decoding: use it with --decoder kenlm "
                             "(without an LM, --out is the greedy report)")
        if self.batch_seconds <= 0:
            raise ValueError(f"--batch-seconds must be > 0, got {self.batch_seconds}")
        self.decoder.validate()

    @property
    def results_dir(self) -> Path:
        """Where the reports go: ``out_dir``, or ``decode`` beside the checkpoint."""
        if self.out_dir is not None:
            return self.out_dir
        return (self.checkpoint if self.checkpoint.is_dir() else self.checkpoint.parent) / "decode"


@dataclass(kw_only=True)
class SubsetReport:
    """One decoding of one subset, and the files its reports went to."""

    subset: str
    """Manifest name."""
    decoder: DecoderConfig
    """The decoder's settings (after the grid search, when there was one)."""
    evaluation: EvaluationResult
    """Hypotheses and WER/CER."""
    audio_seconds: float
    """Audio decoded."""
    files: ReportFiles
    """recogs-, errs-, wer-summary-, utterances- and summary- files."""
    speed: dict[str, Any]
    """What ``summary-<subset>.json`` records beside the scores: speeds, device, precision, inputs."""
    grid: GridSearchResult | None = None
    """The LM weight / word score search run on this subset, if any."""
    grid_file: Path | None = None
    """``grid-<subset>.tsv``, when the grid ran."""


def evaluate_checkpoint(config: CheckpointEvaluationConfig) -> Iterator[SubsetReport]:
    """Load the model once, then for each subset compute its emissions once and yield one report per decoding
    (the configured decoder's, then the greedy one with ``greedy_out``), writing each report's files.

    A generator, so that a caller shows each subset's result as soon as it is ready; ``list(...)`` for all.
    """
    from speechssl.data.tokenizer import LetterTokenizer
    from speechssl.models.precision import resolve_device

    config.validate()
    device = config.device or str(resolve_device("auto"))
    tokenizer = LetterTokenizer.from_file(config.vocab) if config.vocab is not None else None
    loaded = load_ctc(config.checkpoint, device=device, tokenizer=tokenizer, precision=config.precision)
    splits = {subset: read_split(config.data_dir, subset, require_labels=True) for subset in config.subsets}
    if not config.allow_oov:  # every subset, before any compute
        for subset, split in splits.items():
            check_split_vocabulary(loaded.tokenizer, split, config.data_dir / subset)
    frame_shift = frame_shift_seconds(loaded.config.geometry)
    decoder = build_decoder(config.decoder, loaded.tokenizer, frame_shift=frame_shift)
    for index, subset in enumerate(config.subsets):
        data = split_emissions(loaded.emitter, splits[subset], loaded.tokenizer, EvaluateConfig(
            subset=subset, batch_seconds=config.batch_seconds, normalize=loaded.emitter.normalize,
            num_workers=config.num_workers, progress=config.progress, allow_oov=True))  # checked above
        grid, grid_file = None, None
        if config.grid and index == 0:
            grid = grid_search(decoder, data.emissions, data.references,  # type: ignore[arg-type]
                               lm_weights=config.grid_lm_weights, word_scores=config.grid_word_scores,
                               beam=config.grid_beam)
            out_dir = config.results_dir
            out_dir.mkdir(parents=True, exist_ok=True)
            grid_file = out_dir / f"grid-{subset}.tsv"
            grid_file.write_text("lm_weight\tword_score\twer\n" + "".join(
                f"{p.lm_weight:g}\t{p.word_score:g}\t{100 * p.wer:.2f}\n" for p in grid.points))
            config.decoder.beam.lm_weight = grid.best.lm_weight
            config.decoder.beam.word_score = grid.best.word_score
        evaluation = evaluate(decoder, data, progress=config.progress)
        yield _write_report(config, loaded, subset, data, evaluation, config.decoder, config.results_dir, device,
                            grid=grid, grid_file=grid_file)
        if config.greedy_out is not None:
            greedy_config = DecoderConfig(decoder="viterbi")
            greedy = build_decoder(greedy_config, loaded.tokenizer, frame_shift=frame_shift)
            yield _write_report(config, loaded, subset, data, evaluate(greedy, data), greedy_config,
                                config.greedy_out, device)


def _write_report(config: CheckpointEvaluationConfig, loaded: LoadedCTC, subset: str, data: SubsetEmissions,
                  evaluation: EvaluationResult, decoder_config: DecoderConfig, out_dir: Path, device: str, *,
                  grid: GridSearchResult | None = None, grid_file: Path | None = None) -> SubsetReport:
    audio = data.audio_seconds
    speed = {
        "audio_seconds": round(audio, 3),
        "model_seconds": round(data.model_seconds, 3),
        "decode_seconds": round(evaluation.decode_seconds, 3),
        "model_x_real_time": round(audio / data.model_seconds, 2) if data.model_seconds > 0 else None,
        "decode_x_real_time": round(audio / evaluation.decode_seconds, 2) if evaluation.decode_seconds > 0 else None,
        "device": str(device),
        "precision": loaded.emitter.precision,
        "checkpoint": str(config.checkpoint),
        "data_dir": str(config.data_dir),
        "dropped_utterances": data.num_dropped,
    }
    files = write_report(evaluation.score, out_dir, subset=subset, settings=decoder_config.to_dict(), extra=speed,
                         settings_name=decoder_config.describe())
    return SubsetReport(subset=subset, decoder=decoder_config, evaluation=evaluation, audio_seconds=audio,
                        files=files, speed=speed, grid=grid, grid_file=grid_file)
