"""egs/commonvoice/run.sh stage by stage on a tiny Common Voice folder with a non-English letter."""

from __future__ import annotations

from speechssl.data.dummies import commonvoice_tree
from speechssl.data.manifest import read_letter_dict, read_manifest, read_split
from speechssl.interop.checkpoint import load_checkpoint

TABLES = {"train": 8, "dev": 2, "test": 2}


def test_commonvoice_recipe(tmp_path, run_recipe, ran_steps, read_summary):
    cv = commonvoice_tree(tmp_path / "cv/xx", TABLES, extra_validated=3, vocabulary=("A", "B", "É"), seed=4)
    data, exp = tmp_path / "data", tmp_path / "exp"
    settings = (f"CV_DIR={cv}", "LM_ORDER=0")

    def stage(n):
        return run_recipe("commonvoice", "--stage", str(n), "--stop-stage", str(n), *settings)

    assert len(ran_steps(stage(0).stderr)) == 1
    assert len(read_manifest(data / "validated.tsv")) == 15
    assert read_split(data, "train").words and all(w == w.upper() for w in read_split(data, "train").words)
    letters = {s for s, _ in read_letter_dict(data / "dict.ltr.txt")}
    assert letters == {"|", "A", "B", "É"}  # the vocabulary comes from the transcripts

    stage(1)
    pretrain = read_manifest(data / "pretrain/train.tsv")
    held = {e.path for name in ("dev", "test") for e in read_manifest(data / f"{name}.tsv").entries}
    assert len(pretrain) == 15 - 4 and not held & {e.path for e in pretrain.entries}
    assert len(read_manifest(data / "pretrain/valid.tsv")) == 2

    stage(2)
    assert load_checkpoint(exp / "pretrain/checkpoints/checkpoint_best.pt")["train_state"]["num_updates"] == 4
    stage(3)
    finetuned = load_checkpoint(exp / "finetune/checkpoints/checkpoint_best.pt")
    assert "É" in finetuned["vocab"]
    assert "LM_ORDER=0: no LM" in stage(4).stderr and not (data / "lm").exists()
    stage(5)
    for subset in ("dev", "test"):
        s = read_summary(exp / "finetune/decode_viterbi", subset)
        assert s["utterances"] == TABLES[subset] and s["settings"]["decoder"] == "viterbi"
        assert (exp / f"finetune/decode_viterbi/recogs-{subset}.txt").read_text().count("ref=") == TABLES[subset]
    assert not (exp / "finetune/decode_4gram").exists()
    stage(6)
    table = (exp / "results.md").read_text()
    assert f"| train | no LM | {read_summary(exp / 'finetune/decode_viterbi', 'dev')['wer']:.2f} |" in table
    assert table.count("| train |") == 1  # no LM row without an LM

    stamps = {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()}
    again = run_recipe("commonvoice", *settings).stderr
    assert ran_steps(again) == [] and again.count("done already") == 6
    assert {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()} == stamps
