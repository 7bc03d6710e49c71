"""The encoding engine: round any float array into any format, on its bit pattern.

Every format is data (:mod:`numfmt.formats`); this module has one rounding engine
that works on the integer bit pattern of the input, as hardware converters and
``ml_dtypes``' ``float8.h`` do. It never takes an exponent from ``log2`` or ``frexp``.

How a float input is rounded into a float format with ``p`` mantissa bits:

1. Split the input's bits into sign, biased exponent ``E_in`` and mantissa.
2. In the target's normal range the magnitude code is the input's magnitude bits
   re-biased (``A = (E_in - bias_in + bias) << P | m``) with ``P - p`` fraction bits to
   drop; below it (subnormals, or the flush region of a format without them) it is the
   significand shifted right by more bits. Either way the code is ``round(X / 2**d)``
   for an integer ``X`` and a per-element shift ``d``, and a carry out of the mantissa
   moves into the exponent field by itself.
3. The rounding mode decides the increment from the dropped bits (``numfmt.rounding``).
4. Codes past ``max_code`` overflow (docs/semantics.md); NaN, inf, the sign of zero and
   unsigned formats are settled last with selects.

``decode`` builds the output float's bits from the code the same way in reverse.
"""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import rounding as _rounding
from numfmt import special_values as sv
from numfmt.bitlayout import as_float_input, split_bits
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat, fits
from numfmt.logcodec import encode_log

# ---- float targets ----------------------------------------------------------------------


def float_magnitude(x, fmt: FloatFormat, rounding, lay, sr):
    """Round ``|x|`` onto the format's extended grid: the magnitude code ``C``.

    Returns ``(sign, C, in_range, sig, is_nan, is_inf)``; ``C`` may exceed
    ``max_code`` (overflow) and is not yet clamped; ``in_range`` marks inputs in the
    target's normal range. ``sr`` is ``(rand, rbits, variant)`` for stochastic rounding.
    """
    U, S = lay.uint, lay.sint
    P, p = lay.man, fmt.man_bits
    shift = P - p
    sign, e_in, man, mag = split_bits(x, lay)
    inf_bits = ((1 << (lay.width - 1)) - 1) ^ ((1 << P) - 1)
    is_nan = mag > U(inf_bits)
    is_inf = mag == U(inf_bits)
    emin_t = fmt.emin  # unbiased exponent of the target's lowest normal binade

    # Unbiased exponent e and significand sig (leading one at bit P for normals).
    if emin_t < 1 - lay.bias:
        # The target reaches below the input's normal range: normalize input
        # subnormals with a count of leading zeros (an integer op, not frexp).
        sub = e_in == 0
        lz = jnp.where(sub, lax.clz(man).astype(S) - S(lay.width - 1 - P), S(0))
        sig = jnp.where(sub, man << lz.astype(U), man | U(1 << P))
        e = jnp.where(sub, S(1 - lay.bias) - lz, e_in - S(lay.bias))
        normal_in = sig != 0
    else:
        sig = jnp.where(e_in == 0, man, man | U(1 << P))
        e = jnp.maximum(e_in, 1) - S(lay.bias)
        normal_in = e_in != 0

    in_range = normal_in & (e >= emin_t)
    # Normal range: the re-biased magnitude. The exponent field is clamped just past
    # the format's top so that huge inputs overflow without wrapping the integer.
    e_field = jnp.minimum(e + S(fmt.bias), S(1 << fmt.exp_bits)).astype(U)
    a_normal = (e_field << U(P)) | (sig & U((1 << P) - 1))
    # Below the normal range: the significand, shifted further. Without subnormals
    # the grid there is {0, min_normal}: p more bits go, and come back after.
    flush = not fmt.subnormals and fmt.emin_field == 1
    d_below = S(shift + (p if flush else 0) + emin_t) - e
    X = jnp.where(in_range, a_normal, sig)
    d_true = jnp.where(in_range, S(shift), d_below)
    # Past P + 2 bits every bit of sig is dropped and sig < half a step: same result.
    d = jnp.minimum(d_true, S(P + 2))
    rand, rbits, variant = sr
    C = _rounding.round_shift(X, d, sign, rounding, d_true=d_true, rand=rand, rbits=rbits, variant=variant)
    if flush:
        C = jnp.where(in_range, C, C << U(p))
    if fmt.specials == "e8m0":
        # No zero: a positive value below the lowest binade has only one neighbour.
        C = jnp.where(in_range, C, U(0))
    return sign, C, in_range, sig, is_nan, is_inf


