"""A regime's checkpoint: where it lives (``dit.weights`` / ``lmm.weights`` resolved per regime)
and the one check every loader runs before trusting it (:func:`load_checkpoint`).

The diffusion regimes share one ``dit.weights`` field but have one checkpoint each (the
bidirectional base for ``outpaint``, the fine-tunes for ``lmdm-encdec`` and ``lmdm-causal``), so
the field may name:

- ``""``: seeded random initialisation;
- ``"builtin:<preset>"``: the checkpoints committed in ``baselines/checkpoints/<preset>/``; the
  file for the regime is checked against that folder's ``SHA256SUMS`` before loading;
- a directory: ``<dir>/<regime name>.safetensors``;
- a file: that file, for whichever regime loads it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Collection, Mapping

import torch
from safetensors.torch import load_file

from bench.core.errors import ConfigError

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"
SUMS_FILE = "SHA256SUMS"  # ``<hex>  <name>`` lines, as written by ``sha256sum``


def sha256_of(path: str | Path) -> str:
    """The sha256 hex digest of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_identity(path: str | Path) -> dict[str, object]:
    """``{"path", "sha256", "bytes"}`` of a checkpoint file (sha256 None when the file is missing), so a
    run records exactly which weights it used; cached per (path, size, mtime) within a process."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return {"path": str(path), "sha256": None, "bytes": None}
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_of(path)
    return {"path": str(path), "sha256": _HASH_CACHE[key], "bytes": stat.st_size}


def expected_hashes(folder: str | Path) -> dict[str, str]:
    """file name -> sha256 from ``folder/SHA256SUMS`` (``<hex>  <name>`` lines; a ``*`` before the
    name, sha256sum's binary mode, is dropped)."""
    sums = Path(folder) / SUMS_FILE
    if not sums.exists():
        raise ConfigError(f"{folder} has no {SUMS_FILE}: the checkpoints in it cannot be verified")
    out = {}
    for number, line in enumerate(sums.read_text(errors="replace").splitlines(), start=1):
        if line.strip():
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
                raise ConfigError(f"{sums} line {number} is malformed ({line.strip()[:80]!r}); each line must be "
                                  "'<64 hex digits>  <file name>' as written by sha256sum")
            out[parts[1].strip().lstrip("*")] = parts[0].lower()
    return out


def resolve_weights(field: str, value: str, regime: str) -> str:
    """The checkpoint file ``regime`` loads for the weights field ``field`` (e.g. "dit.weights")
    set to ``value``; "" for seeded initialisation. Raises ConfigError naming the field."""
    if not value:
        return ""
    if value.startswith(BUILTIN_PREFIX):
        name = value[len(BUILTIN_PREFIX):]
        folder = CHECKPOINTS_DIR / name
        if not folder.is_dir():
            known = sorted(p.name for p in CHECKPOINTS_DIR.iterdir() if p.is_dir()) if CHECKPOINTS_DIR.is_dir() else []
            raise ConfigError(f"{field}={value!r}: no built-in checkpoints named {name!r} (known: {', '.join(known) or 'none'})")
        path = folder / f"{regime}.safetensors"
        if not path.exists():
            raise ConfigError(f"{field}={value!r}: no built-in checkpoint for regime {regime!r} ({path} is missing); "
                              f"set {field}='' for seeded weights")
        expected = expected_hashes(folder).get(path.name)
        actual = sha256_of(path)
        if expected != actual:
            raise ConfigError(f"{field}={value!r}: {path} has sha256 {actual}, SHA256SUMS says {expected}: the file is "
                              "corrupt or was changed without retraining (git checkout it, or retrain: docs/data_and_training.md)")
        return str(path)
    path = Path(value).expanduser()
    if path.is_dir():
        return str(path / f"{regime}.safetensors")
    return str(path)


# ------------------------------------------------------------------------------ loading
def load_checkpoint(field: str, path: str | Path, model: torch.nn.Module, built_from: str,
                    extra_keys: Collection[str] = ()) -> dict[str, torch.Tensor]:
    """Load the safetensors checkpoint ``path`` (the value of ``field``, e.g. "dit.weights") into
    ``model`` once it is known to fit: the same keys (``extra_keys`` may also be in the file), the
    same shapes, floating tensors where the model has them. ``built_from`` describes the model
    (what built it) for the error. Returns the ``extra_keys`` entries found in the file.

    Raises ConfigError naming the field, the problem and the fix. ``load_state_dict`` casts the
    tensors to the model's device and dtype."""
    tensors = read_checkpoint(field, path)
    extras = {key: tensors.pop(key) for key in extra_keys if key in tensors}
    check_checkpoint(field, path, tensors, model.state_dict(), built_from)
    model.load_state_dict(tensors, strict=True)
    log.info("%s: loaded %d tensors from %s", field, len(tensors), path)
    return extras


def read_checkpoint(field: str, path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors file ``path`` (on the CPU); ConfigError if it is missing or
    unreadable."""
    if not Path(path).is_file():
        raise ConfigError(f"{field}: checkpoint {path!r} does not exist; give a safetensors file saved for this "
                          f"model, or set {field}='' for seeded weights")
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad checkpoint, a config problem
        raise ConfigError(f"{field}: cannot read {path!r} as safetensors ({exc}); the file is corrupt or not a "
                          f"checkpoint: export it again, or set {field}='' for seeded weights") from exc


def check_checkpoint(field: str, path: str | Path, tensors: Mapping[str, torch.Tensor],
                     expected: Mapping[str, torch.Tensor], built_from: str) -> None:
    """ConfigError listing every key missing from ``tensors``, every key the model (``expected``,
    its state dict) lacks, every shape that differs and every non-floating tensor where the model
    has a floating one."""
    shared = sorted(set(tensors) & set(expected))
    problems = {
        "missing keys": sorted(set(expected) - set(tensors)),
        "unexpected keys": sorted(set(tensors) - set(expected)),
        "wrong shapes": [f"{k} {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
                         for k in shared if tensors[k].shape != expected[k].shape],
        "wrong dtypes": [f"{k} {tensors[k].dtype} vs model {expected[k].dtype}"
                         for k in shared if tensors[k].is_floating_point() != expected[k].is_floating_point()],
    }
    found = [f"{label}: {_first(items)}" for label, items in problems.items() if items]
    if found:
        raise ConfigError(
            f"{field}: {path!r} does not match {built_from}. {'; '.join(found)}. Load it with the settings it "
            f"was saved with, or set {field}='' for seeded weights"
        )


def _first(items: list[str], shown: int = 5) -> str:
    """The first ``shown`` items, and how many there are in all when some are left out."""
    return ", ".join(items[:shown]) + (f" ... ({len(items)} in all)" if len(items) > shown else "")
