"""Bitwise comparison of results, for tests that require exact equality."""

from __future__ import annotations

import numpy as np


def same_bits(a, b) -> bool:
    """Bitwise equality of float32 arrays, every NaN equal to every NaN."""
    a, b = np.asarray(a), np.asarray(b)
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b)) and np.array_equal(a.view(np.uint32)[~nan], b.view(np.uint32)[~nan]))


def bit_view(a) -> np.ndarray:
    """``a``'s bits as unsigned integers of its item size (a contiguous copy where it is a view)."""
    a = np.ascontiguousarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])
