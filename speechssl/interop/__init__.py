"""Checkpoints: the speechssl format (`checkpoint`, its one owner) and Hugging Face transformers and fairseq
wav2vec 2.0 checkpoints imported and exported; `load_model` reads any of them."""

from speechssl.interop.checkpoint import (
    CheckpointError,
    checkpoint_dict,
    load_checkpoint,
    model_from_checkpoint,
    save_speechssl_checkpoint,
    tokenizer_from_checkpoint,
)
from speechssl.interop.fairseq import config_from_fairseq, fairseq_keymap, load_fairseq_checkpoint
from speechssl.interop.huggingface import (
    HF_KEYMAP,
    config_from_hf,
    config_to_hf,
    export_hf_directory,
    load_hf_directory,
)
from speechssl.interop.loaded import LoadedModel
from speechssl.interop.loading import load_model

__all__ = [
    "HF_KEYMAP",
    "CheckpointError",
    "LoadedModel",
    "checkpoint_dict",
    "config_from_fairseq",
    "config_from_hf",
    "config_to_hf",
    "export_hf_directory",
    "fairseq_keymap",
    "load_checkpoint",
    "load_fairseq_checkpoint",
    "load_hf_directory",
    "load_model",
    "model_from_checkpoint",
    "save_speechssl_checkpoint",
    "tokenizer_from_checkpoint",
]
