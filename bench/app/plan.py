"""A validated run: a :class:`~bench.app.config.RunConfig` checked against presets, workloads, the
generator registry and the machine, turned into objects (:class:`Plan`) before any work starts."""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.app.config import COMPILE_MODES, EXECUTORS, PROGRESS_MODES, RunConfig, split_overrides
from bench.app.drift.config import MAX_DRIFT_WORKERS, drift_workload_for
from bench.core.errors import ConfigError, did_you_mean
from bench.core.presets import Preset, apply_overrides, get_preset
from bench.core.registry import GENERATORS, NULL_GENERATOR, PHASED_NULL_GENERATOR
from bench.core.workloads import Workload, apply_workload_overrides, get_workloads

log = logging.getLogger("bench")

# Bounds checked before any allocation: beyond them a run is a typo, not a measurement.
MAX_REPEATS = 1000
MAX_WARMUP_BLOCKS = 10_000
MAX_BLOCKS_PER_STREAM = 1_000_000
MAX_THREADS = 4096
MAX_DRIFT_STREAMS = 1000
MAX_STEP_TIMEOUT_S = 7 * 24 * 3600.0
# The codec (preset group) whose frames a regime's blocks are made of; the null generator uses dit's.
CODEC_GROUPS = {"outpaint": "dit", "lmdm-encdec": "dit", "lmdm-causal": "dit", "lmdm-causal-arc": "dit", "lmm": "lmm",
                NULL_GENERATOR: "dit", PHASED_NULL_GENERATOR: "dit"}

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


@dataclass
class Plan:
    """A validated run: objects, not names."""

    config: RunConfig
    preset: Preset
    workloads: list[Workload]
    generators: list[str]
    device: str
    dtype: torch.dtype
    preset_overrides: dict[str, str]
    workload_overrides: dict[str, str]
    drift_overrides: dict[str, str] = field(default_factory=dict)

    def cells(self) -> list[tuple[str, Workload]]:
        """The (generator, workload) cells in run order: workload by workload."""
        return [(g, w) for w in self.workloads for g in self.generators]


def resolve_generators(names: list[str]) -> list[str]:
    """Registry names for ``names`` ("all": every system under test), plus the null generator."""
    known = GENERATORS.names()  # "all": the systems under test
    selectable = GENERATORS.names(include_extras=True)  # plus tools that only run when named
    out: list[str] = []
    for name in names:
        if name == "all":
            out.extend(n for n in known if n not in out)
            continue
        if name not in selectable:
            raise ConfigError(f"unknown generator {name!r}{did_you_mean(name, selectable)} "
                              f"(known: {', '.join(selectable)})")
        if name not in out:
            out.append(name)
    if NULL_GENERATOR in known and NULL_GENERATOR not in out:
        log.info("adding the null generator %r: every run reports the harness's overhead per block", NULL_GENERATOR)
        out.append(NULL_GENERATOR)
    return out


