"""The exact oracle for the logarithmic formats (:class:`numfmt.logformat.LogFormat`).

Plain Python on :class:`fractions.Fraction`, one value at a time, sharing no code with
:mod:`numfmt.logcodec`. Where the codec compares a significand with integer thresholds,
this oracle compares powers: with ``base = 2**(1/r)``,

* ``a >= base**k``  iff  ``a**r >= 2**k``  (so ``k_lo = floor(log2(a**r))`` exactly);
* nearest in the log domain: ``a > base**(k + 1/2)``  iff  ``a**(2r) > 2**(2k + 1)``;
* nearest in the linear domain: ``a`` against ``(base**k + base**(k+1)) / 2``, which for
  base sqrt(2) is ``(A + B*sqrt(2)) / 2`` with rationals ``A``, ``B > 0``, decided by
  squaring ``2a - A`` against ``2 B**2``.

The rules are those of :mod:`numfmt.logformat` and docs/lowbit.md: linear-domain modes
(ties to the even code for ``nearest_even``), ``nearest_log`` with zero standing for
``base**(emin - 1)`` below the range, the grid ``{0, min}`` below the smallest power for
every other mode, ``±max`` past the largest power in every mode, NaN to +0, and every
negative input to 0 in an unsigned format. Stochastic rounding (base 2) follows
docs/stochastic.md on the fraction between the neighbours.
"""

from __future__ import annotations

import math
from fractions import Fraction

from numfmt.testing.exact import (
    DETERMINISTIC_MODES,
    check_sr,
    exact_value,
    floor_log2,
    pow2,
    stochastic_up,
)

__all__ = ["Sqrt2Linear", "log_reference_decode", "log_reference_round"]

_MODES = DETERMINISTIC_MODES + ("nearest_log", "stochastic")


class Sqrt2Linear:
    """The real ``A + B * sqrt(2)`` for Fractions ``A`` and ``B >= 0``, compared exactly with Fractions."""

    def __init__(self, A, B):
        self.A, self.B = Fraction(A), Fraction(B)

    def below(self, a: Fraction) -> bool:
        """Whether ``self < a`` (never equal when ``B != 0``: sqrt(2) is irrational)."""
        d = a - self.A
        if self.B == 0:
            return d > 0
        return d > 0 and d * d > 2 * self.B * self.B

    def __float__(self) -> float:
        return float(self.A) + float(self.B) * math.sqrt(2.0)


def power(k: int, r: int) -> Sqrt2Linear:
    """``2**(k/r)`` for ``r`` in (1, 2), as ``A + B sqrt(2)``."""
    if r == 1 or k % 2 == 0:
        return Sqrt2Linear(pow2(k // r), 0)
    return Sqrt2Linear(0, pow2((k - 1) // 2))


def _power_ge(a: Fraction, k: int, den: int) -> bool:
    """Whether ``a >= 2**(k/den)``: ``a**den >= 2**k``."""
    return a**den >= pow2(k)


def _check_mode(fmt, rounding: str) -> str:
    if rounding not in _MODES:
        raise ValueError(f"rounding must be one of {_MODES}, got {rounding!r}")
    if rounding == "stochastic" and fmt.root != 1:
        raise ValueError(f"stochastic rounding is defined for base-2 log formats only, not {fmt.name}")
    return rounding


def _pick(fmt, lo_field: int, a: Fraction, lo: Sqrt2Linear, hi: Sqrt2Linear, k_lo: int | None, mode: str,
          negative: bool, sr) -> int:
    """The field (``lo_field`` or ``lo_field + 1``) that ``mode`` picks for ``lo < a < hi``.

    ``k_lo`` is the exponent of ``lo`` (None when ``lo`` is zero, below the range).
    """
    r = fmt.root
    if mode == "toward_zero":
        up = False
    elif mode == "up":
        up = not negative
    elif mode == "down":
        up = negative
    elif mode == "odd":
        up = lo_field % 2 == 0
    elif mode == "nearest_log":
        # The geometric mean of the neighbours; below the range zero stands for base**(emin - 1).
        k = fmt.emin - 1 if k_lo is None else k_lo
        if _power_ge(a, 2 * k + 1, 2 * r):
            assert a ** (2 * r) != pow2(2 * k + 1), "a rational a cannot be an odd power of 2**(1/2r)"
            up = True
        else:
            up = False
    elif mode == "stochastic":
        lo_v, hi_v = lo.A, hi.A  # base 2: rational
        up = stochastic_up((a - lo_v) / (hi_v - lo_v), sr)
    else:
        mid = Sqrt2Linear((lo.A + hi.A) / 2, (lo.B + hi.B) / 2)
        if mid.B == 0 and a == mid.A:  # a tie (base 2, or below the range)
            up = mode == "nearest_away" or lo_field % 2 == 1
        else:
            up = mid.below(a)
    return lo_field + int(up)


def log_reference_round(value, fmt, rounding="nearest_even", *, saturate=False, u=None, rbits=None,
                        variant="truncate", word_bits=32) -> int:
    """The code of the log format ``fmt`` that exactly rounding ``value`` gives (module doc).

    The arguments are those of :func:`numfmt.testing.reference_round` (which calls this
    for log formats); ``saturate`` changes nothing, as every mode gives ``±max`` past max.
    """
    mode = _check_mode(fmt, rounding)
    sr = check_sr(mode, u, rbits, variant, word_bits)
    sign, mag, is_nan = exact_value(value)
    sign_bit = fmt.sign_mask
    if is_nan or (sign and not fmt.signed):
        return 0
    top = (1 << fmt.exp_bits) - 1
    if mag is None:
        return sign * sign_bit | top
    if mag == 0:
        return sign * sign_bit
    r, emin = fmt.root, fmt.emin
    k_lo = floor_log2(mag**r)  # base**k_lo <= mag < base**(k_lo + 1)
    if mag**r == pow2(k_lo):
        field = k_lo - emin + 1 if k_lo >= emin else None
        if field is not None:
            return sign * sign_bit | min(field, top)
    if k_lo < emin:
        field = _pick(fmt, 0, mag, Sqrt2Linear(0, 0), power(emin, r), None, mode, bool(sign), sr)
    else:
        field = _pick(fmt, k_lo - emin + 1, mag, power(k_lo, r), power(k_lo + 1, r), k_lo, mode, bool(sign), sr)
    return sign * sign_bit | min(field, top)


def log_reference_decode(code: int, fmt):
    """The value of ``code``: a Fraction where it is rational (every base-2 value, even powers of sqrt(2)).

    An odd power of sqrt(2) is irrational: it comes back as the nearest float64
    (``math.sqrt`` is correctly rounded and the scaling by a power of two is exact).
    ``-0`` comes back as the float ``-0.0``.
    """
    code = int(code)
    if not 0 <= code < (1 << fmt.bits):
        raise ValueError(f"code {code} does not fit in {fmt.bits} bits of {fmt.name}")
    negative = bool(code & fmt.sign_mask)
    field = code & ((1 << fmt.exp_bits) - 1)
    if field == 0:
        return -0.0 if negative else Fraction(0)
    k = fmt.emin + field - 1
    if fmt.root == 1 or k % 2 == 0:
        value = pow2(k // fmt.root)
    else:
        value = math.ldexp(math.sqrt(2.0), (k - 1) // 2)
    return -value if negative else value
