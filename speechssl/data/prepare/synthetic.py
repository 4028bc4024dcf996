"""``speechssl prepare synthetic``: an English speech corpus made offline with espeak-ng.

Utterance ``i`` is a pure function of ``(seed, i)``: its speaker (an espeak-ng voice + variant), sentence,
speaking rate, pitch, room (a short synthetic exponentially decaying impulse response) and background noise
(white or pink at 20-40 dB SNR). Speech is synthesised at 22,050 Hz, resampled to 16 kHz with soxr and
written as FLAC under ``OUT/audio/<speaker>/``. Utterances are generated in index order until the requested
hours are reached, in a process pool (espeak-ng is not thread-safe).

The corpus is bit-exact for a given seed and length, whatever ``--jobs``: espeak-ng keeps hidden state from
one utterance to the next inside a process (calling it twice on one sentence gives samples, even lengths,
that differ; re-initialising the library does not reset it), but a process that starts clean and speaks the
same utterances in the same order gives the same samples. So utterances are synthesised in fixed blocks of
``UTTERANCES_PER_PROCESS`` consecutive indices, each block in a fresh worker process.

Splits: ``test`` holds every utterance of ``test_speakers`` voices never heard in training; the other
utterances go to ``train`` and, by ``valid_percent``, ``valid``; ``train_10min`` and ``train_1h`` are seeded
subsets of ``train`` when it is long enough. ``speakers.tsv`` lists each speaker's voice, variant, base rate,
base pitch and split so recipes can hold voices out. Labels and ``dict.ltr.txt`` come from the same writer
as ``prepare folder``.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from speechssl.data.audio import SAMPLE_RATE
from speechssl.data.prepare.report import PrepareReport
from speechssl.data.prepare.splits import split_by_percent
from speechssl.data.prepare.writer import CorpusWriter, SourceFile, Utterance

UTTERANCES_PER_PROCESS = 16
"""Utterances synthesised by one fresh worker process, in index order (module docstring)."""
# espeak-ng's English voices (lang/gmw) and voice variants (voices/!v) that stay intelligible;
# whisper, croak and the novelty variants are left out.
VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
          "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt2", "klatt3")
# The other variants espeak-ng ships (voices/!v: contributed voices that change formants, pitch contour,
# breathiness, flutter) that stay intelligible; the whisper, croak and robot ones and the novelty voices
# (Demonic, Tweaky, AnxiousAndy, UniRobot, ...) are left out. `--extra-variants all` adds these speakers: many
# more voices for a pretraining corpus than a labelled one usually has.
EXTRA_VARIANTS = (
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo", "Jacky",
    "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "Reed", "RicishayMax", "Storm", "adam", "anika",
    "announcer", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "edward2",
    "f5", "fast", "grandma", "grandpa", "gustave", "ian", "iven", "iven2", "iven3", "iven4", "john", "klatt4",
    "klatt5", "klatt6", "linda", "m8", "marcelo", "max", "michel", "miguel", "mike2", "norbert", "pablo", "paul",
    "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor", "zac",
)


@dataclass(kw_only=True)
class SyntheticConfig:
    """What to synthesise."""

    hours: float = 1.0
    """Audio to generate (stops at the first utterance reaching it)."""
    seed: int = 0
    """Everything about utterance i derives from (seed, i)."""
    voices: tuple[str, ...] = VOICES
    """espeak-ng voice names."""
    variants: tuple[str, ...] = VARIANTS
    """Voice variants; a speaker is ``voice+variant``."""
    test_speakers: int = 8
    """Speakers held out of train/valid; their utterances form ``test``."""
    valid_percent: float = 0.05
    """Share of the seen-speaker utterances held out as ``valid``."""
    rate_range: tuple[int, int] = (130, 200)
    """Speaker base speaking rate, words per minute (espeak default 175)."""
    pitch_range: tuple[int, int] = (30, 70)
    """Speaker base pitch, 0-100 (espeak default 50)."""
    snr_db: tuple[float, float] = (20.0, 40.0)
    """Background noise SNR range."""
    reverb_probability: float = 0.5
    """Share of utterances given a room impulse response."""
    rt60: tuple[float, float] = (0.1, 0.4)
    """Reverberation decay time range, seconds."""
    subsets_minutes: tuple[float, ...] = (10.0, 60.0)
    """Seeded subsets of train written as ``train_<m>min`` (when train is long enough)."""
    extra_variants: tuple[str, ...] = ()
    """More variants, each combined with every voice. Their speakers are never held out, and the speakers of
    `variants` (rates, pitches, held-out set) are drawn exactly as without them: a pretraining corpus with
    extra voices holds out the same test voices as the labelled corpus of the same seed."""
    first_index: int = 0
    """Index of the first utterance. A second corpus of the same seed starting past the first one's last index
    shares none of its utterances and holds out the same voices (an unlabelled pretraining corpus beside a
    labelled one)."""
    speed_range: tuple[float, float] = (1.0, 1.0)
    """Speed perturbation factor per utterance (resampling, which changes tempo and pitch together, as Kaldi's
    speed perturbation); (1, 1): none."""
    band_limit_probability: float = 0.0
    """Share of utterances band-limited (a telephone or a cheap microphone): high-pass at 100-400 Hz and
    low-pass at 2.8-7 kHz."""

    def validate(self) -> None:
        if not self.hours > 0:
            raise ValueError(f"`hours` must be > 0, got {self.hours}")
        if not self.voices or not self.variants:
            raise ValueError(f"`voices` and `variants` must not be empty, got {self.voices} / {self.variants}")
        n = len(self.voices) * len(self.variants)
        if not 0 <= self.test_speakers < n:
            raise ValueError(f"`test_speakers` must be in [0, {n}), got {self.test_speakers}")
        if not 0 <= self.valid_percent < 1:
            raise ValueError(f"`valid_percent` must be in [0, 1), got {self.valid_percent}")
        if not 0 <= self.reverb_probability <= 1:
            raise ValueError(f"`reverb_probability` must be in [0, 1], got {self.reverb_probability}")
        for name in ("rate_range", "pitch_range", "snr_db", "rt60", "speed_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"`{name}` must be (low, high) with low <= high, got {(lo, hi)}")
        if not (0.5 <= self.speed_range[0] and self.speed_range[1] <= 2.0):
            raise ValueError(f"`speed_range` must lie within [0.5, 2], got {self.speed_range}")
        if not 0 <= self.band_limit_probability <= 1:
            raise ValueError(f"`band_limit_probability` must be in [0, 1], got {self.band_limit_probability}")
        if self.first_index < 0:
            raise ValueError(f"`first_index` must be >= 0, got {self.first_index}")
        shared = sorted(set(self.extra_variants) & set(self.variants))
        if shared:
            raise ValueError(f"`extra_variants` repeats variants already in `variants`: {shared}")


@dataclass(frozen=True, kw_only=True)
class Speaker:
    """A synthetic speaker: a voice, a variant, and its base rate and pitch."""

    name: str
    """``voice+variant`` (what espeak-ng is given)."""
    voice: str
    variant: str
    rate: int
    """Base words per minute."""
    pitch: int
    """Base pitch 0-100."""
    held_out: bool
    """True for test-only speakers."""

    @property
    def dirname(self) -> str:
        return self.name.replace("+", "_")


@dataclass(frozen=True, kw_only=True)
class UtteranceSpec:
    """Everything needed to render utterance ``index``."""

    index: int
    speaker: Speaker
    text: str
    rate: int
    pitch: int
    snr_db: float
    pink: bool
    rt60: float | None
    """None = no reverberation."""
    peak: float
    """Peak amplitude of the written waveform."""
    speed: float = 1.0
    """Speed perturbation factor (1: none)."""
    band: tuple[float, float] | None = None
    """(high-pass, low-pass) corner frequencies in Hz, or None (full band)."""

    @property
    def relpath(self) -> str:
        return f"{self.speaker.dirname}/{self.speaker.dirname}-{self.index:06d}.flac"


def make_speakers(config: SyntheticConfig) -> list[Speaker]:
    """All voice x variant speakers; base rate/pitch and the held-out set drawn from the seed."""
    rng = np.random.default_rng([config.seed, 0x5BEA])
    names = [(v, var) for v in config.voices for var in config.variants]
    held = set(rng.permutation(len(names))[: config.test_speakers].tolist())
    # The extra variants' speakers come after, from the same stream: the base speakers are unchanged by them.
    extra = [(v, var) for v in config.voices for var in config.extra_variants]
    speakers = []
    for k, (voice, variant) in enumerate(names + extra):
        speakers.append(Speaker(name=f"{voice}+{variant}", voice=voice, variant=variant,
                                rate=int(rng.integers(config.rate_range[0], config.rate_range[1] + 1)),
                                pitch=int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
                                held_out=k in held))
    return speakers


def utterance_spec(index: int, config: SyntheticConfig, speakers: list[Speaker], generator) -> UtteranceSpec:
    """Draw utterance ``index`` from a generator seeded by ``(seed, index)``."""
    rng = np.random.default_rng([config.seed, 1, index])
    speaker = speakers[int(rng.integers(len(speakers)))]
    text = generator.sentence(rng)
    rate = int(np.clip(speaker.rate + rng.integers(-15, 16), 80, 450))
    pitch = int(np.clip(speaker.pitch + rng.integers(-8, 9), 0, 99))
    snr = float(rng.uniform(*config.snr_db))
    pink = bool(rng.random() < 0.5)
    rt60 = float(rng.uniform(*config.rt60)) if rng.random() < config.reverb_probability else None
    peak = float(rng.uniform(0.3, 0.9))
    # The perturbations draw from a stream of their own, so a corpus without them is unchanged by their
    # existence (bit for bit).
    extra = np.random.default_rng([config.seed, 3, index])
    speed = float(extra.uniform(*config.speed_range)) if config.speed_range != (1.0, 1.0) else 1.0
    band = None
    if config.band_limit_probability > 0 and extra.random() < config.band_limit_probability:
        band = (float(extra.uniform(100.0, 400.0)), float(extra.uniform(2800.0, 7000.0)))
    return UtteranceSpec(index=index, speaker=speaker, text=text, rate=rate, pitch=pitch, snr_db=snr, pink=pink,
                         rt60=rt60, peak=peak, speed=speed, band=band)


def room_impulse_response(rt60: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A direct path then a decaying noise tail (-60 dB at ``rt60``) 10-20 dB below it: a small room."""
    n = max(1, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: 60 dB of decay
    tail[0] = 0.0
    tail *= 10 ** (-rng.uniform(10, 20) / 20) / max(np.sqrt(np.sum(tail**2)), 1e-9)
    tail[0] = 1.0
    return tail.astype(np.float32)


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Linear convolution through the FFT, truncated to ``len(x)`` (the reverberant tail past the end is cut)."""
    n = x.shape[0] + h.shape[0] - 1
    size = 1 << max(0, (n - 1).bit_length())  # power of two: fastest FFT sizes
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)
    return y[: x.shape[0]].astype(np.float32)


def background_noise(n: int, pink: bool, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white or pink (1/f power, shaped in the frequency domain) noise of ``n`` samples."""
    white = rng.standard_normal(n)
    if pink and n > 1:
        spectrum = np.fft.rfft(white)
        freqs = np.arange(spectrum.shape[0], dtype=np.float64)
        freqs[0] = 1.0
        white = np.fft.irfft(spectrum / np.sqrt(freqs), n=n)
    rms = np.sqrt(np.mean(white**2)) if n else 1.0
    return (white / max(rms, 1e-12)).astype(np.float32)


def band_limit(x: np.ndarray, high_pass: float, low_pass: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Keep ``high_pass``-``low_pass`` Hz: a raised-cosine edge an octave wide below, a third of an octave above
    (zero phase, through the FFT)."""
    n = x.shape[0]
    if n < 2:
        return x
    size = 1 << (n - 1).bit_length()
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    lo = np.clip(np.log2(np.maximum(freqs, 1e-3) / (high_pass / 2)), 0.0, 1.0)  # 0 below hp/2, 1 above hp
    hi = np.clip(np.log2(low_pass * 2 ** (1 / 3) / np.maximum(freqs, 1e-3)) * 3, 0.0, 1.0)
    gain = (0.5 - 0.5 * np.cos(np.pi * lo)) * (0.5 - 0.5 * np.cos(np.pi * hi))
    return np.fft.irfft(np.fft.rfft(x, size) * gain, size)[:n].astype(np.float32)


def render(spec: UtteranceSpec, speech: np.ndarray, source_rate: int, seed: int) -> np.ndarray:
    """int16 speech at ``source_rate`` -> 16 kHz float32 with speed, room, band and noise, peak-normalised."""
    # Speed perturbation: read the samples as if recorded at source_rate * speed (faster and higher for > 1).
    x = soxr.resample(speech.astype(np.float32) / 32768.0, source_rate * spec.speed, SAMPLE_RATE)
    rng = np.random.default_rng([seed, 2, spec.index])
    if spec.rt60 is not None:
        x = convolve(x, room_impulse_response(spec.rt60, rng))
    if spec.band is not None:
        x = band_limit(x, *spec.band)
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    if rms > 0:
        x = x + background_noise(x.shape[0], spec.pink, rng) * (rms * 10 ** (-spec.snr_db / 20))
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0:
        x = x * (spec.peak / peak)
    return x.astype(np.float32)


# ------------------------------------------------------------------ worker processes
_WORKER: dict = {}


def _init_worker(config: SyntheticConfig, audio_dir: str) -> None:
    from speechssl.data.prepare.espeak import EspeakSynthesizer
    from speechssl.data.prepare.sentences import SentenceGenerator

    _WORKER.update(config=config, audio_dir=Path(audio_dir), synth=EspeakSynthesizer(),
                   generator=SentenceGenerator(), speakers=make_speakers(config))


def _make_utterance(index: int) -> tuple[int, str, str, str, int]:
    """Render and write utterance ``index``; returns (index, relpath, text, speaker, samples)."""
    config: SyntheticConfig = _WORKER["config"]
    spec = utterance_spec(index, config, _WORKER["speakers"], _WORKER["generator"])
    synth = _WORKER["synth"]
    speech = synth.synthesize(spec.text, voice=spec.speaker.name, rate=spec.rate, pitch=spec.pitch)
    audio = render(spec, speech, synth.sample_rate, config.seed)
    path = _WORKER["audio_dir"] / spec.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    return index, spec.relpath, spec.text, spec.speaker.name, int(audio.shape[0])


def _make_block(first: int, config: SyntheticConfig, audio_dir: str) -> list[tuple[int, str, str, str, int]]:
    """Utterances ``first .. first + UTTERANCES_PER_PROCESS - 1``, in order, in this (fresh) process."""
    # Set up here rather than as the pool's initializer: an initializer that raises (no espeak-ng) makes
    # multiprocessing.Pool respawn workers forever, while an error here reaches the caller's .get().
    _init_worker(config, audio_dir)
    return [_make_utterance(index) for index in range(first, first + UTTERANCES_PER_PROCESS)]


def _generate(config: SyntheticConfig, audio_dir: Path, jobs: int, progress: bool) -> list[tuple]:
    """Utterances 0..n-1 where n is the first count whose total reaches ``config.hours``."""
    target = config.hours * 3600 * SAMPLE_RATE
    results: list[tuple] = []
    extra: list[tuple] = []
    total = 0
    bar = tqdm(total=round(config.hours * 3600), unit="s", desc="synthesising", disable=not progress)
    window = 2 * jobs
    # One block per worker process (maxtasksperchild=1): each block starts from a clean espeak-ng, which makes
    # every utterance's samples independent of the scheduling (module docstring). Workers fork from a
    # forkserver that has imported this module and never loads espeak-ng: a fresh worker is cheap and clean,
    # and no worker is forked from the caller itself, whose other threads (torch's, tqdm's monitor) can hold a
    # lock at the moment of a fork. Forked from a test process that had run torch, the pool once took 14
    # minutes to shut down after a worker's error.
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with context.Pool(jobs, maxtasksperchild=1) as pool:
        pending: deque = deque()
        next_first = config.first_index
        while total < target:
            while len(pending) < window:
                pending.append(pool.apply_async(_make_block, (next_first, config, str(audio_dir))))
                next_first += UTTERANCES_PER_PROCESS
            for result in pending.popleft().get():
                if total >= target:
                    extra.append(result)
                    continue
                results.append(result)
                total += result[4]
                bar.update(round(result[4] / SAMPLE_RATE))
        # blocks past the target were rendered ahead: let them finish, then drop them so the corpus is a
        # prefix by index
        extra += [r for block in pending for r in block.get()]
    bar.close()
    for _, relpath, _, _, _ in extra:
        (audio_dir / relpath).unlink(missing_ok=True)
    return results


def prepare_synthetic(out_dir: str | Path, config: SyntheticConfig | None = None, *, jobs: int = 1,
                      progress: bool = True, echo: bool = True) -> PrepareReport:
    """Synthesise ``config.hours`` of speech under ``out_dir/audio`` and write manifests, labels, speakers."""
    config = config or SyntheticConfig()
    config.validate()
    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = _generate(config, audio_dir, max(1, int(jobs)), progress)
    seconds = time.perf_counter() - start

    speakers = {s.name: s for s in make_speakers(config)}
    writer = CorpusWriter(out_dir, audio_dir, labeled=True, jobs=jobs, progress=progress)
    sources = [SourceFile(path=audio_dir / rel, relpath=rel, text=text, speaker=spk)
               for _, rel, text, spk, _ in results]
    kept = writer.probe(sources, known_samples=[r[4] for r in results])
    seen: list[Utterance] = [u for u in kept if not speakers[u.source.speaker].held_out]
    test = [u for u in kept if speakers[u.source.speaker].held_out]
    train, valid = split_by_percent(seen, config.valid_percent, config.seed)
    writer.write_split("train", train)
    writer.write_split("valid", valid)
    writer.write_split("test", test)
    for minutes in config.subsets_minutes:
        writer.write_duration_subset(f"train_{minutes:g}min", train, minutes * 60, config.seed)
    writer.write_speakers(kept, extra={
        s.name: {"voice": s.voice, "variant": s.variant, "rate": str(s.rate), "pitch": str(s.pitch),
                 "split": "test" if s.held_out else "train"} for s in speakers.values()})
    audio_seconds = sum(r[4] for r in results) / SAMPLE_RATE
    stats = {"config": asdict(config), "utterances": len(results), "audio_seconds": audio_seconds,
             "synthesis_seconds": seconds, "jobs": jobs, "speakers_used": len({r[3] for r in results}),
             "realtime_factor": audio_seconds / max(seconds, 1e-9)}
    (out_dir / "synthetic.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    if echo:
        print(f"synthesised {audio_seconds / 3600:.3f} h in {seconds:.1f} s with {jobs} process(es) "
              f"({stats['realtime_factor']:.0f}x real time), {stats['speakers_used']} speakers")
    return writer.finish(echo=echo)
