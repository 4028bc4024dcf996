import numpy as np
import pytest
import soundfile as sf

from speechssl.data.audio import (
    AN4_RAW,
    AudioError,
    audio_info,
    load_audio,
    normalize_waveform,
    resampled_length,
)

CASES = [
    ("wav", 8000, 1, "PCM_16"),
    ("wav", 16000, 2, "PCM_24"),
    ("wav", 44100, 1, "FLOAT"),
    ("flac", 8000, 2, "PCM_24"),
    ("flac", 16000, 1, "PCM_16"),
    ("flac", 44100, 2, "PCM_16"),
    ("ogg", 16000, 1, None),
    ("ogg", 44100, 2, None),
]


def _peak_hz(x: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sample_rate / len(x))


@pytest.mark.parametrize("ext,rate,channels,subtype", CASES)
def test_load_resamples_keeps_frequency_and_length(tmp_path, sine, write_audio, ext, rate, channels, subtype):
    frequency, seconds = 440.0, 0.75
    data = sine(frequency, seconds, rate, channels)
    path = write_audio(tmp_path / f"a.{ext}", data, rate, subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    expected = round(data.shape[0] * 16000 / rate)
    assert abs(y.shape[0] - expected) <= 1
    assert abs(_peak_hz(y, 16000) - frequency) < 16000 / len(y) * 1.5
    # header-only length agrees with decoding (what manifests record)
    assert abs(audio_info(path).num_samples() - y.shape[0]) <= 1
    rms = np.sqrt(np.mean(y[2000:-2000] ** 2))
    assert 0.3 < rms < 0.4  # 0.5 / sqrt(2): amplitude kept through format, mixdown and resampling


def test_stereo_is_averaged(tmp_path, sine, write_audio):
    left = sine(300, 0.5, 16000)
    data = np.stack([left, -left], axis=1)  # opposite phase: the mono mean is silence
    y = load_audio(write_audio(tmp_path / "s.wav", data, 16000, "FLOAT"))
    assert np.abs(y).max() < 1e-6


def test_resampled_length_matches_soxr():
    import soxr

    for rate, n in [(8000, 1001), (44100, 12345), (22050, 44101), (32000, 7)]:
        assert resampled_length(n, rate) == len(soxr.resample(np.zeros(n, np.float32), rate, 16000))


def test_raw_big_endian(tmp_path, sine):
    samples = (sine(500, 0.2, 16000) * 32767).astype(">i2")
    path = tmp_path / "x.raw"
    path.write_bytes(samples.tobytes())
    y = load_audio(path, raw_format=AN4_RAW)
    np.testing.assert_allclose(y, samples.astype(np.float32) / 32768, atol=1e-7)


def test_normalize_zero_mean_unit_variance(tmp_path, sine, write_audio):
    y = load_audio(write_audio(tmp_path / "n.flac", sine(200, 0.3, 16000) + 0.1, 16000), normalize=True)
    assert abs(y.mean()) < 1e-4 and abs(y.std() - 1) < 1e-3
    assert normalize_waveform(np.zeros(10, np.float32)).max() == 0


def test_errors_name_the_file(tmp_path, sine):
    with pytest.raises(AudioError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")
    bad = tmp_path / "garbage.flac"
    bad.write_bytes(b"not audio at all" * 10)
    with pytest.raises(AudioError, match="garbage.flac"):
        load_audio(bad)
    nan = sine(100, 0.1, 16000)
    nan[10] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, nan, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*non-finite"):
        load_audio(path)
