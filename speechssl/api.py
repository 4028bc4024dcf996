"""The Python API: load a model, transcribe audio with word times, get layer-wise features.

    import speechssl

    asr = speechssl.load("exp/ft/checkpoints/checkpoint_best.pt")   # or an export folder (no torch needed)
    result = asr.transcribe("talk.wav")                              # a path, a numpy array, or a list of them
    print(result.text, [(w.word, round(w.start, 2)) for w in result.words])

Two backends behind one interface: ``torch`` (a speechssl checkpoint, a Hugging Face directory or a fairseq
.pt, run by ``ModelEmitter``) and ``onnx`` (a folder written by ``speechssl export``, run by onnxruntime;
this module and that path import no torch). Both transcribe through ``speechssl.decoding.transcribe``: long
audio is cut into overlapping chunks whose emissions are merged frame-exactly before one greedy or KenLM
decode, so the two give the same words wherever their emissions agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechssl.data.audio import SAMPLE_RATE, load_audio, resample
from speechssl.decoding.ctc import frame_shift_seconds
from speechssl.decoding.factory import DecoderConfig, build_decoder
from speechssl.decoding.transcribe import ChunkConfig, Transcript, transcribe
from speechssl.deploy.bundle import is_bundle
from speechssl.models.config import FrameGeometry

BACKENDS = ("torch", "onnx")

Audio = str | Path | np.ndarray
"""A file path, or a mono float waveform ``(L,)`` (at ``sample_rate``, the model's by default)."""


@dataclass(kw_only=True)
class Features:
    """Layer-wise representations of one recording."""

    layers: list[int]
    """Which hidden states (0: the Transformer's input, k: the output of layer k)."""
    states: np.ndarray
    """``(len(layers), T, D)`` float32."""
    frame_shift: float
    """Seconds per frame."""


class Recognizer:
    """A loaded CTC model with its decoder; build it with ``speechssl.load``."""

    def __init__(self, *, backend: str, emitter: Any, tokenizer: Any, decoder_config: DecoderConfig,
                 sample_rate: int, source: str, num_layers: int) -> None:
        self.backend = backend
        """``torch`` or ``onnx``."""
        self.emitter = emitter
        """Waveforms -> emissions (``ModelEmitter`` or ``OnnxEmitter``)."""
        self.tokenizer = tokenizer
        self.decoder_config = decoder_config
        self.geometry: FrameGeometry = emitter.geometry
        """Where the model's frames sit on its samples (the model config's, or the export folder's copy)."""
        self.sample_rate = sample_rate
        self.decoder = build_decoder(decoder_config, tokenizer,
                                     frame_shift=frame_shift_seconds(self.geometry, sample_rate))
        self.source = source
        self.num_layers = num_layers
        self._features_runner: Any = None

    def __repr__(self) -> str:
        return (f"Recognizer({self.source!r}, backend={self.backend!r}, decoder={self.decoder_config.describe()!r}, "
                f"{len(self.tokenizer)} symbols)")

    # ------------------------------------------------------------------ audio
    def waveform(self, audio: Audio, sample_rate: int | None = None) -> np.ndarray:
        """A path or an array -> the mono float32 waveform at the model's rate, prepared as the model wants."""
        if isinstance(audio, (str, Path)):
            if sample_rate is not None:
                raise ValueError("`sample_rate` is for numpy arrays; a file's rate is read from the file")
            samples = load_audio(audio, self.sample_rate)
        else:
            samples = np.asarray(audio, dtype=np.float32)
            if samples.ndim != 1:
                raise ValueError(f"expected a mono waveform (L,), got an array of shape {samples.shape}")
            rate = sample_rate or self.sample_rate
            if rate != self.sample_rate:
                samples = resample(samples, rate, self.sample_rate)
        if len(samples) < self.geometry.receptive_field:
            name = audio if isinstance(audio, (str, Path)) else "audio"
            raise ValueError(f"{name}: {len(samples)} samples are shorter than one frame of the model "
                             f"({self.geometry.receptive_field} samples at {self.sample_rate} Hz)")
        return self.emitter.prepare(samples)

    def chunking(self, chunk_seconds: float, overlap_seconds: float) -> ChunkConfig:
        config = ChunkConfig(chunk_seconds=chunk_seconds, overlap_seconds=overlap_seconds,
                             sample_rate=self.sample_rate)
        config.validate(self.geometry)
        return config

    # ------------------------------------------------------------------ transcription
    def transcribe(self, audio: Audio | Sequence[Audio], *, sample_rate: int | None = None,
                   chunk_seconds: float = 20.0, overlap_seconds: float = 2.0) -> Transcript | list[Transcript]:
        """Transcribe one recording (a path or an array) or a list of them.

        Returns a ``Transcript`` per recording: ``text``, ``words`` (``word``, ``start``, ``end`` in seconds),
        ``duration``, ``num_chunks``, ``hypothesis``, ``emissions``. Long recordings are cut into
        ``chunk_seconds`` chunks overlapping by at least ``overlap_seconds`` (0: the whole recording at once).
        """
        chunking = self.chunking(chunk_seconds, overlap_seconds)
        if _is_many(audio):
            return [transcribe(self.waveform(a, sample_rate), self.emitter, self.decoder, chunking) for a in audio]
        return transcribe(self.waveform(audio, sample_rate), self.emitter, self.decoder, chunking)

    # ------------------------------------------------------------------ features
    def features(self, audio: Audio | Sequence[Audio], *, layers: Sequence[int] | None = None,
                 sample_rate: int | None = None) -> Features | list[Features]:
        """Hidden states of one recording (or a list): ``layers`` (default all, 0 .. num_layers) of the whole
        recording at once (no chunking). The onnx backend needs an export made with ``--features``."""
        layers = list(range(self.num_layers + 1)) if layers is None else [int(k) for k in layers]
        bad = [k for k in layers if not 0 <= k <= self.num_layers]
        if bad or not layers:
            raise ValueError(f"`layers` must be in [0, {self.num_layers}] (0 = Transformer input), got {layers}")
        if _is_many(audio):
            return [self._features(self.waveform(a, sample_rate), layers) for a in audio]
        return self._features(self.waveform(audio, sample_rate), layers)

    def _features(self, waveform: np.ndarray, layers: list[int]) -> Features:
        if self.backend == "onnx":
            if self._features_runner is None:
                from speechssl.deploy.runtime import OnnxFeatures

                self._features_runner = OnnxFeatures(self.emitter)
            states, lengths = self._features_runner(waveform[None, :])  # (N + 1, 1, T, D)
            states = states[layers, 0, :int(lengths[0])]  # (len(layers), T, D)
        else:
            import torch

            from speechssl.models.precision import autocast

            encoder = self.emitter.model.encoder
            with torch.inference_mode(), autocast(self.emitter.precision, self.emitter.device):
                out = encoder(torch.from_numpy(np.ascontiguousarray(waveform))[None].to(self.emitter.device),
                              return_hidden_states=True)
            states = np.stack([out.hidden_states[k][0].float().cpu().numpy() for k in layers])  # (n, T, D)
        return Features(layers=layers, states=np.asarray(states, dtype=np.float32),
                        frame_shift=frame_shift_seconds(self.geometry, self.sample_rate))


def _is_many(audio: Any) -> bool:
    return isinstance(audio, (list, tuple))


def load(source: str | Path, *, backend: str | None = None, decoder: str | None = None,
         lm: str | Path | None = None, lexicon: str | Path | None = None, beam: dict[str, Any] | None = None,
         device: str = "cpu", precision: str = "fp32", threads: int | None = None,
         dictionary: str | Path | None = None, tokenizer: Any = None) -> Recognizer:
    """Load a CTC model for transcription.

    Args:
        source: a speechssl checkpoint (.pt), a Hugging Face model directory, a fairseq .pt, or a folder
            written by ``speechssl export`` (then onnxruntime runs it and torch is not imported).
        backend: ``torch`` or ``onnx``; default: ``onnx`` for an export folder, else ``torch``.
        decoder: ``viterbi`` (greedy) or ``kenlm`` (beam search with ``lm``); default: the export folder's
            setting, else ``viterbi``.
        lm, lexicon: n-gram and lexicon files for ``kenlm`` (default: the export folder's, if any).
        beam: ``BeamSearchConfig`` fields (``beam``, ``lm_weight``, ``word_score``, ...).
        device, precision: torch backend only (``ModelEmitter``: fp32, bf16, fp16, auto).
        threads: onnx backend only: onnxruntime intra-op threads (default one per core).
        dictionary: fairseq CTC checkpoints only: their dict.ltr.txt.
        tokenizer: torch backend only: a ``LetterTokenizer`` replacing the checkpoint's vocabulary.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"model not found: {source}")
    backend = backend or ("onnx" if is_bundle(source) else "torch")
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}")
    if backend == "onnx":
        return _load_onnx(source, decoder=decoder, lm=lm, lexicon=lexicon, beam=beam, threads=threads)
    if is_bundle(source):
        raise ValueError(f"{source} is an ONNX export folder: load it with backend='onnx'")
    from speechssl.decoding.inference import load_ctc

    if dictionary is not None:
        from speechssl.data.tokenizer import LetterTokenizer

        tokenizer = LetterTokenizer.from_fairseq_dict(dictionary)
    loaded = load_ctc(source, device=device, precision=precision, tokenizer=tokenizer)
    return Recognizer(backend="torch", emitter=loaded.emitter, tokenizer=loaded.tokenizer,
                      decoder_config=_decoder_config(decoder or "viterbi", lm, lexicon, beam),
                      sample_rate=SAMPLE_RATE, source=str(source), num_layers=loaded.config.encoder_layers)


def _decoder_config(decoder: str, lm: str | Path | None, lexicon: str | Path | None,
                    beam: dict[str, Any] | None) -> DecoderConfig:
    from speechssl.decoding.beam import BeamSearchConfig

    config = DecoderConfig(decoder=decoder, lm=Path(lm) if lm is not None else None,
                           lexicon=Path(lexicon) if lexicon is not None else None,
                           beam=BeamSearchConfig(**(beam or {})))
    config.validate()
    return config


def bundle_decoder_config(folder: Path, settings: Any, *, decoder: str | None = None, lm: str | Path | None = None,
                          lexicon: str | Path | None = None, beam: dict[str, Any] | None = None) -> DecoderConfig:
    """An export folder's decoder settings, with anything the caller gives taking precedence."""
    lm = lm if lm is not None else (folder / settings.lm if settings.lm else None)
    lexicon = lexicon if lexicon is not None else (folder / settings.lexicon if settings.lexicon else None)
    return _decoder_config(decoder or settings.decoder, lm, lexicon, {**settings.beam, **(beam or {})})


def _load_onnx(folder: Path, *, decoder: str | None, lm: str | Path | None, lexicon: str | Path | None,
               beam: dict[str, Any] | None, threads: int | None) -> Recognizer:
    from speechssl.deploy.runtime import OnnxEmitter

    emitter = OnnxEmitter(folder, threads=threads)
    config = emitter.config
    return Recognizer(backend="onnx", emitter=emitter, tokenizer=config.make_tokenizer(),
                      decoder_config=bundle_decoder_config(folder, config.decoder, decoder=decoder, lm=lm,
                                                           lexicon=lexicon, beam=beam),
                      sample_rate=config.sample_rate, source=str(folder), num_layers=config.num_layers)
