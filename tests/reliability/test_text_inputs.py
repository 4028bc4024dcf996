"""Every text file speechssl reads gives the same content with a UTF-8 byte-order mark and Windows line ends
(what Notepad and Excel save) as without: manifests, labels, letter dictionaries, vocabularies, lexicons,
transcripts for the LM and the transcripts TSV of `prepare folder` (tests/data/test_prepare_folder.py)."""

from __future__ import annotations

import pytest
import soundfile as sf

from speechssl.data.manifest import read_letter_dict, read_manifest, read_split
from speechssl.data.tokenizer import LetterTokenizer
from speechssl.decoding.lexicon import Lexicon
from speechssl.decoding.lm import read_transcripts


def _windows(text: str) -> bytes:
    """The bytes a Windows editor saves: a BOM, then CRLF line ends."""
    return ("\ufeff" + text.replace("\n", "\r\n")).encode("utf-8")


def _both(tmp_path, name: str, text: str):
    plain, windows = tmp_path / "plain" / name, tmp_path / "windows" / name
    for path, data in ((plain, text.encode("utf-8")), (windows, _windows(text))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return plain, windows


@pytest.mark.parametrize("name,text,read", [
    ("dict.ltr.txt", "E 10\nT 7\n| 5\n' 1\n", read_letter_dict),
    ("vocab.json", '{"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "A": 5, "B": 6}\n',
     lambda p: LetterTokenizer.from_file(p).symbols),
    ("symbols.json", '["<pad>", "<unk>", "|", "A", "B"]\n', lambda p: LetterTokenizer.from_file(p).symbols),
    ("lexicon.txt", "AB\tA B |\nBA\tB A |\n", lambda p: Lexicon.load(p).spellings),
    ("text.txt", "the cat\nsat down\n", lambda p: [line.rstrip("\n") for line in read_transcripts(p)]),
    ("train.ltr", "C A T |\nS A T |\n", lambda p: list(read_transcripts(p))),
])
def test_bom_and_crlf_read_like_plain_utf8(tmp_path, name, text, read):
    plain, windows = _both(tmp_path, name, text)
    expected = read(plain)
    assert expected  # the reader saw something
    assert read(windows) == expected


def test_manifest_and_labels_with_bom_and_crlf(tmp_path):
    for variant in ("plain", "windows"):
        (tmp_path / variant).mkdir()
        sf.write(tmp_path / variant / "a.wav", [0.0] * 800, 16000)
    text = {"train.tsv": f"{tmp_path}/ROOT\na.wav\t800\n", "train.wrd": "HELLO THERE\n",
            "train.ltr": "H E L L O | T H E R E |\n"}
    for name, content in text.items():
        for variant in ("plain", "windows"):
            content_here = content.replace("ROOT", variant)
            data = content_here.encode() if variant == "plain" else _windows(content_here)
            (tmp_path / variant / name).write_bytes(data)
    plain, windows = read_split(tmp_path / "plain", "train"), read_split(tmp_path / "windows", "train")
    assert read_manifest(tmp_path / "windows/train.tsv").root == tmp_path / "windows"  # no BOM in the root
    assert windows.manifest.entries == plain.manifest.entries
    assert (windows.words, windows.letters) == (plain.words, plain.letters) == (["HELLO THERE"],
                                                                                ["H E L L O | T H E R E |"])
