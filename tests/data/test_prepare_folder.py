import json

import numpy as np
import soundfile as sf

from speechssl.cli.main import main
from speechssl.data.manifest import read_letter_dict, read_manifest, read_split
from speechssl.data.prepare.folder import prepare_folder


def test_folder_manifests_labels_and_report(tmp_path, sine, write_audio):
    audio = tmp_path / "audio"
    write_audio(audio / "a/one.wav", sine(200, 1.0, 16000), 16000, "PCM_16")
    write_audio(audio / "a/two.flac", sine(200, 0.5, 44100, channels=2), 44100, "PCM_24")  # 8000 at 16 kHz
    write_audio(audio / "b/three.ogg", sine(300, 0.6, 8000), 8000)
    write_audio(audio / "b/c/four.wav", sine(300, 0.4, 22050), 22050, "FLOAT")
    write_audio(audio / "short.wav", sine(300, 0.02, 16000), 16000)  # 320 samples < 400
    write_audio(audio / "notext.wav", sine(300, 0.3, 16000), 16000)
    (audio / "empty.wav").write_bytes(b"")  # no header at all: unreadable
    write_audio(audio / "noframes.wav", np.zeros(0, np.float32), 16000)  # a header, zero frames: empty
    (audio / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(200)))
    good = write_audio(audio / "truncated.flac", np.random.default_rng(0).standard_normal(32000) * 0.1, 16000)
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (audio / "readme.txt").write_text("not audio")
    transcripts = tmp_path / "t.tsv"
    transcripts.write_text("a/one.wav\tHello, World!\na/two.flac\tit's fine\nb/three.ogg\tgood day\n"
                           "b/c/four.wav\tNo\nshort.wav\tx\ntruncated.flac\ty\ncorrupt.flac\tz\n")

    report = prepare_folder(audio, tmp_path / "out", transcripts=transcripts, valid_percent=0.25, seed=1,
                            progress=False, echo=False)

    by_reason = report.skipped_by_reason
    assert by_reason == {"unreadable": 3, "empty": 1, "too_short": 1, "no_transcript": 1}
    named = {s.path.rsplit("/", 1)[-1]: s.reason for s in report.skipped}
    assert named == {"empty.wav": "unreadable", "corrupt.flac": "unreadable", "truncated.flac": "unreadable",
                     "noframes.wav": "empty",
                     "short.wav": "too_short", "notext.wav": "no_transcript"}
    assert report.kept == 4
    train, valid = read_manifest(tmp_path / "out/train.tsv"), read_manifest(tmp_path / "out/valid.tsv")
    assert len(train) == 3 and len(valid) == 1 and train.root == audio.resolve()
    sizes = {e.path: e.num_samples for e in train.entries + valid.entries}
    assert sizes == {"a/one.wav": 16000, "a/two.flac": 8000, "b/three.ogg": 9600, "b/c/four.wav": 6400}
    labels = {}
    for split in ("train", "valid"):
        s = read_split(tmp_path / "out", split)
        labels.update(dict(zip([e.path for e in s.manifest.entries], zip(s.words, s.letters))))
    assert labels["a/one.wav"] == ("HELLO WORLD", "H E L L O | W O R L D |")
    assert labels["a/two.flac"] == ("IT'S FINE", "I T ' S | F I N E |")
    counts = dict(read_letter_dict(tmp_path / "out/dict.ltr.txt"))
    assert counts["|"] == 7 and counts["O"] == 5 and counts["'"] == 1
    saved = json.loads((tmp_path / "out/report.json").read_text())
    assert saved["num_skipped"] == 6 and saved["kept"] == 4
    assert report.not_scanned == {".txt": 1} and saved["not_scanned"] == {".txt": 1}
    assert "not read (extension): .txt x1" in report.format()
    assert abs(saved["total_hours"] - 40000 / 16000 / 3600) < 1e-9


