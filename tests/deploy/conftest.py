"""Shared fixtures for the deploy tests: a tiny random CTC checkpoint, its ONNX exports, audio files.

The exports are session-scoped: the dynamo exporter needs ~15 CPU seconds per tiny graph, so each folder is
written once and read by every test (none of them writes into it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from deploy_models import save_checkpoint, tiny_ctc_model

from speechssl.data.tokenizer import LetterTokenizer

LM_TEXT = ["hello world", "a b c", "good morning", "yes no", "the cat sat on the mat", "red hat"] * 3


@pytest.fixture(scope="session")
def tokenizer() -> LetterTokenizer:
    return LetterTokenizer.default_english()


@pytest.fixture(scope="session")
def deploy_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="session")
def tiny_checkpoint(deploy_dir, tokenizer) -> Path:
    return save_checkpoint(tiny_ctc_model(tokenizer), tokenizer, deploy_dir / "ckpt" / "tiny.pt")


@pytest.fixture(scope="session")
def lm_files(deploy_dir) -> tuple[Path, Path]:
    """A 3-gram ARPA and its lexicon (``speechssl lm build``)."""
    from speechssl.cli.main import main

    text = deploy_dir / "lm" / "train.wrd"
    text.parent.mkdir()
    text.write_text("\n".join(LM_TEXT) + "\n")
    arpa = deploy_dir / "lm" / "3gram.arpa"
    assert main(["lm", "build", str(text), str(arpa), "--order", "3"]) == 0
    return arpa, deploy_dir / "lm" / "3gram.lexicon.txt"


@pytest.fixture(scope="session")
def onnx_folder(deploy_dir, tiny_checkpoint, lm_files) -> Path:
    """fp32 export with the features graph and a KenLM decoder (LM and lexicon copied in)."""
    from speechssl.cli.main import main

    out = deploy_dir / "tiny_onnx"
    arpa, lexicon = lm_files
    assert main(["export", str(tiny_checkpoint), str(out), "--format", "onnx", "--features", "--decoder", "kenlm",
                 "--lm", str(arpa), "--lexicon", str(lexicon), "--beam", "20", "--lm-weight", "1",
                 "--word-score", "0"]) == 0
    return out


@pytest.fixture(scope="session")
def int8_folder(deploy_dir, tiny_checkpoint) -> Path:
    from speechssl.deploy.export import ExportConfig, export_onnx

    out = deploy_dir / "tiny_int8"
    # from an empty working directory, which test_export checks is still empty (onnxruntime's quantizer drops
    # temp files into the working directory when its shape inference fails)
    cwd, scratch = Path.cwd(), deploy_dir / "int8_cwd"
    scratch.mkdir()
    os.chdir(scratch)
    try:
        export_onnx(tiny_checkpoint, out, ExportConfig(quantize="int8"))
    finally:
        os.chdir(cwd)
    return out


@pytest.fixture(scope="session")
def audio_files(deploy_dir) -> list[Path]:
    """Three noise recordings: 1.3 s at 16 kHz, 0.7 s at 8 kHz (resampled on reading), 6.5 s (chunked at 2 s)."""
    rng = np.random.default_rng(3)
    folder = deploy_dir / "audio"
    folder.mkdir()
    paths = []
    for name, seconds, rate in (("a.wav", 1.3, 16000), ("b.flac", 0.7, 8000), ("long.wav", 6.5, 16000)):
        n = int(seconds * rate)
        wave = rng.uniform(-0.4, 0.4, n) * np.linspace(0.3, 1.0, n)  # louder towards the end
        sf.write(folder / name, wave.astype(np.float32), rate)
        paths.append(folder / name)
    return paths
