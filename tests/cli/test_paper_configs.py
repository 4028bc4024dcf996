"""The paper's experiment configs, field by field against fairseq's official ones.

FAIRSEQ below holds the values (not the files) of fairseq's examples/wav2vec/config/pretraining/*.yaml and
finetuning/*.yaml at commit 3d262bb, completed by the defaults those files leave to fairseq's code:
`Wav2Vec2Config` (models/wav2vec/wav2vec2.py), `Wav2Vec2AsrConfig` (models/wav2vec/wav2vec2_asr.py, whose
dropouts, masking, layerdrop and feature_grad_mult replace the pretrained model's in fine-tuning), the
`wav2vec` criterion (loss_weights = [diversity, feature penalty]), `compute_mask_indices` (2 time spans at
least, channel masks with the batch's smallest count), `DatasetConfig` (required_batch_size_multiple 8), Adam
and the polynomial_decay / tri_stage schedulers. Keys are speechssl's names for the same quantity; the batch is
max_tokens x distributed_world_size x update_freq samples per update.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from speechssl.cli.train import compose, conf_dir
from speechssl.models import Wav2Vec2Config, get_preset
from speechssl.training.config import apply_overrides

CONV = {"model.conv_dims": [512] * 7, "model.conv_kernels": [10, 3, 3, 3, 3, 2, 2],
        "model.conv_strides": [5, 2, 2, 2, 2, 2, 2]}
# Wav2Vec2Config defaults and the quantizer / contrastive settings every config here shares.
SHARED_MODEL = {
    **CONV, "model.conv_pos": 128, "model.conv_pos_groups": 16, "model.layer_norm_eps": 1e-5,
    "model.mask_length": 10, "model.mask_min_masks": 2, "model.no_mask_overlap": False, "model.mask_min_space": 1,
    "model.require_same_masks": True, "model.latent_vars": 320, "model.latent_groups": 2, "model.latent_dim": 0,
    "model.max_temp": 2.0, "model.temp_decay": 0.999995, "model.num_negatives": 100, "model.logit_temp": 0.1,
    "model.diversity_weight": 0.1,
    # speechssl's own additions, at the values that leave the model fairseq's: kaiming conv init, no
    # continuous-target term (fairseq's quantize_targets: true)
    "model.conv_smooth_init": 0.0, "model.continuous_target_weight": 0.0,
    # fairseq's checkpoint_activations (recompute the layers in backward): off in every paper config
    "model.checkpoint_activations": False,
}
# The pretrained models: architecture, temperature floor and feature-penalty weight (loss_weights[1]).
BASE_ARCH = {
    "model.extractor_mode": "group_norm", "model.conv_bias": False, "model.encoder_layers": 12,
    "model.encoder_embed_dim": 768, "model.encoder_ffn_embed_dim": 3072, "model.encoder_attention_heads": 12,
    "model.layer_norm_first": False, "model.final_dim": 256, "model.min_temp": 0.5, "model.feature_pen_weight": 10.0,
}
LARGE_ARCH = {
    "model.extractor_mode": "layer_norm", "model.conv_bias": True, "model.encoder_layers": 24,
    "model.encoder_embed_dim": 1024, "model.encoder_ffn_embed_dim": 4096, "model.encoder_attention_heads": 16,
    "model.layer_norm_first": True, "model.final_dim": 768, "model.min_temp": 0.1, "model.feature_pen_weight": 0.0,
}
ADAM = {"optim.betas": [0.9, 0.98], "optim.clip_norm": 0.0, "optim.feature_encoder_lr_scale": 1.0}

# wav2vec2_base_librispeech.yaml
BASE_PRETRAINING = {
    **SHARED_MODEL, **BASE_ARCH, **ADAM,
    "model.dropout": 0.1, "model.attention_dropout": 0.1, "model.activation_dropout": 0.0,
    "model.dropout_input": 0.1, "model.dropout_features": 0.1, "model.encoder_layerdrop": 0.05,
    "model.feature_grad_mult": 0.1, "model.mask_prob": 0.65, "model.mask_channel_prob": 0.0,
    "model.normalize": False,
    "data.max_tokens": 1_400_000, "data.max_batch_size": None, "data.required_batch_size_multiple": 8,
    "data.max_sample_size": 250_000, "data.min_sample_size": 32_000, "data.crop_to_shortest": True,
    "data.normalize": False,
    "optim.lr": 5e-4, "optim.eps": 1e-6, "optim.weight_decay": 0.01,
    "schedule.kind": "polynomial", "schedule.warmup_updates": 32_000, "schedule.end_lr": 0.0, "schedule.power": 1.0,
    "trainer.max_updates": 400_000, "trainer.tokens_per_update": 1_400_000 * 64 * 1,
    "trainer.log_interval": 200,
}
# wav2vec2_large_librivox.yaml (lr and max_update: conf/experiment/pretrain_large.yaml says why fairseq's)
LARGE_PRETRAINING = {
    **SHARED_MODEL, **LARGE_ARCH, **ADAM,
    "model.dropout": 0.0, "model.attention_dropout": 0.0, "model.activation_dropout": 0.0,
    "model.dropout_input": 0.0, "model.dropout_features": 0.0, "model.encoder_layerdrop": 0.0,
    "model.feature_grad_mult": 1.0, "model.mask_prob": 0.65, "model.mask_channel_prob": 0.0,
    "model.normalize": True,
    "data.max_tokens": 1_200_000, "data.max_batch_size": 4, "data.required_batch_size_multiple": 8,
    "data.max_sample_size": 320_000, "data.min_sample_size": 32_000, "data.crop_to_shortest": True,
    "data.normalize": True,
    "optim.lr": 5e-3, "optim.eps": 1e-6, "optim.weight_decay": 0.01,
    "schedule.kind": "polynomial", "schedule.warmup_updates": 32_000, "schedule.end_lr": 0.0, "schedule.power": 1.0,
    "trainer.max_updates": 1_000_000, "trainer.tokens_per_update": 1_200_000 * 128 * 1,
    "trainer.log_interval": 200,
}


def finetuning(arch: dict, *, max_tokens: int, world_size: int, update_freq: int, lr: float, max_update: int,
               mask_prob: float, mask_channel_prob: float, layerdrop: float, freeze: int, normalize: bool) -> dict:
    """A finetuning/*.yaml: its own fields, Wav2Vec2AsrConfig's dropouts (all 0 but activation_dropout, set to
    0.1 by every file), fairseq's pretraining architecture and quantizer underneath."""
    return {
        **SHARED_MODEL, **arch, **ADAM,
        "model.dropout": 0.0, "model.attention_dropout": 0.0, "model.activation_dropout": 0.1,
        "model.dropout_input": 0.0, "model.final_dropout": 0.0, "model.encoder_layerdrop": layerdrop,
        "model.feature_grad_mult": 0.0, "model.mask_prob": mask_prob, "model.mask_channel_prob": mask_channel_prob,
        "model.mask_channel_length": 64, "model.mask_channel_min_masks": 0, "model.require_same_channel_masks": True,
        "model.normalize": normalize,
        "data.labels": "ltr", "data.max_tokens": max_tokens, "data.max_batch_size": None,
        "data.required_batch_size_multiple": 8,
        # audio_finetuning: no crop and no length limit of its own (max/min_sample_size None)
        "data.max_sample_size": max_tokens, "data.min_sample_size": 0, "data.normalize": normalize,
        "optim.lr": lr, "optim.eps": 1e-8, "optim.weight_decay": 0.0,
        "schedule.kind": "tri_stage", "schedule.phase_ratio": [0.1, 0.4, 0.5], "schedule.init_lr_scale": 0.01,
        "schedule.final_lr_scale": 0.05,
        "trainer.max_updates": max_update, "trainer.tokens_per_update": max_tokens * world_size * update_freq,
        "trainer.log_interval": 200, "freeze_finetune_updates": freeze, "best_metric": "wer",
    }


def base(**kw) -> dict:  # base_*.yaml: 3.2 M samples per GPU, no input normalisation
    return finetuning(BASE_ARCH, max_tokens=3_200_000, normalize=False, **kw)


def vox(**kw) -> dict:  # vox_*.yaml: LARGE, 1.28 M samples per GPU, normalised input
    return finetuning(LARGE_ARCH, max_tokens=1_280_000, normalize=True, **kw)


FAIRSEQ: dict[str, dict] = {
    "pretrain_base": BASE_PRETRAINING,
    "pretrain_large": LARGE_PRETRAINING,
    "finetune_10m": base(world_size=2, update_freq=4, lr=5e-5, max_update=13_000, mask_prob=0.65,
                         mask_channel_prob=0.25, layerdrop=0.1, freeze=10_000),
    "finetune_1h": base(world_size=2, update_freq=4, lr=5e-5, max_update=13_000, mask_prob=0.65,
                        mask_channel_prob=0.25, layerdrop=0.1, freeze=10_000),
    "finetune_10h": base(world_size=2, update_freq=4, lr=5e-5, max_update=20_000, mask_prob=0.65,
                         mask_channel_prob=0.5, layerdrop=0.05, freeze=10_000),
    "finetune_100h": base(world_size=2, update_freq=4, lr=3e-5, max_update=80_000, mask_prob=0.65,
                          mask_channel_prob=0.5, layerdrop=0.1, freeze=0),
    "finetune_960h": base(world_size=8, update_freq=1, lr=1e-4, max_update=320_000, mask_prob=0.5,
                          mask_channel_prob=0.1, layerdrop=0.1, freeze=0),
    "finetune_large_10m": vox(world_size=4, update_freq=5, lr=1e-4, max_update=13_000, mask_prob=0.65,
                              mask_channel_prob=0.25, layerdrop=0.1, freeze=10_000),
    "finetune_large_1h": vox(world_size=4, update_freq=5, lr=3e-4, max_update=13_000, mask_prob=0.75,
                             mask_channel_prob=0.25, layerdrop=0.1, freeze=10_000),
    "finetune_large_10h": vox(world_size=4, update_freq=5, lr=1e-4, max_update=20_000, mask_prob=0.75,
                              mask_channel_prob=0.25, layerdrop=0.1, freeze=10_000),
    "finetune_large_100h": vox(world_size=4, update_freq=5, lr=3e-5, max_update=80_000, mask_prob=0.5,
                               mask_channel_prob=0.5, layerdrop=0.1, freeze=10_000),
    "finetune_large_960h": vox(world_size=24, update_freq=1, lr=3e-5, max_update=320_000, mask_prob=0.5,
                               mask_channel_prob=0.25, layerdrop=0.1, freeze=10_000),
}

# Model fields a config does not decide, and why; every other Wav2Vec2Config field must be in its table.
NOT_COMPARED = {
    # pretraining has no channel masks (mask_channel_prob 0) and no CTC head
    "pretrain": {"model.mask_channel_length", "model.mask_channel_min_masks", "model.require_same_channel_masks",
                 "model.final_dropout"},
    # fine-tuning: dropout_features only feeds the quantizer, which CTC fine-tuning drops (fairseq leaves the
    # pretrained value; unused either way)
    "finetune": {"model.dropout_features"},
}
# Where speechssl deliberately differs from fairseq, and why (a new difference fails test_paper_config_...).
DIFFERENCES = {
    # fairseq trains in fp16 with a dynamic loss scale; speechssl's auto picks bf16 on a GPU that has it (no
    # loss scale to tune, the same exponent range as fp32), fp16 elsewhere on request (trainer.precision=fp16)
    "trainer.precision": ("fp16", "auto"),
}

PAPER_EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml") if "cpu" not in p.stem)


def ours(name: str, tmp_path: Path) -> dict:
    """Every setting of +experiment=NAME, composed as `speechssl pretrain|finetune` does, by dotted name."""
    app = "finetune" if name.startswith("finetune") else "pretrain"
    cfg, _ = compose(app, [f"data.dir={tmp_path}", f"+experiment={name}"])
    model = apply_overrides(get_preset(cfg.model.preset), cfg.model.overrides)
    values = {f"model.{f.name}": getattr(model, f.name) for f in dataclasses.fields(model)}
    for section in ("data", "optim", "schedule", "trainer"):
        part = getattr(cfg, section)
        values.update({f"{section}.{f.name}": getattr(part, f.name) for f in dataclasses.fields(part)})
    if app == "finetune":
        values.update(freeze_finetune_updates=cfg.freeze_finetune_updates, best_metric=cfg.best_metric)
    return values


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


def test_every_paper_experiment_has_a_fairseq_table():
    assert PAPER_EXPERIMENTS == sorted(FAIRSEQ)


@pytest.mark.parametrize("name", sorted(FAIRSEQ))
def test_paper_config_equals_fairseq_field_by_field(name, tmp_path):
    values = ours(name, tmp_path)
    differing = {key: (expected, values.get(key, "<missing>")) for key, expected in FAIRSEQ[name].items()
                 if not _same(values.get(key, "<missing>"), expected)}
    assert differing == {}, f"{name}: fairseq vs speechssl {differing}"
    for key, (fairseq_value, our_value) in DIFFERENCES.items():
        assert key not in FAIRSEQ[name] and values[key] == our_value, (key, fairseq_value, values[key])


@pytest.mark.parametrize("name", sorted(FAIRSEQ))
def test_the_table_covers_every_model_field(name):
    """A new Wav2Vec2Config field must be given its fairseq value here (or a reason not to be compared)."""
    app = "finetune" if name.startswith("finetune") else "pretrain"
    fields = {f"model.{f.name}" for f in dataclasses.fields(Wav2Vec2Config)}
    assert fields - set(FAIRSEQ[name]) - NOT_COMPARED[app] == set()

