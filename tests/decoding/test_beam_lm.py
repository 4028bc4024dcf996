import math
from itertools import pairwise

import pytest

from speechssl.cli.main import main
from speechssl.decoding.beam import BeamSearchConfig, BeamSearchDecoder
from speechssl.decoding.ctc import GreedyCTCDecoder
from speechssl.decoding.grid import grid_search
from speechssl.decoding.lexicon import Lexicon, lexicon_from_words
from speechssl.decoding.lm import read_arpa_vocabulary
from speechssl.decoding.wer import score

TRAIN_TEXT = [
    "the cat sat on the mat", "the cat sat", "a cat sat on a mat", "the cat ate", "the hat is red",
    "a red hat", "the dog sat on the mat", "the cat sat on the hat",
] * 3

# References and, per utterance, one frame made ambiguous on purpose: greedy picks the wrong letter.
AMBIGUOUS = [
    ("THE CAT SAT", "CAT", {"H": 0.55, "C": 0.45}),   # HAT is a word, but "THE HAT SAT" is unlikely
    ("A CAT SAT ON A MAT", "CAT", {"K": 0.6, "C": 0.4}),  # KAT is no word
    ("THE DOG SAT ON THE MAT", "MAT", {"N": 0.55, "M": 0.45}),
]


@pytest.fixture
def lm_files(tmp_path):
    text = tmp_path / "train.wrd"
    text.write_text("\n".join(TRAIN_TEXT) + "\n")
    arpa = tmp_path / "3gram.arpa"
    assert main(["lm", "build", str(text), str(arpa), "--order", "3"]) == 0
    return arpa, tmp_path / "3gram.lexicon.txt"


def _ambiguous_emissions(make_emissions, text_frames, text, word, choice):
    frames = text_frames(text)
    # The first letter of `word`: frames are "-" then letters x2 + "-" per letter and "|", "-" per word.
    words = text.split()
    index = 1 + sum(3 * len(w) + 2 for w in words[:words.index(word)])
    frames[index] = frames[index + 1] = choice
    return make_emissions(frames)


def test_lm_build_writes_arpa_that_kenlm_loads(lm_files, tokenizer):
    arpa, lexicon_path = lm_files
    content = arpa.read_text()
    assert content.startswith("\\data\\") and "\\3-grams:" in content and content.rstrip().endswith("\\end\\")
    words = read_arpa_vocabulary(arpa)
    assert set(words) == {w.upper() for line in TRAIN_TEXT for w in line.split()}
    # The unigram distribution sums to one (Kneser-Ney leaves no mass at order 1).
    unigram = [line.split() for line in content.split("\\1-grams:")[1].split("\\2-grams:")[0].splitlines()
               if line.strip()]
    assert sum(10 ** float(p[0]) for p in unigram if p[1] != "<s>") == pytest.approx(1.0, abs=1e-5)
    lexicon = Lexicon.load(lexicon_path)
    assert lexicon.spellings["CAT"] == [["C", "A", "T", "|"]]
    BeamSearchDecoder(tokenizer, BeamSearchConfig(), lm_path=arpa, lexicon=lexicon)  # KenLM parses it


def test_kenlm_scores_follow_the_training_text(lm_files, tokenizer):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    arpa, _ = lm_files
    words = read_arpa_vocabulary(arpa)
    vocab = Dictionary(words + ["<unk>"])
    lm = KenLM(str(arpa), vocab)
    state, _ = lm.score(lm.start(False), vocab.get_index("THE"))
    _, cat = lm.score(state, vocab.get_index("CAT"))
    _, red = lm.score(state, vocab.get_index("RED"))
    assert cat > red  # "THE CAT" seen 6 times, "THE RED" never


