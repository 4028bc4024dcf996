#!/usr/bin/env bash
# wav2vec 2.0 on LibriSpeech (Baevski et al. 2020): pretrain BASE (or LARGE) on LS-960 or any subsets,
# fine-tune with CTC on Libri-light 10 min / 1 h / 10 h and train-clean-100 with the paper's configs, decode
# dev/test clean/other without and with a 4-gram LM; or start from a public checkpoint (stages 9-10).
#
#   egs/librispeech/run.sh CORPUS=/data/librispeech [--stage N] [--stop-stage M] [--quick] [KEY=VALUE ...]
#
# Stages (each skipped when its .done marker exists; outputs under DATA and EXP):
#   0  prepare LibriSpeech subsets          DATA/librispeech/<subset>.{tsv,wrd,ltr}
#   1  prepare Libri-light 10min/1h/10h     DATA/librilight/train_{10min,1h,10h}.*
#   2  pretraining + fine-tuning dirs       DATA/pretrain/{train,valid}.tsv, DATA/finetune/ (+ fairseq's dict)
#   3  pretrain (+experiment=pretrain_SIZE) EXP/pretrain_SIZE/checkpoints/
#   4  fine-tune on each of LABELS          EXP/finetune_<labels>/checkpoints/   (+experiment=finetune_[large_]<labels>)
#   5  n-gram LM + lexicon                  DATA/lm/<LM>/  (LM: 4gram_transcripts, or arpa with LM_ARPA)
#   6  decode without LM                    EXP/finetune_<labels>/decode_viterbi/{recogs,errs,wer-summary}-<set>.*
#   7  decode with the LM                   EXP/finetune_<labels>/decode_<LM>/ (weights tuned on VALID_SET at BEAM,
#                                           every set then decoded at TEST_BEAM)
#   8  WER tables                           EXP/results.{md,json} (rows labelled with the LM they used)
#   9  import a public checkpoint           EXP/imported/model.pt (+ fine-tuned on IMPORT_LABELS if pretrained)
#   10 decode the imported model(s)         EXP/imported/.../decode_*, EXP/imported/results.{md,json}
#
# Settings (KEY=VALUE; empty = the paper's value):
#   CORPUS=               folder holding LibriSpeech/ (openslr 12, flac); stage 0
#   LIBRILIGHT=           folder holding librispeech_finetuning/ (default: CORPUS); stage 1
#   DATA= EXP=            output folders (default: data/ and exp/ beside this script)
#   PRETRAIN_SETS="train-clean-100 train-clean-360 train-other-500"   (LS-960; any LibriSpeech subsets)
#   EVAL_SETS="dev-clean dev-other test-clean test-other"
#   VALID_SET=dev-other   fine-tuning validation (best checkpoint), LM tuning and pretraining validation
#                         (fairseq's pretraining validates on 1 % of the training audio held out instead)
#   LABELS="10min 1h 10h 100h"   10min/1h/10h: Libri-light; 100h: train-clean-100; 960h: all 3 train sets
#   SIZE=base             base | large: conf/experiment/pretrain_SIZE.yaml, finetune_<labels>.yaml (base) or
#                         finetune_large_<labels>.yaml (large: fairseq's vox_*); large also for an imported LARGE
#   NGPU=1                GPUs per machine (torchrun when > 1). The batch per update stays the paper's: speechssl
#                         derives update_freq from each config's trainer.tokens_per_update, NGPU and
#                         data.max_tokens, prints it, and refuses a GPU count that misses it by > 10 % (its
#                         message names the data.max_tokens to add to PRETRAIN_/FINETUNE_OVERRIDES)
#   PRETRAIN_UPDATE_FREQ= FINETUNE_UPDATE_FREQ=   a number: that update_freq instead (the batch then follows NGPU)
#   MODEL=                model preset of the pretraining (tiny/small for a smoke test)
#   PRETRAIN_UPDATES= FINETUNE_UPDATES= FREEZE_UPDATES=   updates; freeze_finetune_updates
#   PRETRAIN_OVERRIDES= FINETUNE_OVERRIDES=   more Hydra overrides, space-separated
#   PRETRAINED=           checkpoint fine-tuned in stage 4 (default EXP/pretrain_SIZE/checkpoints/checkpoint_best.pt)
#   LM_ARPA=              the paper's 4-gram: openslr 11's 4-gram.arpa or 4-gram.arpa.gz (any word ARPA works;
#                         tables label it by its file name). Empty: a 4-gram estimated from LM_TEXT, offline,
#                         labelled "transcripts" in every table: not the paper's LM, its WER is not the paper's
#   LM_TEXT=              text files to build it from (default: the transcripts of PRETRAIN_SETS)
#   LM_ORDER=4 TUNE_LM=true   LM weight and word score tuned on VALID_SET, else LM_WEIGHT=2 WORD_SCORE=-1
#   BEAM=500 TEST_BEAM=1500   beam while tuning, and for every decoded set (the paper's 4-gram settings)
#   LM_WEIGHTS=0,0.5,..,5 WORD_SCORES=-5,-4,..,5   the tuning grid, comma-separated: the paper's ranges, 121
#                         points (it ran 128 trials of Bayesian optimisation over the same ranges)
#   IMPORT_FROM=hf IMPORT_SRC= IMPORT_DICT=   hf|fairseq, the checkpoint, fairseq CTC's dict.ltr.txt
#   IMPORT_LABELS="$LABELS"   label sets an imported pretrained (not CTC) model is fine-tuned on
#   JOBS=4                processes reading audio headers
#
# --quick: a smoke test on a tiny corpus (python -m speechssl.data.dummies librispeech DIR makes one): the
# tiny model, PRETRAIN_SETS=train-clean-100, LABELS="10min 100h", 10 updates each, CPU-sized batches.
stage=0
stop_stage=100
CORPUS=
LIBRILIGHT=
DATA=
EXP=
PRETRAIN_SETS="train-clean-100 train-clean-360 train-other-500"
EVAL_SETS="dev-clean dev-other test-clean test-other"
VALID_SET=dev-other
LABELS="10min 1h 10h 100h"
SIZE=base
NGPU=1
PRETRAIN_UPDATE_FREQ=
FINETUNE_UPDATE_FREQ=
MODEL=
PRETRAIN_UPDATES=
FINETUNE_UPDATES=
FREEZE_UPDATES=
PRETRAIN_OVERRIDES=
FINETUNE_OVERRIDES=
PRETRAINED=
LM_ARPA=
LM_TEXT=
LM_ORDER=4
BEAM=500
TEST_BEAM=1500
TUNE_LM=true
LM_WEIGHT=2
WORD_SCORE=-1
LM_WEIGHTS=0,0.5,1,1.5,2,2.5,3,3.5,4,4.5,5
WORD_SCORES=-5,-4,-3,-2,-1,0,1,2,3,4,5
IMPORT_FROM=hf
IMPORT_SRC=
IMPORT_DICT=
IMPORT_LABELS=
JOBS=4

