"""Executing a validated plan, the work behind ``python run_all.py``.

A run: open the executor (:mod:`bench.app.executors`: local, or a Ray cluster) -> write
``manifest.json`` (before any work) -> measure the matmul peak -> run the cells
(:mod:`bench.app.cells`, through the executor) -> record every node the cells ran on in the
manifest -> measure the peak again -> build the run tables (:mod:`bench.app.run_tables`) -> the
drift stage (:mod:`bench.app.drift.stage`) -> the continuation stage (:mod:`bench.app.continuation`)
-> ``summary.md`` -> the report -> exit 0 if every cell (and drift generator and continuation
system) is ok, 1 otherwise. Both stages and the report run here, in the driver,
whatever the executor. Configuration errors (:class:`~bench.core.errors.ConfigError`, exit 2, for
example a missing Ray) are raised before any work.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from bench.app.cells import ProgressBar, log_failures, run_cells, torch_threads
from bench.app.clocks import Clock
from bench.app.config import RunConfig
from bench.app.continuation import ContinuationSettings, run_continuation_stage
from bench.app.drift.config import drift_workload_for
from bench.app.drift.stage import run_drift_stage
from bench.app.executors import open_executor
from bench.app.gc_heap import frozen_startup_heap
from bench.app.guards import sigint_received, watch_sigint
from bench.app.manifest import build_manifest, git_info, nodes_section
from bench.app.peak import record_peak
from bench.app.plan import Plan, build_plan, check_out_dir, estimate_bytes
from bench.app.resume import check_resume, record_config_change, run_identity
from bench.app.run_tables import write_run_tables
from bench.app.runner import cell_hash, dtype_name, weights_identity
from bench.core.errors import ConfigError, RunStopped
from bench.core.hashing import dataclass_fingerprint
from bench.core.storage import (CONTINUATION_DIR, DRIFT_DIR, SCHEMA_VERSION, STATUS_OK, RunFolderBusy, RunLock, RunStore, read_json,
                                write_json)
from reports.build import build_report
from reports.summary import write_summary

log = logging.getLogger("bench")

TQDM_DISABLE = {"auto": None, "on": False, "off": True}  # --progress -> tqdm's ``disable`` (None: on a terminal)


def default_out_dir() -> Path:
    """``runs/<UTC time>_<git short sha>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path("runs") / f"{stamp}_{git_info()['short']}"


def execute_config(cfg: RunConfig, clock: Clock | None = None, argv: Sequence[str] | None = None) -> int:
    """Validate ``cfg`` (:func:`~bench.app.plan.build_plan`) and run it; returns the exit status. ``argv``
    (the command-line arguments, recorded in the manifest) defaults to ``sys.argv[1:]``."""
    return execute(build_plan(cfg), clock, argv)


def execute(plan: Plan, clock: Clock | None = None, argv: Sequence[str] | None = None) -> int:
    """Run a validated plan; returns the exit status. ``clock`` lets tests inject a FakeClock. A Ctrl-C or
    a failed write raises :class:`RunStopped`; another run holding the folder is a ConfigError."""
    out = Path(plan.config.out) if plan.config.out else default_out_dir()
    if not plan.config.out:
        check_out_dir(out, estimate_bytes(plan))
    with torch_threads(plan.config.threads), watch_sigint(), frozen_startup_heap():
        try:
            out.mkdir(parents=True, exist_ok=True)
            with RunLock(out):
                return _execute(plan, out, clock, list(sys.argv[1:] if argv is None else argv))
        except RunFolderBusy as exc:
            raise ConfigError(str(exc)) from None
        except KeyboardInterrupt as exc:
            if not sigint_received():
                raise
            raise RunStopped(out, exc, interrupted=True) from None
        except OSError as exc:
            raise RunStopped(out, exc, interrupted=False) from None


