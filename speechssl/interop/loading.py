"""One entry point for every checkpoint kind: `load_model(src)`; and the speechssl checkpoint format.

A speechssl checkpoint is a torch.save'd dict
``{"format": "speechssl", "version": 1, "task": "pretrain"|"ctc", "model_config": asdict(cfg),
"vocab": symbols|None, "blank": str|None, "model": state_dict, ...training state}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from speechssl.data.tokenizer import LetterTokenizer
from speechssl.interop.fairseq import load_fairseq_checkpoint, read_checkpoint_file
from speechssl.interop.huggingface import load_hf_directory
from speechssl.interop.keymap import load_exact
from speechssl.interop.loaded import LoadedModel, build_model, check_vocab
from speechssl.models import Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining
from speechssl.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, atomic_torch_save


def model_task(model: nn.Module) -> str:
    """`ctc` or `pretrain` for a speechssl model."""
    if isinstance(model, Wav2Vec2ForCTC):
        return "ctc"
    if isinstance(model, Wav2Vec2ForPreTraining):
        return "pretrain"
    raise TypeError(f"expected Wav2Vec2ForPreTraining or Wav2Vec2ForCTC, got {type(model).__name__}")


def checkpoint_dict(
    model: Wav2Vec2ForPreTraining | Wav2Vec2ForCTC, *, tokenizer: LetterTokenizer | None = None, **extra: Any
) -> dict[str, Any]:
    """The speechssl checkpoint dict of `model` (`extra` adds training state: optimizer, num_updates, ...)."""
    task = model_task(model)
    if task == "ctc":
        check_vocab(tokenizer, model.vocab_size, "checkpoint")
    state: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "task": task,
        "model_config": model.config.to_dict(),
        "vocab": list(tokenizer.symbols) if tokenizer is not None else None,
        "blank": tokenizer.blank if tokenizer is not None else None,
        "tokenizer_options": ({"unk": tokenizer.unk, "word_delimiter": tokenizer.word_delimiter,
                               "uppercase": tokenizer.uppercase} if tokenizer is not None else None),
        "model": model.state_dict(),
    }
    state.update(extra)
    return state


def save_speechssl_checkpoint(
    path: str | Path, model: Wav2Vec2ForPreTraining | Wav2Vec2ForCTC, *,
    tokenizer: LetterTokenizer | None = None, **extra: Any,
) -> Path:
    """Write `checkpoint_dict(model, ...)` atomically to `path`."""
    path = Path(path)
    atomic_torch_save(checkpoint_dict(model, tokenizer=tokenizer, **extra), path)
    return path


def tokenizer_from_checkpoint(state: dict[str, Any]) -> LetterTokenizer | None:
    """The LetterTokenizer stored in a speechssl checkpoint dict, if any."""
    if not state.get("vocab"):
        return None
    options = state.get("tokenizer_options") or {}
    return LetterTokenizer(state["vocab"], blank=state.get("blank") or "<pad>", **options)


def model_from_checkpoint(state: dict[str, Any], source: str = "checkpoint") -> LoadedModel:
    """Rebuild the model of a speechssl checkpoint dict (weights loaded exactly, eval mode)."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{source}: not a speechssl checkpoint (format={state.get('format')!r})")
    cfg = Wav2Vec2Config.from_dict(state["model_config"])
    task = state.get("task")
    tokenizer = tokenizer_from_checkpoint(state)
    weights = state["model"]
    vocab_size = int(weights["head.weight"].shape[0]) if task == "ctc" else None
    if vocab_size is not None:
        check_vocab(tokenizer, vocab_size, source)
    model = build_model(cfg, task, vocab_size)
    load_exact(model, weights, source)
    return LoadedModel(model=model.eval(), config=cfg, task=task, tokenizer=tokenizer, source="speechssl")


def load_model(src: str | Path, *, dictionary: str | Path | None = None) -> LoadedModel:
    """Load a speechssl .pt, a Hugging Face model directory or a fairseq .pt, telling them apart by content.

    Args:
        src: the checkpoint file or directory.
        dictionary: fairseq CTC checkpoints only: the dict.ltr.txt of the fine-tuning data.
    """
    path = Path(src)
    if path.is_dir():
        return load_hf_directory(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = read_checkpoint_file(path)  # a safe load first; speechssl checkpoints are plain dicts too
    if not isinstance(state, dict):
        raise TypeError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    if state.get("format") == CHECKPOINT_FORMAT:
        return model_from_checkpoint(state, str(path))
    if "model" in state and ("cfg" in state or "args" in state):
        return load_fairseq_checkpoint(path, dictionary=dictionary, checkpoint=state)
    raise ValueError(f"{path}: neither a speechssl checkpoint (format key) nor a fairseq one (cfg/args + model)")
