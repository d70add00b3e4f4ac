"""Reference statistics: compute, store and load the Gaussian of a reference set.

``compute_reference_stats(folder, embedder)`` embeds every audio file in a folder and keeps
mean, covariance, frame and clip counts, the embedder's pipeline identity, and each file's name
and content hash. ``save``/``load`` use a single ``.npz`` (written atomically). Loading with
``expected_identity`` refuses statistics made by another pipeline: FAD between embeddings of
different pipelines is meaningless.

Published statistics: :func:`load_fadtk_stats` reads fadtk's format (``fma_pop.npz``: arrays
``<model>.mu`` and ``<model>.cov`` for each embedding model). Their identity is recorded as
``fadtk:<file>:<model>``; fadtk's embedding pipelines (windowing, resampling with SoX) are not
ours, so an FAD against them is labelled as such and only comparable with other FADs against
the same published file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metrics.audio_io import common_sample_rate, list_audio_files
from metrics.embedding_cache import EmbeddingCache, embed_files
from metrics.quality.fad import FadResult, fad_from_stats
from metrics.quality.frechet import GaussianStats, gaussian_stats

FORMAT_VERSION = 1


class ReferenceMismatchError(ValueError):
    """Statistics made by a different pipeline than the one asked for."""


@dataclass(frozen=True)
class ReferenceStats:
    mu: np.ndarray  # (D,) float64
    cov: np.ndarray  # (D, D) float64
    n_frames: int  # 0 when unknown (published statistics)
    n_clips: int  # 0 when unknown
    identity: str  # embedder pipeline identity, or "fadtk:<file>:<model>"
    source: str  # folder or file the statistics came from
    files: list[tuple[str, str]] = field(default_factory=list)  # (file name, content sha256)

    @property
    def gaussian(self) -> GaussianStats:
        return GaussianStats(mu=self.mu, cov=self.cov, n=self.n_frames)

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


def compute_reference_stats(
    folder: str | Path,
    embedder: Any,
    cache: EmbeddingCache | None = None,
    *,
    require_one_sample_rate: bool = True,
    return_embeddings: bool = False,
) -> ReferenceStats | tuple[ReferenceStats, np.ndarray, np.ndarray]:
    """Embed every audio file of ``folder`` and fit the reference Gaussian.

    Errors: unreadable/empty/NaN/silent files (all listed at once, the good ones stay cached),
    mixed sample rates (unless ``require_one_sample_rate=False``), and too few frames for a
    full-rank covariance (the message says how many clips are needed). With
    ``return_embeddings`` also returns (frames, clip index per frame) for KAD.
    """
    files = list_audio_files(folder)
    embedded = embed_files(files, embedder, cache)
    if require_one_sample_rate:
        common_sample_rate(embedded.sample_rates)
    frames, groups = embedded.stacked()
    stats = gaussian_stats(frames, what=f"reference set {folder}", clips=len(embedded.paths))
    hashes = [(p.name, embedded.content_hashes[str(p)]) for p in embedded.paths]
    ref = ReferenceStats(
        mu=stats.mu, cov=stats.cov, n_frames=stats.n, n_clips=len(embedded.paths), identity=embedder.identity,
        source=str(folder), files=hashes,
    )
    if return_embeddings:
        return ref, frames, groups
    return ref


def save_reference_stats(stats: ReferenceStats, path: str | Path) -> Path:
    """Write ``stats`` to one ``.npz`` atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION, "identity": stats.identity, "n_frames": stats.n_frames,
        "n_clips": stats.n_clips, "source": stats.source, "files": stats.files,
    }
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, mu=stats.mu, cov=stats.cov, meta=np.array(json.dumps(meta)))
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def load_reference_stats(path: str | Path, *, expected_identity: str | None = None) -> ReferenceStats:
    """Read statistics written by :func:`save_reference_stats`.

    With ``expected_identity`` (the scoring embedder's identity), statistics from any other
    pipeline raise :class:`ReferenceMismatchError`.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no reference statistics file")
    with np.load(p, allow_pickle=False) as data:
        if "meta" not in data:
            raise ValueError(
                f"{p}: not a live-music-bench statistics file (no 'meta'); for fadtk files use load_fadtk_stats"
            )
        meta = json.loads(str(data["meta"]))
        mu, cov = np.array(data["mu"], dtype=np.float64), np.array(data["cov"], dtype=np.float64)
    if expected_identity is not None and meta["identity"] != expected_identity:
        raise ReferenceMismatchError(
            f"{p} was computed by pipeline\n  {meta['identity']}\nbut scoring uses\n  {expected_identity}\n"
            f"recompute the reference statistics with the scoring embedder"
        )
    return ReferenceStats(
        mu=mu, cov=cov, n_frames=int(meta["n_frames"]), n_clips=int(meta["n_clips"]), identity=meta["identity"],
        source=meta["source"], files=[tuple(f) for f in meta["files"]],
    )


def fadtk_models(path: str | Path) -> list[str]:
    """Model names present in a fadtk statistics file."""
    with np.load(Path(path), allow_pickle=False) as data:
        return sorted({k.rsplit(".", 1)[0] for k in data.files if k.endswith((".mu", ".cov"))})


def load_fadtk_stats(path: str | Path, model: str) -> ReferenceStats:
    """Published statistics in fadtk's format (``<model>.mu``, ``<model>.cov``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: no such file. fadtk's FMA-pop statistics are listed in the weights manifest "
            f"(`python -m metrics.weights fetch fadtk-fma-pop-stats`)"
        )
    with np.load(p, allow_pickle=False) as data:
        mu_key, cov_key = f"{model}.mu", f"{model}.cov"
        if mu_key not in data.files or cov_key not in data.files:
            raise KeyError(f"{p} has no statistics for model {model!r}; it has: {', '.join(fadtk_models(p))}")
        mu, cov = np.array(data[mu_key], dtype=np.float64), np.array(data[cov_key], dtype=np.float64)
    if mu.ndim != 1 or cov.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{p}: {model} statistics have shapes mu {mu.shape}, cov {cov.shape}")
    return ReferenceStats(
        mu=mu, cov=(cov + cov.T) / 2.0, n_frames=0, n_clips=0, identity=f"fadtk:{p.name}:{model}", source=str(p)
    )


def fad_against_reference(
    reference: ReferenceStats,
    evaluated: np.ndarray,
    *,
    identity: str,
    groups_evaluated: Any = None,
    n_boot: int = 0,
    seed: int = 0,
    allow_published: bool = False,
) -> FadResult:
    """FAD of evaluated frames against stored statistics made by the same pipeline.

    ``identity`` is the scoring embedder's identity. Published (fadtk) statistics need
    ``allow_published=True``: their pipeline differs from ours by construction.
    """
    if reference.identity.startswith("fadtk:"):
        if not allow_published:
            raise ReferenceMismatchError(
                f"{reference.identity} are published fadtk statistics, made by fadtk's own embedding pipeline, not "
                f"by {identity}; pass allow_published=True and report the result as FAD against {reference.identity}"
            )
    elif reference.identity != identity:
        raise ReferenceMismatchError(
            f"reference statistics come from pipeline\n  {reference.identity}\nbut the evaluated embeddings from\n"
            f"  {identity}"
        )
    return fad_from_stats(reference.gaussian, evaluated, groups_evaluated=groups_evaluated, n_boot=n_boot, seed=seed)
