"""The drift stage of ``python run_all.py``: every generator's streams generated and scored, one
failure isolated from the others, the tables, ``config.json`` and ``drift.md`` written under
``<run>/drift/`` (layout in :mod:`bench.app.drift`): with the music descriptors on, also each
stream's key and tempo stability (``stream_stability``) and the reference clips' descriptors
(``reference_descriptors``); always the reference set's first clip (``reference/clip0.wav``, for
the report's spectrograms)."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from bench.app.drift.config import DRIFT_SCHEMA_VERSION, DriftMetricsConfig, DriftWorkload, drift_workload_for
from bench.app.drift.generate import generate_streams
from bench.app.drift.score import prepare_scoring, score_streams
from bench.core.errors import ConfigError
from bench.core.presets import Preset
from bench.core.storage import (
    DRIFT_DIR, STATUS_FAILED, STATUS_OK, AudioWriter, atomic_write_text, safe_name, write_json, write_table,
)
from bench.core.workloads import Workload
from metrics.drift.regression import DriftResult
from metrics.drift.summary import band_rule_record
from metrics.drift.windowed import ReferenceSet
from reports.drift_summary import render_drift_summary

log = logging.getLogger(__name__)
REFERENCE_AUDIO = "reference/clip0.wav"  # relative to the drift folder
STATUS_COLUMNS = ("generator", "status", "error", "wall_s", "generate_s", "score_s")


@dataclass
class DriftStageResult:
    """What the stage produced: results of the generators that succeeded, a status per generator,
    the Markdown section written to ``drift.md``, the folder and the tables written there."""

    results: dict[str, DriftResult]
    statuses: list[dict[str, Any]]
    markdown: str
    folder: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Statuses of the generators that failed."""
        return [s for s in self.statuses if s["status"] != STATUS_OK]


class _Scorer:
    """Scores streams; the reference set and embedders are prepared once per (sample rate, block)."""

    def __init__(self, preset: Preset, drift: DriftWorkload, metrics_config: DriftMetricsConfig) -> None:
        self.preset, self.drift, self.metrics_config = preset, drift, metrics_config
        self._prepared: dict[tuple[int, float], tuple[Any, Any, Any]] = {}

    def __call__(self, streams: pd.DataFrame) -> DriftResult:
        key = (int(streams["sample_rate"].iloc[0]), float(streams["block_s"].iloc[0]))
        if key not in self._prepared:
            self._prepared[key] = prepare_scoring(self.preset, self.drift, self.metrics_config, streams)
        reference, embedder, clap = self._prepared[key]
        return score_streams(streams, self.drift, self.metrics_config, reference, embedder, clap)

    def references(self) -> list[tuple[int, ReferenceSet]]:
        """(sample rate, reference set) of every prepared scoring, in preparation order."""
        return [(rate, prepared[0]) for (rate, _), prepared in self._prepared.items()]


def _generate(generator: str, preset: Preset, drift: DriftWorkload, folder: Path, device: str, dtype: torch.dtype,
              progress: Any) -> tuple[pd.DataFrame | None, dict[str, Any] | None, float]:
    """(streams, failure status or None, seconds) of generating one generator's streams; a failure
    is caught and returned as its status."""
    t0 = time.perf_counter()
    bar = None
    if progress is not None:
        bar = progress(total=drift.n_streams * drift.stream.n_blocks, desc=f"drift {generator}", unit="block",
                       leave=False)
    try:
        streams = generate_streams(generator, preset, drift, folder / "audio" / safe_name(generator), device, dtype,
                                   progress=(bar.update if bar is not None else None))
    except Exception as exc:  # noqa: BLE001 - one failure never stops the other generators
        generate_s = time.perf_counter() - t0
        log.error("drift %s: failed: %s", generator, exc)
        return None, _status(generator, generate_s, None, exc), generate_s
    finally:
        if bar is not None:
            bar.close()
    return streams, None, time.perf_counter() - t0


def _score(generator: str, streams: pd.DataFrame, scorer: _Scorer, generate_s: float
           ) -> tuple[DriftResult | None, dict[str, Any]]:
    """(result, status) of scoring one generator's streams; a failure is caught into the status."""
    t0 = time.perf_counter()
    try:
        result = scorer(streams)
    except Exception as exc:  # noqa: BLE001 - one failure never stops the other generators
        log.error("drift %s: scoring failed: %s", generator, exc)
        return None, _status(generator, generate_s, time.perf_counter() - t0, exc)
    score_s = time.perf_counter() - t0
    log.info("drift %s: ok (generated in %.1f s, scored in %.1f s)", generator, generate_s, score_s)
    return result, _status(generator, generate_s, score_s, None)


