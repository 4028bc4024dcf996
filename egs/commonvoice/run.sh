#!/usr/bin/env bash
# wav2vec 2.0 on a Mozilla Common Voice language (any language): prepare the validated/train/dev/test tables,
# pretrain on the validated clips (dev and test clips left out), fine-tune with CTC on train, decode dev and
# test without and with an n-gram LM. The letters (dict.ltr.txt) come from the language's transcripts.
#
#   egs/commonvoice/run.sh CV_DIR=/data/cv-corpus-17.0-2024-03-15/fr [--stage N] [--stop-stage M] [--quick] [KEY=VALUE ...]
#
# Stages (each skipped when its .done marker exists; outputs under DATA and EXP):
#   0  prepare validated, train, dev, test   DATA/{validated,train,dev,test}.{tsv,wrd,ltr}, DATA/dict.ltr.txt
#   1  pretraining audio                     DATA/pretrain/{train,valid}.tsv (PRETRAIN_FROM minus dev/test clips)
#   2  pretrain (+experiment=pretrain_SIZE)  EXP/pretrain/checkpoints/   (skipped when PRETRAINED is set)
#   3  fine-tune on train, validate on dev   EXP/finetune/checkpoints/   (+experiment=FINETUNE_EXPERIMENT)
#   4  n-gram LM + lexicon                   DATA/lm/ (from the transcripts of DATA/pretrain/train; LM_ORDER=0: none)
#   5  decode dev and test                   EXP/finetune/decode_viterbi/, decode_<N>gram/: recogs-, errs-, wer-summary-<set>
#   6  WER table                             EXP/results.{md,json}
#
# Settings (KEY=VALUE):
#   CV_DIR=               a Common Voice language folder: validated.tsv train.tsv dev.tsv test.tsv clips/
#   NAME=                 name of this corpus (default: the folder name of CV_DIR, e.g. fr)
#   DATA= EXP=            output folders (default: data/NAME and exp/NAME beside this script)
#   PRETRAIN_FROM=validated   validated (every validated clip but dev/test) | train
#   SIZE=base             base | large (conf/experiment/pretrain_SIZE.yaml)
#   MODEL=                model preset of the pretraining (tiny/small for a smoke test)
#   PRETRAINED=           fine-tune this checkpoint instead (speechssl .pt, Hugging Face dir, fairseq .pt,
#                         e.g. a multilingual XLSR model; LARGE ones need FINETUNE_OVERRIDES=data.normalize=true)
#   FINETUNE_EXPERIMENT=finetune_10h   the paper's fine-tuning config used (conf/experiment/)
#   NGPU=1                GPUs (torchrun when > 1); the batch per update stays the experiment's: speechssl
#                         derives update_freq from its trainer.tokens_per_update, NGPU and data.max_tokens
#   PRETRAIN_UPDATE_FREQ= FINETUNE_UPDATE_FREQ=   a number: that update_freq instead (the batch follows NGPU)
#   PRETRAIN_UPDATES= FINETUNE_UPDATES= FREEZE_UPDATES=   (empty: the experiment's)
#   PRETRAIN_OVERRIDES= FINETUNE_OVERRIDES=   more Hydra overrides, space-separated
#   LM_ORDER=4 BEAM=500 TUNE_LM=true LM_WEIGHT=2 WORD_SCORE=-1 LM_WEIGHTS= WORD_SCORES=   (tuned on dev)
#   JOBS=4                processes reading audio headers
#
# --quick: a smoke test on a tiny corpus (python -m speechssl.data.dummies commonvoice DIR makes one): the
# tiny model, 10 updates each, CPU-sized batches.
stage=0
stop_stage=100
CV_DIR=
NAME=
DATA=
EXP=
PRETRAIN_FROM=validated
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
  FINETUNE_UPDATE_FREQ=1 BEAM=20 JOBS=1
  quick_common=(trainer.progress=false trainer.tensorboard=false trainer.precision=fp32 data.num_workers=0
                trainer.log_interval=1)
  quick_pretrain=(data.max_tokens=64000 data.max_sample_size=16000 data.min_sample_size=4000
                  schedule.warmup_updates=2 "${quick_common[@]}")
  quick_finetune=(data.max_tokens=200000 model.mask_channel_length=4 "${quick_common[@]}")
fi
apply_overrides

