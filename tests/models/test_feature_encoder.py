"""Feature encoder: lengths, masked group norm, gradient scaling, too-short inputs."""

from __future__ import annotations

import pytest
import torch

from speechssl.models import get_preset
from speechssl.models.feature_encoder import (
    ConvBlock,
    FeatureEncoder,
    GradMultiply,
    masked_group_norm,
    waveform_window_statistics,
    windowed_group_norm_conv,
)


def test_output_lengths_match_the_convolutions(tiny_cfg):
    enc = FeatureEncoder(tiny_cfg)
    for n in (400, 401, 719, 720, 8000, 16000):
        frames = enc(torch.randn(1, n)).shape[-1]
        assert enc.output_lengths(torch.tensor([n])).item() == frames
    assert enc.output_lengths(torch.tensor([16000, 399, 0])).tolist() == [49, 0, 0]


def test_masked_group_norm_equals_group_norm_on_the_valid_part():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 30)
    w, b = torch.randn(6), torch.randn(6)
    lengths = torch.tensor([30, 17])
    out = masked_group_norm(x, lengths, w, b, 1e-5)
    ref0 = torch.nn.functional.group_norm(x[:1], 6, w, b, 1e-5)
    ref1 = torch.nn.functional.group_norm(x[1:, :, :17], 6, w, b, 1e-5)
    torch.testing.assert_close(out[:1], ref0, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1:, :, :17], ref1, atol=1e-5, rtol=0)
    torch.testing.assert_close(masked_group_norm(x, None, w, b, 1e-5),
                               torch.nn.functional.group_norm(x, 6, w, b, 1e-5))


@pytest.mark.parametrize("padded", [False, True])
def test_windowed_group_norm_conv_equals_conv_then_group_norm(padded):
    """The first block's conv + GroupNorm folded into one matmul gives conv -> masked_group_norm, values and
    gradients, with a DC offset in the waveform and padded utterances."""
    torch.manual_seed(0)
    block = ConvBlock(1, 16, 10, 5, bias=False, norm="group")
    with torch.no_grad():
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 4000) * 0.1 + 0.3
    lengths = torch.tensor([799, 500, 300]) if padded else None
    params = [block.conv.weight, block.norm.weight, block.norm.bias]
    ref = masked_group_norm(block.conv(x[:, None]), lengths, block.norm.weight, block.norm.bias, 1e-5)
    out = windowed_group_norm_conv(x, lengths, block.conv.weight, 5, block.norm.weight, block.norm.bias, 1e-5)
    out = out.transpose(1, 2)  # (B, T, C) -> (B, C, T) as the reference
    valid = slice(None, 300)  # every utterance's valid frames
    torch.testing.assert_close(out[..., valid], ref[..., valid], atol=1e-5, rtol=0)
    g = torch.randn_like(ref)[..., valid]
    grads_ref = torch.autograd.grad((ref[..., valid] * g).sum(), params)
    grads_out = torch.autograd.grad((out[..., valid] * g).sum(), params)
    for a, b in zip(grads_ref, grads_out):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = block(x[:, :, None], lengths).transpose(1, 2)  # time-major frames in and out
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float()[..., valid], torch.nn.functional.gelu(ref)[..., valid], atol=0.05, rtol=0)


def test_waveform_window_statistics_equal_the_windows_mean_and_covariance():
    """Streamed in blocks (here 7 windows, a last partial block) with a DC offset, they equal the fp64 mean
    and biased covariance of all the (k,) windows at once."""
    torch.manual_seed(0)
    wave = torch.randn(1003) * 0.1 + 0.4
    windows = wave.double().unfold(0, 10, 5)  # (199, 10)
    centred = windows - windows.mean(0)
    for block_frames in (7, 199, 1 << 18):
        stats = waveform_window_statistics(wave, 10, 5, block_frames=block_frames)
        assert stats.frames == windows.shape[0] == 199
        torch.testing.assert_close(stats.mean, windows.mean(0), atol=1e-12, rtol=0)
        torch.testing.assert_close(stats.cov, centred.T @ centred / 199, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="9 samples"):
        waveform_window_statistics(torch.zeros(9), 10, 5)