def test_folder_without_transcripts_is_unlabeled(tmp_path, speech_tree):
    root = speech_tree({f"x{i}.flac": 0.1 for i in range(10)})
    report = prepare_folder(root, tmp_path / "out", valid_percent=0.1, seed=42, progress=False, echo=False)
    assert [s.utterances for s in report.splits] == [9, 1]
    assert not (tmp_path / "out/train.wrd").exists() and not (tmp_path / "out/dict.ltr.txt").exists()
    again = prepare_folder(root, tmp_path / "out2", valid_percent=0.1, seed=42, progress=False, echo=False)
    assert again.splits == report.splits
    assert (tmp_path / "out/valid.tsv").read_text() == (tmp_path / "out2/valid.tsv").read_text()


def test_folder_reads_opus_and_aiff_and_extensions_choose(tmp_path, sine, write_audio, capsys):
    audio = tmp_path / "audio"
    write_audio(audio / "a.wav", sine(200, 0.5, 16000), 16000, "PCM_16")
    sf.write(audio / "b.opus", sine(200, 0.5, 48000), 48000, format="OGG", subtype="OPUS")
    sf.write(audio / "c.aiff", sine(200, 0.25, 16000), 16000, format="AIFF", subtype="PCM_16")
    (audio / "d.m4a").write_bytes(b"not decodable by libsndfile")
    out = tmp_path / "out"
    assert main(["prepare", "folder", str(audio), str(out), "--valid-percent", "0", "--quiet", "--jobs", "1"]) == 0
    assert {e.path: e.num_samples for e in read_manifest(out / "train.tsv").entries} == {
        "a.wav": 8000, "b.opus": 8000, "c.aiff": 4000}
    assert "not read (extension): .m4a x1" in capsys.readouterr().out
    assert main(["prepare", "folder", str(audio), str(tmp_path / "only"), "--valid-percent", "0", "--quiet",
                 "--jobs", "1", "--extensions", "WAV, .aiff"]) == 0
    assert [e.path for e in read_manifest(tmp_path / "only/train.tsv").entries] == ["a.wav", "c.aiff"]
    capsys.readouterr()
    # the user's mistakes are one line naming what is wrong, exit status 2
    assert main(["prepare", "folder", str(audio), str(tmp_path / "x"), "--extensions", ","]) == 2
    assert main(["prepare", "folder", str(tmp_path / "missing"), str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "--extensions" in err[0] and "missing" in err[1] and "Traceback" not in "".join(err)


def test_folder_of_headerless_mulaw_is_decoded_to_flac_once(tmp_path, sine, capsys):
    # A call centre's export: raw 8 kHz mu-law, no header, transcripts by path.
    audio = tmp_path / "calls"
    (audio / "day1").mkdir(parents=True)
    waves = {"day1/a.raw": sine(300, 1.0, 8000), "day1/b.raw": sine(500, 0.5, 8000), "c.raw": sine(400, 0.02, 8000)}
    for rel, wave in waves.items():
        sf.write(audio / rel, wave, 8000, format="RAW", subtype="ULAW")
    (audio / "d.raw").write_bytes(b"")  # zero samples
    (audio / "notes.txt").write_text("not audio")
    transcripts = tmp_path / "t.tsv"
    transcripts.write_text("day1/a.raw\thello\nday1/b.raw\tgood bye\nc.raw\thi\n")
    out = tmp_path / "out"
    assert main(["prepare", "folder", str(audio), str(out), "--transcripts", str(transcripts), "--valid-percent", "0",
                 "--raw-rate", "8000", "--raw-subtype", "ULAW", "--quiet", "--jobs", "1"]) == 0
    split = read_split(out, "train")
    assert split.manifest.root == (out / "audio").resolve()
    assert [(e.path, e.num_samples) for e in split.manifest.entries] == [("day1/a.raw.flac", 16000),
                                                                          ("day1/b.raw.flac", 8000)]
    assert split.words == ["HELLO", "GOOD BYE"]
    # the FLAC holds the decoded mu-law samples exactly, at the source's rate
    for rel in ("day1/a.raw", "day1/b.raw"):
        flac, rate = sf.read(out / "audio" / f"{rel}.flac", dtype="float32")
        raw, _ = sf.read(audio / rel, samplerate=8000, channels=1, format="RAW", subtype="ULAW", dtype="float32")
        assert rate == 8000 and np.array_equal(flac, raw)
    report = json.loads((out / "report.json").read_text())
    assert report["skipped_by_reason"] == {"unreadable": 0, "empty": 1, "too_short": 1, "no_transcript": 0}
    assert report["not_scanned"] == {".txt": 1}
    capsys.readouterr()
    assert main(["prepare", "folder", str(audio), str(tmp_path / "bad"), "--raw-rate", "8000", "--raw-subtype",
                 "MULAW"]) == 2
    assert "--raw-*" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_folder_follows_symlinked_files_and_folders_once(tmp_path, sine, write_audio):
    """The common layout of links to audio kept elsewhere: linked files and linked folders are read, the manifest
    names them by their path under the folder as given, and a link loop is walked once."""
    elsewhere = tmp_path / "elsewhere"
    write_audio(elsewhere / "real15.wav", sine(200, 0.5, 16000), 16000)
    write_audio(elsewhere / "more" / "m1.flac", sine(300, 0.4, 16000), 16000)
    audio = tmp_path / "audio"
    write_audio(audio / "own.wav", sine(250, 0.3, 16000), 16000)
    (audio / "linked.wav").symlink_to(elsewhere / "real15.wav")
    (audio / "sub").symlink_to(elsewhere / "more", target_is_directory=True)
    (audio / "loop").symlink_to(audio, target_is_directory=True)  # audio/loop/loop/... would never end
    (audio / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")

    report = prepare_folder(audio, tmp_path / "out", valid_percent=0.0, progress=False, echo=False)

    train = read_manifest(tmp_path / "out/train.tsv")
    assert {e.path: e.num_samples for e in train.entries} == {"own.wav": 4800, "linked.wav": 8000,
                                                              "sub/m1.flac": 6400}
    assert train.root == audio.resolve()
    assert all(train.audio_path(i).is_file() for i in range(len(train)))
    assert report.kept == 3
    assert [(s.path.rsplit("/", 1)[-1], s.reason) for s in report.skipped] == [("dangling.wav", "unreadable")]


def test_transcripts_with_bom_and_crlf_and_digits_are_read_and_reported(tmp_path, sine, write_audio, capsys):
    """A TSV saved by a Windows editor (UTF-8 BOM, CRLF line ends) matches its first line too; digits and accented
    letters, which become letters of their own, are named in the summary with counts."""
    audio = tmp_path / "audio"
    for name in ("good00.wav", "good01.wav", "good02.wav"):
        write_audio(audio / name, sine(200, 0.5, 16000), 16000)
    tsv = tmp_path / "t.tsv"
    tsv.write_bytes("\ufeffgood00.wav\thello\r\ngood01.wav\tcafé at 9\r\ngood02.wav\troom 101\r\n".encode())

    report = prepare_folder(audio, tmp_path / "out", transcripts=tsv, valid_percent=0.0, progress=False)

    assert report.kept == 3 and report.skipped == [] and report.unmatched_transcripts == []
    assert read_split(tmp_path / "out", "train").words == ["HELLO", "CAFÉ AT 9", "ROOM 101"]
    assert report.letters_outside_english == {"0": 1, "1": 2, "9": 1, "É": 1}
    assert report.transcripts_with_digits == 2
    out = capsys.readouterr().out
    assert "'É' x1" in out and "'1' x2" in out and "2 transcript(s) hold digits" in out
    assert json.loads((tmp_path / "out/report.json").read_text())["transcripts_with_digits"] == 2