def test_beam_search_with_lm_beats_greedy_on_ambiguous_emissions(lm_files, tokenizer, make_emissions,
                                                                 text_frames):
    arpa, lexicon_path = lm_files
    emissions = [_ambiguous_emissions(make_emissions, text_frames, *case) for case in AMBIGUOUS]
    references = [case[0] for case in AMBIGUOUS]
    ids = [str(i) for i in range(len(references))]
    greedy = [GreedyCTCDecoder(tokenizer).decode(e.unsqueeze(0))[0].text for e in emissions]
    beam = BeamSearchDecoder.from_files(tokenizer, BeamSearchConfig(beam=20, lm_weight=2.0, word_score=0.0),
                                        lm_path=arpa, lexicon_path=lexicon_path)
    beam_hyps = [beam.decode(e.unsqueeze(0))[0] for e in emissions]
    assert greedy == ["THE HAT SAT", "A KAT SAT ON A MAT", "THE DOG SAT ON THE NAT"]
    greedy_wer = score(ids, references, greedy).wer
    beam_wer = score(ids, references, [h.text for h in beam_hyps]).wer
    assert beam_wer < greedy_wer
    assert beam_wer == 0.0
    # Word times come from the beam's own frame path and follow the frames of the letters.
    words = beam_hyps[0].words
    assert [w.word for w in words] == ["THE", "CAT", "SAT"]
    assert all(a.end_frame <= b.start_frame for a, b in pairwise(words))
    assert words[0].start_frame == 1


def test_lexicon_from_arpa_vocabulary_when_no_lexicon_file(lm_files, tokenizer, make_emissions, text_frames):
    arpa, _ = lm_files
    decoder = BeamSearchDecoder.from_files(tokenizer, BeamSearchConfig(beam=10), lm_path=arpa)
    emissions = _ambiguous_emissions(make_emissions, text_frames, *AMBIGUOUS[1])
    assert decoder.decode(emissions.unsqueeze(0))[0].text == "A CAT SAT ON A MAT"


def test_lexicon_free_char_lm_and_zero_lm(tmp_path, tokenizer, make_emissions, text_frames):
    text = tmp_path / "train.wrd"
    text.write_text("\n".join(TRAIN_TEXT) + "\n")
    arpa = tmp_path / "char.arpa"
    assert main(["lm", "build", str(text), str(arpa), "--order", "4", "--unit", "char"]) == 0
    assert "C A T" in arpa.read_text()
    emissions = _ambiguous_emissions(make_emissions, text_frames, *AMBIGUOUS[1]).unsqueeze(0)
    no_lm = BeamSearchDecoder(tokenizer, BeamSearchConfig(lexicon_free=True, beam=10))
    assert no_lm.decode(emissions)[0].text == "A KAT SAT ON A MAT"  # acoustics only
    char_lm = BeamSearchDecoder(tokenizer, BeamSearchConfig(lexicon_free=True, beam=10, lm_weight=1.0),
                                lm_path=arpa)
    assert char_lm.decode(emissions)[0].text == "A CAT SAT ON A MAT"


def test_grid_search_finds_a_weight_that_uses_the_lm(lm_files, tokenizer, make_emissions, text_frames):
    arpa, lexicon_path = lm_files
    emissions = [_ambiguous_emissions(make_emissions, text_frames, *case) for case in AMBIGUOUS]
    decoder = BeamSearchDecoder.from_files(tokenizer, BeamSearchConfig(beam=10), lm_path=arpa,
                                           lexicon_path=lexicon_path)
    result = grid_search(decoder, emissions, [c[0] for c in AMBIGUOUS], lm_weights=[0.0, 2.0],
                         word_scores=[0.0])
    assert [p.lm_weight for p in result.points] == [0.0, 2.0]
    assert result.points[0].wer > 0  # the lexicon alone leaves "THE HAT SAT"
    assert result.best.lm_weight == 2.0 and result.best.wer == 0.0
    assert decoder.config.lm_weight == 2.0


