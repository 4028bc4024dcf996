"""`speechssl label-efficiency` on a tiny tone corpus: one row per (budget, init), numbers as evaluate wrote them."""

from __future__ import annotations

import json
import sys

import pytest

from speechssl.cli.main import main
from speechssl.data.dummies import folder_tree
from speechssl.data.manifest import read_manifest, read_split
from speechssl.data.prepare.folder import prepare_folder
from speechssl.recipes.label_efficiency import LabelEfficiencyConfig, run_label_efficiency, run_step
from speechssl.recipes.subsets import hold_out, select, write_split

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """train (~0.3 min), valid and test splits of tone words, and a random tiny 'pretrained' checkpoint."""
    import torch

    from speechssl.interop import save_speechssl_checkpoint
    from speechssl.models import Wav2Vec2ForPreTraining, get_preset

    root = tmp_path_factory.mktemp("label_efficiency")
    audio, transcripts = folder_tree(root / "corpus", 30, seed=3)
    data = root / "data"
    prepare_folder(audio, data, transcripts=transcripts, valid_percent=0.15, seed=1, progress=False, echo=False)
    train = read_split(data, "train")
    rest, held = hold_out(train.manifest, 4.0, seed=2)
    write_split(data, "test", select(train, held))
    write_split(data, "train", select(train, rest))
    torch.manual_seed(0)
    ckpt = save_speechssl_checkpoint(root / "pretrained.pt", Wav2Vec2ForPreTraining(get_preset("tiny")))
    return data, ckpt


def test_table_rows_match_evaluate_and_rerun_is_a_no_op(corpus, tmp_path, tiny_finetune):
    out = tmp_path / "le"
    cfg = LabelEfficiencyConfig(data_dir=corpus[0], out_dir=out, minutes=(0.05, 0.15), pretrained=corpus[1],
                                finetune_overrides=tiny_finetune, in_process=main)
    messages: list[str] = []
    result = run_label_efficiency(cfg, log=messages.append)

    assert [(r.budget, r.init) for r in result.rows] == [("0.05min", "pretrained"), ("0.05min", "scratch"),
                                                         ("0.15min", "pretrained"), ("0.15min", "scratch")]
    table = json.loads(result.json.read_text())
    assert len(table["rows"]) == 4 and len(table["comparisons"]) == 2
    for row in table["rows"]:
        written = json.loads((out / "runs" / f"{row['budget']}-{row['init']}" / "decode" / "summary-test.json")
                             .read_text())
        assert (row["wer"], row["cer"]) == (written["wer"], written["cer"])
        assert written["utterances"] == len(read_manifest(corpus[0] / "test.tsv"))
        assert f"| {row['budget']} | {row['init']} | {row['utterances']} |" in result.markdown.read_text()
    # nested subsets, each at least its budget
    small, large = (read_manifest(out / f"data/train_{b}.tsv") for b in ("0.05min", "0.15min"))
    assert {e.path for e in small.entries} < {e.path for e in large.entries}
    assert small.total_samples >= 0.05 * 60 * 16000 and large.total_samples >= 0.15 * 60 * 16000
    # both inits of a budget: same architecture, other weights; scratch runs train the encoder from update 0
    configs = {i: (out / f"runs/0.05min-{i}/config.yaml").read_text() for i in ("pretrained", "scratch")}
    assert f"init: {corpus[1]}" in configs["pretrained"] and f"init: {out / 'scratch_init.pt'}" in configs["scratch"]
    assert "freeze_finetune_updates: 0" in configs["scratch"]
    png = result.plot.read_bytes()
    assert png.startswith(PNG_SIGNATURE) and png[12:16] == b"IHDR" and int.from_bytes(png[16:20], "big") > 100

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoints/*.pt")}
    messages.clear()
    again = run_label_efficiency(cfg, log=messages.append)
    assert again.rows == result.rows
    assert sum("done already" in m for m in messages) == 8, messages
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoints/*.pt")} == stamps


def test_budget_larger_than_the_data_fails_before_any_run(corpus, tmp_path, capsys):
    data, ckpt = corpus
    rc = main(["label-efficiency", str(data), "--minutes", "0.1,60", "--pretrained", str(ckpt),
               "--out", str(tmp_path / "le")])
    err = capsys.readouterr().err
    assert rc == 2 and "--minutes: 60 minutes asked" in err and "holds 0." in err
    assert not (tmp_path / "le").exists()
    with pytest.raises(ValueError, match="trainer.run_dir is set by label-efficiency"):
        LabelEfficiencyConfig(data_dir=data, out_dir=tmp_path, minutes=(1,), pretrained=ckpt,
                              finetune_overrides=("trainer.run_dir=x",)).validate()


def test_a_failing_step_names_its_log_and_leaves_no_marker(tmp_path):
    cfg = LabelEfficiencyConfig(data_dir=tmp_path, out_dir=tmp_path, minutes=(1,),
                                command=(sys.executable, "-c", "import sys; print('no such thing'); sys.exit(3)"))
    marker, log = tmp_path / "run/.finetune.done", tmp_path / "run/finetune.log"
    with pytest.raises(RuntimeError, match="exit code 3") as info:
        run_step(cfg, marker, ["finetune", "a=1"], log, "[1/1] 1min-scratch fine-tune", print)
    assert "no such thing" in str(info.value) and str(log) in str(info.value) and not marker.exists()


def test_help_documents_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["label-efficiency", "--help"])
    text = capsys.readouterr().out
    for needle in ("--minutes", "--pretrained", "--finetune-overrides", "--override", "results.md",
                   "wer_vs_minutes.png", ".done"):
        assert needle in text
