"""precision=auto on a CPU follows a measured bf16 speed-up, not the instruction flags; ranks agree on it."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from speechssl.models import precision as prec
from speechssl.training.distributed import DistInfo, broadcast_from_main

CPU = torch.device("cpu")


@pytest.mark.parametrize("has_bf16,speedup,expected", [
    (True, 2.2, "bf16"),   # AMD EPYC (AVX512-BF16): bf16 matmuls 2.2x fp32
    (True, 0.52, "fp32"),  # Intel Xeon with AVX512-BF16 and no AMX: bf16 at half fp32's speed
    (True, 1.1, "fp32"),   # a win too small to pay for bf16's rounding
    (False, 9.9, "fp32"),  # no bf16 instructions: nothing measured
])
def test_auto_follows_the_measured_speedup(monkeypatch, has_bf16, speedup, expected):
    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: has_bf16)
    monkeypatch.setattr(prec, "cpu_bf16_speedup", lambda: speedup)
    assert prec.resolve_precision("auto", CPU) == expected
    assert prec.auto_precision_reason(CPU).startswith(expected)
    assert prec.resolve_precision("bf16", CPU) == "bf16"  # an explicit choice is never second-guessed


def test_speedup_is_measured_once_and_positive():
    prec.cpu_bf16_speedup.cache_clear()
    before = torch.get_rng_state()
    first = prec.cpu_bf16_speedup()
    assert torch.equal(torch.get_rng_state(), before)  # the probe leaves the run's random stream alone
    assert first == prec.cpu_bf16_speedup()  # cached: one measurement per process
    assert (first > 0) == prec.cpu_has_native_bf16()


def _rank(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    info = DistInfo(rank=rank, world_size=2)
    out[rank] = broadcast_from_main(["bf16", "fp32"][rank], info)  # each rank measured something else
    torch.distributed.destroy_process_group()


def test_ranks_take_rank_zeros_choice():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(port, out), nprocs=2, join=True)
        assert dict(out) == {0: "bf16", 1: "bf16"}
    assert broadcast_from_main("fp32", DistInfo()) == "fp32"  # one process: its own


def _mock_gpu(monkeypatch, *, capability: tuple[int, int], has_emulation_argument: bool):
    """A GPU of `capability` as torch reports it: bf16 "supported" on every CUDA card, natively from 8.0."""
    native = capability[0] >= 8
    if has_emulation_argument:  # torch >= 2.5
        def is_bf16_supported(including_emulation: bool = True) -> bool:
            return native or including_emulation
    else:  # torch 2.4
        def is_bf16_supported() -> bool:
            return True
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)


@pytest.mark.parametrize("has_emulation_argument", [True, False])
@pytest.mark.parametrize("capability,expected", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"),
                                                 ((9, 0), "bf16")])
def test_auto_never_picks_emulated_bf16_on_a_gpu(monkeypatch, capability, has_emulation_argument, expected):
    """V100 (7.0) and T4 (7.5) emulate bf16, slower than fp16: `auto` takes fp16 there, bf16 from A100 on."""
    _mock_gpu(monkeypatch, capability=capability, has_emulation_argument=has_emulation_argument)
    assert prec.resolve_precision("auto", torch.device("cuda")) == expected
    assert prec.auto_precision_reason(torch.device("cuda")).startswith(expected)
