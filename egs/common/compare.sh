#!/usr/bin/env bash
# Pretrained-versus-scratch helpers of the CPU recipes (egs/synthetic, egs/an4), sourced once the settings are
# final (after apply_overrides). Sourcing sets what both recipes share: DATA and EXP (default data/ and exp/
# beside the recipe, data_quick/ and exp_quick/ with --quick), the arrays pretrain_overrides,
# finetune_overrides (from PRETRAIN_OVERRIDES, FINETUNE_OVERRIDES) and common (the recipe's quick_common), the
# LM name and lexicon path (LM_NAME, lexicon), and loads asr.sh (decode_sets) with the LM grid off.
#
#   finetune_pretrained NAME DATA_DIR SUBSET INIT_CKPT OVERRIDE...  # one run, 1 thread: EXP/finetune/NAME_pretrained
#                                                                  # (its feature encoder: FEATURE_ENCODER_LR_SCALE)
#   finetune_scratch NAME DATA_DIR SUBSET OVERRIDE...                # EXP/finetune/NAME_scratch
#                                    (STARTS=K > 1: either one the best of K starts at update START_UPDATES)
#   pool_slot; cmd &                               # at most JOBS background jobs at a time
#   decode_pair NAME DATA_DIR SUBSETS LM LEXICON   # greedy and LM decoding of both
#   compare_table OUT TITLE SUBSET GROUPS NAME...  # the WER table (GROUPS: utterance-id<TAB>group file or "")
#   plot_runs NAME...                              # EXP/plots/<run>/ curves of the pretraining and every run

DATA=${DATA:-$RECIPE_DIR/data$($quick && echo _quick || true)}
EXP=${EXP:-$RECIPE_DIR/exp$($quick && echo _quick || true)}
read -r -a pretrain_overrides <<< "$PRETRAIN_OVERRIDES"
read -r -a finetune_overrides <<< "$FINETUNE_OVERRIDES"
TUNE_LM=false
LM_NAME=${LM_ORDER}gram
lexicon=$DATA/lm/lexicon.txt
common=(trainer.progress=false ${quick_common[@]+"${quick_common[@]}"})
. "$REPO_DIR/egs/common/asr.sh"

# finetune_run NAME DATA_DIR SUBSET OVERRIDE...: one fine-tuning run (+experiment=finetune_cpu), 1 thread,
# its output appended to EXP/finetune/NAME.log. With STARTS=K > 1 the run starts K times first (best_start),
# unless it is no longer than START_UPDATES.
finetune_run() {
  local name=$1 data=$2 subset=$3; shift 3
  local dir=$EXP/finetune/$name args=("$@")
  if ((${STARTS:-1} > 1)) && [[ ! -f $dir/.done ]]; then
    if ((START_UPDATES >= FINETUNE_UPDATES)); then
      # a run that ends at or before the choice point has nothing to choose between (FINETUNE_UPDATES=4 smoke runs)
      log "  $name: one start, not $STARTS: the run's $FINETUNE_UPDATES updates end before START_UPDATES=$START_UPDATES"
    else
      local seed
      seed=$(best_start "$name" "$data" "$subset" "$@") || die "the starts of fine-tuning $name failed"
      read -r -a args <<< "$(with_seed "$seed" "$@")"
    fi
  fi
  mkdir -p "$dir"
  once "$dir/.done" speechssl finetune +experiment=finetune_cpu "data.dir=$data" "data.train_subset=$subset" \
    data.valid_subset=valid "trainer.run_dir=$dir" "trainer.max_updates=$FINETUNE_UPDATES" trainer.threads=1 \
    "${args[@]}" ${common[@]+"${common[@]}"} ${finetune_overrides[@]+"${finetune_overrides[@]}"} >> "$dir.log" 2>&1 \
    || die "fine-tuning $name failed; see $dir.log"
}

# with_seed SEED OVERRIDE...: the overrides with trainer.seed=SEED in place of theirs (added if none).
with_seed() {
  local seed=$1 out=() arg found=false; shift
  for arg in "$@"; do
    if [[ $arg == trainer.seed=* ]]; then out+=("trainer.seed=$seed"); found=true; else out+=("$arg"); fi
  done
  $found || out+=("trainer.seed=$seed")
  echo "${out[@]}"
}