def settle(C, sign, sig, is_nan, is_inf, fmt: FloatFormat, rounding, saturate, U):
    """Apply overflow, the specials, the sign of zero and the unsigned range.

    Returns ``(C, neg, nan, inf)``: the final magnitude code (clamped to ``max_code``),
    whether the result carries a minus sign, and whether it is NaN or infinity. The
    decisions are :mod:`numfmt.special_values`' (docs/semantics.md), shared with the
    short path of :mod:`numfmt.nearest`.
    """
    max_code = U(fmt.max_code)
    overflow = (C > max_code) & ~(is_nan | is_inf)
    raw_nonzero = C != 0
    C = jnp.minimum(C, max_code)  # MAX: the largest magnitude, already there
    # An infinite input's bits read as a finite code (2**128 for float32), which a
    # format whose range reaches that far would keep: where inf becomes a finite
    # value (saturate, or no inf and no NaN) that value is the largest.
    C = jnp.where(is_inf, max_code, C)
    nan = inf = jnp.zeros_like(sign)
    # Overflows the mode rounds toward infinity (IEEE 754 §7.4); the others stay at MAX.
    to_infinity = overflow & _rounding.overflows_to_infinity(rounding, sign)
    for rule, where in ((sv.overflow_result(fmt, saturate), to_infinity), (sv.inf_result(fmt, saturate), is_inf)):
        if rule == sv.INF:
            inf = inf | where
        elif rule == sv.NAN:
            nan = nan | where
    neg = sign if sv.keeps_negative_zero(fmt) else sign & (C != 0)
    if not fmt.signed:
        # The non-negative half of a signed format: a negative value that does not
        # round to zero is out of range.
        out = sign & (raw_nonzero | (not fmt.has_zero) | is_inf)
        if sv.negative_result(fmt) == sv.NAN:
            nan = nan | out
        else:
            C = jnp.where(out, U(0), C)
            inf = inf & ~out
        neg = jnp.zeros_like(sign)
    if sv.zero_result(fmt) == sv.NAN:
        nan = nan | (sig == 0)  # zero has no code (E8M0)
    if sv.nan_result(fmt) == sv.NAN:
        nan = nan | is_nan
    else:  # +0
        C = jnp.where(is_nan, U(0), C)
        neg = neg & ~is_nan
        inf = inf & ~is_nan
    return C, neg, nan, inf


def encode_float(x, fmt: FloatFormat, rounding, saturate, lay, sr):
    """Codes of ``x`` (float32 or float64) in the float format ``fmt``."""
    U = lay.uint
    sign, C, _, sig, is_nan, is_inf = float_magnitude(x, fmt, rounding, lay, sr)
    C, neg, nan, inf = settle(C, sign, sig, is_nan, is_inf, fmt, rounding, saturate, U)
    if fmt.has_inf:
        C = jnp.where(inf, U(fmt.inf_code), C)
    code = jnp.where(neg, C | U(fmt.sign_mask), C)
    if fmt.has_nan:
        code = jnp.where(nan, U(fmt.nan_code), code)
    return code.astype(fmt.code_dtype)


def quantize_fast_ok(fmt, lay) -> bool:
    """Whether ``quantize_float`` applies: every normal binade of fmt is normal in lay."""
    if not (isinstance(fmt, FloatFormat) and fmt.emin >= 1 - lay.bias and fits(fmt, lay.dtype)):
        return False
    # Subnormal values are built by a float product, which must not meet the dtype's
    # own subnormals (XLA on CPU flushes those to zero), unless both subnormal ranges
    # coincide and the code's bits are the value's bits (BF16, TF32 in float32).
    lowest = fmt.emin - (fmt.man_bits if fmt.subnormals else 0)
    return lowest >= 1 - lay.bias or fmt.emin == 1 - lay.bias


def quantize_float(x, fmt: FloatFormat, rounding, saturate, lay, sr):
    """``decode(encode(x))`` without forming the code: the value's bits directly."""
    U, S = lay.uint, lay.sint
    P, p = lay.man, fmt.man_bits
    sign, C, _, sig, is_nan, is_inf = float_magnitude(x, fmt, rounding, lay, sr)
    C, neg, nan, inf = settle(C, sign, sig, is_nan, is_inf, fmt, rounding, saturate, U)
    # Normal codes: shift the code into place and move the bias back.
    normal_bits = ((C << U(P - p)).astype(S) + S((lay.bias - fmt.bias) << P)).astype(U)
    # Subnormal codes (and the flush grid {0, min_normal}): C steps of 2**(emin - p),
    # an exact product since the format fits the dtype.
    step = np.asarray(2.0 ** (fmt.emin - p), lay.dtype)
    sub_bits = lax.bitcast_convert_type(C.astype(lay.dtype) * step, U)
    if fmt.emin == 1 - lay.bias:
        bits = normal_bits  # same exponent range: subnormal codes shift into place too
    else:
        bits = jnp.where(C >= U(fmt.emin_field << p), normal_bits, sub_bits)
    if fmt.has_inf:
        bits = jnp.where(inf, U(((1 << (lay.width - 1)) - 1) ^ ((1 << P) - 1)), bits)
    bits = jnp.where(neg, bits | U(1 << (lay.width - 1)), bits)
    out = lax.bitcast_convert_type(bits, lay.dtype)
    if fmt.has_nan:
        out = jnp.where(nan, jnp.asarray(np.nan, lay.dtype), out)
    return out


