"""The evaluate / transcribe / lm command lines on a fake model (load_model patched) and real audio files."""

import json

import jiwer
import numpy as np
import pytest
import soundfile as sf

from speechssl.cli.main import main

UTTERANCES = [  # (spoken text, reference)
    ("THE CAT SAT", "THE CAT SAT"),
    ("A DOG", "A DOG"),
    ("THE HAT SAT ON A MAT", "THE CAT SAT ON THE MAT"),
    ("HELLO", "HELLO WORLD"),
]


@pytest.fixture
def data_dir(tmp_path, tokenizer, text_frames, fake_waveform):
    root = tmp_path / "data"
    (root / "audio").mkdir(parents=True)
    lines = [str(root / "audio")]
    for i, (spoken, _) in enumerate(UTTERANCES):
        frames = ["-"] * 10 + text_frames(spoken) + ["-"] * (10 + 7 * i)  # lengths differ: batches pad
        tokens = [tokenizer.blank_index if f == "-" else tokenizer.symbols.index(f) for f in frames]
        wave = fake_waveform(tokens, seed=i)
        # FLOAT wav keeps the samples the fake model reads exactly.
        sf.write(root / "audio" / f"u{i}.wav", wave, 16000, subtype="FLOAT")
        lines.append(f"u{i}.wav\t{len(wave)}")
    (root / "test.tsv").write_text("\n".join(lines) + "\n")
    (root / "test.wrd").write_text("".join(ref + "\n" for _, ref in UTTERANCES))
    return root


