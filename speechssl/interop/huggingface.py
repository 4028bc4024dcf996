"""Hugging Face transformers directories <-> speechssl models.

Import reads `config.json` + `model.safetensors` (or `pytorch_model.bin`) of a `Wav2Vec2ForPreTraining`
(quantizer, project_q and project_hid included, so pretraining can continue) or `Wav2Vec2ForCTC` (with its
`vocab.json` kept as a LetterTokenizer). Export writes a directory that `transformers` loads with
`from_pretrained`: config.json, model.safetensors and, for CTC, vocab.json / tokenizer_config.json /
preprocessor_config.json. The config.json also carries our full config under the key `speechssl` so that a
round trip keeps fields transformers has no name for (Gumbel temperatures, masking details).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from speechssl.data.audio import SAMPLE_RATE
from speechssl.data.tokenizer import LetterTokenizer
from speechssl.interop.keymap import KeyMap, load_exact
from speechssl.interop.loaded import LoadedModel, build_model, check_vocab
from speechssl.models import Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining

HF_KEYMAP = KeyMap([
    ("encoder.feature_encoder.blocks.{i}.conv.", "wav2vec2.feature_extractor.conv_layers.{i}.conv."),
    ("encoder.feature_encoder.blocks.{i}.norm.", "wav2vec2.feature_extractor.conv_layers.{i}.layer_norm."),
    ("encoder.feature_norm.", "wav2vec2.feature_projection.layer_norm."),
    ("encoder.feature_proj.", "wav2vec2.feature_projection.projection."),
    ("encoder.mask_emb", "wav2vec2.masked_spec_embed"),
    ("encoder.context.pos_conv.conv.", "wav2vec2.encoder.pos_conv_embed.conv."),
    ("encoder.context.layer_norm.", "wav2vec2.encoder.layer_norm."),
    ("encoder.context.layers.{i}.attn.", "wav2vec2.encoder.layers.{i}.attention."),
    ("encoder.context.layers.{i}.attn_norm.", "wav2vec2.encoder.layers.{i}.layer_norm."),
    ("encoder.context.layers.{i}.fc1.", "wav2vec2.encoder.layers.{i}.feed_forward.intermediate_dense."),
    ("encoder.context.layers.{i}.fc2.", "wav2vec2.encoder.layers.{i}.feed_forward.output_dense."),
    ("encoder.context.layers.{i}.ffn_norm.", "wav2vec2.encoder.layers.{i}.final_layer_norm."),
    ("quantizer.", "quantizer."),
    ("project_q.", "project_q."),
    ("final_proj.", "project_hid."),
    ("head.", "lm_head."),
])

# transformers' Wav2Vec2Config defaults for the keys we read (a config.json omits keys left at default).
HF_DEFAULTS: dict[str, Any] = {
    "feat_extract_norm": "group", "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_bias": False, "hidden_size": 768, "num_hidden_layers": 12,
    "intermediate_size": 3072, "num_attention_heads": 12, "do_stable_layer_norm": False,
    "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16, "layer_norm_eps": 1e-5,
    "hidden_dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.1, "feat_proj_dropout": 0.0,
    "feat_quantizer_dropout": 0.0, "layerdrop": 0.1, "final_dropout": 0.1, "apply_spec_augment": True,
    "mask_time_prob": 0.05, "mask_time_length": 10, "mask_time_min_masks": 2, "mask_feature_prob": 0.0,
    "mask_feature_length": 10, "mask_feature_min_masks": 0, "proj_codevector_dim": 256, "codevector_dim": 256,
    "num_codevectors_per_group": 320, "num_codevector_groups": 2, "num_negatives": 100,
    "contrastive_logits_temperature": 0.1, "diversity_loss_weight": 0.1, "hidden_act": "gelu",
    "feat_extract_activation": "gelu", "add_adapter": False, "adapter_attn_dim": None, "vocab_size": 32,
    "pad_token_id": 0,
}


def config_from_hf(hf: dict[str, Any], *, normalize: bool | None = None) -> Wav2Vec2Config:
    """A transformers `config.json` dict -> Wav2Vec2Config (raises on features we do not implement)."""
    if isinstance(hf.get("speechssl"), dict):  # written by our exporter: lossless
        return Wav2Vec2Config.from_dict(hf["speechssl"])
    c = {**HF_DEFAULTS, **hf}
    if c.get("model_type", "wav2vec2") != "wav2vec2":
        raise ValueError(f"not a wav2vec2 config: model_type={c.get('model_type')!r}")
    for key, expected in (("hidden_act", "gelu"), ("feat_extract_activation", "gelu"), ("add_adapter", False),
                          ("adapter_attn_dim", None)):
        if c[key] != expected:
            raise ValueError(f"unsupported transformers option {key}={c[key]!r} (expected {expected!r})")
    spec_augment = bool(c["apply_spec_augment"])
    final_dim = int(c["proj_codevector_dim"])
    return Wav2Vec2Config(
        extractor_mode={"group": "group_norm", "layer": "layer_norm"}[c["feat_extract_norm"]],
        conv_dims=list(c["conv_dim"]), conv_kernels=list(c["conv_kernel"]), conv_strides=list(c["conv_stride"]),
        conv_bias=bool(c["conv_bias"]),
        encoder_layers=c["num_hidden_layers"], encoder_embed_dim=c["hidden_size"],
        encoder_ffn_embed_dim=c["intermediate_size"], encoder_attention_heads=c["num_attention_heads"],
        layer_norm_first=bool(c["do_stable_layer_norm"]), conv_pos=c["num_conv_pos_embeddings"],
        conv_pos_groups=c["num_conv_pos_embedding_groups"], layer_norm_eps=c["layer_norm_eps"],
        dropout=c["hidden_dropout"], attention_dropout=c["attention_dropout"],
        activation_dropout=c["activation_dropout"], dropout_input=c["feat_proj_dropout"],
        dropout_features=c["feat_quantizer_dropout"], encoder_layerdrop=c["layerdrop"],
        final_dropout=c["final_dropout"],
        mask_prob=c["mask_time_prob"] if spec_augment else 0.0, mask_length=c["mask_time_length"],
        mask_min_masks=c["mask_time_min_masks"],
        mask_channel_prob=c["mask_feature_prob"] if spec_augment else 0.0,
        mask_channel_length=c["mask_feature_length"], mask_channel_min_masks=c["mask_feature_min_masks"],
        final_dim=final_dim, latent_dim=0 if c["codevector_dim"] == final_dim else int(c["codevector_dim"]),
        latent_vars=c["num_codevectors_per_group"], latent_groups=c["num_codevector_groups"],
        num_negatives=c["num_negatives"], logit_temp=c["contrastive_logits_temperature"],
        diversity_weight=c["diversity_loss_weight"],
        normalize=bool(normalize) if normalize is not None else c["feat_extract_norm"] == "layer",
    )


def config_to_hf(cfg: Wav2Vec2Config, task: str, *, vocab_size: int | None = None,
                 pad_token_id: int = 0) -> dict[str, Any]:
    """Wav2Vec2Config -> a transformers `config.json` dict (plus our own config under `speechssl`)."""
    hf: dict[str, Any] = {
        "model_type": "wav2vec2",
        "architectures": ["Wav2Vec2ForCTC" if task == "ctc" else "Wav2Vec2ForPreTraining"],
        "feat_extract_norm": "group" if cfg.extractor_mode == "group_norm" else "layer",
        "feat_extract_activation": "gelu", "hidden_act": "gelu",
        "conv_dim": list(cfg.conv_dims), "conv_kernel": list(cfg.conv_kernels),
        "conv_stride": list(cfg.conv_strides), "num_feat_extract_layers": len(cfg.conv_dims),
        "conv_bias": cfg.conv_bias, "hidden_size": cfg.encoder_embed_dim,
        "num_hidden_layers": cfg.encoder_layers, "intermediate_size": cfg.encoder_ffn_embed_dim,
        "num_attention_heads": cfg.encoder_attention_heads, "do_stable_layer_norm": cfg.layer_norm_first,
        "num_conv_pos_embeddings": cfg.conv_pos, "num_conv_pos_embedding_groups": cfg.conv_pos_groups,
        "layer_norm_eps": cfg.layer_norm_eps, "hidden_dropout": cfg.dropout,
        "attention_dropout": cfg.attention_dropout, "activation_dropout": cfg.activation_dropout,
        "feat_proj_dropout": cfg.dropout_input, "feat_quantizer_dropout": cfg.dropout_features,
        "layerdrop": cfg.encoder_layerdrop, "final_dropout": cfg.final_dropout, "apply_spec_augment": True,
        "mask_time_prob": cfg.mask_prob, "mask_time_length": cfg.mask_length,
        "mask_time_min_masks": cfg.mask_min_masks, "mask_feature_prob": cfg.mask_channel_prob,
        "mask_feature_length": cfg.mask_channel_length, "mask_feature_min_masks": cfg.mask_channel_min_masks,
        "proj_codevector_dim": cfg.final_dim, "codevector_dim": cfg.codevector_dim,
        "num_codevectors_per_group": cfg.latent_vars, "num_codevector_groups": cfg.latent_groups,
        "num_negatives": cfg.num_negatives, "contrastive_logits_temperature": cfg.logit_temp,
        "diversity_loss_weight": cfg.diversity_weight, "pad_token_id": pad_token_id,
        "ctc_loss_reduction": "sum", "ctc_zero_infinity": True, "add_adapter": False,
        "speechssl": cfg.to_dict(),
    }
    if vocab_size is not None:
        hf["vocab_size"] = vocab_size
    return hf


def _read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    safetensors_file, bin_file = directory / "model.safetensors", directory / "pytorch_model.bin"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        return load_file(str(safetensors_file))
    if bin_file.is_file():
        return torch.load(bin_file, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin (sharded checkpoints are "
                            "not supported)")


def _read_tokenizer(directory: Path, hf: dict[str, Any]) -> LetterTokenizer | None:
    vocab_file = directory / "vocab.json"
    if not vocab_file.is_file():
        return None
    vocab = json.loads(vocab_file.read_text(encoding="utf-8-sig"))
    if vocab and all(isinstance(v, dict) for v in vocab.values()):
        raise ValueError(f"{vocab_file}: multi-language vocabularies (MMS adapters) are not supported")
    tok_cfg_file = directory / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_file.read_text(encoding="utf-8-sig")) if tok_cfg_file.is_file() else {}

    def token(name: str, default: str) -> str:
        value = tok_cfg.get(name, default)
        return value.get("content", default) if isinstance(value, dict) else (value or default)

    symbols = [s for s, _ in sorted(vocab.items(), key=lambda kv: int(kv[1]))]
    if [int(vocab[s]) for s in symbols] != list(range(len(symbols))):
        raise ValueError(f"{vocab_file}: ids must be 0..{len(symbols) - 1} without gaps")
    pad_id = hf.get("pad_token_id")
    blank = symbols[pad_id] if isinstance(pad_id, int) and 0 <= pad_id < len(symbols) else token("pad_token",
                                                                                                 "<pad>")
    letters = [s for s in symbols if len(s) == 1 and s.isalpha()]
    uppercase = not letters or any(s.isupper() for s in letters)
    return LetterTokenizer(symbols, blank=blank, unk=token("unk_token", "<unk>"),
                           word_delimiter=token("word_delimiter_token", "|"), uppercase=uppercase)


def load_hf_directory(directory: str | Path) -> LoadedModel:
    """Import a transformers wav2vec2 directory (pretraining or CTC)."""
    directory = Path(directory)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory}: no config.json (not a Hugging Face model directory)")
    hf = json.loads(config_file.read_text(encoding="utf-8-sig"))
    prep_file = directory / "preprocessor_config.json"
    normalize = None
    if prep_file.is_file():
        normalize = json.loads(prep_file.read_text(encoding="utf-8-sig")).get("do_normalize")
    cfg = config_from_hf(hf, normalize=normalize)
    theirs = _read_state_dict(directory)
    if not any(k.startswith("wav2vec2.") for k in theirs):  # saved from a bare Wav2Vec2Model
        theirs = {("wav2vec2." + k if not k.startswith(("quantizer.", "project_", "lm_head.")) else k): v
                  for k, v in theirs.items()}
    task = "ctc" if "lm_head.weight" in theirs else "pretrain"
    ours = HF_KEYMAP.import_state_dict(theirs)
    tokenizer = None
    if task == "ctc":
        vocab_size = int(ours["head.weight"].shape[0])
        tokenizer = _read_tokenizer(directory, hf)
        check_vocab(tokenizer, vocab_size, str(directory))
        model = build_model(cfg, task, vocab_size)
    else:
        model = build_model(cfg, task)
    own = model.state_dict()
    # transformers drops masked_spec_embed when it never masks; a bare Wav2Vec2Model has no pretraining heads:
    # those parameters keep their initialisation
    keep = [k for k in own if k not in ours
            and (k == "encoder.mask_emb" or (task == "pretrain" and not k.startswith("encoder.")))]
    if any(k != "encoder.mask_emb" for k in keep):
        warnings.warn(f"{directory}: no pretraining heads in the checkpoint; quantizer, project_q and "
                      "final_proj start from their initialisation", stacklevel=2)
    load_exact(model, {**{k: own[k] for k in keep}, **ours}, str(directory))
    return LoadedModel(model=model.eval(), config=cfg, task=task, tokenizer=tokenizer, source="huggingface")


def export_hf_directory(
    model: Wav2Vec2ForPreTraining | Wav2Vec2ForCTC, directory: str | Path, *,
    tokenizer: LetterTokenizer | None = None,
) -> Path:
    """Write `model` as a transformers directory (config.json, model.safetensors [, vocab files])."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    task = "ctc" if isinstance(model, Wav2Vec2ForCTC) else "pretrain"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if getattr(model, "project_features", None) is not None:
        # The continuous-target head is a training aid transformers has no slot for; the exported model is the
        # plain wav2vec 2.0 pretraining model (its config says weight 0, so it reloads without the head).
        state = {k: v for k, v in state.items() if not k.startswith("project_features.")}
        cfg = cfg.replace(continuous_target_weight=0.0)
    if cfg.mask_prob == 0 and cfg.mask_channel_prob == 0:
        state.pop("encoder.mask_emb")  # transformers builds masked_spec_embed only when it masks
    pad_id = tokenizer.blank_index if tokenizer is not None else 0
    vocab_size = model.vocab_size if task == "ctc" else None
    if task == "ctc":
        check_vocab(tokenizer, model.vocab_size, "export")
    hf = config_to_hf(cfg, task, vocab_size=vocab_size, pad_token_id=pad_id)
    (directory / "config.json").write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
    weights = directory / "model.safetensors"
    save_file(HF_KEYMAP.export_state_dict(state), str(weights), metadata={"format": "pt"})
    # safetensors creates its file 0600; give it the mode of the files beside it (the user's umask)
    os.chmod(weights, (directory / "config.json").stat().st_mode & 0o777)
    preprocessor = {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": SAMPLE_RATE,
        "padding_value": 0.0, "padding_side": "right", "do_normalize": cfg.normalize,
        # transformers passes attention_mask only to layer-norm models (group-norm ones leak padding)
        "return_attention_mask": cfg.extractor_mode == "layer_norm",
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n", encoding="utf-8")
    if tokenizer is not None:
        vocab = {s: i for i, s in enumerate(tokenizer.symbols)}
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
        tok_cfg = {
            "tokenizer_class": "Wav2Vec2CTCTokenizer", "pad_token": tokenizer.blank, "unk_token": tokenizer.unk,
            "word_delimiter_token": tokenizer.word_delimiter, "do_lower_case": False,
            "bos_token": "<s>" if "<s>" in vocab and tokenizer.blank != "<s>" else None,
            "eos_token": "</s>" if "</s>" in vocab else None,
        }
        (directory / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n", encoding="utf-8")
    return directory
