"""How a group's scale is chosen from its clip value: the rules of docs/scaled.md, computed as written.

The scale of a group is computed from its calibrated clip value ``c``
(:mod:`numfmt.calibration`) and rounded into ``scale_fmt``:

* power-of-two scale formats (no mantissa bits, e.g. E8M0) take the exponent from the
  bits of ``c`` with integer operations (never ``log2``), by ``scale_rounding``:

  - ``"floor"``: the OCP MX v1.0 conversion rule: ``2**(floor(log2 c) - emax_elem)``;
    values in ``(max_elem, 2**(emax_elem+1))`` times the scale clip to ``max_elem``;
  - ``"ceil"``: the smallest power of two ``>= c / max_elem``, so nothing clips (the
    round-toward-infinity scale of Mishra et al., "Recipes for pre-training LLMs with
    MXFP8", arXiv 2506.08027, NVIDIA's MXFP8 recipe);
  - ``"nearest"``: the power of two nearest to ``c / max_elem`` (ties to the even code);

  the exponent is clamped to the scale format's range (E8M0: ``2**-127 .. 2**127``).
* other scale formats (FP32, BF16, E4M3, ...) round the exact quotient ``c / max_elem``
  once into the format: ``"nearest"`` (nearest even, the default), ``"ceil"`` (up) or
  ``"floor"`` (down), saturating, and at least ``max(min_subnormal, 2**-126)``.

A group whose clip value is zero gets the smallest scale of a power-of-two format (as
the OCP reference code and gfloat do) or 1.0 otherwise. A group holding a NaN or inf
gets a NaN scale (``nonfinite="propagate"``, the OCP MX reference), or is quantized as if
it were absent (``nonfinite="ignore"``). Elements always saturate (OCP MX: "elements
saturate"). Scale application is exact and the same on every backend
(:mod:`numfmt.scalemath`).

Every division here is the defined one, correctly rounded (XLA would multiply by a
reciprocal), and every comparison reads the bits (XLA's CPU backend flushes subnormal
operands of float compares to zero).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import codec as _codec
from numfmt.bitlayout import (
    divide,
    exponent_and_significand,
    layout_of,
    magnitude_bits,
    mul_pow2,
    pow2,
)
from numfmt.formats import FloatFormat
from numfmt.scheme import QuantScheme, is_pow2_format

__all__ = ["at_least", "choose_scale", "positive_finite", "pow2_scale_exponent", "range_width", "tensor_scale"]

_DIRECTED = {"floor": "down", "ceil": "up", "nearest": "nearest_even"}


def pow2_scale_exponent(c, elem_max: float, elem_emax: int, policy: str, scale_fmt: FloatFormat):
    """The exponent ``e`` of the power-of-two scale for clip values ``c > 0`` (module doc)."""
    e_c, sig = exponent_and_significand(c)
    max_sig = elem_max / 2.0**elem_emax  # in [1, 2): exact for every element format
    e0 = e_c - elem_emax  # the OCP floor rule
    if policy == "floor":
        return e0
    if policy == "ceil":
        return e0 + (sig > max_sig).astype(jnp.int32)
    # c / max_elem = (sig / max_sig) * 2**e0 with sig / max_sig in (1/2, 2): its
    # powers of two neighbours are (e0 - 1, e0) or (e0, e0 + 1), midpoints at 3/4, 3/2.
    below = sig < max_sig
    e_lo = jnp.where(below, e0 - 1, e0)
    mid = jnp.where(below, 0.75 * max_sig, 1.5 * max_sig).astype(sig.dtype)
    odd_lo = ((e_lo + scale_fmt.bias) & 1) == 1  # tie: the even code wins
    return jnp.where(sig > mid, e_lo + 1, jnp.where(sig < mid, e_lo, e_lo + odd_lo.astype(jnp.int32)))


def positive_finite(c):
    """``0 < c < inf``, read from the bits (a float compare flushes subnormal ``c`` on CPU)."""
    lay = layout_of(c.dtype)
    b = lax.bitcast_convert_type(c, lay.uint)
    return (b > 0) & (b < (magnitude_bits(jnp.asarray(jnp.inf, c.dtype), lay)))


def at_least(s, floor: float):
    """``max(s, floor)`` for ``s >= 0``, compared on the bits."""
    f = jnp.asarray(floor, s.dtype)
    return jnp.where(magnitude_bits(s) < magnitude_bits(f), f, s)


def choose_scale(c, scheme: QuantScheme, elem_max: float, elem_emax: int):
    """Scale values for clip values ``c`` (module doc); a NaN scale where ``c`` is NaN."""
    work = c.dtype
    valid = positive_finite(c)
    c1 = jnp.where(valid, c, 1).astype(work)
    scale_fmt, policy = scheme.scale_fmt, scheme.scale_rounding
    if is_pow2_format(scale_fmt):
        e = jnp.clip(pow2_scale_exponent(c1, elem_max, elem_emax, policy, scale_fmt), scale_fmt.emin, scale_fmt.emax)
        s = pow2(jnp.where(valid, e, scale_fmt.emin), work)
    else:
        # c / max_elem rounded once into scale_fmt: a quotient rounded to odd keeps the
        # exact quotient's rounding for formats two bits coarser than the work type.
        lay = layout_of(work)
        coarse = scale_fmt.man_bits <= lay.man - 2 and scale_fmt.min_subnormal >= 4 * float(np.finfo(work).smallest_subnormal)
        mode = _DIRECTED[policy]
        q = divide(c1, jnp.full(c1.shape, elem_max, work), "odd" if coarse else mode)
        s = _codec.quantize(q, scale_fmt, mode, saturate=True)
        s = jnp.where(valid, at_least(s, max(scale_fmt.min_subnormal, float(np.finfo(work).tiny))), 1)
    return jnp.where(jnp.isnan(c), jnp.nan, s).astype(work)


def tensor_scale(c, scheme, elem_max):
    """NVFP4's FP32 tensor scale ``amax / (scale_fmt.max * elem_max)`` (correctly rounded,
    at least ``2**-126``; 1 for an all-zero tensor) from the block clip values, and the
    block clip values in its units (``c / tensor_scale``, rounded to odd so that the
    block scale's rounding into ``scale_fmt`` sees the exact quotient)."""
    lay = layout_of(c.dtype)
    finite = jnp.where(jnp.isnan(c), 0, c)
    amax = lax.bitcast_convert_type(jnp.max(magnitude_bits(finite, lay)), c.dtype)
    ok = positive_finite(amax)
    a1 = jnp.where(ok, amax, 1)
    ts = divide(a1, jnp.asarray(scheme.scale_fmt.max * elem_max, c.dtype))
    ts = jnp.where(ok, at_least(ts, float(np.finfo(c.dtype).tiny)), 1).astype(c.dtype)
    return ts, jnp.where(jnp.isnan(c), jnp.nan, divide(finite, jnp.broadcast_to(ts, c.shape), "odd"))


def range_width(lo, hi):
    """``hi - lo`` for ``lo <= 0 <= hi``, the same on every backend: tiny ranges are
    scaled up by ``2**64`` on the bits before the float subtraction (a subnormal
    operand would read as 0 on CPU), then back."""
    tiny = magnitude_bits(jnp.asarray(2.0**-60, hi.dtype))
    small = (magnitude_bits(hi) < tiny) & (magnitude_bits(lo) < tiny)
    k = jnp.asarray(64, jnp.int32)
    up = mul_pow2(mul_pow2(hi, k) - mul_pow2(lo, k), -k)
    return jnp.where(small, up, hi - lo)
