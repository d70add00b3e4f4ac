"""Scoring drift streams: windowed metrics (:mod:`metrics.drift.windowed`) and their summaries
(:mod:`metrics.drift.summary`), the one-generator API (:func:`run_drift`, behind the pytest
fixture) and the saved result of a run folder (:func:`load_drift_result`)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch

from bench.app.drift.config import DRIFT_SCHEMA_VERSION, DriftMetricsConfig, DriftWorkload, drift_workload_for
from bench.app.drift.generate import generate_streams
from bench.app.drift.reference import reference_clips
from bench.core.errors import ConfigError
from bench.core.presets import Preset, get_preset
from bench.core.storage import DRIFT_DIR, safe_name
from bench.core.workloads import Workload, get_workloads
from metrics.drift.descriptor_windows import WindowDescriber, describe_reference, stream_stability
from metrics.drift.regression import DriftResult
from metrics.drift.summary import band_rule_record, summarize_windows
from metrics.drift.windowed import ReferenceSet, build_reference, windowed_metrics
from metrics.embedders import create_embedder

# Per-window columns that are bookkeeping, not metrics.
_NOT_METRICS = {"generator", "window_index", "start_s", "end_s", "mid_s", "n_streams", "n_embedded_streams",
                "n_frames", "notes"}


def metric_columns_of(windows: pd.DataFrame) -> list[str]:
    """Metric columns of a per-window table (not CI bounds, not bookkeeping)."""
    return [c for c in windows.columns
            if c not in _NOT_METRICS and not c.endswith(("_ci_low", "_ci_high", "_clipped_eigenvalues"))]


def describer_for(drift: DriftWorkload) -> WindowDescriber | None:
    """The music-descriptor describer of ``drift`` (None when ``drift.descriptors`` is off)."""
    return WindowDescriber(pitch_step_ms=drift.descriptor_pitch_step_ms) if drift.descriptors else None


def _result_config(streams: pd.DataFrame, drift: DriftWorkload, metrics_config: DriftMetricsConfig, spec: Any,
                   reference: Any, embedder: Any, clap: Any, describer: WindowDescriber | None = None
                   ) -> dict[str, Any]:
    """The scoring record of a :class:`DriftResult`: windows, embedder, reference, bootstrap, seeds."""
    return {
        "schema_version": DRIFT_SCHEMA_VERSION, "generator": str(streams["generator"].iloc[0]),
        "drift_workload": drift.name, "drift_fingerprint": drift.fingerprint(), "horizon_s": drift.horizon_s,
        "window_s": spec.window_s, "hop_s": spec.hop_s, "block_s": spec.block_s, "sample_rate": spec.sample_rate,
        "window_blocks": spec.window_blocks, "hop_blocks": spec.hop_blocks,
        "embedder": embedder.name, "embedder_identity": embedder.identity,
        "embedder_pretrained": bool(getattr(embedder, "pretrained", False)),
        "clap_identity": clap.identity if clap is not None else "not measured: no CLAP checkpoint given",
        "reference": reference.name, "signal_stats": metrics_config.signal_stats.identity,
        "band_rule": band_rule_record(metrics_config.band_rule),
        "n_streams": int(len(streams)), "seeds": [int(s) for s in streams["seed"]],
        "prompts": [str(p) for p in streams["prompt"]],
        "bootstrap": {"n_boot": metrics_config.bootstrap_resamples, "level": metrics_config.confidence,
                      "seed": metrics_config.seed, "unit": "block of one stream (stream-block bootstrap)"},
        "slope_ci": "OLS with a t-based interval over window midpoints",
        "descriptors": describer.identity if describer is not None else "off (drift.descriptors=false)",
    }


def score_streams(
    streams: pd.DataFrame, drift: DriftWorkload, metrics_config: DriftMetricsConfig, reference: Any,
    embedder: Any, clap: Any = None,
) -> DriftResult:
    """Windowed metrics and summaries of one generator's streams (rows of :func:`generate_streams`)."""
    if streams["generator"].nunique() != 1:
        raise ValueError("score_streams scores one generator at a time")
    generator = str(streams["generator"].iloc[0])
    spec = drift.window_spec(float(streams["block_s"].iloc[0]), int(streams["sample_rate"].iloc[0]))
    describer = describer_for(drift)  # a fresh one per generator: it keeps each stream's first window
    windows, stream_windows = windowed_metrics(
        paths=list(streams["audio_path"]), prompts=list(streams["prompt"]), spec=spec, embedder=embedder,
        reference=reference, clap=clap, stats_config=metrics_config.signal_stats,
        max_frames_per_window=metrics_config.max_frames_per_window, n_boot=metrics_config.bootstrap_resamples,
        level=metrics_config.confidence, seed=metrics_config.seed, describer=describer,
    )
    windows.insert(0, "generator", generator)
    stream_windows.insert(0, "generator", generator)
    seeds = dict(zip(streams["stream"], streams["seed"]))
    stream_windows.insert(2, "seed", stream_windows["stream"].map(seeds))
    summary = summarize_windows(windows, metric_columns_of(windows), metrics_config.band_rule, group_by=("generator",))
    config = _result_config(streams, drift, metrics_config, spec, reference, embedder, clap, describer)
    stability = None
    if describer is not None:
        stability = stream_stability(stream_windows)
        stability.insert(0, "generator", generator)
        stability.insert(2, "seed", stability["stream"].map(seeds))
    return DriftResult(generator, windows, summary, config, stream_windows, stability)


