"""CTC beam search with an n-gram language model, through flashlight-text.

flashlight-text's ``LexiconDecoder`` is the decoder behind fairseq's ``W2lKenLMDecoder`` (used for the
wav2vec 2.0 paper's 4-gram results) and torchaudio's ``ctc_decoder``. We set it up the same way:
- silence token = the word delimiter ``|`` (lexicon spellings end with it), blank from the tokenizer;
- a trie of lexicon spellings, each word scored by its unigram LM score from the start state and
  smeared with ``SmearingMode.MAX`` so partial words are scored by their best completion;
- unknown words scored -inf (``unk_score``), so hypotheses only contain lexicon words;
- ``LexiconFreeDecoder`` with a token (character) LM, or no LM, when no lexicon is wanted.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speechssl.decoding.ctc import (
    FRAME_SHIFT_SECONDS,
    Hypothesis,
    Tokenizer,
    check_emissions,
    emissions_array,
    path_to_hypothesis,
)
from speechssl.decoding.lexicon import Lexicon
from speechssl.decoding.lm import read_arpa_vocabulary

if TYPE_CHECKING:  # torch tensors or numpy arrays are decoded alike; torch is not needed (onnxruntime)
    import torch


@dataclass(kw_only=True)
class BeamSearchConfig:
    """Options of the flashlight beam search (names as in fairseq's and torchaudio's decoders)."""

    beam: int = 50
    """Hypotheses kept after each frame (paper: 500 while tuning, 1500 at test; 50 is typical)."""
    beam_size_token: int | None = None
    """Tokens considered per frame; None = the whole vocabulary."""
    beam_threshold: float = 25.0
    """Hypotheses scoring this much below the best are pruned (fairseq's default 25)."""
    lm_weight: float = 2.0
    """Weight of the LM log-probability (paper tunes it in [0, 5])."""
    word_score: float = -1.0
    """Score added per word (paper tunes it in [-5, 5])."""
    unk_score: float = -math.inf
    """Score of an out-of-lexicon word; -inf keeps hypotheses inside the lexicon."""
    sil_score: float = 0.0
    """Score added for the silence (word delimiter) token."""
    log_add: bool = False
    """Merge equal hypotheses by log-add instead of max."""
    lexicon_free: bool = False
    """Decode without a lexicon; the LM (if any) must then be over tokenizer symbols (``lm build --unit char``)."""

    def validate(self) -> None:
        if self.beam < 1:
            raise ValueError(f"`beam` must be >= 1, got {self.beam}")
        if self.beam_size_token is not None and self.beam_size_token < 1:
            raise ValueError(f"`beam_size_token` must be >= 1 or None, got {self.beam_size_token}")
        if not self.beam_threshold > 0:
            raise ValueError(f"`beam_threshold` must be > 0, got {self.beam_threshold}")
        if not math.isfinite(self.lm_weight):
            raise ValueError(f"`lm_weight` must be finite, got {self.lm_weight}")
        if not math.isfinite(self.word_score):
            raise ValueError(f"`word_score` must be finite, got {self.word_score}")


@contextlib.contextmanager
def _quiet_native_output():
    """KenLM prints its loading progress from C++ straight to file descriptor 2; silence it."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class BeamSearchDecoder:
    """CTC beam search with a KenLM n-gram (ARPA or KenLM binary) and a lexicon, via flashlight-text.

    Args:
        tokenizer: the model's vocabulary; its symbols are the decoder's tokens.
        config: beam search options.
        lm_path: ARPA/binary n-gram; None decodes without an LM (ZeroLM).
        lexicon: word spellings; required unless ``config.lexicon_free``. Build one from the LM's
            words with ``lexicon_from_words(read_arpa_vocabulary(lm_path), tokenizer)``.
        frame_shift: seconds per frame, for word times.
    """

    def __init__(self, tokenizer: Tokenizer, config: BeamSearchConfig, *, lm_path: str | Path | None = None,
                 lexicon: Lexicon | None = None, frame_shift: float = FRAME_SHIFT_SECONDS) -> None:
        from flashlight.lib.text.decoder import SmearingMode, Trie, ZeroLM
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        config.validate()
        if not config.lexicon_free and lexicon is None:
            raise ValueError("a lexicon is required unless `lexicon_free` is set")
        if lm_path is not None and not Path(lm_path).is_file():
            raise FileNotFoundError(f"language model file not found: {lm_path}")
        self.tokenizer = tokenizer
        self.config = config
        self.frame_shift = frame_shift
        self.silence = tokenizer.word_delimiter_index
        self.blank = tokenizer.blank_index
        self.token_dict = Dictionary(list(tokenizer.symbols))
        self._lexicon = lexicon

        if config.lexicon_free:
            self.word_dict = None
            if lm_path is None:
                self.lm = ZeroLM()
            else:
                with _quiet_native_output():
                    self.lm = KenLM(str(lm_path), self.token_dict)
            self.trie = None
            self.unk_word = -1
        else:
            words = [w for w in lexicon.spellings if w != "<unk>"]
            if not words:
                raise ValueError("the lexicon has no words")
            self.word_dict = Dictionary(words + ["<unk>"])
            self.unk_word = self.word_dict.get_index("<unk>")
            self.word_dict.set_default_index(self.unk_word)
            if lm_path is None:
                self.lm = ZeroLM()
            else:
                with _quiet_native_output():
                    self.lm = KenLM(str(lm_path), self.word_dict)
            self.trie = Trie(len(tokenizer.symbols), self.silence)
            start = self.lm.start(False)
            known = set(tokenizer.symbols)
            for word, spellings in lexicon.spellings.items():
                if word == "<unk>":
                    continue
                word_index = self.word_dict.get_index(word)
                _, unigram = self.lm.score(start, word_index)
                for spelling in spellings:
                    missing = [t for t in spelling if t not in known]
                    if missing:
                        raise ValueError(f"lexicon word {word!r} uses tokens {missing} that are not in the "
                                         "model's vocabulary")
                    self.trie.insert([self.token_dict.get_index(t) for t in spelling], word_index, unigram)
            self.trie.smear(SmearingMode.MAX)
        self._decoder = self._make_decoder(config.lm_weight, config.word_score)

    @classmethod
    def from_files(cls, tokenizer: Tokenizer, config: BeamSearchConfig, *, lm_path: str | Path | None,
                   lexicon_path: str | Path | None = None, frame_shift: float = FRAME_SHIFT_SECONDS
                   ) -> BeamSearchDecoder:
        """Lexicon from ``lexicon_path``, or spelled from the ARPA's 1-grams when it is None."""
        from speechssl.decoding.lexicon import lexicon_from_words

        lexicon = None
        if not config.lexicon_free:
            if lexicon_path is not None:
                lexicon = Lexicon.load(lexicon_path)
            elif lm_path is not None:
                lexicon = lexicon_from_words(read_arpa_vocabulary(lm_path), tokenizer)
            else:
                raise ValueError("the lexicon decoder needs a lexicon file or an ARPA LM to spell one from")
        return cls(tokenizer, config, lm_path=lm_path, lexicon=lexicon, frame_shift=frame_shift)

    def _make_decoder(self, lm_weight: float, word_score: float):
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
            LexiconFreeDecoder,
            LexiconFreeDecoderOptions,
        )

        cfg = self.config
        beam_size_token = cfg.beam_size_token or len(self.tokenizer.symbols)
        if cfg.lexicon_free:
            options = LexiconFreeDecoderOptions(
                beam_size=cfg.beam, beam_size_token=beam_size_token, beam_threshold=cfg.beam_threshold,
                lm_weight=lm_weight, sil_score=cfg.sil_score, log_add=cfg.log_add,
                criterion_type=CriterionType.CTC,
            )
            return LexiconFreeDecoder(options, self.lm, self.silence, self.blank, [])
        options = LexiconDecoderOptions(
            beam_size=cfg.beam, beam_size_token=beam_size_token, beam_threshold=cfg.beam_threshold,
            lm_weight=lm_weight, word_score=word_score, unk_score=cfg.unk_score, sil_score=cfg.sil_score,
            log_add=cfg.log_add, criterion_type=CriterionType.CTC,
        )
        # transitions [] (CTC has none); is_token_lm False: the LM scores words.
        return LexiconDecoder(options, self.trie, self.lm, self.silence, self.blank, self.unk_word, [], False)

    def set_weights(self, *, lm_weight: float, word_score: float) -> None:
        """Change LM weight and word score, keeping the loaded LM and trie (for grid search)."""
        if not (math.isfinite(lm_weight) and math.isfinite(word_score)):
            raise ValueError(f"lm_weight and word_score must be finite, got {lm_weight}, {word_score}")
        self.config.lm_weight = lm_weight
        self.config.word_score = word_score
        self._decoder = self._make_decoder(lm_weight, word_score)

    def set_beam(self, beam: int) -> None:
        """Change the beam size, keeping the loaded LM, trie and weights (tune at one beam, test at another)."""
        if beam < 1:
            raise ValueError(f"`beam` must be >= 1, got {beam}")
        self.config.beam = int(beam)
        self._decoder = self._make_decoder(self.config.lm_weight, self.config.word_score)

    def decode(self, emissions: torch.Tensor | np.ndarray,
               lengths: torch.Tensor | np.ndarray | None = None) -> list[Hypothesis]:
        """emissions ``(B, T, V)`` log-probs (torch or numpy), lengths ``(B,)`` -> the best hypothesis per
        utterance."""
        lengths = check_emissions(emissions, lengths)
        if emissions.shape[-1] != len(self.tokenizer.symbols):
            raise ValueError(f"emissions have {emissions.shape[-1]} classes, the tokenizer "
                             f"{len(self.tokenizer.symbols)}")
        emissions = emissions_array(emissions)
        hypotheses = []
        for b, length in enumerate(lengths.tolist()):
            if length == 0:
                hypotheses.append(path_to_hypothesis([], self.tokenizer, frame_shift=self.frame_shift))
                continue
            frames = np.ascontiguousarray(emissions[b, :length])  # (T_b, V), C-contiguous float32 for flashlight
            results = self._decoder.decode(frames.ctypes.data, length, frames.shape[1])
            hypotheses.append(self._to_hypothesis(results[0], length))
        return hypotheses

    def _to_hypothesis(self, result, length: int) -> Hypothesis:
        # result.tokens holds one token per frame plus a silence sentinel at each end (T + 2 entries).
        path = list(result.tokens)[1:1 + length]
        hypothesis = path_to_hypothesis(path, self.tokenizer, score=float(result.score),
                                        frame_shift=self.frame_shift)
        if self.word_dict is not None:
            # Lexicon decoding: the words are the LM's (a lexicon word's spelling could in principle
            # differ from its letters); keep the path's times when the counts agree.
            words = [self.word_dict.get_entry(w) for w in result.words if w >= 0]
            if len(words) == len(hypothesis.words):
                for span, word in zip(hypothesis.words, words):
                    span.word = word
            hypothesis.text = " ".join(words)
        return hypothesis
