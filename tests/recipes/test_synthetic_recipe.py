"""egs/synthetic/run.sh --quick end to end (the `make demo` smoke test): every stage, the table's rows and
groups, the numbers equal to what `speechssl evaluate` wrote, idempotent re-runs."""

from __future__ import annotations

import json


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
    expected = {(f"{b}, {d}", i) for b in ("2min", "5min") for d in ("greedy", "3gram LM")
                for i in ("pretrained", "scratch")}
    assert set(rows) == expected
    for (labels, init), row in rows.items():
        decoder = "viterbi" if "greedy" in labels else "3gram"
        budget = labels.split(",")[0]
        summary = read_summary(exp / "finetune" / f"{budget}_{init}" / f"decode_{decoder}", "test")
        assert row["test WER"] == summary["wer"] and summary["utterances"] == len(groups)
        assert {"test WER (seen voices)", "test WER (unseen voices)"} <= set(row)
    assert len(results["comparisons"]) == 12  # 2 budgets x 2 decoders x (overall, seen, unseen)
    assert (exp / "plots/pretrain/accuracy.png").is_file() and (exp / "plots/5min_scratch/wer.png").is_file()

    again = run_recipe("synthetic").stderr
    assert ran_steps(again) == []
