"""TestFloat-style hard cases for a conversion into a number format, with their families.

``cases_for(fmt, source)`` lists the inputs where conversions from a ``source`` float
type (float32 by default) into ``fmt`` go wrong, each labelled with its *family*, in the
spirit of Berkeley TestFloat's case generation: the exact ties between neighbouring
values of ``fmt`` and one source ulp either side of each, the overflow threshold and
either side of it, the smallest subnormal and half of it, the smallest normal, ``±0``,
``±inf``, NaN and the largest finite source value. ``family_of(value, fmt)`` names the
region of the grid where any input lies, and ``simplicity`` orders inputs from simplest
(for reporting the simplest failing input).

Every case is a value of the source type (a NumPy scalar), so a candidate converter
sees exactly the input that the oracle rounds. Nothing here needs hypothesis;
:mod:`numfmt.testing.strategies` draws from these cases.
"""

from __future__ import annotations

import itertools
import random
import zlib
from fractions import Fraction
from typing import NamedTuple

import ml_dtypes
import numpy as np

from numfmt import formats as _formats
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat
from numfmt.testing import log_cases
from numfmt.testing.reference import grid_value

__all__ = [
    "FAMILIES",
    "REGIONS",
    "Case",
    "cases_for",
    "family_of",
    "finite_max_bits",
    "floor_bits",
    "from_bits",
    "range_bits",
    "signed_values",
    "simplicity",
    "source_dtype",
    "to_bits",
    "uint_dtype",
]

#: Every family name a case can carry, in the order ``cases_for`` lists them.
FAMILIES = {
    "zero": "±0",
    "nan": "NaN (both sign bits)",
    "inf": "±inf",
    "min_subnormal": "the smallest positive value of the format",
    "half_min_subnormal": "half the smallest positive value: the tie between it and 0",
    "half_min_subnormal-ulp": "one source ulp below half the smallest positive value",
    "half_min_subnormal+ulp": "one source ulp above half the smallest positive value",
    "min_normal": "the smallest normal value of the format",
    "min_normal-ulp": "one source ulp below the smallest normal value",
    "max": "the largest finite value of the format",
    "max+ulp": "one source ulp above max (the overflow threshold of directed rounding)",
    "overflow_threshold": "the tie between max and the next grid point past it",
    "overflow_threshold-ulp": "one source ulp below the overflow threshold",
    "overflow_threshold+ulp": "one source ulp above the overflow threshold",
    "past_max": "the first point of the extended grid past max",
    "source_max": "the largest finite value of the source type",
    "source_min_subnormal": "the smallest positive value of the source type",
    "tie": "the exact midpoint between two neighbouring values",
    "tie-ulp": "one source ulp below a tie",
    "tie+ulp": "one source ulp above a tie",
    "grid": "a value of the format, exactly",
    "random_bits": "a random bit pattern of the source type",
    "near_grid": "a few source ulps from a random value of the format",
    "near_tie": "a few source ulps from a random tie",
    "in_range": "a random input within the format's range",
}

_SOURCES = {
    "fp16": np.float16, "float16": np.float16, "half": np.float16,
    "bf16": ml_dtypes.bfloat16, "bfloat16": ml_dtypes.bfloat16,
    "fp32": np.float32, "float32": np.float32, "single": np.float32,
    "fp64": np.float64, "float64": np.float64, "double": np.float64,
}
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}

# Above this many distinct values per sign, the structured cases take a sample of the
# grid (the ends, both edges of every binade, and a fixed pseudo-random set) rather
# than every neighbouring pair: the oracle checks a few thousand cases in a second.
_FULL_GRID_LIMIT = 512
_SAMPLED = 128


class Case(NamedTuple):
    """One input: ``value`` (a scalar of the source dtype) and the ``family`` it came from."""

    value: np.generic
    family: str


# ---- source types -------------------------------------------------------------------


def source_dtype(source) -> np.dtype:
    """The NumPy dtype of a source float type: a dtype, a scalar type or a name such as ``"bf16"``."""
    if isinstance(source, str):
        key = source.strip().lower()
        if key not in _SOURCES:
            raise ValueError(f"source must be one of {sorted(set(_SOURCES))} or a float dtype, got {source!r}")
        source = _SOURCES[key]
    try:
        dtype = np.dtype(source)
    except TypeError as err:
        raise TypeError(f"source must be a float dtype (float16, bfloat16, float32, float64), got {source!r}") from err
    if dtype not in {np.dtype(t) for t in set(_SOURCES.values())}:
        raise TypeError(f"source must be float16, bfloat16, float32 or float64, got {dtype}")
    return dtype


def uint_dtype(dtype: np.dtype):
    """The unsigned integer type of ``dtype``'s width (its bit patterns)."""
    return _UINT[dtype.itemsize]


