"""Number formats as data: :class:`FloatFormat`, :class:`IntFormat`, :class:`CodebookFormat`.

A format is a small frozen dataclass. It says how codes map to values; it holds no
code path of its own (the one generic codec in :mod:`numfmt.codec` serves every
format). The derived properties follow ``numpy.finfo``'s names.

Float formats
-------------
A float format with ``e = exp_bits`` exponent bits and ``p = man_bits`` mantissa bits
stores an optional sign bit, a biased exponent field ``E`` and a mantissa field ``M``.
Its magnitude code is ``C = (E << p) | M``, and its value is

* ``E >= emin_field``: ``(1 + M / 2**p) * 2**(E - bias)`` (normal);
* ``E == 0`` with subnormals: ``M / 2**p * 2**(1 - bias)`` (zero when ``M == 0``);
* ``E == 0`` without subnormals: zero (codes with ``M != 0`` are never produced by
  ``encode`` and read as zero, the "denormals are zero" rule of FTZ hardware).

``emin_field`` is 1, except in the ``"e8m0"`` style, which has no zero and so uses
``E == 0`` as a normal binade. How the specials are spelled is the ``specials`` field:

==========  =====================================================================
``ieee``    IEEE 754: ``E`` all ones is inf (``M == 0``) or NaN (``M != 0``).
``fn``      OCP "finite + NaN" (E4M3): no inf; NaN only at ``E`` and ``M`` all ones.
``fnuz``    no inf, no -0: the single NaN sits at the code of -0 (sign bit alone).
``none``    every code is a finite number (OCP FP6 and FP4).
``e8m0``    OCP E8M0 style: unsigned, no zero, no subnormals, NaN at all ones.
==========  =====================================================================
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from fractions import Fraction

import ml_dtypes
import numpy as np

from numfmt.checks import check_bool, is_traced, static_hint

SPECIALS = ("ieee", "fn", "fnuz", "none", "e8m0")

__all__ = [
    "BF16",
    "E2M1",
    "E2M3",
    "E3M2",
    "E3M4",
    "E4M3",
    "E4M3B11FNUZ",
    "E4M3FNUZ",
    "E4M3IEEE",
    "E5M2",
    "E5M2FNUZ",
    "E8M0",
    "E8M13",
    "FP16",
    "FP32",
    "INT2",
    "INT4",
    "INT8",
    "INT16",
    "INT32",
    "NF4",
    "SPECIALS",
    "TF32",
    "UINT2",
    "UINT4",
    "UINT8",
    "CodebookFormat",
    "FloatFormat",
    "Format",
    "IntFormat",
    "aliases",
    "fits",
    "get",
    "names",
    "register",
]


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return int(value)


def _container_dtype(bits: int):
    """The smallest unsigned NumPy dtype that holds a code of ``bits`` bits."""
    if bits <= 8:
        return np.dtype(np.uint8)
    if bits <= 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


class Format:
    """Common base of every format: a name, a bit width and a code container."""

    name: str

    @property
    def code_dtype(self) -> np.dtype:
        """The unsigned container that ``encode`` returns (uint8, uint16 or uint32)."""
        return _container_dtype(self.bits)

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class FloatFormat(Format):
    """A binary floating-point format of at most 32 bits.

    Args:
      name: the format's name, as shown by ``numfmt list``.
      exp_bits: exponent field width, 1 to 8.
      man_bits: stored mantissa (trailing significand) width, 0 to 23.
      bias: exponent bias. Default ``2**(exp_bits-1) - 1`` (IEEE), or ``2**(exp_bits-1)``
        for the ``fnuz`` style (the convention of the FNUZ formats), or 127 for ``e8m0``.
      signed: whether a sign bit is stored (sign-magnitude, as IEEE 754).
      subnormals: whether ``E == 0`` holds subnormals. Default True (False for ``e8m0``).
      specials: how inf and NaN are spelled: one of ``SPECIALS`` (see the module doc).

    Every value must be finite and non-zero in float64, so the bias is limited
    accordingly. A float format keeps the mantissa width at most 23 bits so that
    every value of it is exact in float64 and its significand in float32.
    """

    name: str
    exp_bits: int
    man_bits: int
    bias: int | None = dataclasses.field(default=None, kw_only=True)
    signed: bool = dataclasses.field(default=True, kw_only=True)
    subnormals: bool | None = dataclasses.field(default=None, kw_only=True)
    specials: str = dataclasses.field(default="ieee", kw_only=True)

    kind = "float"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        _check_int("exp_bits", self.exp_bits, 1, 8)
        _check_int("man_bits", self.man_bits, 0, 23)
        if self.specials not in SPECIALS:
            raise ValueError(f"specials must be one of {SPECIALS}, got {self.specials!r}")
        if not isinstance(self.signed, (bool, np.bool_)):
            raise TypeError(f"signed must be a bool, got {self.signed!r}")
        if self.specials == "fnuz" and not self.signed:
            raise ValueError("specials='fnuz' puts NaN at the code of -0, so it needs signed=True")
        if self.specials == "e8m0":
            if self.signed:
                raise ValueError("specials='e8m0' is unsigned: pass signed=False")
            if self.subnormals:
                raise ValueError("specials='e8m0' has no zero and no subnormals: pass subnormals=False or None")
        subnormals = self.specials != "e8m0" if self.subnormals is None else bool(self.subnormals)
        object.__setattr__(self, "subnormals", subnormals)
        if self.bias is None:
            default = {"fnuz": 2 ** (self.exp_bits - 1), "e8m0": 2 ** (self.exp_bits - 1) - 1}
            object.__setattr__(self, "bias", default.get(self.specials, 2 ** (self.exp_bits - 1) - 1))
        _check_int("bias", self.bias, -1000, 1000)
        object.__setattr__(self, "bias", int(self.bias))
        bits = int(self.signed) + self.exp_bits + self.man_bits
        if bits > 32:
            raise ValueError(f"a FloatFormat has at most 32 bits, got {bits} (signed + exp_bits + man_bits)")
        if self.max_code < self.min_positive_code:
            raise ValueError(f"format {self.name!r} has no positive finite value")
        top = self.value_of(self.max_code)
        if not (top < Fraction(2) ** 1024 and self.value_of(self.min_positive_code) >= Fraction(2) ** -1074):
            raise ValueError(f"bias={self.bias} puts the values of {self.name!r} outside float64's range")

    # ---- layout -----------------------------------------------------------------
    @property
    def bits(self) -> int:
        """Total width in bits."""
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def emin_field(self) -> int:
        """The smallest exponent field value of a normal binade (0 only in the e8m0 style)."""
        return 0 if self.specials == "e8m0" else 1

    @property
    def has_zero(self) -> bool:
        return self.specials != "e8m0"

    @property
    def has_inf(self) -> bool:
        return self.specials == "ieee"

    @property
    def has_nan(self) -> bool:
        if self.specials == "ieee":
            return self.man_bits > 0
        return self.specials in ("fn", "fnuz", "e8m0")

    @property
    def has_negative_zero(self) -> bool:
        return self.signed and self.specials not in ("fnuz", "e8m0")

    @property
    def sign_mask(self) -> int:
        """The sign bit within the code (0 for unsigned formats)."""
        return 1 << (self.bits - 1) if self.signed else 0

    @property
    def max_code(self) -> int:
        """The magnitude code (``E << p | M``) of the largest finite value."""
        ones = (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials == "ieee":
            return ones - (1 << self.man_bits)  # E all ones is reserved
        if self.specials in ("fn", "e8m0"):
            return ones - 1  # only the all-ones code is NaN
        return ones

    @property
    def min_positive_code(self) -> int:
        """The magnitude code of the smallest positive value."""
        if self.specials == "e8m0":
            return 0
        return 1 if self.subnormals else 1 << self.man_bits

    @property
    def nan_code(self) -> int | None:
        """The code ``encode`` gives a NaN input (positive quiet NaN), or None."""
        if not self.has_nan:
            return None
        ones = (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials == "ieee":
            return (((1 << self.exp_bits) - 1) << self.man_bits) | (1 << (self.man_bits - 1))
        if self.specials == "fnuz":
            return self.sign_mask
        return ones

    @property
    def inf_code(self) -> int | None:
        """The magnitude code of infinity, or None."""
        return ((1 << self.exp_bits) - 1) << self.man_bits if self.has_inf else None

    @property
    def inf_codes(self) -> tuple[int, ...]:
        """Every code (with sign) that means an infinity: ``(+inf,)`` or ``(+inf, -inf)``; ``()`` without inf."""
        if not self.has_inf:
            return ()
        return (self.inf_code, self.inf_code | self.sign_mask) if self.signed else (self.inf_code,)

    @property
    def _first_nan_magnitude(self) -> int:
        # Past max_code come inf (IEEE) and then the NaNs; all ones + 1 where there is no NaN.
        if not self.has_nan:
            return 1 << (self.exp_bits + self.man_bits)
        return self.max_code + 1 + int(self.has_inf)

    @property
    def nan_code_ranges(self) -> tuple[tuple[int, int], ...]:
        """Every code (with sign) that means NaN, as inclusive ``(first, last)`` ranges; ``()`` without NaN.

        IEEE: exponent all ones with a non-zero mantissa, both signs; ``fn`` and ``e8m0``:
        all ones (both signs where signed); ``fnuz``: the code of -0 alone.
        """
        if not self.has_nan:
            return ()
        if self.specials == "fnuz":
            return ((self.sign_mask, self.sign_mask),)
        lo, hi = self._first_nan_magnitude, (1 << (self.exp_bits + self.man_bits)) - 1
        return ((lo, hi), (lo | self.sign_mask, hi | self.sign_mask)) if self.signed else ((lo, hi),)

    def is_nan_code(self, code):
        """Whether ``code`` (with sign, no bits above ``bits``) means NaN.

        ``code`` is a Python int or an unsigned integer array (NumPy or JAX: only
        comparisons and masks are used), so the decoder asks the same question as the
        tables; the answer agrees with :attr:`nan_code_ranges`.
        """
        if self.specials == "fnuz":
            return code == self.sign_mask
        return (code & ((1 << (self.exp_bits + self.man_bits)) - 1)) >= self._first_nan_magnitude

    # ---- finfo-like values ----------------------------------------------------------
    @property
    def emax(self) -> int:
        """The unbiased exponent of the largest finite binade."""
        return (self.max_code >> self.man_bits) - self.bias

    @property
    def emin(self) -> int:
        """The unbiased exponent of the smallest normal binade."""
        return self.emin_field - self.bias

    def value_of(self, magnitude_code: int) -> Fraction:
        """The exact value of a finite, non-negative magnitude code (no specials check)."""
        p = self.man_bits
        e_field, m = magnitude_code >> p, magnitude_code & ((1 << p) - 1)
        if e_field < self.emin_field:
            if not self.subnormals:
                return Fraction(0)
            return Fraction(m, 1 << p) * Fraction(2) ** (1 - self.bias)
        return (1 + Fraction(m, 1 << p)) * Fraction(2) ** (e_field - self.bias)

    @property
    def max(self) -> float:
        """The largest finite value."""
        return float(self.value_of(self.max_code))

    @property
    def min_normal(self) -> float:
        """The smallest positive normal value, ``2**emin``."""
        return 2.0**self.emin

    @property
    def min_subnormal(self) -> float:
        """The smallest positive value (``min_normal`` when there are no subnormals)."""
        return float(self.value_of(self.min_positive_code))

    @property
    def eps(self) -> float:
        """The gap between 1 and the next larger value's significand: ``2**-man_bits``."""
        return 2.0**-self.man_bits

    @property
    def smallest_normal(self) -> float:
        """Alias of ``min_normal``, as ``numpy.finfo`` names it."""
        return self.min_normal

    def is_finite_code(self, code: int) -> bool:
        """Whether ``code`` (with sign) encodes a finite value."""
        mag = code & ~self.sign_mask
        if self.specials == "fnuz":
            return code != self.sign_mask
        return mag <= self.max_code

    def values(self) -> np.ndarray:
        """Every finite value in increasing order, as float64 (one zero, +0)."""
        if self.bits > 16:
            raise ValueError(f"values() lists formats of at most 16 bits; {self.name} has {self.bits}")
        mags = sorted({self.value_of(c) for c in range(self.max_code + 1)})
        if self.signed:
            mags = [-v for v in reversed(mags) if v != 0] + mags
        return np.array([float(v) for v in mags], dtype=np.float64)

    @property
    def dtype(self):
        """The matching NumPy / ml_dtypes dtype, or None."""
        return _MATCHING_DTYPES.get(self._key())

    def _key(self):
        return ("float", self.exp_bits, self.man_bits, self.bias, self.signed, self.subnormals, self.specials)


