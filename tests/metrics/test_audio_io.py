import numpy as np
import pytest
import soundfile as sf

from metrics.audio_io import AudioError, common_sample_rate, list_audio_files, read_audio, validate_audio

SR = 16000


def _tone(seconds=1.0, channels=1, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def test_reads_channels_first_float32_and_leaves_the_file_alone(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, _tone(channels=2).T, SR, subtype="FLOAT")
    before = path.read_bytes()
    audio = read_audio(path)
    assert audio.samples.shape == (2, SR) and audio.samples.dtype == np.float32 and audio.sample_rate == SR
    assert audio.duration_s == pytest.approx(1.0)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["stereo.wav"]


def test_missing_empty_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        read_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: the file is empty"):
        read_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="junk.wav: unreadable as audio"):
        read_audio(tmp_path / "junk.wav")
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1), np.float32), SR)
    with pytest.raises(AudioError, match="no samples"):
        read_audio(tmp_path / "zero.wav")


def test_nan_and_silence_are_refused(tmp_path):
    bad = _tone()
    bad[0, 800] = np.nan
    sf.write(tmp_path / "nan.wav", bad.T, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"1 NaN/inf samples \(first at sample 800, 0.050 s\)"):
        read_audio(tmp_path / "nan.wav")
    sf.write(tmp_path / "silent.wav", np.zeros((SR, 1), np.float32), SR)
    with pytest.raises(AudioError, match="silent"):
        read_audio(tmp_path / "silent.wav")
    assert read_audio(tmp_path / "silent.wav", allow_silence=True).samples.shape == (1, SR)


def test_sample_rate_checks():
    with pytest.raises(AudioError, match="44100 Hz does not match the expected 16000 Hz"):
        validate_audio(_tone(sr=44100), 44100, expected_sample_rate=16000)
    with pytest.raises(AudioError, match="positive integer"):
        validate_audio(_tone(), 0)
    assert common_sample_rate({"a": 16000, "b": 16000}) == 16000
    with pytest.raises(AudioError, match="mismatched sample rates.*16000 Hz: a.*48000 Hz: b"):
        common_sample_rate({"a": 16000, "b": 48000})


def test_shapes():
    assert validate_audio(_tone()[0], SR).shape == (1, SR)
    with pytest.raises(AudioError, match="looks like \\(samples, channels\\)"):
        validate_audio(_tone(channels=2).T, SR)
    with pytest.raises(AudioError, match="empty"):
        validate_audio(np.zeros((1, 0), np.float32), SR)


def test_listing(tmp_path):
    with pytest.raises(AudioError, match="no audio files"):
        list_audio_files(tmp_path)
    for name in ("b.wav", "a.flac", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_audio_files(tmp_path)] == ["a.flac", "b.wav"]