def from_bits(bits, dtype: np.dtype) -> np.generic:
    """The scalar of ``dtype`` with bit pattern ``bits``."""
    return np.array(bits, dtype=uint_dtype(dtype)).view(dtype)[()]


def to_bits(value) -> int:
    """The bit pattern of a NumPy float scalar."""
    arr = np.asarray(value)
    return int(arr.view(uint_dtype(arr.dtype))[()])


def finite_max_bits(dtype: np.dtype) -> int:
    """The bit pattern of ``dtype``'s largest finite value."""
    return to_bits(np.array(ml_dtypes.finfo(dtype).max, dtype=dtype)[()])


def _value_of(bits: int, dtype: np.dtype) -> Fraction:
    return Fraction(float(from_bits(bits, dtype)))


def floor_bits(x: Fraction, dtype: np.dtype) -> int | None:
    """Bits of the largest source value ``<= x`` (``x >= 0``), or None past the finite range."""
    top = finite_max_bits(dtype)
    if x > _value_of(top, dtype):
        return None
    with np.errstate(over="ignore"):
        bits = min(to_bits(np.array(float(x)).astype(dtype)[()]), top)
    # The cast rounds to nearest (through float64): at most a step or two off.
    while bits > 0 and _value_of(bits, dtype) > x:
        bits -= 1
    while bits < top and _value_of(bits + 1, dtype) <= x:
        bits += 1
    return bits


def _positive_cases(x: Fraction, dtype: np.dtype, family: str, either_side: bool):
    """Magnitude bit patterns around the real ``x >= 0``: itself if exact, else its neighbours.

    Yields ``(bits, family)``; with ``either_side`` also one source ulp below and above
    (``family-ulp``, ``family+ulp``).
    """
    lo = floor_bits(x, dtype)
    if lo is None:
        return
    top = finite_max_bits(dtype)
    exact = _value_of(lo, dtype) == x
    if exact:
        yield lo, family
    if either_side:
        below = lo - 1 if exact else lo
        above = lo + 1
        if below >= 0 and x > 0:
            yield below, f"{family}-ulp"
        if above <= top:
            yield above, f"{family}+ulp"


# ---- the grid of a format ---------------------------------------------------------------


class _FloatGrid:
    """The distinct non-negative finite values of a float format, by index, computed lazily.

    Index 0 is zero (except in the e8m0 style, which has none); the rest are the
    magnitude codes from the smallest positive one up to ``max_code`` (codes with
    ``E == 0`` read as zero when there are no subnormals, so they are skipped).
    """

    def __init__(self, fmt: FloatFormat):
        self.fmt = fmt
        self.zero = fmt.specials != "e8m0"
        self.first = fmt.min_positive_code
        self.count = int(self.zero) + fmt.max_code - self.first + 1

    def code(self, i: int) -> int:
        return 0 if (self.zero and i == 0) else self.first + i - int(self.zero)

    def index(self, code: int) -> int:
        return code - self.first + int(self.zero)

    def value(self, i: int) -> Fraction:
        return grid_value(self.code(i), self.fmt)

    def edges(self) -> list[int]:
        """Indices of both ends of every binade: where the exponent field steps."""
        p = self.fmt.man_bits
        out = []
        for e in range((self.fmt.max_code >> p) + 1):
            for m in {m for m in (0, 1, (1 << p) - 2, (1 << p) - 1) if 0 <= m < (1 << p)}:
                code = (e << p) | m
                if self.first <= code <= self.fmt.max_code:
                    out.append(self.index(code))
        return out


def _selected(n: int, fmt, edges=()) -> list[int]:
    """Indices 0..n-1 of the grid, all of them for small grids, else a fixed sample."""
    if n <= _FULL_GRID_LIMIT:
        return list(range(n))
    rng = random.Random(zlib.crc32(repr(fmt).encode()))  # the same sample on every run
    keep = set(range(64)) | set(range(n - 64, n)) | {i for i in edges if 0 <= i < n}
    keep |= {rng.randrange(n) for _ in range(_SAMPLED)}
    return sorted(keep)


def _grid(fmt):
    """``(points, pairs, past_max)`` of ``fmt``: sampled values, neighbouring pairs, first point past max.

    For float formats the points are magnitudes (the caller mirrors them); for integer
    and codebook formats they are signed. ``past_max`` is None for codebooks.
    """
    if isinstance(fmt, FloatFormat):
        grid = _FloatGrid(fmt)
        idx = _selected(grid.count, fmt, grid.edges())
        pairs = [(grid.value(i), grid.value(i + 1)) for i in idx if i + 1 < grid.count]
        return [grid.value(i) for i in idx], pairs, grid_value(fmt.max_code + 1, fmt)
    if isinstance(fmt, IntFormat):
        n = fmt.max - fmt.min + 1
        idx = _selected(n, fmt, range(-fmt.min - 64, -fmt.min + 64))
        points = [Fraction(fmt.min + i) for i in idx]
        return points, [(v, v + 1) for v in points if v < fmt.max], Fraction(fmt.max + 1)
    if isinstance(fmt, CodebookFormat):
        points = [Fraction(v) for v in fmt.table]
        return points, list(itertools.pairwise(points)), None
    if fmt.kind == "log":  # magnitudes, as for float formats (numfmt.testing.log_cases)
        return log_cases.log_grid(fmt)
    raise TypeError(f"fmt must be a FloatFormat, IntFormat or CodebookFormat, got {fmt!r}")