def test_grid_search_at_its_own_beam_leaves_the_decoder_at_its_beam(lm_files, tokenizer, make_emissions,
                                                                    text_frames):
    """The paper tunes the 4-gram's weights at beam 500 and decodes at 1500: every grid point decodes at the grid's
    beam; the decoder comes back at its own beam with the best weights."""
    arpa, lexicon_path = lm_files
    emissions = [_ambiguous_emissions(make_emissions, text_frames, *case) for case in AMBIGUOUS]
    decoder = BeamSearchDecoder.from_files(tokenizer, BeamSearchConfig(beam=10), lm_path=arpa,
                                           lexicon_path=lexicon_path)
    beams = []
    decode = decoder.decode
    decoder.decode = lambda *args, **kw: beams.append(decoder.config.beam) or decode(*args, **kw)
    result = grid_search(decoder, emissions, [c[0] for c in AMBIGUOUS], lm_weights=[0.0, 2.0], word_scores=[0.0],
                         beam=4)
    assert beams == [4] * 2 * len(AMBIGUOUS)
    assert decoder.config.beam == 10 and decoder.config.lm_weight == result.best.lm_weight == 2.0
    assert decode(emissions[0].unsqueeze(0))[0].text == AMBIGUOUS[0][0]  # the rebuilt search decodes at beam 10
    with pytest.raises(ValueError, match="`beam`"):
        decoder.set_beam(0)


def test_lexicon_from_vocabulary(tokenizer, tmp_path):
    lexicon = lexicon_from_words(["CAT", "DON'T", "<s>", "NAÏVE", "CAT"], tokenizer)
    assert lexicon.spellings == {"CAT": [["C", "A", "T", "|"]], "DON'T": [["D", "O", "N", "'", "T", "|"]]}
    assert lexicon.skipped == ["NAÏVE"]
    lexicon.save(tmp_path / "lex.txt")
    assert (tmp_path / "lex.txt").read_text() == "CAT\tC A T |\nDON'T\tD O N ' T |\n"
    assert Lexicon.load(tmp_path / "lex.txt").spellings == lexicon.spellings


def test_beam_config_validation(tokenizer):
    with pytest.raises(ValueError, match="`beam`"):
        BeamSearchConfig(beam=0).validate()
    with pytest.raises(ValueError, match="`lm_weight`"):
        BeamSearchConfig(lm_weight=math.nan).validate()
    with pytest.raises(ValueError, match="lexicon"):
        BeamSearchDecoder(tokenizer, BeamSearchConfig())
    with pytest.raises(FileNotFoundError, match="missing.arpa"):
        BeamSearchDecoder(tokenizer, BeamSearchConfig(lexicon_free=True), lm_path="/nonexistent/missing.arpa")


def test_lm_build_cli_errors_name_the_path(tmp_path, capsys):
    assert main(["lm", "build", str(tmp_path / "nope.txt"), str(tmp_path / "x.arpa")]) == 2
    assert "nope.txt" in capsys.readouterr().err
    (tmp_path / "t.txt").write_text("a b\n")
    assert main(["lm", "build", str(tmp_path / "t.txt"), str(tmp_path / "x.arpa"), "--order", "9"]) == 2
    assert "`order`" in capsys.readouterr().err


def test_lm_build_reads_ltr_and_lexicon_command(tmp_path, capsys):
    ltr = tmp_path / "train.ltr"
    ltr.write_text("T H E | C A T |\nA | C A T |\n")
    arpa = tmp_path / "lm.arpa"
    assert main(["lm", "build", str(ltr), str(arpa), "--order", "2", "--lexicon", str(tmp_path / "lex.txt")]) == 0
    assert set(read_arpa_vocabulary(arpa)) == {"THE", "CAT", "A"}
    assert Lexicon.load(tmp_path / "lex.txt").words == ["A", "CAT", "THE"]
    assert main(["lm", "lexicon", str(arpa), str(tmp_path / "lex2.txt")]) == 0
    assert (tmp_path / "lex2.txt").read_text() == (tmp_path / "lex.txt").read_text()
    text = tmp_path / "words.txt"
    text.write_text("Hello, world! don't\n")
    assert main(["lm", "lexicon", str(text), str(tmp_path / "lex3.txt")]) == 0
    assert Lexicon.load(tmp_path / "lex3.txt").words == ["DON'T", "HELLO", "WORLD"]
