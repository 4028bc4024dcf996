"""Encoder, pretraining and CTC models: padding invariance, batch consistency, learning, shapes, errors."""

from __future__ import annotations

import pytest
import torch

from speechssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPreTraining, sample_distractors
from speechssl.models.losses import contrastive_logits, num_correct


def _padded_batch(lengths: list[int], seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    items = [torch.randn(n, generator=g) for n in lengths]
    batch = torch.zeros(len(items), max(lengths))
    padding = torch.ones(len(items), max(lengths), dtype=torch.bool)
    for i, x in enumerate(items):
        batch[i, : len(x)] = x
        batch[i, len(x) :] = 3.0  # loud garbage in the padding: it must not leak
        padding[i, : len(x)] = False
    return items, batch, padding


@pytest.mark.parametrize("layout", ["tiny_cfg", "tiny_ln_cfg"])
def test_padding_invariance(layout, request):
    cfg = request.getfixturevalue(layout)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(cfg, vocab_size=12).eval()
    items, batch, padding = _padded_batch([8000, 5123, 2400])
    with torch.no_grad():
        out = model(batch, padding)
        for i, x in enumerate(items):
            alone = model(x[None])
            n = alone.logits.shape[1]
            assert out.lengths[i].item() == n
            assert (out.logits[i, :n] - alone.logits[0]).abs().max().item() <= 1e-4
            assert out.padding_mask[i, n:].all() and not out.padding_mask[i, :n].any()


def test_pretraining_padding_invariance(tiny_cfg):
    torch.manual_seed(1)
    model = Wav2Vec2ForPreTraining(tiny_cfg).eval()
    lengths = [8000, 4800]
    items, batch, padding = _padded_batch(lengths)
    frames = model.encoder.output_lengths(torch.tensor(lengths)).tolist()  # [24, 14]
    mask = torch.zeros(2, frames[0], dtype=torch.bool)
    mask[0, 3:15] = True
    mask[1, 2:8] = True
    negatives = sample_distractors(mask, tiny_cfg.num_negatives, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(batch, padding, mask_indices=mask, negative_indices=negatives)
        row = 0
        for i, x in enumerate(items):
            n = frames[i]
            own_negatives = negatives[i : i + 1, :n] - i * frames[0]  # flat indices within the lone utterance
            alone = model(x[None], mask_indices=mask[i : i + 1, :n], negative_indices=own_negatives)
            rows = slice(row, row + alone.sample_size)
            # identical distractors are -inf on both sides; assert_close treats equal infinities as equal
            torch.testing.assert_close(out.logits[rows], alone.logits, atol=1e-4, rtol=0)
            torch.testing.assert_close(out.targets[rows], alone.targets, atol=1e-4, rtol=0)
            row += alone.sample_size
    assert row == out.sample_size


def test_batch_consistency_without_padding(tiny_cfg):
    torch.manual_seed(2)
    model = Wav2Vec2ForCTC(tiny_cfg, vocab_size=8).eval()
    batch = torch.randn(4, 6000)
    with torch.no_grad():
        together = model(batch).logits
        apart = torch.cat([model(batch[i : i + 1]).logits for i in range(4)])
    assert (together - apart).abs().max() <= 1e-5


def test_ctc_shapes_and_lengths(tiny_cfg):
    model = Wav2Vec2ForCTC(tiny_cfg, vocab_size=32)
    _, batch, padding = _padded_batch([16000, 8000])
    out = model(batch, padding)
    assert out.logits.shape == (2, 49, 32)
    assert out.lengths.tolist() == [49, 24]
    assert torch.equal(out.lengths, model.encoder.output_lengths(torch.tensor([16000, 8000])))
    out = model(batch[:, :8000], return_hidden_states=True)
    assert out.padding_mask is None and len(out.hidden_states) == tiny_cfg.encoder_layers + 1
    assert torch.count_nonzero(model.head.bias) == 0


def test_ctc_masks_only_in_training(tiny_cfg):
    torch.manual_seed(3)
    model = Wav2Vec2ForCTC(tiny_cfg.replace(mask_channel_prob=0.5, dropout=0, dropout_input=0,
                                            attention_dropout=0, encoder_layerdrop=0), vocab_size=8)
    x = torch.randn(2, 6000)
    model.eval()
    a, b = model(x).logits, model(x).logits
    assert torch.equal(a, b)
    model.train()
    assert not torch.allclose(model(x).logits, a)


def test_zero_length_and_too_short_inputs_raise(tiny_cfg):
    model = Wav2Vec2ForCTC(tiny_cfg, vocab_size=8)
    with pytest.raises(ValueError, match="receptive field"):
        model(torch.zeros(1, 0))
    with pytest.raises(ValueError, match="receptive field"):
        model(torch.zeros(2, 300))
    padding = torch.zeros(2, 4000, dtype=torch.bool)
    padding[1, 100:] = True
    with pytest.raises(ValueError, match="receptive field"):
        model(torch.zeros(2, 4000), padding)


def test_pretraining_output_and_distractor_contract(tiny_cfg):
    torch.manual_seed(4)
    model = Wav2Vec2ForPreTraining(tiny_cfg).eval()
    x = torch.randn(2, 8000)
    out = model(x)
    s, k = out.sample_size, tiny_cfg.num_negatives
    assert out.logits.shape == (s, 1 + k) and out.logits.dtype == torch.float32
    assert s == int(out.mask_indices.sum()) and out.targets.shape == (s, tiny_cfg.final_dim)
    expected = (out.contrastive_loss + 0.1 * out.diversity_loss * s + 10 * out.feature_penalty * s)
    torch.testing.assert_close(out.loss, expected)
    assert out.num_count == s and 0 <= out.num_correct <= s
    unmasked = int((~out.mask_indices).reshape(-1).nonzero()[0])
    bad = sample_distractors(out.mask_indices, k)
    bad[out.mask_indices] = unmasked
    with pytest.raises(ValueError, match="masked steps"):
        model(x, mask_indices=out.mask_indices, negative_indices=bad)
    with pytest.raises(ValueError, match="padding"):
        pad = torch.zeros_like(x, dtype=torch.bool)
        pad[1, 4000:] = True
        model(x, pad, mask_indices=torch.ones_like(out.mask_indices))


def test_identical_negative_gets_minus_inf_and_accuracy_rule():
    pred = torch.randn(3, 4)
    targets = torch.randn(3, 4)
    negatives = torch.randn(3, 2, 4)
    negatives[1, 0] = targets[1]
    logits = contrastive_logits(pred, targets, negatives, 0.1)
    assert logits[1, 1] == float("-inf") and torch.isfinite(logits[[0, 2]]).all()
    ties = torch.zeros(2, 5)  # all-equal rows never count as correct (fairseq)
    assert num_correct(ties) == 0
    assert num_correct(torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])) == 1


