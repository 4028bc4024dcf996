import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechssl.data.audio import load_audio
from speechssl.data.manifest import read_split
from speechssl.data.prepare.espeak import EspeakError
from speechssl.data.prepare.sentences import SentenceGenerator, load_word_list
from speechssl.data.prepare.synthetic import (
    UTTERANCES_PER_PROCESS,
    SyntheticConfig,
    make_speakers,
    prepare_synthetic,
    utterance_spec,
)
from speechssl.data.tokenizer import LetterTokenizer


def test_word_list_and_sentences_are_plain_seeded_english():
    words = load_word_list()
    assert len(words.vocabulary()) >= 1000
    gen = SentenceGenerator(words)
    a = [gen.sentence(np.random.default_rng([3, i])) for i in range(50)]
    assert a == [gen.sentence(np.random.default_rng([3, i])) for i in range(50)]
    assert len(set(a)) == 50
    tok = LetterTokenizer.default_english()
    assert all(tok.unk_index not in tok.encode(s) for s in a)  # only letters, apostrophe, spaces


def test_speakers_and_specs_derive_from_seed():
    cfg = SyntheticConfig(seed=5, test_speakers=3)
    speakers = make_speakers(cfg)
    assert len({s.name for s in speakers}) >= 20 and sum(s.held_out for s in speakers) == 3
    gen = SentenceGenerator()
    assert utterance_spec(7, cfg, speakers, gen) == utterance_spec(7, cfg, speakers, gen)
    assert utterance_spec(7, cfg, speakers, gen) != utterance_spec(8, cfg, speakers, gen)


def test_prepare_synthetic_a_few_seconds(tmp_path):
    # every voice but the held-out ones in a tiny corpus; 2 speakers held out so test is non-trivial
    cfg = SyntheticConfig(hours=12 / 3600, seed=1, voices=("en-us", "en"), variants=("m1", "f2"),
                          test_speakers=1, valid_percent=0.2)
    report = prepare_synthetic(tmp_path / "syn", cfg, jobs=1, progress=False, echo=False)
    out = tmp_path / "syn"
    stats = json.loads((out / "synthetic.json").read_text())
    assert stats["audio_seconds"] >= 12 and report.kept == stats["utterances"]
    train = read_split(out, "train")
    assert len(train.manifest) >= 1 and train.words and train.letters[0].endswith("|")
    audio = load_audio(train.manifest.audio_path(0))
    assert audio.shape[0] == train.manifest.entries[0].num_samples
    assert 0.25 < np.abs(audio).max() <= 0.91 and audio.std() > 0.01
    speakers = [line.split("\t") for line in (out / "speakers.tsv").read_text().splitlines()]
    header, rows = speakers[0], speakers[1:]
    held = {r[0] for r in rows if r[header.index("split")] == "test"}
    assert len(held) == 1 and len(rows) == 4
    train_dirs = {e.path.split("/")[0] for e in train.manifest.entries}
    assert not {h.replace("+", "_") for h in held} & train_dirs  # held-out voices never in train
    assert (out / "dict.ltr.txt").read_text().startswith("| ")


def test_room_and_noise_effects():
    from speechssl.data.prepare.synthetic import background_noise, convolve, room_impulse_response

    rng = np.random.default_rng(0)
    x, h = rng.standard_normal(500).astype(np.float32), rng.standard_normal(40).astype(np.float32)
    np.testing.assert_allclose(convolve(x, h), np.convolve(x, h)[:500], atol=1e-4)
    ir = room_impulse_response(0.3, rng)
    assert ir.shape == (4800,) and ir[0] == 1.0
    assert np.abs(ir[-480:]).max() < np.abs(ir[1:480]).max() / 100  # tail decays (60 dB over rt60)
    pink = background_noise(16000, True, rng)
    spectrum = np.abs(np.fft.rfft(pink)) ** 2
    assert abs(np.sqrt(np.mean(pink**2)) - 1) < 1e-4
    assert spectrum[10:100].mean() > 20 * spectrum[4000:8000].mean()  # 1/f: low frequencies dominate


def _samples_by_file(corpus: Path) -> dict[str, bytes]:
    return {str(p.relative_to(corpus)): sf.read(p, dtype="int16")[0].tobytes()
            for p in sorted((corpus / "audio").rglob("*.flac"))}


def test_corpus_is_bit_exact_whatever_the_worker_count(tmp_path):
    # espeak-ng's hidden state makes a sentence's samples depend on what the process spoke before; blocks of
    # utterances in fresh processes make them depend on the seed alone. > 2 blocks, so workers interleave.
    cfg = SyntheticConfig(hours=170 / 3600, seed=3, voices=("en-us", "en"), variants=("m1", "klatt"),
                          test_speakers=1, subsets_minutes=())
    prepare_synthetic(tmp_path / "one", cfg, jobs=1, progress=False, echo=False)
    prepare_synthetic(tmp_path / "two", cfg, jobs=2, progress=False, echo=False)
    one, two = _samples_by_file(tmp_path / "one"), _samples_by_file(tmp_path / "two")
    assert len(one) > 2 * UTTERANCES_PER_PROCESS
    assert one.keys() == two.keys() and all(one[k] == two[k] for k in one)
    assert (tmp_path / "one" / "train.tsv").read_text().splitlines()[1:] == \
        (tmp_path / "two" / "train.tsv").read_text().splitlines()[1:]


def test_a_failing_worker_raises_instead_of_hanging(tmp_path):
    cfg = SyntheticConfig(hours=10 / 3600, voices=("no-such-voice",), variants=("m1", "f1"), test_speakers=1)
    with pytest.raises(EspeakError, match="no-such-voice"):
        prepare_synthetic(tmp_path / "bad", cfg, jobs=2, progress=False, echo=False)