def test_recording_statistics_normalise_a_chunk_as_the_whole_recording():
    """A span of a recording, encoded alone with the whole recording's statistics, gives the frames the
    whole recording has there; with its own statistics (a quieter span) it does not. The whole recording
    with its own statistics passed in gives what it gives without."""
    torch.manual_seed(0)
    enc = FeatureEncoder(get_preset("tiny"))
    gain = torch.linspace(0.02, 0.5, 16000 * 3)
    wave = torch.randn(16000 * 3) * gain + 0.05  # louder towards the end, a DC offset
    stats = enc.waveform_statistics(wave)
    with torch.no_grad():
        whole = enc(wave[None])[0].T  # (T, C)
        torch.testing.assert_close(enc(wave[None], statistics=stats)[0].T, whole, atol=1e-5, rtol=0)
        start = 320 * 10  # a whole number of frames: chunk frame j is whole frame 10 + j
        span = wave[None, start:start + 16000]
        alone = enc(span)[0].T
        chunk = enc(span, statistics=stats)[0].T
    torch.testing.assert_close(chunk, whole[10:10 + chunk.shape[0]], atol=1e-5, rtol=0)
    assert (alone - whole[10:10 + alone.shape[0]]).abs().max() > 0.1
    layer_norm = FeatureEncoder(get_preset("tiny").replace(extractor_mode="layer_norm", conv_bias=True))
    assert layer_norm.waveform_statistics(wave) is None  # frame-local: nothing to share
    with pytest.raises(ValueError, match="kernel of 10"):
        from speechssl.models.feature_encoder import WaveformStatistics

        enc(span, statistics=WaveformStatistics(mean=torch.zeros(4), cov=torch.eye(4), frames=1))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("mode", ["group_norm", "layer_norm"])
def test_blocks_equal_conv1d_blocks_in_either_layout(tiny_cfg, mode, channels_last, monkeypatch):
    """Every block (channels-last conv2d, Conv1d or window matmul inside) equals nn.Conv1d -> norm -> GELU on
    (B, C, T), values and gradients; channels-last (bf16 on the CPU, forced here in fp32) leaves the output a
    view of contiguous (B, T, C) memory."""
    import speechssl.models.feature_encoder as fe

    monkeypatch.setattr(fe, "channels_last_pays", lambda x: channels_last)
    torch.manual_seed(1)
    enc = FeatureEncoder(tiny_cfg.replace(extractor_mode=mode, conv_bias=mode == "layer_norm"))
    x = torch.randn(2, 3000)

    def reference(waveforms):
        h = waveforms[:, None, :]
        for block in enc.blocks:
            h = block.conv(h)
            if block.norm_kind == "group":
                h = torch.nn.functional.group_norm(h, h.shape[1], block.norm.weight, block.norm.bias, 1e-5)
            elif block.norm_kind == "layer":
                h = block.norm(h.transpose(1, 2)).transpose(1, 2)
            h = torch.nn.functional.gelu(h)
        return h

    out, ref = enc(x), reference(x)
    assert out.shape == ref.shape and (out.transpose(1, 2).is_contiguous() or not channels_last)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad((out * g).sum(), list(enc.parameters()))
    grads_ref = torch.autograd.grad((ref * g).sum(), list(enc.parameters()))
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_norms_run_in_fp32_under_autocast(tiny_cfg):
    enc = FeatureEncoder(tiny_cfg.replace(extractor_mode="layer_norm"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        block = enc.blocks[0]
        conv_out = block.conv(torch.randn(2, 1, 800))
        assert conv_out.dtype == torch.bfloat16
        out = block(torch.randn(2, 800, 1))  # time-major: (B, L, 1)
    assert out.dtype == torch.bfloat16  # fp32 inside, cast back like fairseq's Fp32LayerNorm
    assert torch.isfinite(out.float()).all()


def test_grad_multiply_scales_only_the_gradient():
    x = torch.ones(3, requires_grad=True)
    y = GradMultiply.apply(x, 0.1)
    assert torch.equal(y, x.detach())
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.1))


def test_too_short_input_raises_a_clear_error(tiny_cfg):
    enc = FeatureEncoder(tiny_cfg)
    with pytest.raises(ValueError, match="receptive field"):
        enc(torch.randn(2, 399))
    with pytest.raises(ValueError, match="receptive field"):
        enc(torch.randn(2, 0))
    with pytest.raises(ValueError, match="shorter than the receptive field"):
        enc(torch.randn(2, 800), torch.tensor([800, 100]))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        enc(torch.randn(800))


def test_layer_norm_mode_has_a_norm_per_block():
    enc = FeatureEncoder(get_preset("tiny").replace(extractor_mode="layer_norm", conv_bias=True))
    assert all(isinstance(b.norm, torch.nn.LayerNorm) for b in enc.blocks)
    assert all(b.conv.bias is not None for b in enc.blocks)


def test_channels_last_only_for_low_precision_on_the_cpu():
    from speechssl.models.feature_encoder import channels_last_pays

    x = torch.zeros(2, 3)
    assert not channels_last_pays(x) and channels_last_pays(x.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert channels_last_pays(x)
        enc = FeatureEncoder(get_preset("tiny"))
        assert enc(torch.randn(2, 4000)).transpose(1, 2).is_contiguous()
