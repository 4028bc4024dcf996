"""keep_freed_memory: freed CPU tensors stay in the process (no munmap, no trim) and can be undone.

What it buys (fewer page faults, faster steps) and costs (resident memory held at a higher peak) is measured in
bench/README.md, not asserted here."""

from __future__ import annotations

import pytest
import torch

from speechssl.training.allocator import _glibc, keep_freed_memory, restore_default_allocator

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc malloc only (Linux)")

MIB = 1024 * 1024


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def rss_drop_after_free(mib: int = 256) -> float:
    """RSS given back when a touched tensor of `mib` MiB is freed."""
    tensor = torch.ones(mib * MIB // 4)  # float32, every page written
    held = rss_mib()
    del tensor
    return held - rss_mib()


@pytest.fixture
def restore_allocator():
    yield
    assert restore_default_allocator()


def test_default_allocator_returns_freed_memory(restore_allocator):
    assert restore_default_allocator()
    assert rss_drop_after_free() > 200  # a 256 MiB block is mmapped and unmapped on free


def test_keep_freed_memory_holds_it(restore_allocator):
    assert keep_freed_memory()
    assert rss_drop_after_free() < 16  # stays in the heap for the next step to reuse


def test_restore_gives_the_heap_back(restore_allocator):
    assert keep_freed_memory()
    tensor = torch.ones(256 * MIB // 4)
    del tensor
    held = rss_mib()
    assert restore_default_allocator()
    assert held - rss_mib() > 200
