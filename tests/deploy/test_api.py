"""speechssl.load / Recognizer for both backends, and the README's Python example as printed."""

import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import speechssl
from speechssl.api import Recognizer, load
from speechssl.data.audio import load_audio

# the onnx extra (`make install` installs it): without it these tests skip, counted
for _module in ("onnx", "onnxruntime", "onnxscript"):
    pytest.importorskip(_module, reason="the onnx extra is not installed: pip install -e '.[onnx]'")

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_example() -> str:
    """The first ```python block after the README's "## Python API" heading."""
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_python_example_runs_as_printed(onnx_folder, audio_files, tmp_path, monkeypatch, capsys):
    shutil.copytree(onnx_folder, tmp_path / "model_onnx")
    shutil.copy(audio_files[0], tmp_path / "talk.wav")
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_python_example(), str(README), "exec"), {})  # noqa: S102 (the README's own code)
    lines = capsys.readouterr().out.splitlines()
    expected = load(tmp_path / "model_onnx").transcribe(tmp_path / "talk.wav")
    assert expected.text and lines[0] == expected.text
    assert lines[1:-1] == [f"{w.start:5.2f} {w.end:5.2f}  {w.word}" for w in expected.words]
    assert lines[-1] == "(3, 64, 32)"  # tiny: 2 layers + input, 1.3 s -> 64 frames, width 32


def test_load_picks_the_backend_and_the_package_exposes_it(onnx_folder, tiny_checkpoint):
    assert speechssl.load is load and speechssl.Recognizer is Recognizer
    assert load(onnx_folder).backend == "onnx" and load(tiny_checkpoint).backend == "torch"
    assert load(onnx_folder).decoder_config.decoder == "kenlm"  # the folder's setting
    assert load(onnx_folder, decoder="viterbi").decoder_config.decoder == "viterbi"
    with pytest.raises(ValueError, match="backend='onnx'"):
        load(onnx_folder, backend="torch")
    with pytest.raises(FileNotFoundError, match="model not found"):
        load(onnx_folder / "missing")


def test_paths_arrays_and_lists_give_the_same_transcripts(tiny_checkpoint, audio_files):
    asr = load(tiny_checkpoint)
    by_path = asr.transcribe(audio_files)
    assert isinstance(by_path, list) and len(by_path) == 3 and all(t.text for t in by_path)
    assert asr.transcribe(audio_files[0]).text == by_path[0].text
    assert asr.transcribe(load_audio(audio_files[0])).text == by_path[0].text
    # b.flac is 8 kHz: an array at its own rate is resampled as the file is
    samples, rate = sf.read(audio_files[1], dtype="float32")
    assert rate == 8000 and asr.transcribe(samples, sample_rate=rate).text == by_path[1].text
    words = by_path[2].words
    assert words and all(a.end <= b.start for a, b in pairwise(words)) and words[-1].end <= 6.5


def test_features_agree_between_backends_and_need_the_features_graph(onnx_folder, int8_folder, tiny_checkpoint,
                                                                   audio_files):
    torch_features = load(tiny_checkpoint).features(audio_files[0], layers=[0, 1, 2])
    onnx_features = load(onnx_folder).features(audio_files[0], layers=[0, 1, 2])
    assert torch_features.states.shape == onnx_features.states.shape == (3, 64, 32)
    np.testing.assert_allclose(onnx_features.states, torch_features.states, atol=1e-4, rtol=0)
    assert onnx_features.frame_shift == pytest.approx(0.02)
    with pytest.raises(ValueError, match="--features"):
        load(int8_folder).features(audio_files[0])
    with pytest.raises(ValueError, match=r"`layers` must be in \[0, 2\]"):
        load(tiny_checkpoint).features(audio_files[0], layers=[3])


def test_bad_audio_is_refused_with_a_clear_error(tiny_checkpoint):
    asr = load(tiny_checkpoint)
    with pytest.raises(ValueError, match="shorter than one frame of the model"):
        asr.transcribe(np.zeros(399, np.float32))
    with pytest.raises(ValueError, match="expected a mono waveform"):
        asr.transcribe(np.zeros((2, 16000), np.float32))
