"""A run directory is one run's: a second process on it refuses while the first lives, a lock left by a killed
run is taken over (so kill -9 and resume keep working), and a full disk during a checkpoint write ends the run
with one line that says what is intact and how to go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from speechssl.cli.main import main
from speechssl.interop import checkpoint as ck
from speechssl.interop.checkpoint import load_checkpoint

FAST = ["model=tiny", "trainer.device=cpu", "trainer.precision=fp32", "trainer.progress=false",
        "trainer.tensorboard=false", "trainer.threads=1", "data.num_workers=0", "trainer.valid_interval=0",
        "data.max_tokens=64000", "data.max_sample_size=16000", "data.min_sample_size=4000",
        "schedule.warmup_updates=1"]

_HOLD_LOCK = """
import sys, time
from speechssl.training.run_lock import RunDirLock
RunDirLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_second_run_refuses_while_first_lives_and_takes_over_a_killed_runs_lock(prepared_bad_corpus, tmp_path,
                                                                                capsys):
    _, data, _ = prepared_bad_corpus
    run_dir = tmp_path / "run"
    argv = ["pretrain", f"data.dir={data}", *FAST, f"trainer.run_dir={run_dir}", "trainer.max_updates=2"]
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2, err
        assert err.count("\n") == 0 and f"is in use by pid {holder.pid}" in err and "trainer.run_dir" in err
        assert not (run_dir / "log.jsonl").exists() and not (run_dir / "checkpoints").exists()  # nothing touched
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # as kill -9 would: no chance to release
        holder.wait()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"took over the lock of {run_dir} from pid {holder.pid}" in out
    assert load_checkpoint(run_dir / "checkpoints/checkpoint_last.pt")["train_state"]["num_updates"] == 2
    assert (run_dir / ".lock").read_text() == ""  # released cleanly: the next run finds no stale lock
    assert main([*argv[:-1], "trainer.max_updates=3"]) == 0
    assert "took over" not in capsys.readouterr().out


def test_disk_full_during_a_checkpoint_is_one_line_and_loses_nothing(prepared_bad_corpus, tmp_path, capsys,
                                                                     monkeypatch):
    _, data, _ = prepared_bad_corpus
    run_dir = tmp_path / "run"
    argv = ["pretrain", f"data.dir={data}", *FAST, f"trainer.run_dir={run_dir}", "trainer.max_updates=6",
            "trainer.save_interval=2"]
    real_save = ck.torch.save
    calls = []

    def fills_the_disk(obj, handle, *args, **kwargs):
        calls.append(1)
        if len(calls) < 2:
            return real_save(obj, handle, *args, **kwargs)
        handle.write(b"PK\x03\x04" + bytes(1000))
        # what torch's zip writer raised on a full disk: its own error, the OSError underneath
        try:
            raise OSError(28, "No space left on device")
        except OSError as exc:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
                               "file data/3: file write failed") from exc

    monkeypatch.setattr(ck.torch, "save", fills_the_disk)
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 4, err
    assert "\n" not in err and "Traceback" not in err, err
    ckpts = run_dir / "checkpoints"
    assert err.startswith(f"speechssl pretrain: disk full: writing {ckpts / 'checkpoint_4.pt'} needs about ")
    assert f"{ckpts / 'checkpoint_2.pt'} (update 2) is intact" in err and "run the same command again" in err
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint_2.pt", "checkpoint_last.pt"]  # no temp file
    assert load_checkpoint(ckpts / "checkpoint_last.pt")["train_state"]["num_updates"] == 2

    monkeypatch.setattr(ck.torch, "save", real_save)  # space freed: the same command resumes and finishes
    assert main(argv) == 0
    assert "resumed from" in capsys.readouterr().out
    assert load_checkpoint(ckpts / "checkpoint_last.pt")["train_state"]["num_updates"] == 6


@pytest.mark.parametrize("value", ["No space left", "Disk quota exceeded"])
def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch, value):
    """Only ENOSPC/EDQUOT (or torch's 'file write failed') become DiskFullError; a permission error stays itself."""
    import errno

    def fail(obj, handle, *a, **k):
        raise OSError(errno.ENOSPC if value == "No space left" else errno.EDQUOT, value)

    monkeypatch.setattr(ck.torch, "save", fail)
    with pytest.raises(ck.DiskFullError, match="needs about 0.0 MB"):
        ck.atomic_torch_save({"w": 1}, tmp_path / "a.pt")

    def denied(obj, handle, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ck.torch, "save", denied)
    with pytest.raises(PermissionError):
        ck.atomic_torch_save({"w": 1}, tmp_path / "b.pt")
    assert list(tmp_path.iterdir()) == []