. "$(dirname "$0")/../common/stages.sh"
parse_args "$@"
quick_pretrain=()
quick_finetune=()
if $quick; then
  MODEL=tiny PRETRAIN_SETS=train-clean-100 LABELS="10min 100h" PRETRAIN_UPDATES=10 FINETUNE_UPDATES=10
  FREEZE_UPDATES=0 PRETRAIN_UPDATE_FREQ=1 FINETUNE_UPDATE_FREQ=1 BEAM=20 TEST_BEAM=30 LM_WEIGHTS=0,2
  WORD_SCORES=-5,0,5 JOBS=1
  quick_pretrain=(data.max_tokens=64000 data.max_sample_size=16000 data.min_sample_size=4000
                  schedule.warmup_updates=2)
  quick_finetune=(data.max_tokens=200000 model.mask_channel_length=4)
  quick_common=(trainer.progress=false trainer.tensorboard=false trainer.precision=fp32 data.num_workers=0
                trainer.log_interval=1)
  quick_pretrain+=("${quick_common[@]}")
  quick_finetune+=("${quick_common[@]}")
fi
apply_overrides

DATA=${DATA:-$RECIPE_DIR/data}
EXP=${EXP:-$RECIPE_DIR/exp}
LIBRILIGHT=${LIBRILIGHT:-$CORPUS}
IMPORT_LABELS=${IMPORT_LABELS:-$LABELS}
read -r -a pretrain_sets <<< "$PRETRAIN_SETS"
read -r -a eval_sets <<< "$EVAL_SETS"
read -r -a labels <<< "$LABELS"
read -r -a import_labels <<< "$IMPORT_LABELS"
read -r -a pretrain_overrides <<< "$PRETRAIN_OVERRIDES"
read -r -a finetune_overrides <<< "$FINETUNE_OVERRIDES"
[[ $SIZE == base || $SIZE == large ]] || die "SIZE must be base or large, got '$SIZE'"
# The batch per update: derived by speechssl from the experiment (trainer.tokens_per_update), or an update_freq.
pretrain_batch=() finetune_batch=()
[[ -n $PRETRAIN_UPDATE_FREQ ]] && pretrain_batch=(trainer.tokens_per_update=null "trainer.update_freq=$PRETRAIN_UPDATE_FREQ")
[[ -n $FINETUNE_UPDATE_FREQ ]] && finetune_batch=(trainer.tokens_per_update=null "trainer.update_freq=$FINETUNE_UPDATE_FREQ")
describe_batch() { [[ -n $1 ]] && echo "update_freq $1 x $NGPU GPU" || echo "the paper's batch on $NGPU GPU"; }
PRETRAINED=${PRETRAINED:-$EXP/pretrain_$SIZE/checkpoints/checkpoint_best.pt}
# The LM: the user's ARPA (the paper's is openslr 11's 4-gram.arpa), or one estimated from transcripts. Its name
# marks the LM directory, the decoding directories and the rows of every table, so the two never mix.
if [[ -n $LM_ARPA ]]; then
  LM_NAME=arpa
  LM_LABEL="LM $(basename "$LM_ARPA" .gz)"
