"""Drift streams generated and scored in worker processes.

The drift stage measures audio, not time, and its streams are independent: each is seeded by its
own seed and starts from its own context, so it can run in any process. On a CPU, streams run
side by side in ``workers`` processes of ``threads`` torch threads each generate more audio per
second than one process using every thread: small operators do not spread over threads, and each
process has its own interpreter. Measured on 2 cores, 30 s streams of the cpu preset: two
one-thread processes generated two LMM streams in 6.8 s, against 6.4 s for ONE stream with two
threads (lmdm-causal 2.6 s against 2.4 s, outpaint 5.2 s against 3.4 s). The audio equals the
stage's own at the workers' thread count bitwise (torch's float32 rounding can depend on the
thread count, by 2e-7 on the tiny preset).

Every generator's streams are queued at once, one job per (generator, stream); as soon as one
generator's streams are done its scoring is queued too (one job, behind the streams already
queued), so the workers never wait on each other and the stage's own process only collects.
Workers are spawned (never forked: a forked torch thread pool can deadlock). Each keeps the
generator of its last job (a generator's streams usually land on the same worker) and its own
scorer (reference set and embedders, prepared once per worker), and loads the reference contexts it
needs. A generator is sent as its class, so it must be importable at module level (every registered
and entry-point generator is).

On a GPU the streams share the device, so the stage keeps them in its own process
(:func:`plan_workers` returns one worker).
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import signal
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from bench.app.clocks import WallClock
from bench.app.drift.config import MAX_DRIFT_WORKERS, DriftMetricsConfig, DriftWorkload
from bench.app.drift.generate import generate_stream, open_generator, reference_contexts, resolve_factory
from bench.app.drift.outcome import Outcome, score_outcome, status_record
from bench.app.drift.score import Scorer
from bench.app.gc_heap import frozen_startup_heap
from bench.app.runner import Runner
from bench.core.errors import ConfigError
from bench.core.presets import Preset
from bench.core.storage import safe_name
from metrics.drift.regression import DriftResult
from metrics.drift.windowed import ReferenceSet

log = logging.getLogger(__name__)

# What one worker may need: its peak RSS was 0.80-0.86 GiB while generating the cpu preset's
# streams (runs/default-20, drift/streams.parquet), and its scorer (PESTO, librosa, the reference
# set) adds to that. Larger models add their weights: set --drift-workers by hand for those.
WORKER_MEMORY_BYTES = int(1.5 * 2**30)


@dataclass(frozen=True)
class WorkerPlan:
    """How the drift streams run: ``workers`` processes of ``threads`` torch threads each (one
    worker: in the stage's own process, at its thread count), and why."""

    workers: int
    threads: int
    reason: str

    @property
    def in_process(self) -> bool:
        """Whether the streams run in the stage's own process, one after another."""
        return self.workers <= 1

    def record(self) -> dict[str, Any]:
        """The record of ``drift/config.json``."""
        return {"workers": self.workers, "threads_per_worker": self.threads, "reason": self.reason}


def available_memory_bytes() -> int | None:
    """The memory the kernel says new processes can use without swapping (Linux ``MemAvailable``);
    None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def plan_workers(requested: int, device: str | torch.device, n_jobs: int, thread_budget: int,
                 available_bytes: int | None = None) -> WorkerPlan:
    """Workers and threads per worker for ``n_jobs`` streams on ``device`` with ``thread_budget``
    torch threads in all. ``requested``: 0 = automatic (on a CPU one worker per thread, at most
    one per stream and one per :data:`WORKER_MEMORY_BYTES` of ``available_bytes`` when given; on
    any other device one), 1 = in this process, N = N processes (at most one per stream). Each
    worker gets ``thread_budget // workers`` threads (at least one)."""
    if isinstance(requested, bool) or int(requested) != requested or not 0 <= requested <= MAX_DRIFT_WORKERS:
        raise ConfigError(f"drift_workers must be an integer from 0 (automatic) to {MAX_DRIFT_WORKERS}, "
                          f"got {requested!r}")
    budget = max(1, int(thread_budget))
    on_cpu = torch.device(device).type == "cpu"
    if requested == 1:
        return WorkerPlan(1, budget, "drift_workers = 1: in this process")
    if requested == 0 and not on_cpu:
        return WorkerPlan(1, budget, f"device {device}: the streams share it, in this process")
    if requested > 1 and not on_cpu:
        raise ConfigError(f"drift_workers = {requested}: worker processes run on the CPU only, but the device is "
                          f"{device}; use drift_workers = 1 (or 0, automatic)")
    wanted = budget if requested == 0 else int(requested)
    workers = max(1, min(wanted, n_jobs))
    how = "automatic: one per thread" if requested == 0 else f"drift_workers = {requested}"
    how += f", at most one per stream ({n_jobs})"
    if requested == 0 and available_bytes is not None:
        fit = int(available_bytes // WORKER_MEMORY_BYTES)
        if fit < workers:
            workers = max(1, fit)
            how += (f", and one per {WORKER_MEMORY_BYTES / 2**30:g} GiB of the {available_bytes / 2**30:.1f} GiB "
                    "available")
    if workers == 1:
        return WorkerPlan(1, budget, f"{how}: in this process")
    return WorkerPlan(workers, max(1, budget // workers), how)


@dataclass(frozen=True)
class StreamJob:
    """One drift stream for a worker: the generator's class (sent by reference) and its name."""

    factory: Any
    name: str
    preset: Preset
    drift: DriftWorkload
    stream: int
    out_dir: Path
    dtype: torch.dtype
    step_timeout_s: float | None = None  # a step running longer fails the stream (bench.app.guards)


_current: dict[str, Any] = {}  # per worker: {"key": ..., "gen": ..., "contexts": ...} of its last generator


def _init_worker(threads: int, log_level: int) -> None:
    """Worker start: SIGINT ignored (the stage ends its workers when it is interrupted), its torch
    threads and its logging (spawned workers start unconfigured): warnings
    and errors to stderr, everything when the run logs debug messages (each worker's model loads
    would repeat the run's information lines)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the stage decides
    torch.set_num_threads(threads)
    logging.basicConfig(level=log_level if log_level <= logging.DEBUG else max(log_level, logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s (drift worker): %(message)s")


@frozen_startup_heap()  # the runner's collection before the stream walks only what the streams made
def _run_job(job: StreamJob) -> dict[str, Any]:
    """Generate one stream in a worker; its streams-table row plus ``started_at``/``ended_at`` (epoch s)."""
    started_at = time.time()
    key = (job.factory, job.name, job.preset, job.drift, job.dtype)
    with torch.inference_mode():
        if _current.get("key") != key:
            _current.clear()  # keep one generator per worker: its memory is one model's
            gen, _ = open_generator(job.factory, job.preset, job.drift, "cpu", job.dtype)
            contexts = (reference_contexts(job.drift, gen.spec.sample_rate) if job.drift.context == "reference"
                        else None)
            _current.update(key=key, gen=gen, contexts=contexts)
        contexts = _current["contexts"]
        runner = Runner(WallClock(), count_flops=False, step_timeout_s=job.step_timeout_s)
        row = generate_stream(_current["gen"], job.name, job.drift, job.stream, job.out_dir, runner,
                              contexts[job.stream] if contexts else None)
    return {**row, "started_at": started_at, "ended_at": time.time()}


@dataclass(frozen=True)
class ScoreJob:
    """One generator's streams to score in a worker."""

    streams: pd.DataFrame
    preset: Preset
    drift: DriftWorkload
    metrics_config: DriftMetricsConfig


@dataclass
class Scored:
    """A worker's scoring of one generator: the result, the reference set it was scored against
    (with its sample rate, for the stage's tables) and the seconds it took (with the worker's
    preparation of the reference set when this was its first scoring)."""

    result: DriftResult
    sample_rate: int
    reference: ReferenceSet
    score_s: float


_scorer: dict[str, Any] = {}  # per worker: {"key": ..., "scorer": Scorer}


def _run_score(job: ScoreJob) -> Scored:
    """Score one generator's streams in a worker."""
    t0 = time.perf_counter()
    key = (job.preset, job.drift, job.metrics_config)
    if _scorer.get("key") != key:
        _scorer.clear()
        _scorer.update(key=key, scorer=Scorer(job.preset, job.drift, job.metrics_config))
    scorer: Scorer = _scorer["scorer"]
    result = scorer(job.streams)
    return Scored(result, int(job.streams["sample_rate"].iloc[0]), scorer.reference_for(job.streams),
                  time.perf_counter() - t0)


def factory_for(generator: str | type) -> Any:
    """The generator's class as it will be sent to a worker; ConfigError naming the fix when it
    cannot be pickled (a class defined inside a function, a lambda)."""
    factory = resolve_factory(generator)
    try:
        pickle.dumps(factory)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing here
        raise ConfigError(f"generator {generator!r} cannot be sent to a drift worker process ({type(exc).__name__}: "
                          f"{exc}); define its class at module level, or run the drift streams in this process "
                          "with --drift-workers 1") from None
    return factory


class StreamPool:
    """A pool of spawned worker processes for drift streams (a context manager)."""

    def __init__(self, plan: WorkerPlan) -> None:
        self.plan = plan
        self._pool = ProcessPoolExecutor(
            max_workers=plan.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
            initargs=(plan.threads, logging.getLogger().getEffectiveLevel()),
        )

    def submit(self, generator: str, preset: Preset, drift: DriftWorkload, out_dir: Path,
               dtype: torch.dtype, step_timeout_s: float | None = None) -> list[Future]:
        """Queue the streams of registered ``generator`` (in stream order); one future per stream, each
        giving the stream's row (see :func:`_run_job`). Raises ConfigError when it cannot be sent."""
        factory = factory_for(generator)
        return [self._pool.submit(_run_job, StreamJob(factory, generator, preset, drift, i, Path(out_dir), dtype,
                                                      step_timeout_s))
                for i in range(drift.n_streams)]

    def submit_scoring(self, streams: pd.DataFrame, preset: Preset, drift: DriftWorkload,
                       metrics_config: DriftMetricsConfig) -> Future:
        """Queue the scoring of one generator's ``streams``; the future gives a :class:`Scored`."""
        return self._pool.submit(_run_score, ScoreJob(streams, preset, drift, metrics_config))

    def __enter__(self) -> "StreamPool":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            return
        # Interrupted (Ctrl-C) or failed: the jobs in flight are lost anyway, so end the workers now
        # instead of waiting for their streams (a plain shutdown can also wait forever on workers
        # whose queue it was interrupted while filling). Python 3.14 has terminate_workers() for this.
        self._end_workers()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _end_workers(self, rounds: int = 3, wait_s: float = 10.0) -> None:
        """Terminate every worker process, and kill one still alive ``wait_s`` later. Looks again
        for workers it has not seen (up to ``rounds`` times): one fresh CI run found a worker alive
        after the single terminate-and-join this replaced."""
        ended: set[int] = set()
        for _ in range(rounds):
            processes = [p for p in list((getattr(self._pool, "_processes", None) or {}).values())
                         if p.pid not in ended]
            if not processes:
                return
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=wait_s)
                if process.is_alive():
                    log.warning("drift worker %s did not end on SIGTERM within %.0f s: killing it", process.pid, wait_s)
                    process.kill()
                    process.join(timeout=wait_s)
                ended.add(process.pid)


def _broken(exc: BaseException, generator: str) -> BaseException:
    """``exc``, or for a worker that died (BrokenProcessPool) an error naming the likely causes and
    the fix, with ``exc`` as its cause."""
    if not isinstance(exc, BrokenProcessPool):
        return exc
    broken = RuntimeError(
        f"a drift worker process ended abruptly (killed, out of memory, a crash in native code, or a main script "
        f"without an `if __name__ == '__main__':` guard) before {generator}'s streams were all generated; generators "
        "already done are kept. Rerun with --drift-workers 1 to run the drift streams in the run's own process, "
        "where a Python error names its cause")
    broken.__cause__ = exc
    return broken


def _collect_streams(generator: str, futures: list[Future] | Exception, submitted_at: float
                     ) -> tuple[pd.DataFrame | None, BaseException | None, float]:
    """(streams, error, seconds) of one generator's stream jobs. Seconds: from its first stream's
    start to its last stream's end (generators overlap in the pool); on failure, up to now. A failed
    stream fails the generator and cancels its queued streams."""
    rows: list[dict[str, Any]] = []
    try:
        if isinstance(futures, Exception):
            raise futures
        for future in futures:
            rows.append(future.result())
    except Exception as exc:  # noqa: BLE001 - one failure never stops the other generators
        for future in futures if isinstance(futures, list) else []:
            future.cancel()
        return None, _broken(exc, generator), \
            time.time() - min([r["started_at"] for r in rows] or [submitted_at])
    generate_s = max(r.pop("ended_at") for r in rows) - min(r.pop("started_at") for r in rows)
    return pd.DataFrame(rows), None, generate_s


def run_in_workers(plan: WorkerPlan, generators: Sequence[str], preset: Preset, drift: DriftWorkload,
                   metrics_config: DriftMetricsConfig, folder: Path, dtype: torch.dtype, progress: Any = None,
                   step_timeout_s: float | None = None) -> tuple[list[Outcome], list[tuple[int, ReferenceSet]]]:
    """Generate and score every generator's drift streams on ``plan.workers`` worker processes:
    (one outcome per generator, in order; (sample rate, reference set) of each reference scored
    against). Audio goes to ``folder/audio/<generator>/``. ``progress``: a tqdm-like class or None.
    A step running longer than ``step_timeout_s`` fails its generator (None: no limit)."""
    try:
        return _run_pool(plan, generators, preset, drift, metrics_config, folder, dtype, progress, step_timeout_s)
    except BaseException:  # interrupted: the ended workers' partial WAVs go (an in-process stream removes its own)
        for generator in generators:
            for partial in (folder / "audio" / safe_name(generator)).glob(".stream*.wav.tmp"):
                partial.unlink(missing_ok=True)
        raise


def _run_pool(plan: WorkerPlan, generators: Sequence[str], preset: Preset, drift: DriftWorkload,
              metrics_config: DriftMetricsConfig, folder: Path, dtype: torch.dtype, progress: Any,
              step_timeout_s: float | None) -> tuple[list[Outcome], list[tuple[int, ReferenceSet]]]:
    with StreamPool(plan) as pool:
        bar = None if progress is None else progress(
            total=len(generators) * drift.n_streams * drift.stream.n_blocks, desc=f"drift ({plan.workers} workers)",
            unit="block", leave=False)

        def advance(future: Future) -> None:
            if bar is not None and not future.cancelled() and future.exception() is None:
                bar.update(future.result()["n_blocks"])

        submitted_at = time.time()
        queued: dict[str, list[Future] | Exception] = {}
        for generator in generators:
            try:
                queued[generator] = pool.submit(generator, preset, drift, folder / "audio" / safe_name(generator),
                                                dtype, step_timeout_s)
            except ConfigError as exc:  # this generator cannot go to a worker: its failure, named
                queued[generator] = exc
                continue
            for future in queued[generator]:
                future.add_done_callback(advance)
        try:
            generated, scoring = {}, {}
            for generator in generators:  # each generator's scoring is queued as soon as its streams are done
                generated[generator] = _collect_streams(generator, queued[generator], submitted_at)
                if generated[generator][0] is not None:
                    scoring[generator] = pool.submit_scoring(generated[generator][0], preset, drift, metrics_config)
            return _scored_outcomes(generators, generated, scoring, Scorer(preset, drift, metrics_config))
        finally:
            if bar is not None:
                bar.close()


def _scored_outcomes(generators: Sequence[str], generated: dict[str, tuple[pd.DataFrame | None, Any, float]],
                     scoring: dict[str, Future], here: Scorer) -> tuple[list[Outcome], list[tuple[int, ReferenceSet]]]:
    """Each generator's outcome from its streams and its scoring job, in generator order, and the
    reference sets scored against. ``here`` (prepared only when used) scores streams whose scoring
    job a dead worker took down: their audio is on disk."""
    outcomes, references = [], {}
    for generator in generators:
        streams, error, generate_s = generated[generator]
        if streams is None:
            log.error("drift %s: failed: %s", generator, error)
            outcomes.append(Outcome(generator, status_record(generator, generate_s, None, error)))
            continue
        try:
            scored: Scored = scoring[generator].result()
        except BrokenProcessPool:
            log.warning("drift %s: a worker process died before its streams were scored; scoring them in the run's "
                        "own process", generator)
            outcomes.append(score_outcome(generator, streams, here, generate_s))
            continue
        except Exception as exc:  # noqa: BLE001 - one failure never stops the other generators
            log.error("drift %s: scoring failed: %s", generator, exc)
            outcomes.append(Outcome(generator, status_record(generator, generate_s, None, exc), streams))
            continue
        log.info("drift %s: ok (generated in %.1f s, scored in %.1f s)", generator, generate_s, scored.score_s)
        references.setdefault((scored.sample_rate, scored.reference.name), (scored.sample_rate, scored.reference))
        outcomes.append(Outcome(generator, status_record(generator, generate_s, scored.score_s, None), streams,
                                scored.result))
    for rate, reference in here.references():
        references.setdefault((rate, reference.name), (rate, reference))
    return outcomes, list(references.values())
