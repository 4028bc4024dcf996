#!/usr/bin/env bash
# The CUDA path end to end, in one run of at most ~5 minutes on one GPU, ending in one summary table:
#
#   bash bench/gpu_smoke.sh                  # --device cuda: BASE, bf16 + fp16, the `cuda` tests, bench_model
#   bash bench/gpu_smoke.sh --device cpu     # the same stages on `tiny` (fp32 + bf16): tests/bench/test_gpu_smoke.py
#
# Stages (each one row of the table; a stage whose input failed is marked skipped):
#   1 cuda-tests    pytest -m cuda tests/training/test_cuda.py (on the CPU: collected, every one skipped)
#   2 corpus        a tone corpus (speechssl.data.dummies) prepared with `speechssl prepare folder`
#   3 pretrain-P    UPDATES updates of pretraining in each precision P: the loss falls, no update skipped
#                   (fp16: loss-scale overflows, at most 1 %), audio-s/s and peak GPU memory from summary.json
#   3b compiled     the first precision again with trainer.compile=true (cuda: inductor, a third of the updates;
#                   cpu: the eager backend): the loss falls, no update skipped, speed against the eager run
#   4 finetune      fine-tuning from the first precision's checkpoint with init= and freeze_finetune_updates:
#                   the encoder is bit-identical to the pretrained one after the frozen updates, trained after
#   5 evaluate      `speechssl evaluate` (greedy WER/CER on valid) and `speechssl transcribe` of one file
#   6 ddp           2-rank pretraining under torchrun (NCCL) when two GPUs are visible (gloo with --ddp on the CPU)
#   7 bench-model   bench/bench_model.py --device D: speechssl vs transformers, same weights and batch
#
# Options: --device cuda|cpu   --updates N (pretraining updates; cuda 300, cpu 12)   --out DIR (kept; default a
#          temp dir, removed)   --ddp (2-rank stage on the CPU too)   --no-tests   --no-bench
# Environment: PYTHON (default: the repository's .venv/bin/python, else python3).
set -uo pipefail

device=cuda
updates=
out=
ddp=auto
run_tests=1
run_bench=1
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --updates) updates=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ddp) ddp=1; shift ;;
    --no-tests) run_tests=0; shift ;;
    --no-bench) run_bench=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu_smoke.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$device" in cpu|cuda|cuda:*) ;; *) echo "gpu_smoke.sh: --device must be cpu or cuda, got $device" >&2; exit 2 ;; esac

repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=python3
if [ -z "$out" ]; then
  work=$(mktemp -d -t gpu_smoke.XXXXXX)
  trap 'rm -rf "$work"' EXIT
else
  work=$out
  mkdir -p "$work"
fi
rows=$work/stages.tsv
: > "$rows"
export PYTHONUNBUFFERED=1

if [ "$device" = cpu ]; then
  model=tiny; precisions="fp32 bf16"; updates=${updates:-12}; utterances=24; freeze=2; ft_updates=6
  max_tokens=64000; threads=(trainer.threads=1); workers=0
  bench_args=(--models tiny --tasks pretrain --precisions fp32 --batch 1 --seconds 1 --warmup 0 --repeats 1
              --memory-steps 0 --threads 1)
  compile_backend=eager  # inductor compiles C++ for minutes on a CPU: the suite checks the wiring only
  [ "$ddp" = auto ] && ddp=0
else
  model=base; precisions="bf16 fp16"; updates=${updates:-300}; utterances=400; freeze=20; ft_updates=60
  max_tokens=1400000; threads=(); workers=2; compile_backend=inductor
  bench_args=(--models base --tasks pretrain,finetune,infer --precisions fp32,bf16 --batch 8 --seconds 15
              --warmup 2 --repeats 5)
  if [ "$ddp" = auto ]; then
    gpus=$("$py" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
    ddp=$([ "${gpus:-0}" -ge 2 ] && echo 1 || echo 0)
  fi
fi
common=(model=$model trainer.device=$device trainer.progress=false trainer.tensorboard=false
        trainer.log_interval=1 data.num_workers=$workers data.min_sample_size=4000 data.max_sample_size=32000
        data.max_tokens=$max_tokens "${threads[@]}")

# stage NAME COMMAND...: run it with its output in $work/NAME.log; one row "NAME<TAB>rc<TAB>seconds".
stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "== $name: $*" >&2
  "$@" > "$work/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" >> "$rows"
  if [ $rc -ne 0 ]; then
    echo "== $name failed (exit $rc); the end of $work/$name.log:" >&2
    tail -n 25 "$work/$name.log" >&2
  fi
  return $rc
}
skip() { printf '%s\tskipped\t0\n' "$1" >> "$rows"; }
cli() { "$py" -m speechssl.cli.main "$@"; }

