"""One entry point for every checkpoint kind: `load_model(src)` tells a speechssl checkpoint, a Hugging Face
model directory and a fairseq checkpoint apart by content and imports each."""

from __future__ import annotations

from pathlib import Path

from speechssl.interop.checkpoint import is_checkpoint, model_from_checkpoint
from speechssl.interop.fairseq import load_fairseq_checkpoint, read_checkpoint_file
from speechssl.interop.huggingface import load_hf_directory
from speechssl.interop.loaded import LoadedModel


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
    if is_checkpoint(state):
        return model_from_checkpoint(state, path)
    if "model" in state and ("cfg" in state or "args" in state):
        return load_fairseq_checkpoint(path, dictionary=dictionary, checkpoint=state)
    raise ValueError(f"{path}: neither a speechssl checkpoint (format key) nor a fairseq one (cfg/args + model)")
