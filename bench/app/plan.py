"""A validated run: a :class:`~bench.app.config.RunConfig` checked against presets, workloads, the
generator registry and the machine, turned into objects (:class:`Plan`) before any work starts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from bench.app.config import EXECUTORS, PROGRESS_MODES, RunConfig, split_overrides
from bench.app.drift.config import drift_workload_for
from bench.core.errors import ConfigError, did_you_mean
from bench.core.presets import Preset, apply_overrides, get_preset
from bench.core.registry import GENERATORS, NULL_GENERATOR
from bench.core.workloads import Workload, apply_workload_overrides, get_workloads

log = logging.getLogger("bench")

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
    if cfg.resume and not cfg.out:
        raise ConfigError("--resume needs --out pointing at the run folder to continue (for example runs/2026-...)")
    _check_executor(cfg)


def build_plan(cfg: RunConfig) -> Plan:
    """Validate a :class:`RunConfig` against presets, workloads and the generator registry."""
    overrides = split_overrides(cfg.overrides)
    preset = apply_overrides(get_preset(cfg.preset), overrides.preset)
    workloads = [apply_workload_overrides(w, overrides.workload) for name in cfg.workloads for w in get_workloads(name)]
    if not workloads:
        raise ConfigError("no workload selected; use --workload default (or smoke, paper, ...)")
    _check_run_options(cfg)
    if cfg.drift:
        drift_workload_for(workloads[0], overrides.drift)  # validate drift.* overrides before any work
    device = resolve_device(cfg.device, local=cfg.executor == "local")
    if cfg.drift and torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: the cells run on the Ray cluster, but the drift stage runs here, "
                          "where CUDA is not available; add --no-drift (or run the driver on a GPU machine)")
    return Plan(cfg, preset, workloads, resolve_generators(cfg.generators), device,
                DTYPES[cfg.dtype], overrides.preset, overrides.workload, overrides.drift)
