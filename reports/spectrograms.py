"""Spectrogram strips: what each regime's longest stream sounds like at its start, middle and end,
beside a reference clip, as log-frequency spectrograms of the saved WAVs (numpy only, no model).

- Stream: each regime's LONGEST saved stream (:func:`reports.audio_clips.longest_stream`: a timed
  stream or a drift stream); three excerpts of ``min(EXCERPT_S, length / 3)`` seconds at the start,
  the middle and the end (the positions of the Listen section's excerpts).
- Reference: the drift stage's ``drift/reference/clip0.wav`` (the reference set's first clip, one
  drift window long, through the preset's codec), its first ``EXCERPT_S`` seconds; runs made before
  the stage saved it get no reference panel (the caption says so).
- Image: power spectra of Hann-windowed frames (``N_FFT_S`` = 128 ms, so bins are 7.8 Hz apart and
  bass notes resolve; hop ``HOP_S`` = 32 ms; :func:`metrics.embedders.logmel.power_frames`), in dB,
  read at ``N_BANDS`` log-spaced frequencies from ``F_MIN_HZ`` to the lowest Nyquist frequency of
  the figure's files (linear interpolation between bins): a log frequency axis, because the presets'
  codecs keep only the lowest kilohertz, where the music is, and one axis for every panel. One colour
  scale for the whole figure (its loudest cell at the top, a ``DYNAMIC_RANGE_DB`` range), so panels
  compare directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench.core.run_folder import RunData, RunSet
from bench.core.storage import DRIFT_DIR
from metrics.embedders.logmel import power_frames
from reports.audio_clips import excerpt_positions, longest_stream, stream_files
from reports.figure_parts import Missing
from reports.style import new_figure, sort_regimes

EXCERPT_S = 4.0
N_FFT_S = 0.128
HOP_S = 0.032
N_BANDS = 96
F_MIN_HZ = 40.0
FREQ_TICKS_HZ = (100.0, 1000.0, 4000.0)
DYNAMIC_RANGE_DB = 80.0
POWER_FLOOR = 1e-12
MAX_ROWS = 8
POSITIONS = ("start", "middle", "end")


@dataclass(frozen=True)
class Strip:
    """One row of the figure: a regime's three excerpts (and the reference's), as log-mel images."""

    label: str
    source: str  # the stream file, relative to its run folder
    images: dict[str, np.ndarray]  # position or "reference" -> (N_BANDS, frames) dB
    starts_s: dict[str, float]
    duration_s: float
    sample_rate: int


def band_frequencies_hz(top_hz: float) -> np.ndarray:
    """(N_BANDS,) log-spaced frequencies from ``F_MIN_HZ`` to ``top_hz`` (the image's rows)."""
    return np.geomspace(F_MIN_HZ, top_hz, N_BANDS)


def log_spectrogram_db(mono: np.ndarray, sample_rate: int, top_hz: float | None = None) -> np.ndarray:
    """(N_BANDS, frames) power in dB of a mono clip (samples,) at ``band_frequencies_hz(top_hz)``
    (``top_hz``: at most the Nyquist frequency, its default); at least one frame (zero-padded)."""
    n_fft = 1 << max(6, int(round(math.log2(N_FFT_S * sample_rate))))  # 2048 at 16 kHz
    hop = max(1, int(round(HOP_S * sample_rate)))
    x = np.asarray(mono, dtype=np.float64)
    if x.shape[0] < n_fft:
        x = np.concatenate([x, np.zeros(n_fft - x.shape[0])])
    power_db = 10.0 * np.log10(np.maximum(power_frames(x, n_fft, hop), POWER_FLOOR))  # (frames, n_fft // 2 + 1)
    bins_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)  # (n_fft // 2 + 1,)
    rows = band_frequencies_hz(min(top_hz or sample_rate / 2.0, sample_rate / 2.0))
    return np.stack([np.interp(rows, bins_hz, frame) for frame in power_db], axis=1)  # (N_BANDS, frames)


def read_mono(path: Any, start: int, samples: int) -> tuple[np.ndarray, int]:
    """``samples`` samples from ``start`` of an audio file, mixed down to mono; (audio, sample rate)."""
    with sf.SoundFile(path, mode="r") as fh:
        rate = int(fh.samplerate)
        fh.seek(start)
        audio = fh.read(samples, dtype="float32", always_2d=True)  # (samples, channels)
    return np.nan_to_num(audio.mean(axis=1)), rate


def reference_path(run: RunData) -> Path | None:
    """The run's saved reference clip (``drift/reference/clip0.wav``), or None."""
    record = run.drift_config.get("reference_audio") or {}
    path = run.root / DRIFT_DIR / str(record.get("path", ""))
    return path if record and path.is_file() else None