@dataclasses.dataclass(frozen=True)
class IntFormat(Format):
    """A two's complement (or unsigned) integer format of 1 to 32 bits.

    ``narrow=True`` drops the most negative value, giving the symmetric range
    ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` used by symmetric int quantization.
    Codes hold the two's complement bit pattern in the low ``bits`` bits.
    """

    name: str
    bits: int
    signed: bool = dataclasses.field(default=True, kw_only=True)
    narrow: bool = dataclasses.field(default=False, kw_only=True)

    kind = "int"
    has_inf = False
    has_nan = False
    has_negative_zero = False
    has_zero = True
    subnormals = False
    exp_bits = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        _check_int("bits", self.bits, 1, 32)
        if self.narrow and not self.signed:
            raise ValueError("narrow=True is for signed formats (it drops the most negative value)")
        if self.narrow and self.bits < 2:
            raise ValueError("narrow=True needs bits >= 2")

    @property
    def man_bits(self) -> int:
        return self.bits - int(self.signed)

    @property
    def max(self) -> int:
        return (1 << (self.bits - int(self.signed))) - 1

    @property
    def min(self) -> int:
        """The most negative value (0 for unsigned formats)."""
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + int(self.narrow)

    bias = 0
    emin = 0
    min_normal = 1
    min_subnormal = 1
    eps = 1

    @property
    def emax(self) -> int:
        return self.bits - int(self.signed) - 1

    nan_code = None
    inf_codes = ()
    nan_code_ranges = ()

    def is_nan_code(self, code):
        """Always false (for an int, or elementwise for an array): no code of an integer format is NaN."""
        return code < 0  # codes are non-negative: False, or an all-False array

    def values(self) -> np.ndarray:
        """Every value in increasing order, as float64."""
        if self.bits > 16:
            raise ValueError(f"values() lists formats of at most 16 bits; {self.name} has {self.bits}")
        return np.arange(self.min, self.max + 1, dtype=np.float64)

    @property
    def dtype(self):
        return _MATCHING_DTYPES.get(self._key())

    def _key(self):
        return ("int", self.bits, self.signed, self.narrow)