cd "$repo" || exit 2
if [ $run_tests = 1 ]; then
  stage cuda-tests "$py" -m pytest -m cuda -p no:cacheprovider tests/training/test_cuda.py
fi

make_corpus() {
  "$py" -c "import sys; from speechssl.data.dummies import folder_tree; folder_tree(sys.argv[1], int(sys.argv[2]))" \
    "$work/tones" "$utterances" &&
  cli prepare folder "$work/tones/audio" "$work/data" --transcripts "$work/tones/transcripts.tsv" \
    --valid-percent 0.2 --seed 1 --quiet
}
stage corpus make_corpus
corpus_ok=$?

first=
for p in $precisions; do
  if [ $corpus_ok -ne 0 ]; then skip "pretrain-$p"; continue; fi
  stage "pretrain-$p" cli pretrain "data.dir=$work/data" "${common[@]}" "trainer.precision=$p" \
    "trainer.max_updates=$updates" "trainer.save_interval=$updates" trainer.valid_interval=0 \
    "trainer.run_dir=$work/pretrain-$p" optim.lr=5e-4 "schedule.warmup_updates=$((updates / 10 + 1))" \
    && [ -z "$first" ] && first=$p
done

if [ -n "$first" ]; then
  compiled_updates=$((updates / 3 + 1))
  stage compiled cli pretrain "data.dir=$work/data" "${common[@]}" "trainer.precision=$first" trainer.compile=true \
    "trainer.compile_backend=$compile_backend" "trainer.max_updates=$compiled_updates" trainer.save_interval=0 \
    trainer.valid_interval=0 "trainer.run_dir=$work/compiled" optim.lr=5e-4 \
    "schedule.warmup_updates=$((compiled_updates / 10 + 1))"
else
  skip compiled
fi

if [ -n "$first" ]; then
  init=$work/pretrain-$first/checkpoints/checkpoint_last.pt
  ft_precision=$first
  stage finetune cli finetune "data.dir=$work/data" "${common[@]}" "trainer.precision=$ft_precision" \
    "init=$init" "freeze_finetune_updates=$freeze" "trainer.max_updates=$ft_updates" \
    "trainer.save_interval=$freeze" trainer.keep_interval_checkpoints=-1 "trainer.valid_interval=$ft_updates" \
    "trainer.run_dir=$work/finetune" optim.lr=5e-4 model.feature_grad_mult=0.0
  ft_ok=$?
else
  skip finetune; ft_ok=1
fi

evaluate_and_transcribe() {
  local ckpt=$work/finetune/checkpoints/checkpoint_last.pt
  cli evaluate "$ckpt" "$work/data" --subset valid --out "$work/evaluate" --device "$device" &&
  cli transcribe "$ckpt" "$(find "$work/tones/audio" -name '*.wav' | sort | head -n 1)" --device "$device" \
    --output "$work/transcript.txt"
}
if [ $ft_ok -eq 0 ]; then stage evaluate evaluate_and_transcribe; else skip evaluate; fi

if [ "$ddp" = 1 ] && [ -n "$first" ]; then
  stage ddp "$py" -m torch.distributed.run --nproc_per_node 2 --master_addr 127.0.0.1 --master_port 29533 \
    -m speechssl.cli.main pretrain "data.dir=$work/data" "${common[@]}" "trainer.precision=$first" \
    "trainer.max_updates=$((updates / 3 + 1))" trainer.save_interval=0 trainer.valid_interval=0 \
    "trainer.run_dir=$work/ddp" optim.lr=5e-4 "schedule.warmup_updates=$((updates / 30 + 1))"
fi

if [ $run_bench = 1 ]; then
  stage bench-model "$py" bench/bench_model.py --device "$device" "${bench_args[@]}" --json "$work/bench_model.json"
fi

"$py" bench/gpu_smoke_report.py "$work" --device "$device" --precisions $precisions --freeze "$freeze"
