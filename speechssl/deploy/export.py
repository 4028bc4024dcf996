"""``export_onnx``: a CTC checkpoint -> an export folder onnxruntime runs without torch.

The graph is ``speechssl.deploy.graph.ExportableCTC`` traced by torch's ``torch.export``-based ONNX exporter
(``torch.onnx.export(..., dynamo=True)``, which needs ``onnxscript``), at opset 18, with dynamic batch and
time axes. Why not the TorchScript exporter (``dynamo=False``): torch 2.9 made the new one the default and
2.13 warns that the old one "will be removed"; a deployment path built on it would break on the next torch
(as icefall's did on the opposite switch, icefall#2040). The price is export time (a few seconds for a tiny
model, about a minute for BASE), paid once per export.

The traced fp32 graph is then rewritten for onnxruntime's fastest CPU kernels (``speechssl.deploy.optimize``:
2-D convolutions, fused residual-LayerNorm and bias-GELU; ``optimize=False`` keeps the traced graph), and int8
quantizes the rewritten graph.

Every export is checked before it is written as done: the graph runs in onnxruntime on a padded batch of
noise and its log-probabilities are compared with the torch model's (``ExportCheck``); int8 graphs report
the difference without failing on it, fp32 graphs must agree to ``FP32_TOLERANCE``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from speechssl import __version__
from speechssl.data.audio import SAMPLE_RATE
from speechssl.data.tokenizer import LetterTokenizer
from speechssl.deploy.bundle import (
    FEATURES_FILE,
    MODEL_FILE,
    DecoderSettings,
    ExportedModelConfig,
    tokenizer_options,
    write_bundle_config,
)
from speechssl.deploy.graph import ExportableCTC, graph_spec
from speechssl.deploy.optimize import OptimizeReport, optimize_graph
from speechssl.deploy.quantize import QuantizeConfig, quantize_int8

OPSET = 18
"""ONNX opset of exported graphs: the dynamo exporter's native opset; onnxruntime runs it since 1.14."""
FP32_TOLERANCE = 1e-4
"""Largest |log-prob difference| an fp32 export may show against the torch model on the export check."""
FORMATS = ("onnx",)
QUANTIZATIONS = (None, "int8")


@dataclass(kw_only=True)
class ExportConfig:
    """What ``speechssl export`` writes."""

    format: str = "onnx"
    """Only ``onnx`` for now."""
    quantize: str | None = None
    """None (fp32) or ``int8`` (dynamic quantization of the linear layers, ``QuantizeConfig``)."""
    quantization: QuantizeConfig = field(default_factory=QuantizeConfig)
    """How int8 quantizes."""
    optimize: bool = True
    """Rewrite the fp32 graph for onnxruntime's CPU kernels before quantizing (``speechssl.deploy.optimize``);
    False writes the graph as traced (for other ONNX runtimes: the rewrite uses onnxruntime's contrib ops)."""
    features: bool = False
    """Also write ``features.onnx`` (every layer's hidden states, for ``Recognizer.features``)."""
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    """Default decoding written to config.json; ``lm``/``lexicon`` are paths here, copied into the folder."""
    check_seconds: tuple[float, ...] = (1.5, 0.9)
    """Lengths of the padded noise batch the export check runs (two rows: one padded)."""

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"`format` must be one of {FORMATS}, got {self.format!r}")
        if self.quantize not in QUANTIZATIONS:
            raise ValueError(f"`quantize` must be one of {QUANTIZATIONS}, got {self.quantize!r}")
        if self.decoder.decoder not in ("viterbi", "kenlm"):
            raise ValueError(f"`decoder` must be 'viterbi' or 'kenlm', got {self.decoder.decoder!r}")
        if self.decoder.decoder == "kenlm" and self.decoder.lm is None and not self.decoder.beam.get("lexicon_free"):
            raise ValueError("--lm: the kenlm decoder needs a language model file (or --lexicon-free)")
        for name, value in (("--lm", self.decoder.lm), ("--lexicon", self.decoder.lexicon)):
            if value is not None and not Path(value).is_file():
                raise FileNotFoundError(f"{name}: file not found: {value}")
        self.quantization.validate()


@dataclass(kw_only=True)
class ExportCheck:
    """The export's self-check: onnxruntime against the torch model on one padded batch of noise."""

    max_abs_diff: float
    """Largest |log-prob difference| over valid frames."""
    same_argmax: float
    """Share of valid frames whose arg-max token agrees."""
    lengths_equal: bool
    """Whether the graph's output lengths equal the torch model's."""


