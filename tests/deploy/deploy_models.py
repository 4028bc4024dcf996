"""Tiny CTC models for the deploy tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from speechssl.data.tokenizer import LetterTokenizer
from speechssl.models import Wav2Vec2ForCTC, get_preset


def tiny_ctc_model(tokenizer: LetterTokenizer, **changes) -> Wav2Vec2ForCTC:
    """A random tiny CTC model whose head prefers letters over blank, so hypotheses are not empty."""
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(get_preset("tiny").replace(**changes), len(tokenizer)).eval()
    with torch.no_grad():
        model.head.bias[tokenizer.blank_index] = -2.0
    return model


def save_checkpoint(model: Wav2Vec2ForCTC, tokenizer: LetterTokenizer, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "speechssl", "version": 1, "task": "ctc", "model_config": dataclasses.asdict(model.config),
                "vocab": list(tokenizer.symbols), "blank": tokenizer.blank, "model": model.state_dict()}, path)
    return path