def resolve_device(name: str, local: bool = True) -> str:
    """``auto`` (CUDA when available here), ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine
    when the cells run here (``local``); on a Ray cluster the executor checks that the cluster has GPUs."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and local and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: only cpu and cuda are supported")
    return str(device)


def _check_executor(cfg: RunConfig) -> None:
    """``executor`` is one of :data:`~bench.app.config.EXECUTORS`; ``ray_address`` only means something
    with Ray (whether Ray is installed is checked when the executor opens, before any work)."""
    if cfg.executor not in EXECUTORS:
        raise ConfigError(f"executor {cfg.executor!r}{did_you_mean(str(cfg.executor), EXECUTORS)} is not known; "
                          f"use one of {', '.join(EXECUTORS)}")
    if cfg.ray_address is not None and not isinstance(cfg.ray_address, str):
        raise ConfigError(f"ray_address must be a string (auto, host:port, ray://host:port), got {cfg.ray_address!r}")
    if cfg.ray_address and cfg.executor != "ray":
        log.warning("ray_address %r is ignored: the %s executor runs the cells here", cfg.ray_address, cfg.executor)


def _check_run_options(cfg: RunConfig) -> None:
    """The options that are not names: dtype, progress, threads, resume, executor."""
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype {cfg.dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    if cfg.progress not in PROGRESS_MODES:
        raise ConfigError(f"progress must be auto, on or off, got {cfg.progress!r}")
    if isinstance(cfg.threads, bool) or int(cfg.threads) != cfg.threads or cfg.threads < 0:
        raise ConfigError(f"threads must be an integer >= 0 (0 = torch's default), got {cfg.threads!r}")
    if isinstance(cfg.threads, int) and cfg.threads > MAX_THREADS:
        raise ConfigError(f"threads must be <= {MAX_THREADS}, got {cfg.threads}")
    workers = cfg.drift_workers
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= MAX_DRIFT_WORKERS:
        raise ConfigError(f"drift_workers (--drift-workers) must be an integer from 0 (automatic) to "
                          f"{MAX_DRIFT_WORKERS}, got {workers!r}")
    timeout = cfg.step_timeout_s
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or not 0 < timeout <= MAX_STEP_TIMEOUT_S:
        raise ConfigError(f"step_timeout_s (--step-timeout) must be a number of seconds in (0, {MAX_STEP_TIMEOUT_S:g}],"
                          f" got {timeout!r}")
    cell_timeout = cfg.cell_timeout_s
    if cell_timeout is not None and (isinstance(cell_timeout, bool) or not isinstance(cell_timeout, (int, float))
                                     or not math.isfinite(cell_timeout) or not 0 < cell_timeout <= MAX_STEP_TIMEOUT_S):
        raise ConfigError(f"cell_timeout_s (--cell-timeout) must be a number of seconds in (0, {MAX_STEP_TIMEOUT_S:g}],"
                          f" got {cell_timeout!r}")
    if cfg.resume and not cfg.out:
        raise ConfigError("--resume needs --out pointing at the run folder to continue (for example runs/2026-...)")
    if cfg.allow_config_change and not cfg.resume:
        raise ConfigError("--allow-config-change only means something with --resume (continuing a run folder)")
    _check_executor(cfg)
    if cfg.compile not in COMPILE_MODES:
        raise ConfigError(f"compile {cfg.compile!r}{did_you_mean(str(cfg.compile), COMPILE_MODES)} is not a mode; "
                          f"use one of {', '.join(COMPILE_MODES)} (off = eager)")


def _check_unique(kind: str, names: list[str]) -> None:
    """ConfigError naming the first name listed twice (its rows would be duplicated, its repeats miscounted)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{kind} {name!r} is listed twice; list each {kind} once (use workload.repeats "
                              "for more timed streams)")
        seen.add(name)


def _check_sizes(workloads: list[Workload], preset: Preset, generators: list[str]) -> None:
    """Sizes bounded before anything is allocated, and a block of at least one frame for every codec
    of the selected regimes (else each regime rounds up to its own frame and the workloads differ)."""
    for w in workloads:
        for name, value, bound in (("repeats", w.repeats, MAX_REPEATS), ("warmup_blocks", w.warmup_blocks,
                                   MAX_WARMUP_BLOCKS), ("n_blocks (horizon_s / block_s)", w.n_blocks,
                                   MAX_BLOCKS_PER_STREAM)):
            if value > bound:
                raise ConfigError(f"workload {w.name!r}: {name} is {value}, more than the {bound} allowed")
        groups = sorted({CODEC_GROUPS[g] for g in generators if g in CODEC_GROUPS})
        for group in groups:
            codec = getattr(preset, group).codec
            frames = w.block_s * codec.frame_rate_hz
            if frames < 1 - 1e-9:
                raise ConfigError(
                    f"workload {w.name!r}: block_s={w.block_s:g} s is shorter than one frame of the {group} codec "
                    f"({1 / codec.frame_rate_hz:g} s at {codec.frame_rate_hz:g} Hz); every regime must get the same "
                    f"workload, so use workload.block_s >= {1 / codec.frame_rate_hz:g}")


