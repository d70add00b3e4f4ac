"""Where a regime's checkpoint lives: ``dit.weights`` / ``lmm.weights`` resolved per regime.

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
from pathlib import Path

from bench.contract import ConfigError

BUILTIN_PREFIX = "builtin:"
CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_hashes(folder: Path) -> dict[str, str]:
    """file name -> sha256 from ``folder/SHA256SUMS`` (``<hex>  <name>`` lines)."""
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        raise ConfigError(f"{folder} has no SHA256SUMS: the committed checkpoints cannot be verified")
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip()] = digest
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
