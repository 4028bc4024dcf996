"""From waveforms to CTC emissions: padding, batching and the model call, for evaluation and transcription.

``ModelEmitter`` wraps a ``Wav2Vec2ForCTC`` (the contract: ``model(waveforms (B, L), padding_mask (B, L))
-> CTCOutput(logits (B, T, V), padding_mask (B, T) | None, lengths (B,))``) and returns log-softmax
emissions with their valid lengths. Anything with the same call signature as ``ModelEmitter.__call__`` and
the model's frame ``geometry`` (an ``EmissionModel``) can stand in for it, e.g. a fake model in tests. ``ModelEmitter`` also takes a
whole recording's ``waveform_statistics`` so that chunks of it are normalised as the whole (see
``speechssl.decoding.transcribe``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from speechssl.data.audio import normalize_waveform
from speechssl.models.config import FrameGeometry, Wav2Vec2Config
from speechssl.models.feature_encoder import FeatureEncoder, WaveformStatistics
from speechssl.models.precision import autocast, resolve_precision


@dataclass(kw_only=True)
class Emissions:
    """CTC log-probabilities of a batch."""

    log_probs: torch.Tensor
    """``(B, T, V)`` float32 log-softmax over the vocabulary, on the CPU."""
    lengths: torch.Tensor
    """``(B,)`` valid frames per utterance."""


class EmissionModel(Protocol):
    """What evaluation and transcription run: waveforms in, CTC emissions out, and the model's frame geometry
    (where its frames sit on the samples, from its config)."""

    geometry: FrameGeometry
    """The model's frame stride and receptive field (`Wav2Vec2Config.geometry`)."""

    def __call__(self, waveforms: torch.Tensor, padding_mask: torch.Tensor | None = None) -> Emissions:
        """``waveforms (B, L)``, ``padding_mask (B, L)`` True where padded (or None) -> emissions."""
        ...


class ModelEmitter:
    """Runs a CTC model in inference mode and returns log-softmax emissions.

    Args:
        model: a ``Wav2Vec2ForCTC`` (or any module with its call contract).
        device: where to run the model.
        normalize: zero-mean unit-variance per utterance before the model (fairseq's ``normalize=True``,
            LARGE models); applied to the unpadded samples only.
        precision: ``fp32`` (the default: the numbers a checkpoint's authors published), ``bf16`` (autocast;
            ~1.7x faster on CPUs with fast bf16 matmuls, emissions within bf16 rounding), ``fp16`` (CUDA only) or
            ``auto`` (bf16 where it measures faster, as training picks).
    """

    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu",
                 normalize: bool = False, precision: str = "fp32") -> None:
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device, key="--precision")
        self.model = model.eval().to(device)
        self.normalize = normalize
        self.geometry: FrameGeometry = model.config.geometry

    @torch.inference_mode()
    def __call__(self, waveforms: torch.Tensor, padding_mask: torch.Tensor | None = None, *,
                 waveform_statistics: WaveformStatistics | None = None) -> Emissions:
        """waveforms ``(B, L)``, padding_mask ``(B, L)`` True where padded -> emissions ``(B, T, V)``;
        ``waveform_statistics`` (of the recording these are chunks of) replace each row's own in the feature
        encoder's GroupNorm. ``waveforms`` may be a numpy array (``transcribe`` passes numpy batches)."""
        waveforms = torch.as_tensor(waveforms).to(self.device, torch.float32)
        if padding_mask is not None:
            padding_mask = padding_mask.to(self.device)
            if not bool(padding_mask.any()):
                # No padding: the unpadded path avoids the padded-batch code of the model (faster, and the
                # same numbers as single-utterance inference).
                padding_mask = None
        extra = {} if waveform_statistics is None else {"waveform_statistics": waveform_statistics}
        with autocast(self.precision, self.device):
            output = self.model(waveforms, padding_mask, **extra)
        log_probs = output.logits.float().log_softmax(dim=-1).cpu()  # (B, T, V)
        if output.lengths is not None:
            lengths = torch.as_tensor(output.lengths).long().cpu()
        else:
            lengths = torch.full((log_probs.shape[0],), log_probs.shape[1], dtype=torch.long)
        return Emissions(log_probs=log_probs, lengths=lengths)

    @torch.inference_mode()
    def waveform_statistics(self, waveform: np.ndarray) -> WaveformStatistics | None:
        """The statistics of a whole ``(L,)`` recording its chunks should be normalised with, or None when the
        model's feature encoder normalises each frame alone (nothing to share)."""
        feature_encoder = getattr(getattr(self.model, "encoder", None), "feature_encoder", None)
        if not isinstance(feature_encoder, FeatureEncoder):
            return None
        return feature_encoder.waveform_statistics(torch.from_numpy(np.asarray(waveform, dtype=np.float32)))

    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        """Per-utterance preprocessing (normalisation when the model was trained with it)."""
        return normalize_waveform(waveform) if self.normalize else waveform