def test_tiny_pretraining_loss_falls_with_healthy_codebook(tiny_cfg):
    torch.manual_seed(5)
    model = Wav2Vec2ForPreTraining(tiny_cfg).train()
    x = torch.randn(4, 8000)
    mask = model.encoder.make_time_mask((4, 24), None, seeds=[0, 1, 2, 3])
    negatives = sample_distractors(mask, tiny_cfg.num_negatives, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for step in range(50):
        model.set_num_updates(step)
        out = model(x, mask_indices=mask, negative_indices=negatives)
        assert out.code_perplexity.item() > 1.0
        opt.zero_grad()
        (out.loss / out.sample_size).backward()
        opt.step()
        losses.append(out.loss.item() / out.sample_size)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)


def test_from_pretrained_encoder_copies_the_encoder(tiny_cfg):
    torch.manual_seed(6)
    pre = Wav2Vec2ForPreTraining(tiny_cfg)
    ctc = Wav2Vec2ForCTC.from_pretrained_encoder(
        pre, 10, tiny_cfg.replace(feature_grad_mult=0.0, mask_prob=0.5, encoder_layerdrop=0.1))
    assert ctc.config.feature_grad_mult == 0.0 and ctc.config.mask_prob == 0.5
    for (name, p), (_, q) in zip(pre.encoder.state_dict().items(), ctc.encoder.state_dict().items()):
        assert torch.equal(p, q), name
    x = torch.randn(1, 4000)
    out = ctc.train()(x)
    out.logits.sum().backward()
    assert all(p.grad is None for p in ctc.encoder.feature_encoder.parameters())  # feature_grad_mult 0


