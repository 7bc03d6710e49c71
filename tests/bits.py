"""Bitwise comparison of float32 results, for tests that require exact equality."""

from __future__ import annotations

import numpy as np


def same_bits(a, b) -> bool:
    """Bitwise equality of float32 arrays, every NaN equal to every NaN."""
    a, b = np.asarray(a), np.asarray(b)
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b)) and np.array_equal(a.view(np.uint32)[~nan], b.view(np.uint32)[~nan]))