@dataclass(kw_only=True)
class ExportResult:
    """What ``export_onnx`` wrote."""

    folder: Path
    config: ExportedModelConfig
    check: ExportCheck
    files: list[Path]
    optimization: OptimizeReport | None = None
    """What the graph rewrite did (None with ``optimize=False``)."""


def _export_graph(graph: ExportableCTC, path: Path, names: tuple[str, ...], outputs: tuple[str, ...],
                  example: tuple[torch.Tensor, ...]) -> None:
    """Trace ``graph`` with the dynamo exporter into one self-contained .onnx file (no external data)."""
    batch = torch.export.Dim("batch")
    samples = torch.export.Dim("samples", min=graph.config.receptive_field)
    dynamic = {"waveforms": {0: batch, 1: samples}, "lengths": {0: batch}}
    dynamic.update({name: None for name in names[2:]})
    # The exporter reports its progress, operators of packages we do not use (torchvision) and deprecations of
    # its own internals through warnings and logging; the export's check (check_export) is what tells whether
    # it worked, so they are kept off the user's terminal.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(graph, example, dynamo=True, opset_version=OPSET, input_names=list(names),
                                        output_names=list(outputs), dynamic_shapes=dynamic, verbose=False,
                                        optimize=True)
    finally:
        exporter_log.setLevel(level)
    program.save(str(path), external_data=False)


