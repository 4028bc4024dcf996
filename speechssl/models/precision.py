"""Mixed precision: bf16 autocast on CPU (where bf16 matmuls measure faster than fp32) and GPU, fp16 + loss
scaling on GPU.

The numerically delicate parts (cosine logits, Gumbel softmax, perplexities, feature-encoder norms) force fp32
inside the model itself; this module only chooses the autocast dtype and the loss scaler.
"""

from __future__ import annotations

import contextlib
import functools

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX instructions: bf16 matmuls *can* run faster than fp32 (see `cpu_bf16_speedup`)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch
        return False


# bf16 autocast must win by this much to be chosen: it also rounds, and casts weights at every forward.
BF16_MIN_SPEEDUP = 1.25


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup() -> float:
    """How many times faster a bf16 matmul runs than an fp32 one on this CPU, measured (~0.1 s, once).

    The instruction flags do not tell: an AMD EPYC with AVX512-BF16 ran bf16 matmuls at 2.2x fp32 (400 against
    179 GFLOP/s), an Intel Xeon with the same flag and no AMX at 0.52x (167 against 324), so bf16 autocast there
    would halve the speed. 0.0 where the CPU has no bf16 instructions (nothing measured).
    """
    if not cpu_has_native_bf16():
        return 0.0
    import time

    def best_seconds(dtype: torch.dtype) -> float:
        # (768 x 3072) @ (3072 x 768), a BASE feed-forward matmul over 768 frames: 3.6 GFLOP
        g = torch.Generator().manual_seed(0)  # never the global generator: a run's random stream stays its own
        a = torch.randn(768, 3072, generator=g).to(dtype)
        b = torch.randn(3072, 768, generator=g).to(dtype)
        a @ b  # first call: oneDNN picks and builds its kernel
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        return best

    return best_seconds(torch.float32) / best_seconds(torch.bfloat16)


def cuda_has_native_bf16() -> bool:
    """The current GPU computes bf16 in hardware (Ampere, compute capability 8.0, and later).

    `torch.cuda.is_bf16_supported()` alone also says yes where bf16 is only emulated (V100, T4: capability
    7.x), and emulated bf16 autocast runs slower than fp16; `including_emulation=False` (torch >= 2.5) asks
    the right question, the compute capability answers it on older torch.
    """
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch 2.4: no including_emulation argument
        if torch.version.hip:  # ROCm: is_bf16_supported has never counted emulation there
            return bool(torch.cuda.is_bf16_supported())
        return torch.cuda.get_device_capability()[0] >= 8 and bool(torch.cuda.is_bf16_supported())


def auto_precision_reason(device: torch.device) -> str:
    """One line saying what `precision=auto` picks on `device` and why (for the run's log)."""
    if device.type == "cuda":
        return ("bf16 (the GPU computes bf16 natively)" if cuda_has_native_bf16() else
                "fp16 (the GPU has no native bf16; emulated bf16 would run slower)")
    if not cpu_has_native_bf16():
        return "fp32 (this CPU has no bf16 instructions)"
    speedup = cpu_bf16_speedup()
    choice = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    return f"{choice} (a bf16 matmul runs at {speedup:.2f}x fp32 on this CPU; bf16 needs >= {BF16_MIN_SPEEDUP}x)"


def resolve_precision(precision: str, device: torch.device, *, key: str = "trainer.precision") -> str:
    """Turn `auto` into a concrete choice and reject combinations that cannot work (errors name `key`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"{key} must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if cuda_has_native_bf16() else "fp16"
        return "bf16" if cpu_has_native_bf16() and cpu_bf16_speedup() >= BF16_MIN_SPEEDUP else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"{key}=fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    return precision


def autocast(precision: str, device: torch.device):
    """The autocast context for a forward pass at `precision` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(precision: str, device: torch.device, init_scale: float = 128.0):
    """A dynamic loss scaler for fp16 (initial scale 128 as in fairseq); None otherwise."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type, init_scale=init_scale)


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name!r} but no CUDA device is available")
    return device


def configure_matmul_precision(device: torch.device, *, tf32: bool) -> None:
    """On a CUDA device, let fp32 matmuls and convolutions use TF32 tensor cores (Ampere and later; fairseq and
    NVIDIA's wav2vec 2.0 port train fp32 so: ~2x their speed, 10-bit mantissa products, fp32 sums). autocast's
    bf16/fp16 regions are unaffected; the parts kept fp32 on purpose (cosine logits, Gumbel softmax) are
    elementwise or reductions, not matmuls. The CPU is left alone (no TF32 there)."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
