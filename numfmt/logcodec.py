"""The rounding engine of the logarithmic formats (:class:`numfmt.logformat.LogFormat`).

Like the float engine (:mod:`numfmt.encoder`) it works on the integer bit pattern of
the input and never takes a logarithm of a float. An input ``|x| = M * 2**(e - P)``
(``M`` the significand with its leading one at bit ``P``, subnormals normalized with a
count of leading zeros) lies between two powers of the base ``2**(1/r)``:

* base 2 (``r = 1``): between ``2**e`` and ``2**(e+1)``;
* base sqrt(2) (``r = 2``): between ``2**e`` and ``sqrt(2) * 2**e`` when
  ``M < sqrt(2) * 2**P``, else between ``sqrt(2) * 2**e`` and ``2**(e+1)``.

Every threshold a rounding rule needs (``sqrt(2)``, ``2**(1/4)``, ``2**(3/4)``, the
linear midpoints ``3/2``, ``(1 + sqrt(2))/2``, ``1 + sqrt(2)/2``) is a constant ``c`` in
``[1, 2)``, and ``x > c * 2**e`` is decided on integers: ``M > floor(c * 2**P)``, with
the floor computed exactly in Python by integer roots. An irrational ``c`` is never
equal to ``M / 2**P``, so only the rational ones (``3/2``, and ``1`` below the range)
can be ties. The chosen power is then settled as the float engine settles a code:
past ``max`` every mode gives ``±max`` (there is no inf), NaN gives +0, ``-0`` stays
``-0``, and an unsigned format gives 0 for every negative input.

Stochastic rounding (base 2 only) is not here: :func:`numfmt.encoder.encode_any` gives it
to the float engine on the equivalent float format (:meth:`LogFormat.as_float_format`),
whose stochastic rule is docs/stochastic.md's, so the dispatch runs one way (encoder to
this module).
"""

from __future__ import annotations

import functools
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt.bitlayout import split_bits
from numfmt.logformat import LogFormat, floor_scaled_power, rounded_power

__all__ = ["decode_log", "encode_log"]


def _normalize(x, lay):
    """``(sign, e, M, is_zero, is_nan, is_inf)``: ``|x| = M * 2**(e - P)``, ``M``'s leading one at bit ``P``."""
    U, S = lay.uint, lay.sint
    P = lay.man
    sign, e_in, man, mag = split_bits(x, lay)
    inf_bits = ((1 << (lay.width - 1)) - 1) ^ ((1 << P) - 1)
    sub = e_in == 0
    lz = jnp.where(sub, lax.clz(man).astype(S) - S(lay.width - 1 - P), S(0))
    M = jnp.where(sub, man << lz.astype(U), man | U(1 << P))
    e = jnp.where(sub, S(1 - lay.bias) - lz, e_in - S(lay.bias))
    return sign, e, M, mag == 0, mag > U(inf_bits), mag == U(inf_bits)


class _Threshold:
    """The real ``2**exponent`` as integers: ``s``, ``T = floor(c * 2**P)`` and whether ``c * 2**P == T``.

    ``exponent`` is a Fraction with denominator 1, 2 or 4; ``2**exponent = c * 2**s`` with
    ``c`` in ``[1, 2)``, irrational unless the exponent is an integer.
    """

    def __init__(self, P: int, exponent: Fraction):
        self.s = exponent.numerator // exponent.denominator
        frac = exponent - self.s
        self.T = floor_scaled_power(frac.numerator, frac.denominator, P)
        self.exact = frac == 0


def _linear_mid_T(j: int, r: int, P: int) -> tuple[int, bool]:
    """``floor(c * 2**P)`` and exactness for the linear midpoint ``c`` of neighbours ``j``, ``j+1`` within a binade."""
    if r == 1:
        return 3 << (P - 1), True  # (1 + 2) / 2
    # (2**(j/2) + 2**((j+1)/2)) / 2: (1 + sqrt2)/2 or (sqrt2 + 2)/2. With a = 2**(P+j) + floor(sqrt2 * 2**P)
    # and sqrt2 irrational, floor((a + frac) / 2) == a // 2.
    return ((1 << (P + j)) + floor_scaled_power(1, 2, P)) // 2, False


def _above(e, M, th: _Threshold, tie_up):
    """Whether ``|x| = M * 2**(e - P)`` rounds above the threshold (ties: ``tie_up``)."""
    at_s = e == th.s
    above = (e > th.s) | (at_s & (M > th.T))
    if th.exact:
        above = above | (at_s & (M == th.T) & tie_up)
    return above


