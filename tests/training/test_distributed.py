"""DDP on 2 gloo processes: fine-tuning from `init=` through `freeze_finetune_updates`, per-rank RNG state through
a SIGKILL and a resume, the process-group timeout; and what a resume on another number of ranks does."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from test_apps import DETERMINISTIC_CTC, PRETRAIN, REPO, _trainer

from speechssl.interop.checkpoint import load_checkpoint, save_speechssl_checkpoint
from speechssl.training.checkpoint import restore_rank_rng, rng_state
from speechssl.training.distributed import unused_parameter_reasons
from speechssl.training.loop import KILL_AFTER_UPDATE_ENV

WORKER = Path(__file__).with_name("ddp_worker.py")


def _torchrun(target: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(port), *target], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        check=False)


def test_ddp_finetuning_from_init_with_freeze_matches_one_process(tone_corpus, tmp_path):
    """freeze_finetune_updates flips requires_grad after DDP wrapped the model: under 2 gloo ranks the encoder
    stays bit-identical to the pretrained one for the frozen updates, trains after them, and every update equals
    one process on the whole batch (gradients normalised over ranks)."""
    from speechssl.models import Wav2Vec2ForPreTraining, get_preset

    torch.manual_seed(3)
    init = save_speechssl_checkpoint(tmp_path / "pretrained.pt", Wav2Vec2ForPreTraining(get_preset("tiny")))
    overrides = [*DETERMINISTIC_CTC, f"init={init}", "freeze_finetune_updates=2", "model.feature_grad_mult=0.0",
                 "trainer.max_updates=4", "trainer.save_interval=0", "optim.lr=1e-4", "optim.eps=1e-6"]
    out = tmp_path / "ddp.pt"
    proc = _torchrun([str(WORKER), str(tone_corpus), str(tmp_path / "ddp"), str(out), *overrides])
    assert proc.returncode == 0, proc.stderr[-8000:]
    ddp = torch.load(out)
    pretrained = load_checkpoint(init)["model"]
    encoder = [k for k in ddp["model"] if k.startswith("encoder.") and k in pretrained]
    trained = [k for k in encoder if not k.startswith("encoder.feature_encoder.")]
    assert trained
    for step in (0, 1):  # frozen updates: the head alone moves
        for k in encoder:
            assert torch.equal(ddp["steps"][step][k], pretrained[k]), (step, k)
    assert not torch.equal(ddp["steps"][0]["head.weight"], ddp["steps"][1]["head.weight"])
    assert any(not torch.equal(ddp["steps"][2][k], pretrained[k]) for k in trained)  # unfrozen at update 2
    for k in encoder:
        if k.startswith("encoder.feature_encoder."):  # feature_grad_mult 0: frozen throughout
            assert torch.equal(ddp["model"][k], pretrained[k]), k

    single = _trainer("finetune", [f"data.dir={tone_corpus}", f"trainer.run_dir={tmp_path / 'one'}", *overrides])
    ds = single.task.train_loader.dataset
    for step in range(3):
        single.train_update([ds.collate([ds[i] for i in range(step * 6, step * 6 + 6)])])
        for k, v in single.model.state_dict().items():
            assert torch.allclose(v, ddp["steps"][step][k], atol=1e-5, rtol=0), (step, k)
    grads = [p.grad for p in single.params]
    assert sum(g is not None for g in grads) > 2  # the encoder has gradients again at the last update
    for g, h in zip(grads, ddp["grads"]):
        assert (g is None) == (h is None)
        if g is not None:
            assert float((g - h).norm()) <= 1e-4 * float(g.norm()) + 1e-6, (g - h).abs().max()


def test_ddp_resume_after_sigkill_is_bit_identical(tone_corpus, tmp_path):
    """2 gloo ranks pretraining with dropout (each rank draws its own masks on batches of its own shapes): both
    killed by SIGKILL after update 5, resumed from checkpoint 4, end with the weights of the uninterrupted 2-rank
    run, bit for bit. Each rank restores the random state it saved, not rank 0's. Without LayerDrop every
    parameter gets a gradient at every step: DDP runs without its unused-parameter search, and gives the
    weights that the search (forced on) gives."""
    args = ["-m", "speechssl.cli.main", "pretrain", f"data.dir={tone_corpus}", *PRETRAIN, "trainer.max_updates=7",
            "trainer.save_interval=2", "data.max_tokens=32000", "trainer.keep_interval_checkpoints=-1",
            "model.encoder_layerdrop=0.0"]
    full = _torchrun(args + [f"trainer.run_dir={tmp_path / 'full'}"])
    assert full.returncode == 0, full.stderr[-8000:]
    assert "DDP find_unused_parameters=False (every parameter gets a gradient" in full.stdout
    searched = _torchrun(args + [f"trainer.run_dir={tmp_path / 'searched'}", "trainer.find_unused_parameters=true"])
    assert searched.returncode == 0, searched.stderr[-8000:]
    assert "DDP find_unused_parameters=True (trainer.find_unused_parameters)" in searched.stdout
    searched_model = load_checkpoint(tmp_path / "searched/checkpoints/checkpoint_last.pt")["model"]
    for key, value in load_checkpoint(tmp_path / "full/checkpoints/checkpoint_last.pt")["model"].items():
        assert torch.equal(value, searched_model[key]), key
    killed = _torchrun(args + [f"trainer.run_dir={tmp_path / 'killed'}"], {KILL_AFTER_UPDATE_ENV: "5"})
    assert killed.returncode != 0
    assert load_checkpoint(tmp_path / "killed/checkpoints/checkpoint_last.pt")["train_state"]["num_updates"] == 4
    resumed = _torchrun(args + [f"trainer.run_dir={tmp_path / 'killed'}"])
    assert resumed.returncode == 0, resumed.stderr[-8000:]
    assert "resumed from" in resumed.stdout and "warning" not in resumed.stdout

    a = load_checkpoint(tmp_path / "full/checkpoints/checkpoint_last.pt")
    b = load_checkpoint(tmp_path / "killed/checkpoints/checkpoint_last.pt")
    assert a["train_state"]["num_updates"] == b["train_state"]["num_updates"] == 7
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    # one state per rank, and the ranks' streams differ (so restoring rank 0's on both would be wrong)
    at_4 = load_checkpoint(tmp_path / "full/checkpoints/checkpoint_4.pt")["rng"]
    assert len(at_4) == 2 and not torch.equal(at_4[0]["torch"], at_4[1]["torch"])


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_resume_on_another_number_of_ranks_says_so_and_never_shares_a_stream():
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    saved = []
    for _ in range(2):  # two ranks' states
        saved.append(rng_state())
        _draws()
    assert restore_rank_rng(saved, rank=1, world_size=2, seed=1, num_updates=10) is None
    after_rank_1 = _draws()
    restore_rank_rng(saved, rank=1, world_size=2, seed=1, num_updates=10)
    assert _draws() == after_rank_1  # its own stream, continued

    streams = []
    for rank in range(4):  # 2 ranks saved, 4 resume
        warning = restore_rank_rng(saved, rank=rank, world_size=4, seed=1, num_updates=10)
        assert "2 rank(s)" in warning and "on 4" in warning and "ranks 2-3 start streams" in warning
        streams.append(_draws())
    assert streams[1] == after_rank_1 and len(set(streams)) == 4
    warning = restore_rank_rng(saved, rank=0, world_size=1, seed=1, num_updates=10)  # fewer ranks: no IndexError
    assert "2 rank(s)" in warning and "on 1" in warning
    # a checkpoint of one process (or written before states were kept per rank) holds a single dict
    assert restore_rank_rng(saved[0], rank=0, world_size=1, seed=1, num_updates=10) is None


def test_process_group_gets_the_configured_timeout(monkeypatch):
    import torch.distributed as dist

    from speechssl.cli.train import compose
    from speechssl.training import distributed

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    info = distributed.init_distributed("cpu", timeout_minutes=90)
    assert info.rank == 1 and calls == [{"backend": "gloo", "timeout": timedelta(minutes=90)}]
    cfg, _ = compose("pretrain", ["data.dir=.", "trainer.dist_timeout_minutes=45"])
    assert cfg.trainer.dist_timeout_minutes == 45
    assert compose("pretrain", ["data.dir=."])[0].trainer.dist_timeout_minutes == 120  # far above NCCL's 10
    cfg.trainer.dist_timeout_minutes = 0
    with pytest.raises(ValueError, match="dist_timeout_minutes"):
        cfg.trainer.validate()


# (task, model overrides of `tiny`, freeze_finetune_updates): every case where a step can leave a parameter
# without a gradient, and the ones where none can.
UNUSED_CASES = [
    ("pretrain", {"encoder_layerdrop": 0.0}, 0),
    ("pretrain", {"encoder_layerdrop": 0.0, "continuous_target_weight": 1.0}, 0),
    ("pretrain", {"encoder_layerdrop": 0.5}, 0),
    ("pretrain", {"encoder_layerdrop": 0.0, "feature_grad_mult": 0.0}, 0),
    ("ctc", {"encoder_layerdrop": 0.0, "feature_grad_mult": 1.0, "mask_prob": 0.5, "mask_channel_prob": 0.5,
             "mask_channel_length": 8}, 0),
    ("ctc", {"encoder_layerdrop": 0.0, "feature_grad_mult": 1.0, "mask_prob": 0.0, "mask_channel_prob": 0.5,
             "mask_channel_length": 8}, 0),
    ("ctc", {"encoder_layerdrop": 0.0, "feature_grad_mult": 0.0, "mask_prob": 0.5}, 0),
    ("ctc", {"encoder_layerdrop": 0.5, "feature_grad_mult": 1.0, "mask_prob": 0.5}, 0),
    ("ctc", {"encoder_layerdrop": 0.0, "feature_grad_mult": 1.0, "mask_prob": 0.5}, 2),
]


@pytest.mark.parametrize("task,overrides,freeze", UNUSED_CASES)
def test_unused_parameter_reasons_match_the_parameters_a_step_leaves_without_gradient(task, overrides, freeze):
    """DDP's find_unused_parameters is on exactly when a real training step (4 seeded steps here) leaves some
    parameter of the model without a gradient: off when every parameter always gets one (DDP would otherwise
    wait for gradients that never come), on for LayerDrop, feature_grad_mult 0, freeze, no time masks."""
    from speechssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPreTraining, get_preset

    cfg = get_preset("tiny").replace(**overrides)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(cfg, 5) if task == "ctc" else Wav2Vec2ForPreTraining(cfg)
    model.train()
    if freeze:  # what FinetuneTask.before_update does during the frozen updates
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("head."))
    waveforms = torch.randn(2, 8000, generator=torch.Generator().manual_seed(1))
    unused = set()
    for step in range(4):
        model.zero_grad(set_to_none=True)
        out = model(waveforms, mask_seeds=[10 * step, 10 * step + 1])
        (out.logits.float().pow(2).sum() if task == "ctc" else out.loss).backward()
        unused |= {name for name, p in model.named_parameters() if p.grad is None}
    reasons = unused_parameter_reasons(cfg, ctc=task == "ctc", freeze_finetune_updates=freeze)
    assert bool(reasons) == bool(unused), (reasons, sorted(unused))
