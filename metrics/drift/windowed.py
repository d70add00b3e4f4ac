"""Per-window quality over stream time, against a fixed reference set and against the first window.

Window by window (index-major over all streams of one generator, so memory holds one window per
stream plus the first window's embeddings of each stream):

- per stream window: the signal statistics (:mod:`metrics.drift.signal_stats`); the embedding
  frames of the window (``embedder.embed``: ``(frames, features)``); the **self distance**
  ``self_kad_<embedder>``: KAD of this window's frames against the same stream's FIRST window
  (kernel bandwidth fixed to the reference set's, so values are comparable across windows and
  streams; NaN for window 0, the anchor, so the band rule's early windows are real distances); the
  CLAP score of the window against the stream's prompt when a CLAP embedder is given (H3's
  definition: mean over the CLAP embedder's 10 s windows of the cosine to the prompt embedding);
- per window (streams pooled): ``kad_<embedder>`` and ``fad_<embedder>`` of the pooled frames
  against the reference set, each with a seeded bootstrap CI (H3's :func:`metrics.quality.kad.kad`
  and :func:`metrics.quality.frechet_bootstrap.bootstrap_frechet`); the resampling unit is one BLOCK of one
  stream (frames are assigned to blocks by position), the reference resampled by clip. With more
  pooled frames than ``max_frames_per_window``, a seeded subsample (without replacement) is scored;
  the CLAP score over the window's streams (H3's :func:`metrics.quality.clap_score.clap_score`,
  streams as clips, bootstrap over streams); the mean over streams (NaN-aware) of the self
  distance and each signal statistic, each with a seeded percentile bootstrap CI over STREAMS (with 2-3 streams this is
  little more than their range: read it as a spread, not a precise interval);
- with a ``describer`` (:class:`metrics.drift.descriptor_windows.WindowDescriber`): the music
  descriptors of every stream window (pitch, key, onsets, tempo, key drift against the stream's first
  window) appended to its row, and the mean over streams of
  :data:`~metrics.drift.descriptor_columns.WINDOW_MEAN_COLUMNS` with the same bootstrap CI.

Every embedding column carries the embedder's name (``kad_logmel``): the default embedder is the
weight-free log-mel one, not a pretrained model, and no column may suggest otherwise. A window a
metric cannot score (a silent stream window has no embedding; too few frames for a covariance)
gets NaN and a note in the ``notes`` column, never a made-up number.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from metrics.audio_io import AudioError
from metrics.drift.descriptor_columns import WINDOW_MEAN_COLUMNS
from metrics.drift.descriptor_windows import WindowDescriber
from metrics.drift.signal_stats import DEFAULT_SIGNAL_STATS, SIGNAL_STAT_COLUMNS, SignalStatsConfig, signal_stats
from metrics.drift.windows import Window, WindowSpec, iter_aligned_windows
from metrics.quality.frechet_bootstrap import bootstrap_frechet
from metrics.quality.clap_score import clap_score
from metrics.quality.frechet import InsufficientDataError, frechet_distance_stats, gaussian_stats
from metrics.quality.kad import kad, median_pairwise_distance


@dataclass(frozen=True)
class ReferenceSet:
    """Embedding frames of the reference audio, with what is needed to score against them."""

    name: str  # what the reference is (stored in every table's provenance)
    embedder_identity: str
    frames: np.ndarray  # (N, D) float64
    clip_ids: np.ndarray  # (N,) clip of each frame (bootstrap unit)
    bandwidth: float  # KAD kernel bandwidth: median pairwise distance of ``frames``
    bandwidth_source: str
    n_clips: int
    example: np.ndarray | None = None  # (channels, samples) float32: clip 0, kept for the report's spectrograms
    descriptors: pd.DataFrame | None = None  # one row per clip (descriptor_windows.describe_reference), if described


def build_reference(
    clips: Sequence[np.ndarray], sample_rate: int, embedder: Any, *, name: str, max_frames: int = 2000, seed: int = 0,
) -> ReferenceSet:
    """Embed reference ``clips`` (each ``(channels, samples)``); a seeded subsample above ``max_frames``."""
    if len(clips) < 2:
        raise ValueError(f"a reference set needs at least 2 clips (bootstrap units), got {len(clips)}")
    frames, ids = [], []
    for j, clip in enumerate(clips):
        emb = embedder.embed(clip, sample_rate, source=f"reference clip {j}")  # (F, D)
        frames.append(emb.astype(np.float64))
        ids.append(np.full(emb.shape[0], j))
    x, g = np.concatenate(frames), np.concatenate(ids)
    if x.shape[0] > max_frames:
        keep = np.sort(np.random.default_rng([int(seed), 11]).choice(x.shape[0], max_frames, replace=False))
        x, g = x[keep], g[keep]
    bandwidth, how = median_pairwise_distance(x, seed=seed)
    example = np.asarray(clips[0], dtype=np.float32)
    return ReferenceSet(name, embedder.identity, x, g, bandwidth, how, len(clips), example=example)


def _block_of_frames(n_frames: int, window_blocks: int) -> np.ndarray:
    """Block (0..window_blocks-1) of each of ``n_frames`` evenly spaced frames of a window."""
    return np.minimum((np.arange(n_frames) * window_blocks) // max(n_frames, 1), window_blocks - 1)


def _nan_ci() -> tuple[float, float, float]:
    return math.nan, math.nan, math.nan


def _score_pool(
    reference: ReferenceSet, pooled: np.ndarray, groups: np.ndarray, n_boot: int, seed: int, level: float,
) -> tuple[dict[str, float], list[str]]:
    """KAD and FAD (value, CI) of pooled frames against the reference."""
    out: dict[str, float] = {}
    notes: list[str] = []
    units = np.unique(groups).size
    boot = n_boot if units >= 2 else 0
    if boot == 0 and n_boot > 0:
        notes.append("CI not measured: fewer than 2 bootstrap units")
    try:
        res = kad(reference.frames, pooled, bandwidth=reference.bandwidth, groups_reference=reference.clip_ids,
                  groups_evaluated=groups, n_boot=boot, seed=seed, level=level)
        out["kad"] = res.value
        ci = (res.ci.low, res.ci.high) if res.ci is not None else (math.nan, math.nan)
        out["kad_ci_low"], out["kad_ci_high"] = ci
    except InsufficientDataError as exc:
        out["kad"], out["kad_ci_low"], out["kad_ci_high"] = _nan_ci()
        notes.append(f"KAD not measured: {exc}")
    try:
        stats = gaussian_stats(pooled, what="window frames")
        ref_stats = gaussian_stats(reference.frames, what="reference frames")
        fd = frechet_distance_stats(ref_stats, stats)
        out["fad"] = fd.value
        out["fad_clipped_eigenvalues"] = float(fd.clipped_eigenvalues)
        if boot:
            ci, _ = bootstrap_frechet(reference.frames, pooled, groups_reference=reference.clip_ids,
                                      groups_evaluated=groups, n_boot=boot, seed=seed, level=level)
            out["fad_ci_low"], out["fad_ci_high"] = ci.low, ci.high
        else:
            out["fad_ci_low"], out["fad_ci_high"] = math.nan, math.nan
    except InsufficientDataError as exc:
        out["fad"], out["fad_ci_low"], out["fad_ci_high"] = _nan_ci()
        out["fad_clipped_eigenvalues"] = math.nan
        notes.append(f"FAD not measured: {exc}")
    return out, notes


def _clap(clap: Any, audio: dict[str, np.ndarray], text: np.ndarray, n_boot: int, seed: int,
          level: float) -> dict[str, Any]:
    """CLAP score (H3's :func:`metrics.quality.clap_score.clap_score`) of the embedded streams."""
    if not audio:
        return {"value": math.nan, "ci_low": math.nan, "ci_high": math.nan, "per_stream": {}}
    res = clap_score(audio, {sid: text[int(sid)] for sid in audio}, identity=clap.identity,
                     n_boot=n_boot if len(audio) >= 2 else 0, seed=seed, level=level)
    low, high = (res.ci.low, res.ci.high) if res.ci is not None else (math.nan, math.nan)
    return {"value": res.value, "ci_low": low, "ci_high": high, "per_stream": res.per_clip}


def _mean_ci_over_streams(values: np.ndarray, n_boot: int, seed: int, level: float) -> tuple[float, float, float]:
    """Mean of per-stream values with a seeded percentile bootstrap over streams."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return _nan_ci()
    if v.size < 2 or n_boot <= 0:
        return float(v.mean()), math.nan, math.nan
    rng = np.random.default_rng([int(seed), 3])
    reps = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    return float(v.mean()), float(low), float(high)


def windowed_metrics(
    paths: Sequence[str | os.PathLike], prompts: Sequence[str], spec: WindowSpec, embedder: Any,
    reference: ReferenceSet, *, clap: Any = None, stats_config: SignalStatsConfig = DEFAULT_SIGNAL_STATS,
    max_frames_per_window: int = 2000, n_boot: int = 200, level: float = 0.95, seed: int = 0,
    describer: WindowDescriber | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-window table, per-(stream, window) table) for the streams in ``paths``.

    ``prompts[i]`` is stream ``i``'s prompt (for the CLAP score). ``describer`` adds the music
    descriptors (None: none; the tables then hold exactly the columns they had before descriptors
    existed). See the module docstring for every column.
    """
    _check_inputs(paths, prompts, embedder, reference)
    e = embedder.name.replace("-", "_")
    k_self = f"self_kad_{e}"
    text = clap.embed_text(list(prompts)) if clap is not None else None  # (streams, D)
    first: list[np.ndarray | None] = [None] * len(paths)  # each stream's window-0 frames: the anchor
    window_rows: list[dict[str, Any]] = []
    stream_rows: list[dict[str, Any]] = []
    for index, (start, end), windows in iter_aligned_windows(paths, spec):
        streams = _score_streams(windows, index, prompts, spec, embedder, reference.bandwidth, first, k_self,
                                 clap=clap, stats_config=stats_config, describer=describer)
        out: dict[str, Any] = {
            "window_index": index, "start_s": start / spec.sample_rate, "end_s": end / spec.sample_rate,
            "mid_s": 0.5 * (start + end) / spec.sample_rate, "n_streams": len(windows),
            "n_embedded_streams": len(streams.frames),
        }
        pooled, notes = _pooled_columns(streams, reference, e, max_frames_per_window, n_boot, seed, index, level)
        out.update(pooled)
        if clap is not None:  # H3's CLAP score over the window's streams (clips), CI resampling streams
            clap_out = _clap(clap, streams.clap_audio, text, n_boot, seed + index, level)
            for s, row in enumerate(streams.rows):
                row["clap_score"] = clap_out["per_stream"].get(str(s), math.nan)
            out["clap_score"], out["clap_score_ci_low"], out["clap_score_ci_high"] = (
                clap_out["value"], clap_out["ci_low"], clap_out["ci_high"])
        out.update(_stream_mean_columns(streams.rows, [k_self, *SIGNAL_STAT_COLUMNS], n_boot, seed + index, level))
        if describer is not None:
            out.update(_stream_mean_columns(streams.rows, WINDOW_MEAN_COLUMNS, n_boot, seed + index, level))
        out["notes"] = "; ".join(streams.notes + notes)
        stream_rows.extend(streams.rows)
        window_rows.append(out)
    if not window_rows:
        raise ValueError(
            f"the streams are shorter than one window ({spec.describe()}): nothing to score; "
            "lengthen the horizon or shorten the window"
        )
    return pd.DataFrame(window_rows), pd.DataFrame(stream_rows)


def _check_inputs(paths: Sequence[Any], prompts: Sequence[str], embedder: Any, reference: ReferenceSet) -> None:
    """One prompt per stream, and a reference embedded by the same pipeline as the streams."""
    if len(prompts) != len(paths):
        raise ValueError(f"one prompt per stream: {len(paths)} streams, {len(prompts)} prompts")
    if reference.embedder_identity != embedder.identity:
        raise ValueError(
            "the reference set was embedded with a different pipeline "
            f"({reference.embedder_identity!r}) than the streams ({embedder.identity!r}); rebuild it"
        )


@dataclass
class _WindowStreams:
    """What the streams of one window give: a row each, and what the window's pooled scores need."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # one per stream
    frames: list[np.ndarray] = field(default_factory=list)  # (frames, D) float64 of each embedded stream
    groups: list[np.ndarray] = field(default_factory=list)  # bootstrap unit (stream, block) of each frame
    clap_audio: dict[str, np.ndarray] = field(default_factory=dict)  # stream id -> CLAP audio embeddings
    notes: list[str] = field(default_factory=list)


def _score_streams(
    windows: Sequence[Window], index: int, prompts: Sequence[str], spec: WindowSpec, embedder: Any,
    bandwidth: float, first: list[np.ndarray | None], k_self: str, *, clap: Any, stats_config: SignalStatsConfig,
    describer: WindowDescriber | None = None,
) -> _WindowStreams:
    """Window ``index`` of every stream: its signal statistics, its embedding frames, its self
    distance (``k_self``) to the stream's first window, whose frames are kept in ``first``, and its
    music descriptors when a ``describer`` is given (appended last, after the other columns)."""
    out = _WindowStreams()
    for s, window in enumerate(windows):
        source = f"stream {s} window {index}"
        row: dict[str, Any] = {
            "stream": s, "window_index": index, "start_s": window.start_s, "end_s": window.end_s,
            "mid_s": window.mid_s, "prompt": prompts[s],
        }
        row.update(signal_stats(window.audio, spec.sample_rate, stats_config))
        try:
            frames = embedder.embed(window.audio, spec.sample_rate, source=source).astype(np.float64)
        except AudioError as exc:  # silent or non-finite window: no embedding (the stats above say why)
            frames = None
            out.notes.append(f"stream {s}: not embedded ({str(exc).split(';')[0]})")
        row["embedded"] = frames is not None
        if frames is not None:
            out.frames.append(frames)
            out.groups.append(s * spec.window_blocks + _block_of_frames(frames.shape[0], spec.window_blocks))
            if index == 0:
                first[s] = frames
        row[k_self] = _self_distance(first[s], frames, index, bandwidth)
        if clap is not None:
            try:
                out.clap_audio[str(s)] = clap.embed(window.audio, spec.sample_rate, source=source)
            except AudioError:
                out.notes.append(f"stream {s}: no CLAP embedding (silent or non-finite)")
        if describer is not None:
            values, note = describer.describe_window(window.audio, spec.sample_rate, s, index)
            row.update(values)
            if note:
                out.notes.append(note)
        out.rows.append(row)
    return out


def _self_distance(anchor: np.ndarray | None, frames: np.ndarray | None, index: int, bandwidth: float) -> float:
    """KAD of a window's frames against the stream's first window; NaN for window 0 (the anchor),
    when either is missing or when there are too few frames."""
    if index == 0 or frames is None or anchor is None:
        return math.nan
    try:
        return kad(anchor, frames, bandwidth=bandwidth).value
    except InsufficientDataError:
        return math.nan


def _pooled_columns(
    streams: _WindowStreams, reference: ReferenceSet, e: str, max_frames: int, n_boot: int, seed: int, index: int,
    level: float,
) -> tuple[dict[str, Any], list[str]]:
    """The window's ``n_frames``, ``kad_<e>`` and ``fad_<e>`` columns (with CIs) of the streams'
    pooled frames (a seeded subsample above ``max_frames``) against the reference, and notes."""
    if streams.frames:
        x, g = np.concatenate(streams.frames), np.concatenate(streams.groups)
        if x.shape[0] > max_frames:
            keep = np.sort(np.random.default_rng([int(seed), int(index), 5]).choice(
                x.shape[0], max_frames, replace=False))
            x, g = x[keep], g[keep]
        n_frames = int(x.shape[0])
        scores, notes = _score_pool(reference, x, g, n_boot, seed + index, level)
    else:
        n_frames = 0
        scores = {k: math.nan for k in ("kad", "kad_ci_low", "kad_ci_high", "fad", "fad_ci_low", "fad_ci_high",
                                         "fad_clipped_eigenvalues")}
        notes = ["KAD/FAD not measured: no stream of this window could be embedded"]
    out: dict[str, Any] = {"n_frames": n_frames}
    for key in ("kad", "fad"):
        out[f"{key}_{e}"] = scores[key]
        out[f"{key}_{e}_ci_low"] = scores[f"{key}_ci_low"]
        out[f"{key}_{e}_ci_high"] = scores[f"{key}_ci_high"]
    out[f"fad_{e}_clipped_eigenvalues"] = scores["fad_clipped_eigenvalues"]
    return out, notes


def _stream_mean_columns(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], n_boot: int, seed: int, level: float,
) -> dict[str, float]:
    """Each column's mean over the streams' rows, with a bootstrap CI over streams."""
    out: dict[str, float] = {}
    for column in columns:
        values = np.array([r[column] for r in rows], dtype=np.float64)
        out[column], out[f"{column}_ci_low"], out[f"{column}_ci_high"] = _mean_ci_over_streams(
            values, n_boot, seed, level)
    return out
