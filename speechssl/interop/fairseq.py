"""fairseq wav2vec 2.0 checkpoints -> speechssl models (no fairseq import needed).

A fairseq checkpoint is a torch.save'd dict {"cfg" (dict, fairseq >= 0.10) or "args" (argparse.Namespace,
older releases), "model": state_dict, ...}. Pretraining checkpoints (`wav2vec_small.pt`, arch `wav2vec2`)
hold the Wav2Vec2Model state dict; CTC fine-tuned ones (`wav2vec_small_960h.pt`, arch `wav2vec_ctc`) prefix
it with `w2v_encoder.w2v_model.` and add the head `w2v_encoder.proj`, while their model config keeps the
pretraining config under `w2v_args` and overrides dropouts and masking. The CTC vocabulary is not in the
checkpoint: pass the `dict.ltr.txt` it was trained with.
"""

from __future__ import annotations

import argparse
import ast
import pickle
from pathlib import Path
from typing import Any

import torch

from speechssl.data.tokenizer import LetterTokenizer
from speechssl.interop.keymap import KeyMap, load_exact
from speechssl.interop.loaded import LoadedModel, build_model, check_vocab
from speechssl.models import Wav2Vec2Config

_ENCODER_RULES = [
    ("encoder.feature_encoder.blocks.{i}.conv.", "feature_extractor.conv_layers.{i}.0."),
    ("encoder.feature_norm.", "layer_norm."),
    ("encoder.feature_proj.", "post_extract_proj."),
    ("encoder.mask_emb", "mask_emb"),
    ("encoder.context.pos_conv.conv.", "encoder.pos_conv.0."),
    ("encoder.context.layer_norm.", "encoder.layer_norm."),
    ("encoder.context.layers.{i}.attn.", "encoder.layers.{i}.self_attn."),
    ("encoder.context.layers.{i}.attn_norm.", "encoder.layers.{i}.self_attn_layer_norm."),
    ("encoder.context.layers.{i}.fc1.", "encoder.layers.{i}.fc1."),
    ("encoder.context.layers.{i}.fc2.", "encoder.layers.{i}.fc2."),
    ("encoder.context.layers.{i}.ffn_norm.", "encoder.layers.{i}.final_layer_norm."),
]
# fairseq conv blocks are Sequential(conv, dropout, norm, gelu); the layer norm sits inside
# Sequential(TransposeLast, Fp32LayerNorm, TransposeLast).
_NORM_RULE = {
    "group_norm": ("encoder.feature_encoder.blocks.{i}.norm.", "feature_extractor.conv_layers.{i}.2."),
    "layer_norm": ("encoder.feature_encoder.blocks.{i}.norm.", "feature_extractor.conv_layers.{i}.2.1."),
}
_PRETRAIN_RULES = [
    ("quantizer.codevectors", "quantizer.vars"),
    ("quantizer.weight_proj.", "quantizer.weight_proj."),
    ("project_q.", "project_q."),
    ("final_proj.", "final_proj."),
]
_WEIGHT_NORM_LEAVES = [("parametrizations.weight.original0", "weight_g"),
                       ("parametrizations.weight.original1", "weight_v")]
CTC_PREFIX = "w2v_encoder.w2v_model."


def fairseq_keymap(extractor_mode: str, task: str) -> KeyMap:
    """The speechssl <-> fairseq parameter names for a model layout and task."""
    encoder = [*_ENCODER_RULES, _NORM_RULE[extractor_mode]]
    if task == "ctc":
        rules = [(ours, CTC_PREFIX + theirs) for ours, theirs in encoder] + [("head.", "w2v_encoder.proj.")]
    else:
        rules = encoder + _PRETRAIN_RULES
    return KeyMap(rules, leaf_renames=_WEIGHT_NORM_LEAVES)


def parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """fairseq's `conv_feature_layers` string, e.g. "[(512, 10, 5)] + [(512, 3, 2)] * 4", evaluated safely
    (only list/tuple literals, + and *)."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported conv_feature_layers expression: {spec!r}")

    layers = value(ast.parse(spec, mode="eval"))
    if not isinstance(layers, list) or not all(isinstance(t, tuple) and len(t) == 3 for t in layers):
        raise ValueError(f"conv_feature_layers must be a list of (dim, kernel, stride), got {spec!r}")
    return layers


def _as_dict(cfg: Any) -> dict[str, Any]:
    if cfg is None:
        return {}
    if isinstance(cfg, argparse.Namespace):
        return vars(cfg)
    if hasattr(cfg, "items"):
        return dict(cfg.items())
    raise ValueError(f"cannot read a fairseq config of type {type(cfg).__name__}")


def _model_section(checkpoint: dict[str, Any]) -> dict[str, Any]:
    if checkpoint.get("cfg") is not None:
        return _as_dict(_as_dict(checkpoint["cfg"]).get("model"))
    return _as_dict(checkpoint.get("args"))


def config_from_fairseq(model_cfg: dict[str, Any]) -> Wav2Vec2Config:
    """A fairseq `wav2vec2` model config (dict or Namespace fields) -> Wav2Vec2Config."""
    c = model_cfg
    unsupported = {"quantize_targets": True, "quantize_input": False, "negatives_from_everywhere": False,
                   "cross_sample_negatives": 0, "codebook_negatives": 0, "target_glu": False,
                   "activation_fn": "gelu", "pos_conv_depth": 1, "mask_selection": "static"}
    for key, expected in unsupported.items():
        if key in c and c[key] != expected:
            raise ValueError(f"unsupported fairseq option {key}={c[key]!r} (speechssl implements {expected!r})")
    conv = parse_conv_layers(c.get("conv_feature_layers", "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2"))
    max_temp, min_temp, temp_decay = ast.literal_eval(str(c.get("latent_temp", (2.0, 0.5, 0.999995))))
    mode = c.get("extractor_mode", "default")
    return Wav2Vec2Config(
        extractor_mode={"default": "group_norm", "layer_norm": "layer_norm"}[mode],
        conv_dims=[d for d, _, _ in conv], conv_kernels=[k for _, k, _ in conv],
        conv_strides=[s for _, _, s in conv], conv_bias=bool(c.get("conv_bias", False)),
        feature_grad_mult=float(c.get("feature_grad_mult", 0.1)),
        encoder_layers=int(c.get("encoder_layers", 12)), encoder_embed_dim=int(c.get("encoder_embed_dim", 768)),
        encoder_ffn_embed_dim=int(c.get("encoder_ffn_embed_dim", 3072)),
        encoder_attention_heads=int(c.get("encoder_attention_heads", 12)),
        layer_norm_first=bool(c.get("layer_norm_first", False)), conv_pos=int(c.get("conv_pos", 128)),
        conv_pos_groups=int(c.get("conv_pos_groups", 16)),
        dropout=float(c.get("dropout", 0.1)), attention_dropout=float(c.get("attention_dropout", 0.1)),
        activation_dropout=float(c.get("activation_dropout", 0.0)),
        dropout_input=float(c.get("dropout_input", 0.0)), dropout_features=float(c.get("dropout_features", 0.0)),
        encoder_layerdrop=float(c.get("encoder_layerdrop", 0.0)),
        mask_prob=float(c.get("mask_prob", 0.65)), mask_length=int(c.get("mask_length", 10)),
        no_mask_overlap=bool(c.get("no_mask_overlap", False)), mask_min_space=int(c.get("mask_min_space", 1)),
        require_same_masks=bool(c.get("require_same_masks", True)),
        mask_channel_prob=float(c.get("mask_channel_prob", 0.0)),
        mask_channel_length=int(c.get("mask_channel_length", 10)),
        require_same_channel_masks=True,  # fairseq's channel masks always keep the batch's smallest count
        final_dim=int(c.get("final_dim", 0)) or int(c.get("encoder_embed_dim", 768)),
        latent_vars=int(c.get("latent_vars", 320)), latent_groups=int(c.get("latent_groups", 2)),
        latent_dim=int(c.get("latent_dim", 0)), max_temp=float(max_temp), min_temp=float(min_temp),
        temp_decay=float(temp_decay), num_negatives=int(c.get("num_negatives", 100)),
        logit_temp=float(c.get("logit_temp", 0.1)),
    )


def _ctc_config(model_cfg: dict[str, Any]) -> Wav2Vec2Config:
    """A `wav2vec_ctc` config: the pretraining config from w2v_args with the fine-tuning overrides that
    fairseq's Wav2VecEncoder applies (dropouts, masking, layerdrop, feature_grad_mult)."""
    w2v_args = model_cfg.get("w2v_args")
    if w2v_args is None:
        raise ValueError("fine-tuned fairseq checkpoint without w2v_args: cannot rebuild the encoder config")
    pre = _as_dict(w2v_args)
    pre = _as_dict(pre["model"]) if "model" in pre else pre
    overrides = {k: model_cfg[k] for k in ("dropout", "activation_dropout", "dropout_input", "attention_dropout",
                                           "mask_length", "mask_prob", "require_same_masks", "no_mask_overlap",
                                           "mask_channel_length", "mask_channel_prob", "feature_grad_mult")
                 if model_cfg.get(k) is not None}
    if model_cfg.get("layerdrop") is not None:
        overrides["encoder_layerdrop"] = model_cfg["layerdrop"]
    cfg = config_from_fairseq({**pre, **overrides})
    changes: dict[str, Any] = {"final_dropout": float(model_cfg.get("final_dropout", 0.0))}
    if not model_cfg.get("apply_mask", True):
        changes.update(mask_prob=0.0, mask_channel_prob=0.0)
    if "normalize" in model_cfg:
        changes["normalize"] = bool(model_cfg["normalize"])
    return cfg.replace(**changes)


