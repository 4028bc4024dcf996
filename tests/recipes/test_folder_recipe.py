"""egs/folder/run.sh stage by stage on a tiny folder of wav files, with and without transcripts."""

from __future__ import annotations

from speechssl.data.dummies import folder_tree
from speechssl.data.manifest import read_manifest, read_split
from speechssl.interop.checkpoint import load_checkpoint


def test_folder_recipe_with_transcripts(tmp_path, run_recipe, ran_steps, read_summary):
    audio, transcripts = folder_tree(tmp_path / "mine", 16, seed=5)
    data, exp = tmp_path / "data", tmp_path / "exp"
    settings = (f"AUDIO_DIR={audio}", f"TRANSCRIPTS={transcripts}", "TEST_MINUTES=0.05")

    def stage(n):
        return run_recipe("folder", "--stage", str(n), "--stop-stage", str(n), *settings)

    assert len(ran_steps(stage(0).stderr)) == 1
    prepared = {name: read_split(data / "prepared", name) for name in ("train", "valid")}
    assert sum(len(s.manifest) for s in prepared.values()) == 16 and all(s.words for s in prepared.values())
    stage(1)
    train, test = read_manifest(data / "labeled/train.tsv"), read_manifest(data / "labeled/test.tsv")
    assert len(train) + len(test) == len(prepared["train"].manifest) and test.total_samples >= 0.05 * 60 * 16000
    assert not {e.path for e in train.entries} & {e.path for e in test.entries}

    stage(2)
    pretrain_config = (exp / "pretrain/config.yaml").read_text()
    assert f"dir: {data / 'labeled'}" in pretrain_config  # the test audio is not pretrained on
    stage(3)
    assert load_checkpoint(exp / "finetune/checkpoints/checkpoint_best.pt")["task"] == "ctc"
    stage(4)
    assert (data / "lm/4gram.arpa").is_file()
    stage(5)
    for decode in ("decode_viterbi", "decode_4gram"):
        for subset, split in (("valid", prepared["valid"].manifest), ("test", test)):
            s = read_summary(exp / "finetune" / decode, subset)
            assert s["utterances"] == len(split) and s["wer"] >= 0
            assert (exp / "finetune" / decode / f"wer-summary-{subset}.txt").is_file()
    stage(6)
    assert (exp / "results.md").read_text().count("| train |") == 2  # no LM and 4-gram rows

    stamps = {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()}
    again = run_recipe("folder", *settings).stderr
    assert ran_steps(again) == [] and again.count("done already") == 8
    assert {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()} == stamps


def test_folder_recipe_without_transcripts_only_pretrains(tmp_path, run_recipe):
    audio, _ = folder_tree(tmp_path / "mine", 6, seed=6)
    log = run_recipe("folder", f"AUDIO_DIR={audio}", "--stop-stage", "1").stderr
    assert len(read_manifest(tmp_path / "data/prepared/train.tsv")) == 5
    assert not (tmp_path / "data/prepared/train.wrd").exists() and "no TRANSCRIPTS" in log
    log = run_recipe("folder", f"AUDIO_DIR={audio}", "--stage", "3").stderr
    assert [f"nothing to do in stage {n}" in log for n in range(3, 7)] == [True] * 4
    assert not (tmp_path / "exp").exists()
    bad = run_recipe("folder", f"AUDIO_DIR={audio}", "NO_SUCH_SETTING=1", check=False)
    assert bad.returncode != 0 and "unknown setting 'NO_SUCH_SETTING'" in bad.stderr
