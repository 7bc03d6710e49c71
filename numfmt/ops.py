"""Correctly rounded arithmetic in any float format, with IEEE 754 exception flags.

``add``, ``sub``, ``mul``, ``div``, ``fma`` and ``sqrt`` take values of a format ``fmt``
and return the exact result rounded *once* into ``fmt`` (IEEE 754-2019 §5.4.1 and
§5.4.1's fusedMultiplyAdd), in any rounding mode of :mod:`numfmt.codec` but stochastic,
with ``fmt``'s specials and overflow rules (docs/semantics.md). With ``flags=True``
they also return the five IEEE 754-2019 §7 exception flags per element, with tininess
detected before or after rounding (§7.5), as Berkeley SoftFloat and TestFloat do.

These are checking tools, not kernels: NumPy and Python code, not ``jit``-compatible.

How the result is rounded once
------------------------------
Each operation first computes a float64 *proxy* ``x`` of the exact result ``r``: ``x = r``
when ``r`` is a float64, else ``x`` is ``r`` rounded to odd at float64's 53 bits (the
nearer float64 neighbour of ``r`` whose last bit is 1). Then ``x`` is rounded into ``fmt``
by :func:`numfmt.encode`, which rounds a float64 straight to the target. This is one
correct rounding of ``r`` because of the round-to-odd theorem (Boldo & Melquiond, "When
double rounding is odd", 2005; IEEE 754-2019 §5.4.1 note): with ``fmt``'s significand
of ``p <= 24`` bits and the proxy's 53 >= p + 2, every point where a rounding mode of
``fmt`` decides (a value of ``fmt``, a midpoint, the overflow threshold, ``min_normal``)
is an *even* float64 of the proxy's binade, so a rounded-to-odd proxy lies strictly
inside the same open interval between decision points as ``r``: it rounds the same way,
and is inexact, tiny or overflowing exactly when ``r`` is. This needs every proxy to be
a normal float64, which holds because ops accept only formats whose values lie in
``[2**-500, 2**500]`` (every registered format does): sums, products, quotients and
square roots of such values lie in ``[2**-1000, 2**1001]``.

The proxy itself:

* ``add`` / ``sub``: ``s = a + b`` in float64 and its exact error ``e`` by Knuth's
  TwoSum (exact for any float64s when nothing overflows); ``x = s`` if ``e == 0``, else
  ``s`` moved to odd toward ``e``.
* ``mul``: ``a * b`` is exact in float64: two significands of at most 24 bits make at
  most 48 bits, and the product's exponent stays in float64's normal range.
* ``fma``: the exact product as above, then TwoSum with ``c``.
* ``div`` and ``sqrt``: float64 is not exact here, so they are computed on Python
  integers: ``a / b`` as an integer quotient of 53 bits and a remainder, ``sqrt(a)`` as
  :func:`math.isqrt` of the scaled input and a check of its square; a non-zero
  remainder sets the last bit (round to odd, the "sticky bit").

Flags (IEEE 754-2019 §7): ``invalid`` (``inf - inf``, ``0 * inf`` — also in ``fma``
whatever ``c`` is, as SoftFloat does — ``0 / 0``, ``inf / inf``, ``sqrt`` of a negative
number), ``divbyzero`` (finite non-zero ``/ ±0``), ``overflow`` (the result rounded with
an unbounded exponent range exceeds ``max``), ``underflow`` (tiny and inexact; tiny is
``0 < |r| < min_normal`` *before* rounding, or *after* rounding to ``p`` bits with an
unbounded exponent range), ``inexact`` (the delivered finite result differs from
``r``, including overflow). NaN operands are quiet: they give NaN and raise nothing.
A format without inf gives NaN (``fn``, ``fnuz``) or ``±max`` (``none``) for an infinite
result, with ``divbyzero`` or ``invalid`` as the case may be but not ``inexact``; a
format without NaN gives ``+0`` for a NaN result (the codec's rule), with ``invalid``.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np

from numfmt import formats as _formats
from numfmt.formats import FloatFormat
from numfmt.rounding import DETERMINISTIC_MODES

__all__ = ["FLAG_NAMES", "Flags", "add", "div", "fma", "mul", "sqrt", "sub"]

FLAG_NAMES = ("invalid", "divbyzero", "overflow", "underflow", "inexact")
_MODES = DETERMINISTIC_MODES
_RANGE = 500  # ops take formats whose values lie in [2**-_RANGE, 2**_RANGE]


@dataclasses.dataclass(frozen=True)
class Flags:
    """The IEEE 754-2019 §7 exception flags of an operation, one boolean array each."""

    invalid: np.ndarray
    divbyzero: np.ndarray
    overflow: np.ndarray
    underflow: np.ndarray
    inexact: np.ndarray

    def raised(self) -> list[str]:
        """The names of the flags raised by any element."""
        return [name for name in FLAG_NAMES if np.any(getattr(self, name))]

    def __str__(self) -> str:
        return "{" + ", ".join(self.raised()) + "}"


# ---- argument checks -------------------------------------------------------------------


def _check_format(fmt) -> FloatFormat:
    fmt = _formats.get(fmt)
    if not isinstance(fmt, FloatFormat) or not fmt.signed:
        raise TypeError(f"fmt must be a signed float format (FloatFormat), got {fmt.name}")
    quantum = Fraction(2) ** (fmt.emin - fmt.man_bits)  # every value is a multiple of it
    if quantum < Fraction(2) ** -_RANGE or fmt.value_of(fmt.max_code) > Fraction(2) ** _RANGE:
        raise ValueError(f"fmt {fmt.name}: ops take formats whose values lie in [2**-{_RANGE}, 2**{_RANGE}]")
    return fmt


def _check_mode(rounding, tininess):
    if rounding not in _MODES:
        raise ValueError(f"rounding must be one of {_MODES}, got {rounding!r}")
    if tininess not in ("before", "after"):
        raise ValueError(f"tininess must be 'before' or 'after' (rounding), got {tininess!r}")


def _encode(x: np.ndarray, fmt, rounding, saturate) -> np.ndarray:
    import jax.numpy as jnp

    from numfmt.bitlayout import x64
    from numfmt.codec import decode, encode

    with x64():
        codes = encode(jnp.asarray(x, dtype=jnp.float64), fmt, rounding, saturate=saturate)
        return np.asarray(decode(codes, fmt, dtype=jnp.float64))


def _operand(name: str, x, fmt) -> np.ndarray:
    """``x`` as float64, checked to hold values of ``fmt`` only."""
    arr = np.asarray(x)
    if arr.dtype.kind != "f" and not (arr.ndim == 0 and arr.dtype.kind in "iu"):
        raise TypeError(f"{name} must be a float array or a number, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    back = _encode(arr, fmt, "nearest_even", False)
    ok = (back == arr) | (np.isnan(arr) & np.isnan(back))
    if not ok.all():
        idx = tuple(int(i) for i in np.argwhere(~ok)[0])
        where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
        raise ValueError(f"{name} must hold values of {fmt.name}; {where} = {float(arr[idx])!r} is not one "
                         f"(round it first with numfmt.quantize)")
    return arr


# ---- the float64 proxy of an exact result ---------------------------------------------


def _to_odd(s: np.ndarray, err: np.ndarray) -> np.ndarray:
    """``s + err`` (``s`` its float64 rounding, ``err`` the exact error) rounded to odd."""
    s = np.asarray(s, dtype=np.float64)
    even = (s.view(np.int64) & 1) == 0
    move = (err != 0) & even & np.isfinite(s)
    return np.where(move, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's TwoSum: ``s = fl(a + b)`` and the exact error ``a + b - s`` (0 where not finite)."""
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    return s, np.where(np.isfinite(err), err, 0.0)


