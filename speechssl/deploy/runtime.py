"""Running an exported model with onnxruntime alone: numpy, soundfile and onnxruntime, never torch.

``OnnxEmitter`` is the onnxruntime twin of ``speechssl.decoding.inference.ModelEmitter``: the same call
(``waveforms (B, L)``, ``padding_mask (B, L)`` True where padded, optional whole-recording statistics ->
log-softmax emissions and valid lengths), so ``speechssl.decoding.transcribe`` chunks, merges and decodes for
it exactly as for the torch model (greedy or KenLM beam search, word times).

A padded batch gives every utterance what it gets alone: the graph takes each row's valid length, computes
the waveform block's GroupNorm statistics over that row's own frames and masks padded frames out of
attention (``speechssl.deploy.graph``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechssl.data.audio import normalize_waveform
from speechssl.deploy.bundle import ExportedModelConfig, read_bundle_config


@dataclass(frozen=True, kw_only=True)
class WindowStatistics:
    """Mean and covariance of a recording's (k,)-sample windows (the waveform block's kernel and stride), in
    fp64: what the graph's ``window_mean`` / ``window_cov`` inputs take (``WaveformStatistics`` in numpy)."""

    mean: np.ndarray
    """(k,) mean window."""
    cov: np.ndarray
    """(k, k) biased covariance of the windows."""
    frames: int
    """Windows they were taken over."""


def window_statistics(waveform: np.ndarray, kernel: int, stride: int, *,
                      block_frames: int = 1 << 18) -> WindowStatistics:
    """Mean and covariance of the (k,) windows of a (L,) waveform, as ``waveform_window_statistics`` computes
    them (shifted by the waveform's mean, summed in blocks of ``block_frames`` windows, fp64).

    Raises ValueError when the waveform is shorter than one window.
    """
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"waveform must be (L,), got shape {x.shape}")
    frames = (len(x) - kernel) // stride + 1 if len(x) >= kernel else 0
    if frames < 1:
        raise ValueError(f"a waveform of {len(x)} samples has no window of {kernel} samples")
    shift = x.mean()  # sums of shifted windows: no cancellation from a DC offset
    total = np.zeros(kernel)
    outer = np.zeros((kernel, kernel))
    for first in range(0, frames, block_frames):
        last = min(frames, first + block_frames)  # windows [first, last)
        span = x[first * stride:(last - 1) * stride + kernel] - shift
        windows = np.lib.stride_tricks.sliding_window_view(span, kernel)[::stride]  # (n, k)
        total += windows.sum(0)
        outer += windows.T @ windows
    mean = total / frames
    cov = outer / frames - np.outer(mean, mean)
    return WindowStatistics(mean=mean + shift, cov=cov, frames=frames)


@dataclass(kw_only=True)
class OnnxEmissions:
    """CTC log-probabilities of a batch (``speechssl.decoding.inference.Emissions`` in numpy)."""

    log_probs: np.ndarray
    """``(B, T, V)`` float32 log-softmax over the vocabulary."""
    lengths: np.ndarray
    """``(B,)`` int64 valid frames per utterance."""


