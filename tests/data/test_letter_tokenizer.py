import json

import pytest

from speechssl.data.tokenizer import LetterTokenizer


def test_default_layout_matches_hf_base_960h():
    tok = LetterTokenizer.default_english()
    assert tok.symbols[:5] == ["<pad>", "<s>", "</s>", "<unk>", "|"]
    assert "".join(tok.symbols[5:]) == "ETAONIHSRDLUMWCFGYPBVK'XJQZ"
    assert (len(tok), tok.blank_index, tok.unk_index, tok.word_delimiter_index) == (32, 0, 3, 4)


def test_encode_normalises_and_decode_round_trips():
    tok = LetterTokenizer.default_english()
    ids = tok.encode("  Hello   world’s ")
    assert tok.decode(ids) == "HELLO WORLD'S"
    assert ids[5] == tok.word_delimiter_index
    assert tok.encode("a#b") == [tok.symbols.index("A"), tok.unk_index, tok.symbols.index("B")]
    for text in ["THE CAT SAT", "DON'T STOP", "A", ""]:
        assert tok.decode(tok.encode(text)) == text


def test_ctc_collapse_then_decode():
    tok = LetterTokenizer.default_english()
    h, e, l, o = (tok.symbols.index(c) for c in "HELO")
    frames = [0, h, h, 0, e, l, l, 0, l, o, o, 4, 4, 0]
    assert tok.ctc_collapse(frames) == [h, e, l, l, o, 4]
    assert tok.decode(tok.ctc_collapse(frames)) == "HELLO"


def test_encode_letters_reads_ltr_lines():
    tok = LetterTokenizer.default_english()
    assert tok.decode(tok.encode_letters("H I | Y O U |")) == "HI YOU"
    assert tok.encode_letters("H I |")[-1] == tok.word_delimiter_index


def test_save_load_and_fairseq_and_hf_formats(tmp_path):
    tok = LetterTokenizer.default_english()
    tok.save(tmp_path / "vocab.json")
    assert LetterTokenizer.load(tmp_path / "vocab.json").symbols == tok.symbols

    (tmp_path / "dict.ltr.txt").write_text("| 10\nE 5\nT 3\n")
    fs = LetterTokenizer.from_fairseq_dict(tmp_path / "dict.ltr.txt")
    assert fs.symbols == ["<s>", "<pad>", "</s>", "<unk>", "|", "E", "T"]
    assert fs.blank_index == 0 and fs.blank == "<s>"
    assert fs.decode(fs.ctc_collapse([0, 6, 6, 5, 0, 4, 1])) == "TE"  # <pad> (id 1) is dropped too

    hf = {s: i for i, s in enumerate(tok.symbols)}
    (tmp_path / "hf.json").write_text(json.dumps(hf))
    assert LetterTokenizer.from_hf_vocab(tmp_path / "hf.json").symbols == tok.symbols


def test_bad_vocabularies_raise():
    with pytest.raises(ValueError, match="unique"):
        LetterTokenizer(["<pad>", "<unk>", "|", "A", "A"])
    with pytest.raises(ValueError, match="blank"):
        LetterTokenizer(["<unk>", "|", "A"])
