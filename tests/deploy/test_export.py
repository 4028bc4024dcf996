"""`speechssl export`: the folder's files, its graph against the torch model, padding, int8, errors."""

import json

import numpy as np
import pytest
import torch

from speechssl.cli.main import main
from speechssl.decoding.inference import load_ctc
from speechssl.decoding.transcribe import ChunkConfig, chunked_emissions
from speechssl.deploy.bundle import read_bundle_config
from speechssl.deploy.runtime import OnnxEmitter, window_statistics
from speechssl.models import get_preset

# the onnx extra (`make install` installs it): without it these tests skip, counted
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install -e '.[onnx]'")
for _module in ("onnxruntime", "onnxscript"):
    pytest.importorskip(_module, reason="the onnx extra is not installed: pip install -e '.[onnx]'")


def test_folder_holds_graph_vocabulary_geometry_and_decoder(onnx_folder, tiny_checkpoint, tokenizer):
    config = read_bundle_config(onnx_folder)
    assert sorted(p.name for p in onnx_folder.iterdir()) == [
        "3gram.arpa", "3gram.lexicon.txt", "config.json", "features.onnx", "model.onnx"]
    tiny = get_preset("tiny")
    assert config.geometry == tiny.geometry  # the model config's, copied into the folder
    assert config.make_tokenizer().symbols == tokenizer.symbols and config.precision == "fp32"
    assert config.decoder.decoder == "kenlm" and config.decoder.lm == "3gram.arpa"
    assert config.decoder.beam["beam"] == 20 and config.decoder.beam["lm_weight"] == 1.0
    graph = onnx.load(str(onnx_folder / "model.onnx"))
    assert graph.opset_import[0].version == config.opset == 18
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    assert dims["waveforms"] == ["batch", "samples"] and dims["lengths"] == ["batch"]
    assert dims["window_mean"] == [10] and dims["window_cov"] == [10, 10]
    out = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.graph.output}
    assert out["log_probs"][0] == "batch" and isinstance(out["log_probs"][1], str) and out["log_probs"][2] == 32


def test_onnx_log_probs_equal_torch_within_1e4_on_a_padded_batch(onnx_folder, tiny_checkpoint):
    torch_emitter = load_ctc(tiny_checkpoint).emitter
    onnx_emitter = OnnxEmitter(onnx_folder)
    rng = np.random.default_rng(5)
    lengths = [24000, 16000, 9001, 400]
    waveforms = np.zeros((4, 24000), np.float32)
    mask = np.ones((4, 24000), bool)
    for b, n in enumerate(lengths):
        waveforms[b, :n] = rng.uniform(-0.5, 0.5, n)
        mask[b, :n] = False
    expected = torch_emitter(torch.from_numpy(waveforms), torch.from_numpy(mask))
    got = onnx_emitter(waveforms, mask)
    assert got.lengths.tolist() == expected.lengths.tolist() == [74, 49, 27, 1]
    for b, n in enumerate(got.lengths.tolist()):
        np.testing.assert_allclose(got.log_probs[b, :n], expected.log_probs[b, :n].numpy(), atol=1e-4, rtol=0)
        assert (got.log_probs[b, :n].argmax(-1) == expected.log_probs[b, :n].numpy().argmax(-1)).all()


def test_padded_batch_gives_each_utterance_what_it_gets_alone(onnx_folder):
    emitter = OnnxEmitter(onnx_folder)
    rng = np.random.default_rng(6)
    waves = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (20000, 13000, 6000)]
    batch = np.full((3, 20000), 0.7, np.float32)  # padding holds junk
    mask = np.ones((3, 20000), bool)
    for b, w in enumerate(waves):
        batch[b, :len(w)], mask[b, :len(w)] = w, False
    together = emitter(batch, mask)
    for b, w in enumerate(waves):
        alone = emitter(w[None, :])
        n = int(alone.lengths[0])
        assert together.lengths[b] == n
        np.testing.assert_allclose(together.log_probs[b, :n], alone.log_probs[0], atol=1e-5, rtol=0)


