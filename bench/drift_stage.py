"""The drift stage: long streams per generator, windowed metrics over stream time, summaries.

For every generator: ``n_streams`` streams (stream ``i``: seed ``workload.seed + i``, prompt
``prompts[i % len(prompts)]``) of ``horizon_s`` seconds are generated through the harness's runner
(:meth:`bench.runner.Runner.run_stream`, offline scenario, wall clock), each written to a float32
WAV as it is produced (memory stays bounded: nothing accumulates but a few integers per block).
Then every stream is cut into block-aligned windows and scored window by window
(:mod:`metrics.drift.windowed`), and each metric's series is summarised
(:mod:`metrics.drift.summary`). Tables go to ``<run>/drift/`` as Parquet + CSV (atomic writes),
with ``drift.md``, a Markdown snippet for the run summary.

Reference set (``DriftMetricsConfig.reference``; every table names the one used):

- ``"dataset"``: the first ``reference_clips`` clips of the REFERENCE split of the embedded data set
  (:mod:`baselines.data`, built with ``python -m baselines.data build``), cut to one window and
  passed through the preset's DiT codec (encode + decode), so the reference has the band limit of
  what the regimes can emit;
- ``"synthetic"`` (the API's default: needs nothing built): :func:`baselines.degrading.render_music`
  clips (seeds 10000+, the drift prompts) through the same codec; distances to it measure "how far
  from codec-limited plucked-harmonic music", not musical quality;
- ``"auto"`` (the drift stage's default): ``"dataset"`` when it is built at the streams' sample
  rate, else ``"synthetic"`` (logged);
- any other value: a folder of reference audio files at the streams' sample rate, used as is.

Layout under the run folder::

    drift/
        config.json                     drift workload, metric config, reference, status per generator
        audio/<generator>/stream<i>.wav
        streams.parquet|csv             one row per stream (seed, prompt, audio path, peak memory, wall s)
        windows.parquet|csv             one row per (generator, window): metrics and CIs over streams
        stream_windows.parquet|csv      one row per (generator, stream, window)
        summary.parquet|csv             one row per (generator, metric): slope, time to degrade, ratio
        drift.md                        the Markdown snippet
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from bench.contract import ConfigError, dataclass_fingerprint
from bench.presets import Preset, get_preset
from bench.workloads import DEFAULT_PROMPT, Workload, get_workloads
from metrics.drift.regression import DriftResult
from metrics.drift.signal_stats import DEFAULT_SIGNAL_STATS, SignalStatsConfig
from metrics.drift.summary import DEFAULT_BAND_RULE, BandRule, band_rule_record, summarize_windows
from metrics.drift.windows import WindowSpec

log = logging.getLogger(__name__)

DRIFT_SCHEMA_VERSION = 1
DRIFT_DIR = "drift"
DRIFT_PROMPTS: tuple[str, ...] = (
    DEFAULT_PROMPT,
    "funk groove, slap bass and drums",
    "ambient pads, slow evolving synth",
    "solo jazz piano, swing",
    "string quartet, pizzicato",
    "techno, four on the floor",
    "acoustic folk guitar, fingerpicking",
    "brass fanfare, marching band",
)
REFERENCE_SEED = 10_000


@dataclass(frozen=True)
class DriftWorkload:
    """Long-horizon streams: ``n_streams`` x ``stream.horizon_s`` seconds, windows of ``window_s``.

    ``stream`` is the harness workload whose stream (context, block, steps, CFG, sampler, seed,
    horizon) every stream uses; its prompts, repeats, warm-up and scenario are replaced per stream
    (one prompt each, offline, no warm-up: drift measures audio, not time).
    """

    name: str
    stream: Workload
    n_streams: int = 3
    prompts: tuple[str, ...] = DRIFT_PROMPTS
    window_s: float = 5.0
    hop_s: float = 5.0
    description: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.n_streams, bool) or int(self.n_streams) != self.n_streams or self.n_streams < 1:
            raise ConfigError(f"drift.n_streams must be an integer >= 1, got {self.n_streams!r}")
        if not self.prompts or not all(isinstance(p, str) for p in self.prompts):
            raise ConfigError("drift.prompts must be a non-empty tuple of prompt strings")
        if not (self.window_s >= 0.4):
            raise ConfigError(
                f"drift.window_s ({self.window_s}) must be >= 0.4 s: integrated loudness needs one 400 ms gating block"
            )
        if not (self.hop_s > 0):
            raise ConfigError(f"drift.hop_s must be > 0 seconds, got {self.hop_s}")
        if self.stream.horizon_s < self.window_s:
            raise ConfigError(
                f"drift horizon ({self.stream.horizon_s} s) is shorter than one window ({self.window_s} s); "
                "raise drift.horizon_s or lower drift.window_s"
            )

    @property
    def horizon_s(self) -> float:
        return self.stream.horizon_s

    def seed_of(self, stream: int) -> int:
        return self.stream.seed + stream

    def prompt_of(self, stream: int) -> str:
        return self.prompts[stream % len(self.prompts)]

    def stream_workload(self, stream: int) -> Workload:
        """The harness workload of stream ``stream`` (run as repeat ``stream``: seed = seed + stream)."""
        return dataclasses.replace(
            self.stream, name=f"{self.name}-stream{stream}", prompts=((0.0, self.prompt_of(stream)),),
            scenario="offline", warmup_blocks=0, repeats=self.n_streams,
        )

    def window_spec(self, block_s: float, sample_rate: int) -> WindowSpec:
        return WindowSpec.from_seconds(self.window_s, self.hop_s, block_s, sample_rate)

    def fingerprint(self) -> str:
        return dataclass_fingerprint(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "n_streams": self.n_streams, "prompts": list(self.prompts),
            "window_s": self.window_s, "hop_s": self.hop_s, "horizon_s": self.horizon_s,
            "seeds": [self.seed_of(i) for i in range(self.n_streams)], "stream": self.stream.to_dict(),
            "fingerprint": self.fingerprint(), "description": self.description,
        }


# Horizon, streams and window per harness workload (the stream settings come from the workload).
DRIFT_DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": dict(horizon_s=12.0, n_streams=2, window_s=2.0, hop_s=2.0),
    "default": dict(horizon_s=120.0, n_streams=3, window_s=10.0, hop_s=10.0),  # past ARC-Forcing's ~30 s rollouts
    "paper": dict(horizon_s=300.0, n_streams=8, window_s=10.0, hop_s=10.0),
}
DRIFT_FIELDS = ("horizon_s", "n_streams", "window_s", "hop_s", "prompts", "seed")


def drift_workload_for(workload: Workload, overrides: Mapping[str, Any] | None = None) -> DriftWorkload:
    """The drift workload that goes with harness workload ``workload``.

    Its stream is ``workload``'s; horizon, streams and windows come from :data:`DRIFT_DEFAULTS`
    (``default``'s for workloads without an entry) and ``overrides`` (keys of
    :data:`DRIFT_FIELDS`; strings are coerced; ``prompts`` is ``"a;b;c"``).
    """
    params: dict[str, Any] = dict(DRIFT_DEFAULTS.get(workload.name, DRIFT_DEFAULTS["default"]))
    params["prompts"] = DRIFT_PROMPTS
    params["seed"] = workload.seed
    for key, value in (overrides or {}).items():
        if key not in DRIFT_FIELDS:
            raise ConfigError(f"unknown drift field {key!r}; allowed: {', '.join('drift.' + f for f in DRIFT_FIELDS)}")
        if key == "prompts":
            value = tuple(p.strip() for p in value.split(";") if p.strip()) if isinstance(value, str) else tuple(value)
        elif key in ("n_streams", "seed"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"drift.{key} must be an integer, got {value!r}") from None
        else:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"drift.{key} must be a number of seconds, got {value!r}") from None
        params[key] = value
    stream = dataclasses.replace(
        workload, horizon_s=float(params["horizon_s"]), prompts=((0.0, params["prompts"][0]),),
        seed=int(params["seed"]),
    )
    base = DRIFT_DEFAULTS.get(workload.name)
    return DriftWorkload(
        name=f"drift-{workload.name}", stream=stream, n_streams=int(params["n_streams"]), prompts=params["prompts"],
        window_s=float(params["window_s"]), hop_s=float(params["hop_s"]),
        description=(
            f"{params['n_streams']} streams x {params['horizon_s']:g} s of the '{workload.name}' stream, "
            f"windows {params['window_s']:g} s every {params['hop_s']:g} s"
            + ("" if base else " (defaults of 'default')")
        ),
    )


@dataclass(frozen=True)
class DriftMetricsConfig:
    """How windows are scored (see :mod:`metrics.drift.windowed` and docs/drift.md)."""

    embedder: str = "logmel"  # H3's weight-free default: columns say "logmel"
    clap_checkpoint: str = ""  # local CLAP checkpoint path; "" = no CLAP score (not measured)
    clap_text_dir: str = ""  # local roberta-base config/tokenizer folder for CLAP ("" = H3's weights dir)
    reference: str = "synthetic"  # "synthetic", "dataset", "auto" or a folder (module docstring)
    reference_clips: int = 8
    max_frames_per_window: int = 2000  # pooled over streams; seeded subsample above this
    max_reference_frames: int = 2000  # KAD reference sample (FAD uses every reference frame)
    bootstrap_resamples: int = 200
    confidence: float = 0.95
    seed: int = 0
    band_rule: BandRule = DEFAULT_BAND_RULE
    signal_stats: SignalStatsConfig = DEFAULT_SIGNAL_STATS


# ----------------------------------------------------------------------------------------------
# Streams


def generate_streams(
    generator: str | type, preset: Preset, drift: DriftWorkload, out_dir: Path, device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32, generator_kwargs: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Generate the drift streams of ``generator`` into ``out_dir/stream<i>.wav``; one row per stream.

    Goes through the harness runner (wall clock, offline scenario, audio appended to the WAV block by
    block). ``generator_kwargs`` are passed to the generator's constructor (for example the onset of
    a :mod:`baselines.degrading` generator).
    """
    from bench.clocks import WallClock
    from bench.registry import GENERATORS
    from bench.runner import Runner
    from bench.storage import AudioWriter

    out_dir = Path(out_dir)
    runner = Runner(WallClock(), progress=progress, count_flops=False)
    rows = []
    with torch.inference_mode():
        factory = GENERATORS.get(generator) if isinstance(generator, str) else generator
        gen = factory(preset, drift.stream.settings(), device=device, dtype=dtype, **dict(generator_kwargs or {}))
        generator = generator if isinstance(generator, str) else (gen.name or factory.__name__)
        for i in range(drift.n_streams):
            workload = drift.stream_workload(i)
            writer = AudioWriter(out_dir / f"stream{i}.wav", gen.spec.sample_rate, gen.spec.channels)
            labels = {"generator": generator, "workload": drift.name}
            try:
                _, _, row = runner.run_stream(gen, workload, i, writer, labels)
            except BaseException:
                writer.abort()
                raise
            writer.close()
            rows.append({
                "generator": generator, "stream": i, "seed": int(row["seed"]), "prompt": drift.prompt_of(i),
                "audio_path": str(writer.path), "audio_s": float(row["audio_s"]), "n_blocks": int(row["n_blocks"]),
                "sample_rate": int(gen.spec.sample_rate), "channels": int(gen.spec.channels),
                "block_s": float(gen.spec.block_s), "peak_mem_bytes": int(row["peak_mem_bytes"]),
                "peak_mem_kind": row["peak_mem_kind"], "wall_s": float(row["wall_s"]),
            })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# Reference


