"""The exact scalar oracle: the code that rounding a real number to a format gives.

Everything here is plain Python on :class:`fractions.Fraction`, one value at a time,
and shares no code with :mod:`numfmt.codec` (nor with ``FloatFormat.value_of``): it
reads only the format's fields. The two are written independently so that each checks
the other. The rules implemented are those of ``docs/semantics.md``: IEEE 754-2019
§4.3 rounding attributes plus round-to-odd, overflow per §7.4, OCP FP8 / MX v1.0 for
the ``fn``, ``none`` and ``e8m0`` special styles, and ties-to-even-code for E8M0 as in
IEEE P3109; stochastic rounding as defined in ``docs/stochastic.md`` (the fraction
between the neighbours against a supplied random word, carry-out rule).

How a value is rounded: its magnitude ``a`` is placed between the two neighbouring
points ``lo <= a < hi`` of the format's *extended* grid (the grid continued upward
past ``max`` with the same formula), found from the binade of ``a`` by integer
arithmetic on the numerator and denominator. The mode picks ``lo`` or ``hi``; a pick
past ``max_code`` has overflowed and is mapped to inf, NaN or ``max`` by the mode.
Stochastic rounding picks by the exact fraction ``f`` of the way from ``lo`` to ``hi``
and the random word ``u`` (see :func:`reference_round`).
"""

from __future__ import annotations

import math
from fractions import Fraction

from numfmt.checks import check_bool
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat
from numfmt.testing.exact import (
    DETERMINISTIC_MODES,
    check_sr,
    exact_value,
    floor_log2,
    pow2,
    stochastic_up,
)
from numfmt.testing.log_reference import log_reference_decode, log_reference_round

__all__ = ["DETERMINISTIC_MODES", "exact_value", "grid_value", "reference_decode", "reference_round", "special_codes"]

_MODES = DETERMINISTIC_MODES
_HALF = Fraction(1, 2)


def _emin_field(fmt: FloatFormat) -> int:
    """The lowest exponent field of a normal binade: E8M0 style has no zero, so E = 0 is normal."""
    return 0 if fmt.specials == "e8m0" else 1


def _neighbours(a: Fraction, fmt: FloatFormat) -> tuple[int, int, Fraction, bool]:
    """The magnitude codes ``lo``, ``hi`` of the extended grid around ``a > 0``.

    Returns ``(lo, hi, frac, lo_even)``: ``a = lo_value + frac * (hi_value - lo_value)``
    with ``0 <= frac < 1``, and whether ``lo`` counts as even for ties-to-even and
    round-to-odd (``hi`` is then the other parity).
    """
    p = fmt.man_bits
    emin = _emin_field(fmt) - fmt.bias  # unbiased exponent of the lowest normal binade
    e = floor_log2(a)
    if e >= emin:
        # Normal (or extended, past the top binade): a = q * 2**(e-p) + rest, q in [2**p, 2**(p+1)).
        scaled = a * pow2(p - e)
        q = scaled.numerator // scaled.denominator
        lo = ((e + fmt.bias) << p) + q - (1 << p)
        return lo, lo + 1, scaled - q, lo % 2 == 0
    if fmt.subnormals:
        # The subnormal binade: step 2**(emin - p) from 0, code = M.
        scaled = a * pow2(p - emin)
        q = scaled.numerator // scaled.denominator
        return q, q + 1, scaled - q, q % 2 == 0
    # No subnormals: the grid below min_normal is {0, min_normal}; by grid index 0 is
    # even and min_normal odd, whatever min_normal's code is (docs/semantics.md).
    return 0, 1 << p, a / pow2(emin), True


def _pick(lo: int, hi: int, frac: Fraction, lo_even: bool, mode: str, negative: bool, sr=None) -> int:
    """Apply the rounding mode to the magnitude between ``lo`` and ``hi``."""
    if frac == 0:
        return lo
    if mode == "stochastic":
        return hi if stochastic_up(frac, sr) else lo
    if mode == "nearest_even":
        if frac != _HALF:
            return lo if frac < _HALF else hi
        return lo if lo_even else hi
    if mode == "nearest_away":
        return lo if frac < _HALF else hi
    if mode == "toward_zero":
        return lo
    if mode == "up":
        return lo if negative else hi
    if mode == "down":
        return hi if negative else lo
    if mode == "odd":
        return hi if lo_even else lo
    raise AssertionError(mode)


