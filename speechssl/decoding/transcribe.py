"""Transcribing recordings of any length: overlapping chunks, emissions merged frame-exactly, one decode.

A long recording is cut into chunks of ``chunk_seconds`` that overlap by at least ``overlap_seconds``. Chunk
starts are multiples of the model's frame stride (``FrameGeometry.frame_stride``, from its config), so chunk
frame ``j`` is exactly global frame ``start / frame_stride + j`` (the conv encoder is shift-equivariant by its
total stride). In each overlap the frames of the earlier chunk are kept up to the
middle of the overlap and those of the later chunk after it, so every frame away from a chunk edge sees at
least half the overlap of context on both sides. The merged ``(T, V)`` emissions are decoded once, so a word
that straddles a seam is decoded once: nothing is dropped or repeated, and word times come from one
monotonic frame path.

A BASE-style feature encoder normalises each channel of its first block over the whole input (GroupNorm), so
a chunk alone is a different input from the same span inside the recording. By default every chunk is
normalised with the whole recording's statistics instead (``ChunkConfig.recording_statistics``; one cheap
pass over the waveform): on the long-audio bench (bench/README.md) the words of 20 s chunks then differ from
the unchunked hypothesis about half as often. What remains is the Transformer's attention, which sees only
its chunk.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from speechssl.data.audio import SAMPLE_RATE
from speechssl.decoding.ctc import CTCDecoder, Hypothesis, WordSpan
from speechssl.models.config import FrameGeometry

if TYPE_CHECKING:  # emissions are torch tensors (ModelEmitter) or numpy arrays (the onnxruntime model); this
    import torch  # module never imports torch itself, so the onnxruntime transcriber runs without it

    from speechssl.decoding.inference import EmissionModel

    Frames = torch.Tensor | np.ndarray


@dataclass(kw_only=True)
class ChunkConfig:
    """How to cut long audio."""

    chunk_seconds: float = 20.0
    """Chunk length; 0 or less means no chunking (the whole recording at once)."""
    overlap_seconds: float = 2.0
    """Overlap between consecutive chunks (at least one frame is kept so no frame is lost at a seam)."""
    sample_rate: int = SAMPLE_RATE
    """Sampling rate of the waveforms."""
    batch_size: int = 4
    """Chunks of equal length run through the model together."""
    recording_statistics: bool = True
    """Normalise every chunk with the whole recording's feature-encoder statistics (where the model's encoder
    has a GroupNorm over time), as the unchunked recording is normalised; False: each chunk with its own."""

    def validate(self, geometry: FrameGeometry | None = None) -> None:
        """Check the settings; with the model's ``geometry``, also that a chunk holds at least 4 frames."""
        if self.chunk_seconds > 0:
            if self.overlap_seconds < 0:
                raise ValueError(f"`overlap_seconds` must be >= 0, got {self.overlap_seconds}")
            if self.overlap_seconds >= self.chunk_seconds / 2:
                raise ValueError(f"`overlap_seconds` must be < chunk_seconds / 2 = {self.chunk_seconds / 2}, "
                                 f"got {self.overlap_seconds}")
            if geometry is not None and self.chunk_samples(geometry) < 4 * geometry.frame_stride:
                raise ValueError(f"`chunk_seconds` must give at least 4 frames, got {self.chunk_seconds}")
        if self.sample_rate <= 0:
            raise ValueError(f"`sample_rate` must be > 0, got {self.sample_rate}")
        if self.batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {self.batch_size}")

    def chunk_samples(self, geometry: FrameGeometry) -> int:
        """Chunk length rounded down to whole frames of ``geometry``."""
        stride = geometry.frame_stride
        return int(self.chunk_seconds * self.sample_rate) // stride * stride

    def overlap_samples(self, geometry: FrameGeometry) -> int:
        """Overlap rounded to whole frames, at least one frame: a frame needs a receptive field of samples
        (more than one stride), so chunks that only touch would leave the frame across the seam uncomputed."""
        frames = round(self.overlap_seconds * self.sample_rate / geometry.frame_stride)
        return max(1, frames) * geometry.frame_stride


@dataclass(kw_only=True)
class Chunk:
    """A span of the recording run through the model on its own."""

    start_frame: int
    """Global index of the chunk's first frame."""
    start: int
    """First sample: ``start_frame * frame_stride``."""
    end: int
    """One past the last sample."""