def test_chunked_onnx_emissions_equal_chunked_torch_emissions(onnx_folder, tiny_checkpoint):
    """transcribe's chunking with the recording's statistics: the onnx graph takes them as inputs."""
    wave = (np.random.default_rng(7).standard_normal(16000 * 7 + 33) * np.linspace(0.05, 0.4, 16000 * 7 + 33))
    wave = wave.astype(np.float32)
    chunking = ChunkConfig(chunk_seconds=2, overlap_seconds=0.5)
    expected = chunked_emissions(wave, load_ctc(tiny_checkpoint).emitter, chunking)
    got = chunked_emissions(wave, OnnxEmitter(onnx_folder), chunking)
    assert isinstance(got, np.ndarray) and got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=0)


def test_window_statistics_equal_the_torch_encoders(tiny_checkpoint):
    encoder = load_ctc(tiny_checkpoint).emitter.model.encoder.feature_encoder
    wave = np.random.default_rng(8).standard_normal(50001).astype(np.float32) * 0.3 + 0.05
    expected = encoder.waveform_statistics(torch.from_numpy(wave))
    got = window_statistics(wave, 10, 5, block_frames=1000)  # several blocks
    assert got.frames == expected.frames == 9999
    np.testing.assert_allclose(got.mean, expected.mean.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.cov, expected.cov.numpy(), rtol=1e-9, atol=1e-14)


def test_int8_folder_quantizes_the_linear_layers_and_stays_close(int8_folder, onnx_folder):
    graph = onnx.load(str(int8_folder / "model.onnx"))
    ops = {node.op_type for node in graph.graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops and "Conv" in ops  # convolutions stay fp32
    assert read_bundle_config(int8_folder).precision == "int8"
    wave = np.random.default_rng(9).uniform(-0.5, 0.5, (1, 16000)).astype(np.float32)
    fp32, int8 = OnnxEmitter(onnx_folder)(wave), OnnxEmitter(int8_folder)(wave)
    diff = np.abs(np.exp(fp32.log_probs) - np.exp(int8.log_probs)).max()
    assert 0 < diff < 0.1  # changed (quantized), but the probabilities stay close
    assert list((int8_folder.parent / "int8_cwd").iterdir()) == []  # no temp files where it ran


def test_export_cli_prints_the_check_and_refuses_bad_input(tmp_path, tiny_checkpoint, capsys):
    pretrain = tmp_path / "pretrain.pt"
    from speechssl.interop import save_speechssl_checkpoint
    from speechssl.models import Wav2Vec2ForPreTraining

    save_speechssl_checkpoint(pretrain, Wav2Vec2ForPreTraining(get_preset("tiny")))
    assert main(["export", str(pretrain), str(tmp_path / "out")]) == 2
    assert "'pretrain' checkpoint; export needs a CTC fine-tuned model" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["export", str(tiny_checkpoint), str(tmp_path / "out"), "--decoder", "kenlm"]) == 2
    assert "--lm" in capsys.readouterr().err


def test_a_folder_with_a_bad_config_is_refused_with_its_path(onnx_folder, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(onnx_folder, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "model.onnx").unlink()
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="names model.onnx, which is not in the folder"):
        OnnxEmitter(broken)
    config["precision"] = "int4"
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="`precision` must be one of"):
        read_bundle_config(broken)
    with pytest.raises(FileNotFoundError, match="not an export folder"):
        read_bundle_config(tmp_path)


def test_too_short_rows_are_refused_as_the_torch_model_refuses_them(onnx_folder):
    emitter = OnnxEmitter(onnx_folder)
    mask = np.zeros((2, 1000), bool)
    mask[1, 300:] = True
    with pytest.raises(ValueError, match=r"utterances of \[300\] samples are shorter than the receptive field"):
        emitter(np.zeros((2, 1000), np.float32), mask)
