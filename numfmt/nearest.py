"""A short path for the most common quantize: round to nearest, ties to even.

:func:`numfmt.codec.quantize` with ``rounding="nearest_even"`` takes this path for the
formats where it is exact, and the generic engine of :mod:`numfmt.encoder` otherwise.
Both compute the same values (docs/semantics.md); this one in about a quarter of the
integer operations, which matters because the quantize is compute-bound on a CPU.

Float formats (signed, with subnormals, every normal binade inside the input type's):

* normal range: the classic round-to-nearest-even on the input's bit pattern,
  ``(bits + (half - 1) + lsb) & ~mask`` (as in ml_dtypes' ``float8.h`` and every
  float-to-bfloat16 conversion). A carry out of the mantissa moves the exponent up,
  which is exactly the next binade of the format, and past ``max`` it lands on the
  extended grid, where overflow is detected;
* the format's subnormal range: ``(|x| + C) - C`` with ``C = 2**(emin - p + P)``: in
  ``[C, 2C)`` the input type's spacing is the format's subnormal step ``2**(emin - p)``,
  so its own addition rounds ``|x|`` to that step, ties to even, and the subtraction is
  exact. Formats whose subnormals are those of the input type (BF16) need no such step:
  the bit rounding holds across the whole range. Otherwise the path is taken only where
  half the format's smallest step is a normal number of the input type, so that an
  input subnormal, which XLA on CPU flushes to zero in arithmetic, rounds to zero
  anyway, and no result is subnormal.

Integer formats of at most 24 bits: ``clip(round(x))``, with ``round`` half to even.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt.bitlayout import Layout
from numfmt.decoder import fits
from numfmt.formats import FloatFormat, IntFormat

__all__ = ["nearest_ok", "quantize_nearest"]


def _float_ok(fmt: FloatFormat, lay: Layout) -> bool:
    emin_in = 1 - lay.bias
    return (
        fmt.signed
        and fmt.subnormals
        and fmt.specials in ("ieee", "fn", "fnuz", "none")
        and fits(fmt, lay.dtype)
        and fmt.emin >= emin_in
        and (fmt.emin == emin_in or fmt.emin - fmt.man_bits - 1 >= emin_in)
    )


def nearest_ok(fmt, lay: Layout) -> bool:
    """Whether :func:`quantize_nearest` computes ``fmt``'s nearest-even quantize exactly."""
    if isinstance(fmt, FloatFormat):
        return _float_ok(fmt, lay)
    if isinstance(fmt, IntFormat):
        return fmt.bits <= min(24, lay.man + 1)  # every integer of the range is exact
    return False


def _bits_of(value: float, lay: Layout):
    return lay.uint(int(np.asarray(value, lay.dtype).view(np.dtype(f"uint{lay.width}"))))


def _quantize_int(x, fmt: IntFormat):
    r = jnp.clip(jnp.round(x), fmt.min, fmt.max)  # jnp.round: half to even
    # NaN gives 0, and -0.0 (from -0.4, say) is the integer 0: +0.
    return jnp.where(jnp.isnan(x) | (r == 0), jnp.zeros_like(x), r)


def _quantize_float(x, fmt: FloatFormat, saturate: bool, lay: Layout):
    U = lay.uint
    shift = lay.man - fmt.man_bits
    bits = lax.bitcast_convert_type(x, U)
    sign_mask = U(1 << (lay.width - 1))
    a = bits & ~sign_mask
    inf_bits = _bits_of(np.inf, lay)
    is_nan = a > inf_bits
    is_inf = a == inf_bits
    if shift:
        # The last kept bit is the code's last bit, except with no mantissa bits, where it
        # is the exponent's: its parity then shifts with the difference of the biases.
        parity = (fmt.bias - lay.bias) % 2 if fmt.man_bits == 0 else 0
        lsb = ((a >> U(shift)) + U(parity)) & U(1)
        r = (a + U((1 << (shift - 1)) - 1) + lsb) & ~U((1 << shift) - 1)
    else:
        r = a
    if fmt.emin != 1 - lay.bias:
        C = np.asarray(2.0 ** (fmt.emin - fmt.man_bits + lay.man), lay.dtype)
        # XLA folds (y + C) - C to y for a constant C: a C it cannot prove constant stays.
        C = jnp.where(a == U((1 << lay.width) - 1), jnp.asarray(0, lay.dtype), C)
        sub = lax.bitcast_convert_type((lax.bitcast_convert_type(a, lay.dtype) + C) - C, U)
        r = jnp.where(a < _bits_of(2.0**fmt.emin, lay), sub, r)
    max_bits = _bits_of(fmt.max, lay)
    over = (r > max_bits) & ~is_nan  # an infinite input is past max too
    # The overflow rules of docs/semantics.md: where the result is the largest value,
    # infinity, or NaN.
    if saturate:
        to_max = over & ~is_inf if fmt.has_inf else over
    elif fmt.has_inf or fmt.has_nan:
        to_max = jnp.zeros_like(over)
    else:
        to_max = over
    rest = over & ~to_max
    r = jnp.where(to_max, max_bits, r)
    if fmt.has_inf:
        r = jnp.where(rest, inf_bits, r)
    if fmt.has_nan:
        nan = is_nan if fmt.has_inf else rest | is_nan
    else:
        nan = None
        r = jnp.where(is_nan, U(0), r)  # no NaN: +0
    keep_sign = ~is_nan if fmt.has_negative_zero else (r != 0) & ~is_nan
    out = lax.bitcast_convert_type(jnp.where(keep_sign, r | (bits & sign_mask), r), lay.dtype)
    if nan is not None:
        out = jnp.where(nan, jnp.asarray(np.nan, lay.dtype), out)
    return out


def quantize_nearest(x, fmt, saturate: bool, lay: Layout):
    """``quantize(x, fmt, "nearest_even", saturate=saturate)`` for ``x`` of ``lay``'s dtype.

    Only for formats where :func:`nearest_ok` holds.
    """
    if isinstance(fmt, IntFormat):
        return _quantize_int(x, fmt)
    return _quantize_float(x, fmt, saturate, lay)