[[ -n $CV_DIR ]] || die "CV_DIR=DIR is needed: a Common Voice language folder (validated.tsv, train.tsv, dev.tsv, test.tsv, clips/)"
NAME=${NAME:-$(basename "$CV_DIR")}
DATA=${DATA:-$RECIPE_DIR/data/$NAME}
EXP=${EXP:-$RECIPE_DIR/exp/$NAME}
[[ $SIZE == base || $SIZE == large ]] || die "SIZE must be base or large, got '$SIZE'"
[[ $PRETRAIN_FROM == validated || $PRETRAIN_FROM == train ]] || die "PRETRAIN_FROM must be validated or train"
# The batch per update: derived by speechssl from the experiment (trainer.tokens_per_update), or an update_freq.
pretrain_batch=() finetune_batch=()
[[ -n $PRETRAIN_UPDATE_FREQ ]] && pretrain_batch=(trainer.tokens_per_update=null "trainer.update_freq=$PRETRAIN_UPDATE_FREQ")
[[ -n $FINETUNE_UPDATE_FREQ ]] && finetune_batch=(trainer.tokens_per_update=null "trainer.update_freq=$FINETUNE_UPDATE_FREQ")
describe_batch() { [[ -n $1 ]] && echo "update_freq $1 x $NGPU GPU" || echo "the experiment's batch on $NGPU GPU"; }
read -r -a pretrain_overrides <<< "$PRETRAIN_OVERRIDES"
read -r -a finetune_overrides <<< "$FINETUNE_OVERRIDES"
# LARGE is pretrained on normalised audio: fine-tuning must normalise too.
own_normalize=()
[[ $SIZE == large && -z $PRETRAINED ]] && own_normalize=(data.normalize=true)
init=${PRETRAINED:-$EXP/pretrain/checkpoints/checkpoint_best.pt}
LM_NAME=$( ((LM_ORDER > 0)) && echo "${LM_ORDER}gram" || true)
lexicon=$DATA/lm/lexicon.txt
. "$REPO_DIR/egs/common/asr.sh"

if stage_enabled 0 "prepare $CV_DIR"; then
  tables=(train dev test)
  [[ $PRETRAIN_FROM == validated ]] && tables=(validated "${tables[@]}")
  once "$DATA/.done" speechssl prepare commonvoice "$CV_DIR" "$DATA" --tables "${tables[@]}" --jobs "$JOBS" --quiet
fi

if stage_enabled 1 "pretraining audio: $PRETRAIN_FROM without the dev and test clips"; then
  once "$DATA/pretrain/.done" "$PYTHON" "$RECIPE_DIR/local/pretrain_split.py" "$DATA" "$DATA/pretrain" \
    --from "$PRETRAIN_FROM" --exclude dev test --valid dev
fi

if stage_enabled 2 "pretrain $SIZE ($(describe_batch "$PRETRAIN_UPDATE_FREQ"))"; then
  if [[ -n $PRETRAINED ]]; then
    log "  PRETRAINED=$PRETRAINED: no pretraining"
  else
    once "$EXP/pretrain/.done" train_app pretrain "+experiment=pretrain_$SIZE" "data.dir=$DATA/pretrain" \
      "trainer.run_dir=$EXP/pretrain" ${pretrain_batch[@]+"${pretrain_batch[@]}"} ${MODEL:+model=$MODEL} \
      ${PRETRAIN_UPDATES:+trainer.max_updates=$PRETRAIN_UPDATES} \
      ${quick_pretrain[@]+"${quick_pretrain[@]}"} ${pretrain_overrides[@]+"${pretrain_overrides[@]}"}
  fi
fi

if stage_enabled 3 "fine-tune $init on train ($FINETUNE_EXPERIMENT)"; then
  [[ -e $init ]] || die "no pretrained checkpoint $init: run stage 2, or set PRETRAINED=CKPT"
  once "$EXP/finetune/.done" train_app finetune "+experiment=$FINETUNE_EXPERIMENT" "init=$init" \
    "data.dir=$DATA" data.train_subset=train data.valid_subset=dev "trainer.run_dir=$EXP/finetune" \
    ${finetune_batch[@]+"${finetune_batch[@]}"} ${FINETUNE_UPDATES:+trainer.max_updates=$FINETUNE_UPDATES} \
    ${FREEZE_UPDATES:+freeze_finetune_updates=$FREEZE_UPDATES} \
    ${quick_finetune[@]+"${quick_finetune[@]}"} ${own_normalize[@]+"${own_normalize[@]}"} \
    ${finetune_overrides[@]+"${finetune_overrides[@]}"}
fi

if stage_enabled 4 "${LM_NAME:-no} LM"; then
  if [[ -z $LM_NAME ]]; then
    log "  LM_ORDER=0: no LM"
  else
    once "$DATA/lm/.done" speechssl lm build "$DATA/pretrain/train.wrd" "$DATA/lm/$LM_NAME.arpa" \
      --order "$LM_ORDER" --vocab "$DATA/dict.ltr.txt" --lexicon "$lexicon"
  fi
fi

if stage_enabled 5 "decode dev and test"; then
  ckpt=$EXP/finetune/checkpoints/checkpoint_best.pt
  decode_sets "$ckpt" "$DATA" dev,test "$EXP/finetune/decode_viterbi"
  if [[ -n $LM_NAME ]]; then
    decode_sets "$ckpt" "$DATA" dev,test "$EXP/finetune/decode_$LM_NAME" "$DATA/lm/$LM_NAME.arpa" "$lexicon"
  fi
fi

if stage_enabled 6 "WER table"; then
  once "$EXP/.results.done" wer_tables "$EXP/results" "WER (%), Common Voice $NAME" "dev test" "$LM_NAME" \
    "train" "$EXP/finetune"
fi