def _to_infinity(mode: str, negative: bool) -> bool:
    """Whether overflow in ``mode`` goes to infinity (else to max), IEEE 754 §7.4.

    Stochastic rounding that rounds up past ``max`` overflows as round-to-nearest does
    (docs/stochastic.md).
    """
    if mode in ("nearest_even", "nearest_away", "stochastic"):
        return True
    return (mode == "up" and not negative) or (mode == "down" and negative)


def _check_fmt(fmt):
    if not isinstance(fmt, (FloatFormat, IntFormat, CodebookFormat)):
        raise TypeError(f"fmt must be a FloatFormat, IntFormat or CodebookFormat, got {fmt!r}")
    return fmt


def _check_mode(rounding) -> str:
    if rounding != "stochastic" and rounding not in _MODES:
        raise ValueError(f"rounding must be one of {_MODES + ('stochastic',)}, got {rounding!r}")
    return rounding


def special_codes(fmt: FloatFormat) -> tuple[int, int | None, int | None, bool]:
    """``(max_code, nan_code, inf_code, has_negative_zero)`` of a float format.

    Worked out here from the special style (rather than read from the format's own
    properties) so that the oracle also checks those: ``max_code`` is the magnitude code
    of the largest finite value, ``nan_code`` the full code of the positive quiet NaN,
    ``inf_code`` the magnitude code of infinity.
    """
    p, ones = fmt.man_bits, (1 << (fmt.exp_bits + fmt.man_bits)) - 1
    sign_bit = 1 << (fmt.exp_bits + p) if fmt.signed else 0
    style = fmt.specials
    if style == "ieee":
        inf = ones & ~((1 << p) - 1)  # E all ones, M = 0
        # NaN is E all ones with the quiet (top mantissa) bit; none when p = 0.
        return inf - 1, (inf | 1 << (p - 1)) if p else None, inf, fmt.signed
    if style in ("fn", "e8m0"):
        return ones - 1, ones, None, fmt.signed and style == "fn"
    if style == "fnuz":
        return ones, sign_bit, None, False
    return ones, None, None, fmt.signed  # "none": every code is a number


def _round_float(sign: int, mag, is_nan: bool, fmt: FloatFormat, mode: str, saturate: bool, sr=None) -> int:
    max_code, nan, inf_code, negative_zero = special_codes(fmt)
    sign_bit = 1 << (fmt.bits - 1) if fmt.signed else 0
    e8m0 = fmt.specials == "e8m0"

    if is_nan:
        return nan if nan is not None else 0
    if e8m0 and (sign or mag == 0):
        return nan  # no zero, no sign: zero and negative inputs have no neighbour
    if sign and not fmt.signed:
        # Unsigned: round on the signed grid; -0 becomes +0, anything else is out of range.
        if mag is not None and mag != 0:
            lo, hi, frac, lo_even = _neighbours(mag, fmt)
            if _pick(lo, hi, frac, lo_even, mode, True, sr) == 0:
                return 0
        elif mag == 0:
            return 0
        return nan if nan is not None else 0

    def overflow(kind_inf: bool) -> int:
        if kind_inf and not saturate:
            if inf_code is not None:
                return sign * sign_bit | inf_code
            if nan is not None:
                return nan
        return sign * sign_bit | max_code

    if mag is None:  # infinity
        if inf_code is not None:
            return sign * sign_bit | inf_code
        return overflow(True)
    if mag == 0:
        return sign * sign_bit if negative_zero else 0
    if e8m0 and mag < pow2(-fmt.bias):
        return 0  # below min: min is the only neighbour, in every mode
    lo, hi, frac, lo_even = _neighbours(mag, fmt)
    code = _pick(lo, hi, frac, lo_even, mode, bool(sign), sr)
    if code > max_code:
        return overflow(_to_infinity(mode, bool(sign)))
    if code == 0 and not negative_zero:
        return 0
    return sign * sign_bit | code


