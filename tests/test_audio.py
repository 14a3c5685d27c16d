"""Audio loading: bad files get errors naming them, conversions are logged."""

import logging

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_mtmm.data.audio import AudioFileError, load_audio


def write(path, data, rate):
    soundfile.write(str(path), data, rate, subtype="FLOAT")
    return str(path)


def test_mono_16k_is_returned_unchanged(tmp_path):
    data = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype("float32")
    wav = load_audio(write(tmp_path / "a.wav", data, 16000))
    torch.testing.assert_close(wav, torch.from_numpy(data))


def test_stereo_is_mixed_down_with_a_warning(tmp_path, caplog):
    left = np.full(1600, 0.2, dtype="float32")
    right = np.full(1600, 0.6, dtype="float32")
    path = write(tmp_path / "stereo.wav", np.stack([left, right], 1), 16000)
    with caplog.at_level(logging.WARNING):
        wav = load_audio(path)
    assert wav.shape == (1600,)
    assert wav.mean().item() == pytest.approx(0.4, abs=1e-6)
    assert "stereo.wav" in caplog.text and "mixed down" in caplog.text


def test_8khz_is_resampled_with_a_warning_about_the_missing_band(
    tmp_path, caplog
):
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype("float32")
    with caplog.at_level(logging.WARNING):
        wav = load_audio(write(tmp_path / "phone.wav", tone, 8000))
    assert wav.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s -> 1 Hz bins
    assert "phone.wav" in caplog.text and "above 4000 Hz" in caplog.text


def test_nan_samples_are_an_error_naming_the_file(tmp_path):
    data = np.zeros(100, dtype="float32")
    data[10] = np.nan
    with pytest.raises(AudioFileError, match="nan.wav.*NaN"):
        load_audio(write(tmp_path / "nan.wav", data, 16000))


def test_empty_and_unreadable_files_are_errors_naming_the_file(tmp_path):
    with pytest.raises(AudioFileError, match="empty.wav.*no audio"):
        load_audio(write(tmp_path / "empty.wav", np.zeros(0, "float32"), 16000))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav")
    with pytest.raises(AudioFileError, match="broken.wav.*cannot read"):
        load_audio(broken)
    with pytest.raises(AudioFileError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")


def test_max_seconds_crops(tmp_path):
    data = np.zeros(32000, dtype="float32")
    assert load_audio(
        write(tmp_path / "b.wav", data, 16000), max_seconds=1.5
    ).shape == (24000,)
