import numpy as np
import pytest

from speechssl.data.dummies import commonvoice_table, librispeech_chapter
from speechssl.data.manifest import read_letter_dict, read_manifest, read_split
from speechssl.data.prepare.an4 import parse_transcription, prepare_an4
from speechssl.data.prepare.commonvoice import prepare_commonvoice
from speechssl.data.prepare.librilight import prepare_librilight
from speechssl.data.prepare.librispeech import prepare_librispeech

QUIET = {"progress": False, "echo": False}


def test_librispeech_tree(tmp_path, write_audio):
    base = tmp_path / "corpus/LibriSpeech"
    librispeech_chapter(base / "train-clean-100/19/198", "19", "198", ["NORTHANGER ABBEY", "CHAPTER ONE"],
                        seconds=0.1)
    librispeech_chapter(base / "train-clean-100/26/495", "26", "495", ["HELLO"], seconds=0.1)
    librispeech_chapter(base / "dev-clean/84/121123", "84", "121123", ["GO DO YOU HEAR"], seconds=0.1)
    write_audio(base / "dev-clean/84/121123/84-121123-0099.flac", np.zeros(800, np.float32), 16000)  # no text
    report = prepare_librispeech(tmp_path / "corpus", tmp_path / "out", subsets=["train-clean-100", "dev-clean"],
                                 **QUIET)
    train = read_split(tmp_path / "out", "train-clean-100")
    assert train.manifest.root == base.resolve()
    assert [e.path for e in train.manifest.entries] == ["train-clean-100/19/198/19-198-0000.flac",
                                                        "train-clean-100/19/198/19-198-0001.flac",
                                                        "train-clean-100/26/495/26-495-0000.flac"]
    assert train.words == ["NORTHANGER ABBEY", "CHAPTER ONE", "HELLO"]
    assert train.manifest.sizes.tolist() == [1600] * 3
    dev = read_split(tmp_path / "out", "dev-clean")
    assert dev.letters == ["G O | D O | Y O U | H E A R |"]
    assert report.skipped_by_reason["no_transcript"] == 1 and report.skipped[0].path.endswith("0099.flac")
    with pytest.raises(ValueError, match="test-other"):
        prepare_librispeech(tmp_path / "corpus", tmp_path / "o2", subsets=["test-other"], **QUIET)


def test_librilight_limited_supervision_sets(tmp_path):
    base = tmp_path / "librispeech_finetuning"
    for fold in range(6):
        for kind in ("clean", "other"):
            librispeech_chapter(base / f"1h/{fold}/{kind}/10{fold}/5", f"10{fold}", "5", [f"FOLD {fold} {kind}"],
                                seconds=0.1)
    for kind in ("clean", "other"):
        librispeech_chapter(base / f"9h/{kind}/200/7", "200", "7", ["NINE A", "NINE B"], seconds=0.1)
    prepare_librilight(tmp_path, tmp_path / "out", **QUIET)
    ten_min = read_split(tmp_path / "out", "train_10min")
    one_h = read_manifest(tmp_path / "out/train_1h.tsv")
    ten_h = read_manifest(tmp_path / "out/train_10h.tsv")
    assert ten_min.words == ["FOLD 0 CLEAN", "FOLD 0 OTHER"]
    assert (len(ten_min.manifest), len(one_h), len(ten_h)) == (2, 12, 16)
    assert {e.path for e in one_h.entries} < {e.path for e in ten_h.entries}
    # dict counted once over the 10 h set (the smaller sets are subsets of it)
    assert dict(read_letter_dict(tmp_path / "out/dict.ltr.txt"))["F"] == 12