@dataclasses.dataclass(frozen=True)
class CodebookFormat(Format):
    """A format whose codes index a table of values (a codebook), e.g. NF4.

    ``values`` is stored sorted; code ``i`` means ``values[i]``. Encoding picks the
    nearest value (ties to the lower code).
    """

    name: str
    table: tuple

    kind = "codebook"
    has_inf = False
    has_nan = False
    signed = True
    nan_code = None
    inf_codes = ()

    @property
    def nan_code_ranges(self) -> tuple[tuple[int, int], ...]:
        """The codes past the table, which ``decode`` reads as NaN (``()`` for a full table)."""
        top = (1 << self.bits) - 1
        return ((len(self.table), top),) if len(self.table) <= top else ()

    def is_nan_code(self, code):
        """Whether ``code`` lies past the table (``decode`` reads those codes as NaN)."""
        return code >= len(self.table)

    def __post_init__(self):
        table = tuple(float(v) for v in self.table)
        if not 2 <= len(table) <= 2**16:
            raise ValueError(f"a codebook needs 2 to 65536 values, got {len(table)}")
        if any(not math.isfinite(v) for v in table):
            raise ValueError("codebook values must be finite")
        if list(table) != sorted(set(table)):
            raise ValueError("codebook values must be strictly increasing")
        object.__setattr__(self, "table", table)

    @property
    def bits(self) -> int:
        return max(1, (len(self.table) - 1).bit_length())

    @property
    def max(self) -> float:
        return max(abs(self.table[0]), abs(self.table[-1]))

    def values(self) -> np.ndarray:
        return np.array(self.table, dtype=np.float64)

    dtype = None


