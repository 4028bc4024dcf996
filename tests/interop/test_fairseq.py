"""fairseq checkpoints: a state dict with fairseq's parameter names loads with no missing or unexpected key and
gives the outputs of the same weights imported from transformers.

The fairseq names are derived here, independently of speechssl's own key map, by inverting transformers'
`convert_wav2vec2_original_pytorch_checkpoint_to_pytorch.py` MAPPING (+ its conv-layer rule: fairseq blocks
are Sequential(conv, dropout, norm, gelu), the layer norm wrapped in Sequential(Transpose, LN, Transpose)).
"""

from __future__ import annotations

import argparse
import re

import pytest
import torch
from hf_reference import VOCAB, hf_model, make_inputs, save_hf

from speechssl.interop import load_hf_directory, load_model
from speechssl.interop.fairseq import parse_conv_layers

# transformers name (after "wav2vec2.") -> fairseq name, the inverse of the conversion script's MAPPING
HF_TO_FAIRSEQ = {
    "feature_projection.projection": "post_extract_proj",
    "encoder.pos_conv_embed.conv": "encoder.pos_conv.0",
    "encoder.layers.*.attention.k_proj": "encoder.layers.*.self_attn.k_proj",
    "encoder.layers.*.attention.v_proj": "encoder.layers.*.self_attn.v_proj",
    "encoder.layers.*.attention.q_proj": "encoder.layers.*.self_attn.q_proj",
    "encoder.layers.*.attention.out_proj": "encoder.layers.*.self_attn.out_proj",
    "encoder.layers.*.layer_norm": "encoder.layers.*.self_attn_layer_norm",
    "encoder.layers.*.feed_forward.intermediate_dense": "encoder.layers.*.fc1",
    "encoder.layers.*.feed_forward.output_dense": "encoder.layers.*.fc2",
    "encoder.layers.*.final_layer_norm": "encoder.layers.*.final_layer_norm",
    "encoder.layer_norm": "encoder.layer_norm",
    "feature_projection.layer_norm": "layer_norm",
    "masked_spec_embed": "mask_emb",
}
HEADS = {"quantizer.codevectors": "quantizer.vars", "quantizer.weight_proj": "quantizer.weight_proj",
         "project_q": "project_q", "project_hid": "final_proj", "lm_head": "w2v_encoder.proj"}


def to_fairseq(hf_state: dict[str, torch.Tensor], layer_norm_extractor: bool, ctc: bool) -> dict:
    out = {}
    for key, value in hf_state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        if not key.startswith("wav2vec2."):
            head, leaf = next((h, key[len(h):]) for h in HEADS if key.startswith(h))
            out[HEADS[head] + leaf] = value
            continue
        name = key[len("wav2vec2."):]
        conv = re.match(r"feature_extractor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(\w+)$", name)
        if conv:
            i, part, leaf = conv.groups()
            inner = "0" if part == "conv" else ("2.1" if layer_norm_extractor else "2")
            fs = f"feature_extractor.conv_layers.{i}.{inner}.{leaf}"
        else:
            fs = None
            for hf_name, fs_name in HF_TO_FAIRSEQ.items():
                pattern = "^" + re.escape(hf_name).replace(r"\*", r"(\d+)") + r"(\..+)?$"
                m = re.match(pattern, name)
                if m:
                    layer = m.group(1) if "*" in hf_name else None
                    fs = (fs_name.replace("*", layer) if layer else fs_name) + (m.groups()[-1] or "")
                    break
            assert fs is not None, name
        out[("w2v_encoder.w2v_model." if ctc else "") + fs] = value
    return out


def fairseq_model_cfg(variant: str) -> dict:
    layer = variant == "layer"
    return {
        "_name": "wav2vec2", "extractor_mode": "layer_norm" if layer else "default",
        "conv_feature_layers": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] + [(32, 2, 2)]",
        "conv_bias": layer, "layer_norm_first": layer, "encoder_layers": 2, "encoder_embed_dim": 32,
        "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 4, "conv_pos": 16, "conv_pos_groups": 4,
        "final_dim": 16, "latent_vars": 24, "latent_groups": 2, "latent_dim": 0, "num_negatives": 10,
        "latent_temp": [2.0, 0.5, 0.999995], "activation_fn": "gelu", "quantize_targets": True,
        "dropout": 0.1, "dropout_input": 0.1, "dropout_features": 0.1, "encoder_layerdrop": 0.05,
        "mask_prob": 0.65, "mask_length": 10, "feature_grad_mult": 0.1, "logit_temp": 0.1,
    }