def test_autocast_keeps_logits_and_perplexities_in_fp32(tiny_cfg):
    torch.manual_seed(7)
    model = Wav2Vec2ForPreTraining(tiny_cfg).train()
    x = torch.randn(2, 8000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.logits.dtype == torch.float32
    assert out.prob_perplexity.dtype == torch.float32 and out.feature_penalty.dtype == torch.float32
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_feature_lengths_helper(tiny_cfg):
    from speechssl.models import feature_lengths

    assert feature_lengths([16000, 400, 399], tiny_cfg).tolist() == [49, 1, 0]


def test_continuous_target_term_scores_projected_features_with_the_same_distractors(tiny_cfg):
    """The auxiliary term: same predictions and distractor rows, targets = project_features(features)."""
    assert Wav2Vec2ForPreTraining(tiny_cfg).project_features is None  # off by default: wav2vec 2.0 exactly
    cfg = tiny_cfg.replace(continuous_target_weight=0.5)
    torch.manual_seed(6)
    model = Wav2Vec2ForPreTraining(cfg).eval()
    x = torch.randn(2, 8000)
    mask = model.encoder.make_time_mask((2, 24), None, seeds=[0, 1])
    negatives = sample_distractors(mask, cfg.num_negatives, generator=torch.Generator().manual_seed(0))
    out = model(x, mask_indices=mask, negative_indices=negatives)
    with torch.no_grad():
        enc = model.encoder(x, mask_indices=mask)
        predictions = model.final_proj(enc.last_hidden_state[mask])
        targets = model.project_features(enc.features[mask])
        rows = model._negative_rows(mask, negatives)
        logits = contrastive_logits(predictions, targets, targets[rows], cfg.logit_temp)
        expected = torch.nn.functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long),
                                                     reduction="sum")
    torch.testing.assert_close(out.continuous_loss, expected, rtol=1e-5, atol=1e-4)
    assert out.continuous_num_correct == num_correct(logits)
    s = out.sample_size
    paper = out.contrastive_loss + 0.1 * out.diversity_loss * s + 10 * out.feature_penalty * s
    torch.testing.assert_close(out.loss, paper + 0.5 * out.continuous_loss)
    with pytest.raises(ValueError, match="continuous_target_weight"):
        tiny_cfg.replace(continuous_target_weight=-1.0)


@pytest.mark.parametrize("layout", ["tiny_cfg", "tiny_ln_cfg"])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(layout, request):
    """checkpoint_activations recomputes every Transformer layer in the backward pass (each layer's forward runs
    twice per step) and changes nothing else: with every dropout on (and LayerDrop), the loss and every
    gradient equal the stored-activation step's exactly (tolerance 0: the recomputation replays the same
    operations from the same random state), and the state dict has the same keys."""
    cfg = request.getfixturevalue(layout).replace(dropout=0.2, attention_dropout=0.2, activation_dropout=0.2,
                                                  encoder_layerdrop=0.3)
    _, batch, padding = _padded_batch([8000, 6400])
    results = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = Wav2Vec2ForPreTraining(cfg.replace(checkpoint_activations=recompute)).train()
        calls = []
        for layer in model.encoder.context.layers:
            # a pre-hook: the recomputation stops once it has rebuilt what backward needs (torch's early stop),
            # before a forward hook would run
            layer.register_forward_pre_hook(lambda *_, calls=calls: calls.append(1))
        torch.manual_seed(1)  # dropout and LayerDrop draws
        out = model(batch, padding, mask_seeds=[3, 4])
        kept = len(calls)
        out.loss.backward()
        assert len(calls) == (2 * kept if recompute else kept)
        results.append((out.loss.detach(), {k: p.grad for k, p in model.named_parameters()}, model.state_dict()))
    (loss, grads, state), (loss_ckpt, grads_ckpt, state_ckpt) = results
    assert torch.equal(loss, loss_ckpt)
    assert grads.keys() == grads_ckpt.keys() and state.keys() == state_ckpt.keys()
    for name, grad in grads.items():
        assert (grad is None) == (grads_ckpt[name] is None), name
        if grad is not None:
            assert torch.equal(grad, grads_ckpt[name]), (name, (grad - grads_ckpt[name]).abs().max())


def test_checkpoint_activations_must_be_a_bool(tiny_cfg):
    with pytest.raises(ValueError, match="checkpoint_activations"):
        tiny_cfg.replace(checkpoint_activations="yes")
