"""``python run_all.py``: configuration (flags, TOML file, overrides) and the run's orchestration.

Precedence: built-in defaults < ``--config FILE.toml`` < command-line flags. Overrides
(``--set key=value``, repeatable, or the config file's ``[set]`` table) address either the preset
(``dit.width=128``, ``lmm.rvq_levels=4``: see ``--list``) or the workload
(``workload.horizon_s=60``, ``workload.prompts=0:bach chorale;16:funk groove``).

A run: resolve and validate the configuration -> write ``manifest.json`` (before any work) ->
measure the matmul peak -> for each (generator, workload) cell: skip it if ``--resume`` finds it
complete with the same hash, else run it (a failure is recorded with its traceback and the next
cell runs) -> build the run tables and ``summary.md`` from the saved cell tables -> exit 0 if every
cell is ok, 1 if any failed, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import gc
import logging
import sys
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from bench.contract import ConfigError, dataclass_fingerprint
from bench.presets import PRESETS, apply_overrides, get_preset, preset_fields
from bench.registry import GENERATORS
from bench.workloads import WORKLOADS, Workload, apply_workload_overrides, get_workloads
from bench import storage
from bench.storage import SCHEMA_VERSION, STATUS_FAILED, STATUS_OK, RunStore

log = logging.getLogger("bench")

NULL_GENERATOR = "noise"
REFERENCE_GENERATOR = "lmdm-causal"
DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}
RUN_TABLES = ("blocks", "phases", "streams", "flops", "summary", "phase_summary", "pairs", "overhead")
CONFIG_KEYS = ("preset", "workload", "generators", "device", "dtype", "out", "resume", "flops", "peak", "progress",
               "threads", "drift", "report", "set")


@dataclass
class RunConfig:
    """Everything a run needs, before validation against presets, workloads and the registry."""

    preset: str = "cpu"
    workloads: list[str] = field(default_factory=lambda: ["default"])
    generators: list[str] = field(default_factory=lambda: ["all"])
    device: str = "auto"
    dtype: str = "float32"
    out: str | None = None
    resume: bool = False
    flops: bool = True  # the separate FLOPs pass
    peak: bool = True  # the matmul peak micro-benchmark
    progress: str = "auto"  # auto (bars on a terminal), on, off
    threads: int = 0  # torch intra-op threads for the run; 0 = torch's default
    drift: bool = True  # the drift stage after the systems cells (bench/drift_stage.py)
    report: bool = True  # build <out>/report (tables, figures, HTML) at the end
    overrides: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """A validated run: objects, not names."""

    config: RunConfig
    preset: Any
    workloads: list[Workload]
    generators: list[str]
    device: str
    dtype: torch.dtype
    preset_overrides: dict[str, str]
    workload_overrides: dict[str, str]
    drift_overrides: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# Parsing


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    workloads = ", ".join(WORKLOADS)
    parser = argparse.ArgumentParser(
        prog="python run_all.py",
        description=(
            "Run the streaming benchmark: every generator (regime) on the same workload, timed block by "
            "block, with FLOPs, memory, a real-time playback simulation and a Markdown summary. "
            "With no arguments: every registered generator on the 'default' workload at the 'cpu' preset, "
            "written to runs/<UTC time>_<git sha>/."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"""\
