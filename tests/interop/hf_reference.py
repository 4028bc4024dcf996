"""The parity reference: tiny randomly initialised transformers wav2vec2 models saved to disk, and the inputs
fed to them (a plain module, imported by the interop tests)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R"]

# Dims shrunk so that a forward pass takes milliseconds; every mechanism of BASE / LARGE kept.
SMALL_DIMS = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
    "conv_dim": [32] * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4,
    "codevector_dim": 16, "proj_codevector_dim": 16, "num_codevectors_per_group": 24, "num_negatives": 10,
    "mask_time_prob": 0.65, "vocab_size": len(VOCAB),
}
VARIANTS = {
    # BASE layout: group-norm extractor, post-LN
    "group": {"feat_extract_norm": "group", "conv_bias": False, "do_stable_layer_norm": False},
    # LARGE layout: layer-norm extractor with conv bias, pre-LN
    "layer": {"feat_extract_norm": "layer", "conv_bias": True, "do_stable_layer_norm": True},
}


def hf_model(variant: str, task: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.Wav2Vec2Config(**SMALL_DIMS, **VARIANTS[variant])
    cls = transformers.Wav2Vec2ForCTC if task == "ctc" else transformers.Wav2Vec2ForPreTraining
    return cls(config).eval()


def save_hf(model: torch.nn.Module, directory: Path, with_vocab: bool = False) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(directory)
    if with_vocab:
        import json

        (directory / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(VOCAB)}))
    return directory


@dataclass
class Inputs:
    waveforms: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor | None  # (B, L) 1 = valid (transformers convention)
    padding_mask: torch.Tensor | None  # (B, L) True = padded (speechssl convention)
    mask_time_indices: torch.Tensor  # (B, T) bool
    negative_indices: torch.Tensor  # (B, T, K) long into B*T


def make_inputs(variant: str, seed: int = 0) -> Inputs:
    """Padded batch for the layer-norm variant; unpadded for group norm, where transformers leaks padding."""
    g = torch.Generator().manual_seed(seed)
    waveforms = torch.randn(2, 8000, generator=g)
    attention = torch.ones(2, 8000, dtype=torch.long)
    if variant == "layer":
        attention[1, 5200:] = 0
        waveforms[1, 5200:] = 0.0
    lengths = torch.tensor([24, 16 if variant == "layer" else 24])  # frames of 8000 / 5200 samples
    frame_attention = torch.arange(24)[None, :] < lengths[:, None]
    np.random.seed(seed)
    mask = _compute_mask_indices((2, 24), 0.5, 4, attention_mask=frame_attention, min_masks=2)
    negatives = _sample_negative_indices((2, 24), SMALL_DIMS["num_negatives"], mask)
    padded = variant == "layer"
    return Inputs(
        waveforms=waveforms,
        attention_mask=attention if padded else None,
        padding_mask=(attention == 0) if padded else None,
        mask_time_indices=torch.tensor(mask),
        negative_indices=torch.tensor(negatives, dtype=torch.long),
    )
