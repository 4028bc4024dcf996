"""The checkpoint file: written atomically (a failed or aliased write never tears or doubles a file) and
read back only when it is a speechssl checkpoint."""

import os

import pytest
import torch

from speechssl.interop import checkpoint as ck


def _state(n):
    return {"format": "speechssl", "version": 1, "num_updates": n, "w": torch.full((4,), float(n))}


def test_atomic_save_and_load_roundtrip(tmp_path):
    path = tmp_path / "checkpoints" / "checkpoint_last.pt"
    ck.atomic_torch_save(_state(3), path)
    assert torch.equal(ck.load_checkpoint(path)["w"], torch.full((4,), 3.0))
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint_last.pt"]  # no temp files left


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "checkpoint_last.pt"
    ck.atomic_torch_save(_state(1), path)

    def disk_full(obj, handle, *a, **k):
        handle.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", disk_full)
    with pytest.raises(OSError):
        ck.atomic_torch_save(_state(2), path)
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["num_updates"] == 1
    assert sorted(os.listdir(path.parent)) == ["checkpoint_last.pt"]


def test_load_rejects_foreign_file(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"model": {}}, p)
    with pytest.raises(ck.CheckpointError, match="not a speechssl checkpoint"):
        ck.load_checkpoint(p)
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "missing.pt")


def test_alias_is_one_file_and_survives_the_next_save(tmp_path):
    d = tmp_path / "checkpoints"
    ck.atomic_torch_save(_state(10), d / "checkpoint_10.pt")
    ck.atomic_alias(d / "checkpoint_10.pt", d / "checkpoint_last.pt")
    assert os.path.samefile(d / "checkpoint_10.pt", d / "checkpoint_last.pt")  # no second copy on disk
    # the next save replaces last; the old numbered file is then deleted, as the trainer does
    ck.atomic_torch_save(_state(20), d / "checkpoint_20.pt")
    ck.atomic_alias(d / "checkpoint_20.pt", d / "checkpoint_last.pt")
    (d / "checkpoint_10.pt").unlink()
    assert ck.load_checkpoint(d / "checkpoint_last.pt")["num_updates"] == 20
    assert sorted(p.name for p in d.iterdir()) == ["checkpoint_20.pt", "checkpoint_last.pt"]  # no temp files


def test_alias_copies_where_hard_links_fail(tmp_path, monkeypatch):
    d = tmp_path / "checkpoints"
    ck.atomic_torch_save(_state(5), d / "checkpoint_5.pt")

    def no_links(src, dst, *a, **k):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(ck.os, "link", no_links)
    ck.atomic_alias(d / "checkpoint_5.pt", d / "checkpoint_best.pt")
    assert not os.path.samefile(d / "checkpoint_5.pt", d / "checkpoint_best.pt")
    assert ck.load_checkpoint(d / "checkpoint_best.pt")["num_updates"] == 5


def _tiny_ctc():
    from speechssl.data.tokenizer import LetterTokenizer
    from speechssl.models import Wav2Vec2ForCTC, get_preset

    torch.manual_seed(0)
    tokenizer = LetterTokenizer.default_english()
    return Wav2Vec2ForCTC(get_preset("tiny"), len(tokenizer)).eval(), tokenizer


def test_a_checkpoint_the_trainer_wrote_before_the_format_had_one_owner_still_loads(tmp_path):
    """The trainer used to write the dict itself (training/loop.py at 5a1c96e): these keys, no
    `tokenizer_options`. Such files load as models (`load_model`) and as runs to resume, unchanged."""
    import dataclasses

    from speechssl.interop import load_model
    from speechssl.training.checkpoint import find_resume_checkpoint

    model, tokenizer = _tiny_ctc()
    old = {"format": "speechssl", "version": 1, "task": "ctc", "model_config": dataclasses.asdict(model.config),
           "vocab": list(tokenizer.symbols), "blank": tokenizer.blank, "model": model.state_dict(),
           "optimizer": {"state": {}, "param_groups": []}, "scaler": None,
           "train_state": {"num_updates": 7, "epoch": 2}, "rng": {"torch": torch.get_rng_state()}, "config": {}}
    path = tmp_path / "checkpoints" / "checkpoint_7.pt"
    ck.atomic_torch_save(old, path)
    loaded = load_model(path)
    assert loaded.task == "ctc" and loaded.config == model.config
    assert loaded.tokenizer.symbols == tokenizer.symbols and loaded.tokenizer.blank_index == tokenizer.blank_index
    x = torch.randn(1, 4000)
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded.model(x).logits)
    found_path, found = find_resume_checkpoint(tmp_path)
    assert found_path == path and ck.checkpoint_update(found) == 7


def test_the_written_dict_has_the_model_the_vocabulary_and_the_training_state():
    model, tokenizer = _tiny_ctc()
    state = ck.checkpoint_dict(model, tokenizer=tokenizer, train_state={"num_updates": 3}, optimizer={})
    assert state["format"] == ck.CHECKPOINT_FORMAT and state["task"] == "ctc"
    assert state["model_config"] == model.config.to_dict() and state["vocab"] == tokenizer.symbols
    assert state["tokenizer_options"] == {"unk": "<unk>", "word_delimiter": "|", "uppercase": True}
    assert ck.checkpoint_update(state) == 3 and ck.tokenizer_from_checkpoint(state).symbols == tokenizer.symbols
    with pytest.raises(ValueError, match="overwrite"):
        ck.checkpoint_dict(model, tokenizer=tokenizer, model={})  # training state never replaces the weights


def test_a_foreign_dict_is_refused_by_name():
    with pytest.raises(ck.CheckpointError, match="upload.pt is not a speechssl checkpoint"):
        ck.model_from_checkpoint({"model": {}}, "upload.pt")
