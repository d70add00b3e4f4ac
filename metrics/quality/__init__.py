"""Quality metrics as pure functions over embeddings (numpy/scipy, float64).

- :mod:`~metrics.quality.frechet`: Frechet distance / FAD (stable symmetric eigen route).
- :mod:`~metrics.quality.kad`: Kernel Audio Distance (unbiased MMD^2, RBF, x100).
- :mod:`~metrics.quality.fad_inf`: FAD-infinity (seeded subsampling, slope and R^2).
- :mod:`~metrics.quality.bootstrap`: seeded bootstrap confidence intervals.
- :mod:`~metrics.quality.frechet_bootstrap`: FAD's exact bootstrap from resampled sufficient statistics.
- :mod:`~metrics.quality.lapack` and :mod:`~metrics.quality.parallel`: LAPACK calls that release
  the GIL, and one job per core, for the bootstrap replicates.
- :mod:`~metrics.quality.clap_score`: CLAP score paired by clip id.

:func:`score_embeddings` runs FAD and KAD on two embedding sets and names the results after the
embedder (``fad_logmel``, ``kad_clap_laion_music``...), so a weight-free distance is never
reported as a bare ``fad``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metrics.quality.fad import fad
from metrics.quality.kad import kad


def report_key(metric: str, embedder_name: str) -> str:
    """``"fad", "logmel" -> "fad_logmel"``: metric keys always name the embedder."""
    if not embedder_name:
        raise ValueError("an embedder name is required: metric keys must say which embedding they use")
    return f"{metric}_{embedder_name.replace('-', '_')}"


def score_embeddings(
    reference: np.ndarray,
    evaluated: np.ndarray,
    *,
    embedder: Any,
    groups_reference: Any = None,
    groups_evaluated: Any = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """FAD and KAD (with seeded bootstrap CIs) of evaluated vs reference frames, as a flat dict.

    ``embedder`` is the :class:`~metrics.embedders.base.Embedder` that made both sets (its name,
    identity and ``pretrained`` flag are recorded).
    """
    f = fad(reference, evaluated, groups_reference=groups_reference, groups_evaluated=groups_evaluated,
            n_boot=n_boot, seed=seed)
    k = kad(reference, evaluated, groups_reference=groups_reference, groups_evaluated=groups_evaluated,
            n_boot=n_boot, seed=seed)
    fad_key, kad_key = report_key("fad", embedder.name), report_key("kad", embedder.name)
    return {
        fad_key: f.value,
        f"{fad_key}_detail": f.as_dict(),
        kad_key: k.value,
        f"{kad_key}_detail": k.as_dict(),
        "embedder": embedder.name,
        "embedder_identity": embedder.identity,
        "embedder_pretrained": bool(embedder.pretrained),
    }


__all__ = ["report_key", "score_embeddings"]
