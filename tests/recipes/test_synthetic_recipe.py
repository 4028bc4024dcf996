"""egs/synthetic/run.sh --quick end to end (the `make demo` smoke test): every stage, the table's rows and
groups, the numbers the means of what `speechssl evaluate` wrote for the two fine-tuning seeds, idempotent
re-runs."""

from __future__ import annotations

import json
import statistics

from omegaconf import OmegaConf


def test_synthetic_recipe_quick_end_to_end(tmp_path, run_recipe, ran_steps, read_summary):
    log = run_recipe("synthetic").stderr
    data, exp = tmp_path / "data", tmp_path / "exp"
    assert "stage 6: WER table and plots" in log
    groups = dict(line.split("\t") for line in (data / "lab/test.groups").read_text().splitlines())
    assert set(groups.values()) == {"seen voices", "unseen voices"}
    seen_speakers = {line.split("\t")[0] for line in (data / "corpus/speakers.tsv").read_text().splitlines()[1:]
                     if line.split("\t")[5] == "train"}

    def speaker(uid: str) -> str:  # en-us-nyc_f3/en-us-nyc_f3-000059.flac -> en-us-nyc+f3 (speakers.tsv)
        voice, variant = uid.split("/")[0].rsplit("_", 1)
        return f"{voice}+{variant}"

    assert all((speaker(uid) in seen_speakers) == (g == "seen voices") for uid, g in groups.items())

    results = json.loads((exp / "results.json").read_text())
    rows = {(r["labels"], r["init"]): r for r in results["rows"]}
    expected = {(f"5min, {d}", i) for d in ("greedy", "3gram LM") for i in ("pretrained", "scratch")}
    assert set(rows) == expected
    for (labels, init), row in rows.items():
        decoder = "viterbi" if "greedy" in labels else "3gram"
        runs = [exp / "finetune" / f"{name}_{init}" / f"decode_{decoder}" for name in ("5min", "5min_seed2")]
        assert row["runs"] == 2 and row["decode_dirs"] == [str(d) for d in runs]
        wers = [read_summary(d, "test")["wer"] for d in runs]
        assert all(read_summary(d, "test")["utterances"] == len(groups) for d in runs)
        assert row["test WER"] == round(sum(wers) / 2, 2)
        assert row["test WER sd"] == round(statistics.stdev(wers), 2)  # the spread of the seeds
        assert {"test WER (seen voices)", "test WER (unseen voices)"} <= set(row)
    assert len(results["runs"]) == 8  # 2 seeds x 2 inits x 2 decoders
    # The seeds were fine-tuned with their own seed; every fine-tuning run started once the pretraining
    # (the critical path, on every core) had finished.
    assert "seed: 2" in (exp / "finetune/5min_seed2_scratch/config.yaml").read_text()
    # At budgets up to 10 min the pretrained feature encoder trains at a tenth of the rate, scratch's at all of it.
    for init, scale in (("pretrained", 0.1), ("scratch", 1.0)):
        run_config = OmegaConf.load(exp / f"finetune/5min_{init}/config.yaml")
        assert run_config.optim.feature_encoder_lr_scale == scale, init
        assert run_config.model.get("feature_grad_mult", 1.0) == 1.0, init
    pretrained_at = (exp / "pretrain/.done").stat().st_mtime
    started = [p.stat().st_mtime for p in (exp / "finetune").glob("*/config.yaml")]
    assert len(started) == 4 and min(started) >= pretrained_at
    assert len(results["comparisons"]) == 6  # 2 decoders x (overall, seen, unseen)
    table = (exp / "results.md").read_text()
    assert "each run:" in table
    sd = rows[("5min, greedy", "pretrained")]["test WER sd"]
    assert f"| {rows[('5min, greedy', 'pretrained')]['test WER']:.2f} ± {sd:.2f} |" in table
    assert (exp / "plots/pretrain/accuracy.png").is_file() and (exp / "plots/5min_seed2_scratch/wer.png").is_file()

    again = run_recipe("synthetic").stderr
    assert ran_steps(again) == []
