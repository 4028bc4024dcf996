#!/usr/bin/env bash
# Training, decoding and table helpers shared by the ASR recipes (librispeech, commonvoice, folder), sourced
# after stages.sh once the settings are final. They read these settings of the recipe:
#   NGPU                        GPUs per machine: the training apps run under torchrun when > 1
#   BEAM TEST_BEAM TUNE_LM LM_WEIGHT WORD_SCORE LM_WEIGHTS WORD_SCORES   the LM beam search (see decode_sets)
#
#   train_app finetune init=... data.dir=...                # speechssl finetune (torchrun with NGPU > 1)
#   decode_sets CKPT DATA_DIR dev,test EXP/decode_viterbi   # greedy CTC, every subset
#   decode_sets CKPT DATA_DIR dev,test EXP/decode_4gram LM.arpa LEXICON   # LM, tuned on the first subset
#   wer_tables OUT TITLE "dev test" "4gram=4-gram LM"  "10 min" EXP/ft_10min  "1 h" EXP/ft_1h
#
# decode_sets writes, per subset S, recogs-S.txt (hypotheses), errs-S.txt (errors), wer-summary-S.txt,
# utterances-S.tsv and summary-S.json (`speechssl evaluate --out`), and a .done marker.

# train_app APP OVERRIDE...: a training app, on NGPU GPUs.
train_app() {
  if ((${NGPU:-1} > 1)); then
    "$(dirname "$PYTHON")/torchrun" --nproc_per_node "$NGPU" -m speechssl.cli.main "$@"
  else
    speechssl "$@"
  fi
}

# decode_sets CKPT DATA_DIR SUBSETS OUT_DIR [LM LEXICON [GREEDY_OUT]]: evaluate CKPT on the comma-separated
# SUBSETS, once. Without LM: greedy CTC. With LM: KenLM beam search at TEST_BEAM (default BEAM); with TUNE_LM=true
# the LM weight and word score are first tuned on the first subset at beam BEAM (grid LM_WEIGHTS x WORD_SCORES,
# comma-separated; empty = evaluate's grid; the paper tunes its 4-gram at 500 and decodes at 1500), else
# LM_WEIGHT and WORD_SCORE are used. GREEDY_OUT: also the greedy results, into that directory, from the same
# model pass (`evaluate --greedy-out`).
decode_sets() {
  local ckpt=$1 data=$2 subsets=$3 out=$4 lm=${5:-} lexicon=${6:-} greedy_out=${7:-}
  [[ -e $ckpt ]] || die "no checkpoint $ckpt: run the fine-tuning stage first"
  local args=("$ckpt" "$data" --subset "$subsets" --out "$out") test_beam=${TEST_BEAM:-$BEAM}
  if [[ -n $lm ]]; then
    [[ -f $lm && -f $lexicon ]] || die "no LM $lm or lexicon $lexicon: run the LM stage first"
    args+=(--decoder kenlm --lm "$lm" --lexicon "$lexicon" --beam "$test_beam")
    # NAME=VALUE: argparse takes a value such as -5,0,5 for an option otherwise
    if [[ $TUNE_LM == true ]]; then
      args+=(--grid ${LM_WEIGHTS:+"--grid-lm-weights=$LM_WEIGHTS"} ${WORD_SCORES:+"--grid-word-scores=$WORD_SCORES"})
      [[ $test_beam == "$BEAM" ]] || args+=(--grid-beam "$BEAM")
    else
      args+=("--lm-weight=$LM_WEIGHT" "--word-score=$WORD_SCORE")
    fi
    if [[ -n $greedy_out ]]; then
      if [[ -f $out/.done ]]; then  # the LM results are there: the greedy ones on their own, if missing
        decode_sets "$ckpt" "$data" "$subsets" "$greedy_out"
        greedy_out=
      elif [[ -f $greedy_out/.done ]]; then
        greedy_out=
      else
        args+=(--greedy-out "$greedy_out")
      fi
    fi
  fi
  once "$out/.done" speechssl evaluate "${args[@]}"
  if [[ -n $greedy_out ]]; then touch "$greedy_out/.done"; fi
}

# wer_tables OUT TITLE "SUBSET ..." LMS LABELS RUN_DIR [LABELS RUN_DIR ...]: OUT.md and OUT.json with a row
# per model and decoder, from RUN_DIR/decode_viterbi and (when decoded) RUN_DIR/decode_<NAME> for each LM of
# LMS: "NAME" or "NAME=ROW LABEL", several separated by ';' (a bare NAME's row says "NAME LM").
wer_tables() {
  local out=$1 title=$2 subsets=$3 lms=$4 rows=() subset_args=() s entry lm_names=()
  shift 4
  IFS=';' read -r -a lm_names <<< "$lms"
  while (($#)); do
    rows+=(--row "$1" "no LM" "$2/decode_viterbi")
    for entry in ${lm_names[@]+"${lm_names[@]}"}; do
      local name=${entry%%=*} label="${entry%%=*} LM"
      [[ $entry == *=* ]] && label=${entry#*=}
      if [[ -n $name && -f $2/decode_$name/.done ]]; then
        rows+=(--row "$1" "$label" "$2/decode_$name")
      fi
    done
    shift 2
  done
  for s in $subsets; do subset_args+=(--subset "$s"); done
  "$PYTHON" "$REPO_DIR/egs/common/wer_table.py" "${rows[@]}" "${subset_args[@]}" --init-header decoder \
    --title "$title" --out "$out"
}