# ---- structured cases -------------------------------------------------------------------


def cases_for(fmt, source=np.float32) -> list[Case]:
    """The structured hard cases for converting ``source`` floats into ``fmt``, each with its family.

    Follows Berkeley TestFloat's idea of testing at the boundaries where rounding
    decides: every exact tie between neighbouring values (all of them for formats of at
    most 512 values per sign, a fixed sample of the grid otherwise: both ends, both
    edges of every binade and a fixed pseudo-random set) and one source ulp either side,
    the overflow threshold and either side, ``max``, the first point past ``max``, the
    smallest subnormal and half of it, the smallest normal, ``±0``, ``±inf``, NaN and
    the largest finite source value. Cases are given for both signs, also for unsigned
    formats, and each bit pattern appears once: the family listed first in
    ``FAMILIES`` wins. A point that the source type cannot hold (past its range, or a
    tie finer than its precision) is replaced by its source neighbours, or left out
    past the range. The list is sorted simplest first (:func:`simplicity`).
    """
    fmt = _formats.get(fmt)
    dtype = source_dtype(source)
    sign = 1 << (8 * dtype.itemsize - 1)
    found: list[tuple[int, str]] = [(0, "zero"), (finite_max_bits(dtype), "source_max"),
                                    (1, "source_min_subnormal")]

    def near(x: Fraction, family: str, either_side: bool = True):
        neg = sign if x < 0 else 0
        found.extend((bits | neg, fam) for bits, fam in _positive_cases(abs(x), dtype, family, either_side))

    points, pairs, past_max = _grid(fmt)
    if isinstance(fmt, FloatFormat):
        min_pos = grid_value(fmt.min_positive_code, fmt)
        top = grid_value(fmt.max_code, fmt)
        near(min_pos, "min_subnormal", either_side=False)
        near(min_pos / 2, "half_min_subnormal")
        min_normal = Fraction(2) ** (fmt.emin_field - fmt.bias)
        found.extend(c for c in _positive_cases(min_normal, dtype, "min_normal", True) if c[1] != "min_normal+ulp")
        found.extend(c for c in _positive_cases(top, dtype, "max", True) if c[1] != "max-ulp")
        near((top + past_max) / 2, "overflow_threshold")
        near(past_max, "past_max", either_side=False)
    elif isinstance(fmt, IntFormat):
        near(Fraction(fmt.max), "max", either_side=False)
        near(Fraction(fmt.max) + Fraction(1, 2), "overflow_threshold")
        near(Fraction(fmt.min) - Fraction(1, 2), "overflow_threshold")
    elif fmt.kind == "log":  # the linear ties come from the pairs below; these are the log domain's
        near(points[1], "min_subnormal", either_side=False)
        near(points[1] / 2, "half_min_subnormal")
        found.extend(c for c in _positive_cases(points[-1], dtype, "max", True) if c[1] != "max-ulp")
        near((points[-1] + past_max) / 2, "overflow_threshold")
        near(past_max, "past_max", either_side=False)
        for t in log_cases.log_decision_points(fmt):
            near(t, "tie")
    for a, b in pairs:
        near((a + b) / 2, "tie")
    for g in points:
        near(g, "grid", either_side=False)

    rank = {name: i for i, name in enumerate(FAMILIES)}
    families: dict[int, str] = {}
    for bits, family in sorted(found, key=lambda bf: rank[bf[1]]):
        families.setdefault(bits & ~sign, family)
        families.setdefault(bits | sign, family)
    for special, family in ((np.inf, "inf"), (np.nan, "nan")):
        bits = to_bits(np.array(special, dtype=dtype)[()])
        families.setdefault(bits & ~sign, family)
        families.setdefault(bits | sign, family)
    cases = [Case(from_bits(bits, dtype), family) for bits, family in families.items()]
    cases.sort(key=lambda c: simplicity(c.value))
    return cases


def simplicity(value) -> tuple:
    """Sort key of the 'simplest' input: finite before inf before NaN, then by magnitude, + before -."""
    v = float(value)
    if np.isnan(v):
        return (2, 0.0, 0)
    if np.isinf(v):
        return (1, 0.0, int(v < 0))
    return (0, abs(v), int(np.signbit(v)))


