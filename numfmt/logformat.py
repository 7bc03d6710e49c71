"""Logarithmic number formats: :class:`LogFormat`, signed powers of a base with a zero code.

A logarithmic format stores a number as a power of a base (Miyashita, Lee & Murmann,
"Convolutional neural networks using logarithmic data representation", arXiv
1603.01025, 2016): base 2, or base sqrt(2) for one more value per binade. With
``b = exp_bits`` exponent bits and an optional sign bit on top, the magnitude field
``F`` of a code reads

* ``F == 0``: zero (``-0`` with the sign bit, as in IEEE formats);
* ``1 <= F <= 2**b - 1``: ``base**(emin + F - 1)``, so the exponents run ``emin..emax``
  with ``emax - emin + 1 == 2**b - 1``: every code is a number (no inf, no NaN).

The exponent range is given by ``emax`` (default ``2**(b-1) - 1``, centred on 1) or
``emin``, or both when they agree; a range that needs more codes than the bits give
(or leaves codes unused) is refused, naming the arguments.

A base-2 log format is, code for code, the float format with no mantissa bits, no
subnormals and no special values (:meth:`LogFormat.as_float_format`): ``numfmt``
rounds it the same way under every rounding mode it has in common.

This module is data only (no JAX), like :mod:`numfmt.formats`: the rounding engine is
:mod:`numfmt.logcodec`, the exact oracle :mod:`numfmt.testing.log_reference`.

Rounding modes (the ``rounding`` argument of ``encode`` / ``quantize``):

* the modes of ``numfmt.ROUNDING_MODES`` round in the *linear* domain, as for every
  other format: ``"nearest_even"`` (the default: the nearest value, ties to the even
  code), ``"nearest_away"``, ``"toward_zero"``, ``"up"``, ``"down"``, ``"odd"``; and
  ``"stochastic"`` for base 2 (not for base sqrt(2));
* ``"nearest_log"`` rounds to the nearest value in the *log* domain, the paper's rule
  ``base**round(log_base |x|)``: between ``base**e`` and ``base**(e+1)`` the threshold
  is their geometric mean ``base**(e + 1/2)``, which is irrational, so no input is a tie.
  Below the smallest power, zero stands for ``base**(emin - 1)``: inputs under
  ``base**(emin - 1/2)`` round to zero (the paper instead clips every non-zero input up
  to the smallest power).

docs/lowbit.md gives the reasons for the default and every edge case.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction

import ml_dtypes
import numpy as np

from numfmt import formats as _formats
from numfmt.checks import check_bool, check_int

__all__ = [
    "BASES",
    "LOG4",
    "LOG4_SQRT2",
    "LOG8",
    "LOG8_SQRT2",
    "LOG_MODES",
    "LogFormat",
]
# rounded_power and floor_scaled_power, the exact values the codec (numfmt.logcodec)
# builds on, are this module's but not the package's public surface.

#: The bases: the name and ``r`` with ``base = 2**(1/r)``.
BASES = {"2": 1, "sqrt2": 2}
_BASE_NAMES = {2: "2", "2": "2", "sqrt2": "sqrt2", "sqrt(2)": "sqrt2", "√2": "sqrt2"}

#: The rounding mode only log formats have: nearest in the log domain (Miyashita et al. 2016).
LOG_MODES = ("nearest_log",)


@dataclasses.dataclass(frozen=True)
class LogFormat(_formats.Format):
    """Signed (or unsigned) powers of a base with a zero code (module doc).

    Args:
      name: the format's name, as shown by ``numfmt list``.
      exp_bits: width of the exponent field, 1 to 8; the format has ``2**exp_bits - 1``
        powers and a zero.
      base: ``"2"`` (or ``2``) or ``"sqrt2"``.
      emax: the largest exponent: ``max == base**emax``. Default ``2**(exp_bits-1) - 1``
        (or ``emin + 2**exp_bits - 2`` when ``emin`` is given).
      emin: the smallest exponent: the smallest positive value is ``base**emin``.
      signed: whether a sign bit is stored (the top bit of the code).

    Every value must be a normal float64 (``2**-1022 <= value < 2**1024``).
    """

    name: str
    exp_bits: int
    base: str = dataclasses.field(default="2", kw_only=True)
    emax: int | None = dataclasses.field(default=None, kw_only=True)
    emin: int | None = dataclasses.field(default=None, kw_only=True)
    signed: bool = dataclasses.field(default=True, kw_only=True)

    kind = "log"
    has_inf = False
    has_nan = False
    has_zero = True
    subnormals = False
    specials = "none"  # every code is a finite number
    nan_code = None
    inf_code = None
    nan_code_ranges = ()  # no code is NaN
    inf_codes = ()
    dtype = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        check_int(self.exp_bits, "exp_bits", 1, 8)
        try:
            base = _BASE_NAMES[self.base]
        except (KeyError, TypeError):
            raise ValueError(f"base must be '2' or 'sqrt2', got {self.base!r}") from None
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "signed", check_bool(self.signed, "signed"))
        count = (1 << self.exp_bits) - 1
        emax = None if self.emax is None else check_int(self.emax, "emax")
        emin = None if self.emin is None else check_int(self.emin, "emin")
        if emax is not None and emin is not None:
            need = emax - emin + 1
            if need < 1:
                raise ValueError(f"emin must be <= emax, got emin={emin}, emax={emax}")
            if need != count:
                what = "does not fit in" if need > count else "leaves codes unused in"
                raise ValueError(
                    f"the exponent range emin..emax = {emin}..{emax} has {need} exponents and {what} "
                    f"exp_bits={self.exp_bits} ({count} non-zero codes): give emax or emin alone, "
                    f"or a range of exactly 2**exp_bits - 1 exponents")
        elif emax is None and emin is None:
            emax = (1 << (self.exp_bits - 1)) - 1
        if emin is None:
            emin = emax - count + 1
        object.__setattr__(self, "emax", emin + count - 1)
        object.__setattr__(self, "emin", emin)
        r = self.root
        if not (-1022 * r <= self.emin and self.emax < 1024 * r):
            raise ValueError(f"the values {self.base}**{self.emin} .. {self.base}**{self.emax} of {self.name!r} "
                             "are not all normal float64 numbers")

    # ---- layout ---------------------------------------------------------------------
    @property
    def root(self) -> int:
        """``r`` with ``base == 2**(1/r)``: 1 for base 2, 2 for base sqrt(2)."""
        return BASES[self.base]

    @property
    def bits(self) -> int:
        """Total width in bits: the sign bit (if signed) and the exponent field."""
        return int(self.signed) + self.exp_bits

    @property
    def bias(self) -> int:
        """The field of a non-zero code is ``F = e + bias`` for the exponent ``e`` (``1 - emin``)."""
        return 1 - self.emin

    @property
    def sign_mask(self) -> int:
        """The sign bit within the code (0 for unsigned formats)."""
        return 1 << self.exp_bits if self.signed else 0

    @property
    def max_code(self) -> int:
        """The magnitude code (field) of the largest value: all ones."""
        return (1 << self.exp_bits) - 1

    @property
    def min_positive_code(self) -> int:
        return 1

    @property
    def has_negative_zero(self) -> bool:
        return self.signed

    def is_finite_code(self, code: int) -> bool:
        """Every code is a number."""
        return True

    def exponent_of(self, magnitude_code: int) -> int | None:
        """The exponent ``e`` of a magnitude code (value ``base**e``), or None for zero."""
        return None if magnitude_code == 0 else magnitude_code - self.bias

    # ---- finfo-like values ------------------------------------------------------------
    @property
    def max(self) -> float:
        """The largest value, ``base**emax`` (rounded to float64 for odd powers of sqrt(2))."""
        return float(rounded_power(self.emax, self.root, np.float64))

    @property
    def min_normal(self) -> float:
        """The smallest positive value, ``base**emin`` (a log format has no subnormals)."""
        return float(rounded_power(self.emin, self.root, np.float64))

    @property
    def min_subnormal(self) -> float:
        """The smallest positive value (the same as ``min_normal``)."""
        return self.min_normal

    @property
    def smallest_normal(self) -> float:
        return self.min_normal

    @property
    def eps(self) -> float:
        """The relative gap between neighbouring powers, ``base - 1`` (1.0 for base 2)."""
        return float(rounded_power(1, self.root, np.float64)) - 1.0

    def values(self) -> np.ndarray:
        """Every value in increasing order, as float64 (one zero, +0)."""
        mags = [0.0] + [float(rounded_power(e, self.root, np.float64)) for e in range(self.emin, self.emax + 1)]
        if self.signed:
            mags = [-v for v in reversed(mags[1:])] + mags
        return np.array(mags, dtype=np.float64)

    def as_float_format(self) -> _formats.FloatFormat:
        """The float format with the same codes and values (base 2 only).

        A base-2 log format is the float format with ``man_bits=0``, no subnormals and
        no specials: field 0 is zero, field ``F`` is ``2**(F - bias)``.
        """
        if self.root != 1:
            raise ValueError(f"{self.name} has base {self.base}: only base-2 log formats are float formats")
        return _formats.FloatFormat(f"{self.name}_as_float", self.exp_bits, 0, bias=self.bias, signed=self.signed,
                                    subnormals=False, specials="none")

    #: The rounding modes of this family beyond the linear-domain ones every format has
    #: (``numfmt.rounding.modes_of`` reads them; the log formats add ``"nearest_log"``).
    extra_rounding_modes = LOG_MODES

    @property
    def stochastic_rounding(self) -> bool:
        """Whether ``"stochastic"`` is a mode of this format: base 2 only (for base sqrt(2)
        its probability would be irrational)."""
        return self.root == 1

    def describe_layout(self) -> str:
        """``s1l3 base 2``: sign bit, exponent bits, base."""
        return f"s{int(self.signed)}l{self.exp_bits} base {self.base}"


# ---- exact values -----------------------------------------------------------------------


def _iroot(n: int, r: int) -> int:
    """``floor(n ** (1/r))`` for integers ``n >= 0``, ``r`` in (1, 2, 4), exactly."""
    for _ in range(r.bit_length() - 1):
        n = math.isqrt(n)
    return n


def floor_scaled_power(num: int, den: int, shift: int) -> int:
    """``floor(2**(num/den) * 2**shift)`` exactly, for ``den`` in (1, 2, 4) and ``num/den + shift >= 0``.

    ``2**(num/den + shift)`` is the ``den``-th root of ``2**(num + den*shift)``; the integer
    root of an integer root is the root of the whole (``floor(sqrt(floor(y))) == floor(sqrt(y))``).
    """
    exponent = num + den * shift
    if exponent < 0:
        raise ValueError("floor_scaled_power needs num/den + shift >= 0")
    return _iroot(1 << exponent, den)


@functools.cache
def rounded_power(k: int, r: int, dtype) -> np.generic:
    """``2**(k/r)`` correctly rounded to ``dtype`` (nearest, ties to even), computed on integers.

    With ``q`` the dtype's quantum at the binade of ``v = 2**(k/r)`` (its subnormal
    quantum below the normal range), ``v / 2**q = 2**(t/r)`` with ``t = k - r*q``;
    ``n = floor(2**(t/r))`` is an integer root and ``v`` rounds up iff
    ``2**(t/r) > n + 1/2``, i.e. ``2**(t + r) > (2n + 1)**r``, compared on integers
    (never equal: the left side is even, the right odd, so only the powers of two
    below the smallest subnormal can be ties). Overflow gives inf.
    """
    dtype = np.dtype(dtype)
    info = ml_dtypes.finfo(dtype)
    q = max(k // r, int(info.minexp)) - int(info.nmant)
    t = k - r * q
    if t >= 0:
        n = _iroot(1 << t, r)
        n += (1 << (t + r)) > (2 * n + 1) ** r
    else:  # below the smallest subnormal: 2**(t/r) < 1 rounds up iff it is above 1/2 (a tie goes to 0)
        n = int(t > -r)
    value = n * Fraction(2) ** q
    if value > Fraction(float(info.max)):
        return dtype.type(np.inf)
    return np.array(float(value), dtype=np.float64).astype(dtype)[()]


# ---- the registry -----------------------------------------------------------------------

LOG4 = LogFormat("log4", 3)  # sign + 3 exponent bits: 0, ±2**-3 .. ±2**3
LOG8 = LogFormat("log8", 7)  # sign + 7 exponent bits: 0, ±2**-63 .. ±2**63
LOG4_SQRT2 = LogFormat("log4_sqrt2", 3, base="sqrt2")  # 0, ±2**-1.5 .. ±2**1.5 in steps of sqrt(2)
LOG8_SQRT2 = LogFormat("log8_sqrt2", 7, base="sqrt2")  # 0, ±2**-31.5 .. ±2**31.5

for _fmt, _aliases in [(LOG4, ("log4_base2",)), (LOG8, ("log8_base2",)), (LOG4_SQRT2, ()), (LOG8_SQRT2, ())]:
    if _fmt.name not in _formats.names():
        _formats.register(_fmt, *_aliases)
