"""The CUDA path, on a GPU only (marked `cuda`: tests/conftest.py skips them where none is visible).

bench/gpu_smoke.sh runs these first; the same logic on the CPU is covered by test_apps.py and test_distributed.py.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_apps import COMMON, DETERMINISTIC_CTC, PRETRAIN, REPO, _trainer

pytestmark = pytest.mark.cuda

CUDA = ["trainer.device=cuda"]


def _cuda(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.startswith("trainer.device=")] + CUDA


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_pretraining_steps_on_the_gpu(tone_corpus, tmp_path, precision):
    """30 updates of `tiny` pretraining under autocast: every loss finite, no update skipped, the loss falls,
    the weights stay fp32 on the GPU (the contrastive logits' `unique` runs on autocast's output)."""
    trainer = _trainer("pretrain", [f"data.dir={tone_corpus}", *_cuda(PRETRAIN), f"trainer.precision={precision}",
                                    "trainer.max_updates=30", f"trainer.run_dir={tmp_path}"])
    assert trainer.precision == precision and trainer.device.type == "cuda"
    losses = []
    batches = trainer._micro_batches()
    for _ in range(30):
        stats = trainer.train_update(next(batches))
        assert stats["skipped"] == 0 and math.isfinite(stats["loss"]), stats
        losses.append(stats["loss"])
    assert sum(losses[-5:]) < sum(losses[:5]), losses
    assert all(p.is_cuda and p.dtype == torch.float32 for p in trainer.model.parameters())


def test_a_pretraining_update_waits_for_the_gpu_once(tone_corpus, tmp_path):
    """CUDA's own count of what test_host_reads.py counts on the CPU: with torch.cuda.set_sync_debug_mode
    ("warn"), a bf16 pretraining update (2 micro-batches) warns once, at the read of its statistics and
    gradient norm. Each extra warning names an operation that makes the host wait for the GPU."""
    import warnings

    trainer = _trainer("pretrain", [f"data.dir={tone_corpus}", *_cuda(PRETRAIN), "trainer.precision=bf16",
                                    "trainer.update_freq=2", "trainer.max_updates=4", f"trainer.run_dir={tmp_path}"])
    batches = trainer._micro_batches()
    trainer.train_update(next(batches))  # the first update creates the optimizer state and cuBLAS handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.train_update(next(batches))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, "\n".join(syncs)


def test_auto_precision_is_native(tone_corpus, tmp_path):
    trainer = _trainer("pretrain", [f"data.dir={tone_corpus}", *_cuda(PRETRAIN), "trainer.precision=auto",
                                    f"trainer.run_dir={tmp_path}"])
    native = torch.cuda.get_device_capability()[0] >= 8
    assert trainer.precision == ("bf16" if native else "fp16")


def test_positional_conv_on_the_gpu_equals_the_cpu_path():
    from speechssl.models.context import PositionalConvEmbedding

    torch.manual_seed(0)
    pos = PositionalConvEmbedding(768, 128, 16)
    x = torch.randn(2, 50, 768)
    with torch.no_grad():
        cpu = pos(x)
        gpu = pos.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)


def test_finetuning_with_init_and_freeze_matches_the_cpu(tone_corpus, tmp_path):
    """3 deterministic CTC updates from a pretrained checkpoint with freeze_finetune_updates=2: the GPU (fp32, no
    TF32) gives the CPU's weights; the encoder is untouched while frozen."""
    from speechssl.interop.checkpoint import save_speechssl_checkpoint
    from speechssl.models import Wav2Vec2ForPreTraining, get_preset

    torch.manual_seed(3)
    init = save_speechssl_checkpoint(tmp_path / "pretrained.pt", Wav2Vec2ForPreTraining(get_preset("tiny")))
    base = [f"data.dir={tone_corpus}", *DETERMINISTIC_CTC, f"init={init}", "freeze_finetune_updates=2",
            "trainer.max_updates=4", "trainer.save_interval=0", "optim.lr=1e-4", "trainer.tf32=false"]
    cpu = _trainer("finetune", base + [f"trainer.run_dir={tmp_path / 'cpu'}"])
    gpu = _trainer("finetune", _cuda(base) + [f"trainer.run_dir={tmp_path / 'gpu'}"])
    assert not torch.backends.cuda.matmul.allow_tf32
    ds = cpu.task.train_loader.dataset
    encoder_before = {k: v.clone() for k, v in gpu.model.state_dict().items() if k.startswith("encoder.")}
    for step in range(3):
        batch = ds.collate([ds[i] for i in range(step * 6, step * 6 + 6)])
        cpu.train_update([batch])
        gpu.train_update([batch])
        if step == 1:
            for k, v in gpu.model.state_dict().items():
                if k.startswith("encoder."):
                    assert torch.equal(v, encoder_before[k]), k
    for k, v in cpu.model.state_dict().items():
        torch.testing.assert_close(gpu.model.state_dict()[k].cpu(), v, atol=1e-4, rtol=1e-4, msg=k)


def test_evaluate_and_transcribe_on_the_gpu(tone_corpus, tmp_path):
    """`speechssl evaluate` and `transcribe` with --device cuda give the CPU's CER (to one point) and text."""
    from speechssl.cli.main import main

    trainer = _trainer("finetune", [f"data.dir={tone_corpus}", *_cuda(COMMON), "trainer.max_updates=60",
                                    "trainer.valid_interval=0", "trainer.save_interval=0", "optim.lr=2e-3",
                                    f"trainer.run_dir={tmp_path / 'ft'}"])
    trainer.fit()
    ckpt = tmp_path / "ft/checkpoints/checkpoint_last.pt"
    cer = {}
    for device in ("cpu", "cuda"):
        assert main(["evaluate", str(ckpt), str(tone_corpus), "--subset", "valid", "--out", str(tmp_path / device),
                     "--device", device]) == 0
        cer[device] = json.loads((tmp_path / device / "summary-valid.json").read_text())["cer_fraction"]
    assert abs(cer["cuda"] - cer["cpu"]) <= 0.01, cer
    wav = min((Path(tone_corpus).parent / "audio").glob("*.wav"))
    texts = {}
    for device in ("cpu", "cuda"):
        proc = subprocess.run([sys.executable, "-m", "speechssl.cli.main", "transcribe", str(ckpt), str(wav),
                               "--device", device], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        texts[device] = proc.stdout
    assert texts["cuda"] == texts["cpu"]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="2-rank NCCL needs two GPUs")
def test_two_rank_nccl_matches_one_gpu(tone_corpus, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    overrides = [*_cuda(DETERMINISTIC_CTC), "trainer.max_updates=4", "trainer.save_interval=0", "optim.lr=1e-4",
                 "optim.eps=1e-6", "trainer.tf32=false"]
    out = tmp_path / "ddp.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(port), str(Path(__file__).with_name("ddp_worker.py")), str(tone_corpus),
         str(tmp_path / "ddp"), str(out), *overrides], cwd=REPO, env=dict(os.environ), capture_output=True,
        text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-8000:]
    single = _trainer("finetune", [f"data.dir={tone_corpus}", f"trainer.run_dir={tmp_path / 'one'}", *overrides])
    ds = single.task.train_loader.dataset
    for step in range(3):
        single.train_update([ds.collate([ds[i] for i in range(step * 6, step * 6 + 6)])])
    ddp = torch.load(out, map_location="cpu")
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][k], v.cpu(), atol=1e-5, rtol=0, msg=k)
