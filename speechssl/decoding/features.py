"""Layer-wise representations of a subset, written to disk for downstream probing.

Layer ``0`` is the input of the first Transformer layer (after the positional convolution and, for post-LN
models, the LayerNorm); layer ``k`` is the output of Transformer layer ``k`` (for pre-LN models the last one
is before the final LayerNorm). This is ``Wav2Vec2Encoder(..., return_hidden_states=True)``'s list, the same
indexing as transformers' ``output_hidden_states`` for post-LN models.

Formats (under ``<out>/<subset>/``):
- ``npy``: ``layer<k>.npy`` holding every utterance's frames concatenated ``(sum T_i, D)`` (written through a
  memory map, so subsets larger than memory work), and ``index.tsv`` (id, offset, frames) to cut them apart;
  the layout k-means / probing scripts (e.g. HuBERT's feature dumps) expect.
- ``safetensors``: one ``<n>.safetensors`` per utterance (manifest line ``n``) with tensors ``layer_<k>``
  ``(T, D)``, and the same ``index.tsv``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from speechssl.data.audio import SAMPLE_RATE

FORMATS = ("npy", "safetensors")


@dataclass(kw_only=True)
class FeatureDumpConfig:
    """What to extract."""

    subset: str = "train"
    """Manifest name inside the data directory."""
    layers: tuple[int, ...] = (0, 6, 12)
    """Hidden-state indices (0 = Transformer input, k = output of layer k)."""
    format: str = "npy"
    """``npy`` (per-layer concatenated arrays) or ``safetensors`` (per-utterance files)."""
    dtype: str = "float32"
    """``float32`` or ``float16`` on disk."""
    batch_seconds: float = 100.0
    """Padded audio per batch."""
    normalize: bool = False
    """Waveform normalisation (from the model's config)."""
    progress: bool = True
    """Show a progress bar."""

    def validate(self, num_layers: int | None = None) -> None:
        if not self.layers:
            raise ValueError("`layers` must name at least one layer")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"`layers` must not repeat, got {list(self.layers)}")
        top = num_layers if num_layers is not None else 10**6
        bad = [k for k in self.layers if not 0 <= k <= top]
        if bad:
            raise ValueError(f"`layers` must be in [0, {top}] (0 = Transformer input), got {bad}")
        if self.format not in FORMATS:
            raise ValueError(f"`format` must be one of {FORMATS}, got {self.format!r}")
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"`dtype` must be float32 or float16, got {self.dtype!r}")
        if not self.batch_seconds > 0:
            raise ValueError(f"`batch_seconds` must be > 0, got {self.batch_seconds}")


@dataclass(kw_only=True)
class FeatureDump:
    """What ``dump_features`` wrote."""

    directory: Path
    """``<out>/<subset>``."""
    files: list[Path]
    """Feature files (per layer for npy, per utterance for safetensors)."""
    index: Path
    """``index.tsv``: id, offset, frames per utterance in manifest order."""
    utterances: int
    frames: int
    """Total frames."""
    dim: int
    """Feature dimension D."""
    seconds: float
    """Wall time."""


def parse_layers(text: str, num_layers: int) -> tuple[int, ...]:
    """``"0,6,12"`` or ``"all"`` -> layer indices."""
    if text.strip() == "all":
        return tuple(range(num_layers + 1))
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--layers: expected comma-separated integers or 'all', got {text!r}") from None


def dump_features(encoder: torch.nn.Module, data_dir: str | Path, out_dir: str | Path,
                  config: FeatureDumpConfig, *, device: str | torch.device = "cpu") -> FeatureDump:
    """Run ``encoder`` (a ``Wav2Vec2Encoder``) over ``<data_dir>/<subset>.tsv`` and write the chosen layers."""
    from speechssl.data.datasets import AudioDatasetConfig, UnlabeledAudioDataset
    from speechssl.data.loader import inference_loader
    from speechssl.data.manifest import read_manifest

    num_layers = len(encoder.context.layers)
    config.validate(num_layers)
    manifest_path = Path(data_dir) / f"{config.subset}.tsv"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"--subset: manifest not found: {manifest_path}")
    manifest = read_manifest(manifest_path)
    dataset = UnlabeledAudioDataset(manifest, AudioDatasetConfig(max_sample_size=None, min_sample_size=0, pad=True,
                                                                 normalize=config.normalize))
    frames = [encoder.config.geometry.num_frames(e.num_samples) for e in manifest.entries]
    offsets = np.concatenate([[0], np.cumsum(frames)]).astype(np.int64)  # (N + 1,)
    directory = Path(out_dir) / config.subset
    directory.mkdir(parents=True, exist_ok=True)
    dim = encoder.config.encoder_embed_dim
    np_dtype = np.float16 if config.dtype == "float16" else np.float32
    files: list[Path] = []
    arrays: dict[int, np.ndarray] = {}
    if config.format == "npy":
        for k in config.layers:
            path = directory / f"layer{k}.npy"
            arrays[k] = np.lib.format.open_memmap(path, mode="w+", dtype=np_dtype, shape=(int(offsets[-1]), dim))
            files.append(path)

    loader = inference_loader(dataset, max_tokens=int(config.batch_seconds * SAMPLE_RATE))
    encoder = encoder.eval().to(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in tqdm(loader, desc=f"features {config.subset}", unit="batch", disable=not config.progress):
            mask = batch.padding_mask
            out = encoder(batch.waveforms.to(device), None if mask is None else mask.to(device),
                          return_hidden_states=True)
            for row, manifest_id in enumerate(batch.ids.tolist()):
                length = int(out.lengths[row])
                if length != frames[manifest_id]:
                    raise ValueError(f"{manifest.entries[manifest_id].path}: the model gives {length} frames, "
                                     f"the manifest length implies {frames[manifest_id]}; fix the manifest")
                per_layer = {k: out.hidden_states[k][row, :length].float().cpu().numpy().astype(np_dtype)
                             for k in config.layers}  # each (T, D)
                if config.format == "npy":
                    lo, hi = int(offsets[manifest_id]), int(offsets[manifest_id + 1])
                    for k, values in per_layer.items():
                        arrays[k][lo:hi] = values
                else:
                    from safetensors.numpy import save_file

                    path = directory / f"{manifest_id}.safetensors"
                    save_file({f"layer_{k}": np.ascontiguousarray(v) for k, v in per_layer.items()}, str(path),
                              metadata={"id": manifest.entries[manifest_id].path})
                    files.append(path)
    for array in arrays.values():
        array.flush()
    index = directory / "index.tsv"
    index.write_text("id\toffset\tframes\n" + "".join(
        f"{e.path}\t{offsets[i]}\t{frames[i]}\n" for i, e in enumerate(manifest.entries)), encoding="utf-8")
    return FeatureDump(directory=directory, files=sorted(files), index=index, utterances=len(manifest),
                       frames=int(offsets[-1]), dim=dim, seconds=time.perf_counter() - start)

