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
# Each step is skipped when its output exists; the figures land in OUT/results/*.json and OUT/results.md.
set -euo pipefail
REPO_DIR=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$REPO_DIR/bench/long_audio/work
INIT=$REPO_DIR/egs/synthetic/exp/pretrain/checkpoints/checkpoint_best.pt
UPDATES=6000
LR=1e-3
THREADS=2
OVERLAPS="2 3 4"
CHUNK=20
MINUTES=3
for arg in "$@"; do
  case $arg in
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *=*) declare "${arg%%=*}=${arg#*=}" ;;
    *) OUT=$arg ;;
  esac
done
PYTHON=${PYTHON:-$REPO_DIR/.venv/bin/python}
speechssl() { "$(dirname "$PYTHON")/speechssl" "$@"; }
log() { echo "[$(date +%H:%M:%S)] $*"; }

if [[ ! -f $OUT/long/train.tsv ]]; then
  log "corpora: clean voice, joined training files, held-out sentences"
  "$PYTHON" "$REPO_DIR/bench/long_audio/make_corpus.py" "$OUT"
fi

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
for overlap in $OVERLAPS; do
  for decoder in viterbi kenlm; do
    json=$OUT/results/${decoder}_overlap$overlap.json
    [[ -f $json ]] && continue
    log "chunked vs whole: $decoder, ${CHUNK} s chunks, overlap $overlap s"
    extra=()
    [[ $decoder == kenlm ]] && extra=(--lm "$lm" --lexicon "$OUT/lm/lexicon.txt")
    "$PYTHON" "$REPO_DIR/bench/chunked_vs_whole.py" "$model" "$OUT/heldout" --subset test --minutes "$MINUTES" \
      --chunk-seconds "$CHUNK" --overlap "$overlap" --decoder "$decoder" "${extra[@]}" --json "$json"
  done
done
"$PYTHON" - "$OUT/results" > "$OUT/results.md" <<'EOF'
import json, sys
from pathlib import Path
print("| decoder | overlap s | chunked vs whole WER | CER | whole WER vs ref | chunked WER vs ref | times ordered |")
print("|---|---|---|---|---|---|---|")
for path in sorted(Path(sys.argv[1]).glob("*.json"), key=lambda p: (p.stem.split("_")[0], float(p.stem.split("overlap")[1]))):
    r = json.loads(path.read_text())
    print(f"| {r['decoder']} | {r['overlap_seconds']:g} | {r['chunked_vs_whole_wer']:.2f} | {r['chunked_vs_whole_cer']:.2f} "
          f"| {r['whole_wer']:.2f} | {r['chunked_wer']:.2f} | {r['whole_times_ordered'] and r['chunked_times_ordered']} |")
EOF
cat "$OUT/results.md"
