"""Short listening excerpts cut from saved streams, for the HTML report's audio players.

For each regime, its LONGEST saved stream (a timed stream of any workload, ``cells/*/audio/``, or a
drift stream, ``drift/audio/``; ties go to the systems stream, then the lower repeat) gives three
excerpts: the start, the middle and the end. When the drift stage detected a degradation for the
regime (some metric's time to degrade), a fourth excerpt is centred on the earliest onset, cut
from the regime's first drift stream (the stream the onset was measured on, pooled with others).
The continuation stage's examples (a held-out context, then each system's continuation) are
copied whole.

Excerpts are ``min(clip_s, stream length / 3)`` seconds (whole samples) and are written as 16-bit
PCM WAV at the stream's own sample rate (every browser plays it). Streams are read with seeks, one
excerpt at a time, so memory stays bounded whatever the horizon.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from bench.core.run_folder import RunData, RunSet
from bench.core.storage import CONTINUATION_DIR, DRIFT_DIR
from reports.formatting import format_significant
from reports.style import sort_regimes

log = logging.getLogger(__name__)

DEFAULT_CLIP_S = 5.0


@dataclass(frozen=True)
class StreamFile:
    generator: str
    path: Path  # absolute
    source: str  # path relative to the run folder (shown in the report)
    audio_s: float
    kind: str  # "systems" or "drift"
    order: int  # repeat or stream index


@dataclass(frozen=True)
class Clip:
    run_label: str
    generator: str
    position: str  # start, middle, end, drift onset
    source: str  # the stream it was cut from (relative to its run folder)
    start_s: float
    duration_s: float
    samples: int
    sample_rate: int
    path: Path  # the written WAV
    detail: str = ""  # e.g. which metric's onset


def stream_files(run: RunData) -> list[StreamFile]:
    """Every saved stream of a run that exists on disk."""
    out: list[StreamFile] = []
    if not run.streams.empty:
        for _, s in run.streams.iterrows():
            if not s.get("audio_path"):
                continue
            rel = Path(run.cell_dir(s.generator, s.workload).relative_to(run.root)) / str(s.audio_path)
            path = run.root / rel
            if path.exists():
                out.append(StreamFile(str(s.generator), path, rel.as_posix(), float(s.audio_s), "systems", int(s["repeat"])))
    if run.drift_streams is not None and not run.drift_streams.empty:
        for _, s in run.drift_streams.iterrows():
            rel = Path(DRIFT_DIR) / str(s.audio_path)
            path = run.root / rel
            if path.exists():
                out.append(StreamFile(str(s.generator), path, rel.as_posix(), float(s.audio_s), "drift", int(s.stream)))
    return out


def longest_stream(files: list[StreamFile], generator: str) -> StreamFile | None:
    """``generator``'s longest saved stream (ties: systems streams first, then repeat/stream order)."""
    mine = [f for f in files if f.generator == generator]
    if not mine:
        return None
    return sorted(mine, key=lambda f: (-round(f.audio_s, 6), f.kind != "systems", f.order, f.source))[0]


