"""ExportableCTC computes Wav2Vec2ForCTC's function in exportable operators (torch only, no export here)."""

import numpy as np
import pytest
import torch
from deploy_models import tiny_ctc_model

from speechssl.deploy.graph import ExportableCTC, graph_spec
from speechssl.models import Wav2Vec2ForCTC, get_preset

VARIANTS = {
    "base-like": {},  # group_norm extractor, post-LN
    "large-like": {"extractor_mode": "layer_norm", "conv_bias": True, "layer_norm_first": True},
}


def padded_batch(lengths, seed=0):
    rng = np.random.default_rng(seed)
    waveforms = torch.from_numpy(rng.uniform(-0.4, 0.4, (len(lengths), max(lengths))).astype(np.float32))
    lengths = torch.tensor(lengths)
    padding_mask = torch.arange(waveforms.shape[1])[None, :] >= lengths[:, None]  # (B, L)
    return waveforms.masked_fill(padding_mask, 0.3), lengths, padding_mask  # padding holds junk, not zeros


def graph_inputs(graph, waveforms, lengths):
    if not graph.statistics:
        return (waveforms, lengths)
    k = graph.config.conv_kernels[0]
    return (waveforms, lengths, torch.zeros(k), torch.zeros(k, k), torch.zeros(()))


@pytest.mark.parametrize("variant", VARIANTS)
def test_graph_equals_the_model_on_a_padded_batch(tokenizer, variant):
    model = tiny_ctc_model(tokenizer, **VARIANTS[variant])
    graph = ExportableCTC(model)
    waveforms, lengths, padding_mask = padded_batch([16000, 11111, 400, 7003])
    with torch.inference_mode():
        expected = model(waveforms, padding_mask)
        log_probs, out_lengths = graph(*graph_inputs(graph, waveforms, lengths))
    assert out_lengths.tolist() == expected.lengths.tolist() == [49, 34, 1, 21]
    reference = expected.logits.log_softmax(-1)
    for b, n in enumerate(out_lengths.tolist()):
        torch.testing.assert_close(log_probs[b, :n], reference[b, :n], atol=2e-5, rtol=0)
    assert graph_spec(model.config).input_names[2:] == (
        ("window_mean", "window_cov", "use_window_statistics") if variant == "base-like" else ())


def test_graph_with_recording_statistics_equals_the_model_given_them(tokenizer):
    """use_window_statistics = 1 normalises every row with a recording's windows, as the torch model does when
    it is given `waveform_statistics` (long-audio chunks)."""
    model = tiny_ctc_model(tokenizer)
    graph = ExportableCTC(model)
    recording = torch.from_numpy(np.random.default_rng(1).standard_normal(48000).astype(np.float32) * 0.2)
    statistics = model.encoder.feature_encoder.waveform_statistics(recording)
    chunks = torch.stack([recording[:16000], recording[16000:32000]]) * 1.7  # louder than the recording
    lengths = torch.tensor([16000, 16000])
    with torch.inference_mode():
        expected = model(chunks, waveform_statistics=statistics).logits.log_softmax(-1)
        own = model(chunks).logits.log_softmax(-1)
        given, _ = graph(chunks, lengths, statistics.mean.float(), statistics.cov.float(), torch.ones(()))
    torch.testing.assert_close(given, expected, atol=2e-5, rtol=0)
    assert (given - own).abs().max() > 1e-2  # the statistics matter: these chunks are louder


def test_features_graph_equals_the_encoders_hidden_states(tokenizer):
    model = tiny_ctc_model(tokenizer)
    graph = ExportableCTC(model, hidden_states=True)
    waveforms, lengths, padding_mask = padded_batch([8000, 5000])
    with torch.inference_mode():
        expected = model.encoder(waveforms, padding_mask, return_hidden_states=True)
        states, out_lengths = graph(*graph_inputs(graph, waveforms, lengths))
    assert states.shape == (len(model.encoder.context.layers) + 1, 2, 24, 32)
    for k, layer in enumerate(expected.hidden_states):
        for b, n in enumerate(out_lengths.tolist()):
            torch.testing.assert_close(states[k, b, :n], layer[b, :n], atol=2e-5, rtol=0)


def test_graph_leaves_the_model_it_copies_usable(tokenizer):
    """The positional convolution's weight norm is folded on a copy; the model keeps its parametrisation."""
    model = tiny_ctc_model(tokenizer)
    before = model(torch.zeros(1, 4000).normal_()).logits
    ExportableCTC(model)
    assert hasattr(model.encoder.context.pos_conv.conv, "parametrizations")
    assert model(torch.zeros(1, 4000).normal_()).logits.shape == before.shape
    assert isinstance(model, Wav2Vec2ForCTC) and get_preset("tiny").encoder_layers == 2
