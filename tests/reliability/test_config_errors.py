"""Every bad setting stops the command before any compute with one line naming the key (no traceback).

Complements tests/training/test_apps.py (unknown keys through a subprocess; `validate()` raising) and
tests/decoding/test_cli.py (a missing --lm file): here each case goes through the CLI entry point, checking the
exit status, that stderr is one line naming the key, and that the run directory was never created.
"""

from __future__ import annotations

import pytest

from speechssl.cli.main import main

FAST = ["model=tiny", "trainer.device=cpu", "trainer.precision=fp32", "trainer.progress=false",
        "trainer.tensorboard=false", "trainer.threads=1", "data.num_workers=0", "trainer.max_updates=2"]


@pytest.fixture(scope="module")
def english_ctc(tmp_path_factory):
    """A tiny CTC checkpoint over the built-in English letters (the bad corpus also has Ω)."""
    import torch

    from speechssl.data.tokenizer import LetterTokenizer
    from speechssl.interop.checkpoint import save_speechssl_checkpoint
    from speechssl.models import Wav2Vec2ForCTC, get_preset

    torch.manual_seed(0)
    tokenizer = LetterTokenizer.default_english()
    path = tmp_path_factory.mktemp("ctc") / "english_ctc.pt"
    return save_speechssl_checkpoint(path, Wav2Vec2ForCTC(get_preset("tiny"), len(tokenizer)), tokenizer=tokenizer)


def _one_line_error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, (rc, err[-2000:])
    assert "\n" not in err and "Traceback" not in err, err[-2000:]
    return err


@pytest.mark.parametrize("app,overrides,key", [
    ("pretrain", ["trainer.max_update=3"], "max_update"),  # unknown key
    ("pretrain", ["model.mask_prob=1.2"], "mask_prob"),
    ("pretrain", ["model.mask_prob=-0.1"], "mask_prob"),
    ("finetune", ["model.mask_prob=1.0"], "mask_prob"),
    ("pretrain", ["data.min_sample_size=4000", "data.max_tokens=3000"], "max_tokens"),
    ("finetune", ["data.min_sample_size=0", "data.max_tokens=5000"], "max_tokens"),  # < the shortest utterance
    ("pretrain", ["data.valid_subset=nope"], "nope.tsv"),  # a missing manifest
    ("finetune", ["data.train_subset=nope"], "nope.tsv"),
    ("finetune", ["init=/nonexistent/checkpoint.pt"], "init"),
    ("pretrain", ["data.min_sample_size=200000", "data.max_sample_size=250000", "data.max_tokens=400000"],
     "min_sample_size"),  # every utterance filtered out
])
def test_bad_setting_is_one_line_before_compute(prepared_bad_corpus, tmp_path, capsys, app, overrides, key):
    _, data, _ = prepared_bad_corpus
    run_dir = tmp_path / "run"
    err = _one_line_error(capsys, [app, f"data.dir={data}", *FAST, f"trainer.run_dir={run_dir}", *overrides])
    assert err.startswith(f"speechssl {app}: config error:") and key in err, err
    assert not run_dir.exists()  # nothing ran, nothing written


def test_finetune_from_ctc_checkpoint_with_other_vocabulary(prepared_bad_corpus, english_ctc, tmp_path, capsys):
    _, data, _ = prepared_bad_corpus
    run_dir = tmp_path / "run"
    err = _one_line_error(capsys, ["finetune", f"data.dir={data}", *FAST, f"init={english_ctc}",
                                   f"trainer.run_dir={run_dir}"])
    assert f"init='{english_ctc}'" in err and "vocabulary" in err and "dict.ltr.txt" in err, err
    assert not run_dir.exists()


def test_evaluate_ctc_checkpoint_lacking_the_data_letters(prepared_bad_corpus, english_ctc, tmp_path, capsys):
    _, data, _ = prepared_bad_corpus
    out = tmp_path / "decode"
    err = _one_line_error(capsys, ["evaluate", str(english_ctc), str(data), "--subset", "train,valid",
                                   "--out", str(out)])
    assert "'Ω' x1" in err and "--allow-oov" in err and "vocabulary" in err, err
    assert not out.exists()
    # allowed: scored, the unknown letter counting as an error
    assert main(["evaluate", str(english_ctc), str(data), "--subset", "train,valid", "--out", str(out),
                 "--allow-oov"]) == 0
    assert (out / "summary-train.json").is_file() and (out / "summary-valid.json").is_file()


@pytest.mark.parametrize("app,override,group", [
    ("pretrain", "model=tinny", "model"),
    ("pretrain", "+experiment=pretrain_cpuu", "experiment"),
    ("finetune", "schedule=cosine", "schedule"),
    ("finetune", "optim=adam", "optim"),
])
def test_a_missing_group_choice_names_every_option_of_the_group(capsys, app, override, group):
    from speechssl.cli.train import conf_dir

    err = _one_line_error(capsys, [app, override, "data.dir=/nonexistent"])
    options = sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
    assert len(options) >= 2
    assert err.startswith(f"speechssl {app}: config error: {override}: no such {group} config; choose one of: "
                          + ", ".join(options)), err
