"""Bitwise comparison of results, for tests that require exact equality."""

from __future__ import annotations

import numpy as np


def same_bits(a, b) -> bool:
    """Bitwise equality of float arrays of one width, every NaN equal to every NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.itemsize != b.dtype.itemsize:
        return False
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b)) and np.array_equal(bit_view(a)[~nan], bit_view(b)[~nan]))


def bit_view(a) -> np.ndarray:
    """``a``'s bits as unsigned integers of its item size (a contiguous copy where it is a view)."""
    a = np.ascontiguousarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])
