"""Decoding throughput: audio-seconds decoded per wall-clock second, greedy vs KenLM beam search.

    python bench/bench_decoding.py                      # ~5 min of audio, beams 50 and 500
    OMP_NUM_THREADS=1 python bench/bench_decoding.py --seconds 120 --beams 50

Emissions are synthetic but shaped like a fine-tuned model's: 50 frames per second, 32 symbols (the default
English vocabulary), letters of sentences drawn from a random 2,000-word vocabulary held for 1-3 frames
with blanks between, turned into log-probs with Gaussian noise so that some frames are ambiguous. The LM
is a 3-gram built by ``speechssl lm build``'s estimator on 5,000 sentences of the same generator; the
lexicon is spelled from its words. Timing covers decoding only (not the model, not LM loading).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from speechssl.data.tokenizer import LetterTokenizer
from speechssl.decoding.beam import BeamSearchConfig, BeamSearchDecoder
from speechssl.decoding.ctc import GreedyCTCDecoder
from speechssl.decoding.lexicon import lexicon_from_words
from speechssl.decoding.lm import LMBuildConfig, build_arpa
from speechssl.decoding.wer import score

LETTERS = "ETAONIHSRDLUMWCFGYPBVK"


def make_vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 8))))
    return sorted(words)


def make_sentence(rng: random.Random, vocabulary: list[str]) -> str:
    # Zipf-like word choice so the LM has something to learn.
    return " ".join(vocabulary[min(int(rng.paretovariate(1.1)) - 1, len(vocabulary) - 1)]
                    for _ in range(rng.randint(5, 20)))


def make_emissions(sentence: str, tokenizer: LetterTokenizer, gen: torch.Generator, noise: float) -> torch.Tensor:
    frames: list[int] = [tokenizer.blank_index] * 5
    for w, word in enumerate(sentence.split()):
        if w:
            frames += [tokenizer.word_delimiter_index] + [tokenizer.blank_index] * 2
        for letter in word:
            frames += [tokenizer.symbols.index(letter)] * int(torch.randint(1, 4, (1,), generator=gen))
            frames += [tokenizer.blank_index] * int(torch.randint(1, 3, (1,), generator=gen))
    frames += [tokenizer.blank_index] * 5
    logits = torch.randn(len(frames), len(tokenizer), generator=gen) * noise  # (T, V)
    logits[torch.arange(len(frames)), torch.tensor(frames)] += 6.0
    return logits.log_softmax(dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="audio to decode (default 300)")
    parser.add_argument("--beams", default="50,500", help="beam sizes to time (default 50,500)")
    parser.add_argument("--noise", type=float, default=1.4, help="std of the logit noise (default 1.4: greedy WER about 25 %%)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()

    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    tokenizer = LetterTokenizer.default_english()
    vocabulary = make_vocabulary(rng, 2000)
    with tempfile.TemporaryDirectory() as tmp:
        arpa = Path(tmp) / "3gram.arpa"
        built = build_arpa((make_sentence(rng, vocabulary) for _ in range(5000)), arpa, LMBuildConfig(order=3))
        lexicon = lexicon_from_words(built.vocabulary, tokenizer)
        references, emissions, frames = [], [], 0
        while frames < args.seconds * 50:
            sentence = make_sentence(rng, vocabulary)
            references.append(sentence)
            emissions.append(make_emissions(sentence, tokenizer, gen, args.noise))
            frames += emissions[-1].shape[0]
        audio = frames / 50
        ids = [str(i) for i in range(len(references))]
        rows = []

        greedy = GreedyCTCDecoder(tokenizer)
        start = time.perf_counter()
        hyps = [greedy.decode(e[None])[0].text for e in emissions]
        seconds = time.perf_counter() - start
        rows.append({"decoder": "greedy", "beam": None, "seconds": seconds, "x_real_time": audio / seconds,
                     "wer": 100 * score(ids, references, hyps).wer})
        for beam in [int(b) for b in args.beams.split(",") if b.strip()]:
            decoder = BeamSearchDecoder(tokenizer, BeamSearchConfig(beam=beam, lm_weight=2.0, word_score=-1.0),
                                        lm_path=arpa, lexicon=lexicon)
            start = time.perf_counter()
            hyps = [decoder.decode(e[None])[0].text for e in emissions]
            seconds = time.perf_counter() - start
            rows.append({"decoder": "kenlm 3-gram + lexicon", "beam": beam, "seconds": seconds,
                         "x_real_time": audio / seconds, "wer": 100 * score(ids, references, hyps).wer})

    print(f"{len(emissions)} utterances, {audio:.0f} s of audio ({frames} frames, vocab {len(tokenizer)}), "
          f"LM: {built.ngram_counts} n-grams, lexicon {len(lexicon)} words, torch threads {torch.get_num_threads()}")
    print(f"{'decoder':<24} {'beam':>5} {'seconds':>8} {'audio-s/s':>10} {'WER %':>6}")
    for r in rows:
        print(f"{r['decoder']:<24} {r['beam'] or '-':>5} {r['seconds']:>8.2f} {r['x_real_time']:>10.0f} "
              f"{r['wer']:>6.2f}")
    if args.json:
        args.json.write_text(json.dumps({"audio_seconds": audio, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
