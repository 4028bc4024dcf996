import math
import random
from itertools import pairwise

import pytest
import torch

from speechssl.decoding.ctc import GreedyCTCDecoder
from speechssl.decoding.plot import plot_alignment
from speechssl.decoding.transcribe import Chunk, ChunkConfig, merge_emissions, plan_chunks, transcribe
from speechssl.decoding.wer import score
from speechssl.models.config import Wav2Vec2Config

GEOMETRY = Wav2Vec2Config().geometry  # 320-sample stride, 400-sample receptive field
num_frames = GEOMETRY.num_frames

WORDS = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL", "INDIA", "KILO", "LIMA"]


def _long_recording(tokenizer, text_frames, seconds: float, seed: int = 0):
    rng = random.Random(seed)
    frames: list[str] = []
    words: list[str] = []
    while len(frames) < seconds * 50 - 40:
        word = rng.choice(WORDS)
        words.append(word)
        frames += text_frames(word, repeat=rng.choice([1, 2, 3]))[:-1] + ["|"] * rng.choice([1, 3])
    frames += ["-"] * (int(seconds * 50) - len(frames))
    tokens = [tokenizer.blank_index if f == "-" else tokenizer.symbols.index(f) for f in frames]
    return " ".join(words), tokens


def test_chunked_transcription_equals_unchunked_with_monotonic_times(tokenizer, text_frames, fake_model,
                                                                      fake_waveform):
    reference, tokens = _long_recording(tokenizer, text_frames, seconds=180)
    wave = fake_waveform(tokens)
    decoder = GreedyCTCDecoder(tokenizer)
    whole = transcribe(wave, fake_model, decoder, ChunkConfig(chunk_seconds=0))
    chunked = transcribe(wave, fake_model, decoder, ChunkConfig(chunk_seconds=20, overlap_seconds=2))
    assert whole.num_chunks == 1 and chunked.num_chunks == 10
    assert whole.text == reference  # the fake model is exact, so the full decode is the reference
    assert chunked.text == whole.text
    assert score(["x"], [whole.text], [chunked.text]).wer == 0.0
    assert [(w.word, w.start, w.end) for w in chunked.words] == [(w.word, w.start, w.end) for w in whole.words]
    starts = [w.start for w in chunked.words]
    assert all(w.start < w.end for w in chunked.words)
    assert all(a.end <= b.start for a, b in zip(chunked.words, chunked.words[1:]))
    assert starts == sorted(starts) and chunked.words[-1].end <= chunked.duration
    assert chunked.emissions.shape == (num_frames(len(wave)), len(tokenizer))
    assert torch.equal(chunked.emissions.argmax(-1), whole.emissions.argmax(-1))


@pytest.mark.parametrize("seconds", [0.5, 20.0, 20.01, 20.03, 33.3, 61.0, 182.4, 180.28])
def test_chunk_plan_covers_every_frame_once(seconds, tokenizer):
    config = ChunkConfig(chunk_seconds=20, overlap_seconds=1.5)
    samples = int(seconds * 16000)
    chunks = plan_chunks(samples, config, GEOMETRY)
    assert chunks[0].start == 0 and chunks[-1].end == samples
    assert all(c.start % 320 == 0 and c.start == 320 * c.start_frame for c in chunks)
    size, overlap = config.chunk_samples(GEOMETRY), config.overlap_samples(GEOMETRY)
    assert all(c.end - c.start == size for c in chunks[:-1])
    assert all(b.start > a.start and a.end - b.start >= overlap for a, b in pairwise(chunks))
    # The fewest chunks that keep the overlap: one more would be needed only past this length.
    last_start = max(0, samples - size) // 320 * 320
    hop = size - overlap
    assert len(chunks) == 1 + math.ceil(last_start / hop)
    # Tag every frame of every chunk with its global index: the merge must give 0..T-1 in order.
    per_chunk = [torch.arange(c.start_frame, c.start_frame + num_frames(c.end - c.start)).float()[:, None]
                 for c in chunks]
    merged = merge_emissions(chunks, per_chunk, num_frames(samples))
    assert merged[:, 0].tolist() == list(range(num_frames(samples)))


def test_merge_reports_a_gap():
    chunks = [Chunk(start_frame=0, start=0, end=3200), Chunk(start_frame=20, start=6400, end=9600)]
    with pytest.raises(ValueError, match="uncovered"):
        merge_emissions(chunks, [torch.zeros(9, 2), torch.zeros(9, 2)], 29)


def test_chunk_config_validation():
    with pytest.raises(ValueError, match="overlap_seconds"):
        ChunkConfig(chunk_seconds=4, overlap_seconds=3).validate()
    with pytest.raises(ValueError, match="batch_size"):
        ChunkConfig(batch_size=0).validate()


def test_plot_writes_a_png(tmp_path, tokenizer, text_frames, fake_model, fake_waveform):
    _, tokens = _long_recording(tokenizer, text_frames, seconds=3)
    result = transcribe(fake_waveform(tokens), fake_model, GreedyCTCDecoder(tokenizer), ChunkConfig())
    path = plot_alignment(result.emissions, result.hypothesis, tokenizer, tmp_path / "a.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
