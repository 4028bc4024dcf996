"""speechssl checkpoints and the `speechssl convert` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_reference import hf_model, make_inputs, save_hf, transformers

from speechssl.cli.main import main
from speechssl.data.tokenizer import LetterTokenizer
from speechssl.interop import load_model, save_speechssl_checkpoint
from speechssl.models import Wav2Vec2ForCTC, get_preset


def test_speechssl_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    tokenizer = LetterTokenizer.default_english()
    model = Wav2Vec2ForCTC(get_preset("tiny"), len(tokenizer)).eval()
    path = save_speechssl_checkpoint(tmp_path / "ctc.pt", model, tokenizer=tokenizer, num_updates=7,
                                     rng={"numpy": np.random.get_state()})  # non-tensor training state
    state = torch.load(path, weights_only=False)
    assert state["format"] == "speechssl" and state["version"] == 1 and state["task"] == "ctc"
    assert state["vocab"] == tokenizer.symbols and state["blank"] == "<pad>" and state["num_updates"] == 7
    loaded = load_model(path)
    assert loaded.source == "speechssl" and loaded.config == model.config
    assert loaded.tokenizer.symbols == tokenizer.symbols and loaded.tokenizer.blank_index == 0
    x = torch.randn(1, 4000)
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded.model(x).logits)


def test_vocab_size_mismatch_is_refused(tmp_path):
    model = Wav2Vec2ForCTC(get_preset("tiny"), 5)
    with pytest.raises(ValueError, match="vocabulary has 32 symbols"):
        save_speechssl_checkpoint(tmp_path / "x.pt", model, tokenizer=LetterTokenizer.default_english())


def test_not_a_checkpoint(tmp_path):
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="neither"):
        load_model(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.pt")


def test_convert_cli_round_trip(tmp_path, capsys):
    hf = hf_model("layer", "ctc", seed=8)
    src = save_hf(hf, tmp_path / "hf", with_vocab=True)
    assert main(["convert", "--from", "hf", str(src), str(tmp_path / "model.pt")]) == 0
    assert "huggingface ctc model" in capsys.readouterr().out
    assert main(["convert", "--to", "hf", str(tmp_path / "model.pt"), str(tmp_path / "back")]) == 0
    reloaded = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path / "back").eval()
    x = make_inputs("layer", seed=9)
    with torch.no_grad():
        a = hf(x.waveforms, attention_mask=x.attention_mask).logits
        b = reloaded(x.waveforms, attention_mask=x.attention_mask).logits
    assert torch.equal(a, b)
    assert load_model(tmp_path / "model.pt").tokenizer.symbols[:5] == ["<pad>", "<s>", "</s>", "<unk>", "|"]
    # the weights are as readable as the files beside them (safetensors writes 0600 on its own)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "back").iterdir() if p.is_file()}
    assert modes["model.safetensors"] == modes["config.json"], modes


def test_convert_cli_fairseq(tmp_path):
    from test_fairseq import fairseq_model_cfg, to_fairseq

    hf = hf_model("group", "pretrain", seed=10)
    ckpt = {"cfg": {"model": fairseq_model_cfg("group")}, "model": to_fairseq(hf.state_dict(), False, False)}
    torch.save(ckpt, tmp_path / "fs.pt")
    assert main(["convert", "--from", "fairseq", str(tmp_path / "fs.pt"), str(tmp_path / "out.pt")]) == 0
    loaded = load_model(tmp_path / "out.pt")
    assert loaded.source == "speechssl" and loaded.task == "pretrain"
    assert loaded.config.latent_vars == 24 and loaded.config.temp_decay == 0.999995