def test_evaluate_cli_writes_reports_equal_to_jiwer(fake_checkpoint, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["evaluate", str(fake_checkpoint), str(data_dir), "--subset", "test", "--out", str(out),
               "--batch-seconds", "1.0"])
    assert rc == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary-test.json").read_text())
    rows = [line.split("\t") for line in (out / "utterances-test.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["u0.wav", "u1.wav", "u2.wav", "u3.wav"]
    assert [r[2] for r in rows] == [spoken for spoken, _ in UTTERANCES]
    expected = jiwer.wer([r[1] for r in rows], [r[2] for r in rows])
    assert summary["wer_fraction"] == pytest.approx(expected)
    assert f"{100 * expected:.2f} %" in printed
    assert summary["words"]["errors"] == 3 and summary["words"]["reference_length"] == 13
    assert (out / "wer-summary-test.txt").read_text().splitlines()[1] == f"viterbi\t{100 * expected:.2f}"
    for name in ("recogs-test.txt", "errs-test.txt"):
        assert (out / name).stat().st_size > 0


def test_evaluate_cli_kenlm_with_grid(fake_checkpoint, data_dir, tmp_path, capsys):
    text = tmp_path / "train.wrd"
    text.write_text("THE CAT SAT ON THE MAT\nA DOG\nTHE CAT SAT\nHELLO WORLD\n" * 2)
    arpa = tmp_path / "lm.arpa"
    assert main(["lm", "build", str(text), str(arpa), "--order", "3"]) == 0
    out = tmp_path / "out"
    rc = main(["evaluate", str(fake_checkpoint), str(data_dir), "--out", str(out), "--decoder", "kenlm",
               "--lm", str(arpa), "--grid", "--grid-lm-weights", "0,1", "--grid-word-scores", "0", "--beam", "8"])
    assert rc == 0
    grid = (out / "grid-test.tsv").read_text().splitlines()
    assert grid[0] == "lm_weight\tword_score\twer" and len(grid) == 3
    summary = json.loads((out / "summary-test.json").read_text())
    assert summary["settings"]["decoder"] == "kenlm" and summary["settings"]["lm_weight"] in (0.0, 1.0)
    rows = [line.split("\t") for line in (out / "utterances-test.tsv").read_text().splitlines()[1:]]
    assert summary["wer_fraction"] == pytest.approx(jiwer.wer([r[1] for r in rows], [r[2] for r in rows]))
    assert "grid at beam 8: 2 settings" in capsys.readouterr().out
    # tuned at one beam, decoded at another (the paper's 500 and 1500); --grid-beam needs --grid
    rc = main(["evaluate", str(fake_checkpoint), str(data_dir), "--out", str(out), "--decoder", "kenlm",
               "--lm", str(arpa), "--grid", "--grid-lm-weights", "0,1", "--grid-word-scores=-1,0", "--beam", "8",
               "--grid-beam", "3"])
    assert rc == 0 and "grid at beam 3: 4 settings" in capsys.readouterr().out
    assert json.loads((out / "summary-test.json").read_text())["settings"]["beam"] == 8
    assert main(["evaluate", str(fake_checkpoint), str(data_dir), "--decoder", "kenlm", "--lm", str(arpa),
                 "--grid-beam", "3"]) == 2
    assert "--grid-beam" in capsys.readouterr().err


def test_evaluate_cli_greedy_out_equals_a_greedy_evaluate(fake_checkpoint, data_dir, tmp_path, capsys):
    text = tmp_path / "train.wrd"
    text.write_text("THE CAT SAT ON THE MAT\nA DOG\nTHE CAT SAT\nHELLO WORLD\n" * 2)
    arpa = tmp_path / "lm.arpa"
    assert main(["lm", "build", str(text), str(arpa), "--order", "3"]) == 0
    both_lm, both_greedy, alone = tmp_path / "lm", tmp_path / "greedy", tmp_path / "alone"
    assert main(["evaluate", str(fake_checkpoint), str(data_dir), "--out", str(both_lm), "--decoder", "kenlm",
                 "--lm", str(arpa), "--beam", "8", "--greedy-out", str(both_greedy)]) == 0
    printed = capsys.readouterr().out
    assert main(["evaluate", str(fake_checkpoint), str(data_dir), "--out", str(alone)]) == 0
    capsys.readouterr()
    for name in ("recogs-test.txt", "errs-test.txt", "utterances-test.tsv", "wer-summary-test.txt"):
        assert (both_greedy / name).read_text() == (alone / name).read_text(), name
    greedy = json.loads((both_greedy / "summary-test.json").read_text())
    lm = json.loads((both_lm / "summary-test.json").read_text())
    assert greedy["settings"] == {"decoder": "viterbi"} and lm["settings"]["decoder"] == "kenlm"
    assert printed.count("WER") == 2 and f"{100 * greedy['wer_fraction']:.2f} %" in printed
    # Only an LM decoding can carry a greedy report.
    assert main(["evaluate", str(fake_checkpoint), str(data_dir), "--greedy-out", str(tmp_path / "x")]) == 2
    assert "--greedy-out" in capsys.readouterr().err


def test_evaluate_cli_missing_lm_is_one_line_naming_flag_and_path(fake_checkpoint, data_dir, capsys):
    rc = main(["evaluate", str(fake_checkpoint), str(data_dir), "--decoder", "kenlm", "--lm", "/nope/lm.arpa"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == "speechssl evaluate: --lm: file not found: /nope/lm.arpa"
    rc = main(["evaluate", str(fake_checkpoint), str(data_dir), "--subset", "dev"])
    assert rc == 2 and "dev.tsv" in capsys.readouterr().err
    rc = main(["evaluate", str(fake_checkpoint), str(data_dir), "--decoder", "kenlm"])
    assert rc == 2 and "--lm" in capsys.readouterr().err


def test_transcribe_cli_jsonl_any_rate_and_plot(fake_checkpoint, data_dir, tmp_path, capsys):
    wav = data_dir / "audio" / "u2.wav"
    plot = tmp_path / "plot.png"
    rc = main(["transcribe", str(fake_checkpoint), str(wav), "--format", "jsonl", "--plot", str(plot)])
    assert rc == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["text"] == "THE HAT SAT ON A MAT"
    assert [w["word"] for w in record["words"]] == record["text"].split()
    assert all(a["end"] <= b["start"] for a, b in zip(record["words"], record["words"][1:]))
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # Stereo 8 kHz FLAC: read, averaged, resampled (the fake model then sees other numbers; only the plumbing
    # is checked here).
    data, _ = sf.read(wav, dtype="float32")
    flac = tmp_path / "x.flac"
    sf.write(flac, np.stack([data[::2], data[::2]], axis=1), 8000)
    assert main(["transcribe", str(fake_checkpoint), str(flac)]) == 0
    assert capsys.readouterr().out.startswith(f"{flac}\t")
    assert main(["transcribe", str(fake_checkpoint), str(tmp_path / "missing.wav")]) == 1
    assert "missing.wav: no such file or folder" in capsys.readouterr().err


def test_transcribe_cli_takes_folders_and_counts_missing_paths(fake_checkpoint, data_dir, tmp_path, capsys):
    """A folder stands for the audio files under it (recursively, in path order); a path that does not exist is
    skipped and counted like an undecodable file, and the others are still transcribed."""
    data, _ = sf.read(data_dir / "audio" / "u2.wav", dtype="float32")
    folder = tmp_path / "recordings"
    (folder / "day2").mkdir(parents=True)
    sf.write(folder / "b.wav", data, 16000)
    sf.write(folder / "day2" / "a.flac", data, 16000)
    (folder / "notes.txt").write_text("not audio")
    missing = tmp_path / "gone.wav"
    rc = main(["transcribe", str(fake_checkpoint), str(missing), str(folder)])
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.out == (f"{folder / 'b.wav'}\tTHE HAT SAT ON A MAT\n"
                            f"{folder / 'day2' / 'a.flac'}\tTHE HAT SAT ON A MAT\n")
    assert f"skipped {missing}: no such file or folder" in captured.err
    assert "1 of 3 file(s) skipped, the others transcribed" in captured.err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["transcribe", str(fake_checkpoint), str(empty)]) == 2
    assert "no audio files" in capsys.readouterr().err


def test_transcribe_cli_reads_headerless_pcm_and_skips_what_it_cannot_read(fake_checkpoint, data_dir, tmp_path,
                                                                            capsys):
    wav = data_dir / "audio" / "u2.wav"
    data, _ = sf.read(wav, dtype="float32")
    raw = tmp_path / "u2.raw"  # AN4's layout: 16-bit big-endian samples, no header
    sf.write(raw, data, 16000, format="RAW", subtype="PCM_16", endian="BIG")
    assert main(["transcribe", str(fake_checkpoint), str(raw), "--raw-rate", "16000", "--raw-endian", "BIG"]) == 0
    assert capsys.readouterr().out == f"{raw}\tTHE HAT SAT ON A MAT\n"
    # Without the format soundfile cannot open it: skipped with a hint, and a readable file after it still
    # gets its transcript; the exit status says that something was skipped.
    short = tmp_path / "short.wav"
    sf.write(short, data[:300], 16000)
    rc = main(["transcribe", str(fake_checkpoint), str(raw), str(short), str(wav)])
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.out == f"{wav}\tTHE HAT SAT ON A MAT\n"
    assert f"skipped {raw}" in captured.err and "--raw-rate" in captured.err
    assert f"skipped {short}: shorter than 25 ms" in captured.err
    assert "2 of 3 file(s) skipped" in captured.err
    # A subtype soundfile does not know fails before the model loads, naming the flag
    assert main(["transcribe", str(fake_checkpoint), str(raw), "--raw-rate", "16000", "--raw-subtype", "PCM16"]) == 2
    assert "--raw-*" in capsys.readouterr().err


def test_evaluate_cli_several_subsets_grid_on_the_first(fake_checkpoint, data_dir, tmp_path):
    for ext in ("tsv", "wrd"):  # a second subset: the first two utterances
        lines = (data_dir / f"test.{ext}").read_text().splitlines()
        (data_dir / f"dev.{ext}").write_text("\n".join(lines[:3] if ext == "tsv" else lines[:2]) + "\n")
    text = tmp_path / "train.wrd"
    text.write_text("THE CAT SAT ON THE MAT\nA DOG\nTHE CAT SAT\nHELLO WORLD\n" * 2)
    arpa = tmp_path / "lm.arpa"
    assert main(["lm", "build", str(text), str(arpa), "--order", "3"]) == 0
    out = tmp_path / "out"
    rc = main(["evaluate", str(fake_checkpoint), str(data_dir), "--subset", "dev,test", "--out", str(out),
               "--decoder", "kenlm", "--lm", str(arpa), "--grid", "--grid-lm-weights", "0,1",
               "--grid-word-scores", "0,1", "--beam", "8"])
    assert rc == 0
    assert (out / "grid-dev.tsv").is_file() and not (out / "grid-test.tsv").exists()
    dev, test = (json.loads((out / f"summary-{s}.json").read_text()) for s in ("dev", "test"))
    assert (dev["utterances"], test["utterances"]) == (2, 4)
    best = min((line.split("\t") for line in (out / "grid-dev.tsv").read_text().splitlines()[1:]),
               key=lambda row: float(row[2]))
    for summary in (dev, test):  # the setting tuned on dev decodes test too
        assert (summary["settings"]["lm_weight"], summary["settings"]["word_score"]) == (float(best[0]),
                                                                                          float(best[1]))
    assert main(["evaluate", str(fake_checkpoint), str(data_dir), "--subset", "dev,nope"]) == 2
