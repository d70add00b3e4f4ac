"""A run's configuration before validation: flags, the TOML config file and ``--set`` overrides.

Precedence: built-in defaults < ``--config FILE.toml`` < command-line flags. Overrides
(``--set key=value``, repeatable, or the config file's ``[set]`` table) address the preset
(``dit.width=128``), the workload (``workload.horizon_s=60``) or the drift stage
(``drift.n_streams=4``); :func:`split_overrides` sorts them. Torch-free: the CLI imports this
module for every command, including those that run no model.
"""

from __future__ import annotations

import argparse
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bench.core.errors import ConfigError, did_you_mean

DEFAULT_STEP_TIMEOUT_S = 600.0  # seconds; a generator step running longer fails its cell (bench.app.guards)

CONFIG_KEYS = ("preset", "workload", "generators", "device", "dtype", "out", "resume", "flops", "peak", "progress",
               "threads", "drift", "drift_workers", "continuation", "report", "executor", "ray_address", "step_timeout_s", "cell_timeout_s", "allow_config_change",
               "compile", "set")
# The type each config-file key must have (TOML is typed: drift = "false" is a string, not a boolean).
_BOOL, _STR, _NAMES = ("a boolean (true or false, without quotes)", "a string", "a string or a list of strings")
KEY_TYPES = {
    "preset": _STR, "workload": _NAMES, "generators": _NAMES, "device": _STR, "dtype": _STR, "out": _STR,
    "resume": _BOOL, "flops": _BOOL, "peak": _BOOL, "progress": _STR, "threads": "an integer", "drift": _BOOL,
    "drift_workers": "an integer", "continuation": _BOOL,
    "report": _BOOL, "executor": _STR, "ray_address": _STR, "step_timeout_s": "a number of seconds",
    "cell_timeout_s": "a number of seconds",
    "allow_config_change": _BOOL, "compile": _STR, "set": "a table of \"key\" = value pairs",
}
# Command-line flag (argparse dest) -> RunConfig attribute, for flags that override the config file.
FLAG_ATTRIBUTES = (
    ("preset", "preset"), ("workload", "workloads"), ("generators", "generators"), ("device", "device"),
    ("dtype", "dtype"), ("out", "out"), ("resume", "resume"), ("flops", "flops"), ("peak", "peak"),
    ("progress", "progress"), ("threads", "threads"), ("drift", "drift"),
    ("drift_workers", "drift_workers"), ("continuation", "continuation"),
    ("report", "report"),
    ("executor", "executor"), ("ray_address", "ray_address"), ("step_timeout_s", "step_timeout_s"),
    ("cell_timeout_s", "cell_timeout_s"),
    ("allow_config_change", "allow_config_change"), ("compile", "compile"),
)
PROGRESS_MODES = ("auto", "on", "off")
EXECUTORS = ("local", "ray")  # who runs the cells: this process, or Ray tasks (bench/app/executors/)
# torch.compile modes of --compile ("off" = eager); "reduce-overhead" adds CUDA graphs on a GPU
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


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
    drift: bool = True  # the drift stage after the systems cells (bench/app/drift/)
    drift_workers: int = 0  # processes generating the drift streams: 0 = automatic, 1 = this process
    continuation: bool = True  # the continuation stage: held-out contexts continued (bench/app/continuation.py)
    report: bool = True  # build <out>/report (tables, figures, HTML) at the end
    executor: str = "local"  # local (this process, one cell after another) or ray (a task per cell)
    ray_address: str | None = None  # --executor ray: the cluster (auto, host:port, ray://...); None: a new local one
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S  # a generator step running longer fails its cell
    cell_timeout_s: float | None = None  # a cell (build, warm-up, streams, FLOPs pass) running longer fails
    allow_config_change: bool = False  # --resume may continue a run made with another configuration
    compile: str = "off"  # torch.compile the generators' step passes: one of COMPILE_MODES (docs/harness.md)
    overrides: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Overrides:
    """``key=value`` overrides sorted by what they address (keys without their prefix)."""

    preset: dict[str, str]
    workload: dict[str, str]
    drift: dict[str, str]


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
            raise ConfigError(f"unknown key {key!r} in {path}{did_you_mean(key, CONFIG_KEYS)} "
                              f"(allowed: {', '.join(CONFIG_KEYS)})")
    for key, value in data.items():
        if not _has_type(key, value):
            raise ConfigError(f"{key!r} in {path} must be {KEY_TYPES[key]}, got {type(value).__name__} {value!r}")
    return data


def _has_type(key: str, value: Any) -> bool:
    """Whether a config-file value has the type :data:`KEY_TYPES` gives its key (no coercion)."""
    kind = KEY_TYPES[key]
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _NAMES:
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    if key in ("threads", "drift_workers"):
        return isinstance(value, int) and not isinstance(value, bool)
    if key in ("step_timeout_s", "cell_timeout_s"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, dict)


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Defaults < config file < flags; overrides accumulate in that order (a later one wins)."""
    cfg = RunConfig()
    if args.config is not None:
        for key, value in load_config_file(args.config).items():
            if key == "set":
                cfg.overrides.extend(f"{k}={_toml_value(v)}" for k, v in value.items())
            elif key == "workload":
                cfg.workloads = [value] if isinstance(value, str) else list(value)
            elif key == "generators":
                cfg.generators = [value] if isinstance(value, str) else list(value)
            else:
                setattr(cfg, key, value)
    for flag, attr in FLAG_ATTRIBUTES:
        value = getattr(args, flag)
        if value is not None:
            setattr(cfg, attr, value)
    cfg.overrides.extend(args.overrides or [])
    return cfg


def _toml_value(value: Any) -> str:
    """A TOML value as the text of a ``--set`` override (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (int, float, str)):
        raise ConfigError(f"[set] values must be numbers, strings or booleans, got {type(value).__name__} {value!r}")
    return str(value)


def _check_value(key: str, value: str) -> None:
    """Refuse an empty key and non-finite numbers (nan, inf) before any field sees them."""
    if not key:
        raise ConfigError(f"override '={value}' has no key; use key=value (for example workload.horizon_s=60)")
    try:
        number = float(value)
    except ValueError:
        return
    if not math.isfinite(number):
        raise ConfigError(f"override {key}={value}: {value!r} is not a finite number")


def split_overrides(items: Sequence[str]) -> Overrides:
    """Split ``key=value`` overrides into preset, ``workload.*`` and ``drift.*`` fields."""
    preset_over, workload_over, drift_over = {}, {}, {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (for example workload.horizon_s=60)")
        key, value = (part.strip() for part in item.split("=", 1))
        _check_value(key, value)
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
    return Overrides(preset_over, workload_over, drift_over)