def session_options(threads: int | None = None):
    """onnxruntime session options: every graph optimisation, ``threads`` intra-op threads (None: one per
    core, onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        if threads < 1:
            raise ValueError(f"`threads` must be >= 1, got {threads}")
        options.intra_op_num_threads = threads
    return options


class OnnxEmitter:
    """An export folder's CTC graph in an onnxruntime session, called like ``ModelEmitter``.

    Args:
        folder: what ``speechssl export`` wrote.
        threads: intra-op threads (None: onnxruntime's default, one per core).
    """

    def __init__(self, folder: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        self.config: ExportedModelConfig = read_bundle_config(self.folder)
        self.session = ort.InferenceSession(str(self.folder / self.config.model_file), session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self.geometry = self.config.geometry  # the model config's, as the export wrote it
        """Where the frames sit on the samples (``EmissionModel.geometry``)."""
        self.normalize = self.config.normalize
        self.precision = self.config.precision
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != list(self.config.inputs):
            raise ValueError(f"{self.folder / self.config.model_file}: graph inputs {inputs} differ from "
                             f"config.json's {self.config.inputs}")

    def feeds(self, waveforms: np.ndarray, padding_mask: np.ndarray | None,
              waveform_statistics: WindowStatistics | None) -> dict[str, np.ndarray]:
        """The graph's inputs for a batch (validated as the torch model validates its input)."""
        waveforms = np.ascontiguousarray(np.asarray(waveforms, dtype=np.float32))
        if waveforms.ndim != 2:
            raise ValueError(f"waveforms must be (B, L), got shape {waveforms.shape}")
        batch, samples = waveforms.shape
        if padding_mask is None:
            lengths = np.full((batch,), samples, dtype=np.int64)
        else:
            padding_mask = np.asarray(padding_mask, dtype=bool)
            if padding_mask.shape != waveforms.shape:
                raise ValueError(f"padding_mask {padding_mask.shape} must match waveforms {waveforms.shape}")
            lengths = samples - padding_mask.sum(1).astype(np.int64)
        short = lengths[lengths < self.geometry.receptive_field]
        if len(short):
            raise ValueError(f"utterances of {short.tolist()} samples are shorter than the receptive field "
                             f"({self.geometry.receptive_field} samples); drop or pad them before the model")
        feeds = {"waveforms": waveforms, "lengths": lengths}
        if self.config.window_kernel is not None:
            k = self.config.window_kernel
            if waveform_statistics is None:  # each row's own statistics, computed in the graph
                feeds.update(window_mean=np.zeros(k, np.float32), window_cov=np.zeros((k, k), np.float32),
                             use_window_statistics=np.zeros((), np.float32))
            else:
                feeds.update(window_mean=waveform_statistics.mean.astype(np.float32),
                             window_cov=waveform_statistics.cov.astype(np.float32),
                             use_window_statistics=np.ones((), np.float32))
        return feeds

    def __call__(self, waveforms: np.ndarray, padding_mask: np.ndarray | None = None, *,
                 waveform_statistics: WindowStatistics | None = None) -> OnnxEmissions:
        """waveforms ``(B, L)``, padding_mask ``(B, L)`` True where padded -> emissions ``(B, T, V)``;
        ``waveform_statistics`` (of the recording these are chunks of) replace each row's own in the waveform
        block's GroupNorm."""
        log_probs, lengths = self.session.run(list(self.config.outputs),
                                              self.feeds(waveforms, padding_mask, waveform_statistics))
        return OnnxEmissions(log_probs=log_probs, lengths=lengths.astype(np.int64))

    def waveform_statistics(self, waveform: np.ndarray) -> WindowStatistics | None:
        """The statistics of a whole ``(L,)`` recording its chunks should be normalised with, or None when the
        graph normalises each frame alone."""
        if self.config.window_kernel is None:
            return None
        return window_statistics(waveform, self.config.window_kernel, self.config.window_stride)

    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        """Per-recording preprocessing (normalisation when the model was trained with it)."""
        return normalize_waveform(waveform) if self.normalize else waveform


class OnnxFeatures:
    """An export folder's hidden-states graph (``speechssl export --features``)."""

    def __init__(self, emitter: OnnxEmitter, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        config = emitter.config
        if config.features_file is None:
            raise ValueError(f"{emitter.folder}: exported without the features graph; export again with "
                             "--features, or use the torch backend")
        self.emitter = emitter
        self.session = ort.InferenceSession(str(emitter.folder / config.features_file), session_options(threads),
                                            providers=["CPUExecutionProvider"])

    def __call__(self, waveforms: np.ndarray, padding_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """-> hidden states ``(N + 1, B, T, D)`` and valid frames ``(B,)``."""
        states, lengths = self.session.run(["hidden_states", "output_lengths"],
                                           self.emitter.feeds(waveforms, padding_mask, None))
        return states, lengths.astype(np.int64)