def cast_weights_for_inference(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast the weights and biases of the model's linear and convolution layers to ``dtype`` in place, once.

    Under autocast every linear and convolution casts its fp32 weight to bf16 at every call: ~95 M
    parameters read and written again per forward of BASE (16 % of a bf16 inference batch measured here).
    Cast beforehand, autocast finds them in bf16 already and the results are the same bits, because autocast
    rounds the same fp32 values the same way. Weight norm (the positional convolution) is folded into a plain
    weight first, in fp32, as its forward computes it. Left in fp32: norms (autocast runs them in fp32), the
    waveform convolution (its weight enters fp64 GroupNorm statistics, see ``windowed_group_norm_conv``) and
    anything that is not a linear or convolution layer. For inference only: the model cannot be trained
    afterwards (the weight-norm parameters are gone).
    """
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d) and module.in_channels == 1:
            continue
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(dtype)
    return model


@dataclass(kw_only=True)
class PaddedBatch:
    """Waveforms padded to a common length."""

    waveforms: torch.Tensor
    """``(B, L_max)`` float32, zero-padded."""
    padding_mask: torch.Tensor
    """``(B, L_max)`` bool, True where padded."""


def pad_batch(waveforms: Sequence[np.ndarray]) -> PaddedBatch:
    """List of ``(L_i,)`` float arrays -> a zero-padded batch with its padding mask."""
    longest = max((len(w) for w in waveforms), default=0)
    batch = torch.zeros(len(waveforms), longest)
    mask = torch.ones(len(waveforms), longest, dtype=torch.bool)
    for i, w in enumerate(waveforms):
        batch[i, :len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
        mask[i, :len(w)] = False
    return PaddedBatch(waveforms=batch, padding_mask=mask)


@dataclass(kw_only=True)
class LoadedCTC:
    """A CTC model ready for inference."""

    emitter: ModelEmitter
    """Waveforms -> emissions."""
    tokenizer: object
    """The ``LetterTokenizer`` whose symbols index the model's outputs."""
    config: Wav2Vec2Config
    """The model's configuration."""


def load_ctc(src: str | Path, *, device: str | torch.device = "cpu", tokenizer=None,
             precision: str = "fp32") -> LoadedCTC:
    """Load a CTC checkpoint (speechssl .pt, Hugging Face directory, fairseq .pt) through ``load_model``.

    ``tokenizer`` overrides the checkpoint's vocabulary; ``precision`` as in ``ModelEmitter``. Raises
    ValueError for a pretraining-only checkpoint or one without vocabulary, FileNotFoundError for a missing
    path.
    """
    from speechssl.interop import load_model

    path = Path(src)
    if not path.exists():
        raise FileNotFoundError(f"CKPT: checkpoint not found: {path}")
    loaded = load_model(str(path))
    if loaded.task != "ctc":
        raise ValueError(f"CKPT: {path} is a {loaded.task!r} checkpoint; decoding needs a CTC fine-tuned model")
    tokenizer = tokenizer if tokenizer is not None else loaded.tokenizer
    if tokenizer is None:
        raise ValueError(f"CKPT: {path} carries no vocabulary; pass --vocab")
    normalize = bool(getattr(loaded.config, "normalize", False))
    emitter = ModelEmitter(loaded.model, device=device, normalize=normalize, precision=precision)
    if emitter.precision != "fp32":  # the model is ours alone: cast once rather than at every batch
        cast_weights_for_inference(emitter.model, torch.bfloat16 if emitter.precision == "bf16" else torch.float16)
    return LoadedCTC(emitter=emitter, tokenizer=tokenizer, config=loaded.config)
