"""Committed checkpoints: float16 safetensors, one ``config.json`` and a ``SHA256SUMS`` file.

Layout of ``baselines/checkpoints/<preset>/``::

    outpaint.safetensors      the bidirectional base DiT (the outpaint regime's weights)
    lmdm-encdec.safetensors   base fine-tuned with the context router + enc-dec mask
    lmdm-causal.safetensors   base fine-tuned with the context router + block-causal mask
    lmdm-causal-arc.safetensors  lmdm-causal after ARC-Forcing post-training (training/arc.py)
    lmm.safetensors           the LMM, with its fitted RVQ codebooks under ``rvq.codebooks``
    config.json               preset + overrides, and per model: training settings, data
                              manifest sha256, final loss, wall time, parameters, file sha256
    SHA256SUMS                ``sha256sum -c`` format, one line per file above (not itself)

Tensors are stored in float16 (``load_state_dict`` casts them to the run's dtype). File names are
the registry's regime names, so a ``dit.weights`` / ``lmm.weights`` that names this folder
resolves to ``<folder>/<regime>.safetensors``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from baselines.weights import CHECKPOINTS_DIR, SUMS_FILE, expected_hashes, sha256_of

CONFIG_FILE = "config.json"
STORAGE_DTYPE = torch.float16
MAX_FILE_BYTES = 20_000_000  # every committed checkpoint stays under 20 MB
REGIME_FILES = ("outpaint", "lmdm-encdec", "lmdm-causal", "lmdm-causal-arc", "lmm")


def checkpoints_dir(preset: str = "cpu") -> Path:
    """``baselines/checkpoints/<preset>`` inside this package tree."""
    return CHECKPOINTS_DIR / preset


def save_half(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> int:
    """Write ``tensors`` as float16 safetensors (atomically); returns the file size in bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    half = {k: v.detach().to("cpu", STORAGE_DTYPE).contiguous() for k, v in sorted(tensors.items())}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(half, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path.stat().st_size


def write_sums(folder: str | Path) -> Path:
    """(Re)write ``SHA256SUMS`` for every ``*.safetensors`` and ``config.json`` in ``folder``."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir() if p.suffix == ".safetensors" or p.name == CONFIG_FILE)
    lines = [f"{sha256_of(folder / name)}  {name}\n" for name in names]
    (folder / SUMS_FILE).write_text("".join(lines))
    return folder / SUMS_FILE


def verify_checkpoints(folder: str | Path) -> dict[str, str]:
    """Check every file listed in ``SHA256SUMS``: {name: "ok" | "missing" | "sha256 mismatch"}."""
    folder = Path(folder)
    status = {}
    for name, digest in expected_hashes(folder).items():
        path = folder / name
        if not path.is_file():
            status[name] = "missing"
        elif sha256_of(path) != digest:
            status[name] = "sha256 mismatch"
        else:
            status[name] = "ok"
    return status


def read_config(folder: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a checkpoints folder."""
    return json.loads((Path(folder) / CONFIG_FILE).read_text())


def update_config(folder: str | Path, preset: str, overrides: list[str], model: str, entry: dict[str, Any]) -> None:
    """Add or replace ``model``'s entry in ``config.json`` (creating it), then rewrite the sums."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text()) if path.is_file() else {}
    if config and (config.get("preset") != preset or config.get("preset_overrides") != overrides):
        raise ValueError(
            f"{path} holds checkpoints of preset {config.get('preset')!r} with other overrides; publish into an "
            "empty folder or retrain every model at the same architecture"
        )
    config["preset"] = preset
    config["preset_overrides"] = overrides
    config["storage_dtype"] = str(STORAGE_DTYPE).replace("torch.", "")
    config.setdefault("models", {})[model] = entry
    config["models"] = dict(sorted(config["models"].items()))
    path.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    write_sums(folder)


__all__ = [
    "checkpoints_dir", "save_half", "write_sums", "verify_checkpoints", "read_config", "update_config",
    "CONFIG_FILE", "REGIME_FILES", "MAX_FILE_BYTES",
]