def _execute(plan: Plan, out: Path, clock: Clock | None, argv: list[str]) -> int:
    t_run = time.perf_counter()
    if not plan.config.resume and (out / "manifest.json").exists():
        raise ConfigError(f"{out} already holds a run; add --resume to continue it, or choose another --out")
    store = RunStore(out)
    progress = functools.partial(tqdm, file=sys.stderr, disable=TQDM_DISABLE[plan.config.progress])
    with open_executor(plan, store, clock, progress) as executor:  # Ray missing or unreachable: exit 2, no work
        hashes = {(g, w.name): cell_hash(g, plan.preset, w, plan.device, plan.dtype, plan.config.compile)
                  for g, w in plan.cells()}
        identity = run_identity(plan)
        changes = check_resume(plan, out, identity)
        manifest_path = _write_manifest(plan, out, hashes, identity, changes, argv)
        peak = _peak(plan, out)
        with logging_redirect_tqdm(loggers=[logging.getLogger()]):
            statuses = run_cells(plan, store, executor, hashes)
    _record_nodes(manifest_path, statuses)
    if any(not s.get("resumed") for s in statuses):
        peak = _peak(plan, out, again=True)
    write_run_tables(store, statuses, peak.get("flops_per_s"))
    drift_failed: list[dict[str, Any]] = []
    if plan.config.drift:
        with logging_redirect_tqdm(loggers=[logging.getLogger()]):
            drift_failed = _drift(plan, out, progress)
    continuation_failed: list[dict[str, Any]] = []
    if plan.config.continuation:
        continuation_failed = _continuation(plan, out)
    _summary(out)
    if plan.config.report:
        _report(out)
    failed = [s for s in statuses if s["status"] != STATUS_OK]
    log.info("done in %.1f s: %d cell(s) ok, %d failed; summary in %s", time.perf_counter() - t_run,
             len(statuses) - len(failed), len(failed), out / "summary.md")
    log_failures(store, statuses)
    for s in drift_failed:
        log.error("drift %s failed: %s (traceback in %s)", s["generator"], s.get("error"),
                  out / DRIFT_DIR / "config.json")
    for s in continuation_failed:
        log.error("continuation %s failed: %s (traceback in %s)", s["system"], s.get("error"),
                  out / CONTINUATION_DIR / "config.json")
    return 1 if failed or drift_failed or continuation_failed else 0


def _write_manifest(plan: Plan, out: Path, hashes: dict[tuple[str, str], str], identity: dict[str, Any],
                    changes: list[str], argv: list[str]) -> Path:
    """``manifest.json`` (``manifest-resume-<time>.json`` when resuming): provenance and the planned cells."""
    run_info = {
        "argv": argv, "config": dataclasses.asdict(plan.config), "preset": plan.preset.name,
        "preset_fingerprint": dataclass_fingerprint(plan.preset), "preset_overrides": plan.preset_overrides,
        "workload_overrides": plan.workload_overrides, "device": plan.device, "dtype": dtype_name(plan.dtype),
        "workloads": {w.name: {"fingerprint": w.fingerprint(), **w.to_dict()} for w in plan.workloads},
        "seeds": {w.name: [w.seed + r for r in range(w.repeats)] for w in plan.workloads},
        "cells": [{"generator": g, "workload": w.name, "cell_hash": hashes[(g, w.name)]} for g, w in plan.cells()],
        "step_timeout_s": plan.config.step_timeout_s, "cell_timeout_s": plan.config.cell_timeout_s,
        "identity": identity,
        "weights": {g: weights_identity(g, plan.preset) for g in plan.generators},
    }
    if changes:
        run_info["config_changes"] = changes  # --allow-config-change: what differs from the run resumed
    if plan.config.drift:
        run_info["drift"] = drift_workload_for(plan.workloads[0], plan.drift_overrides).to_dict()
    manifest = build_manifest(run_info, SCHEMA_VERSION)
    name = "manifest.json" if not (out / "manifest.json").exists() \
        else f"manifest-resume-{manifest['created_utc'].replace(':', '')}.json"
    write_json(out / name, manifest)
    if changes:
        record_config_change(out, name, identity, changes)
    log.info("run folder %s (manifest written)", out)
    return out / name