def _status(generator: str, generate_s: float, score_s: float | None, exc: BaseException | None) -> dict[str, Any]:
    """One generator's status record: ``wall_s`` is its generation plus scoring time; ``score_s`` is
    None when generation failed (nothing was scored)."""
    failed = exc is not None
    return {"generator": generator, "status": STATUS_FAILED if failed else STATUS_OK,
            "error": f"{type(exc).__name__}: {exc}" if failed else "",
            "traceback": "".join(traceback.format_exception(exc)) if failed else "",
            "wall_s": generate_s + (score_s or 0.0), "generate_s": generate_s, "score_s": score_s}


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _stage_tables(folder: Path, stream_tables: list[pd.DataFrame], results: dict[str, DriftResult],
                  statuses: list[dict[str, Any]], references: list[tuple[int, ReferenceSet]]
                  ) -> dict[str, pd.DataFrame]:
    """The stage's tables; stream audio paths relative to ``folder``. The descriptor tables
    (``stream_stability``, ``reference_descriptors``) only when the descriptors ran."""
    tables = {
        "streams": _concat(stream_tables),
        "windows": _concat([r.windows for r in results.values()]),
        "stream_windows": _concat([r.stream_windows for r in results.values()]),
        "summary": _concat([r.summary for r in results.values()]),
        "status": pd.DataFrame(statuses)[list(STATUS_COLUMNS)] if statuses else pd.DataFrame(),
    }
    if not tables["streams"].empty:
        tables["streams"]["audio_path"] = [str(Path(p).relative_to(folder)) for p in tables["streams"]["audio_path"]]
    stability = [r.stream_stability for r in results.values() if r.stream_stability is not None]
    if stability:
        tables["stream_stability"] = _concat(stability)
    described = [(rate, ref) for rate, ref in references if ref.descriptors is not None]
    if described:
        tables["reference_descriptors"] = _concat([
            ref.descriptors.assign(sample_rate=rate, reference=ref.name) for rate, ref in described])
    return tables


def _save_reference_audio(folder: Path, references: list[tuple[int, ReferenceSet]]) -> dict[str, Any] | None:
    """Write the first reference set's first clip to ``folder/REFERENCE_AUDIO``; its record for config.json."""
    for rate, reference in references:
        if reference.example is None:
            continue
        writer = AudioWriter(folder / REFERENCE_AUDIO, rate, reference.example.shape[0])
        writer.write(reference.example)
        writer.close()
        return {"path": REFERENCE_AUDIO, "clip": 0, "sample_rate": rate,
                "duration_s": reference.example.shape[1] / rate, "reference": reference.name}
    return None


def _config_record(drift: DriftWorkload, metrics_config: DriftMetricsConfig, results: dict[str, DriftResult],
                   statuses: list[dict[str, Any]], reference_audio: dict[str, Any] | None = None) -> dict[str, Any]:
    """``drift/config.json``: the drift workload, metric settings, scoring record and statuses."""
    any_result = next(iter(results.values()), None)
    return {
        "kind": "drift_config", "drift_schema_version": DRIFT_SCHEMA_VERSION, "drift": drift.to_dict(),
        "metrics": {
            "embedder": metrics_config.embedder, "clap_checkpoint": metrics_config.clap_checkpoint or None,
            "reference": metrics_config.reference, "reference_clips": metrics_config.reference_clips,
            "max_frames_per_window": metrics_config.max_frames_per_window,
            "max_reference_frames": metrics_config.max_reference_frames,
            "bootstrap_resamples": metrics_config.bootstrap_resamples, "confidence": metrics_config.confidence,
            "seed": metrics_config.seed, "band_rule": band_rule_record(metrics_config.band_rule),
            "signal_stats": metrics_config.signal_stats.identity,
            "descriptors": drift.descriptors, "descriptor_pitch_step_ms": drift.descriptor_pitch_step_ms,
        },
        "reference_audio": reference_audio,
        "scoring": {k: v for k, v in (any_result.config.items() if any_result else [])
                    if k not in ("generator", "seeds", "prompts")},
        "statuses": statuses,
    }


def run_drift_stage(
    out: str | Path, preset: Preset, workloads: Sequence[Workload], generators: Sequence[str],
    device: str = "cpu", dtype: torch.dtype = torch.float32, *, drift_overrides: Mapping[str, Any] | None = None,
    metrics_config: DriftMetricsConfig | None = None, progress: Any = None,
) -> DriftStageResult:
    """Run the drift stage for ``generators`` into ``<out>/drift/`` (layout in :mod:`bench.app.drift`).

    Uses the FIRST workload's stream (the run's main workload). A generator that fails is recorded
    with its traceback (status ``failed``) and the others still run. ``progress`` is a tqdm-like
    class (``progress(total=..., desc=...)``) or None. Each generator's status records its
    generation and scoring seconds apart (``generate_s``, ``score_s``).
    """
    if not workloads:
        raise ConfigError("the drift stage needs a workload (its stream settings)")
    metrics_config = metrics_config or DriftMetricsConfig(reference="auto")
    drift = drift_workload_for(workloads[0], drift_overrides)
    folder = Path(out) / DRIFT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    log.info("drift stage: %s, %d generator(s)", drift.description, len(generators))
    scorer = _Scorer(preset, drift, metrics_config)
    results: dict[str, DriftResult] = {}
    statuses: list[dict[str, Any]] = []
    stream_tables: list[pd.DataFrame] = []
    for generator in generators:
        streams, failure, generate_s = _generate(generator, preset, drift, folder, device, dtype, progress)
        if streams is None:
            statuses.append(failure)
            continue
        stream_tables.append(streams)
        result, status = _score(generator, streams, scorer, generate_s)
        if result is not None:
            results[generator] = result
        statuses.append(status)

    tables = _stage_tables(folder, stream_tables, results, statuses, scorer.references())
    for name, table in tables.items():
        write_table(folder, name, table)
    reference_audio = _save_reference_audio(folder, scorer.references())
    write_json(folder / "config.json", _config_record(drift, metrics_config, results, statuses, reference_audio))
    markdown = render_drift_summary(Path(out))  # from the summary table and config.json just written
    atomic_write_text(folder / "drift.md", markdown)
    return DriftStageResult(results, statuses, markdown, folder, tables)
