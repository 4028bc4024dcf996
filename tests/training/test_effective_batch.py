"""The effective batch: update_freq derived from trainer.tokens_per_update, the world size and data.max_tokens."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest

from speechssl.cli.train import compose
from speechssl.training.app import apply_effective_batch
from speechssl.training.effective_batch import derive_update_freq

BASE_PRETRAINING = 64 * 1_400_000  # the paper: 1.4 M samples on each of 64 GPUs


def _derive(tokens, world, max_tokens=1_400_000, update_freq=1, max_deviation=0.1):
    return derive_update_freq(tokens_per_update=tokens, update_freq=update_freq, max_tokens=max_tokens,
                              world_size=world, max_deviation=max_deviation)


@pytest.mark.parametrize("world,update_freq,batch,warned", [
    (1, 64, BASE_PRETRAINING, False),
    (3, 21, 3 * 21 * 1_400_000, True),  # 64 / 3 = 21.3: 88.2 M samples, 1.6 % short
    (8, 8, BASE_PRETRAINING, False),
    (64, 1, BASE_PRETRAINING, False),
])
def test_pretrain_base_on_simulated_ranks(world, update_freq, batch, warned, tmp_path, capsys):
    """`speechssl pretrain +experiment=pretrain_base` on 1, 3, 8 and 64 ranks: the paper's 89.6 M samples per
    update, or a printed warning that states the batch it gets and the difference."""
    cfg, resolved = compose("pretrain", [f"data.dir={tmp_path}", "+experiment=pretrain_base"])
    assert cfg.trainer.tokens_per_update == BASE_PRETRAINING and cfg.trainer.update_freq == 1
    got = apply_effective_batch("pretrain", cfg, resolved, world_size=world, is_main=True)
    assert cfg.trainer.update_freq == got.update_freq == update_freq
    assert resolved["trainer"]["update_freq"] == update_freq  # the run directory's config.yaml says so
    assert got.tokens_per_update == batch
    out = capsys.readouterr()
    assert f"batch {batch / 1e6:.4g} M samples per update = {world} rank(s)" in out.out
    assert f"update_freq {update_freq}, derived from trainer.tokens_per_update=89600000" in out.out
    if warned:
        assert "warning:" in out.err and "88.2 M samples per update (-1.6%)" in out.err
        # the exact batch within the memory budget: one more step of smaller micro-batches
        assert "data.max_tokens=1357575 (update_freq 22)" in out.err
        assert abs(3 * 22 * 1_357_575 - BASE_PRETRAINING) < 3 * 22
    else:
        assert out.err == ""


def test_the_per_rank_budget_sets_the_accumulation():
    """A smaller GPU (half the per-rank budget) accumulates twice as many micro-batches: the same batch."""
    assert _derive(BASE_PRETRAINING, 8, max_tokens=700_000).update_freq == 16
    assert _derive(BASE_PRETRAINING, 8, max_tokens=2_800_000).update_freq == 4


def test_rounding_is_to_the_nearest_whole_update_freq():
    # 25.6 M over 7 ranks x 3.2 M = 1.14 -> 1 (-12.5 %); over 9 ranks x 1.4 M: 89.6 / 12.6 = 7.11 -> 7
    assert _derive(25_600_000, 7, max_tokens=3_200_000, max_deviation=0.2).update_freq == 1
    assert _derive(BASE_PRETRAINING, 9).update_freq == 7
    assert _derive(BASE_PRETRAINING, 9).deviation == Fraction(9 * 7 * 1_400_000 - BASE_PRETRAINING, BASE_PRETRAINING)
    # more ranks than the batch needs: one micro-batch each, twice the batch, refused by default
    assert _derive(BASE_PRETRAINING, 128, max_deviation=1.0).update_freq == 1


@pytest.mark.parametrize("world", [3, 5, 6, 16, 64])
def test_finetuning_batch_that_does_not_divide_is_refused(world, tmp_path):
    """BASE fine-tuning's 8 x 3.2 M on 3 GPUs: update_freq 3 would be 12.5 % too large; refused with the
    data.max_tokens that gives the exact batch, and that setting does."""
    cfg, resolved = compose("finetune", [f"data.dir={tmp_path}", "+experiment=finetune_10m"])
    with pytest.raises(ValueError, match=r"trainer.max_batch_deviation=0.1\). Set data.max_tokens=(\d+)") as err:
        apply_effective_batch("finetune", cfg, resolved, world_size=world, is_main=True)
    fitting = int(re.search(r"Set data.max_tokens=(\d+)", str(err.value)).group(1))
    assert fitting <= 3_200_000  # never more audio per GPU than the budget
    cfg, resolved = compose("finetune", [f"data.dir={tmp_path}", "+experiment=finetune_10m",
                                         f"data.max_tokens={fitting}"])
    got = apply_effective_batch("finetune", cfg, resolved, world_size=world, is_main=False)
    assert abs(got.tokens_per_update - 8 * 3_200_000) < world * got.update_freq  # within rounding of samples


def test_a_wider_tolerance_accepts_with_a_warning(tmp_path, capsys):
    cfg, resolved = compose("finetune", [f"data.dir={tmp_path}", "+experiment=finetune_10m",
                                         "trainer.max_batch_deviation=0.15"])
    got = apply_effective_batch("finetune", cfg, resolved, world_size=3, is_main=True)
    assert got.update_freq == 3 and got.tokens_per_update == 28_800_000
    assert "28.8 M samples per update (+12.5%)" in capsys.readouterr().err


def test_update_freq_as_given_without_a_target(tmp_path, capsys):
    cfg, resolved = compose("pretrain", [f"data.dir={tmp_path}", "trainer.update_freq=3"])
    got = apply_effective_batch("pretrain", cfg, resolved, world_size=2, is_main=True)
    assert got.update_freq == 3 and got.tokens_per_update == 2 * 3 * cfg.data.max_tokens
    assert "(trainer.update_freq as given)" in capsys.readouterr().out


def test_only_rank_zero_prints(tmp_path, capsys):
    cfg, resolved = compose("pretrain", [f"data.dir={tmp_path}", "+experiment=pretrain_base"])
    apply_effective_batch("pretrain", cfg, resolved, world_size=3, is_main=False)
    assert capsys.readouterr() == ("", "")


def test_both_ways_of_sizing_the_batch_is_a_config_error(tmp_path):
    cfg, _ = compose("pretrain", [f"data.dir={tmp_path}", "+experiment=pretrain_base", "trainer.update_freq=8"])
    with pytest.raises(ValueError, match="trainer.update_freq=8 and trainer.tokens_per_update=89600000"):
        cfg.trainer.validate()
    cfg, _ = compose("pretrain", [f"data.dir={tmp_path}", "+experiment=pretrain_base",
                                  "trainer.tokens_per_update=null", "trainer.update_freq=8"])
    cfg.trainer.validate()  # the way out the message names
    with pytest.raises(ValueError, match="tokens_per_update must be >= 1"):
        _derive(0, 1)


def test_the_readmes_show_what_the_derivation_prints(tmp_path, capsys):
    """README.md and egs/librispeech/README.md quote the start-up line of 8 GPUs and the batches of 3: the
    derivation's own output, so that the examples follow the rule they describe."""
    root = Path(__file__).resolve().parents[2]
    # whitespace as one space: a line break of the text is no difference
    readmes = {name: " ".join((root / name).read_text().split()) for name in ("README.md", "egs/librispeech/README.md")}
    cfg, resolved = compose("pretrain", [f"data.dir={tmp_path}", "+experiment=pretrain_base"])
    apply_effective_batch("pretrain", cfg, resolved, world_size=8, is_main=True)
    line = capsys.readouterr().out.strip()
    on_three = _derive(BASE_PRETRAINING, 3)
    for name, text in readmes.items():
        assert line in text, name
        assert f"{on_three.tokens_per_update / 1e6:.3g} M" in text and f"{float(on_three.deviation):.1%}" in (
            text.replace(" %", "%")), name
    # egs/librispeech/README.md: BASE fine-tuning on 3 GPUs is refused, with the data.max_tokens that fits
    cfg, resolved = compose("finetune", [f"data.dir={tmp_path}", "+experiment=finetune_10m"])
    with pytest.raises(ValueError, match=r"Set data.max_tokens=(\d+)") as refused:
        apply_effective_batch("finetune", cfg, resolved, world_size=3, is_main=False)
    fitting = re.search(r"Set data.max_tokens=(\d+)", str(refused.value)).group(1)
    assert f"FINETUNE_OVERRIDES=data.max_tokens={fitting}" in readmes["egs/librispeech/README.md"]
    assert "update_freq 3 would be 28.8 M, +12.5 %" in readmes["egs/librispeech/README.md"]
