"""A folder of broken and odd audio: prepare names every problem and keeps the good files; pretraining,
fine-tuning and evaluation on what it kept run through (tiny model, a few updates)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speechssl.cli.main import main
from speechssl.data.audio import load_audio, resampled_length
from speechssl.data.manifest import read_manifest, read_split

FAST = ["model=tiny", "trainer.device=cpu", "trainer.precision=fp32", "trainer.progress=false",
        "trainer.tensorboard=false", "trainer.threads=1", "data.num_workers=0", "trainer.log_interval=1",
        "trainer.valid_interval=0", "trainer.max_updates=3", "trainer.save_interval=3"]


@pytest.fixture
def prepared(prepared_bad_corpus):
    return prepared_bad_corpus


def test_prepare_names_each_problem_and_keeps_the_rest(prepared):
    corpus, out, printed = prepared
    audio = corpus.audio
    report = json.loads((out / "report.json").read_text())
    skipped = {s["path"].rsplit("/", 1)[-1]: (s["reason"], s["detail"]) for s in report["skipped"]}
    assert set(skipped) == set(corpus.bad_files)
    for name, (reason, word) in corpus.bad_files.items():
        assert skipped[name][0] == reason, (name, skipped[name])
        assert word in skipped[name][1], (name, skipped[name])
        line = next(x for x in printed.splitlines() if x.strip().endswith(skipped[name][1]) and name in x)
        assert f"[{reason}]" in line
    assert report["unmatched_transcripts"] == [corpus.ghost] and f"no audio file {corpus.ghost}" in printed
    assert set(report["dropped_characters"]) >= {"☃", "¿"} and "'☃' x1" in printed

    entries = {e.path: e.num_samples for split in ("train", "valid")
               for e in read_manifest(out / f"{split}.tsv").entries}
    good = {p.name for p in audio.glob("good*.wav")}
    assert set(entries) == good | set(corpus.kept_odd_files)
    assert report["kept"] == len(entries)
    info = sf.info(str(audio / "stereo_44k1_24bit.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (44_100, 2, "PCM_24")
    assert entries["stereo_44k1_24bit.wav"] == resampled_length(info.frames, 44_100)
    for name in corpus.kept_odd_files:  # every kept file decodes to finite mono 16 kHz of about its manifest length
        wave = load_audio(audio / name)
        assert wave.ndim == 1 and np.isfinite(wave).all()
        assert abs(wave.shape[0] - entries[name]) <= 1200, name  # mp3: encoder delay/padding
    assert np.abs(load_audio(audio / "clipped_full_scale.wav")).max() > 0.99
    words = {}
    for split in ("train", "valid"):
        s = read_split(out, split)
        words.update(zip((e.path for e in s.manifest.entries), s.words))
    assert words["oov_transcript.wav"].endswith(" Ω")  # letters of any script are kept, symbols dropped


def test_pretrain_finetune_evaluate_on_what_prepare_kept(prepared, tmp_path, capsys):
    _, data, _ = prepared
    pt, ft = tmp_path / "pt", tmp_path / "ft"
    rc = main(["pretrain", f"data.dir={data}", *FAST, "data.max_tokens=64000", "data.max_sample_size=16000",
               "data.min_sample_size=4000", f"trainer.run_dir={pt}"])
    assert rc == 0, capsys.readouterr().err[-3000:]
    rc = main(["finetune", f"data.dir={data}", *FAST, f"init={pt / 'checkpoints/checkpoint_last.pt'}",
               "data.max_tokens=200000", f"trainer.run_dir={ft}"])
    assert rc == 0, capsys.readouterr().err[-3000:]
    summary = json.loads((ft / "summary.json").read_text())
    assert summary["updates"] == 3 and summary["skipped_nonfinite"] == 0
    capsys.readouterr()
    out = tmp_path / "decode"
    rc = main(["evaluate", str(ft / "checkpoints/checkpoint_last.pt"), str(data), "--subset", "train,valid",
               "--out", str(out), "--batch-seconds", "4"])
    assert rc == 0, capsys.readouterr().err[-3000:]
    for split in ("train", "valid"):
        scored = json.loads((out / f"summary-{split}.json").read_text())
        assert scored["utterances"] == len(read_manifest(data / f"{split}.tsv"))
