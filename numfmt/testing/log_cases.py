"""The grid of a logarithmic format for :mod:`numfmt.testing.cases`: its points, ties and regions.

A power of sqrt(2) is irrational, and so are the thresholds of the log domain; the case
generator works with Fractions, so those reals are given as Fractions within
``2**-_PRECISION`` (relative) of them, far finer than any source type's ulp: the source
floats found around such a point are its neighbours, never the point itself.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

__all__ = ["log_decision_points", "log_family_of", "log_grid", "log_signed_values"]

_PRECISION = 160


def _approx_power(num: int, den: int) -> Fraction:
    """``2**(num/den)`` exactly when ``den`` divides ``num``, else within ``2**-_PRECISION`` relative."""
    if num % den == 0:
        return Fraction(2) ** (num // den)
    s = num // den  # 2**(num/den) = 2**s * 2**(frac), frac in (0, 1)
    frac_num = num - s * den
    root = 1 << (den * _PRECISION + frac_num)
    for _ in range(den.bit_length() - 1):  # den in (2, 4): one or two square roots
        root = math.isqrt(root)
    return Fraction(root, 1 << _PRECISION) * Fraction(2) ** s


def log_grid(fmt):
    """``(points, pairs, past_max)``: the magnitudes ``0, base**emin .. base**emax``, neighbouring pairs, ``base**(emax+1)``."""
    r = fmt.root
    points = [Fraction(0)] + [_approx_power(k, r) for k in range(fmt.emin, fmt.emax + 1)]
    return points, list(itertools.pairwise(points)), _approx_power(fmt.emax + 1, r)


def log_decision_points(fmt) -> list[Fraction]:
    """Where rounding decides besides the linear ties: the irrational values and the log-domain midpoints.

    The odd powers of sqrt(2) (no source float is one: directed rounding decides
    between its neighbours) and the thresholds of ``nearest_log``, ``base**(k + 1/2)``
    for ``k = emin - 1 .. emax``.
    """
    r = fmt.root
    odd_powers = [_approx_power(k, r) for k in range(fmt.emin, fmt.emax + 1) if k % r]
    return odd_powers + [_approx_power(2 * k + 1, 2 * r) for k in range(fmt.emin - 1, fmt.emax + 1)]


def log_signed_values(fmt):
    """Every value of ``fmt`` in increasing order (Fractions, see the module doc) and the point past max."""
    points, _, past = log_grid(fmt)
    if fmt.signed:
        return [-v for v in reversed(points[1:])] + points, past
    return points, past


def log_family_of(x: Fraction, fmt) -> str:
    """The region of ``fmt``'s grid where the non-zero rational ``x`` lies (``numfmt.testing.cases.REGIONS``)."""
    a = abs(x)
    points, _, past = log_grid(fmt)
    if a in points:
        return "grid"
    if a > points[-1]:
        return "tie" if 2 * a == points[-1] + past else "overflow_range"
    lo = max(p for p in points if p <= a)
    hi = min(p for p in points if p > a)
    if 2 * a == lo + hi:
        return "tie"
    if a < points[1] / 2:
        return "underflow_range"
    return "subnormal_range" if a < points[1] else "between_values"
