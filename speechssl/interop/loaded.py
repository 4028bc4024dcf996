"""What every importer returns: a ready model, its config, its task and (for CTC) its vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from speechssl.data.tokenizer import LetterTokenizer
from speechssl.models import Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining

TASKS = ("pretrain", "ctc")


@dataclass
class LoadedModel:
    """A model loaded from a speechssl, Hugging Face or fairseq checkpoint (in eval mode, on CPU)."""

    model: Wav2Vec2ForPreTraining | Wav2Vec2ForCTC
    """The model with its weights."""
    config: Wav2Vec2Config
    """Its configuration."""
    task: str
    """`pretrain` or `ctc`."""
    tokenizer: LetterTokenizer | None
    """The CTC vocabulary (None for pretraining models, or a CTC model imported without its dictionary)."""
    source: str = ""
    """Where it came from (`speechssl`, `huggingface`, `fairseq`)."""


def build_model(config: Wav2Vec2Config, task: str, vocab_size: int | None = None) -> nn.Module:
    """An untrained model of the right class for `task`."""
    if task == "pretrain":
        return Wav2Vec2ForPreTraining(config)
    if task == "ctc":
        if vocab_size is None:
            raise ValueError("a CTC model needs vocab_size")
        return Wav2Vec2ForCTC(config, vocab_size)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def check_vocab(tokenizer: LetterTokenizer | None, vocab_size: int, source: str) -> None:
    """Raise when a vocabulary does not match the CTC head's output size."""
    if tokenizer is not None and len(tokenizer) != vocab_size:
        raise ValueError(
            f"{source}: the vocabulary has {len(tokenizer)} symbols but the CTC head has {vocab_size} outputs"
        )
