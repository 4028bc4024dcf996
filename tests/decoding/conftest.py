"""Shared fixtures for decoding tests: the default tokenizer and hand-built emissions."""

from __future__ import annotations

import pytest
import torch

from speechssl.data.tokenizer import LetterTokenizer
from speechssl.models.config import Wav2Vec2Config

# wav2vec 2.0's frame geometry (320-sample stride, 400-sample receptive field), as its config gives it
GEOMETRY = Wav2Vec2Config().geometry


@pytest.fixture
def tokenizer() -> LetterTokenizer:
    return LetterTokenizer.default_english()


def emissions_from_frames(tokenizer: LetterTokenizer, frames: list[str | dict[str, float]],
                          *, floor: float = -12.0) -> torch.Tensor:
    """Log-probs ``(T, V)``: each frame is a symbol (``"-"`` = blank) taking almost all the mass, or a dict
    symbol -> probability shared among a few symbols (ambiguous frames)."""
    vocab = len(tokenizer.symbols)
    logits = torch.full((len(frames), vocab), floor)
    for t, frame in enumerate(frames):
        spec = {frame: 1.0} if isinstance(frame, str) else frame
        for symbol, prob in spec.items():
            index = tokenizer.blank_index if symbol == "-" else tokenizer.symbols.index(symbol)
            logits[t, index] = torch.log(torch.tensor(prob))
    return logits.log_softmax(dim=-1)


def frames_for_text(text: str, *, repeat: int = 2) -> list[str]:
    """``"HI YOU"`` -> each letter for ``repeat`` frames, then a blank; ``|`` between words; blank edges."""
    frames: list[str] = ["-"]
    for w, word in enumerate(text.split()):
        if w:
            frames += ["|", "-"]
        for letter in word:
            frames += [letter] * repeat + ["-"]
    return frames


@pytest.fixture
def make_emissions(tokenizer):
    """``make_emissions(frames)`` -> ``(T, V)`` log-probs (see ``emissions_from_frames``)."""
    return lambda frames, **kw: emissions_from_frames(tokenizer, frames, **kw)


@pytest.fixture
def text_frames():
    """``text_frames("HI YOU")`` -> a frame list spelling the text (see ``frames_for_text``)."""
    return frames_for_text


class FakeEmissionModel:
    """A stand-in for a CTC model: frame ``f`` reads the sample in the middle of its 400-sample window
    (``320 f + 200``, inside no other window) as a token id, plus a small chunk-dependent term that mimics
    the context a transformer sees (it changes scores, never the arg-max). Counts its calls."""

    geometry = GEOMETRY

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.calls = 0

    def __call__(self, waveforms: torch.Tensor, padding_mask: torch.Tensor | None = None):
        from speechssl.decoding.inference import Emissions

        self.calls += 1
        waveforms = torch.as_tensor(waveforms)  # transcribe passes numpy batches, as to the onnxruntime model
        frames = GEOMETRY.num_frames(waveforms.shape[1])
        stride, centre = GEOMETRY.frame_stride, GEOMETRY.receptive_field // 2
        centres = waveforms[:, centre:centre + stride * frames:stride]  # (B, T)
        tokens = (centres * 64).round().long().clamp(0, self.vocab_size - 1)  # (B, T)
        logits = torch.full((waveforms.shape[0], frames, self.vocab_size), -8.0)
        logits.scatter_(2, tokens.unsqueeze(-1), 0.0)
        context = torch.sigmoid(waveforms.mean(dim=1))  # (B,)
        logits[:, :, 5] += 0.5 * context[:, None]
        lengths = torch.full((waveforms.shape[0],), frames, dtype=torch.long)
        return Emissions(log_probs=logits.log_softmax(-1), lengths=lengths)


def waveform_for_tokens(tokens: list[int], seed: int = 0):
    """A waveform whose frame ``f`` encodes ``tokens[f]`` for FakeEmissionModel (noise elsewhere)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    wave = rng.uniform(-0.5, 0.5, size=320 * len(tokens) + 80).astype(np.float32)
    wave[200:200 + 320 * len(tokens):320] = np.asarray(tokens, dtype=np.float32) / 64
    return wave


@pytest.fixture
def fake_model(tokenizer) -> FakeEmissionModel:
    return FakeEmissionModel(len(tokenizer))


@pytest.fixture
def fake_waveform():
    """``fake_waveform(tokens)`` -> waveform encoding one token per frame for ``fake_model``."""
    return waveform_for_tokens


class FakeCTCModule(torch.nn.Module):
    """A ``Wav2Vec2ForCTC`` stand-in with the same call contract, built on FakeEmissionModel."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.config = Wav2Vec2Config()  # the geometry its emitter reads
        self.emit = FakeEmissionModel(vocab_size)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, waveforms, padding_mask=None):
        from types import SimpleNamespace

        out = self.emit(waveforms)
        samples = waveforms.shape[1] - (padding_mask.sum(1) if padding_mask is not None else 0)
        lengths = torch.tensor([GEOMETRY.num_frames(int(n)) for n in torch.as_tensor(samples).reshape(-1).tolist()])
        lengths = lengths.expand(waveforms.shape[0]) if lengths.numel() == 1 else lengths
        return SimpleNamespace(logits=out.log_probs, padding_mask=None, lengths=lengths)


@pytest.fixture
def fake_checkpoint(monkeypatch, tokenizer, tmp_path):
    """A checkpoint path whose ``load_model`` yields FakeCTCModule (the real loader is patched out)."""
    from types import SimpleNamespace

    import speechssl.interop

    path = tmp_path / "fake.pt"
    path.write_bytes(b"fake")

    def load_model(src):
        assert str(src) == str(path)
        model = FakeCTCModule(len(tokenizer))
        return SimpleNamespace(model=model, config=model.config, task="ctc", tokenizer=tokenizer)

    monkeypatch.setattr(speechssl.interop, "load_model", load_model, raising=False)
    return path