class _SignedValues:
    """Every finite value of ``fmt`` in increasing order, by index, computed lazily (FP32 has 2**32)."""

    def __init__(self, fmt):
        self.fmt = fmt
        if isinstance(fmt, FloatFormat):
            self.grid = _FloatGrid(fmt)
            self.neg = self.grid.count - int(self.grid.zero)  # how many negative values come first
            self.n = self.neg + self.grid.count
        elif isinstance(fmt, IntFormat):
            self.n = fmt.max - fmt.min + 1
        else:
            self.n = len(fmt.table)

    def __len__(self):
        return self.n

    def __getitem__(self, i: int) -> Fraction:
        if isinstance(self.fmt, FloatFormat):
            if i < self.neg:
                return -self.grid.value(self.grid.count - 1 - i)
            return self.grid.value(i - self.neg)
        if isinstance(self.fmt, IntFormat):
            return Fraction(self.fmt.min + i)
        return Fraction(self.fmt.table[i])


def signed_values(fmt):
    """The signed values of ``fmt`` (lazily, by index) and the first point past max (or None)."""
    if fmt.kind == "log":
        return log_cases.log_signed_values(fmt)
    if isinstance(fmt, FloatFormat):
        past = grid_value(fmt.max_code + 1, fmt)
    elif isinstance(fmt, IntFormat):
        past = Fraction(fmt.max + 1)
    else:
        past = None
    return _SignedValues(fmt), past


def range_bits(fmt, dtype, past_max) -> tuple[int, int]:
    """Source magnitude bits spanning a quarter of ``fmt``'s smallest value to twice its largest."""
    top = finite_max_bits(dtype)
    if isinstance(fmt, FloatFormat):
        low = grid_value(fmt.min_positive_code, fmt) / 4
    elif isinstance(fmt, IntFormat):
        low = Fraction(1, 4)
    elif fmt.kind == "log":
        low = Fraction(fmt.min_normal) / 4
    else:
        nonzero = [abs(Fraction(v)) for v in fmt.table if v != 0]
        low = min(nonzero) / 4
    high = 2 * (past_max if past_max is not None else Fraction(fmt.max))
    lo_bits = floor_bits(low, dtype)
    hi_bits = floor_bits(high, dtype)
    return (0 if lo_bits is None else lo_bits), (top if hi_bits is None else hi_bits)


#: Where an input lies relative to a format's grid (``family_of``), for inputs found at random.
REGIONS = {
    "grid": "exactly a value of the format",
    "tie": "exactly halfway between two neighbouring values",
    "overflow_range": "past the largest finite value",
    "underflow_range": "below half the smallest positive value",
    "subnormal_range": "below the smallest normal value",
    "normal_range": "between two neighbouring normal values, not a tie",
    "between_values": "between two neighbouring values, not a tie",
    "zero": "±0",
    "inf": "±inf",
    "nan": "NaN",
}


def family_of(value, fmt) -> str:
    """The region of ``fmt``'s grid where ``value`` lies: one of ``REGIONS``."""
    fmt = _formats.get(fmt)
    v = float(value)
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf"
    if v == 0:
        return "zero"
    x = Fraction(v)
    if fmt.kind == "log":
        return log_cases.log_family_of(x, fmt)
    if isinstance(fmt, FloatFormat):
        a = abs(x)
        top = grid_value(fmt.max_code, fmt)
        if a > top:
            return "tie" if 2 * a == top + grid_value(fmt.max_code + 1, fmt) else "overflow_range"
        grid = _FloatGrid(fmt)
        lo, hi = 0, grid.count - 1  # binary search for the neighbours of a
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if grid.value(mid) <= a else (lo, mid)
        lo_v, hi_v = grid.value(lo), grid.value(hi)
        if a in (lo_v, hi_v):
            return "grid"
        if a < lo_v:  # e8m0: below the smallest value
            return "underflow_range"
        if 2 * a == lo_v + hi_v:
            return "tie"
        if a < grid_value(fmt.min_positive_code, fmt) / 2:
            return "underflow_range"
        return "subnormal_range" if a < Fraction(2) ** (fmt.emin_field - fmt.bias) else "normal_range"
    if isinstance(fmt, IntFormat):
        if x > fmt.max or x < fmt.min:
            return "overflow_range"
        if x.denominator == 1:
            return "grid"
        return "tie" if x.denominator == 2 else "between_values"
    table = [Fraction(t) for t in fmt.table]
    if x in table:
        return "grid"
    if x < table[0] or x > table[-1]:
        return "overflow_range"
    return "tie" if any(2 * x == a + b for a, b in itertools.pairwise(table)) else "between_values"
