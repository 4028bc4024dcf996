"""The checks and the summary table of bench/gpu_smoke.sh: reads what its stages left in WORK, judges each
stage, prints one Markdown table, and exits 1 when any stage failed.

    python bench/gpu_smoke_report.py WORK --device cuda --precisions bf16 fp16 --freeze 20
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import torch

FP16_MAX_SKIPPED = 0.01  # loss-scale overflows while the fp16 scaler finds its scale


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _train_losses(run_dir: Path) -> list[float]:
    from speechssl.training.logging import read_log

    return [r["loss"] for r in read_log(run_dir) if r.get("split") == "train" and "loss" in r]


def check_pretrain(run_dir: Path, precision: str) -> tuple[bool, str]:
    """The loss falls (mean of the first three logged updates against the last three); no update skipped."""
    s = _summary(run_dir)
    losses = _train_losses(run_dir)
    k = min(3, max(1, len(losses) // 2))
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    allowed = int(FP16_MAX_SKIPPED * s["updates"]) if precision == "fp16" else 0
    ok = last < first and s["skipped_nonfinite"] <= allowed and s["updates"] > 0
    speed = s["audio_hours_per_hour"]
    memory = f", peak {s['peak_gpu_memory_gb']:.1f} GB" if "peak_gpu_memory_gb" in s else ""
    return ok, (f"{s['updates']} updates, loss {first:.3f} -> {last:.3f} bits, skipped {s['skipped_nonfinite']}"
                f"{f' (<= {allowed} allowed)' if allowed else ''}, {speed:.1f} audio-s/s{memory}")


def check_finetune(run_dir: Path, freeze: int) -> tuple[bool, str]:
    """The encoder is the pretrained one after `freeze` updates and has trained by the end; a valid WER."""
    from speechssl.interop.checkpoint import load_checkpoint
    from speechssl.training.logging import read_log

    s = _summary(run_dir)
    config = (run_dir / "config.yaml").read_text()
    init = Path(re.search(r"^init: (.+)$", config, re.MULTILINE).group(1).strip("'\""))
    pretrained = load_checkpoint(init)["model"]
    frozen = load_checkpoint(run_dir / f"checkpoints/checkpoint_{freeze}.pt")["model"]
    last = load_checkpoint(run_dir / "checkpoints/checkpoint_last.pt")["model"]
    encoder = [k for k in frozen if k.startswith("encoder.") and k in pretrained]
    kept = all(torch.equal(frozen[k], pretrained[k]) for k in encoder)
    trained = any(not torch.equal(last[k], pretrained[k]) for k in encoder
                  if not k.startswith("encoder.feature_encoder."))
    valid = [r for r in read_log(run_dir) if r.get("split") == "valid"]
    wer = valid[-1].get("wer") if valid else None
    ok = bool(encoder) and kept and trained and wer is not None and s["skipped_nonfinite"] == 0
    return ok, (f"{s['updates']} updates from init, encoder frozen for {freeze}: "
                f"{'unchanged' if kept else 'CHANGED'}, then {'trained' if trained else 'NOT trained'}; "
                f"valid WER {wer if wer is None else f'{wer:.1f}'} %")


def check_evaluate(work: Path) -> tuple[bool, str]:
    summary = json.loads((work / "evaluate/summary-valid.json").read_text())
    text = (work / "transcript.txt").read_text().strip()
    return bool(text), (f"greedy WER {100 * summary['wer_fraction']:.1f} %, CER {100 * summary['cer_fraction']:.1f} %; "
                        f"transcribe: {text.splitlines()[0][:60]!r}")


def check_compiled(work: Path, precision: str) -> tuple[bool, str]:
    """As a pretraining stage, with its speed (compile time included) against the eager run's."""
    ok, detail = check_pretrain(work / "compiled", precision)
    eager = _summary(work / f"pretrain-{precision}")["audio_hours_per_hour"]
    backend = re.search(r"^  compile_backend: (\S+)$", (work / "compiled/config.yaml").read_text(), re.MULTILINE)
    return ok, (f"{backend.group(1) if backend else '?'}, {precision}: {detail}, compile time included "
                f"(eager: {eager:.1f})")