@pytest.mark.parametrize("variant", ["group", "layer"])
def test_pretraining_checkpoint_matches_the_hf_import(variant, tmp_path):
    hf = hf_model(variant, "pretrain", seed=5)
    reference = load_hf_directory(save_hf(hf, tmp_path / "hf")).model
    state = to_fairseq(hf.state_dict(), variant == "layer", ctc=False)
    ckpt = {"cfg": {"model": fairseq_model_cfg(variant), "task": {"normalize": variant == "layer"}},
            "model": state}
    torch.save(ckpt, tmp_path / "wav2vec_small.pt")
    loaded = load_model(tmp_path / "wav2vec_small.pt")  # raises on any missing or unexpected key
    assert loaded.source == "fairseq" and loaded.task == "pretrain"
    assert loaded.config.normalize == (variant == "layer") and loaded.config.encoder_layerdrop == 0.05
    x = make_inputs(variant)
    with torch.no_grad():
        a = reference(x.waveforms, x.padding_mask, mask_indices=x.mask_time_indices,
                      negative_indices=x.negative_indices)
        b = loaded.model(x.waveforms, x.padding_mask, mask_indices=x.mask_time_indices,
                         negative_indices=x.negative_indices)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-6, rtol=0)
    assert torch.equal(a.loss, b.loss)


def test_legacy_args_checkpoint(tmp_path):
    hf = hf_model("group", "pretrain", seed=6)
    reference = load_hf_directory(save_hf(hf, tmp_path / "hf")).model
    args = argparse.Namespace(arch="wav2vec2", **{k: v for k, v in fairseq_model_cfg("group").items()
                                                   if k != "_name"})
    args.latent_temp = "(2, 0.5, 0.999995)"  # argparse-era checkpoints store it as a string
    torch.save({"args": args, "model": to_fairseq(hf.state_dict(), False, ctc=False)}, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    x = torch.randn(1, 4000)
    with torch.no_grad():
        assert torch.equal(reference.encoder(x).last_hidden_state, loaded.model.encoder(x).last_hidden_state)


def test_ctc_checkpoint_with_dictionary(tmp_path):
    hf = hf_model("layer", "ctc", seed=7)
    reference = load_hf_directory(save_hf(hf, tmp_path / "hf")).model
    pre_cfg = fairseq_model_cfg("layer")
    model_cfg = {"_name": "wav2vec_ctc", "w2v_args": {"model": pre_cfg, "task": {"normalize": True}},
                 "apply_mask": True, "mask_prob": 0.5, "mask_channel_prob": 0.25, "mask_channel_length": 64,
                 "layerdrop": 0.1, "dropout": 0.0, "activation_dropout": 0.1, "attention_dropout": 0.0,
                 "dropout_input": 0.0, "feature_grad_mult": 0.0, "final_dropout": 0.0, "normalize": True}
    state = to_fairseq(hf.state_dict(), True, ctc=True)
    torch.save({"cfg": {"model": model_cfg}, "model": state}, tmp_path / "ctc.pt")
    # fairseq's dictionary: <s> <pad> </s> <unk> + dict.ltr.txt; 14 outputs = 4 specials + 10 letters
    (tmp_path / "dict.ltr.txt").write_text("".join(f"{s} {100 - i}\n" for i, s in enumerate(VOCAB[4:])))
    loaded = load_model(tmp_path / "ctc.pt", dictionary=tmp_path / "dict.ltr.txt")
    assert loaded.task == "ctc" and loaded.tokenizer.blank == "<s>" and loaded.tokenizer.blank_index == 0
    cfg = loaded.config
    assert (cfg.mask_prob, cfg.mask_channel_prob, cfg.encoder_layerdrop, cfg.feature_grad_mult) == (0.5, 0.25,
                                                                                                    0.1, 0.0)
    x = make_inputs("layer")
    with torch.no_grad():
        a = reference(x.waveforms, x.padding_mask).logits
        b = loaded.model(x.waveforms, x.padding_mask).logits
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="vocabulary has"):
        (tmp_path / "short.txt").write_text("| 2\nE 1\n")
        load_model(tmp_path / "ctc.pt", dictionary=tmp_path / "short.txt")


def test_unexpected_or_missing_keys_raise(tmp_path):
    hf = hf_model("group", "pretrain")
    state = to_fairseq(hf.state_dict(), False, ctc=False)
    cfg = {"cfg": {"model": fairseq_model_cfg("group")}}
    torch.save({**cfg, "model": {**state, "encoder.bogus.weight": torch.zeros(1)}}, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match="encoder.bogus.weight"):
        load_model(tmp_path / "extra.pt")
    del state["encoder.layers.1.fc2.weight"]
    torch.save({**cfg, "model": state}, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="missing"):
        load_model(tmp_path / "missing.pt")


def test_parse_conv_layers():
    spec = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"
    assert parse_conv_layers(spec) == [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    with pytest.raises(ValueError, match="unsupported"):
        parse_conv_layers("__import__('os')")
