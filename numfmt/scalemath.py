"""Applying scales the same way on every backend: quotients into, products out of the elements.

Quantizing divides by a scale, dequantizing multiplies by it. Both must give the same
bits on a CPU and a GPU, and XLA gets in the way twice: on CPU it flushes subnormal
operands and results of float arithmetic to zero, and everywhere it turns a division
by a broadcast scale into a multiplication by the scale's reciprocal, which is not
correctly rounded. The functions here are the defined operations, computed exactly:

* :func:`unscale` and :func:`unscale_pow2` give ``x / scale`` for the element rounding:
  the IEEE float32 (float64) quotient, correctly rounded, and ``x * 2**-k`` exactly.
  Below the normal range, a fast path used for *coarse* element formats (whose
  smallest step lies far above the work type's subnormals, every format but
  BF16/FP32-like ones, see :func:`is_coarse`) replaces the quotient by the smallest
  subnormal of its sign: the element rounding of any value that small depends on its
  sign and on its being non-zero only, in every rounding mode (stochastic rounding's
  fraction is below one part in ``2**W`` of a step, so it never rounds up). Other
  formats take the exact path of :mod:`numfmt.bitlayout` (round to odd for powers of
  two, so a later rounding sees the exact quotient).
* :func:`rescale` and :func:`rescale_pow2` give ``v * scale`` for dequantized values:
  the correctly rounded product with gradual underflow (power-of-two scales: exact).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import bitlayout as _bits
from numfmt.bitlayout import layout_of

__all__ = ["is_coarse", "once_per_group", "product", "quotient", "rescale", "rescale_pow2", "scale_parts", "unscale",
           "unscale_pow2"]


def is_coarse(min_step: float, dtype) -> bool:
    """Whether values below ``dtype``'s normal range round like a tiny value of their sign.

    True when the element format's smallest step lies more than ``W + 2`` binades
    above ``dtype``'s smallest normal (``W``: the stochastic-rounding word width), so
    that a value below that normal range is under ``2**-W`` of a step.
    """
    info = np.finfo(np.dtype(dtype))
    return min_step >= float(info.tiny) * 2.0 ** (info.bits + 2)


def _prescaled(x, lay):
    """``(x', K)``: ``x' = x * 2**K`` exactly, ``K = 64`` where ``|x| < 2**-100``, else 0.

    So that ``x' / m`` for ``m`` in [1, 2) is normal: no flush on CPU. A subnormal's
    magnitude bits are its value in units of the smallest subnormal, so an integer to
    float conversion and a product of normals give ``x * 2**64`` exactly; a small
    normal gets 64 added to its exponent field.
    """
    U = lay.uint
    u = lax.bitcast_convert_type(x, U)
    sign_mask = ~U((1 << (lay.width - 1)) - 1)
    mag = u & ~sign_mask
    sub = mag < U(1 << lay.man)
    small = mag < lax.bitcast_convert_type(lay.dtype.type(2.0**-100), U)
    unit = 2.0 ** (64 + 1 - lay.bias - lay.man)  # the smallest subnormal times 2**64
    up_sub = lax.bitcast_convert_type(mag.astype(lay.dtype) * lay.dtype.type(unit), U) | (u & sign_mask)
    up = jnp.where(sub, up_sub, u + (U(64) << U(lay.man)))
    small = small & (mag != 0)
    return lax.bitcast_convert_type(jnp.where(small, up, u), lay.dtype), jnp.where(small, lay.sint(64), lay.sint(0))


def _settle(q, x, shift, lay, *, to_max):
    """``q * 2**-shift`` for the element rounding: exact where normal, the signed
    smallest subnormal where smaller (``x`` non-zero), and past the top the largest
    finite value (``to_max``) or inf; ``x``'s zeros, inf and NaN pass through."""
    U, S, P = lay.uint, lay.sint, lay.man
    top = _bits.inf_bits(lay)
    qu = lax.bitcast_convert_type(q, U)
    sign = qu & ~U((1 << (lay.width - 1)) - 1)
    field = ((qu & ~sign) >> U(P)).astype(S) - shift
    moved = qu - (shift.astype(U) << U(P))
    tiny = sign | U(1)
    huge = sign | ((top - U(1)) if to_max else top)
    out = jnp.where(field >= S((1 << (lay.width - 1 - P)) - 1), huge, jnp.where(field > 0, moved, tiny))
    xu = lax.bitcast_convert_type(x, U) & ~sign
    out = jnp.where((xu == 0) | (xu >= top), lax.bitcast_convert_type(x, U), out)
    return lax.bitcast_convert_type(out, lay.dtype)


def once_per_group(tree):
    """``tree`` (per-group arrays: scales and what is derived from them), computed once.

    XLA's CPU fusion copies the arithmetic of small per-group arrays into the loop over
    the elements that reads them, so an exact scale computation of a hundred integer
    operations would run once per element instead of once per block (NVFP4: 5x slower).
    ``lax.optimization_barrier`` is removed before fusion on CPU; a ``lax.cond`` is not,
    and its result is kept in memory. The predicate is always true (a uint32 shifted
    right by 31 is 0 or 1) but XLA does not evaluate it at compile time; the other
    branch never runs. Under ``vmap`` the cond becomes a select of the same values.
    """
    first = jax.tree_util.tree_leaves(tree)[0]
    if first.size == 0:  # no groups (an empty x): nothing to compute, and no element to read the predicate from
        return tree
    word = lax.bitcast_convert_type(first.ravel()[0].astype(jnp.float32), jnp.uint32)
    return lax.cond((word >> 31) <= 1, lambda t: t, lambda t: jax.tree_util.tree_map(jnp.zeros_like, t), tree)


def scale_parts(scale, extra_exponent=0):
    """``(m, k)`` with ``scale = m * 2**(k - extra_exponent)``, ``m`` in [1, 2), for positive finite scales."""
    k, m = _bits.exponent_and_significand(scale)
    return m, k + jnp.int32(extra_exponent)


def unscale(x, m, k, *, coarse: bool):
    """``x / (m * 2**k)`` (:func:`scale_parts`, broadcasting against ``x``) for the element rounding.

    The correctly rounded IEEE quotient; with ``coarse`` (:func:`is_coarse`) a quotient
    below the normal range is replaced by the smallest subnormal of its sign, and a
    finite one past the largest finite value by that value (the element saturates, as
    it would from the exact quotient). The scale may be subnormal (NVFP4's products).
    """
    lay = layout_of(x.dtype)
    if not coarse:
        scale = _bits.mul_pow2(jnp.asarray(m, x.dtype), k)  # exact: the scale itself
        return _bits.divide(x, jnp.broadcast_to(scale, x.shape))
    xs, K = _prescaled(x, lay)
    # x / m stays normal (x is prescaled) and is correctly rounded on every backend
    # (:func:`numfmt.bitlayout.quotient_nearest`); 2**-k is applied on the bits.
    q = _bits.quotient_nearest(xs, m)
    return _settle(q, x, K + k.astype(lay.sint), lay, to_max=True)


def unscale_pow2(x, k, *, coarse: bool):
    """``x * 2**-k`` for integer ``k`` (broadcasting against ``x``), for the element rounding.

    Exact while normal; below, the smallest subnormal of its sign (``coarse``) or the
    exact product rounded to odd; past the top, the largest finite value.
    """
    lay = layout_of(x.dtype)
    if not coarse:
        return _bits.mul_pow2(x, -jnp.broadcast_to(k, x.shape), "odd")
    xs, K = _prescaled(x, lay)
    return _settle(xs, x, K + k.astype(lay.sint), lay, to_max=True)


def rescale_pow2(v, k, *, exact: bool):
    """``v * 2**k`` for dequantized values: exact when the product is a float of ``v``'s
    dtype (``exact``: known from the formats, e.g. every MX element times an E8M0
    scale), else rounded to nearest even with gradual underflow."""
    lay = layout_of(v.dtype)
    if not exact:
        return _bits.mul_pow2(v, jnp.broadcast_to(k, v.shape), "nearest_even")
    U, S, P = lay.uint, lay.sint, lay.man
    top = _bits.inf_bits(lay)
    u = lax.bitcast_convert_type(v, U)
    sign = u & ~U((1 << (lay.width - 1)) - 1)
    mag = u & ~sign
    field = (mag >> U(P)).astype(S) + k.astype(S)
    normal = u + (k.astype(U) << U(P))
    # Exact below the normal range: the significand shifted right drops only zeros.
    sub = sign | (((mag & U((1 << P) - 1)) | U(1 << P)) >> jnp.clip(1 - field, 0, lay.width - 1).astype(U))
    out = jnp.where(field >= S((1 << (lay.width - 1 - P)) - 1), sign | top, jnp.where(field > 0, normal, sub))
    out = jnp.where((mag == 0) | (mag >= top), u, out)
    return lax.bitcast_convert_type(out, v.dtype)


def rescale(v, scale, *, min_abs: float, scale_floor: float):
    """``v * scale`` correctly rounded with gradual underflow (``scale`` positive and finite, or NaN).

    ``min_abs`` is the smallest non-zero ``|v|`` the element format allows and
    ``scale_floor`` the smallest scale. When their product is normal, so is every
    product, and the float unit computes it; otherwise a ``lax.cond`` on the scales
    alone picks the float unit when the actual scales keep the products normal and
    the exact product of :func:`numfmt.bitlayout.multiply` when they do not.
    """
    lay = layout_of(v.dtype)
    scale = jnp.asarray(scale, v.dtype)
    tiny = float(np.finfo(lay.dtype).tiny)
    if min_abs * scale_floor >= tiny:
        return v * scale

    def exact(v, s):
        bad = jnp.isnan(s)
        out = _bits.multiply(v, jnp.broadcast_to(jnp.where(bad, 1, s), v.shape))
        return jnp.where(bad, jnp.nan, out).astype(v.dtype)

    if min_abs < tiny:  # the element values themselves can be subnormal
        return exact(v, scale)
    # Compared on the bits, and at least the smallest normal: for min_abs > 1 the bound
    # tiny / min_abs is itself subnormal, which a CPU compare would read as 0.
    floor = lay.dtype.type(max(tiny / min_abs, tiny))
    ok = jnp.all((_bits.magnitude_bits(scale, lay) >= _bits.magnitude_bits(floor, lay)) | jnp.isnan(scale))
    return lax.cond(ok, lambda v, s: v * s, exact, v, scale)


def _stand_in(v, lay):
    """``v`` with its subnormals replaced by ``+-1``: a product or quotient with a zero,
    inf or NaN operand is the same for both, and ``+-1`` is not flushed on any backend."""
    mag = _bits.magnitude_bits(v, lay)
    sign = lax.bitcast_convert_type(v, lay.uint) & ~lay.uint((1 << (lay.width - 1)) - 1)
    sub = (mag != 0) & (mag < lay.uint(1 << lay.man))
    return jnp.where(sub, lax.bitcast_convert_type(sign | _one_bits(lay), v.dtype), v)


def _general(op, v, s):
    """``op`` (:func:`numfmt.bitlayout.multiply` or ``divide``) for any floats ``v``, ``s``:
    IEEE's special cases on stand-ins, finite non-zero operands on the bits."""
    v = jnp.asarray(v)
    lay = layout_of(v.dtype)
    s = jnp.broadcast_to(jnp.asarray(s, v.dtype), jnp.broadcast_shapes(v.shape, jnp.shape(s)))
    v = jnp.broadcast_to(v, s.shape)
    U = lay.uint
    top = _bits.inf_bits(lay)
    ms, mv = _bits.magnitude_bits(s, lay), _bits.magnitude_bits(v, lay)
    plain = (ms == 0) | (ms >= top) | (mv == 0) | (mv >= top)
    sign_mask = ~U((1 << (lay.width - 1)) - 1)
    s_neg = lax.bitcast_convert_type(s, U) & sign_mask
    flipped = lax.bitcast_convert_type(lax.bitcast_convert_type(v, U) ^ s_neg, v.dtype)  # the sign of s, moved onto v
    s_abs = lax.bitcast_convert_type(jnp.where(plain, _one_bits(lay), ms), v.dtype)
    exact = op(flipped, s_abs)
    special = (_stand_in(v, lay) * _stand_in(s, lay)) if op is _bits.multiply else (_stand_in(v, lay) / _stand_in(s, lay))
    return jnp.where(plain, special, exact)


def _one_bits(lay):
    """The bits of 1.0 in ``lay``'s type."""
    return lay.uint(lay.bias << lay.man)


def product(v, s):
    """``v * s`` correctly rounded (nearest even) with gradual underflow for any floats,
    the same bits on every backend (IEEE 754 §6.1/§7.2 special cases: ``0 * inf`` is
    NaN). On the bits (:func:`numfmt.bitlayout.multiply`): for small arrays (a
    matmul's output times its scales), not for element loops (:func:`rescale`)."""
    return _general(_bits.multiply, v, s)


def quotient(x, s):
    """``x / s`` correctly rounded (nearest even) with gradual underflow for any floats,
    the same bits on every backend (IEEE 754 special cases: ``x / 0`` is a signed inf,
    ``0 / 0`` NaN). On the bits (:func:`numfmt.bitlayout.divide`)."""
    return _general(_bits.divide, x, s)