# ---- which native float types hold a format ----------------------------------------


@functools.cache
def _fits(fmt: Format, dtype: np.dtype) -> bool:
    info = ml_dtypes.finfo(dtype)  # numpy's finfo does not know bfloat16
    if isinstance(fmt, FloatFormat):
        # The lowest binade's step, 2**(emin - man_bits), must be a step of dtype: with
        # or without subnormals, the values of that binade need every mantissa bit.
        return (fmt.man_bits <= info.nmant and fmt.emax <= info.maxexp - 1
                and fmt.emin - fmt.man_bits >= info.minexp - info.nmant)
    if isinstance(fmt, IntFormat):
        return max(fmt.max, -fmt.min) <= 2 ** (info.nmant + 1)  # every integer up to 2**(p+1) is exact
    # Codebooks and the other families (numfmt.logformat.LogFormat): every value, as
    # float64, is a value of dtype (a power of sqrt(2) is held by float64 alone, rounded).
    with np.errstate(over="ignore"):  # a value past dtype's range casts to inf: not held
        return all(float(dtype.type(v)) == v for v in fmt.values())


def fits(fmt, dtype) -> bool:
    """Whether every value of ``fmt`` is exactly a value of the float ``dtype`` (float16 to float64).

    The one "fits" predicate of the codec: ``quantize``'s result dtype, ``decode``'s
    exact path and the codec's short paths ask it. A float format fits when its
    mantissa, its largest binade and the step of its lowest binade all fit ``dtype``.
    """
    return _fits(get(fmt), np.dtype(dtype))