def test_commonvoice_tables_with_mp3(tmp_path, sine, write_audio):
    root = tmp_path / "cv/en"
    for name in ("a.mp3", "b.mp3", "c.mp3"):
        write_audio(root / "clips" / name, sine(300, 0.5, 48000), 48000)
    commonvoice_table(root / "train.tsv", [("x1", "a.mp3", '"Hello," she said.'), ("x2", "missing.mp3", "Gone.")])
    commonvoice_table(root / "dev.tsv", [("x3", "b.mp3", "It’s  a test!")])
    commonvoice_table(root / "test.tsv", [("x4", "c.mp3", "")])
    report = prepare_commonvoice(root, tmp_path / "out", **QUIET)
    train = read_split(tmp_path / "out", "train")
    assert train.words == ["HELLO SHE SAID"]
    assert abs(train.manifest.entries[0].num_samples - 8000) <= 1200  # mp3 encoder delay/padding
    assert read_split(tmp_path / "out", "dev").words == ["IT'S A TEST"]
    assert report.skipped_by_reason == {"unreadable": 1, "empty": 0, "too_short": 0, "no_transcript": 1}


def _fake_an4(root, write_audio_raw):
    train = [("an4_clstk/fash/an251-fash-b", "<s> YES </s>", 0.5), ("an4_clstk/fash/an253-fash-b", "<s> GO </s>", 0.4),
             ("an4_clstk/mgah/cen1-mgah-b", "<s> H E L P </s>", 0.6), ("an4_clstk/mgah/cen2-mgah-b", "<s> TEN </s>", 0.3)]
    test = [("an4test_clstk/fcaw/an406-fcaw-b", "RUBOUT G M E F THREE NINE", 0.7)]
    (root / "etc").mkdir(parents=True)
    for name, rows in (("train", train), ("test", test)):
        (root / f"etc/an4_{name}.fileids").write_text("".join(f"{fid}\n" for fid, _, _ in rows))
        (root / f"etc/an4_{name}.transcription").write_text(
            "".join(f"{text} ({fid.rsplit('/', 1)[1]})\n" for fid, text, _ in rows))
        for fid, _, seconds in rows:
            write_audio_raw(root / "wav" / f"{fid}.raw", seconds)


def test_an4_parser_and_layout_on_a_fake_tree(tmp_path):
    rng = np.random.default_rng(0)
    written = {}

    def write_raw(path, seconds):
        samples = (rng.standard_normal(int(16000 * seconds)) * 3000).astype(">i2")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(samples.tobytes())
        written[path.stem] = samples.astype(np.float32) / 32768

    _fake_an4(tmp_path / "an4", write_raw)
    assert parse_transcription(tmp_path / "an4/etc/an4_train.transcription")["cen1-mgah-b"] == "H E L P"
    report = prepare_an4(tmp_path / "an4", tmp_path / "out", valid_percent=0.25, seed=0, **QUIET)
    out = tmp_path / "out"
    test = read_split(out, "test")
    assert test.words == ["RUBOUT G M E F THREE NINE"] and test.manifest.sizes.tolist() == [11200]
    assert test.manifest.entries[0].path == "test/fcaw/an406-fcaw-b.flac"
    from speechssl.data.audio import load_audio

    decoded = load_audio(test.manifest.audio_path(0))
    np.testing.assert_array_equal(decoded, written["an406-fcaw-b"])  # big-endian raw -> lossless FLAC
    assert len(read_manifest(out / "train.tsv")) == 3 and len(read_manifest(out / "valid.tsv")) == 1
    assert report.kept == 5 and not report.skipped
    assert "mgah\t2\t" in (out / "speakers.tsv").read_text()


def test_an4_real_corpus(tmp_path, shared_dir):
    an4 = shared_dir / "an4"
    if not (an4 / "etc/an4_train.fileids").is_file():
        pytest.skip("../shared/an4 not present")
    report = prepare_an4(an4, tmp_path / "an4", jobs=1, **QUIET)
    sizes = {s.name: s.utterances for s in report.splits}
    assert sizes["train"] + sizes["valid"] == 948 and sizes["test"] == 130
    assert 9.9 <= next(s.hours for s in report.splits if s.name == "train_10min") * 60 <= 11
    assert abs(report.total_hours - 0.81) < 0.02
    test = read_split(tmp_path / "an4", "test")
    assert test.words[0] == "RUBOUT G M E F THREE NINE"
    letters = {s for s, _ in read_letter_dict(tmp_path / "an4/dict.ltr.txt")}
    assert letters <= set("|ABCDEFGHIJKLMNOPQRSTUVWXYZ'")