def check_ddp(run_dir: Path) -> tuple[bool, str]:
    s = _summary(run_dir)
    losses = _train_losses(run_dir)
    ok = s["world_size"] == 2 and s["skipped_nonfinite"] == 0 and all(map(math.isfinite, losses))
    return ok, f"2 ranks, {s['updates']} updates, {s['audio_hours_per_hour']:.1f} audio-s/s (both ranks)"


def bench_rows(path: Path) -> list[str]:
    saved = json.loads(path.read_text())
    by_key = {(r["size"], r["task"], r["precision"], r["impl"]): r for r in saved["results"]}
    lines = []
    for (size, task, precision, impl), ours in by_key.items():
        if impl != "speechssl":
            continue
        theirs = by_key[(size, task, precision, "transformers")]
        memory = ""
        if ours.get("rss_peak_mb") is not None and theirs.get("rss_peak_mb") is not None:
            memory = f", peak {ours['rss_peak_mb'] / 1024:.2f} / {theirs['rss_peak_mb'] / 1024:.2f} GB"
        lines.append(f"{size} {task} {precision}: speechssl {ours['audio_s_per_s']:.1f} / transformers "
                     f"{theirs['audio_s_per_s']:.1f} audio-s/s (x{ours['audio_s_per_s'] / theirs['audio_s_per_s']:.2f})"
                     f"{memory}")
    return lines


def pytest_line(log: Path) -> str:
    lines = [line for line in log.read_text().splitlines() if re.search(r"\d+ (passed|skipped|failed)", line)]
    return lines[-1].strip("= ") if lines else "(no pytest summary)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--device", required=True)
    parser.add_argument("--precisions", nargs="+", required=True)
    parser.add_argument("--freeze", type=int, required=True)
    args = parser.parse_args()
    work = args.work

    checks = {f"pretrain-{p}": (lambda p=p: check_pretrain(work / f"pretrain-{p}", p)) for p in args.precisions}
    checks.update({
        "finetune": lambda: check_finetune(work / "finetune", args.freeze),
        "evaluate": lambda: check_evaluate(work),
        "ddp": lambda: check_ddp(work / "ddp"),
        "compiled": lambda: check_compiled(work, args.precisions[0]),
        "cuda-tests": lambda: (True, pytest_line(work / "cuda-tests.log")),
        "corpus": lambda: (True, ", ".join(f"{p.stem} {sum(1 for _ in p.open()) - 1} utterances"
                                           for p in sorted((work / "data").glob("*.tsv")))),
    })
    table, failed = [], []
    for line in (work / "stages.tsv").read_text().splitlines():
        name, rc, seconds = line.split("\t")
        if rc == "skipped":
            table.append((name, "skipped", "-", "an earlier stage it needs failed"))
            failed.append(name)
            continue
        if rc != "0":
            table.append((name, f"FAILED (exit {rc})", seconds, f"see {work / (name + '.log')}"))
            failed.append(name)
            continue
        if name == "bench-model":
            for i, row in enumerate(bench_rows(work / "bench_model.json")):
                table.append((name if i == 0 else "", "ok" if i == 0 else "", seconds if i == 0 else "", row))
            continue
        try:
            ok, detail = checks[name]()
        except Exception as exc:  # noqa: BLE001 - a missing file or record is a failed check, named
            ok, detail = False, f"check failed: {type(exc).__name__}: {exc}"
        table.append((name, "ok" if ok else "FAILED", seconds, detail))
        if not ok:
            failed.append(name)
    if args.device.startswith("cuda") and torch.cuda.is_available():
        where = f"{torch.cuda.get_device_name()} x {torch.cuda.device_count()}"
    else:
        where = "CPU"
    print(f"\n## gpu_smoke.sh --device {args.device}: {where}, torch {torch.__version__}\n")
    print("| stage | status | s | result |")
    print("|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    total = sum(int(s) for _, _, s, _ in table if s.isdigit())
    print(f"\n{len(table) - len(failed) if not failed else 'FAILED: ' + ', '.join(failed)}"
          f"{' stages ok' if not failed else ''}; {total} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