def reference_image(run: RunData, seconds: float, top_hz: float | None = None) -> np.ndarray | None:
    """The image of the run's saved reference clip (its first ``seconds``), or None."""
    path = reference_path(run)
    if path is None:
        return None
    info = sf.info(path)
    audio, rate = read_mono(path, 0, min(int(info.frames), int(round(seconds * info.samplerate))))
    return log_spectrogram_db(audio, rate, top_hz)


def top_frequency_hz(runs: RunSet) -> float:
    """The lowest Nyquist frequency of the runs' saved streams and reference clips (the top row)."""
    paths = [f.path for run in runs for f in stream_files(run)] + [reference_path(run) for run in runs]
    return min((sf.info(p).samplerate / 2.0 for p in paths if p is not None), default=math.inf)


def run_strips(run: RunData, label_prefix: str = "", top_hz: float | None = None) -> list[Strip]:
    """The strips of one run's regimes (suite order), each with the run's reference when saved."""
    files = stream_files(run)
    strips = []
    for generator in sort_regimes(f.generator for f in files):
        stream = longest_stream(files, generator)
        assert stream is not None
        rate, n, starts = excerpt_positions(stream.path, EXCERPT_S)
        if n < 1:
            continue
        images = {pos: log_spectrogram_db(read_mono(stream.path, s, n)[0], rate, top_hz)
                  for pos, s in starts.items()}
        ref = reference_image(run, n / rate, top_hz)
        if ref is not None:
            images["reference"] = ref
        strips.append(Strip(f"{label_prefix}{generator}", stream.source, images,
                            {pos: s / rate for pos, s in starts.items()}, n / rate, rate))
    return strips


def _frequency_ticks(ax: Any, top_hz: float) -> None:
    """Label a few frequencies on the image's (log-spaced) rows."""
    rows = np.log(band_frequencies_hz(top_hz))
    ticks = [f for f in FREQ_TICKS_HZ if F_MIN_HZ < f < top_hz]
    ax.set_yticks(np.interp(np.log(ticks), rows, np.arange(N_BANDS)))
    ax.set_yticklabels([f"{f / 1000:g}k" if f >= 1000 else f"{f:g}" for f in ticks], fontsize=5)


def _colour_limits(strips: list[Strip]) -> tuple[float, float]:
    top = max(float(img.max()) for s in strips for img in s.images.values())
    return top - DYNAMIC_RANGE_DB, top


def spectrogram_strips(runs: RunSet) -> tuple[Any, str]:
    """Per regime: spectrograms of its longest stream's start, middle and end, and a reference clip."""
    top_hz = top_frequency_hz(runs)
    strips: list[Strip] = []
    for run in runs:
        strips += run_strips(run, f"{run.label}: " if runs.multi else "", top_hz)
    if not strips:
        raise Missing("not in this run: no saved stream audio (cells/*/audio or drift/audio)")
    strips = strips[:MAX_ROWS]
    with_reference = any("reference" in s.images for s in strips)
    columns = [*POSITIONS, "reference"] if with_reference else list(POSITIONS)
    fig = new_figure(columns=2, aspect=(0.85 * len(strips) + 0.35) / 7.0)
    axes = fig.subplots(len(strips), len(columns), squeeze=False)  # (rows, columns)
    vmin, vmax = _colour_limits(strips)
    image = None
    for row, strip in zip(axes, strips):
        for ax, column in zip(row, columns):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if column not in strip.images:
                ax.set_axis_off()
                continue
            image = ax.imshow(strip.images[column], origin="lower", aspect="auto", cmap="magma", vmin=vmin,
                              vmax=vmax, interpolation="nearest")
            start = strip.starts_s.get(column, 0.0)
            when = ("reference clip" if column == "reference" else
                    f"{column} ({start:.3g}-{start + strip.duration_s:.3g} s)")
            ax.set_title(when, fontsize=5.5, pad=2)
        _frequency_ticks(row[0], top_hz)
        row[0].set_ylabel(strip.label, fontsize=5.5)
    if image is not None:
        fig.colorbar(image, ax=list(axes.ravel()), fraction=0.02, pad=0.01).set_label("dB", fontsize=5.5)
    caption = (f"Spectrograms (log frequency from {F_MIN_HZ:g} Hz to {top_hz:g} Hz, {N_FFT_S * 1000:g} ms "
               f"frames every {HOP_S * 1000:g} ms, one {DYNAMIC_RANGE_DB:g} dB colour scale) of each regime's longest "
               f"saved stream: up to {EXCERPT_S:g} s at its start, middle and end")
    caption += (", beside the drift stage's reference clip (the reference set's first clip, through the preset's "
                "codec)." if with_reference else ". No reference clip: this run's drift stage did not save one.")
    return fig, caption


__all__ = ["Strip", "band_frequencies_hz", "log_spectrogram_db", "reference_image", "reference_path", "run_strips",
           "spectrogram_strips", "top_frequency_hz"]