# ---- integer targets --------------------------------------------------------------------


def encode_int(x, fmt: IntFormat, rounding, lay, sr):
    """Round to an integer by the mode, then clamp to the format's range."""
    U, S = lay.uint, lay.sint
    P = lay.man
    sign, e_in, man, mag = split_bits(x, lay)
    is_nan = mag > U(((1 << (lay.width - 1)) - 1) ^ ((1 << P) - 1))
    sig = jnp.where(e_in == 0, man, man | U(1 << P))
    e = jnp.maximum(e_in, 1) - S(lay.bias)  # value = sig * 2**(e - P)
    # |x| < 2**32 needs at most a left shift of 32 - (P + 1) bits (float32: 8).
    left_max = max(0, 32 - (P + 1))
    d_true = jnp.maximum(S(P) - e, 0)
    d = jnp.minimum(d_true, S(P + 2))
    rand, rbits, variant = sr
    right = _rounding.round_shift(sig, d, sign, rounding, d_true=d_true, rand=rand, rbits=rbits, variant=variant)
    left = sig << jnp.clip(e - S(P), 0, S(left_max)).astype(U)
    big = e >= 32  # |x| >= 2**32: past every 32-bit range, inf included
    magnitude = jnp.where(e >= P, left, right)
    top = U(fmt.max)
    bottom = U(-fmt.min)  # magnitude of the most negative value
    magnitude = jnp.where(sign, jnp.minimum(magnitude, bottom), jnp.minimum(magnitude, top))
    magnitude = jnp.where(big, jnp.where(sign, bottom, top), magnitude)
    magnitude = jnp.where(is_nan, U(0), magnitude).astype(jnp.uint32)
    mask = jnp.uint32((1 << fmt.bits) - 1)
    code = jnp.where(sign & (magnitude != 0), (~magnitude + jnp.uint32(1)) & mask, magnitude)
    return code.astype(fmt.code_dtype)


# ---- codebook targets -------------------------------------------------------------------


@functools.cache
def codebook_midpoints(fmt: CodebookFormat, dtype: np.dtype) -> np.ndarray:
    """The midpoints between neighbouring codebook values, each rounded down to ``dtype``."""
    table = [Fraction(float(v)) for v in fmt.table]
    out = []
    for lo, hi in itertools.pairwise(table):
        m = (lo + hi) / 2
        f = dtype.type(float(m))  # nearest, then one step down if that went above m
        if Fraction(float(f)) > m:
            f = np.nextafter(f, dtype.type(-np.inf))
        out.append(f)
    return np.array(out, dtype)


def encode_codebook(x, fmt: CodebookFormat, rounding):
    if rounding not in ("nearest_even", "nearest_away"):
        raise ValueError(f"codebook format {fmt.name} supports nearest rounding only, got {rounding!r}")
    # side='left' counts the midpoints strictly below x: a tie goes to the lower code.
    # The midpoints are rounded down to x's dtype, which keeps that count exact: x lies
    # above the exact midpoint m iff it lies above the largest float <= m.
    idx = jnp.searchsorted(jnp.asarray(codebook_midpoints(fmt, np.dtype(x.dtype))), x, side="left")
    zero_idx = int(np.argmin(np.abs(np.asarray(fmt.table))))
    idx = jnp.where(jnp.isnan(x), zero_idx, idx)
    return idx.astype(fmt.code_dtype)


def encode_any(x, fmt, rounding, saturate, sr):
    x, lay = as_float_input(x)
    if fmt.kind == "log":  # the logarithmic formats have their own engine
        if rounding == "stochastic":  # base 2: the float engine's on the equal float format
            return encode_float(x, fmt.as_float_format(), rounding, saturate, lay, sr).astype(fmt.code_dtype)
        return encode_log(x, fmt, rounding, lay)
    if isinstance(fmt, IntFormat):
        return encode_int(x, fmt, rounding, lay, sr)
    if isinstance(fmt, CodebookFormat):
        return encode_codebook(x, fmt, rounding)
    return encode_float(x, fmt, rounding, saturate, lay, sr)
