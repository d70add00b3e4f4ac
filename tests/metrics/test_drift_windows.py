"""Block-aligned windows read back exactly the samples written, with bounded reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.core.errors import ConfigError
from metrics.drift.windows import WindowSpec, iter_aligned_windows, iter_windows, stream_file_info, window_count


def write_ramp(path: Path, samples: int, sample_rate: int = 1000, channels: int = 2, offset: float = 0.0) -> np.ndarray:
    audio = (offset + np.arange(samples * channels, dtype=np.float32).reshape(samples, channels)) / 1e6
    sf.write(path, audio, sample_rate, subtype="FLOAT")
    return audio.T  # (C, T)


def test_from_seconds_rounds_to_whole_blocks() -> None:
    spec = WindowSpec.from_seconds(window_s=10.0, hop_s=5.0, block_s=2.229, sample_rate=44100)
    assert spec.window_blocks == 4 and spec.hop_blocks == 2
    assert spec.window_samples == 4 * round(2.229 * 44100)
    tiny = WindowSpec.from_seconds(window_s=0.01, hop_s=0.01, block_s=1.0, sample_rate=1000)
    assert tiny.window_blocks == 1 and tiny.hop_blocks == 1  # at least one block
    with pytest.raises(ConfigError, match="window_s"):
        WindowSpec.from_seconds(window_s=0.0, hop_s=1.0, block_s=1.0, sample_rate=1000)


def test_windows_are_exact_slices(tmp_path: Path) -> None:
    audio = write_ramp(tmp_path / "s.wav", samples=1050)
    spec = WindowSpec(block_samples=100, sample_rate=1000, window_blocks=3, hop_blocks=2)
    windows = list(iter_windows(tmp_path / "s.wav", spec))
    # full windows only: starts 0, 200, ..., 600 (600 + 300 = 900 <= 1050; 800 + 300 > 1050)
    assert [w.start_sample for w in windows] == [0, 200, 400, 600]
    assert spec.count(1050) == 4
    for w in windows:
        assert w.audio.shape == (2, 300)
        np.testing.assert_array_equal(w.audio, audio[:, w.start_sample:w.end_sample])
        assert w.start_s == w.start_sample / 1000 and w.mid_s == (w.start_sample + 150) / 1000


def test_aligned_windows_across_streams_use_the_shortest(tmp_path: Path) -> None:
    a = write_ramp(tmp_path / "a.wav", samples=1000)
    b = write_ramp(tmp_path / "b.wav", samples=700, offset=0.5)
    spec = WindowSpec(block_samples=100, sample_rate=1000, window_blocks=2, hop_blocks=2)
    paths = [tmp_path / "a.wav", tmp_path / "b.wav"]
    assert window_count(paths, spec) == 3
    seen = list(iter_aligned_windows(paths, spec))
    assert [i for i, _, _ in seen] == [0, 1, 2]
    for index, (start, end), (wa, wb) in seen:
        np.testing.assert_array_equal(wa.audio, a[:, start:end])
        np.testing.assert_array_equal(wb.audio, b[:, start:end])


def test_clear_errors(tmp_path: Path) -> None:
    write_ramp(tmp_path / "s.wav", samples=1000, sample_rate=1000)
    spec = WindowSpec(block_samples=100, sample_rate=2000, window_blocks=1, hop_blocks=1)
    with pytest.raises(ValueError, match="1000 Hz but the window spec expects 2000 Hz"):
        list(iter_windows(tmp_path / "s.wav", spec))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        stream_file_info(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match="cannot be read as audio"):
        stream_file_info(tmp_path / "junk.wav")
    with pytest.raises(ConfigError, match="window_blocks"):
        WindowSpec(block_samples=100, sample_rate=1000, window_blocks=0, hop_blocks=1)