# best_start NAME DATA_DIR SUBSET OVERRIDE...: STARTS (K) starts of one fine-tuning run, with trainer.seed S,
# S+1000, ..., S+1000(K-1) (S: the overrides' seed, default 1), each trained START_UPDATES updates of the full
# schedule (trainer.stop_at_update) in EXP/finetune/NAME.starts/seed<s>/. Prints the seed of the start with the
# lowest valid CTC loss there, and moves that start to EXP/finetune/NAME (+ its log to NAME.log), where
# finetune_run goes on with it to the end. Why: a start that leaves CTC's all-blank stage late ends worse
# however long it trains, and its valid CTC loss gives it away early: at update 900, and already at 400
# (egs/an4/README.md, "Fine-tuning starts that fail").
best_start() {
  local name=$1 data=$2 subset=$3; shift 3
  local dir=$EXP/finetune/$name starts=$EXP/finetune/$name.starts first=1 arg k seed loss best="" best_loss=""
  if [[ -d $dir ]]; then  # chosen already (an interrupted recipe): go on with it
    "$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["trainer"]["seed"])' "$dir/config.yaml"
    return
  fi
  for arg in "$@"; do [[ $arg == trainer.seed=* ]] && first=${arg#trainer.seed=}; done
  for ((k = 0; k < STARTS; k++)); do
    seed=$((first + 1000 * k))
    mkdir -p "$starts/seed$seed"
    speechssl finetune +experiment=finetune_cpu "data.dir=$data" "data.train_subset=$subset" \
      data.valid_subset=valid "trainer.run_dir=$starts/seed$seed" "trainer.max_updates=$FINETUNE_UPDATES" \
      trainer.threads=1 "trainer.stop_at_update=$START_UPDATES" $(with_seed "$seed" "$@") \
      ${common[@]+"${common[@]}"} ${finetune_overrides[@]+"${finetune_overrides[@]}"} \
      >> "$starts/seed$seed.log" 2>&1 || return 1
    loss=$("$PYTHON" "$REPO_DIR/egs/common/valid_metric.py" "$starts/seed$seed" ctc_loss "$START_UPDATES") || return 1
    log "  $name, start with trainer.seed=$seed: valid CTC loss $(printf %.2f "$loss") at update $START_UPDATES"
    if [[ -z $best ]] || "$PYTHON" -c 'import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))' \
        "$loss" "$best_loss"; then
      best=$seed best_loss=$loss
    fi
  done
  log "  $name: going on with trainer.seed=$best (of $STARTS starts)"
  mv "$starts/seed$best" "$dir"
  mv "$starts/seed$best.log" "$dir.log"
  echo "$best"
}

# finetune_pretrained NAME DATA_DIR SUBSET INIT_CKPT OVERRIDE...: a run from the pretrained checkpoint; its conv
# feature encoder trains at FEATURE_ENCODER_LR_SCALE times the learning rate (optim.feature_encoder_lr_scale;
# 0 or unset: frozen, as fairseq fine-tunes; each recipe sets it and says why).
# finetune_scratch NAME DATA_DIR SUBSET OVERRIDE...: the same architecture and init from scratch, without the
# head-only warm-up (a random encoder has nothing to protect); its feature encoder trains at the full rate (see
# speechssl/training/finetune.py).
finetune_pretrained() {
  local name=$1 data=$2 subset=$3 init=$4 feature_encoder=(model.feature_grad_mult=0.0); shift 4
  if [[ ! ${FEATURE_ENCODER_LR_SCALE:-0} =~ ^0*\.?0*$ ]]; then
    feature_encoder=(model.feature_grad_mult=1.0 "optim.feature_encoder_lr_scale=$FEATURE_ENCODER_LR_SCALE")
  fi
  finetune_run "${name}_pretrained" "$data" "$subset" "init=$init" "${feature_encoder[@]}" "$@"
}
finetune_scratch() {
  local name=$1 data=$2 subset=$3; shift 3
  finetune_run "${name}_scratch" "$data" "$subset" freeze_finetune_updates=0 "$@"
}

# pool_slot: wait until fewer than JOBS (default 2) background jobs of this shell run, so that the next one can
# start. A job that fails says so in its log; callers check the jobs' .done markers afterwards.
pool_slot() {
  while (($(jobs -rp | wc -l) >= ${JOBS:-2})); do
    wait -n || true
  done
}

# decode_pair NAME DATA_DIR SUBSETS LM LEXICON: both runs of NAME, greedy and with the LM (one model pass each).
decode_pair() {
  local name=$1 data=$2 subsets=$3 lm=$4 lexicon=$5 init dir
  for init in pretrained scratch; do
    dir=$EXP/finetune/${name}_$init
    decode_sets "$dir/checkpoints/checkpoint_best.pt" "$data" "$subsets" "$dir/decode_$LM_NAME" "$lm" "$lexicon" \
      "$dir/decode_viterbi"
  done
}

# compare_table OUT TITLE SUBSET GROUPS NAME...: rows (budget, decoder) x (pretrained, scratch), the relative WER
# reduction per budget; GROUPS (utterance-id<TAB>group) adds a WER column per group. Runs named BUDGET_seedN
# are further fine-tuning seeds of BUDGET: the table shows their mean and lists each run.
compare_table() {
  local out=$1 title=$2 subset=$3 groups=$4 rows=() decoder name init label
  shift 4
  for decoder in viterbi "$LM_NAME"; do
    for name in "$@"; do
      label="${name%_seed*}, $([[ $decoder == viterbi ]] && echo greedy || echo "$LM_NAME LM")"
      for init in pretrained scratch; do
        rows+=(--row "$label" "$init" "$EXP/finetune/${name}_$init/decode_$decoder")
      done
    done
  done
  "$PYTHON" "$REPO_DIR/egs/common/wer_table.py" "${rows[@]}" --subset "$subset" \
    ${groups:+--groups "$subset=$groups"} --title "$title" --out "$out"
}

# plot_runs NAME...: PNG curves of the pretraining run and of both runs of every NAME, under EXP/plots/.
plot_runs() {
  local name init
  speechssl plot "$EXP/pretrain" --out "$EXP/plots/pretrain" > /dev/null
  for name in "$@"; do
    for init in pretrained scratch; do
      speechssl plot "$EXP/finetune/${name}_$init" --out "$EXP/plots/${name}_$init" > /dev/null
    done
  done
}