def plan_chunks(num_samples: int, config: ChunkConfig, geometry: FrameGeometry) -> list[Chunk]:
    """Chunk spans covering ``num_samples``: as few chunks as keep every overlap at least ``overlap_seconds``,
    spread evenly (the spare length widens every overlap instead of making the last chunk repeat most of the
    one before); all are ``chunk_seconds`` long but the last, which ends at the end and is at least as long.
    Chunks start on ``geometry``'s frame grid."""
    config.validate(geometry)
    stride = geometry.frame_stride
    size = config.chunk_samples(geometry)
    if config.chunk_seconds <= 0 or num_samples <= size:
        return [Chunk(start_frame=0, start=0, end=num_samples)]
    last = (num_samples - size) // stride  # start frame of the last chunk
    if last == 0:  # less than a frame past one chunk: one chunk
        return [Chunk(start_frame=0, start=0, end=num_samples)]
    hop = (size - config.overlap_samples(geometry)) // stride  # the longest step that keeps the overlap
    steps = -(-last // hop)  # chunks - 1
    step = -(-last // steps)  # <= hop
    starts = [k * step for k in range(steps) if k * step < last] + [last]
    chunks = [Chunk(start_frame=f, start=f * stride, end=f * stride + size) for f in starts]
    chunks[-1].end = num_samples
    return chunks


def merge_emissions(chunks: list[Chunk], emissions: list[Frames], total_frames: int) -> Frames:
    """Per-chunk ``(T_k, V)`` -> ``(total_frames, V)``, cutting each overlap in its middle (torch tensors or
    numpy arrays, returned as the same kind).

    Raises ValueError if the chunks leave a frame uncovered (a gap) or do not end at ``total_frames``.
    """
    if len(chunks) != len(emissions):
        raise ValueError(f"{len(chunks)} chunks but {len(emissions)} emissions")
    pieces = []
    position = 0  # next global frame to fill
    for k, (chunk, frames) in enumerate(zip(chunks, emissions)):
        first, stop = chunk.start_frame, chunk.start_frame + frames.shape[0]
        if k + 1 < len(chunks):
            next_first = chunks[k + 1].start_frame
            if next_first > stop:
                raise ValueError(f"chunks {k} and {k + 1} leave frames {stop}..{next_first - 1} uncovered")
            cut = (next_first + stop) // 2  # middle of the overlap [next_first, stop)
        else:
            cut = stop
        if first > position:
            raise ValueError(f"frame {position} is not covered by any chunk")
        pieces.append(frames[position - first:cut - first])
        position = cut
    if position != total_frames:
        raise ValueError(f"merged {position} frames, expected {total_frames}")
    if isinstance(pieces[0], np.ndarray):
        return np.concatenate(pieces, axis=0)
    return sys.modules["torch"].cat(pieces, dim=0)  # torch tensors: torch is loaded already


@dataclass(kw_only=True)
class Transcript:
    """The transcription of one recording."""

    text: str
    """Words separated by spaces."""
    words: list[WordSpan]
    """Words with start/end times in seconds (monotonic)."""
    duration: float
    """Length of the recording in seconds."""
    num_chunks: int
    """Chunks the recording was cut into."""
    hypothesis: Hypothesis
    """The full decoder output (tokens, token spans, score)."""
    emissions: Frames = field(repr=False)
    """Merged ``(T, V)`` log-probs, for plotting (a torch tensor from the torch model, a numpy array from
    onnxruntime)."""


def chunked_emissions(waveform: np.ndarray, model: EmissionModel, config: ChunkConfig) -> Frames:
    """``(L,)`` waveform -> merged ``(T, V)`` emissions computed chunk by chunk on ``model.geometry``'s grid."""
    chunks = plan_chunks(len(waveform), config, model.geometry)
    per_chunk: list[Frames | None] = [None] * len(chunks)
    extra = {}
    if len(chunks) > 1 and config.recording_statistics and hasattr(model, "waveform_statistics"):
        statistics = model.waveform_statistics(waveform)  # None for a frame-local encoder
        if statistics is not None:
            extra["waveform_statistics"] = statistics
    # Equal-length chunks are batched without padding, so each gives what it would alone.
    by_length: dict[int, list[int]] = {}
    for k, chunk in enumerate(chunks):
        by_length.setdefault(chunk.end - chunk.start, []).append(k)
    for indices in by_length.values():
        for i in range(0, len(indices), config.batch_size):
            group = indices[i:i + config.batch_size]
            batch = np.stack([waveform[chunks[k].start:chunks[k].end] for k in group])  # (b, L_chunk)
            out = model(batch, None, **extra)
            for row, k in enumerate(group):
                per_chunk[k] = out.log_probs[row, :int(out.lengths[row])]  # (T_k, V)
    return merge_emissions(chunks, per_chunk, model.geometry.num_frames(len(waveform)))


def transcribe(waveform: np.ndarray, model: EmissionModel, decoder: CTCDecoder, config: ChunkConfig) -> Transcript:
    """Transcribe a mono waveform ``(L,)`` at ``config.sample_rate`` (already normalised if the model wants).

    Word times are the decoder's (its ``frame_shift``: build it for the model, e.g. ``build_decoder(...,
    frame_shift=frame_shift_seconds(model.geometry))``)."""
    config.validate(model.geometry)
    emissions = chunked_emissions(np.asarray(waveform, dtype=np.float32), model, config)  # (T, V)
    hypothesis = decoder.decode(emissions[None], np.array([emissions.shape[0]]))[0]  # (1, T, V)
    return Transcript(text=hypothesis.text, words=hypothesis.words, duration=len(waveform) / config.sample_rate,
                      num_chunks=len(plan_chunks(len(waveform), config, model.geometry)), hypothesis=hypothesis,
                      emissions=emissions)