def _signed_zero_sum(x, p, q, rounding):
    """IEEE 754 §6.3: an exact zero sum is -0 in 'down' mode, +0 otherwise, unless both are -0."""
    both = (p == 0) & (q == 0) & (np.signbit(p) == np.signbit(q))
    zero = np.where(both, np.copysign(0.0, p), -0.0 if rounding == "down" else 0.0)
    return np.where(x == 0, zero, x)


def _ratio_to_odd(n: int, d: int) -> float:
    """The positive rational ``n / d`` rounded to odd at 53 bits, as a float."""
    e = n.bit_length() - d.bit_length()
    if (n << -e if e < 0 else n) < (d << e if e > 0 else d):
        e -= 1  # now 2**e <= n/d < 2**(e+1)
    shift = 52 - e
    num, den = (n << shift, d) if shift >= 0 else (n, d << -shift)
    m, rem = divmod(num, den)
    if rem and m % 2 == 0:
        m += 1  # sticky bit: the exact quotient lies strictly between m and m + 1
    return math.ldexp(m, e - 52)


def _sqrt_to_odd(v: float) -> float:
    """``sqrt(v)`` for a positive float, rounded to odd at 53 bits."""
    n, d = v.as_integer_ratio()
    e2 = n.bit_length() - d.bit_length()
    if (n << -e2 if e2 < 0 else n) < (d << e2 if e2 > 0 else d):
        e2 -= 1  # 2**e2 <= v < 2**(e2+1)
    e = e2 // 2  # 2**e <= sqrt(v) < 2**(e+1)
    k = 2 * (52 - e)
    num, den = (n << k, d) if k >= 0 else (n, d << -k)
    m = math.isqrt(num // den)  # floor(sqrt(num/den)) = floor(sqrt(floor(num/den)))
    if m * m * den != num and m % 2 == 0:
        m += 1
    return math.ldexp(m, e - 52)


# ---- rounding decisions for the flags ------------------------------------------------------


def _round_integer(y, rounding, negative, lo_even):
    """``y >= 0`` rounded to an integer by ``rounding``; ``lo_even`` says whether floor(y) counts as even."""
    lo = np.floor(y)
    frac = y - lo
    up = {
        "nearest_even": (frac > 0.5) | ((frac == 0.5) & ~lo_even),
        "nearest_away": frac >= 0.5,
        "toward_zero": np.zeros_like(frac, dtype=bool),
        "up": (frac > 0) & ~negative,
        "down": (frac > 0) & negative,
        "odd": (frac > 0) & lo_even,
    }[rounding]
    return lo + up


def _overflows(x, fmt, rounding):
    """IEEE 754 §7.4: the result rounded with an unbounded exponent range exceeds max."""
    p = fmt.man_bits
    ulp = math.ldexp(1.0, (fmt.max_code >> p) - fmt.bias - p)  # the step of the top binade
    top = int(fmt.value_of(fmt.max_code) / Fraction(2) ** ((fmt.max_code >> p) - fmt.bias - p))
    with np.errstate(under="ignore"):
        y = np.abs(x) / ulp
    lo_code = fmt.max_code + (np.floor(y) - top)  # codes of the extended grid continue from max_code
    lo_even = np.fmod(lo_code, 2) == 0
    return (y > top) & (_round_integer(y, rounding, np.signbit(x), lo_even) > top)


def _tiny(x, fmt, rounding, tininess):
    """IEEE 754 §7.5: ``0 < |r| < min_normal``, before or after rounding to p bits, exponent unbounded."""
    p = fmt.man_bits
    emin = fmt.emin
    a = np.abs(x)
    tiny = (a > 0) & (a < math.ldexp(1.0, emin))
    if tininess == "before":
        return tiny
    y = a / math.ldexp(1.0, emin - 1 - p)  # in [2**p, 2**(p+1)) on the binade below min_normal
    lo_code = ((fmt.emin_field - 1) << p) + (np.floor(y) - (1 << p))
    lo_even = np.fmod(lo_code, 2) == 0
    reaches = (a >= math.ldexp(1.0, emin - 1)) & (_round_integer(y, rounding, np.signbit(x), lo_even) >= 2 << p)
    return tiny & ~reaches


def _finish(x, invalid, divbyzero, fmt, rounding, saturate, tininess, flags):
    values = _encode(x, fmt, rounding, saturate)
    if not flags:
        return values
    finite = np.isfinite(x)
    with np.errstate(invalid="ignore"):
        inexact = finite & (values != x)
        overflow = finite & _overflows(np.where(finite, x, 0.0), fmt, rounding)
        underflow = finite & inexact & _tiny(np.where(finite, x, 0.0), fmt, rounding, tininess)
    shape = values.shape
    return values, Flags(*(np.broadcast_to(np.asarray(f, dtype=bool), shape).copy()
                           for f in (invalid, divbyzero, overflow, underflow, inexact)))


def _prepare(operands: dict, fmt, rounding, tininess):
    fmt = _check_format(fmt)
    _check_mode(rounding, tininess)
    arrays = [_operand(name, v, fmt) for name, v in operands.items()]
    return fmt, np.broadcast_arrays(*arrays)


# ---- the operations ----------------------------------------------------------------------

_DOC_ARGS = """
    Args:
      {operands}: values of ``fmt`` (floats, NumPy or JAX arrays; they broadcast). A
        value that ``fmt`` cannot hold raises ``ValueError``.
      fmt: a signed float format (object or name).
      rounding: ``nearest_even``, ``nearest_away``, ``toward_zero``, ``up``, ``down``
        or ``odd``.
      flags: also return the IEEE 754 exception :class:`Flags`.
      tininess: ``"after"`` (default) or ``"before"`` rounding (IEEE 754-2019 §7.5).
      saturate: an overflow gives ``±max`` instead of inf / NaN (docs/semantics.md).

    Returns:
      float64 array of values of ``fmt``; with ``flags=True``, ``(values, Flags)``.
    """


def _add(a, b, fmt, rounding, flags, tininess, saturate):
    with np.errstate(invalid="ignore", over="ignore"):
        s, err = _two_sum(a, b)
    x = _signed_zero_sum(_to_odd(s, err), a, b, rounding)
    invalid = np.isinf(a) & np.isinf(b) & (np.signbit(a) != np.signbit(b))
    return _finish(x, invalid, np.zeros_like(invalid), fmt, rounding, saturate, tininess, flags)


def add(a, b, fmt, rounding="nearest_even", *, flags=False, tininess="after", saturate=False):
    fmt, (a, b) = _prepare({"a": a, "b": b}, fmt, rounding, tininess)
    return _add(a, b, fmt, rounding, flags, tininess, saturate)


def sub(a, b, fmt, rounding="nearest_even", *, flags=False, tininess="after", saturate=False):
    fmt, (a, b) = _prepare({"a": a, "b": b}, fmt, rounding, tininess)
    return _add(a, -b, fmt, rounding, flags, tininess, saturate)  # negation is exact


def mul(a, b, fmt, rounding="nearest_even", *, flags=False, tininess="after", saturate=False):
    fmt, (a, b) = _prepare({"a": a, "b": b}, fmt, rounding, tininess)
    with np.errstate(invalid="ignore"):
        x = a * b  # exact: see the module doc
    invalid = ((a == 0) & np.isinf(b)) | (np.isinf(a) & (b == 0))
    return _finish(x, invalid, np.zeros_like(invalid), fmt, rounding, saturate, tininess, flags)


def fma(a, b, c, fmt, rounding="nearest_even", *, flags=False, tininess="after", saturate=False):
    fmt, (a, b, c) = _prepare({"a": a, "b": b, "c": c}, fmt, rounding, tininess)
    with np.errstate(invalid="ignore", over="ignore"):
        prod = a * b  # exact
        s, err = _two_sum(prod, c)
    x = _signed_zero_sum(_to_odd(s, err), prod, c, rounding)
    zero_inf = ((a == 0) & np.isinf(b)) | (np.isinf(a) & (b == 0))
    inf_minus_inf = np.isinf(prod) & np.isinf(c) & (np.signbit(prod) != np.signbit(c))
    invalid = zero_inf | inf_minus_inf
    return _finish(x, invalid, np.zeros_like(invalid), fmt, rounding, saturate, tininess, flags)


def div(a, b, fmt, rounding="nearest_even", *, flags=False, tininess="after", saturate=False):
    fmt, (a, b) = _prepare({"a": a, "b": b}, fmt, rounding, tininess)
    with np.errstate(all="ignore"):
        x = a / b  # right for every special case: ±inf, NaN, ±0
    exact = np.isfinite(a) & np.isfinite(b) & (a != 0) & (b != 0)
    x = np.array(x, dtype=np.float64)
    for idx in map(tuple, np.argwhere(exact)):
        (na, da), (nb, db) = abs(float(a[idx])).as_integer_ratio(), abs(float(b[idx])).as_integer_ratio()
        x[idx] = math.copysign(_ratio_to_odd(na * db, da * nb), x[idx])
    invalid = ((a == 0) & (b == 0)) | (np.isinf(a) & np.isinf(b))
    divbyzero = np.isfinite(a) & (a != 0) & (b == 0)
    return _finish(x, invalid, divbyzero, fmt, rounding, saturate, tininess, flags)


def sqrt(a, fmt, rounding="nearest_even", *, flags=False, tininess="after", saturate=False):
    fmt, (a,) = _prepare({"a": a}, fmt, rounding, tininess)
    with np.errstate(invalid="ignore"):
        x = np.array(np.sqrt(a), dtype=np.float64)  # NaN below 0, -0 at -0, inf at inf
    for idx in map(tuple, np.argwhere(np.isfinite(a) & (a > 0))):
        x[idx] = _sqrt_to_odd(float(a[idx]))
    invalid = a < 0
    return _finish(x, invalid, np.zeros_like(invalid), fmt, rounding, saturate, tininess, flags)


for _op, _what, _operands in (
    (add, "``a + b``", "a, b"),
    (sub, "``a - b``", "a, b"),
    (mul, "``a * b``", "a, b"),
    (div, "``a / b``", "a, b"),
    (fma, "``a * b + c`` (fusedMultiplyAdd)", "a, b, c"),
    (sqrt, "The square root of ``a``", "a"),
):
    _op.__doc__ = (f"{_what}, computed exactly and rounded once into ``fmt`` "
                   f"(IEEE 754-2019 §5.4.1; the module doc gives the proof).\n" + _DOC_ARGS.format(operands=_operands))
