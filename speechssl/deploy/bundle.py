"""The export folder: what ``speechssl export`` writes and the onnxruntime transcriber reads (no torch here).

    OUT/
      model.onnx     the CTC graph (fp32, or int8 after --quantize int8)
      config.json    ExportedModelConfig: frame geometry (the model config's), sample rate, normalisation, graph inputs/outputs,
                     vocabulary, decoder settings, provenance
      features.onnx  (with --features) every layer's states
      lm.arpa, lexicon.txt   (with --lm) copied beside the model, named in config.json's decoder settings

A user copies the folder; nothing in it refers to a path outside it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from speechssl.data.tokenizer import LetterTokenizer
from speechssl.models.config import FrameGeometry

BUNDLE_FORMAT = "speechssl-onnx"
BUNDLE_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.onnx"
FEATURES_FILE = "features.onnx"
PRECISIONS = ("fp32", "int8")


@dataclass(kw_only=True)
class DecoderSettings:
    """The decoder a bundle is transcribed with unless the caller chooses another (file names are relative to
    the folder)."""

    decoder: str = "viterbi"
    """``viterbi`` (greedy) or ``kenlm`` (flashlight beam search)."""
    lm: str | None = None
    """The n-gram file inside the folder."""
    lexicon: str | None = None
    """The lexicon file inside the folder (None: spelled from the ARPA's words)."""
    beam: dict[str, Any] = field(default_factory=dict)
    """``BeamSearchConfig`` fields (beam, lm_weight, word_score, ...); missing ones take its defaults."""


@dataclass(kw_only=True)
class ExportedModelConfig:
    """``config.json`` of an export folder."""

    format: str = BUNDLE_FORMAT
    version: int = BUNDLE_VERSION
    model_file: str = MODEL_FILE
    """The CTC graph: ``log_probs (B, T, V)`` and ``output_lengths (B,)`` from ``waveforms (B, L)`` and
    ``lengths (B,)`` (plus the window-statistics inputs below where ``window_kernel`` is set)."""
    precision: str = "fp32"
    """``fp32`` or ``int8`` (linear layers dynamically quantized)."""
    features_file: str | None = None
    """The hidden-states graph (``hidden_states (N + 1, B, T, D)``), if exported."""
    sample_rate: int
    """Sampling rate the model expects (audio is resampled to it)."""
    geometry: FrameGeometry
    """Where the frames sit on the samples: the exported model's ``Wav2Vec2Config.geometry``, written here so
    that the runtime knows it without the model (or torch)."""
    normalize: bool
    """Zero-mean unit-variance per recording before the graph (LARGE checkpoints); the graph does not do it."""
    window_kernel: int | None
    """Window of the ``window_mean (k,)`` / ``window_cov (k, k)`` inputs (the first conv's kernel), or None for
    a graph without them (``layer_norm`` extractors normalise each frame alone)."""
    window_stride: int | None
    """Stride of those windows."""
    num_layers: int
    """Transformer layers (the features graph has ``num_layers + 1`` states)."""
    hidden_size: int
    """Width of the hidden states."""
    inputs: list[str]
    """Graph inputs in order."""
    outputs: list[str]
    """Graph outputs in order."""
    tokenizer: dict[str, Any]
    """``LetterTokenizer`` arguments: symbols, blank, unk, word_delimiter, uppercase."""
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    """Default decoding."""
    opset: int
    """ONNX opset of the graph."""
    exported_from: str = ""
    """The checkpoint it came from, and the versions that exported it (provenance only)."""
    exporter: str = ""
    """Which exporter wrote the graph."""

    def validate(self, folder: Path) -> None:
        """Raise ValueError naming the first bad field, FileNotFoundError for a file it names that is missing."""
        if self.format != BUNDLE_FORMAT:
            raise ValueError(f"{folder / CONFIG_FILE}: `format` must be {BUNDLE_FORMAT!r}, got {self.format!r}")
        if self.version > BUNDLE_VERSION:
            raise ValueError(f"{folder / CONFIG_FILE}: version {self.version} is newer than this speechssl reads "
                             f"({BUNDLE_VERSION}); upgrade speechssl")
        if self.precision not in PRECISIONS:
            raise ValueError(f"{folder / CONFIG_FILE}: `precision` must be one of {PRECISIONS}, got {self.precision!r}")
        if not 1 <= self.geometry.frame_stride <= self.geometry.receptive_field:
            raise ValueError(f"{folder / CONFIG_FILE}: `geometry` needs 1 <= frame_stride <= receptive_field, got "
                             f"{self.geometry}")
        if self.decoder.decoder not in ("viterbi", "kenlm"):
            raise ValueError(f"{folder / CONFIG_FILE}: decoder `decoder` must be 'viterbi' or 'kenlm', got "
                             f"{self.decoder.decoder!r}")
        for name in (self.model_file, self.features_file, self.decoder.lm, self.decoder.lexicon):
            if name is not None and not (folder / name).is_file():
                raise FileNotFoundError(f"{folder}: {CONFIG_FILE} names {name}, which is not in the folder")

    def make_tokenizer(self) -> LetterTokenizer:
        options = dict(self.tokenizer)
        return LetterTokenizer(options.pop("symbols"), **options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = CONFIG_FILE) -> ExportedModelConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown keys {unknown}")
        values = dict(values)
        try:
            values["decoder"] = DecoderSettings(**values.get("decoder", {}))
            if "geometry" in values:
                values["geometry"] = FrameGeometry(**values["geometry"])
            return cls(**values)
        except TypeError as exc:  # a missing required key
            raise ValueError(f"{source}: {exc}") from None


def tokenizer_options(tokenizer: LetterTokenizer) -> dict[str, Any]:
    """What ``ExportedModelConfig.tokenizer`` stores for ``tokenizer``."""
    return {"symbols": list(tokenizer.symbols), "blank": tokenizer.blank, "unk": tokenizer.unk,
            "word_delimiter": tokenizer.word_delimiter, "uppercase": tokenizer.uppercase}


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is an export folder (a directory holding a speechssl-onnx ``config.json``)."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == BUNDLE_FORMAT
    except (json.JSONDecodeError, AttributeError):
        return False


def read_bundle_config(folder: str | Path) -> ExportedModelConfig:
    """The validated ``config.json`` of an export folder."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not an export folder (no {CONFIG_FILE}); make one with "
                                "`speechssl export CKPT OUT --format onnx`")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(values).__name__}")  # noqa: TRY004
    config = ExportedModelConfig.from_dict(values, str(path))
    config.validate(folder)
    return config


def write_bundle_config(folder: str | Path, config: ExportedModelConfig) -> Path:
    path = Path(folder) / CONFIG_FILE
    path.write_text(json.dumps(config.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
