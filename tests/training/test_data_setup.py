"""The training loaders batch as fairseq does: data.required_batch_size_multiple and data.max_batch_size."""

from __future__ import annotations

import pytest

from speechssl.cli.train import compose
from speechssl.models import get_preset
from speechssl.training.data_setup import build_loader
from speechssl.training.distributed import DistInfo

UTTERANCE = 300_000  # samples (18.75 s)


def _batch_sizes(tmp_path, app: str, experiment: str, *overrides: str) -> list[int]:
    """Utterances per batch of the training loader that `speechssl APP +experiment=EXPERIMENT` builds, over 48
    utterances of 300 k samples (a manifest only: batching reads lengths, not audio)."""
    (tmp_path / "train.tsv").write_text(f"{tmp_path}\n" + "".join(f"u{i}.flac\t{UTTERANCE}\n" for i in range(48)))
    cfg, _ = compose(app, [f"data.dir={tmp_path}", f"+experiment={experiment}", *overrides])
    loader = build_loader(cfg.data, "train", seed=1, dist=DistInfo(), train=True,
                          geometry=get_preset("base").geometry)
    return sorted(len(batch) for batch in loader.sampler.batches(epoch=1))


def test_a_budget_cut_batch_keeps_a_multiple_of_8(tmp_path):
    """BASE fine-tuning: 3.2 M samples per GPU hold 10 utterances of 300 k; fairseq keeps 8 of them
    (required_batch_size_multiple 8), the other 2 start the next batch."""
    assert _batch_sizes(tmp_path, "pretrain", "pretrain_base", "data.max_tokens=3200000",
                        "data.max_sample_size=3200000") == [8] * 6
    assert _batch_sizes(tmp_path, "pretrain", "pretrain_base", "data.max_tokens=3200000",
                        "data.max_sample_size=3200000", "data.required_batch_size_multiple=1") == [8] + [10] * 4


def test_large_pretraining_holds_at_most_4_utterances_per_batch(tmp_path):
    """wav2vec2_large_librivox.yaml's batch_size 4: 1.2 M samples would hold 4 crops of 300 k, and with
    shorter crops (here 200 k: 6 fit) the cap is what binds."""
    assert _batch_sizes(tmp_path, "pretrain", "pretrain_large") == [4] * 12
    assert _batch_sizes(tmp_path, "pretrain", "pretrain_large", "data.max_sample_size=200000") == [4] * 12
    assert _batch_sizes(tmp_path, "pretrain", "pretrain_large", "data.max_sample_size=200000",
                        "data.max_batch_size=null") == [6] * 8


@pytest.mark.parametrize("key,value", [("required_batch_size_multiple", 0), ("max_batch_size", 0)])
def test_invalid_batch_shape_settings_name_the_key(tmp_path, key, value):
    for subset in ("train", "valid"):
        (tmp_path / f"{subset}.tsv").write_text(f"{tmp_path}\nu.flac\t{UTTERANCE}\n")
    cfg, _ = compose("pretrain", [f"data.dir={tmp_path}", f"data.{key}={value}"])
    with pytest.raises(ValueError, match=f"data.{key} must be >= 1"):
        cfg.data.validate()


@pytest.mark.parametrize("device,workers", [("cpu", 0), ("cpu", 2), ("cuda", 2), ("cuda:1", 0)])
def test_batches_are_pinned_for_cuda_only_and_workers_persist(tmp_path, device, workers):
    """Pinned (page-locked) batches only for a CUDA device (the tasks copy them with non_blocking=True); worker
    processes kept across epochs whenever there are any. Read off the torch DataLoader the training reads."""
    (tmp_path / "train.tsv").write_text(f"{tmp_path}\n" + "".join(f"u{i}.flac\t{UTTERANCE}\n" for i in range(8)))
    cfg, _ = compose("pretrain", [f"data.dir={tmp_path}", f"data.num_workers={workers}"])
    loader = build_loader(cfg.data, "train", seed=1, dist=DistInfo(), train=True,
                          geometry=get_preset("base").geometry, device=device).torch_loader()
    assert loader.pin_memory == device.startswith("cuda")
    assert loader.num_workers == workers and loader.persistent_workers == (workers > 0)