def _round_int(sign: int, mag, is_nan: bool, fmt: IntFormat, mode: str, sr=None) -> int:
    if is_nan:
        return 0
    lo_val = -(1 << (fmt.bits - 1)) + int(fmt.narrow) if fmt.signed else 0
    hi_val = (1 << (fmt.bits - int(fmt.signed))) - 1
    if mag is None:
        n = lo_val if sign else hi_val
    else:
        q = mag.numerator // mag.denominator
        n = _pick(q, q + 1, mag - q, q % 2 == 0, mode, bool(sign), sr)
        n = -n if sign else n
        n = min(max(n, lo_val), hi_val)  # quantization: round, then clamp
    return n & ((1 << fmt.bits) - 1)


def _round_codebook(sign: int, mag, is_nan: bool, fmt: CodebookFormat, mode: str) -> int:
    if mode not in ("nearest_even", "nearest_away"):
        raise ValueError(f"codebook formats round to nearest only, got rounding={mode!r}")
    table = [Fraction(v) for v in fmt.table]
    if is_nan:
        # No NaN: the value nearest zero (NF4's 0.0), as +0 for the other formats without NaN.
        return min(range(len(table)), key=lambda i: abs(table[i]))
    if mag is None:
        return 0 if sign else len(table) - 1
    x = -mag if sign else mag
    # Strict < keeps the first (lower) code on a tie.
    best = 0
    for i, v in enumerate(table):
        if abs(v - x) < abs(table[best] - x):
            best = i
    return best


def reference_round(
    value, fmt, rounding="nearest_even", *, saturate=False, u=None, rbits=None, variant="truncate", word_bits=32
) -> int:
    """The code of ``fmt`` that exactly rounding ``value`` gives, per docs/semantics.md.

    Stochastic rounding (``rounding="stochastic"``, docs/stochastic.md) is a function
    of ``value`` and the random word ``u``. With ``lo <= |value| < hi`` the neighbours
    of ``|value|`` on the format's extended grid (the integers for integer formats; the
    grid ``{0, min_normal}`` below ``min_normal`` without subnormals) and
    ``f = (|value| - lo) / (hi - lo)`` their exact fraction, ``|value|`` becomes ``hi``
    iff the low ``m`` bits of ``u`` added to ``T`` carry out of ``m`` bits::

        (u mod 2**m) + T >= 2**m

    where, with ``W = word_bits``,

    * ``rbits=None`` (exact): ``m = W`` and ``T = floor(f * 2**W)``;
    * ``rbits=r``, ``variant="truncate"``: ``m = r`` and ``T = floor(f * 2**r)``;
    * ``rbits=r``, ``variant="unbiased"`` (IEEE P3109): ``m = r`` and ``T`` is
      ``f * 2**r`` rounded to the nearest integer, ties to even (``T`` may be
      ``2**r``: always up).

    So over a uniform ``u`` the probability of ``hi`` is ``T / 2**m``. The sign is kept;
    ``f = 0`` (a grid point) never moves. Overflow (a pick past ``max``) goes to inf /
    NaN / ``max`` as under round-to-nearest, or ``±max`` with ``saturate``; NaN, ±inf,
    ±0, unsigned formats, E8M0 and integer clamping are as in the deterministic modes.

    Args:
      value: a Python int / float / Fraction, or a NumPy or ml_dtypes scalar. The sign
        bit of a float zero or NaN is honoured (``-0.0`` rounds to ``-0``).
      fmt: a FloatFormat, IntFormat or CodebookFormat.
      rounding: one of ``nearest_even``, ``nearest_away``, ``toward_zero``, ``up``,
        ``down``, ``odd`` (codebooks: the nearest modes, ties to the lower code), or
        ``stochastic`` (float and integer formats).
      saturate: finite values past ``max`` become ``±max`` instead of inf / NaN.
      u: for ``stochastic`` (required there): the random word, an int in
        ``[0, 2**word_bits)`` (a Python int or NumPy unsigned scalar), as passed to
        ``numfmt.encode(..., random_bits=...)`` for this element.
      rbits: for ``stochastic``: how many (low) bits of ``u`` decide, 1 to
        ``word_bits``; None is the exact mode.
      variant: ``"truncate"`` or ``"unbiased"``: how ``f`` is cut to ``rbits`` bits
        (the names of ``encode``'s ``sr_variant``); unused when ``rbits`` is None.
      word_bits: the width W of the random word: 32 for float16 / bfloat16 / float32
        inputs, 64 for float64 inputs (``encode`` takes uint32 / uint64 words).

    Returns:
      The code as a non-negative int: sign bit at ``fmt.bits - 1`` for signed float
      formats, two's complement in the low ``bits`` bits for integer formats.
    """
    if getattr(fmt, "kind", None) == "log":  # the logarithmic formats: numfmt.testing.log_reference
        return log_reference_round(value, fmt, rounding, saturate=saturate, u=u, rbits=rbits, variant=variant,
                                   word_bits=word_bits)
    fmt = _check_fmt(fmt)
    mode = _check_mode(rounding)
    sr = check_sr(mode, u, rbits, variant, word_bits)
    sign, mag, is_nan = exact_value(value)
    if isinstance(fmt, FloatFormat):
        return _round_float(sign, mag, is_nan, fmt, mode, check_bool(saturate, "saturate"), sr)
    if isinstance(fmt, IntFormat):
        return _round_int(sign, mag, is_nan, fmt, mode, sr)
    return _round_codebook(sign, mag, is_nan, fmt, mode)