# ---- the registry -----------------------------------------------------------------

FP32 = FloatFormat("fp32", 8, 23)
FP16 = FloatFormat("fp16", 5, 10)
BF16 = FloatFormat("bf16", 8, 7)
TF32 = FloatFormat("tf32", 8, 10)
E4M3 = FloatFormat("e4m3", 4, 3, specials="fn")  # OCP FP8 E4M3 (ml_dtypes float8_e4m3fn)
E5M2 = FloatFormat("e5m2", 5, 2)  # OCP FP8 E5M2, IEEE-style
E4M3FNUZ = FloatFormat("e4m3fnuz", 4, 3, specials="fnuz")  # bias 8
E5M2FNUZ = FloatFormat("e5m2fnuz", 5, 2, specials="fnuz")  # bias 16
E4M3B11FNUZ = FloatFormat("e4m3b11fnuz", 4, 3, bias=11, specials="fnuz")
E4M3IEEE = FloatFormat("e4m3ieee", 4, 3)  # ml_dtypes float8_e4m3: IEEE-style, with inf
E3M4 = FloatFormat("e3m4", 3, 4)  # ml_dtypes float8_e3m4: IEEE-style
E3M2 = FloatFormat("e3m2", 3, 2, specials="none")  # OCP FP6
E2M3 = FloatFormat("e2m3", 2, 3, specials="none")  # OCP FP6
E2M1 = FloatFormat("e2m1", 2, 1, specials="none")  # OCP FP4
E8M0 = FloatFormat("e8m0", 8, 0, signed=False, specials="e8m0")  # OCP MX scale
# The H100 FP8 tensor core's running sum, fitted to recorded output (docs/hardware.md):
# float32's exponent range, 13 stored fraction bits.
E8M13 = FloatFormat("e8m13", 8, 13)
INT32 = IntFormat("int32", 32)
INT16 = IntFormat("int16", 16)
INT8 = IntFormat("int8", 8)
INT4 = IntFormat("int4", 4)
INT2 = IntFormat("int2", 2)
UINT8 = IntFormat("uint8", 8, signed=False)
UINT4 = IntFormat("uint4", 4, signed=False)
UINT2 = IntFormat("uint2", 2, signed=False)
# QLoRA's NormalFloat4 (Dettmers et al. 2023, arXiv 2305.14314), as bitsandbytes ships it.
NF4 = CodebookFormat(
    "nf4",
    (
        -1.0,
        -0.6961928009986877,
        -0.5250730514526367,
        -0.39491748809814453,
        -0.28444138169288635,
        -0.18477343022823334,
        -0.09105003625154495,
        0.0,
        0.07958029955625534,
        0.16093020141124725,
        0.24611230194568634,
        0.33791524171829224,
        0.44070982933044434,
        0.5626170039176941,
        0.7229568362236023,
        1.0,
    ),
)

