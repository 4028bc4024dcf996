"""The speechssl checkpoint format: the one module that writes, reads and validates it.

A speechssl checkpoint is a torch.save'd dict::

    {"format": "speechssl", "version": 1,
     "task": "pretrain" | "ctc",            # the model class
     "model_config": Wav2Vec2Config.to_dict(),
     "vocab": [symbols] | None, "blank": str | None, "tokenizer_options": {...} | None,   # CTC models
     "model": state_dict,
     ...}                                   # training state, when a trainer wrote it:
                                            # optimizer, scaler, train_state, rng, config

The trainer (`speechssl.training.loop`), `speechssl convert` and the recipes all write it through
`checkpoint_dict` / `save_speechssl_checkpoint`; `load_checkpoint` reads a file back and
`model_from_checkpoint` rebuilds its model. Files are written atomically (`atomic_torch_save`): a temporary
file in the same directory, flushed and fsync'ed, renamed over the target, the directory fsync'ed; a crash or
a full disk at any point leaves either the previous file or the new one, never a torn file.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speechssl.data.tokenizer import LetterTokenizer
from speechssl.interop.keymap import load_exact
from speechssl.interop.loaded import LoadedModel, build_model, check_vocab
from speechssl.models import Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining

CHECKPOINT_FORMAT = "speechssl"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, torn or not a speechssl checkpoint (the message names the file)."""


class DiskFullError(OSError):
    """A checkpoint write ran out of disk space; the file it was replacing (if any) is untouched."""

    def __init__(self, path: Path, needed_bytes: int, free_bytes: int):
        super().__init__(errno.ENOSPC, f"no space left on device writing {path}: it needs about "
                                       f"{_megabytes(needed_bytes)}, {_megabytes(free_bytes)} free")
        self.path, self.needed_bytes, self.free_bytes = path, needed_bytes, free_bytes


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _is_disk_full(exc: BaseException) -> bool:
    """ENOSPC as an OSError, or as torch's zip writer reports it (`RuntimeError: [enforce fail at
    inline_container.cc] ... file write failed`, the errno lost), or chained under either."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, RuntimeError) and "file write failed" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a nested dict/list: what a torch.save of it needs, near enough."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


# ---------------------------------------------------------------------------------------------- atomic files
def _replace_atomically(path: Path, fill: Callable[[Path], None]) -> None:
    """`fill` a temp file beside `path`, then rename it onto `path`: `path` always names a complete file (old
    or new). On any failure the temp file is removed and the previous file stays untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fill(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # do not litter the run directory
        raise
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save `obj` to `path` so that `path` always holds a complete file (old or new). A full disk raises
    `DiskFullError` (the temp file removed, the previous file untouched)."""

    def write(tmp: Path) -> None:
        with open(tmp, "xb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())

    path = Path(path)
    try:
        _replace_atomically(path, write)
    except (OSError, RuntimeError) as exc:
        if not _is_disk_full(exc):
            raise
        raise DiskFullError(path, _tensor_bytes(obj), shutil.disk_usage(path.parent).free) from None


def atomic_alias(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make `path` name the same complete file as `source`, atomically (old or new, never torn).

    A hard link: checkpoint_last and checkpoint_best are the newest numbered checkpoint, so writing the same
    state three times cost three times the disk (3 x 1.1 GB for BASE with its optimizer). Every checkpoint
    write replaces a name and never rewrites a file in place, so names sharing one file cannot change each
    other. Falls back to a copy where the file system has no hard links.
    """

    def link(tmp: Path) -> None:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)

    _replace_atomically(Path(path), link)


