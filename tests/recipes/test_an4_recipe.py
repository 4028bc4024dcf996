"""egs/an4/run.sh --quick end to end on the real AN4 corpus at ../shared/an4 (skipped when it is absent): the
pretraining set leaves the test speakers out, the table has every row and its numbers are what
`speechssl evaluate` wrote, and a re-run does nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from speechssl.data.manifest import read_manifest

AN4 = Path(__file__).resolve().parents[3] / "shared" / "an4"


@pytest.mark.skipif(not (AN4 / "etc/an4_train.fileids").is_file(), reason="../shared/an4 not present")
def test_an4_recipe_quick_end_to_end(tmp_path, run_recipe, ran_steps, read_summary):
    log = run_recipe("an4", f"AN4={AN4}").stderr
    data, exp = tmp_path / "data", tmp_path / "exp"
    assert "stage 7: WER table and plots" in log

    # Pretraining audio: AN4 train + synthetic train, never an AN4 test speaker.
    pretrain = read_manifest(data / "pretrain/train.tsv")
    an4_train = read_manifest(data / "an4/train.tsv")
    synthetic = read_manifest(data / "synthetic/train.tsv")
    assert len(pretrain) == len(an4_train) + len(synthetic)
    test = read_manifest(data / "an4/test.tsv")
    assert len(test) == 130
    test_speakers = {e.path.split("/")[1] for e in test.entries}
    assert not any(e.path.split("/")[1] in test_speakers for e in an4_train.entries)

    results = json.loads((exp / "results.json").read_text())
    rows = {(r["labels"], r["init"]): r for r in results["rows"]}
    assert set(rows) == {(f"{b}, {d}", i) for b in ("10min", "all") for d in ("greedy", "3gram LM")
                         for i in ("pretrained", "scratch")}
    for (labels, init), row in rows.items():
        budget = labels.split(",")[0]
        decoder = "viterbi" if "greedy" in labels else "3gram"
        summary = read_summary(exp / "finetune" / f"{budget}_{init}" / f"decode_{decoder}", "test")
        assert row["test WER"] == summary["wer"] and summary["utterances"] == 130
    # Fine-tuning on 10 minutes saw only the 10-minute subset.
    config = (exp / "finetune/10min_pretrained/config.yaml").read_text()
    assert "train_subset: train_10min" in config
    # Both feature encoders train, at the full rate (FEATURE_ENCODER_LR_SCALE=1): none is frozen.
    for init, scale in (("pretrained", 1.0), ("scratch", 1.0)):
        run_config = OmegaConf.load(exp / f"finetune/all_{init}/config.yaml")
        assert run_config.optim.feature_encoder_lr_scale == scale, init
        assert run_config.model.get("feature_grad_mult", 1.0) == 1.0, init

    again = run_recipe("an4", f"AN4={AN4}").stderr
    assert ran_steps(again) == []
