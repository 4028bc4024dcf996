import os

import pytest
import torch

from speechssl.training import checkpoint as ck


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


def test_resume_skips_torn_file_and_picks_newest(tmp_path):
    d = tmp_path / "checkpoints"
    ck.atomic_torch_save(_state(10), d / "checkpoint_10.pt")
    ck.atomic_torch_save(_state(20), d / "checkpoint_20.pt")
    (d / "checkpoint_30.pt").write_bytes(b"torn")  # a crash mid-write by some other tool
    path, state = ck.find_resume_checkpoint(tmp_path)
    assert path.name == "checkpoint_20.pt" and state["num_updates"] == 20


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
