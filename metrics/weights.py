"""Pretrained weights: a manifest, download + verification, and safe loading.

The manifest (``metrics/weights_manifest.json``) lists every file an embedder can load: name,
file name, byte size, sha256 (or a sha256 prefix, or an md5, whichever a public source states;
``null`` when none was found), source URL, licence, and where the hash came from. Nothing here
downloads at run time: embedders only read local files, and a missing file gives an error that
names the file, where to put it, and the command that fetches it on a machine with internet::

    python -m metrics.weights list
    python -m metrics.weights fetch clap-music-audioset roberta-base-config ... [--dir DIR]
    python -m metrics.weights verify [NAME ...] [--dir DIR] [--recompute]

Weights live in ``$LMB_WEIGHTS_DIR`` (default ``~/.cache/live-music-bench/weights``). Files with
an unknown hash get a sidecar ``<file>.sha256.json`` recording the observed sha256 (and md5),
so later runs can tell whether the file changed; ``verify`` says the hash is unknown instead of
pretending it checked it.

Loading uses ``torch.load(weights_only=True)``; the LAION-CLAP checkpoints pickle a few numpy
scalars, so ``numpy`` scalar/dtype types are allow-listed for that call only (a context
manager, no global change).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bench.core.errors import did_you_mean

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).with_name("weights_manifest.json")
WEIGHTS_ENV = "LMB_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = Path("~/.cache/live-music-bench/weights")
SIDECAR_SUFFIX = ".sha256.json"


class WeightsError(RuntimeError):
    """Base class: a weights file that cannot be used."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """The weights file is not on this machine."""


class ChecksumError(WeightsError):
    """The file on disk is not the file the manifest describes (corrupt, truncated or another file)."""


class CheckpointError(WeightsError):
    """The file cannot be read as a checkpoint, or does not match the model."""


@dataclass(frozen=True)
class WeightEntry:
    name: str
    file_name: str  # relative to the weights directory
    url: str
    licence: str
    hash_source: str
    used_by: str = ""
    size: int | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    md5: str | None = None

    @property
    def hash_known(self) -> bool:
        return bool(self.sha256 or self.sha256_prefix or self.md5)


@dataclass(frozen=True)
class VerifyResult:
    name: str
    path: Path
    status: str  # "ok", "unknown-hash", "mismatch", "missing"
    observed_sha256: str | None
    message: str


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, WeightEntry]:
    """name -> :class:`WeightEntry`."""
    data = json.loads(Path(path).read_text())
    fields = set(WeightEntry.__dataclass_fields__)
    return {w["name"]: WeightEntry(**{k: v for k, v in w.items() if k in fields}) for w in data["weights"]}


def get_entry(name: str, manifest: dict[str, WeightEntry] | None = None) -> WeightEntry:
    """The manifest entry called ``name`` (``manifest`` defaults to the shipped one); KeyError with a
    suggestion otherwise."""
    entries = manifest if manifest is not None else load_manifest()
    if name not in entries:
        raise KeyError(f"no weights named {name!r} in the manifest{did_you_mean(name, entries)} "
                       f"(known: {', '.join(entries)})")
    return entries[name]


def weights_dir(directory: str | Path | None = None) -> Path:
    """The weights folder: ``directory``, else ``$LMB_WEIGHTS_DIR``, else the user cache."""
    if directory is not None:
        return Path(directory).expanduser()
    return Path(os.environ.get(WEIGHTS_ENV, str(DEFAULT_WEIGHTS_DIR))).expanduser()


def fetch_command(entry: WeightEntry) -> str:
    return f"python -m metrics.weights fetch {entry.name}"


def locate(entry: WeightEntry, path: str | Path | None = None, directory: str | Path | None = None) -> Path:
    """The local file for ``entry`` (``path`` if given); :class:`MissingWeightsError` if absent."""
    target = Path(path).expanduser() if path is not None else weights_dir(directory) / entry.file_name
    if target.is_file():
        return target
    raise MissingWeightsError(
        f"weights file {entry.file_name!r} ({entry.name}, used by {entry.used_by or 'an embedder'}) not found at "
        f"{target}. Put the file there (or set {WEIGHTS_ENV} to the folder that holds it, or pass its path), or on "
        f"a machine with internet run `{fetch_command(entry)} --dir <folder>` and copy the folder here "
        f"(source: {entry.url}). Nothing is downloaded at run time."
    )


# ----------------------------------------------------------------------------- hashing
def _digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def file_digests(path: str | Path, *, recompute: bool = False) -> tuple[str, str]:
    """(sha256, md5) of a file, reusing the sidecar when size and mtime are unchanged."""
    p = Path(path)
    st = p.stat()
    sidecar = p.with_name(p.name + SIDECAR_SUFFIX)
    if not recompute and sidecar.is_file():
        try:
            rec = json.loads(sidecar.read_text())
            if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
                return rec["sha256"], rec["md5"]
        except (ValueError, KeyError, OSError):
            pass
    sha, md5 = _digests(p)
    try:
        _atomic_write_text(
            sidecar, json.dumps({"sha256": sha, "md5": md5, "size": st.st_size, "mtime_ns": st.st_mtime_ns}, indent=1)
        )
    except OSError as exc:  # read-only location: hashing still worked
        log.debug("could not write %s: %s", sidecar, exc)
    return sha, md5


def file_sha256(path: str | Path, *, recompute: bool = False) -> str:
    return file_digests(path, recompute=recompute)[0]


def verify_file(entry: WeightEntry, path: str | Path, *, recompute: bool = False) -> VerifyResult:
    """Compare a local file with the manifest (size, then sha256 / prefix / md5)."""
    p = Path(path)
    if not p.is_file():
        return VerifyResult(entry.name, p, "missing", None, f"{p}: missing ({fetch_command(entry)})")
    size = p.stat().st_size
    if entry.size is not None and size != entry.size:
        return VerifyResult(
            entry.name, p, "mismatch", None,
            f"{p}: {size} bytes, expected {entry.size} (truncated or another file)",
        )
    sha, md5 = file_digests(p, recompute=recompute)
    checks = []
    if entry.sha256:
        checks.append(("sha256", sha, entry.sha256.lower()))
    if entry.sha256_prefix:
        checks.append(("sha256 prefix", sha[: len(entry.sha256_prefix)], entry.sha256_prefix.lower()))
    if entry.md5:
        checks.append(("md5", md5, entry.md5.lower()))
    for kind, observed, expected in checks:
        if observed != expected:
            return VerifyResult(entry.name, p, "mismatch", sha, f"{p}: {kind} {observed}, expected {expected}")
    if not checks:
        return VerifyResult(
            entry.name, p, "unknown-hash", sha,
            f"{p}: no public hash is known for this file; observed sha256 {sha} recorded in "
            f"{p.name + SIDECAR_SUFFIX} (not verified)",
        )
    return VerifyResult(entry.name, p, "ok", sha, f"{p}: {', '.join(k for k, _, _ in checks)} ok")


def require_verified(
    entry: WeightEntry, path: str | Path | None = None, directory: str | Path | None = None
) -> tuple[Path, str]:
    """Locate and verify; returns (path, observed sha256). Raises on a missing or mismatching file;
    logs a warning (and still returns) when no public hash is known."""
    p = locate(entry, path, directory)
    result = verify_file(entry, p)
    if result.status == "mismatch":
        raise ChecksumError(
            f"{result.message}. The file is corrupt, truncated or not {entry.file_name} ({entry.hash_source}). "
            f"Delete it and run `{fetch_command(entry)}` on a machine with internet."
        )
    if result.status == "unknown-hash":
        log.warning("%s", result.message)
    assert result.observed_sha256 is not None
    return p, result.observed_sha256


def resolve_weights(
    entry: WeightEntry, path: str | Path | None = None, directory: str | Path | None = None
) -> tuple[Path, str, str]:
    """(path, sha256, status) of the file an embedder should load.

    The manifest's file (``path`` None, or a path whose file name is the manifest's) is located
    and verified (:func:`require_verified`; status "ok" or "unknown-hash"). Any other explicitly
    given file (a fine-tuned or test checkpoint) is "custom": not verified, but its sha256 goes
    into the embedder identity, so its numbers never mix with the published checkpoint's.
    """
    if path is not None and Path(path).name != Path(entry.file_name).name:
        p = Path(path).expanduser()
        if not p.is_file():
            raise MissingWeightsError(f"weights file {p} not found")
        log.info("%s: custom weights file (not the manifest's %s); not verified", p, entry.file_name)
        return p, file_sha256(p), "custom"
    p, sha = require_verified(entry, path, directory)
    return p, sha, "verified" if entry.hash_known else "unknown-hash"


# ----------------------------------------------------------------------------- loading
def load_torch_file(path: str | Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, allowing numpy scalars.

    Raises :class:`CheckpointError` when the file is not a readable checkpoint.
    """
    import torch  # lazy: the manifest, hashing and fetching work without torch

    try:  # numpy >= 2 moved numpy.core to numpy._core
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:
        multiarray = importlib.import_module("numpy.core.multiarray")
    allowed: list[Any] = [np.dtype, np.ndarray]
    # A pickle names numpy's scalar and array builders by the module of the numpy that SAVED it
    # (numpy.core before 2.0, numpy._core since), so allow both names: LAION's checkpoints were
    # saved with numpy 1.x and must load under numpy 2 too, and the other way round.
    allowed += [(getattr(multiarray, name), f"{module}.multiarray.{name}")
                for module in ("numpy.core", "numpy._core") for name in ("scalar", "_reconstruct")]
    allowed += [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"{path}: cannot be read as a torch checkpoint with weights_only=True ({type(exc).__name__}: {first}). "
            f"The file may be truncated, corrupt or not a checkpoint; delete it and fetch it again"
        ) from exc