def _codec_round_trip(preset: Preset, monos: Sequence[np.ndarray]) -> tuple[list[np.ndarray], str]:
    """Each mono clip -> (channels, n) through the preset's DiT codec (encode + decode)."""
    from baselines.codec import make_codec

    codec_cfg = preset.dit.codec
    codec = make_codec(codec_cfg)
    out = []
    for mono in monos:
        n = max(1, mono.shape[0] // codec.hop) * codec.hop
        audio = torch.from_numpy(np.repeat(np.asarray(mono[:n], dtype=np.float32)[None, :], codec_cfg.channels, axis=0))
        with torch.no_grad():
            out.append(codec.decode(codec.encode(audio)).numpy().astype(np.float32))  # (C, n)
    cutoff_hz = codec_cfg.latent_bins / codec_cfg.hop * codec_cfg.sample_rate / 2
    how = (f"through the preset '{preset.name}' DiT codec (MDCT, {codec_cfg.latent_bins} of {codec_cfg.hop} bins, "
           f"low-pass ~{cutoff_hz:g} Hz)")
    return out, how


def synthetic_reference_clips(
    preset: Preset, drift: DriftWorkload, clip_samples: int, clips: int
) -> tuple[list[np.ndarray], str]:
    """Synthetic reference clips ``(channels, samples)`` and the sentence that names them."""
    from baselines.degrading import render_music

    rate = preset.dit.codec.sample_rate
    monos = [render_music(rate, REFERENCE_SEED + j, drift.prompt_of(j), 0, clip_samples) for j in range(clips)]
    out, how = _codec_round_trip(preset, monos)
    name = (
        f"synthetic: {clips} clips x {out[0].shape[1] / rate:g} s of baselines.degrading.render_music "
        f"(seeds {REFERENCE_SEED}-{REFERENCE_SEED + clips - 1}, drift prompts) {how}; not a real music data set"
    )
    return out, name


def dataset_reference_clips(preset: Preset, clip_samples: int, clips: int) -> tuple[list[np.ndarray], str]:
    """The first ``clips`` reference-split clips of the embedded data set, one window long, through
    the preset's codec. Raises ``baselines.data.DatasetMissingError`` when it is not built."""
    from baselines.data import load_dataset

    dataset = load_dataset()
    if dataset.sample_rate != preset.dit.codec.sample_rate:
        raise ConfigError(
            f"the data set is at {dataset.sample_rate} Hz but preset '{preset.name}' streams at "
            f"{preset.dit.codec.sample_rate} Hz; use reference='synthetic' or a folder at the streams' rate"
        )
    chosen = [c for c in dataset.clips("reference")][:clips]
    if len(chosen) < 2:
        raise ConfigError(f"the data set's reference split has {len(chosen)} clip(s); the drift reference needs >= 2")
    monos = [dataset.read(c)[:clip_samples] for c in chosen]
    out, how = _codec_round_trip(preset, monos)
    name = (
        f"dataset: {len(out)} reference-split clips x {out[0].shape[1] / dataset.sample_rate:g} s of the embedded "
        f"data set (manifest sha256 {dataset.manifest_sha256()[:12]}) {how}"
    )
    return out, name


def reference_clips_from_dir(folder: str, sample_rate: int) -> tuple[list[np.ndarray], str]:
    """Every audio file in ``folder`` (validated by :mod:`metrics.audio_io`) at ``sample_rate``."""
    from metrics.audio_io import list_audio_files, read_audio

    files = list_audio_files(folder)
    clips = [read_audio(p, expected_sample_rate=sample_rate).samples for p in files]
    return clips, f"folder {folder}: {len(files)} files"


# ----------------------------------------------------------------------------------------------
# Scoring and summaries


def score_streams(
    streams: pd.DataFrame, drift: DriftWorkload, metrics_config: DriftMetricsConfig, reference: Any,
    embedder: Any, clap: Any = None,
) -> DriftResult:
    """Windowed metrics and summaries of one generator's streams (rows of :func:`generate_streams`)."""
    from metrics.drift.windowed import windowed_metrics

    if streams["generator"].nunique() != 1:
        raise ValueError("score_streams scores one generator at a time")
    generator = str(streams["generator"].iloc[0])
    spec = drift.window_spec(float(streams["block_s"].iloc[0]), int(streams["sample_rate"].iloc[0]))
    windows, stream_windows = windowed_metrics(
        paths=list(streams["audio_path"]), prompts=list(streams["prompt"]), spec=spec, embedder=embedder,
        reference=reference, clap=clap, stats_config=metrics_config.signal_stats,
        max_frames_per_window=metrics_config.max_frames_per_window, n_boot=metrics_config.bootstrap_resamples,
        level=metrics_config.confidence, seed=metrics_config.seed,
    )
    windows.insert(0, "generator", generator)
    stream_windows.insert(0, "generator", generator)
    seeds = dict(zip(streams["stream"], streams["seed"]))
    stream_windows.insert(2, "seed", stream_windows["stream"].map(seeds))
    metric_columns = metric_columns_of(windows)
    summary = summarize_windows(windows, metric_columns, metrics_config.band_rule, group_by=("generator",))
    config = {
        "schema_version": DRIFT_SCHEMA_VERSION, "generator": generator, "drift_workload": drift.name,
        "drift_fingerprint": drift.fingerprint(), "horizon_s": drift.horizon_s,
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
    }
    return DriftResult(generator, windows, summary, config, stream_windows)


def metric_columns_of(windows: pd.DataFrame) -> list[str]:
    """Metric columns of a per-window table (not CI bounds, not bookkeeping)."""
    skip = {"generator", "window_index", "start_s", "end_s", "mid_s", "n_streams", "n_embedded_streams", "n_frames",
            "notes"}
    return [c for c in windows.columns
            if c not in skip and not c.endswith(("_ci_low", "_ci_high", "_clipped_eigenvalues"))]


def run_drift(
    generator: str | type, preset: str | Preset = "tiny", workload: str | Workload = "smoke", *,
    drift_overrides: Mapping[str, Any] | None = None, metrics_config: DriftMetricsConfig | None = None,
    generator_kwargs: Mapping[str, Any] | None = None, out_dir: str | Path | None = None,
    device: str = "cpu", dtype: torch.dtype = torch.float32,
) -> DriftResult:
    """Generate and score one generator's drift streams; the API behind the pytest fixture.

    ``generator`` is a registry name or a :class:`bench.contract.StreamingGenerator` subclass (for a
    user's unregistered generator). ``workload`` names a harness workload (its stream) and
    ``drift_overrides`` adjusts the drift horizon, streams, windows, prompts and seed (keys of
    :data:`DRIFT_FIELDS`). Audio goes to ``out_dir`` (a temporary folder, removed afterwards, when
    None). ``metrics_config`` defaults to the synthetic reference (the same on every machine).
    """
    preset_obj = get_preset(preset) if isinstance(preset, str) else preset
    base = get_workloads(workload)[0] if isinstance(workload, str) else workload
    drift = drift_workload_for(base, drift_overrides)
    metrics_config = metrics_config or DriftMetricsConfig()
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        folder = Path(out_dir) if out_dir is not None else Path(tmp)
        sub = generator if isinstance(generator, str) else (getattr(generator, "name", "") or generator.__name__)
        streams = generate_streams(generator, preset_obj, drift, folder / "audio" / sub, device, dtype,
                                   generator_kwargs)
        reference, embedder, clap = prepare_scoring(preset_obj, drift, metrics_config, streams)
        return score_streams(streams, drift, metrics_config, reference, embedder, clap)


def prepare_scoring(preset: Preset, drift: DriftWorkload, metrics_config: DriftMetricsConfig,
                    streams: pd.DataFrame) -> tuple[Any, Any, Any]:
    """(reference set, embedder, CLAP embedder or None) for streams like ``streams``."""
    from metrics.drift.windowed import build_reference
    from metrics.embedders import create_embedder

    sample_rate = int(streams["sample_rate"].iloc[0])
    spec = drift.window_spec(float(streams["block_s"].iloc[0]), sample_rate)
    embedder = create_embedder(metrics_config.embedder)
    if embedder.needs_weights:
        raise ConfigError(
            f"drift embedder {metrics_config.embedder!r} needs weights; the drift stage uses weight-free "
            "embedders (logmel); CLAP is given separately with clap_checkpoint"
        )
    kind = metrics_config.reference
    if kind == "auto":
        try:
            clips, name = dataset_reference_clips(preset, spec.window_samples, metrics_config.reference_clips)
        except (FileNotFoundError, ConfigError) as exc:
            log.info("drift reference: the data set is not usable (%s); using the synthetic reference", exc)
            kind = "synthetic"
    if kind == "dataset":
        clips, name = dataset_reference_clips(preset, spec.window_samples, metrics_config.reference_clips)
    elif kind == "synthetic":
        clips, name = synthetic_reference_clips(preset, drift, spec.window_samples, metrics_config.reference_clips)
    elif kind != "auto":
        clips, name = reference_clips_from_dir(kind, sample_rate)
    reference = build_reference(clips, sample_rate, embedder, name=name,
                                max_frames=metrics_config.max_reference_frames, seed=metrics_config.seed)
    clap = None
    if metrics_config.clap_checkpoint:
        clap = create_embedder("clap-laion-music").load(
            metrics_config.clap_checkpoint, text_dir=metrics_config.clap_text_dir or None)
    return reference, embedder, clap


# ----------------------------------------------------------------------------------------------
# The stage


@dataclass
class DriftStageResult:
    results: dict[str, DriftResult]
    statuses: list[dict[str, Any]]
    markdown: str
    folder: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [s for s in self.statuses if s["status"] != "ok"]


def run_drift_stage(
    out: str | Path, preset: Preset, workloads: Sequence[Workload], generators: Sequence[str],
    device: str = "cpu", dtype: torch.dtype = torch.float32, *, drift_overrides: Mapping[str, Any] | None = None,
    metrics_config: DriftMetricsConfig | None = None, progress: Any = None,
) -> DriftStageResult:
    """Run the drift stage for ``generators`` into ``<out>/drift/`` (see the module docstring).

    Uses the FIRST workload's stream (the run's main workload). A generator that fails is recorded
    with its traceback (status ``failed``) and the others still run. ``progress`` is a tqdm-like
    class (``progress(total=..., desc=...)``) or None.
    """
    from bench.storage import write_json, write_table

    if not workloads:
        raise ConfigError("the drift stage needs a workload (its stream settings)")
    metrics_config = metrics_config or DriftMetricsConfig(reference="auto")
    drift = drift_workload_for(workloads[0], drift_overrides)
    folder = Path(out) / DRIFT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    log.info("drift stage: %s, %d generator(s)", drift.description, len(generators))
    results: dict[str, DriftResult] = {}
    statuses: list[dict[str, Any]] = []
    stream_tables = []
    scoring_cache: dict[tuple[int, float], tuple[Any, Any, Any]] = {}
    for generator in generators:
        t0 = time.perf_counter()
        bar = None
        if progress is not None:
            bar = progress(total=drift.n_streams * drift.stream.n_blocks, desc=f"drift {generator}", unit="block",
                           leave=False)
        try:
            streams = generate_streams(
                generator, preset, drift, folder / "audio" / generator, device, dtype,
                progress=(bar.update if bar is not None else None),
            )
            stream_tables.append(streams)
            key = (int(streams["sample_rate"].iloc[0]), float(streams["block_s"].iloc[0]))
            if key not in scoring_cache:
                scoring_cache[key] = prepare_scoring(preset, drift, metrics_config, streams)
            reference, embedder, clap = scoring_cache[key]
            results[generator] = score_streams(streams, drift, metrics_config, reference, embedder, clap)
            statuses.append({"generator": generator, "status": "ok", "error": "", "traceback": "",
                             "wall_s": time.perf_counter() - t0})
            log.info("drift %s: ok in %.1f s", generator, time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - one failure never stops the other generators
            statuses.append({"generator": generator, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(), "wall_s": time.perf_counter() - t0})
            log.error("drift %s: failed: %s", generator, exc)
        finally:
            if bar is not None:
                bar.close()

    tables = {
        "streams": pd.concat(stream_tables, ignore_index=True) if stream_tables else pd.DataFrame(),
        "windows": pd.concat([r.windows for r in results.values()], ignore_index=True) if results else pd.DataFrame(),
        "stream_windows": pd.concat([r.stream_windows for r in results.values()], ignore_index=True)
        if results else pd.DataFrame(),
        "summary": pd.concat([r.summary for r in results.values()], ignore_index=True) if results else pd.DataFrame(),
        "status": pd.DataFrame(statuses)[["generator", "status", "error", "wall_s"]] if statuses else pd.DataFrame(),
    }
    if not tables["streams"].empty:
        tables["streams"]["audio_path"] = [str(Path(p).relative_to(folder)) for p in tables["streams"]["audio_path"]]
    for name, table in tables.items():
        write_table(folder, name, table)
    any_result = next(iter(results.values()), None)
    write_json(folder / "config.json", {
        "kind": "drift_config", "drift_schema_version": DRIFT_SCHEMA_VERSION, "drift": drift.to_dict(),
        "metrics": {
            "embedder": metrics_config.embedder, "clap_checkpoint": metrics_config.clap_checkpoint or None,
            "reference": metrics_config.reference, "reference_clips": metrics_config.reference_clips,
            "max_frames_per_window": metrics_config.max_frames_per_window,
            "max_reference_frames": metrics_config.max_reference_frames,
            "bootstrap_resamples": metrics_config.bootstrap_resamples, "confidence": metrics_config.confidence,
            "seed": metrics_config.seed, "band_rule": band_rule_record(metrics_config.band_rule),
            "signal_stats": metrics_config.signal_stats.identity,
        },
        "scoring": {k: v for k, v in (any_result.config.items() if any_result else [])
                    if k not in ("generator", "seeds", "prompts")},
        "statuses": statuses,
    })
    markdown = drift_markdown(tables["summary"], statuses, drift, any_result.config if any_result else {})
    from bench.storage import atomic_write_text

    atomic_write_text(folder / "drift.md", markdown)
    return DriftStageResult(results, statuses, markdown, folder, tables)


def load_drift_result(run_dir: str | Path, generator: str) -> DriftResult:
    """The saved drift result of ``generator`` from a run folder (tables + config)."""
    import json

    folder = Path(run_dir) / DRIFT_DIR
    if not (folder / "summary.parquet").exists():
        raise FileNotFoundError(f"{folder} holds no drift tables: run the drift stage first")
    config = json.loads((folder / "config.json").read_text())
    windows = pd.read_parquet(folder / "windows.parquet")
    summary = pd.read_parquet(folder / "summary.parquet")
    stream_windows = pd.read_parquet(folder / "stream_windows.parquet")
    streams = pd.read_parquet(folder / "streams.parquet")
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
                       pick(stream_windows))


# ----------------------------------------------------------------------------------------------
# Markdown

COMPACT_METRICS = (  # (metric, column title): first -> last, slope per minute [95% CI]
    ("kad_{emb}", "KAD {emb}"), ("self_kad_{emb}", "self-KAD {emb}"), ("clap_score", "CLAP"),
    ("loudness_lufs", "loudness LUFS"), ("spectral_centroid_hz", "centroid Hz"), ("spectral_flatness", "flatness"),
)


def _num(x: Any, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/m"
    return "n/m" if not math.isfinite(v) else f"{v:.{digits}g}"


def _cell(r: Mapping[str, Any]) -> str:
    """``first -> last (slope/min [low, high])``."""
    first = _num(r["first"]) if math.isfinite(float(r["first"])) else "-"
    return (f"{first} &rarr; {_num(r['last'])} ({_num(r['slope_per_min'])}/min "
            f"[{_num(r['slope_ci_low'])}, {_num(r['slope_ci_high'])}])")


def drift_markdown(summary: pd.DataFrame, statuses: Sequence[Mapping[str, Any]], drift: DriftWorkload,
                   config: Mapping[str, Any]) -> str:
    """The drift section of the run summary (one row per regime), from the summary table only."""
    lines = [
        "## Drift over stream time",
        "",
        f"{drift.description}; seeds {drift.seed_of(0)}..{drift.seed_of(drift.n_streams - 1)}. "
        "Cells: first window &rarr; last window (OLS slope per minute [t-based 95% CI]).",
    ]
    if config:
        emb = config.get("embedder", "")
        rule = {k: v for k, v in config.get("band_rule", {}).items() if k != "thresholds"}
        kind = ("pretrained" if config.get("embedder_pretrained")
                else "weight-free log-mel features, NOT a pretrained-model metric")
        lines += [
            f"Quality embedder: `{emb}` ({kind}). "
            f"Reference: {config.get('reference', '')}. CLAP: {config.get('clap_identity', 'not measured')}.",
            f"Degraded: metrics whose time to degrade is within the horizon ({BandRule(**rule).describe()}; "
            "thresholds in docs/drift.md). Every metric, with CIs: `drift/summary.csv`; per window: "
            "`drift/windows.csv`.",
        ]
    lines.append("")
    for s in statuses:
        if s["status"] != "ok":
            lines.append(f"- **{s['generator']}: drift stage failed** ({s['error']}); traceback in drift/config.json.")
    if summary is None or summary.empty:
        lines.append("No drift results.")
        return "\n".join(lines) + "\n"
    emb = config.get("embedder", "logmel") if config else "logmel"
    columns = [(m.format(emb=emb), t.format(emb=emb)) for m, t in COMPACT_METRICS]
    lines += ["| regime | " + " | ".join(t for _, t in columns) + " | silence / clipping (last) | degraded |",
              "|" + "---|" * (len(columns) + 3)]
    for generator, frame in summary.groupby("generator", sort=False):
        rows = {r["metric"]: r for r in frame.to_dict("records")}
        cells = []
        for metric, _ in columns:
            if metric in rows:
                cells.append(_cell(rows[metric]))
            else:
                cells.append("not measured (no CLAP checkpoint)" if metric == "clap_score" else "n/m")
        sil, clip = rows.get("silence_ratio"), rows.get("clipping_ratio")
        cells.append(f"{_num(sil['last']) if sil else 'n/m'} / {_num(clip['last']) if clip else 'n/m'}")
        degraded = [f"{m} at {r['time_to_degrade_s']:.0f} s ({r['degrade_direction']})"
                    for m, r in rows.items() if r.get("drifted")]
        cells.append("; ".join(degraded) if degraded else "none")
        lines.append(f"| {generator} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
