"""Parity with transformers: import, same numbers; export, transformers loads it and gives the same numbers.

Tolerance 1e-4 max abs in fp32 (observed: 0 for hidden states, targets and logits; <= 4e-6 for the summed
contrastive loss). transformers' pretraining loss in eval mode uses the hard code perplexity for its
diversity term while fairseq (and speechssl) use the soft prob perplexity, so the fair comparison is:
contrastive loss to contrastive loss, code perplexity to code perplexity, and transformers' total to
contrastive + 0.1 * (G*V - code_perplexity) / (G*V) * S computed from speechssl's outputs.
"""

from __future__ import annotations

import json

import pytest
import torch
from hf_reference import SMALL_DIMS, VOCAB, hf_model, make_inputs, save_hf, transformers

from speechssl.interop import export_hf_directory, load_hf_directory

TOL = 1e-4


def _hf_logits(hf, out, negative_indices):
    """transformers' own contrastive logits (its static method), as (B, T, 1 + K), -inf where a distractor
    equals its positive."""
    q = out.projected_quantized_states  # (B, T, F)
    b, t, f = q.shape
    negs = q.reshape(-1, f)[negative_indices.reshape(-1)].reshape(b, t, -1, f).permute(2, 0, 1, 3)
    logits = hf.compute_contrastive_logits(q[None], negs, out.projected_states, 0.1)  # (1 + K, B, T)
    logits[1:][(q[None] == negs).all(-1)] = float("-inf")
    return logits.permute(1, 2, 0)


@pytest.mark.parametrize("variant", ["group", "layer"])
def test_pretraining_parity(variant, tmp_path):
    hf = hf_model(variant, "pretrain")
    loaded = load_hf_directory(save_hf(hf, tmp_path / "hf"))
    assert loaded.task == "pretrain" and loaded.config.layer_norm_first == (variant == "layer")
    ours = loaded.model
    x = make_inputs(variant)
    with torch.no_grad():
        ref = hf(x.waveforms, attention_mask=x.attention_mask, mask_time_indices=x.mask_time_indices,
                 sampled_negative_indices=x.negative_indices)
        ref_hidden = hf.wav2vec2(x.waveforms, attention_mask=x.attention_mask,
                                 mask_time_indices=x.mask_time_indices).last_hidden_state
        enc = ours.encoder(x.waveforms, x.padding_mask, mask_indices=x.mask_time_indices)
        out = ours(x.waveforms, x.padding_mask, mask_indices=x.mask_time_indices,
                   negative_indices=x.negative_indices)
    valid = ~enc.padding_mask if enc.padding_mask is not None else torch.ones_like(x.mask_time_indices)
    assert (enc.last_hidden_state[valid] - ref_hidden[valid]).abs().max() <= TOL
    mask = x.mask_time_indices
    assert (out.targets - ref.projected_quantized_states[mask]).abs().max() <= TOL
    torch.testing.assert_close(out.logits, _hf_logits(hf, ref, x.negative_indices)[mask], atol=TOL, rtol=0)
    assert abs(out.contrastive_loss - ref.contrastive_loss) <= TOL * out.sample_size
    assert abs(out.code_perplexity - ref.codevector_perplexity) <= TOL
    gv = SMALL_DIMS["num_codevectors_per_group"] * 2
    ours_as_hf = out.contrastive_loss + 0.1 * (gv - out.code_perplexity) / gv * out.sample_size
    assert abs(ours_as_hf - ref.loss) <= TOL * out.sample_size


@pytest.mark.parametrize("variant", ["group", "layer"])
def test_ctc_parity_and_vocab(variant, tmp_path):
    hf = hf_model(variant, "ctc", seed=1)
    loaded = load_hf_directory(save_hf(hf, tmp_path / "hf", with_vocab=True))
    assert loaded.task == "ctc" and loaded.tokenizer is not None
    assert loaded.tokenizer.symbols == VOCAB and loaded.tokenizer.blank_index == 0
    x = make_inputs(variant)
    with torch.no_grad():
        ref = hf(x.waveforms, attention_mask=x.attention_mask).logits
        out = loaded.model(x.waveforms, x.padding_mask)
    for i, n in enumerate(out.lengths.tolist()):
        assert (out.logits[i, :n] - ref[i, :n]).abs().max() <= TOL


