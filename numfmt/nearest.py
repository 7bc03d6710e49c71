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

from numfmt import special_values as sv
from numfmt.bitlayout import Layout
from numfmt.formats import FloatFormat, IntFormat, fits

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
    # NaN gives 0 (special_values.nan_result), and -0.0 (from -0.4, say) is the integer 0: +0.
    return jnp.where(jnp.isnan(x) | (r == 0), jnp.zeros_like(x), r)


def _quantize_float(x, fmt: FloatFormat, saturate: bool, lay: Layout):
    U = lay.uint
    shift = lay.man - fmt.man_bits
    bits = lax.bitcast_convert_type(x, U)
    sign = bits & U(1 << (lay.width - 1))
    a = bits ^ sign  # |x|: every NaN is above inf_bits, +inf is inf_bits
    if shift:
        # The last kept bit is the code's last bit, except with no mantissa bits, where it
        # is the exponent's: its parity then shifts with the difference of the biases.
        parity = (fmt.bias - lay.bias) % 2 if fmt.man_bits == 0 else 0
        lsb = ((a >> U(shift)) + U(parity)) & U(1)
        r = (a + U((1 << (shift - 1)) - 1) + lsb) & ~U((1 << shift) - 1)
    else:
        r = a
    if fmt.emin != 1 - lay.bias:
        # XLA folds (y + C) - C to y for a constant C: behind a barrier C stays opaque.
        C = lax.optimization_barrier(jnp.asarray(2.0 ** (fmt.emin - fmt.man_bits + lay.man), lay.dtype))
        sub = lax.bitcast_convert_type((lax.bitcast_convert_type(a, lay.dtype) + C) - C, U)
        r = jnp.where(a < _bits_of(2.0**fmt.emin, lay), sub, r)
    # Past max: the overflows, and every inf and NaN input (a NaN's bits stay above max's
    # through the rounding). The rules of numfmt.special_values decide what each becomes
    # (nearest_even sends every overflow toward infinity); a NaN result is the canonical
    # quiet NaN, positive, as decode(encode(x)) gives.
    max_bits, inf_bits, nan_bits = _bits_of(fmt.max, lay), _bits_of(np.inf, lay), _bits_of(np.nan, lay)
    result_bits = {sv.INF: inf_bits, sv.NAN: nan_bits, sv.MAX: max_bits, sv.ZERO: U(0)}
    is_nan = a > inf_bits
    overflow, inf, nan = sv.overflow_result(fmt, saturate), sv.inf_result(fmt, saturate), sv.nan_result(fmt)
    special = result_bits[overflow]
    if inf != overflow:
        special = jnp.where(a == inf_bits, result_bits[inf], special)
    if nan != overflow:
        special = jnp.where(is_nan, result_bits[nan], special)
    big = r > max_bits
    r = jnp.where(big, special, r)
    # Results without a sign: NaN (canonical) and +0 from a NaN input, NaN from an
    # overflow or inf (then both rules give NaN), and zeros of a format without -0.
    unsigned = big if overflow == sv.NAN else is_nan
    if not sv.keeps_negative_zero(fmt):
        unsigned = unsigned | (r == 0)
    sign = jnp.where(unsigned, U(0), sign)
    return lax.bitcast_convert_type(r | sign, lay.dtype)


def quantize_nearest(x, fmt, saturate: bool, lay: Layout):
    """``quantize(x, fmt, "nearest_even", saturate=saturate)`` for ``x`` of ``lay``'s dtype.

    Only for formats where :func:`nearest_ok` holds.
    """
    if isinstance(fmt, IntFormat):
        return _quantize_int(x, fmt)
    return _quantize_float(x, fmt, saturate, lay)
