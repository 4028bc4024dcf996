#!/usr/bin/env bash
# wav2vec 2.0 on your own audio: a folder of wav/flac/ogg/mp3 files (any rate, any depth), pretrained without
# labels; with a transcripts TSV (relative/path<TAB>text) also fine-tuned with CTC and scored on a held-out
# test set, without and with an n-gram LM built from the training transcripts.
#
#   egs/folder/run.sh AUDIO_DIR=/data/my_audio [TRANSCRIPTS=transcripts.tsv] [--stage N] [--stop-stage M] [--quick] [KEY=VALUE ...]
#
# Stages (each skipped when its .done marker exists; outputs under DATA and EXP):
#   0  manifests (+ labels, dict.ltr.txt)   DATA/prepared/{train,valid}.*   (prepare folder, VALID_PERCENT held out)
#   1  hold out a test set (transcripts)    DATA/labeled/{train,valid,test}.*  (TEST_MINUTES of audio, seeded)
#   2  pretrain (+experiment=pretrain_SIZE) EXP/pretrain/checkpoints/   (on DATA/labeled without test, else prepared;
#                                           skipped when PRETRAINED is set)
#   3  fine-tune (transcripts)              EXP/finetune/checkpoints/   (+experiment=FINETUNE_EXPERIMENT)
#   4  n-gram LM + lexicon (transcripts)    DATA/lm/ (from the training transcripts; LM_ORDER=0: none)
#   5  decode valid and test                EXP/finetune/decode_viterbi/, decode_<N>gram/: recogs-, errs-, wer-summary-<set>
#   6  WER table                            EXP/results.{md,json}
# Without TRANSCRIPTS the recipe stops after stage 2 (a pretrained model for `speechssl features` or later
# fine-tuning); `speechssl label-efficiency DATA/labeled --pretrained EXP/pretrain/checkpoints/checkpoint_best.pt`
# then compares it with training from scratch for a few label budgets.
#
# Settings (KEY=VALUE):
#   AUDIO_DIR=            the audio folder (scanned recursively)
#   TRANSCRIPTS=          optional TSV of relative/path<TAB>text lines (paths relative to AUDIO_DIR)
#   NAME=                 name of this corpus (default: the folder name of AUDIO_DIR)
#   DATA= EXP=            output folders (default: data/NAME and exp/NAME beside this script)
#   VALID_PERCENT=0.05 TEST_MINUTES=10 SEED=1   the validation share and the held-out test audio
#   SIZE=base MODEL= PRETRAINED= FINETUNE_EXPERIMENT=finetune_10h
#   NGPU=1                GPUs (torchrun when > 1); the batch per update stays the experiment's: speechssl
#                         derives update_freq from its trainer.tokens_per_update, NGPU and data.max_tokens
#   PRETRAIN_UPDATE_FREQ= FINETUNE_UPDATE_FREQ=   a number: that update_freq instead (the batch follows NGPU)
#   PRETRAIN_UPDATES= FINETUNE_UPDATES= FREEZE_UPDATES= PRETRAIN_OVERRIDES= FINETUNE_OVERRIDES=
#   LM_ORDER=4 BEAM=500 TUNE_LM=true LM_WEIGHT=2 WORD_SCORE=-1 LM_WEIGHTS= WORD_SCORES=   (tuned on valid)
#   JOBS=4
#
# --quick: a smoke test on a tiny corpus (python -m speechssl.data.dummies folder DIR makes one): the tiny
# model, 10 updates each, CPU-sized batches.
stage=0
stop_stage=100
AUDIO_DIR=
TRANSCRIPTS=
NAME=
DATA=
EXP=
VALID_PERCENT=0.05
TEST_MINUTES=10
SEED=1
SIZE=base
MODEL=
PRETRAINED=
FINETUNE_EXPERIMENT=finetune_10h
NGPU=1
PRETRAIN_UPDATE_FREQ=
FINETUNE_UPDATE_FREQ=
PRETRAIN_UPDATES=
FINETUNE_UPDATES=
FREEZE_UPDATES=
PRETRAIN_OVERRIDES=
FINETUNE_OVERRIDES=
LM_ORDER=4
BEAM=500
TUNE_LM=true
LM_WEIGHT=2
WORD_SCORE=-1
LM_WEIGHTS=
WORD_SCORES=
JOBS=4

