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
    EXTRA_VARIANTS,
    UTTERANCES_PER_PROCESS,
    SyntheticConfig,
    band_limit,
    make_speakers,
    prepare_synthetic,
    render,
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


def test_extra_variants_keep_the_base_speakers_and_the_held_out_voices():
    """A pretraining corpus with many more voices holds out exactly the labelled corpus's test voices, and its
    base speakers keep their rates and pitches; the extra speakers are never held out."""
    base = make_speakers(SyntheticConfig(seed=4))
    rich = make_speakers(SyntheticConfig(seed=4, extra_variants=EXTRA_VARIANTS))
    assert rich[: len(base)] == base
    assert len(rich) == len(base) + 8 * len(EXTRA_VARIANTS)
    assert {s.name for s in rich if s.held_out} == {s.name for s in base if s.held_out}
    with pytest.raises(ValueError, match="extra_variants"):
        SyntheticConfig(extra_variants=("m1",)).validate()


def test_perturbations_draw_from_their_own_stream():
    """Speed and band limits leave every other property of an utterance as it was (a corpus without them is
    unchanged), and are drawn per utterance within their ranges."""
    plain = SyntheticConfig(seed=2)
    perturbed = SyntheticConfig(seed=2, speed_range=(0.9, 1.1), band_limit_probability=0.5)
    speakers, gen = make_speakers(plain), SentenceGenerator()
    specs = [(utterance_spec(i, plain, speakers, gen), utterance_spec(i, perturbed, speakers, gen)) for i in range(40)]
    for a, b in specs:
        assert (a.speaker, a.text, a.rate, a.pitch, a.snr_db, a.rt60, a.peak) == (
            b.speaker, b.text, b.rate, b.pitch, b.snr_db, b.rt60, b.peak)
        assert (a.speed, a.band) == (1.0, None) and 0.9 <= b.speed <= 1.1
    banded = [b.band for _, b in specs if b.band is not None]
    assert 8 <= len(banded) <= 32 and all(100 <= lo <= 400 and 2800 <= hi <= 7000 for lo, hi in banded)


def test_speed_and_band_limit_change_the_audio_as_asked():
    """Speed 1.25 shortens the rendered audio by 1.25; a 300-3000 Hz band removes what lies outside it."""
    rng = np.random.default_rng(0)
    speech = (rng.standard_normal(22050) * 3000).astype(np.int16)
    cfg = SyntheticConfig(seed=0)
    spec = utterance_spec(0, cfg, make_speakers(cfg), SentenceGenerator())
    normal = render(spec, speech, 22050, 0)
    fast = render(type(spec)(**{**spec.__dict__, "speed": 1.25}), speech, 22050, 0)
    assert normal.shape[0] == 16000 and abs(fast.shape[0] - 16000 / 1.25) <= 1
    noise = rng.standard_normal(16000).astype(np.float32)
    spectrum = np.abs(np.fft.rfft(band_limit(noise, 300.0, 3000.0))) ** 2
    freqs = np.fft.rfftfreq(16000, 1 / 16000)
    inside = spectrum[(freqs > 600) & (freqs < 2800)].mean()
    assert spectrum[freqs > 4000].mean() < 1e-4 * inside and spectrum[freqs < 100].mean() < 1e-2 * inside


def test_first_index_makes_a_disjoint_corpus_of_the_same_voices(tmp_path):
    cfg = SyntheticConfig(hours=6 / 3600, seed=1, voices=("en-us",), variants=("m1", "f2"), test_speakers=1,
                          valid_percent=0.0, subsets_minutes=())
    prepare_synthetic(tmp_path / "a", cfg, jobs=1, progress=False, echo=False)
    later = SyntheticConfig(**{**cfg.__dict__, "first_index": 1000, "extra_variants": ("Alex",)})
    prepare_synthetic(tmp_path / "b", later, jobs=1, progress=False, echo=False)

    def names(root):
        return {p.name for p in (root / "audio").rglob("*.flac")}
    a, b = names(tmp_path / "a"), names(tmp_path / "b")
    assert a and b and not a & b
    assert min(int(n.rsplit("-", 1)[1].split(".")[0]) for n in b) >= 1000


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
