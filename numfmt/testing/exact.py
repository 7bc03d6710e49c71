"""Exact arithmetic shared by the oracles (:mod:`numfmt.testing.reference`, :mod:`numfmt.testing.log_reference`).

Plain Python on :class:`fractions.Fraction`: a value split exactly into sign and
magnitude, the binade of a Fraction, powers of two, and the stochastic-rounding rule of
docs/stochastic.md on an exact fraction with its checked arguments. Like the oracles it
depends on nothing in numfmt (it shares no code with the codec it checks).
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

__all__ = ["DETERMINISTIC_MODES", "SR_VARIANTS", "check_sr", "exact_value", "floor_log2", "pow2", "stochastic_up"]

#: The oracles' deterministic rounding modes (plus ``"stochastic"`` with a given ``u``),
#: spelled as numfmt.rounding spells them but listed here: testing depends on formats only.
DETERMINISTIC_MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd")
#: How stochastic rounding cuts the fraction to ``rbits`` bits (``numfmt.rounding.SR_VARIANTS``).
SR_VARIANTS = ("truncate", "unbiased")
_HALF = Fraction(1, 2)


def exact_value(value) -> tuple[int, Fraction | None, bool]:
    """Split ``value`` into ``(sign, magnitude, is_nan)`` exactly.

    ``sign`` is 1 for a negative value, ``-0.0`` and a NaN with its sign bit set.
    ``magnitude`` is a Fraction, ``None`` for infinity (and for NaN). Accepts Python
    ints, floats and Fractions, and NumPy / ml_dtypes float and int scalars (every
    float of at most 64 bits converts to a Python float exactly).
    """
    if isinstance(value, Fraction):
        return int(value < 0), abs(value), False
    if isinstance(value, numbers.Integral):
        return int(value < 0), Fraction(abs(int(value))), False
    if isinstance(value, (str, bytes)):
        raise TypeError(f"value must be a real number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"value must be a real number, got {value!r}") from err
    sign = int(math.copysign(1.0, f) < 0)
    if math.isnan(f):
        return sign, None, True
    if math.isinf(f):
        return sign, None, False
    return sign, abs(Fraction(f)), False


def floor_log2(a: Fraction) -> int:
    """``floor(log2(a))`` for a positive Fraction, from the bit lengths of its terms."""
    n, d = a.numerator, a.denominator
    e = n.bit_length() - d.bit_length()
    # 2**e <= n/d  <=>  n << -e >= d (or n >= d << e); at most one step down is needed.
    if (n << -e if e < 0 else n) < (d << e if e > 0 else d):
        e -= 1
    return e


def pow2(k: int) -> Fraction:
    """``2**k`` exactly, for any integer ``k``."""
    return Fraction(1 << k) if k >= 0 else Fraction(1, 1 << -k)


def stochastic_up(frac: Fraction, sr: tuple[int, int | None, str, int]) -> bool:
    """Whether stochastic rounding at fraction ``0 <= frac < 1`` goes up, for ``sr = (u, rbits, variant, W)``.

    ``m`` random bits decide (``m = W`` in exact mode, else ``rbits``): the fraction is
    scaled to ``T = frac * 2**m``, cut to an integer (floor; for ``variant="unbiased"``
    with ``rbits`` set, nearest with ties to the even integer), and the result goes up
    iff adding the low ``m`` bits of ``u`` to ``T`` carries out of ``m`` bits.
    """
    u, rbits, variant, word_bits = sr
    m = word_bits if rbits is None else rbits
    scaled = frac * (1 << m)
    t = scaled.numerator // scaled.denominator
    if rbits is not None and variant == "unbiased":
        rest = scaled - t
        if rest > _HALF or (rest == _HALF and t % 2 == 1):
            t += 1
    return (u % (1 << m)) + t >= 1 << m


def check_sr(mode: str, u, rbits, variant, word_bits) -> tuple[int, int | None, str, int] | None:
    """Validate the stochastic-rounding arguments; ``(u, rbits, variant, word_bits)`` or None."""
    if variant not in SR_VARIANTS:
        raise ValueError(f"variant must be one of {SR_VARIANTS}, got {variant!r}")
    if word_bits not in (32, 64):
        raise ValueError(f"word_bits must be 32 or 64, got {word_bits!r}")
    if mode != "stochastic":
        for name, arg in (("u", u), ("rbits", rbits)):
            if arg is not None:
                raise ValueError(f"{name} is only used with rounding='stochastic', got rounding={mode!r}")
        return None
    if u is None:
        raise ValueError("rounding='stochastic' needs u= (the random word)")
    if isinstance(u, bool) or not isinstance(u, numbers.Integral) or not 0 <= int(u) < 1 << word_bits:
        raise ValueError(f"u must be an int in [0, 2**{word_bits}) for word_bits={word_bits}, got {u!r}")
    if rbits is not None:
        if isinstance(rbits, bool) or not isinstance(rbits, numbers.Integral) or not 1 <= rbits <= word_bits:
            raise ValueError(f"rbits must be an int in [1, {word_bits}] or None, got {rbits!r}")
        rbits = int(rbits)
    return int(u), rbits, variant, word_bits
