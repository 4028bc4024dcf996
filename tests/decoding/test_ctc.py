import pytest
import torch

from speechssl.decoding.ctc import FRAME_SHIFT_SECONDS, GreedyCTCDecoder, collapse_path, forced_align


def test_greedy_decodes_hand_built_emissions(tokenizer, make_emissions, text_frames):
    frames = text_frames("HELLO WORLD")
    emissions = make_emissions(frames).unsqueeze(0)  # (1, T, V)
    hyp = GreedyCTCDecoder(tokenizer).decode(emissions)[0]
    # The doubled L of HELLO survives because a blank separates the two L's.
    assert hyp.text == "HELLO WORLD"
    assert tokenizer.decode(hyp.tokens) == "HELLO WORLD"
    assert [w.word for w in hyp.words] == ["HELLO", "WORLD"]


def test_greedy_word_times_are_first_and_last_frames(tokenizer, make_emissions):
    frames = ["-", "-", "H", "H", "I", "-", "|", "-", "-", "Y", "O", "O", "U", "-"]
    hyp = GreedyCTCDecoder(tokenizer).decode(make_emissions(frames).unsqueeze(0))[0]
    hi, you = hyp.words
    assert (hi.start_frame, hi.end_frame) == (2, 5)
    assert (you.start_frame, you.end_frame) == (9, 13)
    assert hi.start == pytest.approx(2 * FRAME_SHIFT_SECONDS) and you.end == pytest.approx(13 * 0.02)


def test_greedy_respects_lengths_and_batch(tokenizer, make_emissions, text_frames):
    a = make_emissions(text_frames("CAT"))
    b = make_emissions(text_frames("DOG SAT"))
    batch = torch.full((2, max(len(a), len(b)), len(tokenizer)), -1.0).log_softmax(-1)
    batch[0, :len(a)], batch[1, :len(b)] = a, b
    # Padding frames of utterance 0 favour "Z": only `lengths` keeps it out.
    batch[0, len(a):, tokenizer.symbols.index("Z")] = 0.0
    hyps = GreedyCTCDecoder(tokenizer).decode(batch, torch.tensor([len(a), len(b)]))
    assert [h.text for h in hyps] == ["CAT", "DOG SAT"]
    assert GreedyCTCDecoder(tokenizer).decode(batch[:, :0], torch.tensor([0, 0]))[0].text == ""


def test_greedy_rejects_bad_lengths(tokenizer):
    with pytest.raises(ValueError, match="lengths"):
        GreedyCTCDecoder(tokenizer).decode(torch.zeros(1, 4, len(tokenizer)), torch.tensor([5]))


def test_collapse_merges_repeats_between_blanks():
    spans = collapse_path([0, 5, 5, 0, 5, 6, 6], blank=0)
    assert [(s.token, s.start_frame, s.end_frame) for s in spans] == [(5, 1, 3), (5, 4, 5), (6, 5, 7)]


def test_forced_align_recovers_the_generating_path(tokenizer, make_emissions):
    frames = ["-", "C", "C", "-", "A", "T", "T", "-", "|", "S", "-"]
    emissions = make_emissions(frames)
    targets = tokenizer.encode("CAT S")
    alignment = forced_align(emissions, targets, tokenizer.blank_index)
    expected = [tokenizer.blank_index if f == "-" else tokenizer.symbols.index(f) for f in frames]
    assert alignment.path == expected
    # Forcing a different transcript costs probability.
    assert forced_align(emissions, tokenizer.encode("COT S"), tokenizer.blank_index).score < alignment.score - 5


def test_forced_align_needs_a_blank_between_repeats(tokenizer):
    emissions = torch.zeros(2, len(tokenizer)).log_softmax(-1)
    with pytest.raises(ValueError, match="cannot fit"):
        forced_align(emissions, tokenizer.encode("LL"), tokenizer.blank_index)
    path = forced_align(torch.zeros(3, len(tokenizer)).log_softmax(-1), tokenizer.encode("LL"), 0).path
    assert tokenizer.ctc_collapse(path) == tokenizer.encode("LL")