def excerpt_positions(path: Path, excerpt_s: float) -> tuple[int, int, dict[str, int]]:
    """(sample rate, excerpt length in samples, {"start"|"middle"|"end": first sample}) of excerpts of
    at most ``excerpt_s`` seconds (and a third of the stream) from the stream at ``path``; the length
    is 0 when the stream is too short for one sample."""
    info = sf.info(path)
    total, rate = int(info.frames), int(info.samplerate)
    n = int(round(min(excerpt_s, total / rate / 3.0) * rate))
    return rate, n, {"start": 0, "middle": (total - n) // 2, "end": total - n}


def drift_onset(run: RunData, generator: str) -> tuple[float, str] | None:
    """(earliest time to degrade in s, metric) of ``generator`` in the drift summary, or None."""
    if run.drift_summary is None or run.drift_summary.empty:
        return None
    s = run.drift_summary[(run.drift_summary.generator == generator) & run.drift_summary.drifted.astype(bool)]
    s = s[np.isfinite(s.time_to_degrade_s.astype(float))]
    if s.empty:
        return None
    first = s.sort_values(["time_to_degrade_s", "metric"]).iloc[0]
    return float(first.time_to_degrade_s), str(first.metric)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def write_excerpt(source: Path, dest: Path, start_sample: int, samples: int) -> int:
    """Copy ``samples`` samples from ``start_sample`` of ``source`` into a 16-bit WAV ``dest``; returns the rate."""
    with sf.SoundFile(source, mode="r") as fh:
        rate = int(fh.samplerate)
        fh.seek(start_sample)
        audio = fh.read(samples, dtype="float32", always_2d=True)  # (samples, channels)
    if audio.shape[0] != samples:
        raise ValueError(f"{source}: asked for {samples} samples at {start_sample}, read {audio.shape[0]}")
    audio = np.clip(np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    sf.write(tmp, audio, rate, subtype="PCM_16", format="WAV")
    tmp.replace(dest)
    return rate


def cut_clips(runs: RunSet, out_dir: Path, clip_s: float = DEFAULT_CLIP_S) -> list[Clip]:
    """Write every run's excerpts under ``out_dir`` and describe them (in a deterministic order)."""
    if not clip_s > 0:
        raise ValueError(f"clip_s must be > 0 seconds, got {clip_s}")
    out_dir = Path(out_dir)
    clips: list[Clip] = []
    for index, run in enumerate(runs):
        files = stream_files(run)
        prefix = f"run{index + 1}_" if runs.multi else ""
        for generator in sort_regimes(f.generator for f in files):
            stream = longest_stream(files, generator)
            assert stream is not None
            _, n, starts = excerpt_positions(stream.path, clip_s)
            if n < 1:
                log.warning("%s: stream %s too short for an excerpt", generator, stream.source)
                continue
            wanted: list[tuple[str, StreamFile, int, str]] = [(pos, stream, s, "") for pos, s in starts.items()]
            onset = drift_onset(run, generator)
            if onset is not None:
                drift_files = [f for f in files if f.generator == generator and f.kind == "drift"]
                if drift_files:
                    d = sorted(drift_files, key=lambda f: f.order)[0]
                    d_info = sf.info(d.path)
                    d_total, d_rate = int(d_info.frames), int(d_info.samplerate)
                    d_n = min(int(round(min(clip_s, d_total / d_rate / 3.0) * d_rate)), d_total)
                    start = int(round(onset[0] * d_rate)) - d_n // 2
                    start = max(0, min(start, d_total - d_n))
                    wanted.append(("drift onset", d, start, f"{onset[1]} left its early band at {format_significant(onset[0], 6)} s"))
            for position, src, start, detail in wanted:
                length = n if src is stream else d_n
                dest = out_dir / f"{prefix}{_safe(generator)}__{_safe(position)}.wav"
                rate_written = write_excerpt(src.path, dest, start, length)
                clips.append(Clip(run.label, generator, position, src.source, start / rate_written,
                                  length / rate_written, length, rate_written, dest, detail))
        clips += continuation_clips(run, out_dir, prefix)
    return clips


def continuation_clips(run: RunData, out_dir: Path, prefix: str) -> list[Clip]:
    """The continuation stage's listening examples (a held-out clip's context, then each system's
    continuation of it), copied whole as 16-bit WAVs."""
    config = run.continuation_config or {}
    clips: list[Clip] = []
    detail = (f"first {format_significant(config.get('context_s'), 4)} s: the real context; then "
              f"{format_significant(config.get('generated_s'), 4)} s of continuation")
    for system, rel in (config.get("examples") or {}).items():
        source = Path(CONTINUATION_DIR) / str(rel)
        path = run.root / source
        if not path.exists():
            continue
        total = int(sf.info(path).frames)
        dest = out_dir / f"{prefix}continuation__{_safe(system)}.wav"
        rate = write_excerpt(path, dest, 0, total)
        clips.append(Clip(run.label, system, "continuation", source.as_posix(), 0.0, total / rate, total, rate, dest,
                          detail))
    return clips


def clips_table(clips: list[Clip], root: Path) -> pd.DataFrame:
    """The clips as a table (paths relative to ``root``)."""
    return pd.DataFrame([{
        "run": c.run_label, "generator": c.generator, "position": c.position, "source": c.source,
        "start_s": c.start_s, "duration_s": c.duration_s, "samples": c.samples, "sample_rate": c.sample_rate,
        "file": c.path.relative_to(root).as_posix(), "detail": c.detail,
    } for c in clips])


__all__ = ["Clip", "StreamFile", "stream_files", "longest_stream", "drift_onset", "write_excerpt", "cut_clips",
           "continuation_clips",
           "clips_table", "DEFAULT_CLIP_S"]