def grid_value(magnitude_code: int, fmt: FloatFormat) -> Fraction:
    """The value of a non-negative magnitude code on ``fmt``'s *extended* grid.

    Finite codes read as ``reference_decode`` reads them (specials ignored); codes past
    ``max_code`` continue the normal formula upward, as the rounding rules do
    (docs/semantics.md, "The grid"). For building hard test inputs (ties, thresholds).
    """
    p = fmt.man_bits
    e_field, m = magnitude_code >> p, magnitude_code & ((1 << p) - 1)
    if e_field >= _emin_field(fmt):
        return (Fraction(1 << p) + m) * pow2(e_field - fmt.bias - p)
    return Fraction(m) * pow2(1 - fmt.bias - p) if fmt.subnormals else Fraction(0)


def reference_decode(code: int, fmt):
    """The exact value of ``code`` in ``fmt``.

    Finite non-zero values are Fractions (so is +0). Specials come back as floats:
    ``inf`` / ``-inf`` / ``nan``, and ``-0`` as the float ``-0.0`` so that its sign
    stays visible (a Fraction has no negative zero). In formats without subnormals a
    code with ``E == 0`` reads as zero (denormals-are-zero; signed only where the format
    has ``-0``, so never in the ``fnuz`` style). Integer codes are read as
    two's complement (for narrow formats the dropped code still reads as ``min - 1``).
    """
    if getattr(fmt, "kind", None) == "log":  # the logarithmic formats: numfmt.testing.log_reference
        return log_reference_decode(code, fmt)
    fmt = _check_fmt(fmt)
    code = int(code)
    if not 0 <= code < (1 << fmt.bits):
        raise ValueError(f"code {code} does not fit in {fmt.bits} bits of {fmt.name}")
    if isinstance(fmt, IntFormat):
        if fmt.signed and code >> (fmt.bits - 1):
            return Fraction(code - (1 << fmt.bits))
        return Fraction(code)
    if isinstance(fmt, CodebookFormat):
        if code >= len(fmt.table):
            raise ValueError(f"code {code} is past the {len(fmt.table)} entries of {fmt.name}")
        return Fraction(fmt.table[code])
    p, e_bits = fmt.man_bits, fmt.exp_bits
    sign_bit = 1 << (fmt.bits - 1) if fmt.signed else 0
    negative = bool(code & sign_bit)
    mag = code & ~sign_bit
    e_field, m = mag >> p, mag & ((1 << p) - 1)
    all_ones = (1 << (e_bits + p)) - 1
    if fmt.specials == "ieee" and e_field == (1 << e_bits) - 1:
        if m:
            return math.nan
        return -math.inf if negative else math.inf
    if fmt.specials in ("fn", "e8m0") and mag == all_ones:
        return math.nan
    if fmt.specials == "fnuz" and code == sign_bit:
        return math.nan
    if e_field >= _emin_field(fmt):
        value = (Fraction(1 << p) + m) * pow2(e_field - fmt.bias - p)
    elif fmt.subnormals:
        value = Fraction(m) * pow2(1 - fmt.bias - p)
    else:
        value = Fraction(0)
    if value == 0:  # fnuz reads a non-canonical signed zero (no subnormals) as +0
        return -0.0 if negative and special_codes(fmt)[3] else Fraction(0)
    return -value if negative else value