. "$(dirname "$0")/../common/stages.sh"
parse_args "$@"
quick_pretrain=()
quick_finetune=()
if $quick; then
  MODEL=tiny PRETRAIN_UPDATES=10 FINETUNE_UPDATES=10 FREEZE_UPDATES=0 PRETRAIN_UPDATE_FREQ=1
  FINETUNE_UPDATE_FREQ=1 BEAM=20 JOBS=1 TEST_MINUTES=0.1 VALID_PERCENT=0.15
  quick_common=(trainer.progress=false trainer.tensorboard=false trainer.precision=fp32 data.num_workers=0
                trainer.log_interval=1)
  quick_pretrain=(data.max_tokens=64000 data.max_sample_size=16000 data.min_sample_size=4000
                  schedule.warmup_updates=2 "${quick_common[@]}")
  quick_finetune=(data.max_tokens=200000 model.mask_channel_length=4 "${quick_common[@]}")
fi
apply_overrides

[[ -n $AUDIO_DIR ]] || die "AUDIO_DIR=DIR is needed: the folder of audio files"
[[ -z $TRANSCRIPTS || -f $TRANSCRIPTS ]] || die "TRANSCRIPTS=$TRANSCRIPTS: no such file"
[[ $VALID_PERCENT =~ ^0*\.?0*$ ]] && die "VALID_PERCENT must be > 0: the valid split picks the best checkpoints"
NAME=${NAME:-$(basename "$AUDIO_DIR")}
DATA=${DATA:-$RECIPE_DIR/data/$NAME}
EXP=${EXP:-$RECIPE_DIR/exp/$NAME}
[[ $SIZE == base || $SIZE == large ]] || die "SIZE must be base or large, got '$SIZE'"
# The batch per update: derived by speechssl from the experiment (trainer.tokens_per_update), or an update_freq.
pretrain_batch=() finetune_batch=()
[[ -n $PRETRAIN_UPDATE_FREQ ]] && pretrain_batch=(trainer.tokens_per_update=null "trainer.update_freq=$PRETRAIN_UPDATE_FREQ")
[[ -n $FINETUNE_UPDATE_FREQ ]] && finetune_batch=(trainer.tokens_per_update=null "trainer.update_freq=$FINETUNE_UPDATE_FREQ")
describe_batch() { [[ -n $1 ]] && echo "update_freq $1 x $NGPU GPU" || echo "the experiment's batch on $NGPU GPU"; }
read -r -a pretrain_overrides <<< "$PRETRAIN_OVERRIDES"
read -r -a finetune_overrides <<< "$FINETUNE_OVERRIDES"
# LARGE is pretrained on normalised audio: fine-tuning it must normalise too.
own_normalize=()
[[ $SIZE == large && -z $PRETRAINED ]] && own_normalize=(data.normalize=true)
init=${PRETRAINED:-$EXP/pretrain/checkpoints/checkpoint_best.pt}
LM_NAME=$( ((LM_ORDER > 0)) && echo "${LM_ORDER}gram" || true)
lexicon=$DATA/lm/lexicon.txt
# Pretraining leaves the test audio out when there is one.
if [[ -n $TRANSCRIPTS ]]; then pretrain_data=$DATA/labeled; else pretrain_data=$DATA/prepared; fi
. "$REPO_DIR/egs/common/asr.sh"

# needs_transcripts STAGE: true with TRANSCRIPTS, else logs why the stage does nothing.
needs_transcripts() {
  [[ -n $TRANSCRIPTS ]] && return 0
  log "  no TRANSCRIPTS: nothing to do in stage $1"
  return 1
}

