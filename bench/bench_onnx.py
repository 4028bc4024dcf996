"""Deployed inference: onnxruntime fp32 and int8 against speechssl's torch inference, side by side.

    OMP_WAIT_POLICY=PASSIVE python bench/bench_onnx.py                  # base + small, 20 s chunks
    python bench/bench_onnx.py --models small --repeats 3               # a few minutes
    python bench/bench_onnx.py --checkpoint exp/ft/checkpoints/checkpoint_best.pt --models ckpt

What is timed is what ``speechssl transcribe`` runs per chunk: the model from a ``(batch, seconds)`` float32
waveform batch to log-softmax emissions (``ModelEmitter`` for torch, ``OnnxEmitter`` for onnxruntime), the
decoder excluded (greedy decoding costs ~1/20,000 of real time, bench/README.md). Backends:

* ``torch fp32``: ``load_ctc(precision="fp32")``, the default precision of ``speechssl transcribe`` /
  ``evaluate`` (``--precision``) and of ``speechssl.load``;
* ``torch auto``: ``load_ctc(precision="auto")``, bf16 autocast with weights cast once where bf16 matmuls
  measure >= 1.25x fp32 (Intel AMX, AVX512-BF16), else fp32 — the precision training picks by default;
* ``onnx fp32`` / ``onnx int8``: the ``speechssl export`` folders (int8: dynamic quantization of the
  linear layers), onnxruntime's CPU provider with every graph optimisation.

Speed: one process holds every backend; each repeat runs them in turn (the order rotates every repeat) so that
all see the same machine load; audio-seconds per wall-clock second, median over the repeats; the ratio columns
divide by torch fp32 (the default) and by torch auto per repeat, median. torch and onnxruntime both get
``--threads`` intra-op threads (2: the dev box's cores). Peak memory: a fresh child process per backend loads
the model (the onnx children import no torch, as a deployment would), runs two forwards after resetting the
kernel's RSS high-water mark (``/proc/self/clear_refs``) and reads ``VmHWM``: whole-process peak RSS, and in
brackets the increase over the RSS before the forwards (activations and workspace).

Models: ``base`` (BASE, randomly initialised CTC head of 32 symbols: the speed of a BASE fine-tune), ``small``
(the CPU demo preset, random), ``ckpt`` (--checkpoint). Weights do not change the speed of any backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from speechssl.data.audio import SAMPLE_RATE

BACKENDS = ("torch fp32", "torch auto", "onnx fp32", "onnx int8")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def make_checkpoint(size: str, directory: Path) -> Path:
    import torch

    from speechssl.data.tokenizer import LetterTokenizer
    from speechssl.interop import save_speechssl_checkpoint
    from speechssl.models import Wav2Vec2ForCTC, get_preset

    torch.manual_seed(0)
    tokenizer = LetterTokenizer.default_english()
    model = Wav2Vec2ForCTC(get_preset(size), len(tokenizer))
    return save_speechssl_checkpoint(directory / f"{size}.pt", model, tokenizer=tokenizer)


def load_backend(backend: str, checkpoint: Path, folders: dict[str, Path], threads: int):
    """An emitter: waveforms (B, L) numpy -> emissions."""
    if backend.startswith("onnx"):
        from speechssl.deploy.runtime import OnnxEmitter

        return OnnxEmitter(folders[backend], threads=threads)
    from speechssl.decoding.inference import load_ctc

    return load_ctc(checkpoint, precision=backend.split()[1]).emitter


def make_batch(batch: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, int(seconds * SAMPLE_RATE))) * 0.1).astype(np.float32)


def memory_child(spec: dict) -> dict:
    """In a fresh process: load one backend, reset VmHWM, run two forwards, report peaks."""
    threads = spec["threads"]
    if spec["backend"].startswith("torch"):
        import torch

        torch.set_num_threads(threads)
    emitter = load_backend(spec["backend"], Path(spec["checkpoint"]), {spec["backend"]: Path(spec["folder"] or ".")},
                           threads)
    waveforms = make_batch(spec["batch"], spec["seconds"])
    emitter(waveforms[:, :SAMPLE_RATE])  # one-time initialisation (thread pools, kernels) outside the window
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    for _ in range(2):
        emitter(waveforms)
    return {"peak_mb": _status_kb("VmHWM") / 1024, "step_peak_mb": (_status_kb("VmHWM") - before) / 1024,
            "torch_imported": "torch" in sys.modules}


def measure_memory(spec: dict) -> dict | None:
    done = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps(spec)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        print(f"memory child for {spec['backend']} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_model(name: str, checkpoint: Path, args: argparse.Namespace, workdir: Path) -> list[dict]:
    from speechssl.deploy.export import ExportConfig, export_onnx

    folders, export_seconds = {}, {}
    for backend, quantize in (("onnx fp32", None), ("onnx int8", "int8")):
        start = time.perf_counter()
        result = export_onnx(checkpoint, workdir / f"{name}_{backend.split()[1]}", ExportConfig(quantize=quantize))
        folders[backend], export_seconds[backend] = result.folder, time.perf_counter() - start
        print(f"{name}: exported {backend} in {export_seconds[backend]:.0f} s (check on noise: max |log-prob diff| "
              f"{result.check.max_abs_diff:.1e})", file=sys.stderr)
    emitters = {b: load_backend(b, checkpoint, folders, args.threads) for b in BACKENDS}
    resolved = emitters["torch auto"].precision
    waveforms = make_batch(args.batch, args.seconds)
    audio = args.batch * args.seconds
    for backend, emitter in emitters.items():  # warm-up: thread pools, oneDNN/MLAS kernels, allocator
        for _ in range(args.warmup):
            emitter(waveforms)
    speeds: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for repeat in range(args.repeats):
        order = BACKENDS[repeat % len(BACKENDS):] + BACKENDS[:repeat % len(BACKENDS)]
        for backend in order:
            start = time.perf_counter()
            emitters[backend](waveforms)
            speeds[backend].append(audio / (time.perf_counter() - start))
        print(f"{name}: repeat {repeat + 1}/{args.repeats}: "
              + ", ".join(f"{b} {speeds[b][-1]:.1f}" for b in BACKENDS), file=sys.stderr)
    del emitters
    rows = []
    for backend in BACKENDS:
        memory = None if args.no_memory else measure_memory({
            "backend": backend, "checkpoint": str(checkpoint), "folder": str(folders.get(backend, "")),
            "threads": args.threads, "batch": args.batch, "seconds": args.seconds})
        ratios = [ours / default for ours, default in zip(speeds[backend], speeds["torch fp32"])]
        ratios_auto = [ours / other for ours, other in zip(speeds[backend], speeds["torch auto"])]
        rows.append({"model": name, "backend": backend + (f" ({resolved})" if backend == "torch auto" else ""),
                     "audio_s_per_s": statistics.median(speeds[backend]), "vs_torch_default": statistics.median(ratios),
                     "vs_torch_auto": statistics.median(ratios_auto),
                     "speeds": speeds[backend], "memory": memory, "export_s": export_seconds.get(backend),
                     "model_mb": (folders[backend] / "model.onnx").stat().st_size / 1e6 if backend in folders else None})
    return rows


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    import onnxruntime
    import torch

    flags = cpu_flags()
    features = [f for f in ("avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni") if f in flags]
    print(f"\n{cpu_name()} ({', '.join(features) or 'no VNNI/AMX'}), {os.cpu_count()} cores, {args.threads} threads; "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; batch {args.batch} x {args.seconds:g} s, "
          f"median of {args.repeats}\n")
    print("| model | backend | audio-s/s | vs torch fp32 (default) | vs torch auto | peak RSS MB (inference) | "
          "model file MB |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        memory = row["memory"]
        mem = f"{memory['peak_mb']:.0f} (+{memory['step_peak_mb']:.0f})" if memory else "-"
        size = f"{row['model_mb']:.1f}" if row["model_mb"] else "-"
        print(f"| {row['model']} | {row['backend']} | {row['audio_s_per_s']:.1f} | {row['vs_torch_default']:.2f}x | "
              f"{row['vs_torch_auto']:.2f}x | "
              f"{mem} | {size} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="base,small", help="comma-separated: base, small, ckpt")
    parser.add_argument("--checkpoint", type=Path, default=None, help="the model `ckpt` stands for")
    parser.add_argument("--batch", type=int, default=1, help="utterances per forward (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="seconds per utterance (default %(default)s: transcribe's chunk)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            if name == "ckpt":
                if args.checkpoint is None:
                    parser.error("--models ckpt needs --checkpoint")
                checkpoint = args.checkpoint
            else:
                checkpoint = make_checkpoint(name, workdir)
            rows += bench_model(name, checkpoint, args, workdir)
    print_table(rows, args)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