def prepare_scoring(preset: Preset, drift: DriftWorkload, metrics_config: DriftMetricsConfig,
                    streams: pd.DataFrame) -> tuple[Any, Any, Any]:
    """(reference set, embedder, CLAP embedder or None) for streams like ``streams``."""
    sample_rate = int(streams["sample_rate"].iloc[0])
    spec = drift.window_spec(float(streams["block_s"].iloc[0]), sample_rate)
    embedder = create_embedder(metrics_config.embedder)
    if embedder.needs_weights:
        raise ConfigError(
            f"drift embedder {metrics_config.embedder!r} needs weights; the drift stage uses weight-free "
            "embedders (logmel); CLAP is given separately with clap_checkpoint"
        )
    clips, name = reference_clips(preset, drift, metrics_config, spec.window_samples, sample_rate)
    reference = build_reference(clips, sample_rate, embedder, name=name,
                                max_frames=metrics_config.max_reference_frames, seed=metrics_config.seed)
    describer = describer_for(drift)
    if describer is not None:  # the reference distribution of the descriptors (the report's quality table)
        reference = dataclasses.replace(reference, descriptors=describe_reference(clips, sample_rate, describer))
    clap = None
    if metrics_config.clap_checkpoint:
        clap = create_embedder("clap-laion-music").load(
            metrics_config.clap_checkpoint, text_dir=metrics_config.clap_text_dir or None)
    return reference, embedder, clap


def run_drift(
    generator: str | type, preset: str | Preset = "tiny", workload: str | Workload = "smoke", *,
    drift_overrides: Mapping[str, Any] | None = None, metrics_config: DriftMetricsConfig | None = None,
    generator_kwargs: Mapping[str, Any] | None = None, out_dir: str | Path | None = None,
    device: str = "cpu", dtype: torch.dtype = torch.float32,
) -> DriftResult:
    """Generate and score one generator's drift streams; the API behind the pytest fixture.

    ``generator`` is a registry name or a :class:`bench.core.contract.StreamingGenerator` subclass (for a
    user's unregistered generator). ``workload`` names a harness workload (its stream) and
    ``drift_overrides`` adjusts the drift horizon, streams, windows, prompts and seed (keys of
    :data:`~bench.app.drift.config.DRIFT_FIELDS`). Audio goes to ``out_dir`` (a temporary folder,
    removed afterwards, when None). ``metrics_config`` defaults to the synthetic reference (the same
    on every machine).
    """
    preset_obj = get_preset(preset) if isinstance(preset, str) else preset
    base = get_workloads(workload)[0] if isinstance(workload, str) else workload
    drift = drift_workload_for(base, drift_overrides)
    metrics_config = metrics_config or DriftMetricsConfig()
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        folder = Path(out_dir) if out_dir is not None else Path(tmp)
        sub = generator if isinstance(generator, str) else (getattr(generator, "name", "") or generator.__name__)
        streams = generate_streams(generator, preset_obj, drift, folder / "audio" / safe_name(sub), device, dtype,
                                   generator_kwargs)
        reference, embedder, clap = prepare_scoring(preset_obj, drift, metrics_config, streams)
        return score_streams(streams, drift, metrics_config, reference, embedder, clap)