_MATCHING_DTYPES = {
    FP32._key(): np.dtype(np.float32),
    FP16._key(): np.dtype(np.float16),
    BF16._key(): np.dtype(ml_dtypes.bfloat16),
    E4M3._key(): np.dtype(ml_dtypes.float8_e4m3fn),
    E5M2._key(): np.dtype(ml_dtypes.float8_e5m2),
    E4M3FNUZ._key(): np.dtype(ml_dtypes.float8_e4m3fnuz),
    E5M2FNUZ._key(): np.dtype(ml_dtypes.float8_e5m2fnuz),
    E4M3B11FNUZ._key(): np.dtype(ml_dtypes.float8_e4m3b11fnuz),
    E4M3IEEE._key(): np.dtype(ml_dtypes.float8_e4m3),
    E3M4._key(): np.dtype(ml_dtypes.float8_e3m4),
    E3M2._key(): np.dtype(ml_dtypes.float6_e3m2fn),
    E2M3._key(): np.dtype(ml_dtypes.float6_e2m3fn),
    E2M1._key(): np.dtype(ml_dtypes.float4_e2m1fn),
    E8M0._key(): np.dtype(ml_dtypes.float8_e8m0fnu),
    INT32._key(): np.dtype(np.int32),
    INT16._key(): np.dtype(np.int16),
    INT8._key(): np.dtype(np.int8),
    INT4._key(): np.dtype(ml_dtypes.int4),
    INT2._key(): np.dtype(ml_dtypes.int2),
    IntFormat("uint32", 32, signed=False)._key(): np.dtype(np.uint32),
    IntFormat("uint16", 16, signed=False)._key(): np.dtype(np.uint16),
    UINT8._key(): np.dtype(np.uint8),
    UINT4._key(): np.dtype(ml_dtypes.uint4),
    UINT2._key(): np.dtype(ml_dtypes.uint2),
}

_REGISTRY: dict[str, Format] = {}
_ALIASES: dict[str, str] = {}
_BUILTIN_NAMES: frozenset = frozenset()  # filled in once the built-in formats are registered


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(fmt: Format, *aliases: str, overwrite: bool = False) -> Format:
    """Add ``fmt`` to the registry under its name and ``aliases``; returns ``fmt``.

    A name or alias that already names another format is refused (ValueError naming
    it) unless ``overwrite=True``; registering an equal format again is a no-op. The
    built-in formats' names and aliases are never replaced, not even with ``overwrite``:
    their constants (``numfmt.E4M3``) and the presets built on them (MX, NVFP4, the
    matmul profiles) would keep the old format while ``get`` returned the new one.
    """
    if not isinstance(fmt, Format):
        raise TypeError(f"fmt must be a FloatFormat, IntFormat or CodebookFormat, got {type(fmt).__name__}")
    overwrite = check_bool(overwrite, "overwrite")
    keys = []
    for alias in (fmt.name, *aliases):
        if not isinstance(alias, str) or not alias.strip():
            raise TypeError(f"aliases must be non-empty strs, got {alias!r}")
        key = _normalize(alias)
        held = _REGISTRY.get(_ALIASES.get(key))
        if held is not None and held != fmt:
            if held.name in _BUILTIN_NAMES:
                raise ValueError(
                    f"the name {key!r} belongs to the built-in format {held.name!r} ({held!r}) and cannot be "
                    f"replaced; register your format under a new name")
            if not overwrite:
                raise ValueError(
                    f"the name {key!r} is taken by format {held.name!r} ({held!r}); pass overwrite=True to "
                    f"replace it")
        keys.append(key)
    for key in keys:
        _ALIASES[key] = fmt.name
    _REGISTRY[fmt.name] = fmt
    return fmt


