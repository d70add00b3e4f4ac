"""The drift stage of ``python run_all.py``: every generator's streams generated and scored, one
failure isolated from the others, the tables, ``config.json`` and ``drift.md`` written under
``<run>/drift/`` (layout in :mod:`bench.app.drift`): with the music descriptors on, also each
stream's key and tempo stability (``stream_stability``) and the reference clips' descriptors
(``reference_descriptors``); always the reference set's first clip (``reference/clip0.wav``, for
the report's spectrograms)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from bench.app.drift.config import DRIFT_SCHEMA_VERSION, DriftMetricsConfig, DriftWorkload, drift_workload_for
from bench.app.drift.generate import generate_streams
from bench.app.drift.outcome import STATUS_COLUMNS, Outcome, score_outcome, status_record
from bench.app.drift.parallel import WorkerPlan, available_memory_bytes, plan_workers, run_in_workers
from bench.app.drift.score import Scorer
from bench.core.errors import ConfigError
from bench.core.presets import Preset
from bench.core.storage import (
    DRIFT_DIR, STATUS_OK, AudioWriter, atomic_write_text, safe_name, write_json, write_table,
)
from bench.core.workloads import Workload
from metrics.drift.regression import DriftResult
from metrics.drift.summary import band_rule_record
from metrics.drift.windowed import ReferenceSet
from reports.drift_summary import render_drift_summary

log = logging.getLogger(__name__)
REFERENCE_AUDIO = "reference/clip0.wav"  # relative to the drift folder


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


def _generate(generator: str, preset: Preset, drift: DriftWorkload, folder: Path, device: str, dtype: torch.dtype,
              progress: Any, step_timeout_s: float | None = None
              ) -> tuple[pd.DataFrame | None, dict[str, Any] | None, float]:
    """(streams, failure status or None, seconds) of generating one generator's streams here; a
    failure is caught and returned as its status."""
    t0 = time.perf_counter()
    bar = None
    if progress is not None:
        bar = progress(total=drift.n_streams * drift.stream.n_blocks, desc=f"drift {generator}", unit="block",
                       leave=False)
    try:
        streams = generate_streams(generator, preset, drift, folder / "audio" / safe_name(generator), device, dtype,
                                   progress=(bar.update if bar is not None else None), step_timeout_s=step_timeout_s)
    except Exception as exc:  # noqa: BLE001 - one failure never stops the other generators
        generate_s = time.perf_counter() - t0
        log.error("drift %s: failed: %s", generator, exc)
        return None, status_record(generator, generate_s, None, exc), generate_s
    finally:
        if bar is not None:
            bar.close()
    return streams, None, time.perf_counter() - t0


def _run_here(generators: Sequence[str], preset: Preset, drift: DriftWorkload, metrics_config: DriftMetricsConfig,
              folder: Path, device: str, dtype: torch.dtype, progress: Any, step_timeout_s: float | None
              ) -> tuple[list[Outcome], list[tuple[int, ReferenceSet]]]:
    """Generate and score every generator's streams in this process, one after another: (outcomes,
    (sample rate, reference set) of each reference scored against)."""
    scorer = Scorer(preset, drift, metrics_config)
    outcomes = []
    for generator in generators:
        streams, failure, generate_s = _generate(generator, preset, drift, folder, device, dtype, progress,
                                                 step_timeout_s)
        outcomes.append(Outcome(generator, failure) if streams is None
                        else score_outcome(generator, streams, scorer, generate_s))
    return outcomes, scorer.references()


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _stage_tables(folder: Path, outcomes: list[Outcome], references: list[tuple[int, ReferenceSet]]
                  ) -> dict[str, pd.DataFrame]:
    """The stage's tables; stream audio paths relative to ``folder``. The descriptor tables
    (``stream_stability``, ``reference_descriptors``) only when the descriptors ran."""
    results = {o.generator: o.result for o in outcomes if o.result is not None}
    statuses = [o.status for o in outcomes]
    tables = {
        "streams": _concat([o.streams for o in outcomes if o.streams is not None]),
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
                   statuses: list[dict[str, Any]], reference_audio: dict[str, Any] | None = None,
                   execution: WorkerPlan | None = None) -> dict[str, Any]:
    """``drift/config.json``: the drift workload, metric settings, scoring record, how the streams
    ran (``execution``: worker processes and threads) and statuses."""
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
        "execution": execution.record() if execution is not None else None,
        "scoring": {k: v for k, v in (any_result.config.items() if any_result else [])
                    if k not in ("generator", "seeds", "prompts")},
        "statuses": statuses,
    }


def run_drift_stage(
    out: str | Path, preset: Preset, workloads: Sequence[Workload], generators: Sequence[str],
    device: str = "cpu", dtype: torch.dtype = torch.float32, *, drift_overrides: Mapping[str, Any] | None = None,
    metrics_config: DriftMetricsConfig | None = None, progress: Any = None, workers: int = 1,
    step_timeout_s: float | None = None,
) -> DriftStageResult:
    """Run the drift stage for ``generators`` into ``<out>/drift/`` (layout in :mod:`bench.app.drift`).

    Uses the FIRST workload's stream (the run's main workload). A generator that fails is recorded
    with its traceback (status ``failed``) and the others still run. ``progress`` is a tqdm-like
    class (``progress(total=..., desc=...)``) or None. Each generator's status records its
    generation and scoring seconds apart (``generate_s``, ``score_s``). ``workers``: 1 generates
    and scores the streams here, one after another; 0 (automatic) or N > 1 in worker processes
    (:func:`bench.app.drift.parallel.plan_workers` at this process's torch thread count; one
    worker: here), with the same audio and scores (:mod:`bench.app.drift.parallel`). A generator
    step running longer than ``step_timeout_s`` fails its generator (None: no limit).
    """
    if not workloads:
        raise ConfigError("the drift stage needs a workload (its stream settings)")
    metrics_config = metrics_config or DriftMetricsConfig(reference="auto")
    drift = drift_workload_for(workloads[0], drift_overrides)
    folder = Path(out) / DRIFT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    execution = plan_workers(workers, device, len(generators) * drift.n_streams, torch.get_num_threads(),
                             available_memory_bytes())
    log.info("drift stage: %s, %d generator(s); %d process(es) x %d thread(s) (%s)", drift.description,
             len(generators), execution.workers, execution.threads, execution.reason)
    if execution.in_process:
        outcomes, references = _run_here(generators, preset, drift, metrics_config, folder, device, dtype, progress,
                                         step_timeout_s)
    else:
        outcomes, references = run_in_workers(execution, generators, preset, drift, metrics_config, folder, dtype,
                                              progress, step_timeout_s)
    results = {o.generator: o.result for o in outcomes if o.result is not None}
    statuses = [o.status for o in outcomes]
    tables = _stage_tables(folder, outcomes, references)
    for name, table in tables.items():
        write_table(folder, name, table)
    reference_audio = _save_reference_audio(folder, references)
    write_json(folder / "config.json",
               _config_record(drift, metrics_config, results, statuses, reference_audio, execution))
    markdown = render_drift_summary(Path(out))  # from the summary table and config.json just written
    atomic_write_text(folder / "drift.md", markdown)
    return DriftStageResult(results, statuses, markdown, folder, tables)