def load_drift_result(run_dir: str | Path, generator: str) -> DriftResult:
    """The saved drift result of ``generator`` from a run folder (tables + config)."""
    folder = Path(run_dir) / DRIFT_DIR
    if not (folder / "summary.parquet").exists():
        raise FileNotFoundError(f"{folder} holds no drift tables: run the drift stage first")
    config = json.loads((folder / "config.json").read_text())
    windows = pd.read_parquet(folder / "windows.parquet")
    summary = pd.read_parquet(folder / "summary.parquet")
    stream_windows = pd.read_parquet(folder / "stream_windows.parquet")
    streams = pd.read_parquet(folder / "streams.parquet")
    stability_path = folder / "stream_stability.parquet"
    stability = pd.read_parquet(stability_path) if stability_path.exists() else None
    if generator not in set(summary.get("generator", [])):
        raise KeyError(f"no drift result for {generator!r} in {folder} (has {sorted(set(summary['generator']))})")

    def pick(df: pd.DataFrame) -> pd.DataFrame:
        rows = df[df["generator"] == generator].drop(columns=["schema_version"], errors="ignore")
        return rows.reset_index(drop=True)

    s = streams[streams["generator"] == generator]
    result_config = dict(config.get("scoring", {}))
    result_config.update({"generator": generator, "seeds": [int(x) for x in s["seed"]],
                          "prompts": [str(p) for p in s["prompt"]]})
    return DriftResult(generator, pick(windows), pick(summary).drop(columns=["generator"]), result_config,
                       pick(stream_windows), pick(stability) if stability is not None else None)


class Scorer:
    """Scores one generator's streams at a time (:func:`score_streams`); the reference set and the
    embedders are prepared once per (sample rate, block) (:func:`prepare_scoring`)."""

    def __init__(self, preset: Preset, drift: DriftWorkload, metrics_config: DriftMetricsConfig) -> None:
        self.preset, self.drift, self.metrics_config = preset, drift, metrics_config
        self._prepared: dict[tuple[int, float], tuple[Any, Any, Any]] = {}

    def _prepare(self, streams: pd.DataFrame) -> tuple[Any, Any, Any]:
        key = (int(streams["sample_rate"].iloc[0]), float(streams["block_s"].iloc[0]))
        if key not in self._prepared:
            self._prepared[key] = prepare_scoring(self.preset, self.drift, self.metrics_config, streams)
        return self._prepared[key]

    def __call__(self, streams: pd.DataFrame) -> DriftResult:
        """The windowed metrics and summaries of ``streams`` (one generator's rows)."""
        reference, embedder, clap = self._prepare(streams)
        return score_streams(streams, self.drift, self.metrics_config, reference, embedder, clap)

    def reference_for(self, streams: pd.DataFrame) -> ReferenceSet:
        """The reference set that streams like ``streams`` are scored against."""
        return self._prepare(streams)[0]

    def references(self) -> list[tuple[int, ReferenceSet]]:
        """(sample rate, reference set) of every prepared scoring, in preparation order."""
        return [(rate, prepared[0]) for (rate, _), prepared in self._prepared.items()]