def _fsync_dir(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------------------------------------- writing
def model_task(model: nn.Module) -> str:
    """`ctc` or `pretrain` for a speechssl model."""
    if isinstance(model, Wav2Vec2ForCTC):
        return "ctc"
    if isinstance(model, Wav2Vec2ForPreTraining):
        return "pretrain"
    raise TypeError(f"expected Wav2Vec2ForPreTraining or Wav2Vec2ForCTC, got {type(model).__name__}")


def checkpoint_dict(
    model: Wav2Vec2ForPreTraining | Wav2Vec2ForCTC, /, *, tokenizer: LetterTokenizer | None = None,
    **training_state: Any,
) -> dict[str, Any]:
    """The speechssl checkpoint dict of `model` (`training_state` adds the trainer's keys: optimizer, scaler,
    train_state, rng, config)."""
    task = model_task(model)
    if task == "ctc":
        check_vocab(tokenizer, model.vocab_size, "checkpoint")
    state: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "task": task,
        "model_config": model.config.to_dict(),
        "vocab": list(tokenizer.symbols) if tokenizer is not None else None,
        "blank": tokenizer.blank if tokenizer is not None else None,
        "tokenizer_options": ({"unk": tokenizer.unk, "word_delimiter": tokenizer.word_delimiter,
                               "uppercase": tokenizer.uppercase} if tokenizer is not None else None),
        "model": model.state_dict(),
    }
    clash = sorted(set(training_state) & set(state))
    if clash:
        raise ValueError(f"training state keys {clash} would overwrite the checkpoint's own keys")
    state.update(training_state)
    return state


def save_speechssl_checkpoint(
    path: str | os.PathLike, model: Wav2Vec2ForPreTraining | Wav2Vec2ForCTC, /, *,
    tokenizer: LetterTokenizer | None = None, **training_state: Any,
) -> Path:
    """Write `checkpoint_dict(model, ...)` atomically to `path`."""
    path = Path(path)
    atomic_torch_save(checkpoint_dict(model, tokenizer=tokenizer, **training_state), path)
    return path


# ---------------------------------------------------------------------------------------------- reading
def is_checkpoint(state: Any) -> bool:
    """Whether a loaded object is a speechssl checkpoint dict (has the format key)."""
    return isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT


def check_checkpoint(state: Any, source: str | os.PathLike) -> dict[str, Any]:
    """`state` itself when it is a speechssl checkpoint dict; CheckpointError naming `source` otherwise."""
    if not is_checkpoint(state):
        raise CheckpointError(f"{source} is not a speechssl checkpoint (no format={CHECKPOINT_FORMAT!r} key)")
    return state


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a speechssl checkpoint dict, raising CheckpointError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torn zip, wrong format, ...
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    return check_checkpoint(state, path)


def checkpoint_update(state: dict[str, Any]) -> int:
    """The update a checkpoint was written at (-1 when it does not say): the trainer keeps it in train_state."""
    train_state = state.get("train_state")
    if isinstance(train_state, dict) and "num_updates" in train_state:
        return int(train_state["num_updates"])
    return int(state.get("num_updates", -1))


def tokenizer_from_checkpoint(state: dict[str, Any]) -> LetterTokenizer | None:
    """The LetterTokenizer stored in a speechssl checkpoint dict, if any (checkpoints without
    `tokenizer_options` get the tokenizer's defaults, which is what their writer used)."""
    if not state.get("vocab"):
        return None
    options = state.get("tokenizer_options") or {}
    return LetterTokenizer(state["vocab"], blank=state.get("blank") or "<pad>", **options)


def model_from_checkpoint(state: dict[str, Any], source: str | os.PathLike = "checkpoint") -> LoadedModel:
    """Rebuild the model of a speechssl checkpoint dict (weights loaded exactly, eval mode)."""
    check_checkpoint(state, source)
    cfg = Wav2Vec2Config.from_dict(state["model_config"])
    task = state.get("task")
    tokenizer = tokenizer_from_checkpoint(state)
    weights = state["model"]
    vocab_size = int(weights["head.weight"].shape[0]) if task == "ctc" else None
    if vocab_size is not None:
        check_vocab(tokenizer, vocab_size, str(source))
    model = build_model(cfg, task, vocab_size)
    load_exact(model, weights, str(source))
    return LoadedModel(model=model.eval(), config=cfg, task=task, tokenizer=tokenizer, source="speechssl")
