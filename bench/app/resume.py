"""What ``--resume`` may continue: a run folder is resumed only with the configuration it was made
with (:func:`run_identity`, saved in its manifest), unless ``--allow-config-change`` says otherwise;
then both configurations are recorded (:func:`record_config_change`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bench.app.plan import Plan
from bench.app.runner import dtype_name
from bench.core.errors import ConfigError
from bench.core.hashing import dataclass_fingerprint
from bench.core.storage import read_json, write_json

log = logging.getLogger("bench")


def run_identity(plan: Plan) -> dict[str, Any]:
    """What a run measures (not how it is shown): preset, workloads, generators, device, dtype, threads,
    the FLOPs pass and the drift settings. Two invocations with equal identities may share a folder."""
    return {
        "preset": plan.preset.name, "preset_fingerprint": dataclass_fingerprint(plan.preset),
        "workloads": {w.name: w.fingerprint() for w in plan.workloads}, "generators": list(plan.generators),
        "device": plan.device, "dtype": dtype_name(plan.dtype), "threads": plan.config.threads,
        "flops": plan.config.flops, "drift": plan.config.drift, "drift_overrides": dict(plan.drift_overrides),
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)]


def check_resume(plan: Plan, out: Path, identity: dict[str, Any]) -> list[str]:
    """The differences between this configuration and the one of the run in ``out`` (``--resume`` only);
    ConfigError when there are some and ``--allow-config-change`` was not given."""
    if not plan.config.resume:
        return []
    manifest = read_json(out / "manifest.json")
    if manifest is None:
        return []  # nothing to continue: a fresh run in this folder
    previous = manifest.get("current_identity") or (manifest.get("run") or {}).get("identity")
    if not isinstance(previous, dict):
        log.warning("%s: its manifest predates configuration checks; resuming without comparing", out)
        return []
    changes = _differences(previous, identity)
    if changes and not plan.config.allow_config_change:
        raise ConfigError(f"--resume: {out} was made with another configuration ({'; '.join(changes)}); resume "
                          "with the same options, choose another --out, or add --allow-config-change (both "
                          "configurations are then recorded in the manifest)")
    if changes:
        log.warning("--allow-config-change: resuming %s with another configuration: %s", out, "; ".join(changes))
    return changes


def record_config_change(out: Path, manifest_name: str, identity: dict[str, Any], changes: list[str]) -> None:
    """Add to ``manifest.json`` (what reports read) the change, the manifest of the invocation that made
    it, and the configuration now in effect (the one a later ``--resume`` is compared with)."""
    manifest = read_json(out / "manifest.json") or {}
    history = list(manifest.get("config_changes") or [])
    history.append({"manifest": manifest_name, "changes": changes,
                    "previous_identity": manifest.get("current_identity") or manifest.get("run", {}).get("identity")})
    write_json(out / "manifest.json", {**manifest, "config_changes": history, "current_identity": identity})