else
  LM_NAME=${LM_ORDER}gram_transcripts
  LM_LABEL="$LM_ORDER-gram LM from transcripts (not the paper's)"
fi
join() { local IFS=,; echo "$*"; }
# The decoded sets: VALID_SET first (the LM weight and word score are tuned on it), then EVAL_SETS.
mapfile -t decode_sets < <(printf '%s\n' "$VALID_SET" "${eval_sets[@]}" | awk '!seen[$0]++')

# The Libri-light sets and LibriSpeech subsets each label set fine-tunes on, and the paper's config.
experiment_of() {
  local size=; [[ $SIZE == large ]] && size=large_
  case $1 in
    10min) echo "finetune_${size}10m" ;; 1h|10h|100h|960h) echo "finetune_${size}$1" ;;
    *) die "unknown label set '$1' (expected 10min, 1h, 10h, 100h or 960h)" ;;
  esac
}
for l in "${labels[@]}" "${import_labels[@]}"; do experiment_of "$l" >/dev/null; done
needed_subsets() {
  local l
  printf '%s\n' "${pretrain_sets[@]}" "${eval_sets[@]}" "$VALID_SET"
  for l in "${labels[@]}" "${import_labels[@]}"; do
    case $l in
      100h) echo train-clean-100 ;;
      960h) printf '%s\n' train-clean-100 train-clean-360 train-other-500 ;;
    esac
  done
}
mapfile -t ls_subsets < <(needed_subsets | awk '!seen[$0]++')

. "$REPO_DIR/egs/common/asr.sh"
lm_dir=$DATA/lm/$LM_NAME
lm_file=$lm_dir/lm.arpa
[[ -n $LM_ARPA && $LM_ARPA != *.gz ]] && lm_file=$LM_ARPA
lexicon=$lm_dir/lexicon.txt

# finetune INIT RUN_DIR LABELS [OVERRIDE...]: CTC fine-tuning with the paper's config of that label set.
finetune() {
  train_app finetune "+experiment=$(experiment_of "$3")" "init=$1" "data.dir=$DATA/finetune" \
    "data.train_subset=train_$3" "data.valid_subset=$VALID_SET" "trainer.run_dir=$2" \
    ${finetune_batch[@]+"${finetune_batch[@]}"} ${FINETUNE_UPDATES:+trainer.max_updates=$FINETUNE_UPDATES} \
    ${FREEZE_UPDATES:+freeze_finetune_updates=$FREEZE_UPDATES} \
    ${quick_finetune[@]+"${quick_finetune[@]}"} "${@:4}" ${finetune_overrides[@]+"${finetune_overrides[@]}"}
}

if stage_enabled 0 "prepare LibriSpeech: ${ls_subsets[*]}"; then
  [[ -n $CORPUS ]] || die "CORPUS=DIR is needed: the folder holding LibriSpeech/"
  once "$DATA/librispeech/.done" speechssl prepare librispeech "$CORPUS" "$DATA/librispeech" \
    --subsets "${ls_subsets[@]}" --jobs "$JOBS" --quiet