for _fmt, _aliases in [
    (FP32, ("float32", "binary32", "f32", "single")),
    (FP16, ("float16", "binary16", "f16", "half")),
    (BF16, ("bfloat16",)),
    (TF32, ("tensorfloat32",)),
    (E4M3, ("float8_e4m3fn", "e4m3fn", "fp8_e4m3", "ocp_e4m3")),
    (E5M2, ("float8_e5m2", "fp8_e5m2", "ocp_e5m2")),
    (E4M3FNUZ, ("float8_e4m3fnuz",)),
    (E5M2FNUZ, ("float8_e5m2fnuz",)),
    (E4M3B11FNUZ, ("float8_e4m3b11fnuz",)),
    (E4M3IEEE, ("float8_e4m3",)),
    (E3M4, ("float8_e3m4",)),
    (E3M2, ("float6_e3m2fn", "fp6_e3m2", "e3m2fn")),
    (E2M3, ("float6_e2m3fn", "fp6_e2m3", "e2m3fn")),
    (E2M1, ("float4_e2m1fn", "fp4", "fp4_e2m1", "e2m1fn")),
    (E8M0, ("float8_e8m0fnu", "e8m0fnu", "ue8m0")),
    (E8M13, ()),
    (INT32, ()),
    (INT16, ()),
    (INT8, ()),
    (INT4, ()),
    (INT2, ()),
    (UINT8, ()),
    (UINT4, ()),
    (UINT2, ()),
    (NF4, ("normalfloat4",)),
]:
    register(_fmt, *_aliases)

_BUILTIN_NAMES = frozenset(_REGISTRY)
_INT_NAME = re.compile(r"^(u?)int(\d+)(_narrow)?$")


def names() -> list[str]:
    """The canonical names of every registered format, in registration order."""
    return list(_REGISTRY)


@functools.cache
def _int_format(unsigned: bool, bits: int, narrow: bool) -> IntFormat:
    name = f"{'u' if unsigned else ''}int{bits}{'_narrow' if narrow else ''}"
    return IntFormat(name, bits, signed=not unsigned, narrow=narrow)


def get(name) -> Format:
    """Look a format up by name or alias (case-insensitive); formats pass through.

    Besides the registered names, ``intN`` / ``uintN`` (N = 1..32) and ``intN_narrow``
    name integer formats of any width. Unknown names raise ``ValueError`` listing the
    closest known names.
    """
    if isinstance(name, Format):
        return name
    if is_traced(name):
        raise TypeError(f"fmt must be known at trace time (a format object or a name), got a traced value: "
                        f"formats are static arguments; {static_hint('fmt')}")
    if not isinstance(name, str):
        raise TypeError(f"format must be a format object (FloatFormat, IntFormat, CodebookFormat) or a name (str), "
                        f"got {type(name).__name__}")
    key = _normalize(name)
    if key in _ALIASES:
        return _REGISTRY[_ALIASES[key]]
    match = _INT_NAME.match(key)
    if match:
        bits = int(match.group(2))
        if 1 <= bits <= 32:
            return _int_format(bool(match.group(1)), bits, bool(match.group(3)))
        raise ValueError(f"unknown format {name!r}: integer formats (intN, uintN, intN_narrow) have N = 1 to 32 "
                         f"bits, got {bits}")
    known = sorted(_ALIASES)
    close = difflib.get_close_matches(key, known, n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown format {name!r}.{hint} Known formats: {', '.join(names())}; "
        f"also intN / uintN for N = 1..32."
    )


def aliases(name) -> list[str]:
    """The other names under which the format ``name`` is registered (sorted)."""
    fmt = get(name)
    return sorted(a for a, canonical in _ALIASES.items() if canonical == fmt.name and a != fmt.name)


def close_names(name: str) -> list[str]:
    """Known names close to ``name`` (for error messages and the CLI)."""
    return difflib.get_close_matches(_normalize(name), sorted(_ALIASES), n=5, cutoff=0.5)