@functools.cache
def _plan(fmt: LogFormat, rounding: str, P: int):
    """The Python-side constants of one (format, mode, input type)."""
    r = fmt.root
    emin = fmt.emin
    half = floor_scaled_power(1, 2, P)  # floor(sqrt2 * 2**P): the middle power of a sqrt(2) binade
    if rounding == "nearest_log":
        # Within a binade: base**(j + 1/2) relative to its bottom; below the range: base**(emin - 1/2).
        mids = [floor_scaled_power(2 * j + 1, 2 * r, P) for j in range(r)]
        mid_exact = False
        below = _Threshold(P, Fraction(2 * emin - 1, 2 * r))
    else:
        pairs = [_linear_mid_T(j, r, P) for j in range(r)]
        mids = [t for t, _ in pairs]
        mid_exact = pairs[0][1]
        below = _Threshold(P, Fraction(emin, r) - 1)  # min / 2
    return half, mids, mid_exact, below


def encode_log(x, fmt: LogFormat, rounding: str, lay):
    """Codes of ``x`` (float32 or float64) in the log format ``fmt`` by a deterministic mode (module doc).

    There is no ``saturate``: past ``max`` every mode gives ``±max``, as in the float
    formats without inf and NaN.
    """
    S = lay.sint
    P, r = lay.man, fmt.root
    sign, e, M, is_zero, is_nan, is_inf = _normalize(x, lay)
    half, mids, mid_exact, below_th = _plan(fmt, rounding, P)
    exact = M == (1 << P)  # |x| is a power of two: a value of the grid (if in range)

    # The lower neighbour on the grid continued past both ends: k_lo = r*e + j.
    j = (M > half).astype(S) if r == 2 else jnp.zeros_like(e)
    k_lo = S(r) * e + j
    F_lo = jnp.clip(k_lo - S(fmt.emin - 1), -1, S(fmt.max_code + 1))  # the field of base**k_lo
    lo_even = (F_lo & 1) == 0
    if rounding in ("nearest_log", "nearest_even", "nearest_away"):
        tie_up = ~lo_even if rounding == "nearest_even" else jnp.ones_like(lo_even)
        T = jnp.asarray(mids[0], lay.uint) if r == 1 else jnp.where(j == 1, lay.uint(mids[1]), lay.uint(mids[0]))
        up = M > T
        if mid_exact:
            up = up | ((M == T) & tie_up)
    elif rounding == "toward_zero":
        up = jnp.zeros_like(exact)
    elif rounding == "up":
        up = ~exact & ~sign
    elif rounding == "down":
        up = ~exact & sign
    elif rounding == "odd":
        up = ~exact & lo_even
    else:
        raise AssertionError(rounding)
    F = F_lo + up.astype(S)

    # Below the smallest power the grid is {0, min}: zero (field 0, even) or min (field 1).
    if rounding == "toward_zero":
        up_below = jnp.zeros_like(exact)
    elif rounding == "up":
        up_below = ~sign
    elif rounding == "down":
        up_below = sign
    elif rounding == "odd":
        up_below = jnp.ones_like(exact)
    else:
        up_below = _above(e, M, below_th, jnp.full_like(exact, rounding == "nearest_away"))
    F = jnp.where(k_lo < fmt.emin, up_below.astype(S), F)

    # Settle: past max (and inf) is ±max; NaN is +0; zero keeps its sign; unsigned: negatives are 0.
    F = jnp.where(is_inf | (F > fmt.max_code), S(fmt.max_code), F)
    F = jnp.where(is_zero | is_nan, S(0), F)
    neg = sign & ~is_nan
    if not fmt.signed:
        F = jnp.where(sign, S(0), F)
        neg = jnp.zeros_like(sign)
    code = F.astype(lay.uint) | jnp.where(neg, lay.uint(fmt.sign_mask), lay.uint(0))
    return code.astype(fmt.code_dtype)


@functools.cache
def decode_table(fmt: LogFormat, dtype_name: str) -> np.ndarray:
    """Every code's value, correctly rounded to ``dtype`` (:func:`numfmt.logformat.rounded_power`)."""
    dtype = np.dtype(dtype_name)
    mags = [dtype.type(0)] + [rounded_power(e, fmt.root, dtype) for e in range(fmt.emin, fmt.emax + 1)]
    table = list(mags)
    if fmt.signed:
        table += [-m for m in mags]  # the sign bit is the top bit: code | sign_mask is -value (-0 for zero)
    return np.array(table, dtype=dtype)


def decode_log(codes, fmt: LogFormat, dtype):
    """The values of ``codes``: each ``base**e`` correctly rounded once to ``dtype`` (exact for base 2 in range)."""
    table = jnp.asarray(decode_table(fmt, np.dtype(dtype).name))
    return table[codes.astype(jnp.int32) & ((1 << fmt.bits) - 1)]
