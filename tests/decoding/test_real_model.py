"""End to end on a real (tiny, random) Wav2Vec2ForCTC saved as a speechssl checkpoint."""

import dataclasses
import json
from itertools import pairwise

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch

from speechssl.cli.main import main
from speechssl.models import Wav2Vec2ForCTC, get_preset


@pytest.fixture
def tiny_checkpoint(tmp_path, tokenizer):
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    model = Wav2Vec2ForCTC(cfg, len(tokenizer))
    with torch.no_grad():  # a head that prefers letters over blank, so hypotheses are not empty
        model.head.bias[tokenizer.blank_index] = -2.0
    path = tmp_path / "ckpt" / "tiny.pt"
    path.parent.mkdir()
    torch.save({"format": "speechssl", "version": 1, "task": "ctc", "model_config": dataclasses.asdict(cfg),
                "vocab": list(tokenizer.symbols), "blank": tokenizer.blank, "model": model.state_dict()}, path)
    return path


@pytest.fixture
def tiny_data(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    root.mkdir()
    lines = [str(root)]
    refs = ["HELLO WORLD", "A B C", "GOOD MORNING", "YES"]
    for i, seconds in enumerate([1.0, 1.7, 0.6, 1.3]):
        n = int(seconds * 16000)
        sf.write(root / f"u{i}.flac", rng.uniform(-0.4, 0.4, n).astype(np.float32), 16000)
        lines.append(f"u{i}.flac\t{n}")
    (root / "test.tsv").write_text("\n".join(lines) + "\n")
    (root / "test.wrd").write_text("\n".join(refs) + "\n")
    return root


def test_evaluate_real_tiny_model_batched_equals_one_by_one(tiny_checkpoint, tiny_data, tmp_path, capsys):
    outputs = {}
    for name, batch_seconds in (("batched", "100"), ("single", "0.5")):
        out = tmp_path / name
        assert main(["evaluate", str(tiny_checkpoint), str(tiny_data), "--out", str(out), "--device", "cpu",
                     "--batch-seconds", batch_seconds]) == 0
        rows = [line.split("\t") for line in (out / "utterances-test.tsv").read_text().splitlines()[1:]]
        summary = json.loads((out / "summary-test.json").read_text())
        assert summary["wer_fraction"] == pytest.approx(jiwer.wer([r[1] for r in rows], [r[2] for r in rows]))
        outputs[name] = [r[2] for r in rows]
    # Padding in a batch must not change any hypothesis.
    assert outputs["batched"] == outputs["single"]
    assert any(outputs["batched"])


def test_transcribe_real_tiny_model_chunked(tiny_checkpoint, tmp_path, capsys):
    rng = np.random.default_rng(2)
    wav = tmp_path / "long.wav"
    sf.write(wav, rng.uniform(-0.4, 0.4, 12 * 16000).astype(np.float32), 16000)
    records = {}
    for name, chunk in (("whole", "0"), ("chunked", "4")):
        assert main(["transcribe", str(tiny_checkpoint), str(wav), "--format", "jsonl", "--device", "cpu",
                     "--chunk-seconds", chunk, "--overlap", "1"]) == 0
        records[name] = json.loads(capsys.readouterr().out)
    assert records["whole"]["chunks"] == 1 and records["chunked"]["chunks"] == 4
    for record in records.values():
        words = record["words"]
        assert words and [w["word"] for w in words] == record["text"].split()
        assert all(a["end"] <= b["start"] for a, b in pairwise(words))
        assert 0 <= words[0]["start"] and words[-1]["end"] <= 12.0


def test_features_cli_on_a_checkpoint(tiny_checkpoint, tiny_data, tmp_path, capsys):
    out = tmp_path / "feats"
    assert main(["features", str(tiny_checkpoint), str(tiny_data), "--subset", "test", "--layers", "0,2",
                 "--out", str(out), "--device", "cpu"]) == 0
    index = (out / "test" / "index.tsv").read_text().splitlines()
    total = sum(int(line.split("\t")[2]) for line in index[1:])
    assert np.load(out / "test" / "layer2.npy").shape == (total, 32)
    assert main(["features", str(tiny_checkpoint), str(tiny_data), "--subset", "test", "--layers", "5",
                 "--out", str(out)]) == 2
    assert "`layers`" in capsys.readouterr().err


def test_chunked_emissions_are_frame_exact_for_a_local_real_model():
    """With attention switched off (out_proj = 0) the tiny model only sees +-8 frames (positional conv) and
    no whole-utterance statistics (layer_norm extractor), so chunking with 1 s overlap must reproduce the
    unchunked emissions exactly: this checks the sample -> frame mapping and the merge on the real encoder."""
    from speechssl.decoding.inference import ModelEmitter
    from speechssl.decoding.transcribe import ChunkConfig, chunked_emissions

    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(get_preset("tiny").replace(extractor_mode="layer_norm", conv_bias=True), 32)
    for layer in model.encoder.context.layers:
        torch.nn.init.zeros_(layer.attn.out_proj.weight)
        torch.nn.init.zeros_(layer.attn.out_proj.bias)
    emitter = ModelEmitter(model)
    wave = np.random.default_rng(0).standard_normal(16000 * 15 + 123).astype(np.float32) * 0.1
    whole = chunked_emissions(wave, emitter, ChunkConfig(chunk_seconds=0))
    chunked = chunked_emissions(wave, emitter, ChunkConfig(chunk_seconds=5, overlap_seconds=1))
    assert chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=0)


