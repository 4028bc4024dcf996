import numpy as np
import pytest
import soundfile as sf
import torch

from speechssl.decoding.features import FeatureDumpConfig, dump_features, parse_layers
from speechssl.models import Wav2Vec2ForCTC, get_preset


@pytest.fixture
def tiny_encoder():
    torch.manual_seed(0)
    return Wav2Vec2ForCTC(get_preset("tiny"), 32).encoder.eval()


@pytest.fixture
def unlabeled_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    root.mkdir()
    lines = [str(root)]
    for i, n in enumerate([8000, 12345, 6400]):
        sf.write(root / f"u{i}.wav", rng.uniform(-0.3, 0.3, n).astype(np.float32), 16000, subtype="FLOAT")
        lines.append(f"u{i}.wav\t{n}")
    (root / "dev.tsv").write_text("\n".join(lines) + "\n")
    return root


def _alone(encoder, path, layer):
    wave = torch.from_numpy(sf.read(path, dtype="float32")[0])[None]  # (1, L)
    with torch.inference_mode():
        return encoder(wave, return_hidden_states=True).hidden_states[layer][0].numpy()  # (T, D)


def test_npy_features_match_single_utterance_runs(tiny_encoder, unlabeled_dir, tmp_path):
    config = FeatureDumpConfig(subset="dev", layers=(0, 2), progress=False)
    dump = dump_features(tiny_encoder, unlabeled_dir, tmp_path / "feats", config)
    rows = [line.split("\t") for line in dump.index.read_text().splitlines()[1:]]
    assert [int(r[2]) for r in rows] == tiny_encoder.output_lengths(torch.tensor([8000, 12345, 6400])).tolist()
    layer2 = np.load(dump.directory / "layer2.npy")
    assert layer2.shape == (sum(int(r[2]) for r in rows), tiny_encoder.config.encoder_embed_dim)
    for uid, offset, frames in rows:
        offset, frames = int(offset), int(frames)
        expected = _alone(tiny_encoder, unlabeled_dir / uid, 2)
        # Batched with padding vs alone: the same representations.
        np.testing.assert_allclose(layer2[offset:offset + frames], expected, atol=2e-4, rtol=1e-3)


def test_safetensors_features(tiny_encoder, unlabeled_dir, tmp_path):
    from safetensors.numpy import load_file

    config = FeatureDumpConfig(subset="dev", layers=(1,), format="safetensors", dtype="float16", progress=False)
    dump = dump_features(tiny_encoder, unlabeled_dir, tmp_path / "feats", config)
    assert len(dump.files) == 3
    tensors = load_file(str(dump.directory / "1.safetensors"))
    assert list(tensors) == ["layer_1"] and tensors["layer_1"].dtype == np.float16
    np.testing.assert_allclose(tensors["layer_1"], _alone(tiny_encoder, unlabeled_dir / "u1.wav", 1), atol=2e-2)


def test_layer_validation(tiny_encoder, unlabeled_dir, tmp_path):
    assert parse_layers("all", 2) == (0, 1, 2)
    with pytest.raises(ValueError, match="`layers`"):
        dump_features(tiny_encoder, unlabeled_dir, tmp_path, FeatureDumpConfig(subset="dev", layers=(3,)))


def test_default_layers_are_the_first_middle_and_last_of_the_model():
    """`features` without --layers takes 0, the middle and the last layer of the model it loads (not BASE's
    0,6,12, which failed on a smaller model); every default parses against that model's layer count."""
    from speechssl.cli.features import default_layers

    assert default_layers(12) == "0,6,12" and default_layers(24) == "0,12,24"
    assert default_layers(2) == "0,1,2" and default_layers(1) == "0,1"
    for n in (1, 2, 4, 12):
        assert parse_layers(default_layers(n), n)[-1] == n