def estimate_bytes(plan: "Plan", drift_streams: int = 0, drift_horizon_s: float = 0.0) -> int:
    """Bytes of audio the run writes (float32 WAVs): every cell's repeats, plus the drift streams."""
    per_s = 4 * plan.preset.sample_rate * plan.preset.dit.codec.channels
    cells = sum(w.n_blocks * w.block_s * w.repeats for w in plan.workloads) * len(plan.generators)
    return int(per_s * (cells + drift_streams * drift_horizon_s * len(plan.generators)))


def check_out_dir(out: Path, need_bytes: int = 0) -> None:
    """ConfigError when ``out`` cannot be a run folder: a file, under a file, not writable, or on a disk
    with less free space than the run needs (``need_bytes``, the estimate)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose a folder path for the run")
    parent = out
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"--out {out}: {parent} is a file, so no folder can be made under it; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {parent} is not writable by this user; choose a folder you can write "
                          "(or fix its permissions)")
    free = shutil.disk_usage(parent).free
    if need_bytes > free:
        raise ConfigError(f"the run would write about {need_bytes / 1e9:.3g} GB of audio, but {parent} has "
                          f"{free / 1e9:.3g} GB free; shorten workload.horizon_s, lower workload.repeats or "
                          "drift.n_streams, or choose another --out")


def build_plan(cfg: RunConfig) -> Plan:
    """Validate a :class:`RunConfig` against presets, workloads and the generator registry."""
    overrides = split_overrides(cfg.overrides)
    preset = apply_overrides(get_preset(cfg.preset), overrides.preset)
    if not cfg.generators:
        raise ConfigError("no generator selected; use --generators all (or names: python run_all.py --list)")
    _check_unique("workload", list(cfg.workloads))
    _check_unique("generator", list(cfg.generators))
    workloads = [apply_workload_overrides(w, overrides.workload) for name in cfg.workloads for w in get_workloads(name)]
    if not workloads:
        raise ConfigError("no workload selected; use --workload default (or smoke, paper, ...)")
    _check_unique("workload", [w.name for w in workloads])
    _check_run_options(cfg)
    generators = resolve_generators(cfg.generators)
    _check_sizes(workloads, preset, generators)
    drift_streams, drift_horizon_s = _check_drift(cfg, workloads[0], overrides.drift)
    device = resolve_device(cfg.device, local=cfg.executor == "local")
    if (cfg.drift or cfg.continuation) and torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: the cells run on the Ray cluster, but the drift and continuation "
                          "stages run here, where CUDA is not available; add --no-drift --no-continuation (or run "
                          "the driver on a GPU machine)")
    plan = Plan(cfg, preset, workloads, generators, device, DTYPES[cfg.dtype], overrides.preset, overrides.workload,
                overrides.drift)
    if cfg.out:
        check_out_dir(Path(cfg.out), estimate_bytes(plan, drift_streams, drift_horizon_s))
    return plan


def _check_drift(cfg: RunConfig, workload: Workload, drift_overrides: dict[str, str]) -> tuple[int, float]:
    """Validate the drift.* overrides before any work, also when the stage is off (a typo is an error
    either way); (streams, horizon s) of the drift stage (0 without)."""
    drift = drift_workload_for(workload, drift_overrides)
    if not cfg.drift:
        if drift_overrides:
            log.warning("--no-drift: the drift stage does not run, so %s ha%s no effect",
                        ", ".join(f"drift.{k}" for k in drift_overrides), "s" if len(drift_overrides) == 1 else "ve")
        return 0, 0.0
    if drift.n_streams > MAX_DRIFT_STREAMS:
        raise ConfigError(f"drift.n_streams is {drift.n_streams}, more than the {MAX_DRIFT_STREAMS} allowed")
    if drift.stream.n_blocks > MAX_BLOCKS_PER_STREAM:
        raise ConfigError(f"drift.horizon_s is {drift.horizon_s:g} s, {drift.stream.n_blocks} blocks, more than the "
                          f"{MAX_BLOCKS_PER_STREAM} allowed")
    return drift.n_streams, drift.horizon_s
