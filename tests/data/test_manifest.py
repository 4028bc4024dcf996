import pytest

from speechssl.data.manifest import (
    Manifest,
    ManifestEntry,
    letters_to_words,
    normalize_transcript,
    read_letter_dict,
    read_manifest,
    read_split,
    words_to_letters,
    write_labels,
    write_letter_dict,
    write_manifest,
)


def test_manifest_round_trip_is_fairseq_format(tmp_path):
    m = Manifest(root=tmp_path / "audio", entries=[ManifestEntry(path="a/b.flac", num_samples=16000),
                                                  ManifestEntry(path="c.wav", num_samples=400)])
    write_manifest(tmp_path / "train.tsv", m)
    lines = (tmp_path / "train.tsv").read_text().splitlines()
    assert lines == [str(tmp_path / "audio"), "a/b.flac\t16000", "c.wav\t400"]
    back = read_manifest(tmp_path / "train.tsv")
    assert back.entries == m.entries and back.root == m.root
    assert back.sizes.tolist() == [16000, 400] and back.audio_path(1) == tmp_path / "audio" / "c.wav"


def test_manifest_errors_name_file_and_line(tmp_path):
    (tmp_path / "bad.tsv").write_text("/root\nx.wav\t12\ny.wav\tlots\n")
    with pytest.raises(ValueError, match=r"bad.tsv:3"):
        read_manifest(tmp_path / "bad.tsv")


def test_label_formats():
    assert normalize_transcript("Hello, world!  It’s 5 o'clock-ish.") == "HELLO WORLD IT'S 5 O'CLOCK ISH"
    assert normalize_transcript("'quoted' words") == "QUOTED WORDS"
    assert words_to_letters("HI YOU") == "H I | Y O U |"
    assert letters_to_words("H I | Y O U |") == "HI YOU"


def test_letter_dict_and_split_reading(tmp_path):
    from collections import Counter

    write_letter_dict(tmp_path / "dict.ltr.txt", Counter({"|": 5, "E": 3, "A": 3, "Z": 1}))
    assert read_letter_dict(tmp_path / "dict.ltr.txt") == [("|", 5), ("A", 3), ("E", 3), ("Z", 1)]
    write_manifest(tmp_path / "s.tsv", Manifest(root=tmp_path, entries=[ManifestEntry(path="x", num_samples=9)]))
    write_labels(tmp_path / "s.ltr", ["H I |"])
    split = read_split(tmp_path, "s")
    assert split.letters == ["H I |"] and split.words is None
    write_labels(tmp_path / "s.wrd", ["A", "B"])
    with pytest.raises(ValueError, match="s.wrd: 2 lines but the manifest has 1"):
        read_split(tmp_path, "s")
