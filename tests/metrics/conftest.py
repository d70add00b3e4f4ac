"""Fixtures shared by the quality-metric tests."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def sets():
    """(reference (120, 6), evaluated (90, 6), their clip ids: 12 clips of 10, 30 clips of 3)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 6))
    y = rng.standard_normal((90, 6)) * 1.2 + 0.3
    return x, y, np.repeat(np.arange(12), 10), np.repeat(np.arange(30), 3)