fi

if stage_enabled 1 "prepare Libri-light limited supervision (10min, 1h, 10h)"; then
  if printf '%s\n' "${labels[@]}" "${import_labels[@]}" | grep -qE '^(10min|1h|10h)$'; then
    [[ -n $LIBRILIGHT ]] || die "LIBRILIGHT=DIR (or CORPUS=DIR) is needed: the folder holding librispeech_finetuning/"
    once "$DATA/librilight/.done" speechssl prepare librilight "$LIBRILIGHT" "$DATA/librilight" --jobs "$JOBS" --quiet
  else
    log "  no Libri-light label set in LABELS: skipped"
  fi
fi

if stage_enabled 2 "pretraining manifests (${pretrain_sets[*]}) and fine-tuning sets (${labels[*]})"; then
  once "$DATA/finetune/.done" "$PYTHON" "$RECIPE_DIR/local/make_dirs.py" "$DATA" \
    --pretrain-sets "${pretrain_sets[@]}" --valid-set "$VALID_SET" --decode-sets "${decode_sets[@]}" \
    --labels $(printf '%s\n' "${labels[@]}" "${import_labels[@]}" | awk '!seen[$0]++')
fi

if stage_enabled 3 "pretrain $SIZE on ${pretrain_sets[*]} ($(describe_batch "$PRETRAIN_UPDATE_FREQ"))"; then
  once "$EXP/pretrain_$SIZE/.done" train_app pretrain "+experiment=pretrain_$SIZE" "data.dir=$DATA/pretrain" \
    "trainer.run_dir=$EXP/pretrain_$SIZE" ${pretrain_batch[@]+"${pretrain_batch[@]}"} ${MODEL:+model=$MODEL} \
    ${PRETRAIN_UPDATES:+trainer.max_updates=$PRETRAIN_UPDATES} \
    ${quick_pretrain[@]+"${quick_pretrain[@]}"} ${pretrain_overrides[@]+"${pretrain_overrides[@]}"}
fi

if stage_enabled 4 "fine-tune $PRETRAINED on ${labels[*]} ($(describe_batch "$FINETUNE_UPDATE_FREQ"))"; then
  [[ -e $PRETRAINED ]] || die "no pretrained checkpoint $PRETRAINED: run stage 3, or set PRETRAINED=CKPT"
  for l in "${labels[@]}"; do
    once "$EXP/finetune_$l/.done" finetune "$PRETRAINED" "$EXP/finetune_$l" "$l"
  done
fi

# unpack_arpa: openslr 11 ships its LMs gzipped; the decoder and the lexicon read plain ARPA.
unpack_arpa() { gzip -dc "$LM_ARPA" > "$lm_file.tmp" && mv "$lm_file.tmp" "$lm_file"; }

if stage_enabled 5 "LM: $LM_LABEL, and its lexicon"; then
  if [[ -n $LM_ARPA ]]; then
    [[ -f $LM_ARPA ]] || die "LM_ARPA=$LM_ARPA: no such file (openslr 11's 4-gram.arpa.gz, gunzipped or not)"
    [[ $LM_ARPA == *.gz ]] && once "$lm_dir/.unpacked.done" unpack_arpa
    once "$lm_dir/.done" speechssl lm lexicon "$lm_file" "$lexicon" --vocab "$DATA/finetune/dict.ltr.txt"
    [[ -f $lm_dir/label.txt ]] || echo "$LM_LABEL" > "$lm_dir/label.txt"
  else
    if [[ -n $LM_TEXT ]]; then
      read -r -a lm_text <<< "$LM_TEXT"
    else
      lm_text=()
      for s in "${pretrain_sets[@]}"; do lm_text+=("$DATA/librispeech/$s.wrd"); done
    fi
    once "$lm_dir/.done" speechssl lm build "${lm_text[@]}" "$lm_file" --order "$LM_ORDER" \
      --vocab "$DATA/finetune/dict.ltr.txt" --lexicon "$lexicon"
    [[ -f $lm_dir/label.txt ]] || echo "$LM_LABEL" > "$lm_dir/label.txt"
  fi
fi

if stage_enabled 6 "decode ${decode_sets[*]} without LM"; then
  for l in "${labels[@]}"; do
    decode_sets "$EXP/finetune_$l/checkpoints/checkpoint_best.pt" "$DATA/finetune" "$(join "${decode_sets[@]}")" \
      "$EXP/finetune_$l/decode_viterbi"
  done
