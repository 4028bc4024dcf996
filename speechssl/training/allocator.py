"""Keep freed CPU memory inside the process instead of handing it back to the kernel (glibc malloc).

By default glibc serves every allocation above its mmap threshold (128 KiB to 32 MiB, adaptive) with a fresh
``mmap`` and returns it with ``munmap`` on free; the heap's top is trimmed once 128 KiB are free. A training
step allocates and frees the same large activations every time, so each step faults every page of them in
again: ~200,000 page faults per BASE pretraining step on the development VM, where a fault costs several
microseconds. Serving everything from the heap and never trimming it turns those into reuse of memory the
process already holds. Measured on the dev box (bench/README.md): a (4, 16000, 11) x (11, 512) bf16 bmm
22 -> 5 ms, plus its GELU 51 -> 12 ms; the BASE bf16 pretraining step 6.3 -> 6.8 audio-s/s on 2 cores.

The price is memory: resident memory stays at the run's peak instead of shrinking between steps, and the peak
grows, since a freed block is reused only by requests that fit in it (BASE bf16 pretraining step, whole
process: 2.4 -> 2.8 GB; 20 steps of varying batch shapes: +4 %). ``trainer.keep_freed_memory=false`` turns
it off; fine-tuning's config does (its step gains 4-6 % but peaks 10-15 % higher). Anything but Linux with
glibc is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# glibc's defaults, for restore_default_allocator
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
NEVER_TRIM = 2**31 - 1  # mallopt takes an int


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()  # musl and others lack it: not glibc, leave them alone
        return libc
    except (OSError, AttributeError):
        return None


def _mallopt(param: int, value: int) -> bool:
    libc = _glibc()
    return libc is not None and libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1


def keep_freed_memory() -> bool:
    """Serve all allocations from the heap (no mmap) and never trim it. True if glibc took both settings."""
    return _mallopt(M_MMAP_MAX, 0) and _mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)


def restore_default_allocator() -> bool:
    """Undo ``keep_freed_memory`` (mmap for large blocks, trim at 128 KiB) and give free heap memory back."""
    ok = _mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX) and _mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(ctypes.c_size_t(0))
    return ok