def _record_nodes(manifest_path: Path, statuses: list[dict[str, Any]]) -> None:
    """Add to this invocation's manifest every node the cells ran on (hardware, versions, threads) and
    which cell ran where (:func:`~bench.app.manifest.nodes_section`)."""
    manifest = read_json(manifest_path) or {}
    write_json(manifest_path, {**manifest, **nodes_section(statuses)})


def _peak(plan: Plan, out: Path, again: bool = False) -> dict[str, Any]:
    """The run's matmul peak (:func:`~bench.app.peak.record_peak`) with the plan's options. Under Ray the
    cells run on other machines than this one, so the driver does not measure it (recorded as such):
    each cell's task measures its own node's (``status.json`` and the ``cells`` table)."""
    if plan.config.executor != "local":
        where = ("each cell's status.json and the cells table carry the peak measured on its node"
                 if plan.config.peak else "--no-peak")
        note = f"the cells ran on {plan.config.executor} workers, whose peak the driver cannot measure; {where}"
        result = {"flops_per_s": None, "device": plan.device, "dtype": dtype_name(plan.dtype), "note": note}
        if not again:
            write_json(out / "peak.json", {"kind": "peak", **result})
        return result
    return record_peak(out, plan.device, plan.dtype, measure=plan.config.peak, reuse=plan.config.resume, again=again)


def _drift(plan: Plan, out: Path, progress: ProgressBar) -> list[dict[str, Any]]:
    """The drift stage; with --resume it is skipped when a complete one with the same settings exists.
    Returns the statuses of the generators that failed."""
    drift = drift_workload_for(plan.workloads[0], plan.drift_overrides)
    previous = read_json(out / DRIFT_DIR / "config.json")
    if (plan.config.resume and previous and previous.get("drift") == drift.to_dict()
            and previous.get("statuses") and all(s.get("status") == STATUS_OK for s in previous["statuses"])
            and sorted(s["generator"] for s in previous["statuses"]) == sorted(plan.generators)):
        log.info("drift stage: complete with the same settings, skipped (--resume)")
        return []
    result = run_drift_stage(out, plan.preset, plan.workloads, plan.generators, plan.device, plan.dtype,
                             drift_overrides=plan.drift_overrides, progress=progress,
                             workers=plan.config.drift_workers, step_timeout_s=float(plan.config.step_timeout_s))
    return result.failed


def _continuation(plan: Plan, out: Path) -> list[dict[str, Any]]:
    """The continuation stage on the run's first workload; with --resume it is skipped when a complete
    one with the same settings and generators exists. Returns the statuses of the systems that failed."""
    settings = ContinuationSettings()
    workload = plan.workloads[0]
    previous = read_json(out / CONTINUATION_DIR / "config.json")
    same = (previous and previous.get("measured") and previous.get("settings") == dataclasses.asdict(settings)
            and previous.get("workload") == workload.name
            and all(s.get("status") == STATUS_OK for s in previous.get("statuses", []))
            and sorted({s.get("generator") for s in previous.get("statuses", [])}) == sorted(plan.generators))
    if plan.config.resume and same:
        log.info("continuation stage: complete with the same settings, skipped (--resume)")
        return []
    with logging_redirect_tqdm(loggers=[logging.getLogger()]):
        return run_continuation_stage(out, plan.preset, workload, plan.generators, plan.device, plan.dtype, settings,
                                      step_timeout_s=float(plan.config.step_timeout_s))


def _summary(out: Path) -> None:
    """Write <out>/summary.md; a problem in it never hides the saved tables or changes the run's status."""
    try:
        write_summary(out)
    except OSError:
        raise  # a full disk or an unwritable folder: the run stops with its message
    except Exception as exc:  # noqa: BLE001 - the measurements are saved; the summary can be rebuilt
        log.error("summary.md not written (%s: %s); rebuild it with: python -m reports.summary %s",
                  type(exc).__name__, exc, out)


def _report(out: Path) -> None:
    """Build <out>/report from the saved folder; a report problem never changes the run's status."""
    try:
        index = build_report([out], out / "report")
        log.info("report: %s", index)
    except Exception as exc:  # noqa: BLE001 - the measurements are saved; the report can be rebuilt
        log.error("report not built (%s); rebuild it with: python run_all.py --report-only %s", exc, out)
