"""Block-aligned windows over stream audio files, read with bounded memory.

A stream of blocks ``block_s`` seconds long is cut into windows of ``window_blocks`` whole blocks,
starting every ``hop_blocks`` blocks from the stream's first sample. Lengths given in seconds are
rounded to the nearest whole number of blocks (at least one); the actual seconds are what the
tables record. Only full windows are produced: a trailing partial window is dropped.

Reading is streaming: each window is read from the file with ``soundfile`` (seek + read), so a
30-minute stream never sits in memory; at most one window per open stream does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf

from bench.core.errors import ConfigError


@dataclass(frozen=True)
class WindowSpec:
    """Windows of ``window_blocks`` blocks every ``hop_blocks`` blocks of ``block_samples`` samples."""

    block_samples: int
    sample_rate: int
    window_blocks: int
    hop_blocks: int

    def __post_init__(self) -> None:
        for name in ("block_samples", "sample_rate", "window_blocks", "hop_blocks"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ConfigError(f"WindowSpec.{name} must be an integer >= 1, got {value!r}")

    @classmethod
    def from_seconds(cls, window_s: float, hop_s: float, block_s: float, sample_rate: int) -> "WindowSpec":
        """Round ``window_s`` and ``hop_s`` to the nearest whole number (>= 1) of ``block_s`` blocks."""
        if not (window_s > 0 and hop_s > 0 and block_s > 0):
            raise ConfigError(
                f"window_s, hop_s and block_s must all be > 0 seconds; got window_s={window_s}, "
                f"hop_s={hop_s}, block_s={block_s}"
            )
        block_samples = int(round(block_s * sample_rate))
        if block_samples < 1:
            raise ConfigError(f"block_s ({block_s}) is shorter than one sample at {sample_rate} Hz")
        return cls(
            block_samples=block_samples,
            sample_rate=int(sample_rate),
            window_blocks=max(1, int(round(window_s / block_s))),
            hop_blocks=max(1, int(round(hop_s / block_s))),
        )

    @property
    def window_samples(self) -> int:
        return self.window_blocks * self.block_samples

    @property
    def hop_samples(self) -> int:
        return self.hop_blocks * self.block_samples

    @property
    def window_s(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def hop_s(self) -> float:
        return self.hop_samples / self.sample_rate

    @property
    def block_s(self) -> float:
        return self.block_samples / self.sample_rate

    def count(self, total_samples: int) -> int:
        """How many full windows a stream of ``total_samples`` samples holds."""
        if total_samples < self.window_samples:
            return 0
        return (total_samples - self.window_samples) // self.hop_samples + 1

    def bounds(self, index: int) -> tuple[int, int]:
        """[start, end) sample bounds of window ``index``."""
        start = index * self.hop_samples
        return start, start + self.window_samples

    def describe(self) -> str:
        return (
            f"windows of {self.window_blocks} blocks ({self.window_s:g} s) every {self.hop_blocks} "
            f"blocks ({self.hop_s:g} s), block {self.block_s:g} s at {self.sample_rate} Hz"
        )


@dataclass(frozen=True)
class StreamFileInfo:
    path: str
    sample_rate: int
    channels: int
    samples: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


def stream_file_info(path: str | os.PathLike) -> StreamFileInfo:
    """Sample rate, channels and length of a stream audio file, with a clear error if unreadable."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"stream audio file {path!r} does not exist (was the stream written?)")
    try:
        info = sf.info(path)
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError for unreadable files
        raise ValueError(f"stream audio file {path!r} cannot be read as audio: {exc}") from exc
    return StreamFileInfo(path=path, sample_rate=int(info.samplerate), channels=int(info.channels),
                          samples=int(info.frames))


@dataclass(frozen=True)
class Window:
    index: int
    start_sample: int
    end_sample: int
    sample_rate: int
    audio: np.ndarray  # (channels, samples) float32

    @property
    def start_s(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.end_sample / self.sample_rate

    @property
    def mid_s(self) -> float:
        return 0.5 * (self.start_s + self.end_s)


def _check_rate(info: StreamFileInfo, spec: WindowSpec) -> None:
    if info.sample_rate != spec.sample_rate:
        raise ValueError(
            f"stream {info.path!r} is at {info.sample_rate} Hz but the window spec expects "
            f"{spec.sample_rate} Hz; build the WindowSpec from the stream's own sample rate"
        )


def iter_windows(path: str | os.PathLike, spec: WindowSpec, max_windows: int | None = None) -> Iterator[Window]:
    """Yield the full windows of one stream file in order, one window in memory at a time."""
    for _, _, audios in iter_aligned_windows([path], spec, max_windows=max_windows):
        yield audios[0]


def iter_aligned_windows(
    paths: Sequence[str | os.PathLike], spec: WindowSpec, max_windows: int | None = None
) -> Iterator[tuple[int, tuple[int, int], list[Window]]]:
    """Yield ``(index, (start, end), [window of each stream])`` window by window across streams.

    All streams must share the sample rate; the number of windows is that of the SHORTEST stream
    (streams of one drift run have equal horizons, so normally nothing is dropped). Memory: one
    window per stream.
    """
    if not paths:
        raise ValueError("no stream files given")
    infos = [stream_file_info(p) for p in paths]
    for info in infos:
        _check_rate(info, spec)
    n_windows = min(spec.count(info.samples) for info in infos)
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    files = [sf.SoundFile(info.path, mode="r") for info in infos]
    try:
        for index in range(n_windows):
            start, end = spec.bounds(index)
            windows = []
            for info, handle in zip(infos, files):
                handle.seek(start)
                block = handle.read(end - start, dtype="float32", always_2d=True)  # (samples, channels)
                if block.shape[0] != end - start:
                    raise ValueError(f"short read from {info.path!r} at sample {start}: file changed while reading?")
                windows.append(Window(index, start, end, spec.sample_rate, np.ascontiguousarray(block.T)))
            yield index, (start, end), windows
    finally:
        for handle in files:
            handle.close()


def window_count(paths: Sequence[str | os.PathLike], spec: WindowSpec) -> int:
    """Number of aligned windows over ``paths`` (that of the shortest stream)."""
    return min(spec.count(stream_file_info(p).samples) for p in paths)

