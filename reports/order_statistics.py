"""Distribution-free confidence intervals of a median, from order statistics.

With ``n`` samples the interval ``[x_(k), x_(n-k+1)]`` covers the true median with probability
``1 - 2 P(Bin(n, 1/2) <= k-1)``; ``k`` is the largest rank keeping that at or above the confidence
(95 % by default). It needs at least 6 samples at 95 % (else "not enough samples": the interval is
NaN and the tables leave their CI columns empty).
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
from scipy.stats import binom

CONFIDENCE = 0.95


def median_ci(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(median, lo, hi): the sample median and its distribution-free order-statistic interval.

    NaNs are dropped. ``lo``/``hi`` are NaN when fewer samples exist than the interval needs
    (6 for 95 %).
    """
    x = np.sort(np.asarray(values, dtype=np.float64))  # (n,), NaNs sorted last, then dropped
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(x))
    k = median_ci_rank(n, confidence)
    if k == 0:
        return med, math.nan, math.nan
    return med, float(x[k - 1]), float(x[n - k])


@functools.lru_cache(maxsize=4096)
def median_ci_rank(n: int, confidence: float = CONFIDENCE) -> int:
    """The largest rank ``k`` (1-based) with ``2 P(Bin(n, 1/2) <= k - 1) <= 1 - confidence`` (0: none).

    ``[x_(k), x_(n-k+1)]`` then covers the median with probability at least ``confidence``.
    """
    k = 0
    for j in range(1, n // 2 + 1):
        if 2.0 * float(binom.cdf(j - 1, n, 0.5)) <= 1.0 - confidence:
            k = j
        else:
            break
    return k


__all__ = ["CONFIDENCE", "median_ci", "median_ci_rank"]