def load_state_dict_strict(
    model: Any, state: Any, path: str | Path, what: str, *, tolerate: Sequence[str] = ()
) -> None:
    """Load ``state`` into ``model`` only if keys and shapes match exactly (names in
    ``tolerate`` may be missing or extra); :class:`CheckpointError` listing the differences otherwise."""
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: expected a non-empty state dict for {what}, got {type(state).__name__}")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - set(tolerate))
    unexpected = sorted(set(state) - set(expected) - set(tolerate))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(state) & set(expected) if tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong:
        def show(items: list[str]) -> str:
            return ", ".join(items[:6]) + (f" ... ({len(items)} in all)" if len(items) > 6 else "")

        parts = [f"{label}: {show(items)}" for label, items in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)) if items]
        raise CheckpointError(f"{path} does not match {what} ({'; '.join(parts)})")
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)


# ----------------------------------------------------------------------------- fetching
def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch(
    entry: WeightEntry, directory: str | Path | None = None, *, url: str | None = None, timeout_s: float = 60.0
) -> VerifyResult:
    """Download ``entry`` into the weights folder (atomically) and verify it.

    An existing file that verifies is kept. A download that fails verification is deleted and
    raises :class:`ChecksumError`.
    """
    target = weights_dir(directory) / entry.file_name
    if target.is_file():
        existing = verify_file(entry, target)
        if existing.status in ("ok", "unknown-hash"):
            log.info("already present: %s", existing.message)
            return existing
        log.warning("replacing %s", existing.message)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = url or entry.url
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source, timeout=timeout_s) as resp:
            done = 0
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
                done += len(chunk)
        log.info("downloaded %s (%d bytes) from %s", entry.file_name, done, source)
        result = verify_file(entry, tmp, recompute=True)
        if result.status == "mismatch":
            raise ChecksumError(f"download of {entry.name} from {source} failed verification: {result.message}")
        os.replace(tmp, target)
        tmp.with_name(tmp.name + SIDECAR_SUFFIX).unlink(missing_ok=True)
        return verify_file(entry, target)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + SIDECAR_SUFFIX).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metrics.weights", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the manifest")
    for name, text in (("fetch", "download and verify (needs internet)"), ("verify", "check local files")):
        p = sub.add_parser(name, help=text)
        p.add_argument("names", nargs="*", help="manifest names (default: all)")
        p.add_argument("--dir", default=None, help=f"weights folder (default ${WEIGHTS_ENV} or {DEFAULT_WEIGHTS_DIR})")
        if name == "verify":
            p.add_argument("--recompute", action="store_true", help="ignore cached hashes in sidecars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = load_manifest()
    out = sys.stdout
    if args.command == "list":
        for e in manifest.values():
            digest = e.sha256 or (f"prefix {e.sha256_prefix}" if e.sha256_prefix else None) or (
                f"md5 {e.md5}" if e.md5 else "unknown")
            out.write(f"{e.name}\n  file: {e.file_name}\n  size: {e.size if e.size is not None else 'unknown'}\n"
                      f"  sha256: {digest}\n  url: {e.url}\n  licence: {e.licence}\n  used by: {e.used_by}\n")
        return 0
    names = args.names or list(manifest)
    try:
        entries = [get_entry(n, manifest) for n in names]
    except KeyError as exc:
        out.write(f"error: {exc.args[0]}\n")
        return 2
    status = 0
    for e in entries:
        try:
            if args.command == "fetch":
                result = fetch(e, args.dir)
            else:
                result = verify_file(e, weights_dir(args.dir) / e.file_name, recompute=args.recompute)
        except (WeightsError, OSError) as exc:
            out.write(f"{e.name}: FAILED: {exc}\n")
            status = 1
            continue
        out.write(f"{e.name}: {result.status}: {result.message}\n")
        if result.status in ("mismatch", "missing"):
            status = 1
    return status


def load_torch_model(
    name: str, path: Any, directory: Any, build: Callable[[], Any], label: str,
    extract: Callable[[Any], Any] = lambda raw: raw,
) -> tuple[Any, str]:
    """Resolve manifest entry ``name`` (or a custom ``path``), load it with ``weights_only``, pull
    the state dict out with ``extract`` and load it strictly into ``build()``. Returns (model, sha256)."""
    p, sha, _ = resolve_weights(get_entry(name), path, directory)
    raw = load_torch_file(p)
    state = extract(raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: expected a state dict for {label}")
    model = build()
    load_state_dict_strict(model, state, p, label)
    return model, sha


if __name__ == "__main__":
    raise SystemExit(main())