presets:    {', '.join(PRESETS)}
workloads:  {workloads}
generators: {', '.join(GENERATORS.names())} (the null generator 'noise' always runs: it measures
            the harness's own overhead per block)

overrides (--set, repeatable; also the [set] table of a config file):
  preset fields   dit.width=128  lmm.rvq_levels=4  dit.rope_mode=offset   (python run_all.py --list)
  drift fields    drift.horizon_s=120  drift.n_streams=4  drift.window_s=5   (docs/drift.md)
  workload fields workload.horizon_s=60  workload.steps=4  workload.cfg=true  workload.repeats=3
                  workload.scenario=realtime  workload.prebuffer_s=2  workload.warmup_blocks=1
                  workload.prompts="0:bach chorale;16:funk groove"   (seconds:prompt; ...)

config file (TOML; flags given on the command line win):
  preset = "cpu"
  workload = ["default", "prompt-switch"]
  generators = ["lmdm-causal", "lmm"]
  device = "auto"          # auto, cpu, cuda, cuda:1
  dtype = "float32"        # float32, bfloat16, float16
  out = "runs/my-run"
  [set]
  "workload.horizon_s" = 32

examples:
  python run_all.py                                   # the default run
  python run_all.py --workload smoke --preset tiny    # seconds; checks the installation
  python run_all.py --generators lmdm-causal,lmm --set workload.horizon_s=120
  python run_all.py --workload paper --preset sao-small --device cuda --dtype bfloat16
  python run_all.py --out runs/x --resume             # finish an interrupted run

reports (from saved folders only; no model runs):
  python run_all.py --report-only runs/a              # rebuild runs/a/report
  python run_all.py --compare runs/a runs/b --out reports/a-vs-b

exit status: 0 all cells ok, 1 a cell failed (see its status.json), 2 bad configuration.
""",
    )
    parser.add_argument("--config", type=Path, help="TOML file with any of: " + ", ".join(CONFIG_KEYS))
    parser.add_argument("--preset", help="model sizes (default: cpu)")
    parser.add_argument("--workload", type=_csv, help="workload name(s), comma-separated (default: default)")
    parser.add_argument("--generators", type=_csv, help="generator names, comma-separated, or 'all' (default)")
    parser.add_argument("--device", help="auto (default: cuda if available), cpu, cuda, cuda:N")
    parser.add_argument("--dtype", help="float32 (default), bfloat16, float16")
    parser.add_argument("--out", help="run folder (default: runs/<UTC time>_<git sha>)")
    parser.add_argument("--resume", action="store_true", default=None,
                        help="continue the run in --out: skip cells completed with the same hash")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="override a preset or workload field (repeatable)")
    parser.add_argument("--no-flops", dest="flops", action="store_false", default=None,
                        help="skip the FLOPs pass (FLOPs are then reported as not measured)")
    parser.add_argument("--no-peak", dest="peak", action="store_false", default=None,
                        help="skip the matmul peak micro-benchmark (fraction of peak: not measured)")
    parser.add_argument("--progress", choices=("auto", "on", "off"), help="progress bars on stderr (default: auto)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads during the run (default: torch's own)")
    parser.add_argument("--no-drift", dest="drift", action="store_false", default=None,
                        help="skip the drift stage (long streams scored window by window)")
    parser.add_argument("--no-report", dest="report", action="store_false", default=None,
                        help="do not build the HTML report at the end (python run_all.py --report-only RUN_DIR later)")
    parser.add_argument("--report-only", nargs="+", type=Path, metavar="RUN_DIR",
                        help="build the report (tables, figures, audio, HTML) from saved run folders and exit; runs nothing")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="report comparing run A with run B (deltas B - A, warnings when manifests differ)")
    parser.add_argument("--list", action="store_true", help="list presets, workloads, generators and fields, then exit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return parser


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file; unknown keys are errors that name the allowed ones."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for key in data:
        if key not in CONFIG_KEYS:
            hint = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
            did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"unknown key {key!r} in {path}.{did_you_mean} Allowed: {', '.join(CONFIG_KEYS)}")
    if "set" in data and not isinstance(data["set"], dict):
        raise ConfigError(f"'set' in {path} must be a table of \"key\" = value pairs")
    return data


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Defaults < config file < flags."""
    cfg = RunConfig()
    if args.config is not None:
        data = load_config_file(args.config)
        for key, value in data.items():
            if key == "set":
                cfg.overrides.extend(f"{k}={_toml_value(v)}" for k, v in value.items())
            elif key == "workload":
                cfg.workloads = [value] if isinstance(value, str) else list(value)
            elif key == "generators":
                cfg.generators = [value] if isinstance(value, str) else list(value)
            else:
                setattr(cfg, key, value)
    for key, attr in (("preset", "preset"), ("workload", "workloads"), ("generators", "generators"),
                      ("device", "device"), ("dtype", "dtype"), ("out", "out"), ("resume", "resume"),
                      ("flops", "flops"), ("peak", "peak"), ("progress", "progress"), ("threads", "threads"),
                      ("drift", "drift"), ("report", "report")):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, attr, value)
    cfg.overrides.extend(args.overrides or [])
    return cfg


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_overrides(items: Sequence[str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Split ``key=value`` overrides into preset, ``workload.*`` and ``drift.*`` fields."""
    preset_over, workload_over, drift_over = {}, {}, {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (for example workload.horizon_s=60)")
        key, value = (part.strip() for part in item.split("=", 1))
        if key.startswith("workload."):
            workload_over[key[len("workload."):]] = value
        elif key.startswith("drift."):
            drift_over[key[len("drift."):]] = value
        elif key.startswith("settings."):
            raise ConfigError(
                f"override {key!r}: the stream (context, block, steps, cfg, sampler) is set by the workload, "
                f"not the preset; use workload.{key[len('settings.'):]}={value}"
            )
        else:
            preset_over[key] = value
    return preset_over, workload_over, drift_over


def _resolve_generators(names: list[str]) -> list[str]:
    known = GENERATORS.names()  # "all": the systems under test
    try:
        selectable = GENERATORS.names(include_extras=True)  # plus tools that only run when named
    except TypeError:
        selectable = known
    out: list[str] = []
    for name in names:
        if name == "all":
            out.extend(n for n in known if n not in out)
            continue
        if name not in selectable:
            hint = difflib.get_close_matches(name, selectable, n=1)
            did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"unknown generator {name!r}.{did_you_mean} Known: {', '.join(selectable)}")
        if name not in out:
            out.append(name)
    if NULL_GENERATOR in known and NULL_GENERATOR not in out:
        log.info("adding the null generator %r: every run reports the harness's overhead per block", NULL_GENERATOR)
        out.append(NULL_GENERATOR)
    return out


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: only cpu and cuda are supported")
    return str(device)


def build_plan(cfg: RunConfig) -> Plan:
    """Validate a :class:`RunConfig` against presets, workloads and the generator registry."""
    preset_over, workload_over, drift_over = _split_overrides(cfg.overrides)
    preset = apply_overrides(get_preset(cfg.preset), preset_over)
    workloads: list[Workload] = []
    for name in cfg.workloads:
        for w in get_workloads(name):
            workloads.append(apply_workload_overrides(w, workload_over))
    if not workloads:
        raise ConfigError("no workload selected; use --workload default (or smoke, paper, ...)")
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype {cfg.dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    if cfg.progress not in ("auto", "on", "off"):
        raise ConfigError(f"progress must be auto, on or off, got {cfg.progress!r}")
    if isinstance(cfg.threads, bool) or int(cfg.threads) != cfg.threads or cfg.threads < 0:
        raise ConfigError(f"threads must be an integer >= 0 (0 = torch's default), got {cfg.threads!r}")
    if cfg.resume and not cfg.out:
        raise ConfigError("--resume needs --out pointing at the run folder to continue (for example runs/2026-...)")
    if cfg.drift:
        from bench.drift_stage import drift_workload_for

        drift_workload_for(workloads[0], drift_over)  # validate drift.* overrides before any work
    return Plan(cfg, preset, workloads, _resolve_generators(cfg.generators), resolve_device(cfg.device),
                DTYPES[cfg.dtype], preset_over, workload_over, drift_over)


# ------------------------------------------------------------------------------------------
# Running


def default_out_dir() -> Path:
    from bench.manifest import git_info

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path("runs") / f"{stamp}_{git_info()['short']}"


def _progress_bars(mode: str) -> tuple[Any, bool | None]:
    from tqdm.auto import tqdm

    return tqdm, {"auto": None, "on": False, "off": True}[mode]


def _peak(plan: Plan, store: RunStore, again: bool = False) -> dict[str, Any]:
    """The matmul peak: measured before the cells and (``again``) after them; the best counts.

    Measuring twice guards against a peak taken while the machine was busy (which would make
    achieved FLOP/s exceed "peak"); both measurements are kept in ``peak.json``.
    """
    from bench.peak import measure_matmul_peak
    from bench.runner import dtype_name

    previous = storage.read_json(store.root / "peak.json")
    same = bool(previous and previous.get("device") == plan.device and previous.get("dtype") == dtype_name(plan.dtype)
                and previous.get("flops_per_s"))
    if not again and plan.config.resume and same:
        log.info("reusing the measured peak from %s", store.root / "peak.json")
        return previous
    if not plan.config.peak:
        result = {"flops_per_s": None, "device": plan.device, "dtype": dtype_name(plan.dtype),
                  "note": "not measured: --no-peak"}
        if not again:
            storage.write_json(store.root / "peak.json", {"kind": "peak", **result})
        return result
    result = measure_matmul_peak(plan.device, plan.dtype).to_dict()
    measurements = (previous.get("measurements", []) if same else []) + [result["flops_per_s"]]
    best = max(measurements)
    if best > result["flops_per_s"]:
        result = {**previous, "flops_per_s": best}
    result["measurements"] = measurements
    log.info("matmul peak on %s (%s): %.1f GFLOP/s (best of %d measurement(s))", plan.device, result["dtype"],
             best / 1e9, len(measurements))
    storage.write_json(store.root / "peak.json", {"kind": "peak", **result})
    return result


@contextlib.contextmanager
def torch_threads(n: int):  # noqa: ANN201
    """Use ``n`` torch intra-op threads inside the block (0: leave torch's setting alone)."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute(plan: Plan, clock: Any = None) -> int:
    """Run a validated plan; returns the exit status."""
    with torch_threads(plan.config.threads):
        return _execute(plan, clock)


def _execute(plan: Plan, clock: Any = None) -> int:
    from bench.clocks import make_clock
    from bench.manifest import build_manifest, utc_now
    from bench.runner import Runner, cell_hash, dtype_name

    t_run = time.perf_counter()
    out = Path(plan.config.out) if plan.config.out else default_out_dir()
    store = RunStore(out)
    if not plan.config.resume and (out / "manifest.json").exists():
        raise ConfigError(f"{out} already holds a run; add --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    cells = [(g, w) for w in plan.workloads for g in plan.generators]
    hashes = {(g, w.name): cell_hash(g, plan.preset, w, plan.device, plan.dtype) for g, w in cells}
    run_info = {
        "argv": sys.argv, "config": dataclasses.asdict(plan.config), "preset": plan.preset.name,
        "preset_fingerprint": dataclass_fingerprint(plan.preset), "preset_overrides": plan.preset_overrides,
        "workload_overrides": plan.workload_overrides, "device": plan.device, "dtype": dtype_name(plan.dtype),
        "workloads": {w.name: {"fingerprint": w.fingerprint(), **w.to_dict()} for w in plan.workloads},
        "seeds": {w.name: [w.seed + r for r in range(w.repeats)] for w in plan.workloads},
        "cells": [{"generator": g, "workload": w.name, "cell_hash": hashes[(g, w.name)]} for g, w in cells],
    }
    if plan.config.drift:
        from bench.drift_stage import drift_workload_for

        run_info["drift"] = drift_workload_for(plan.workloads[0], plan.drift_overrides).to_dict()
    manifest = build_manifest(run_info, SCHEMA_VERSION)
    name = "manifest.json" if not (out / "manifest.json").exists() else f"manifest-resume-{manifest['created_utc'].replace(':', '')}.json"
    storage.write_json(out / name, manifest)
    log.info("run folder %s (manifest written)", out)

    peak = _peak(plan, store)
    clock = clock if clock is not None else make_clock(plan.device)
    tqdm, disable = _progress_bars(plan.config.progress)
    from tqdm.contrib.logging import logging_redirect_tqdm

    statuses: list[dict[str, Any]] = []
    with logging_redirect_tqdm(loggers=[logging.getLogger()]):
        cell_bar = tqdm(total=len(cells), desc="cells", unit="cell", file=sys.stderr, disable=disable)
        for generator, workload in cells:
            key = hashes[(generator, workload.name)]
            cell_bar.set_postfix_str(f"{generator} x {workload.name}")
            if plan.config.resume and store.is_complete(generator, workload.name, key):
                log.info("%s x %s: complete with the same hash, skipped (--resume)", generator, workload.name)
                statuses.append({**store.status(generator, workload.name), "resumed": True})
                cell_bar.update(1)
                continue
            statuses.append(_run_one(plan, store, clock, tqdm, disable, generator, workload, key, utc_now, Runner))
            cell_bar.update(1)
        cell_bar.close()

    if any(not s.get("resumed") for s in statuses):
        peak = _peak(plan, store, again=True)
    ok_cells = [(s["generator"], s["workload"]) for s in statuses if s["status"] == STATUS_OK]
    _write_run_tables(store, ok_cells, statuses, peak)
    drift_failed: list[dict[str, Any]] = []
    if plan.config.drift:
        with logging_redirect_tqdm(loggers=[logging.getLogger()]):
            drift_failed = _drift(plan, out, tqdm, disable)
    from reports.summary import write_summary

    write_summary(out)
    if plan.config.report:
        _report(out)
    failed = [s for s in statuses if s["status"] != STATUS_OK]
    wall = time.perf_counter() - t_run
    log.info("done in %.1f s: %d cell(s) ok, %d failed; summary in %s", wall, len(ok_cells), len(failed), out / "summary.md")
    for s in failed:
        log.error("%s x %s failed: %s (traceback in %s)", s["generator"], s["workload"], s.get("error"),
                  store.cell_dir(s["generator"], s["workload"]) / "status.json")
    for s in drift_failed:
        log.error("drift %s failed: %s (traceback in %s)", s["generator"], s.get("error"), out / "drift" / "config.json")
    return 1 if failed or drift_failed else 0


def _drift(plan: Plan, out: Path, tqdm: Any, disable: bool | None) -> list[dict[str, Any]]:
    """The drift stage; with --resume it is skipped when a complete one with the same settings exists."""
    import functools

    from bench.drift_stage import drift_workload_for, run_drift_stage

    drift = drift_workload_for(plan.workloads[0], plan.drift_overrides)
    previous = storage.read_json(out / "drift" / "config.json")
    if (plan.config.resume and previous and previous.get("drift") == drift.to_dict()
            and previous.get("statuses") and all(s.get("status") == "ok" for s in previous["statuses"])
            and sorted(s["generator"] for s in previous["statuses"]) == sorted(plan.generators)):
        log.info("drift stage: complete with the same settings, skipped (--resume)")
        return []
    result = run_drift_stage(
        out, plan.preset, plan.workloads, plan.generators, plan.device, plan.dtype,
        drift_overrides=plan.drift_overrides,
        progress=functools.partial(tqdm, file=sys.stderr, disable=disable),
    )
    return list(result.failed)


def _report(out: Path) -> None:
    """Build <out>/report from the saved folder; a report problem never changes the run's status."""
    from reports.build import build_report

    try:
        index = build_report([out], out / "report")
        log.info("report: %s", index)
    except Exception as exc:  # noqa: BLE001 - the measurements are saved; the report can be rebuilt
        log.error("report not built (%s); rebuild it with: python run_all.py --report-only %s", exc, out)


def _run_one(plan: Plan, store: RunStore, clock: Any, tqdm: Any, disable: bool | None, generator: str,
             workload: Workload, key: str, utc_now: Any, runner_cls: Any) -> dict[str, Any]:
    folder = store.reset_cell(generator, workload.name)
    started, t0 = utc_now(), time.perf_counter()
    bar = tqdm(total=0, desc=f"{generator} x {workload.name}", unit="block", leave=False, file=sys.stderr,
               disable=disable)
    runner = runner_cls(clock, progress=bar.update, count_flops=plan.config.flops)
    bar.total = runner.total_steps(workload)
    status: dict[str, Any] = {"kind": "cell_status", "generator": generator, "workload": workload.name,
                              "cell_hash": key, "workload_hash": workload.fingerprint(), "started_utc": started}
    try:
        result = runner.run_cell(generator, plan.preset, workload, plan.device, plan.dtype, folder, key)
        store.write_cell_tables(generator, workload.name, result.tables())
        status.update({"status": STATUS_OK, "error": None, "traceback": None, "info": result.info})
        log.info("%s x %s: ok in %.1f s", generator, workload.name, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one failure never stops the other cells
        status.update({"status": STATUS_FAILED, "error": f"{type(exc).__name__}: {exc}",
                       "traceback": traceback.format_exc()})
        log.error("%s x %s: failed: %s", generator, workload.name, status["error"])
    finally:
        bar.close()
        gc.collect()  # release this cell's model before the next one measures its memory
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    status.update({"finished_utc": utc_now(), "wall_s": time.perf_counter() - t0, "resumed": False})
    store.write_status(generator, workload.name, status)  # last: the cell counts as done only now
    return status


def _write_run_tables(store: RunStore, ok_cells: list[tuple[str, str]], statuses: list[dict[str, Any]],
                      peak: dict[str, Any]) -> None:
    import pandas as pd

    from metrics import systems

    cells = pd.DataFrame([{
        "generator": s["generator"], "workload": s["workload"], "status": s["status"], "cell_hash": s["cell_hash"],
        "error": s.get("error") or "", "wall_s": s.get("wall_s"), "resumed": bool(s.get("resumed")),
    } for s in statuses])
    store.write_run_table("cells", cells)
    for name in RUN_TABLES:  # a resumed folder may hold tables of an earlier invocation
        for fmt in storage.TABLE_FORMATS:
            (store.root / f"{name}.{fmt}").unlink(missing_ok=True)
    if not ok_cells:
        return
    tables = store.read_cell_tables(ok_cells)
    for name, df in tables.items():
        store.write_run_table(name, df)
    summary = systems.summarize(tables["blocks"], tables["streams"], tables["flops"], peak.get("flops_per_s"))
    store.write_run_table("summary", summary)
    store.write_run_table("phase_summary", systems.phase_summary(tables["phases"]))
    store.write_run_table("pairs", systems.pairwise_ratios(summary))
    store.write_run_table("overhead", systems.null_overhead(summary, NULL_GENERATOR, REFERENCE_GENERATOR))


def list_everything() -> str:
    lines = ["presets:"]
    lines += [f"  {p.name:<11} {p.description}" for p in PRESETS.values()]
    lines.append("workloads:")
    for name in WORKLOADS:
        for w in get_workloads(name):
            lines.append(f"  {w.name:<22} {w.description}")
    lines.append("generators:")
    lines += [f"  {name}" for name in GENERATORS.names()]
    lines.append("preset fields (--set FIELD=VALUE):")
    lines += [f"  {f}" for f in preset_fields() if not f.startswith("settings.")]
    lines.append("workload fields (--set workload.FIELD=VALUE):")
    lines += [f"  workload.{f.name}" for f in dataclasses.fields(Workload) if f.name not in ("name",)]
    return "\n".join(lines) + "\n"


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    root.setLevel(level)


def main(argv: Sequence[str] | None = None, clock: Any = None) -> int:
    """Entry point of ``python run_all.py``; ``clock`` lets tests inject a FakeClock."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    if args.list:
        sys.stdout.write(list_everything())
        return 0
    if args.report_only or args.compare:
        from reports.__main__ import main as report_main

        report_argv = [str(p) for p in (args.report_only or [])]
        report_argv += ["--out", str(args.out)] if args.out else []
        report_argv += ["--compare", *map(str, args.compare)] if args.compare else []
        return report_main(report_argv)
    try:
        plan = build_plan(resolve_config(args))
        return execute(plan, clock=clock)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
