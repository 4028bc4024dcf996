"""Decoding CTC emissions: greedy and n-gram beam search, alignment, WER, long-audio transcription.

Modules: ``ctc`` (greedy decoding, word times, forced alignment), ``beam`` (flashlight-text beam search with
KenLM), ``lm`` (ARPA estimation), ``lexicon``, ``wer`` (jiwer scores), ``report`` (result files), ``grid``
(LM weight / word score tuning), ``inference`` (model -> emissions), ``evaluate`` (a subset or a checkpoint
end to end: what `speechssl evaluate` reports and fine-tuning validates with), ``transcribe`` (chunked long
audio), ``features`` (layer-wise dumps), ``plot``, ``factory``. Frame times come from the model's
``FrameGeometry`` (``frame_shift_seconds``).
"""

from speechssl.decoding.beam import BeamSearchConfig, BeamSearchDecoder
from speechssl.decoding.ctc import (
    FRAME_SHIFT_SECONDS,
    GreedyCTCDecoder,
    Hypothesis,
    TokenSpan,
    WordSpan,
    forced_align,
    frame_shift_seconds,
)
from speechssl.decoding.factory import DecoderConfig, build_decoder
from speechssl.decoding.lexicon import Lexicon, lexicon_from_words
from speechssl.decoding.lm import LMBuildConfig, build_arpa
from speechssl.decoding.transcribe import ChunkConfig, Transcript, transcribe
from speechssl.decoding.wer import CorpusScore, ErrorCounts, UtteranceScore, score

__all__ = [
    "FRAME_SHIFT_SECONDS",
    "BeamSearchConfig",
    "BeamSearchDecoder",
    "ChunkConfig",
    "CorpusScore",
    "DecoderConfig",
    "ErrorCounts",
    "GreedyCTCDecoder",
    "Hypothesis",
    "LMBuildConfig",
    "Lexicon",
    "TokenSpan",
    "Transcript",
    "UtteranceScore",
    "WordSpan",
    "build_arpa",
    "build_decoder",
    "forced_align",
    "frame_shift_seconds",
    "lexicon_from_words",
    "score",
    "transcribe",
]
