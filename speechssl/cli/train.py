"""`speechssl pretrain` and `speechssl finetune`: the Hydra apps.

This is the only module that imports Hydra. It composes `conf/<app>.yaml` with the user's overrides, merges the
result into the typed schema (unknown keys fail here, before any compute), converts it to plain dataclasses
and hands them to `speechssl.training`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any

from speechssl.training.config import FinetuneConfig, ModelSection, PretrainConfig

CONF_DIR_ENV = "SPEECHSSL_CONF"

HELP = """usage: speechssl {app} [OVERRIDE ...] [--cfg] [--help]

{what}

Overrides are Hydra `key=value` pairs over the composed config (conf/{app}.yaml):
  group choice:   model=base  model=small  optim=...  schedule=...  data=...
  single keys:    data.dir=DIR  trainer.run_dir=DIR  trainer.max_updates=N  optim.lr=1e-4
                  model.<field>=VALUE  (any Wav2Vec2Config field, e.g. model.encoder_layers=4)
  experiments:    +experiment=NAME   (conf/experiment/*.yaml: the paper's configs and the CPU ones;
                  `small` on a CPU: +experiment=pretrain_cpu / finetune_cpu)
  start from:     init=CKPT  (speechssl .pt, Hugging Face dir or fairseq .pt; pretrain: continue pretraining a
                  public model on your audio, quantizer kept; finetune: the encoder to fine-tune)
Unknown or mistyped keys are rejected before anything runs.

  --cfg     print the resolved config as YAML and exit
  --help    this message

Outputs go to trainer.run_dir: config.yaml, log.jsonl, tb/ (TensorBoard), checkpoints/, summary.json.
trainer.resume=auto (the default) continues from the newest valid checkpoint there.
Multi-GPU / multi-node: launch with torchrun (see README). The paper's experiments state their batch per update
(trainer.tokens_per_update); update_freq then follows from the number of GPUs and data.max_tokens, printed at
start-up.

Config groups and their choices:
{groups}
"""

WHAT = {
    "pretrain": "Self-supervised wav2vec 2.0 pretraining on unlabeled audio (contrastive + diversity loss).",
    "finetune": "CTC fine-tuning on transcribed audio, from a pretrained checkpoint (init=...) or from scratch.",
}


def conf_dir() -> Path:
    """conf/ of the source tree (editable install), or $SPEECHSSL_CONF."""
    if os.environ.get(CONF_DIR_ENV):
        return Path(os.environ[CONF_DIR_ENV]).resolve()
    here = Path(__file__).resolve().parents[2] / "conf"
    if here.is_dir():
        return here
    raise FileNotFoundError(f"cannot find the conf/ directory; set {CONF_DIR_ENV}")


# ---------------------------------------------------------------------------------------------- schema
def _optional(tp: Any) -> Any:
    return typing.Optional[tp]  # noqa: UP045 -- OmegaConf reads typing.Optional, not a runtime `tp | None`


def model_schema() -> type:
    """A structured-config class with `preset` plus every Wav2Vec2Config field, each None = preset default."""
    from speechssl.models import Wav2Vec2Config

    def build(cls: type, name: str) -> type:
        hints = typing.get_type_hints(cls)
        fields: list[tuple[str, Any, Any]] = []
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                sub = build(tp, f"{name}_{f.name}")
                fields.append((f.name, sub, dataclasses.field(default_factory=sub)))
            else:
                fields.append((f.name, _optional(tp), dataclasses.field(default=None)))
        return dataclasses.make_dataclass(name, fields, kw_only=True)

    inner = build(Wav2Vec2Config, "ModelOverrides")
    return dataclasses.make_dataclass(
        "ModelSchema", [("preset", str, dataclasses.field(default="small"))] + [
            (f.name, f.type, f) for f in dataclasses.fields(inner)], kw_only=True)


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _strip_none(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in out.items() if v != {}}
    return value


def register_schema(app: str) -> str:
    """Register the typed schema in Hydra's ConfigStore as the first entry of conf/<app>.yaml's defaults,
    so that an unknown or mistyped key (in a yaml file or on the command line) fails at composition."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    app_cls = FinetuneConfig if app == "finetune" else PretrainConfig
    model_cls = model_schema()  # `model` is checked against Wav2Vec2Config's own fields
    schema_cls = dataclasses.make_dataclass(
        f"{app_cls.__name__}Schema", [("model", model_cls, dataclasses.field(default_factory=model_cls))],
        bases=(app_cls,), kw_only=True)
    schema = OmegaConf.structured(schema_cls)
    name = f"{app}_schema"
    ConfigStore.instance().store(name=name, node=schema)
    return name


def compose(app: str, overrides: list[str]):
    """Hydra compose over the registered schema; returns (typed config, resolved plain dict)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    register_schema(app)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        composed = hydra_compose(config_name=app, overrides=overrides)
    resolved = OmegaConf.to_container(composed, resolve=True, throw_on_missing=False)
    model_dict = resolved.pop("model")
    preset = model_dict.pop("preset")
    app_cls = FinetuneConfig if app == "finetune" else PretrainConfig
    typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(app_cls), resolved))
    typed.model = ModelSection(preset=preset, overrides=_strip_none(model_dict))
    resolved["model"] = {"preset": preset, **_strip_none(model_dict)}
    return typed, resolved


def _groups_help() -> str:
    try:
        groups = sorted(p.name for p in conf_dir().iterdir() if p.is_dir())
    except FileNotFoundError:
        return "  (conf/ not found)"
    return "\n".join(f"  {'+experiment' if g == 'experiment' else g}: {', '.join(group_choices(g))}"
                     for g in groups)


def run_app(app: str, argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(HELP.format(app=app, what=WHAT[app], groups=_groups_help()))
        return 0
    print_cfg = "--cfg" in argv
    overrides = [a for a in argv if a != "--cfg"]
    bad = [a for a in overrides if "=" not in a]
    if bad:
        print(f"speechssl {app}: expected key=value overrides, got {' '.join(bad)} (see --help)", file=sys.stderr)
        return 2
    try:
        cfg, resolved = compose(app, overrides)
    except Exception as exc:  # noqa: BLE001 -- Hydra / OmegaConf errors: one clear line naming the key
        print(f"speechssl {app}: config error: {_group_choice_error(exc) or _one_line(exc)}", file=sys.stderr)
        return 2
    if print_cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(OmegaConf.create(resolved)))
        return 0
    try:
        cfg.validate()
    except ValueError as exc:
        print(f"speechssl {app}: config error: {exc}", file=sys.stderr)
        return 2
    from speechssl.training.app import run_training

    return run_training(app, cfg, resolved)


_MISSING_GROUP_CHOICE = re.compile(r"Could not (?:find|load) '([\w/]+)/([^'/]+)'")


def group_choices(group: str) -> list[str]:
    """The config names of group `group` (conf/<group>/*.yaml)."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def _group_choice_error(exc: Exception) -> str | None:
    """`model=tinny`: Hydra lists only some of the group's options; name the choice and every option."""
    match = _MISSING_GROUP_CHOICE.search(str(exc))
    if match is None:
        return None
    group, name = match.groups()
    choices = group_choices(group)
    if not choices:
        return None
    flag = "+experiment" if group == "experiment" else group
    return f"{flag}={name}: no such {group} config; choose one of: {', '.join(choices)} (conf/{group}/)"


def _one_line(exc: Exception) -> str:
    """Hydra/OmegaConf errors span several lines; keep the ones that name the key and the problem."""
    lines: list[str] = []
    while exc is not None:
        for line in str(exc).strip().splitlines():
            line = line.strip()
            skip = line.startswith(("object_type", "reference_type", "Set the environment", "To append"))
            if line and not skip and line not in lines:
                lines.append(line)
        exc = exc.__cause__
    return " ".join(lines[:3]) or "invalid configuration"