def test_recording_statistics_make_chunks_of_a_group_norm_model_frame_exact():
    """The same with BASE's group-norm extractor, whose GroupNorm normalises over the whole input: with the
    recording's statistics (transcribe's default) 4 s chunks reproduce the unchunked emissions; with each
    chunk's own (the recording grows louder, so they differ) they do not."""
    from speechssl.decoding.inference import ModelEmitter
    from speechssl.decoding.transcribe import ChunkConfig, chunked_emissions

    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(get_preset("tiny"), 32)
    for layer in model.encoder.context.layers:
        torch.nn.init.zeros_(layer.attn.out_proj.weight)
        torch.nn.init.zeros_(layer.attn.out_proj.bias)
    emitter = ModelEmitter(model)
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal(16000 * 12 + 77) * np.linspace(0.02, 0.4, 16000 * 12 + 77)).astype(np.float32)
    whole = chunked_emissions(wave, emitter, ChunkConfig(chunk_seconds=0))
    chunked = chunked_emissions(wave, emitter, ChunkConfig(chunk_seconds=4, overlap_seconds=1))
    torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=0)
    own = chunked_emissions(wave, emitter, ChunkConfig(chunk_seconds=4, overlap_seconds=1,
                                                       recording_statistics=False))
    assert (own - whole).abs().max() > 1e-2


def test_bf16_emissions_are_fp32_within_bf16_rounding():
    """--precision bf16 runs the model under autocast: the emissions change (so autocast is on) but stay
    within bf16 rounding of fp32's, and the greedy path mostly agrees."""
    from speechssl.decoding.inference import ModelEmitter

    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(get_preset("tiny"), 32)
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32) * 0.1)
    fp32 = ModelEmitter(model)(wave).log_probs
    bf16_emitter = ModelEmitter(model, precision="bf16")
    assert bf16_emitter.precision == "bf16"
    bf16 = bf16_emitter(wave).log_probs
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert not torch.equal(bf16, fp32)
    torch.testing.assert_close(bf16, fp32, atol=0.1, rtol=0)
    assert float((bf16.argmax(-1) == fp32.argmax(-1)).float().mean()) > 0.9


def test_weights_cast_once_give_the_same_bits_as_autocast(tiny_checkpoint):
    """load_ctc(precision="bf16") casts linear/conv weights to bf16 once (weight norm folded first): the
    emissions are bit for bit those of autocast over the fp32 weights; norms and the waveform conv stay fp32."""
    from speechssl.decoding.inference import ModelEmitter, load_ctc

    loaded = load_ctc(tiny_checkpoint, precision="bf16")
    model = loaded.emitter.model
    reference = load_ctc(tiny_checkpoint).emitter.model  # fp32 weights
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32) * 0.1)
    expected = ModelEmitter(reference, precision="bf16")(wave).log_probs  # autocast casts at every call
    assert torch.equal(loaded.emitter(wave).log_probs, expected)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    pos_conv = model.encoder.context.pos_conv.conv
    assert type(pos_conv) is torch.nn.Conv1d and pos_conv.weight.dtype == torch.bfloat16  # weight norm folded
    assert model.encoder.feature_encoder.blocks[0].conv.weight.dtype == torch.float32
    assert all(p.dtype == torch.float32 for m in model.modules() if isinstance(m, torch.nn.LayerNorm | torch.nn.GroupNorm)
               for p in m.parameters())
    assert all(p.dtype == torch.float32 for p in load_ctc(tiny_checkpoint).emitter.model.parameters())  # fp32: untouched


def test_precision_is_checked_and_reported(tiny_checkpoint, tiny_data, tmp_path, capsys):
    from speechssl.decoding.inference import ModelEmitter

    with pytest.raises(ValueError, match="--precision=fp16 needs a CUDA"):
        ModelEmitter(Wav2Vec2ForCTC(get_preset("tiny"), 32), precision="fp16")
    out = tmp_path / "bf16"
    assert main(["evaluate", str(tiny_checkpoint), str(tiny_data), "--out", str(out), "--device", "cpu",
                 "--precision", "bf16"]) == 0
    assert json.loads((out / "summary-test.json").read_text())["precision"] == "bf16"
    assert "(bf16)" in capsys.readouterr().out