@pytest.mark.parametrize(("variant", "task"), [("group", "pretrain"), ("layer", "ctc")])
def test_export_loads_in_transformers_with_same_outputs(variant, task, tmp_path):
    loaded = load_hf_directory(save_hf(hf_model(variant, task, seed=2), tmp_path / "hf", with_vocab=True))
    out_dir = export_hf_directory(loaded.model, tmp_path / "exported", tokenizer=loaded.tokenizer)
    cls = transformers.Wav2Vec2ForCTC if task == "ctc" else transformers.Wav2Vec2ForPreTraining
    reloaded = cls.from_pretrained(out_dir).eval()
    x = make_inputs(variant, seed=3)
    with torch.no_grad():
        if task == "ctc":
            ours = loaded.model(x.waveforms, x.padding_mask)
            theirs = reloaded(x.waveforms, attention_mask=x.attention_mask).logits
            n = ours.lengths.min()
            assert (ours.logits[:, :n] - theirs[:, :n]).abs().max() <= TOL
            tokenizer = transformers.Wav2Vec2CTCTokenizer.from_pretrained(out_dir)
            assert tokenizer.convert_ids_to_tokens(list(range(len(VOCAB)))) == VOCAB
            assert tokenizer.pad_token_id == 0
        else:
            ours = loaded.model(x.waveforms, mask_indices=x.mask_time_indices, negative_indices=x.negative_indices)
            theirs = reloaded(x.waveforms, mask_time_indices=x.mask_time_indices,
                              sampled_negative_indices=x.negative_indices)
            assert abs(ours.contrastive_loss - theirs.contrastive_loss) <= TOL * ours.sample_size
    # our own config rides along in config.json, so a round trip is lossless
    again = load_hf_directory(out_dir)
    assert again.config == loaded.config
    for (k, a), (_, b) in zip(loaded.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_legacy_weight_norm_keys_and_bare_encoder(tmp_path):
    from safetensors.torch import load_file, save_file

    hf = hf_model("group", "pretrain", seed=4)
    directory = save_hf(hf, tmp_path / "hf")
    reference = load_hf_directory(directory).model
    state = load_file(str(directory / "model.safetensors"))
    prefix = "wav2vec2.encoder.pos_conv_embed.conv."
    state[prefix + "weight_g"] = state.pop(prefix + "parametrizations.weight.original0")
    state[prefix + "weight_v"] = state.pop(prefix + "parametrizations.weight.original1")
    save_file(state, str(directory / "model.safetensors"))
    legacy = load_hf_directory(directory).model
    x = torch.randn(1, 4000)
    with torch.no_grad():
        a = reference.encoder(x).last_hidden_state
        assert torch.equal(a, legacy.encoder(x).last_hidden_state)
    # a bare Wav2Vec2Model (no heads, no "wav2vec2." prefix) imports with fresh pretraining heads
    bare = {k[len("wav2vec2."):]: v for k, v in state.items() if k.startswith("wav2vec2.")}
    save_file(bare, str(directory / "model.safetensors"))
    with pytest.warns(UserWarning, match="pretraining heads"):
        encoder_only = load_hf_directory(directory).model
    with torch.no_grad():
        assert torch.equal(a, encoder_only.encoder(x).last_hidden_state)


def test_unsupported_options_raise(tmp_path):
    directory = save_hf(hf_model("group", "pretrain"), tmp_path / "hf")
    cfg = json.loads((directory / "config.json").read_text())
    cfg["hidden_act"] = "relu"
    (directory / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="hidden_act"):
        load_hf_directory(directory)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, 95_044_608),  # transformers' default config = wav2vec2-base
        ({"feat_extract_norm": "layer", "conv_bias": True, "do_stable_layer_norm": True, "hidden_size": 1024,
          "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096, "codevector_dim": 768,
          "proj_codevector_dim": 768}, 317_390_592),  # wav2vec2-large-lv60
    ],
)
def test_released_layouts_import_with_exact_sizes(overrides, expected):
    from speechssl.interop import config_from_hf
    from speechssl.models import Wav2Vec2ForPreTraining

    cfg = config_from_hf(transformers.Wav2Vec2Config(**overrides).to_dict())
    with torch.device("meta"):
        ours = Wav2Vec2ForPreTraining(cfg)
        theirs = transformers.Wav2Vec2ForPreTraining(transformers.Wav2Vec2Config(**overrides))
    assert sum(p.numel() for p in ours.parameters()) == expected
    assert sum(p.numel() for p in theirs.parameters()) == expected


def test_export_drops_the_continuous_target_head(tmp_path):
    """A model pretrained with the auxiliary continuous-target term exports as plain wav2vec 2.0."""
    from speechssl.models import Wav2Vec2ForPreTraining, get_preset

    cfg = get_preset("tiny").replace(continuous_target_weight=1.0)
    torch.manual_seed(0)
    model = Wav2Vec2ForPreTraining(cfg).eval()
    out_dir = export_hf_directory(model, tmp_path / "exported")
    reloaded = transformers.Wav2Vec2ForPreTraining.from_pretrained(out_dir).eval()
    assert not any(k.startswith("project_features") for k in reloaded.state_dict())
    again = load_hf_directory(out_dir)
    assert again.config.continuous_target_weight == 0.0 and again.model.project_features is None
    for k, v in again.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
