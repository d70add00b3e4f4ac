"""Process-independent hashes: seeds derived from names, fingerprints of configs for manifests,
cell hashes and cache keys."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Mapping


def stable_hash(*parts: Any) -> int:
    """A 63-bit hash of ``parts`` that is the same in every process (unlike ``hash``)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def dataclass_fingerprint(obj: Any) -> str:
    """sha256 (hex, 16 chars) of a dataclass's canonical repr: used in manifests and cache keys."""
    if dataclasses.is_dataclass(obj):
        canonical = repr(sorted(_flatten(dataclasses.asdict(obj)).items()))
    else:
        canonical = repr(obj)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