def example_inputs(graph: ExportableCTC, seconds: tuple[float, ...], *, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A padded batch of noise (one row per length) with the graph's other inputs (no recording statistics)."""
    lengths = [max(graph.config.receptive_field, int(s * SAMPLE_RATE)) for s in seconds]
    generator = torch.Generator().manual_seed(seed)
    waveforms = torch.randn(len(lengths), max(lengths), generator=generator) * 0.1
    example = (waveforms, torch.tensor(lengths, dtype=torch.long))
    if graph.statistics:
        k = graph.config.conv_kernels[0]
        example += (torch.zeros(k), torch.zeros(k, k), torch.zeros(()))
    return example


def check_export(model: torch.nn.Module, model_path: Path, example: tuple[torch.Tensor, ...],
                 names: tuple[str, ...]) -> ExportCheck:
    """Run the exported graph in onnxruntime on ``example`` and compare with the torch model (fp32)."""
    import onnxruntime as ort

    waveforms, lengths = example[0], example[1]
    padding_mask = torch.arange(waveforms.shape[1])[None, :] >= lengths[:, None]  # (B, L)
    with torch.inference_mode():
        reference = model.float().eval()(waveforms, padding_mask)
    expected = reference.logits.float().log_softmax(-1).numpy()  # (B, T, V)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    log_probs, out_lengths = session.run(None, {name: value.numpy() for name, value in zip(names, example)})
    lengths_equal = bool(np.array_equal(out_lengths, reference.lengths.numpy()))
    diffs, agree, total = [0.0], 0, 0
    for b, n in enumerate(reference.lengths.tolist()):
        diffs.append(float(np.abs(log_probs[b, :n] - expected[b, :n]).max()))
        agree += int((log_probs[b, :n].argmax(-1) == expected[b, :n].argmax(-1)).sum())
        total += n
    return ExportCheck(max_abs_diff=max(diffs), same_argmax=agree / max(total, 1), lengths_equal=lengths_equal)


def require_fp32_parity(check: ExportCheck, graph: str, advice: str = "") -> ExportCheck:
    """``check`` if an fp32 graph agrees with the torch model to ``FP32_TOLERANCE``; else ValueError naming
    ``graph`` (which stage of the export wrote it)."""
    if not check.lengths_equal or check.max_abs_diff > FP32_TOLERANCE:
        raise ValueError(f"the {graph} graph disagrees with the torch model: max |log-prob difference| "
                         f"{check.max_abs_diff:.3g} (tolerance {FP32_TOLERANCE}), lengths equal: "
                         f"{check.lengths_equal}; {advice}please report this with the checkpoint's config")
    return check


def export_onnx(src: str | Path, out: str | Path, config: ExportConfig | None = None, *,
                dictionary: str | Path | None = None, tokenizer: LetterTokenizer | None = None) -> ExportResult:
    """Export a CTC checkpoint (speechssl .pt, Hugging Face directory or fairseq .pt) to the folder ``out``;
    ``tokenizer`` replaces the checkpoint's vocabulary, ``dictionary`` gives a fairseq CTC model its one.

    Raises ValueError for a pretraining checkpoint, one without vocabulary, or an fp32 graph that disagrees
    with the torch model; FileNotFoundError for missing inputs. ``out`` may exist; the files it writes are
    replaced, others left alone.
    """
    from speechssl.interop import load_model

    config = config or ExportConfig()
    config.validate()
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"CKPT: checkpoint not found: {src}")
    loaded = load_model(src, dictionary=dictionary)
    if loaded.task != "ctc":
        raise ValueError(f"CKPT: {src} is a {loaded.task!r} checkpoint; export needs a CTC fine-tuned model")
    tokenizer = tokenizer if tokenizer is not None else loaded.tokenizer
    if tokenizer is None:
        raise ValueError(f"CKPT: {src} carries no vocabulary; pass --vocab (fairseq: --dict dict.ltr.txt)")
    if len(tokenizer) != loaded.model.vocab_size:
        raise ValueError(f"the vocabulary has {len(tokenizer)} symbols but the CTC head has "
                         f"{loaded.model.vocab_size} outputs")
    model_config = loaded.config
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    graph = ExportableCTC(loaded.model)
    spec = graph_spec(model_config)
    example = example_inputs(graph, config.check_seconds)
    files = []
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as tmp:
        fp32_path = Path(tmp) / MODEL_FILE
        _export_graph(graph, fp32_path, spec.input_names, spec.output_names, example)
        check = require_fp32_parity(check_export(loaded.model, fp32_path, example, spec.input_names), "exported")
        optimization = None
        if config.optimize:
            optimized_path = Path(tmp) / "model.optimized.onnx"
            optimization = optimize_graph(fp32_path, optimized_path, num_heads=model_config.encoder_attention_heads,
                                          hidden_size=model_config.encoder_embed_dim)
            check = require_fp32_parity(check_export(loaded.model, optimized_path, example, spec.input_names),
                                        "optimized", advice="export with optimize=False (--no-optimize) and ")
            fp32_path = optimized_path
        model_path = fp32_path
        if config.quantize == "int8":
            model_path = Path(tmp) / "model.int8.onnx"
            quantize_int8(fp32_path, model_path, config.quantization)
            check = check_export(loaded.model, model_path, example, spec.input_names)
        shutil.move(str(model_path), out / MODEL_FILE)
        files.append(out / MODEL_FILE)
        if config.features:
            features_spec = graph_spec(model_config, hidden_states=True)
            _export_graph(ExportableCTC(loaded.model, hidden_states=True), Path(tmp) / FEATURES_FILE,
                          features_spec.input_names, features_spec.output_names, example)
            if config.optimize:
                optimize_graph(Path(tmp) / FEATURES_FILE, Path(tmp) / FEATURES_FILE,
                               num_heads=model_config.encoder_attention_heads,
                               hidden_size=model_config.encoder_embed_dim)
            shutil.move(str(Path(tmp) / FEATURES_FILE), out / FEATURES_FILE)
            files.append(out / FEATURES_FILE)

    decoder = DecoderSettings(decoder=config.decoder.decoder, beam=dict(config.decoder.beam))
    for attribute in ("lm", "lexicon"):
        source = getattr(config.decoder, attribute)
        if source is not None:
            target = out / Path(source).name
            if Path(source).resolve() != target.resolve():
                shutil.copyfile(source, target)
            setattr(decoder, attribute, target.name)
            files.append(target)
    bundle = ExportedModelConfig(
        precision="int8" if config.quantize == "int8" else "fp32",
        features_file=FEATURES_FILE if config.features else None,
        sample_rate=SAMPLE_RATE, geometry=model_config.geometry, normalize=bool(model_config.normalize),
        window_kernel=spec.window_kernel, window_stride=spec.window_stride,
        num_layers=model_config.encoder_layers, hidden_size=model_config.encoder_embed_dim,
        inputs=list(spec.input_names), outputs=list(spec.output_names),
        tokenizer=tokenizer_options(tokenizer), decoder=decoder, opset=OPSET,
        exported_from=f"{src} ({loaded.source}); speechssl {__version__}, torch {torch.__version__}",
        exporter="torch.onnx.export(dynamo=True)" + (
            " + speechssl.deploy.optimize (2-D convolutions, onnxruntime fusions)" if config.optimize else ""),
    )
    files.append(write_bundle_config(out, bundle))
    return ExportResult(folder=out, config=bundle, check=check, files=files, optimization=optimization)
