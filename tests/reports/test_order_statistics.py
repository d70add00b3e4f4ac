"""Order-statistic CIs of the median: exact ranks for small n, and coverage of the true median."""

from __future__ import annotations

import math

import numpy as np

from reports.order_statistics import median_ci, median_ci_rank


def test_median_ci_order_statistics() -> None:
    x = np.arange(1.0, 11.0)  # n = 10: P(Bin(10, 1/2) <= 1) = 0.0107, <= 2: 0.0547 -> ranks 2 and 9
    assert median_ci(x) == (5.5, 2.0, 9.0)
    assert median_ci_rank(10) == 2
    assert math.isnan(median_ci(np.arange(5.0))[1])  # 5 samples cannot give a 95 % interval
    assert median_ci_rank(6) == 1  # 2 * 0.5**6 = 0.031 <= 0.05
    assert math.isnan(median_ci([])[0])


def test_median_ci_covers_the_true_median() -> None:
    rng = np.random.default_rng(0)
    n, trials = 25, 2000
    hits = 0
    for _ in range(trials):
        _, lo, hi = median_ci(rng.exponential(1.0, n))
        hits += lo <= math.log(2.0) <= hi
    assert hits / trials >= 0.94  # exact coverage is >= 95 % (0.957 for n = 25); 2000 trials: sd 0.005