fi

if stage_enabled 7 "decode ${decode_sets[*]} with the LM: $LM_LABEL (beam $TEST_BEAM)"; then
  for l in "${labels[@]}"; do
    decode_sets "$EXP/finetune_$l/checkpoints/checkpoint_best.pt" "$DATA/finetune" "$(join "${decode_sets[@]}")" \
      "$EXP/finetune_$l/decode_$LM_NAME" "$lm_file" "$lexicon"
  done
fi

# lm_entries: every LM stage 5 made, as wer_tables' "NAME=LABEL;..." (a model decoded with both gets both rows).
lm_entries() {
  local d entries=()
  for d in "$DATA"/lm/*/; do
    [[ -f $d/label.txt ]] && entries+=("$(basename "$d")=$(<"$d/label.txt")")
  done
  local IFS=';'
  echo "${entries[*]}"
}
# tables_marker PREFIX: a table's .done marker named after the LMs it has rows for, so that decoding with a
# second LM (LM_ARPA after the transcripts' LM) writes the tables again, with both.
tables_marker() {
  local names=() d
  for d in "$DATA"/lm/*/; do [[ -f $d/label.txt ]] && names+=("$(basename "$d")"); done
  local IFS=+
  echo "$1.results${names[*]:+_${names[*]}}.done"
}

if stage_enabled 8 "WER tables"; then
  rows=()
  for l in "${labels[@]}"; do rows+=("$l" "$EXP/finetune_$l"); done
  once "$(tables_marker "$EXP/")" wer_tables "$EXP/results" "WER (%), ${MODEL:-$SIZE} pretrained on ${pretrain_sets[*]}" \
    "${eval_sets[*]}" "$(lm_entries)" "${rows[@]}"
fi

# import_model: convert IMPORT_SRC, keeping convert's report ("wrote <source> <task> model, ...").
import_model() {
  speechssl convert --from "$IMPORT_FROM" "$IMPORT_SRC" "$EXP/imported/model.pt" ${IMPORT_DICT:+--dict "$IMPORT_DICT"} \
    | tee "$EXP/imported/convert.log"
}
# imported_task: pretrain or ctc, from convert's report.
imported_task() {
  grep -oE '(pretrain|ctc) model' "$EXP/imported/convert.log" | head -n 1 | cut -d' ' -f1
}

if stage_enabled 9 "import ${IMPORT_SRC:-(IMPORT_SRC not set)}"; then
  if [[ -z $IMPORT_SRC ]]; then
    log "  IMPORT_SRC not set: nothing to import (e.g. IMPORT_FROM=hf IMPORT_SRC=path/to/wav2vec2-base)"
  else
    once "$EXP/imported/.convert.done" import_model
    if [[ $(imported_task) == pretrain ]]; then
      for l in "${import_labels[@]}"; do
        once "$EXP/imported/finetune_$l/.done" finetune "$EXP/imported/model.pt" "$EXP/imported/finetune_$l" "$l"
      done
    else
      log "  a CTC model: decoded as it is in stage 10"
    fi
  fi
fi

if stage_enabled 10 "decode the imported model(s)"; then
  if [[ ! -f $EXP/imported/model.pt ]]; then
    log "  no imported model: run stage 9 with IMPORT_SRC=..."
  else
    rows=()
    if [[ $(imported_task) == pretrain ]]; then
      for l in "${import_labels[@]}"; do rows+=("$l" "$EXP/imported/finetune_$l"); done
    else
      rows=("as released" "$EXP/imported")
    fi
    set -- "${rows[@]}"
    while (($#)); do
      ckpt=$2/checkpoints/checkpoint_best.pt
      [[ -d $2/checkpoints ]] || ckpt=$2/model.pt
      decode_sets "$ckpt" "$DATA/finetune" "$(join "${decode_sets[@]}")" "$2/decode_viterbi"
      if [[ -f $lm_file && -f $lexicon ]]; then
        decode_sets "$ckpt" "$DATA/finetune" "$(join "${decode_sets[@]}")" "$2/decode_$LM_NAME" "$lm_file" "$lexicon"
      fi
      shift 2
    done
    once "$(tables_marker "$EXP/imported/")" wer_tables "$EXP/imported/results" "WER (%), imported $IMPORT_SRC" \
      "${eval_sets[*]}" "$(lm_entries)" "${rows[@]}"
  fi
fi
