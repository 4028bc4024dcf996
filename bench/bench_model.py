"""Model throughput: speechssl against Hugging Face transformers on the same work, side by side.

    OMP_WAIT_POLICY=PASSIVE python bench/bench_model.py   # base + small, every task, fp32 + bf16 (~30 min)
    python bench/bench_model.py --quick                 # small only, 2 x 2 s, 1 + 2 runs (a few minutes)
    python bench/bench_model.py --models base --tasks pretrain --precisions bf16 --repeats 7
    python bench/bench_model.py --profile speechssl --models base --tasks pretrain --precisions bf16
    python bench/bench_model.py --device cuda --models base --batch 8 --seconds 15   # on a GPU

For each model size, task and precision both implementations get the same weights (a seeded speechssl model
exported with `speechssl.interop.export_hf_directory` and loaded by transformers' `from_pretrained`), the same
batch of waveforms, and for pretraining the same time mask and distractor indices (transformers'
`mask_time_indices` / `sampled_negative_indices`). Runs alternate in one process (speechssl, transformers,
transformers, speechssl, ...) so that both see the same machine load; each speed is the median over the
repeats, in audio-seconds processed per wall-clock second, and the ratio is the median of the per-repeat ratios
(the two runs of a repeat are adjacent in time). torch runs `--threads` intra-op threads (2).

On a machine shared with other jobs set OMP_WAIT_POLICY=PASSIVE (both implementations see it): with
libgomp's default spin-waiting, an OpenMP team whose threads outnumber the free cores loses a scheduler slice
at every parallel region, which made a `small` step 15x slower here (7.4 s instead of 0.5 s) and turns the
comparison into a count of kernel launches.

* `pretrain`: forward + backward + AdamW step of the pretraining model (contrastive + diversity loss;
  speechssl adds the feature penalty, as fairseq). LayerDrop is set to 0 in both so that every step does the
  same work; dropouts are the BASE recipe's.
* `finetune`: forward + backward + AdamW step of the CTC model with the feature encoder frozen as fine-tuning
  does (speechssl `feature_grad_mult=0`, transformers `freeze_feature_encoder()`), base_10h dropouts and
  masks (time 0.65 x 10, channels 0.5 x 64), CTC loss summed, letter targets of 12 per second.
* `infer`: encoder forward in eval mode under `torch.no_grad()` (speechssl `model.encoder`, transformers
  `model.wav2vec2`). In bf16, speechssl's linear and convolution weights are cast to bf16 once before the
  timing, as `speechssl evaluate/transcribe --precision bf16` loads a model (`cast_weights_for_inference`;
  the outputs are the same bits as autocast over fp32 weights); transformers' stay fp32 and autocast casts
  them at every forward, as `from_pretrained` + autocast runs.

Both use `torch.optim.AdamW(fused=True)` (the transformers Trainer's default `adamw_torch_fused`; speechssl's
`build_optimizer` picks it too). bf16 means `torch.autocast(dtype=torch.bfloat16)` around the forward pass for
both; speechssl's `trainer.precision=auto` picks it on CPUs with native bf16, so the "default" ratio compares
speechssl bf16 with transformers fp32.

With `--device cuda` the same work runs on the GPU (weights, batch and optimizer there; TF32 for fp32 as
`speechssl pretrain` enables it, for both; every timed step is synchronised); peak memory is then the CUDA
caching allocator's peak of allocated memory in the timing process itself, and, in brackets, that peak less the
memory allocated before the step (weights and optimizer state).

Peak memory (CPU) is measured in a fresh child process per (implementation, size, task, precision): the child builds
the model, its optimizer and the batch, resets the kernel's RSS high-water mark (`/proc/self/clear_refs`), runs
the steps and reads `VmHWM`. The table shows that peak RSS of the whole process and, in brackets, the same minus
the RSS before the first step (activations, gradients, optimizer state and allocator slack, without the
weights, the interpreter and the libraries). Fraction of peak: the
model's FLOPs (matmuls and convolutions of one speechssl step, counted by `torch.utils.flop_counter`, the same
count used for both implementations) per second, over the best bf16 or fp32 2048^3 matmul rate measured by
this script at the start and end of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from speechssl.data.audio import SAMPLE_RATE

TASKS = ("pretrain", "finetune", "infer")
PRECISIONS = ("fp32", "bf16")
IMPLS = ("speechssl", "transformers")
DEVICE = torch.device("cpu")  # --device
# base_10h fine-tuning overrides (conf/experiment/finetune_10h.yaml), LayerDrop off for equal work.
FINETUNE_OVERRIDES = {
    "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.1, "dropout_input": 0.0,
    "dropout_features": 0.0, "final_dropout": 0.0, "feature_grad_mult": 0.0, "mask_prob": 0.65,
    "mask_channel_prob": 0.5, "mask_channel_length": 64, "encoder_layerdrop": 0.0,
}


# ---------------------------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return "unknown CPU"


def device_name() -> str:
    return torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else cpu_model()


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """Best GFLOP/s of an n^3 matmul (the measured roofline for that dtype)."""
    if DEVICE.type == "cuda":
        n = 8192
    a, b = torch.randn(n, n).to(DEVICE, dtype), torch.randn(n, n).to(DEVICE, dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize()
        t = time.perf_counter()
        a @ b
        synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


# ---------------------------------------------------------------------------------------------- models
def model_config(size: str, task: str):
    from speechssl.models import get_preset

    cfg = get_preset(size).replace(encoder_layerdrop=0.0)
    return cfg.replace(**FINETUNE_OVERRIDES) if task == "finetune" else cfg


def export_weights(size: str, task: str, directory: Path) -> Path:
    """A seeded speechssl model written as a transformers directory (both sides load it)."""
    from speechssl.data.tokenizer import LetterTokenizer
    from speechssl.interop import export_hf_directory
    from speechssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPreTraining

    torch.manual_seed(0)
    cfg = model_config(size, task)
    if task == "finetune":
        tokenizer = LetterTokenizer.default_english()
        model = Wav2Vec2ForCTC(cfg, len(tokenizer))
        export_hf_directory(model, directory, tokenizer=tokenizer)
    else:
        export_hf_directory(Wav2Vec2ForPreTraining(cfg), directory)
    return directory


def load(impl: str, directory: Path) -> torch.nn.Module:
    if impl == "speechssl":
        from speechssl.interop import load_hf_directory

        return load_hf_directory(directory).model.to(DEVICE)
    import transformers

    config = json.loads((directory / "config.json").read_text())
    cls = transformers.Wav2Vec2ForCTC if "Wav2Vec2ForCTC" in config["architectures"] else \
        transformers.Wav2Vec2ForPreTraining
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.from_pretrained(directory).to(DEVICE)


@dataclass
class Batch:
    waveforms: torch.Tensor  # (B, L)
    mask: torch.Tensor  # (B, T) bool, pretraining time mask
    negatives: torch.Tensor  # (B, T, K) long into B*T
    targets: torch.Tensor  # (B, U) letter ids, >= 1
    target_lengths: torch.Tensor  # (B,)

    @property
    def audio_seconds(self) -> float:
        return self.waveforms.numel() / SAMPLE_RATE


def make_batch(size: str, batch_size: int, seconds: float, seed: int = 0) -> Batch:
    from speechssl.models.feature_encoder import feature_lengths
    from speechssl.models.masking import compute_mask_indices, sample_distractors

    cfg = model_config(size, "pretrain")
    g = torch.Generator().manual_seed(seed)
    num_samples = int(seconds * SAMPLE_RATE)
    waveforms = torch.randn(batch_size, num_samples, generator=g) * 0.1
    frames = int(feature_lengths([num_samples], cfg)[0])
    seeds = [seed * 1000 + b for b in range(batch_size)]
    mask = torch.from_numpy(compute_mask_indices(
        (batch_size, frames), None, cfg.mask_prob, cfg.mask_length, min_masks=cfg.mask_min_masks, seeds=seeds))
    negatives = sample_distractors(mask, cfg.num_negatives, seeds=seeds)
    letters = int(seconds * 12)
    targets = torch.randint(5, 32, (batch_size, letters), generator=g)
    return Batch(waveforms.to(DEVICE), mask.to(DEVICE), negatives.to(DEVICE), targets.to(DEVICE),
                 torch.full((batch_size,), letters, device=DEVICE))


def autocast(precision: str):
    if precision == "bf16":
        return torch.autocast(DEVICE.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_step(impl: str, task: str, precision: str, model: torch.nn.Module, batch: Batch) -> Callable[[], None]:
    """A closure running one unit of work (a training step, or an inference forward)."""
    x = batch.waveforms
    if task == "infer":
        model.eval()
        if impl == "speechssl" and precision == "bf16":
            # as `speechssl evaluate --precision bf16` runs (load_ctc): weights cast once, not at every forward
            from speechssl.decoding.inference import cast_weights_for_inference

            cast_weights_for_inference(model, torch.bfloat16)
        encoder = model.encoder if impl == "speechssl" else model.wav2vec2

        def infer() -> None:
            with torch.no_grad(), autocast(precision):
                encoder(x)
        return infer

    model.train()
    if task == "finetune" and impl == "transformers":
        model.freeze_feature_encoder()
    if impl == "speechssl":
        from speechssl.training.optim import OptimConfig, build_optimizer

        optimizer = build_optimizer(model.named_parameters(), OptimConfig())
    else:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4,
                                      betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01, fused=True)
    sample_size = int(batch.mask.sum())
    labels = batch.targets  # transformers pads labels with -100; all are full length here

    def loss_of() -> torch.Tensor:
        if task == "pretrain" and impl == "speechssl":
            return model(x, mask_indices=batch.mask, negative_indices=batch.negatives).loss
        if task == "pretrain":
            return model(x, mask_time_indices=batch.mask, sampled_negative_indices=batch.negatives).loss
        if impl == "transformers":
            return model(x, labels=labels).loss
        out = model(x)
        log_probs = F.log_softmax(out.logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
        return F.ctc_loss(log_probs, batch.targets, out.lengths, batch.target_lengths, blank=0,
                          reduction="sum", zero_infinity=True)

    norm = sample_size if task == "pretrain" else x.shape[0]

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision):
            loss = loss_of()
        (loss.float() / norm).backward()
        optimizer.step()
    return train_step


def count_flops(size: str, task: str, batch: Batch, directory: Path) -> float:
    """Matmul + convolution FLOPs of one speechssl unit of work (fp32)."""
    from torch.utils.flop_counter import FlopCounterMode

    from speechssl.models import feature_encoder

    def reference_conv(x, weight, bias, stride):  # the same FLOPs as a Conv1d, which the counter knows
        return F.conv1d(x.transpose(1, 2), weight, bias, stride=stride).transpose(1, 2)

    model = load("speechssl", directory)
    step = make_step("speechssl", task, "fp32", model, batch)
    counter = FlopCounterMode(display=False)
    # the fp32 CPU convolutions run as in-place matmuls (addmm_) inside an autograd Function, which the
    # counter does not see: count the same model with them as plain Conv1d
    time_major_conv1d = feature_encoder.time_major_conv1d
    feature_encoder.time_major_conv1d = reference_conv
    try:
        with counter:
            step()
    finally:
        feature_encoder.time_major_conv1d = time_major_conv1d
    return float(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------- memory
def memory_child(spec: dict) -> dict:
    """Runs in a fresh process: peak RSS of `steps` units of work of one implementation."""
    torch.set_num_threads(spec["threads"])
    set_allocator(spec["impl"], spec.get("allocator", "shipped"), spec["task"])
    batch = make_batch(spec["size"], spec["batch"], spec["seconds"])
    model = load(spec["impl"], Path(spec["dir"]))
    step = make_step(spec["impl"], spec["task"], spec["precision"], model, batch)
    gc.collect()
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    for _ in range(spec["steps"]):
        step()
    return {"rss_before_mb": before / 1024, "peak_mb": _status_kb("VmHWM") / 1024,
            "step_peak_mb": (_status_kb("VmHWM") - before) / 1024}


def measure_memory(spec: dict) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps(spec)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        print(f"memory child failed for {spec}:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- timing
@dataclass
class Result:
    size: str
    task: str
    precision: str
    impl: str
    audio_s_per_s: float
    seconds_per_step: list[float]
    flops_per_step: float
    step_peak_mb: float | None = None
    rss_peak_mb: float | None = None
    fraction_of_peak: float | None = None


@functools.cache
def shipped_keeps_freed_memory(task: str) -> bool:
    """Whether speechssl's command for `task` keeps freed memory (speechssl/training/allocator.py): the
    composed `trainer.keep_freed_memory` of `speechssl pretrain` / `finetune`; evaluate/transcribe always do."""
    if task == "infer":
        return True
    from speechssl.cli.train import compose

    return compose(task, ["data.dir=."])[0].trainer.keep_freed_memory  # data.dir is mandatory, not read


def set_allocator(impl: str, mode: str, task: str) -> None:
    """glibc malloc as `impl` runs `task` under `mode`: `shipped` (speechssl with the setting its command ships
    with, see shipped_keeps_freed_memory; transformers with glibc's defaults), `default` or `kept` for both.
    On a GPU glibc's defaults for both, as `speechssl pretrain` leaves them there."""
    from speechssl.training.allocator import keep_freed_memory, restore_default_allocator

    if DEVICE.type == "cuda":
        restore_default_allocator()
        return

    if mode == "kept" or (mode == "shipped" and impl == "speechssl" and shipped_keeps_freed_memory(task)):
        keep_freed_memory()
    else:
        restore_default_allocator()  # also hands the other's free heap back, so nothing carries over


def time_pair(size: str, task: str, precision: str, batch: Batch, directory: Path, *, warmup: int,
              repeats: int, allocator: str = "shipped", gpu_memory: dict | None = None) -> dict[str, list[float]]:
    """Seconds per step of each implementation; on a GPU `gpu_memory[impl]` gets (peak MB, peak MB less the
    memory allocated before the step) over the timed steps."""
    models = {impl: load(impl, directory) for impl in IMPLS}
    steps = {impl: make_step(impl, task, precision, models[impl], batch) for impl in IMPLS}
    for _ in range(warmup):
        for impl in IMPLS:
            set_allocator(impl, allocator, task)
            steps[impl]()
    times: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    for r in range(repeats):
        order = IMPLS if r % 2 == 0 else IMPLS[::-1]  # ABBA: drifting load hits both alike
        for impl in order:
            set_allocator(impl, allocator, task)
            if DEVICE.type == "cuda":
                synchronize()
                before = torch.cuda.memory_allocated(DEVICE)
                torch.cuda.reset_peak_memory_stats(DEVICE)
            t = time.perf_counter()
            steps[impl]()
            synchronize()
            times[impl].append(time.perf_counter() - t)
            if DEVICE.type == "cuda" and gpu_memory is not None:
                peak = torch.cuda.max_memory_allocated(DEVICE)
                old = gpu_memory.get(impl, (0.0, 0.0))
                gpu_memory[impl] = (max(old[0], peak / 2**20), max(old[1], (peak - before) / 2**20))
    del steps, models
    gc.collect()
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()
    return times


def profile(impl: str, size: str, task: str, precision: str, batch: Batch, directory: Path, rows: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step = make_step(impl, task, precision, load(impl, directory), batch)
    for _ in range(2):
        step()
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    print(f"# {impl} {size} {task} {precision}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=rows,
                                                             max_shapes_column_width=70))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="base,small", help="comma-separated presets")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: pretrain,finetune,infer")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated: fp32,bf16")
    parser.add_argument("--batch", type=int, default=4, help="utterances per batch")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per utterance")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of each implementation")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each implementation")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--memory-steps", type=int, default=2, help="steps per memory child (0: skip memory)")
    parser.add_argument("--quick", action="store_true", help="small, 2 x 2 s, 1 warmup, 2 repeats")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", choices=IMPLS, help="print a torch.profiler table instead of timing")
    parser.add_argument("--table", type=Path, help="print the table of a --json file written earlier and exit")
    parser.add_argument("--allocator", choices=("shipped", "default", "kept"), default="shipped",
                        help="glibc malloc per implementation: shipped (speechssl as its command for the task runs: "
                             "freed memory kept in pretraining and inference, glibc's defaults in fine-tuning; "
                             "transformers glibc's defaults), default or kept for both")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N): where both implementations run")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda":
        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: no CUDA device is visible")
        from speechssl.models.precision import configure_matmul_precision

        configure_matmul_precision(DEVICE, tf32=True)

    if args.table:
        saved = json.loads(args.table.read_text())
        print_table([Result(**r) for r in saved["results"]], saved["machine"])
        return
    if args.memory_child:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return
    if args.quick:
        args.models, args.batch, args.seconds, args.warmup, args.repeats = "small", 2, 2.0, 1, 2
    torch.set_num_threads(args.threads)
    sizes, tasks = args.models.split(","), args.tasks.split(",")
    precisions = args.precisions.split(",")
    for t in tasks:
        if t not in TASKS:
            parser.error(f"unknown task {t!r}; expected some of {TASKS}")
    for p in precisions:
        if p not in PRECISIONS:
            parser.error(f"unknown precision {p!r}; expected some of {PRECISIONS}")

    import transformers

    from speechssl.models.precision import BF16_MIN_SPEEDUP, cpu_bf16_speedup

    if "bf16" in precisions and DEVICE.type == "cpu" and cpu_bf16_speedup() < BF16_MIN_SPEEDUP:
        print(f"warning: a bf16 matmul runs at {cpu_bf16_speedup():.2f}x fp32 on this CPU; bf16 autocast figures "
              "will be slow for both (speechssl's precision=auto picks fp32 here)", file=sys.stderr)
    machine = {
        "cpu": device_name(), "device": str(DEVICE), "cores": os.cpu_count(), "threads": args.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__, "loadavg_start": os.getloadavg(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"), "allocator": args.allocator,
    }
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"# {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, transformers "
          f"{machine['transformers']}, {args.threads} threads, OMP_WAIT_POLICY {machine['omp_wait_policy']}; "
          f"load average {machine['loadavg_start'][0]:.2f}; allocator {args.allocator}")
    print(f"# batch {args.batch} x {args.seconds:g} s; {args.warmup} warmup + {args.repeats} timed runs each, "
          f"alternating; matmul peak fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench_model_") as tmp:
        for size in sizes:
            batch = make_batch(size, args.batch, args.seconds)
            for task in tasks:
                weights = export_weights(size, "finetune" if task == "finetune" else "pretrain",
                                         Path(tmp) / f"{size}_{task}")
                if args.profile:
                    for precision in precisions:
                        profile(args.profile, size, task, precision, batch, weights, rows=30)
                    continue
                flops = count_flops(size, task, batch, weights)
                for precision in precisions:
                    gpu_memory: dict[str, tuple[float, float]] = {}
                    times = time_pair(size, task, precision, batch, weights, warmup=args.warmup,
                                      repeats=args.repeats, allocator=args.allocator, gpu_memory=gpu_memory)
                    for impl in IMPLS:
                        med = statistics.median(times[impl])
                        r = Result(size, task, precision, impl, batch.audio_seconds / med, times[impl], flops,
                                   fraction_of_peak=flops / med / 1e9 / peaks[precision])
                        if impl in gpu_memory:
                            r.rss_peak_mb, r.step_peak_mb = gpu_memory[impl]
                        elif args.memory_steps > 0 and DEVICE.type == "cpu":
                            mem = measure_memory({"impl": impl, "size": size, "task": task, "precision": precision,
                                                  "batch": args.batch, "seconds": args.seconds,
                                                  "threads": args.threads, "dir": str(weights),
                                                  "steps": args.memory_steps, "allocator": args.allocator})
                            if mem:
                                r.step_peak_mb, r.rss_peak_mb = mem["step_peak_mb"], mem["peak_mb"]
                        results.append(r)
                    ours, theirs = results[-2], results[-1]
                    paired = paired_ratios(ours, theirs)
                    print(f"{size:5s} {task:8s} {precision:4s}  speechssl {ours.audio_s_per_s:7.2f}  "
                          f"transformers {theirs.audio_s_per_s:7.2f}  x{statistics.median(paired):.2f} "
                          f"(per repeat {min(paired):.2f}-{max(paired):.2f})  (load {os.getloadavg()[0]:.2f})",
                          flush=True)
    if args.profile:
        return
    peaks_end = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    machine["loadavg_end"] = os.getloadavg()
    machine["matmul_peak_gflops"] = {k: max(peaks[k], peaks_end[k]) for k in peaks}
    for r in results:  # fraction of the better of the two peak measurements
        r.fraction_of_peak = r.flops_per_step / statistics.median(r.seconds_per_step) / 1e9 / \
            machine["matmul_peak_gflops"][r.precision]
    print_table(results, machine)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": [asdict(r) for r in results]}, indent=2) + "\n")


