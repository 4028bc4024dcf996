#!/usr/bin/env bash
# Long-audio transcription measured end to end: a clean corpus with joined training files, a `small` model
# fine-tuned on them, a 3-gram LM, then a 3-minute concatenation of held-out sentences transcribed whole and in
# 20-second chunks (bench/chunked_vs_whole.py) at several overlaps, greedy and with the LM.
#
#   bash bench/long_audio/run.sh [OUT] [KEY=VALUE ...]
#
# Settings: OUT=bench/long_audio/work  INIT=<pretrained or CTC checkpoint; "none" = from scratch>
#           (default: the `make demo` pretrained model, egs/synthetic/exp/pretrain/checkpoints/checkpoint_best.pt)
#           UPDATES=6000  LR=1e-3  THREADS=2  OVERLAPS="2 3 4"  CHUNK=20  MINUTES=3
#           HOURS=2.4 (clean training speech)  TEST_SEEDS="7 8 9" (one held-out sentence set, one 3-minute concatenation, per seed)
#           STATS="recording chunk" (transcribe's --chunk-statistics: the recording's GroupNorm statistics, or each chunk's own)
# Each step is skipped when its output exists; the figures land in OUT/results/*.json and OUT/results.md.
set -euo pipefail
REPO_DIR=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$REPO_DIR/bench/long_audio/work
INIT=$REPO_DIR/egs/synthetic/exp/pretrain/checkpoints/checkpoint_best.pt
UPDATES=6000
LR=1e-3
THREADS=2
OVERLAPS="2 3 4"
TEST_SEEDS="7 8 9"
CHUNK=20
MINUTES=3
HOURS=2.4
STATS="recording chunk"
for arg in "$@"; do
  case $arg in
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *=*) declare "${arg%%=*}=${arg#*=}" ;;
    *) OUT=$arg ;;
  esac
done
PYTHON=${PYTHON:-$REPO_DIR/.venv/bin/python}
speechssl() { "$(dirname "$PYTHON")/speechssl" "$@"; }
log() { echo "[$(date +%H:%M:%S)] $*"; }

log "corpora: clean voice, joined training files, held-out sentences (each part made once)"
"$PYTHON" "$REPO_DIR/bench/long_audio/make_corpus.py" "$OUT" --hours "$HOURS" --test-seeds $TEST_SEEDS

model=$OUT/finetune/checkpoints/checkpoint_last.pt
init_args=()
[[ $INIT == none ]] || init_args=("init=$INIT")
if [[ ! -f $OUT/finetune/.done ]]; then
  [[ $INIT == none || -f $INIT ]] || { echo "no checkpoint $INIT: run \`make demo\` first, or INIT=none / INIT=PATH" >&2; exit 1; }
  log "fine-tune small on $OUT/long ($UPDATES updates, 40 s batches) from ${INIT}"
  speechssl finetune +experiment=finetune_cpu "data.dir=$OUT/long" data.max_tokens=640000 \
    data.max_sample_size=640000 "trainer.run_dir=$OUT/finetune" "trainer.max_updates=$UPDATES" \
    trainer.valid_interval=500 trainer.save_interval=500 "trainer.threads=$THREADS" trainer.progress=false \
    "optim.lr=$LR" "${init_args[@]}"
  touch "$OUT/finetune/.done"
fi

lm=$OUT/lm/3gram.arpa
if [[ ! -f $lm ]]; then
  log "3-gram LM on the training transcripts"
  mkdir -p "$OUT/lm"
  speechssl lm build "$OUT/corpus/train.wrd" "$lm" --order 3 --lexicon "$OUT/lm/lexicon.txt" \
    --vocab "$OUT/long/dict.ltr.txt"
fi

mkdir -p "$OUT/results"
for seed in $TEST_SEEDS; do
  for overlap in $OVERLAPS; do
    for decoder in viterbi kenlm; do
      for stats in $STATS; do
        json=$OUT/results/seed${seed}_${decoder}_overlap${overlap}_$stats.json
        [[ -f $json ]] && continue
        log "held-out set $seed, chunked vs whole: $decoder, ${CHUNK} s chunks, overlap $overlap s, $stats statistics"
        extra=()
        [[ $decoder == kenlm ]] && extra=(--lm "$lm" --lexicon "$OUT/lm/lexicon.txt")
        "$PYTHON" "$REPO_DIR/bench/chunked_vs_whole.py" "$model" "$OUT/heldout/seed$seed" --subset test \
          --minutes "$MINUTES" --chunk-seconds "$CHUNK" --overlap "$overlap" --decoder "$decoder" "${extra[@]}" \
          --chunk-statistics "$stats" --json "$json"
      done
    done
  done
done
"$PYTHON" - "$OUT/results" > "$OUT/results.md" <<'EOF'
import json, sys
from collections import defaultdict
from pathlib import Path
rows = defaultdict(list)
for path in Path(sys.argv[1]).glob("seed*_*_overlap*.json"):
    r = json.loads(path.read_text())
    stats = r.get("chunk_statistics", "chunk")  # before the option existed every chunk had its own
    rows[(r["decoder"], r["overlap_seconds"], stats)].append((int(path.stem.split("_")[0][4:]), r))
print("| decoder | overlap s | statistics | held-out set | chunked vs whole WER | CER | whole WER vs ref "
      "| chunked WER vs ref | times ordered |")
print("|---|---|---|---|---|---|---|---|---|")
for (decoder, overlap, stats), runs in sorted(rows.items()):
    for seed, r in sorted(runs, key=lambda x: x[0]):
        print(f"| {decoder} | {overlap:g} | {stats} | seed {seed} | {r['chunked_vs_whole_wer']:.2f} | "
              f"{r['chunked_vs_whole_cer']:.2f} | {r['whole_wer']:.2f} | {r['chunked_wer']:.2f} "
              f"| {r['whole_times_ordered'] and r['chunked_times_ordered']} |")
    mean = lambda key: sum(r[key] for _, r in runs) / len(runs)
    print(f"| {decoder} | {overlap:g} | {stats} | **mean of {len(runs)}** | **{mean('chunked_vs_whole_wer'):.2f}** "
          f"| {mean('chunked_vs_whole_cer'):.2f} | {mean('whole_wer'):.2f} | {mean('chunked_wer'):.2f} | |")
EOF
cat "$OUT/results.md"
