"""One place that turns decoder settings into a decoder (greedy or flashlight beam search)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from speechssl.decoding.beam import BeamSearchConfig, BeamSearchDecoder
from speechssl.decoding.ctc import FRAME_SHIFT_SECONDS, CTCDecoder, GreedyCTCDecoder, Tokenizer

DECODERS = ("viterbi", "kenlm")


@dataclass(kw_only=True)
class DecoderConfig:
    """Which decoder, and its files."""

    decoder: str = "viterbi"
    """``viterbi`` (greedy arg-max, no LM) or ``kenlm`` (flashlight beam search with an n-gram)."""
    lm: Path | None = None
    """ARPA or KenLM binary; required for ``kenlm`` unless lexicon-free."""
    lexicon: Path | None = None
    """Lexicon file; default: spelled from the ARPA's 1-grams."""
    beam: BeamSearchConfig = field(default_factory=BeamSearchConfig)
    """Beam search options (``kenlm`` only)."""

    def validate(self) -> None:
        """Checks names and that the files exist, before any model is loaded."""
        if self.decoder not in DECODERS:
            raise ValueError(f"`decoder` must be one of {DECODERS}, got {self.decoder!r}")
        if self.decoder == "kenlm":
            self.beam.validate()
            if self.lm is None and not self.beam.lexicon_free:
                raise ValueError("--lm: the kenlm decoder needs a language model file (or --lexicon-free)")
        if self.lm is not None and not Path(self.lm).is_file():
            raise FileNotFoundError(f"--lm: file not found: {self.lm}")
        if self.lexicon is not None and not Path(self.lexicon).is_file():
            raise FileNotFoundError(f"--lexicon: file not found: {self.lexicon}")

    def describe(self) -> str:
        """A short name for result tables (icefall's ``settings`` column)."""
        if self.decoder == "viterbi":
            return "viterbi"
        b = self.beam
        kind = "lexfree" if b.lexicon_free else "kenlm"
        return f"{kind}_beam{b.beam}_lmw{b.lm_weight:g}_ws{b.word_score:g}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"decoder": self.decoder}
        if self.decoder == "kenlm":
            out.update(lm=str(self.lm) if self.lm else None, lexicon=str(self.lexicon) if self.lexicon else None,
                       **{k: (v if v != float("-inf") else "-inf") for k, v in asdict(self.beam).items()})
        return out


def build_decoder(config: DecoderConfig, tokenizer: Tokenizer,
                  *, frame_shift: float = FRAME_SHIFT_SECONDS) -> CTCDecoder:
    """A greedy decoder or a flashlight beam-search decoder with its LM and lexicon loaded."""
    config.validate()
    if config.decoder == "viterbi":
        return GreedyCTCDecoder(tokenizer, frame_shift=frame_shift)
    return BeamSearchDecoder.from_files(tokenizer, config.beam, lm_path=config.lm, lexicon_path=config.lexicon,
                                        frame_shift=frame_shift)
