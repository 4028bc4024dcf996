"""egs/librispeech/run.sh stage by stage on a tiny LibriSpeech + Libri-light tree (tiny model, 4 updates)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from speechssl.cli.main import main
from speechssl.data.dummies import librilight_tree, librispeech_tree
from speechssl.data.manifest import read_letter_dict, read_manifest, read_split
from speechssl.interop.checkpoint import load_checkpoint

SUBSETS = {"train-clean-100": 8, "dev-clean": 2, "dev-other": 3, "test-clean": 2, "test-other": 2}
EVAL_SETS = ("dev-clean", "dev-other", "test-clean", "test-other")


def test_librispeech_recipe(tmp_path, run_recipe, ran_steps, read_summary):
    corpus = tmp_path / "corpus"
    librispeech_tree(corpus, SUBSETS, seed=1)
    librilight_tree(corpus, per_fold=1, nine_hours=1, seed=2)
    data, exp = tmp_path / "data", tmp_path / "exp"
    settings = (f"CORPUS={corpus}", "LABELS=10min")

    def stage(n, *extra):
        return run_recipe("librispeech", "--stage", str(n), "--stop-stage", str(n), *settings, *extra)

    assert len(ran_steps(stage(0).stderr)) == 1
    for name, count in SUBSETS.items():
        split = read_split(data / "librispeech", name)
        assert len(split.manifest) == count and len(split.words) == count
    stage(1)
    assert len(read_manifest(data / "librilight/train_10min.tsv")) == 2  # fold 0: clean + other
    assert len(read_manifest(data / "librilight/train_10h.tsv")) == 14

    stage(2)
    assert len(read_manifest(data / "pretrain/train.tsv")) == 8 and len(read_manifest(data / "pretrain/valid.tsv")) == 3
    assert read_split(data / "finetune", "train_10min").words == read_split(data / "librilight", "train_10min").words
    letters = [s for s, _ in read_letter_dict(data / "finetune/dict.ltr.txt")]
    assert "".join(letters) == "|ETAONIHSRDLUMWCFGYPBVK'XJQZ"  # fairseq's LibriSpeech dictionary, in its order

    stage(3)
    pretrained = load_checkpoint(exp / "pretrain_base/checkpoints/checkpoint_best.pt")
    assert pretrained["task"] == "pretrain" and pretrained["model_config"]["encoder_layers"] == 2  # MODEL=tiny
    stage(4)
    finetuned = load_checkpoint(exp / "finetune_10min/checkpoints/checkpoint_best.pt")
    assert finetuned["task"] == "ctc" and finetuned["train_state"]["num_updates"] == 4
    config = (exp / "finetune_10min/config.yaml").read_text()
    # the paper's 10-minute config (conf/experiment/finetune_10m.yaml), with the quick settings on top
    assert "mask_channel_prob: 0.25" in config and "lr: 5.0e-05" in config and "freeze_finetune_updates: 0" in config
    assert "tokens_per_update: null" in config and "update_freq: 1" in config  # FINETUNE_UPDATE_FREQ=1 (--quick)

    stage(5)
    transcripts_lm = data / "lm/4gram_transcripts"
    assert "\\4-grams:" in (transcripts_lm / "lm.arpa").read_text()
    assert (transcripts_lm / "lexicon.txt").read_text().count("\n") >= 3  # the words A, B, C at least
    stage(6)
    tuning = stage(7).stdout
    for decode in ("decode_viterbi", "decode_4gram_transcripts"):
        directory = exp / "finetune_10min" / decode
        for subset in EVAL_SETS:
            s = read_summary(directory, subset)
            assert s["utterances"] == SUBSETS[subset] and s["wer"] >= 0
            for prefix in ("recogs", "errs", "wer-summary"):
                assert (directory / f"{prefix}-{subset}.txt").stat().st_size > 0
    # the LM weight and word score tuned on VALID_SET at BEAM (--quick: 20) over the grid, then every set decoded
    # with the best of them at TEST_BEAM (--quick: 30)
    lm_decode = exp / "finetune_10min/decode_4gram_transcripts"
    grid = [line.split("\t") for line in (lm_decode / "grid-dev-other.tsv").read_text().splitlines()[1:]]
    assert len(grid) == 2 * 3 and {row[1] for row in grid} == {"-5", "0", "5"}
    assert "grid at beam 20: 6 settings" in tuning
    best = min(grid, key=lambda row: float(row[2]))
    for subset in EVAL_SETS:
        decoded = read_summary(lm_decode, subset)["settings"]
        assert decoded["decoder"] == "kenlm" and decoded["beam"] == 30
        assert (decoded["lm_weight"], decoded["word_score"]) == (float(best[0]), float(best[1]))
    stage(8)
    table = (exp / "results.md").read_text()
    lm_wer = read_summary(lm_decode, "test-clean")["wer"]
    assert "| 10min | no LM |" in table and f"{lm_wer:.2f}" in table
    assert "| 10min | 4-gram LM from transcripts (not the paper's) | " in table  # never mistaken for the paper's

    # the paper's LM when the user has it (openslr 11's 4-gram.arpa.gz; here the one above, gzipped): its own
    # directories, and both LMs' rows in the tables
    official = tmp_path / "4-gram.arpa.gz"
    official.write_bytes(gzip.compress((transcripts_lm / "lm.arpa").read_bytes()))
    for n in (5, 7, 8):
        stage(n, f"LM_ARPA={official}")
    assert (data / "lm/arpa/lm.arpa").read_bytes() == (transcripts_lm / "lm.arpa").read_bytes()
    assert read_summary(exp / "finetune_10min/decode_arpa", "test-clean")["settings"]["lm"] == str(
        data / "lm/arpa/lm.arpa")
    table = (exp / "results.md").read_text()
    assert "| 10min | LM 4-gram.arpa | " in table and "| 10min | 4-gram LM from transcripts (not the paper's) | " in table
    assert {r["init"] for r in json.loads((exp / "results.json").read_text())["rows"]} == {
        "no LM", "LM 4-gram.arpa", "4-gram LM from transcripts (not the paper's)"}

    # stages 9-10: a public checkpoint (here the pretrained model exported to a Hugging Face directory)
    hf = tmp_path / "hf"
    assert main(["convert", "--to", "hf", str(exp / "pretrain_base/checkpoints/checkpoint_best.pt"), str(hf)]) == 0
    imported = ("IMPORT_FROM=hf", f"IMPORT_SRC={hf}", "IMPORT_LABELS=10min")
    log = run_recipe("librispeech", "--stage", "9", "--stop-stage", "10", *settings, *imported).stderr
    assert "wrote huggingface pretrain model" in (exp / "imported/convert.log").read_text()
    assert load_checkpoint(exp / "imported/finetune_10min/checkpoints/checkpoint_best.pt")["task"] == "ctc"
    assert read_summary(exp / "imported/finetune_10min/decode_4gram_transcripts", "dev-clean")["utterances"] == 2
    assert "| 10min | no LM |" in (exp / "imported/results.md").read_text()
    assert len(ran_steps(log)) == 5  # convert, fine-tune, two decodes, table

    # every stage again: nothing runs, nothing changes
    stamps = {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()}
    again = run_recipe("librispeech", *settings, *imported).stderr
    assert ran_steps(again) == [] and again.count("done already") == 14
    assert {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()} == stamps


def test_the_lm_defaults_are_the_papers():
    """Without settings the recipe tunes as the paper does: LM weight over [0, 5] and word score over [-5, 5]
    on dev-other at beam 500, every set then decoded at beam 1500; the paper's 4-gram only when given."""
    script = (Path(__file__).resolve().parents[2] / "egs/librispeech/run.sh").read_text()
    # the top-level assignments (--quick's, indented, come later)
    defaults = dict(line.split("=", 1) for line in script.splitlines() if re.fullmatch(r"[A-Z_]+=\S*", line))
    assert (defaults["BEAM"], defaults["TEST_BEAM"], defaults["TUNE_LM"], defaults["VALID_SET"]) == (
        "500", "1500", "true", "dev-other")
    lm_weights = [float(x) for x in defaults["LM_WEIGHTS"].split(",")]
    word_scores = [float(x) for x in defaults["WORD_SCORES"].split(",")]
    assert (min(lm_weights), max(lm_weights), min(word_scores), max(word_scores)) == (0, 5, -5, 5)
    assert word_scores == sorted(set(word_scores)) and len(lm_weights) * len(word_scores) == 121
    assert defaults["LM_ARPA"] == ""  # offline default: the transcripts' 4-gram, labelled as not the paper's