if stage_enabled 0 "manifests of $AUDIO_DIR${TRANSCRIPTS:+ with $TRANSCRIPTS}"; then
  once "$DATA/prepared/.done" speechssl prepare folder "$AUDIO_DIR" "$DATA/prepared" \
    ${TRANSCRIPTS:+--transcripts "$TRANSCRIPTS"} --valid-percent "$VALID_PERCENT" --jobs "$JOBS" --quiet
fi

hold_out_test() {
  "$PYTHON" "$REPO_DIR/egs/common/make_subsets.py" "$DATA/prepared" --split train --hold-out test "$TEST_MINUTES" \
    --rest train --out "$DATA/labeled" --seed "$SEED"
  local ext
  for ext in tsv wrd ltr; do cp "$DATA/prepared/valid.$ext" "$DATA/labeled/valid.$ext"; done
}
if stage_enabled 1 "hold out $TEST_MINUTES min of transcribed audio as test"; then
  if needs_transcripts 1; then
    once "$DATA/labeled/.done" hold_out_test
  fi
fi

if stage_enabled 2 "pretrain $SIZE on $pretrain_data ($(describe_batch "$PRETRAIN_UPDATE_FREQ"))"; then
  if [[ -n $PRETRAINED ]]; then
    log "  PRETRAINED=$PRETRAINED: no pretraining"
  else
    once "$EXP/pretrain/.done" train_app pretrain "+experiment=pretrain_$SIZE" "data.dir=$pretrain_data" \
      "trainer.run_dir=$EXP/pretrain" ${pretrain_batch[@]+"${pretrain_batch[@]}"} ${MODEL:+model=$MODEL} \
      ${PRETRAIN_UPDATES:+trainer.max_updates=$PRETRAIN_UPDATES} \
      ${quick_pretrain[@]+"${quick_pretrain[@]}"} ${pretrain_overrides[@]+"${pretrain_overrides[@]}"}
  fi
fi

if stage_enabled 3 "fine-tune $init ($FINETUNE_EXPERIMENT)" && needs_transcripts 3; then
  [[ -e $init ]] || die "no pretrained checkpoint $init: run stage 2, or set PRETRAINED=CKPT"
  once "$EXP/finetune/.done" train_app finetune "+experiment=$FINETUNE_EXPERIMENT" "init=$init" \
    "data.dir=$DATA/labeled" data.train_subset=train data.valid_subset=valid "trainer.run_dir=$EXP/finetune" \
    ${finetune_batch[@]+"${finetune_batch[@]}"} ${FINETUNE_UPDATES:+trainer.max_updates=$FINETUNE_UPDATES} \
    ${FREEZE_UPDATES:+freeze_finetune_updates=$FREEZE_UPDATES} \
    ${quick_finetune[@]+"${quick_finetune[@]}"} ${own_normalize[@]+"${own_normalize[@]}"} \
    ${finetune_overrides[@]+"${finetune_overrides[@]}"}
fi

if stage_enabled 4 "${LM_NAME:-no} LM" && needs_transcripts 4; then
  if [[ -z $LM_NAME ]]; then
    log "  LM_ORDER=0: no LM"
  else
    once "$DATA/lm/.done" speechssl lm build "$DATA/labeled/train.wrd" "$DATA/lm/$LM_NAME.arpa" \
      --order "$LM_ORDER" --vocab "$DATA/labeled/dict.ltr.txt" --lexicon "$lexicon"
  fi
fi

if stage_enabled 5 "decode valid and test" && needs_transcripts 5; then
  ckpt=$EXP/finetune/checkpoints/checkpoint_best.pt
  decode_sets "$ckpt" "$DATA/labeled" valid,test "$EXP/finetune/decode_viterbi"
  if [[ -n $LM_NAME ]]; then
    decode_sets "$ckpt" "$DATA/labeled" valid,test "$EXP/finetune/decode_$LM_NAME" "$DATA/lm/$LM_NAME.arpa" "$lexicon"
  fi
fi

if stage_enabled 6 "WER table" && needs_transcripts 6; then
  once "$EXP/.results.done" wer_tables "$EXP/results" "WER (%), $NAME" "valid test" "$LM_NAME" "train" "$EXP/finetune"
fi