def paired_ratios(ours: Result, theirs: Result) -> list[float]:
    """Speed ratio of each repeat: the two runs of a repeat are adjacent in time (ABBA order), so the load
    of a shared machine hits both; the median of these is steadier than a ratio of medians."""
    return [t / o for o, t in zip(ours.seconds_per_step, theirs.seconds_per_step)]


def print_table(results: list[Result], machine: dict) -> None:
    def mb(v: float | None) -> str:
        return f"{v:,.0f}" if v is not None else "-"

    print()
    print(f"{machine['cpu']}, {machine['cores']} cores, {machine['threads']} threads, torch {machine['torch']}, "
          f"transformers {machine['transformers']}; load average {machine['loadavg_start'][0]:.2f} -> "
          f"{machine['loadavg_end'][0]:.2f}; matmul peak fp32 {machine['matmul_peak_gflops']['fp32']:.0f}, "
          f"bf16 {machine['matmul_peak_gflops']['bf16']:.0f} GFLOP/s; allocator {machine.get('allocator', 'default')}")
    print()
    print("| model | task | precision | GFLOP/audio-s | speechssl audio-s/s | transformers audio-s/s | ratio | "
          "speechssl peak MB (step) | transformers peak MB (step) | speechssl % of peak | transformers % of peak | "
          "ratio per repeat |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    by_key = {(r.size, r.task, r.precision, r.impl): r for r in results}
    for (size, task, precision, impl), ours in by_key.items():
        if impl != "speechssl":
            continue
        theirs = by_key[(size, task, precision, "transformers")]
        audio = ours.audio_s_per_s * statistics.median(ours.seconds_per_step)
        paired = paired_ratios(ours, theirs)
        ratio = statistics.median(paired)
        print(f"| {size} | {task} | {precision} | {ours.flops_per_step / audio / 1e9:.1f} | "
              f"{ours.audio_s_per_s:.2f} | {theirs.audio_s_per_s:.2f} | "
              f"{ratio:.2f}x | {mb(ours.rss_peak_mb)} ({mb(ours.step_peak_mb)}) | "
              f"{mb(theirs.rss_peak_mb)} ({mb(theirs.step_peak_mb)}) | {100 * ours.fraction_of_peak:.1f} | "
              f"{100 * theirs.fraction_of_peak:.1f} | {min(paired):.2f}-{max(paired):.2f} |")
    # speechssl's default precision (auto: bf16 where its matmuls measure faster) against transformers' fp32 default
    from speechssl.models.precision import resolve_precision

    device = torch.device(machine.get("device", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():  # --table of a GPU run, read elsewhere
        return
    default = resolve_precision("auto", device)
    lines = []
    for (size, task, precision, impl), ours in by_key.items():
        theirs = by_key.get((size, task, "fp32", "transformers"))
        if impl == "speechssl" and precision == default and theirs is not None:
            lines.append(f"{size} {task}: x{ours.audio_s_per_s / theirs.audio_s_per_s:.2f}")
    if lines:
        print(f"\nspeechssl default precision ({default}) vs transformers fp32: " + "; ".join(lines))


if __name__ == "__main__":
    main()