def read_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """torch.load a checkpoint file: weights-only first (fairseq's argparse Namespace allowed); checkpoints
    with other pickled objects (numpy RNG states, omegaconf) need the full unpickler, so only load files
    you trust."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # e.g. numpy or omegaconf objects in the training state
        return torch.load(path, map_location="cpu", weights_only=False)


def load_fairseq_checkpoint(
    path: str | Path, *, dictionary: str | Path | None = None, checkpoint: dict[str, Any] | None = None
) -> LoadedModel:
    """Import a fairseq wav2vec 2.0 checkpoint (pretraining or CTC); `dictionary` is the dict.ltr.txt of a
    CTC model (its tokenizer is None without it)."""
    checkpoint = checkpoint if checkpoint is not None else read_checkpoint_file(path)
    if "model" not in checkpoint:
        raise ValueError(f"{path}: not a fairseq checkpoint (no 'model' state dict)")
    model_cfg = _model_section(checkpoint)
    state = checkpoint["model"]
    task = "ctc" if any(k.startswith("w2v_encoder.") for k in state) else "pretrain"
    name = model_cfg.get("_name", model_cfg.get("arch", "wav2vec2"))
    if task == "pretrain" and name not in ("wav2vec2", None):
        raise ValueError(f"{path}: unsupported fairseq model {name!r} (expected wav2vec2 or wav2vec_ctc)")
    cfg = _ctc_config(model_cfg) if task == "ctc" else config_from_fairseq(model_cfg)
    if task == "pretrain" and checkpoint.get("cfg") is not None:
        task_cfg = _as_dict(_as_dict(checkpoint["cfg"]).get("task"))
        cfg = cfg.replace(normalize=bool(task_cfg.get("normalize", cfg.normalize)))

    keymap = fairseq_keymap(cfg.extractor_mode, task)
    # a fine-tuned state dict may still hold the pretraining heads (fairseq drops them on build): skip them
    heads = tuple(CTC_PREFIX + h for h in ("quantizer.", "project_q.", "final_proj.")) if task == "ctc" else ()
    ours = keymap.import_state_dict(state, ignore=heads)
    tokenizer = None
    if task == "ctc":
        vocab_size = int(ours["head.weight"].shape[0])
        tokenizer = LetterTokenizer.from_fairseq_dict(dictionary) if dictionary is not None else None
        check_vocab(tokenizer, vocab_size, str(path))
        model = build_model(cfg, task, vocab_size)
    else:
        model = build_model(cfg, task)
    if "encoder.feature_proj.weight" not in ours and cfg.feature_dim == cfg.encoder_embed_dim:
        # fairseq has no post_extract_proj when the widths already agree: an identity projection
        ours["encoder.feature_proj.weight"] = torch.eye(cfg.feature_dim)
        ours["encoder.feature_proj.bias"] = torch.zeros(cfg.feature_dim)
    load_exact(model, ours, str(path))
    return LoadedModel(model=model.eval(), config=cfg, task=task, tokenizer=tokenizer, source="fairseq")
