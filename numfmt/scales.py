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
    inf_bits,
    layout_of,
    magnitude_bits,
    mul_pow2,
    pow2,
    quotient_normal,
)
from numfmt.formats import FloatFormat
from numfmt.scheme import QuantScheme, is_pow2_format

__all__ = ["at_least", "choose_scale", "clip_range", "in_tensor_units", "positive_finite", "pow2_scale_exponent",
           "quotients_normal", "range_width", "tensor_scale"]

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


def choose_scale(c, scheme: QuantScheme, elem_max: float, elem_emax: int, *, normal=False):
    """Scale values for clip values ``c`` (module doc); a NaN scale where ``c`` is NaN.

    ``normal=True`` promises what :func:`quotients_normal` checks (every quotient here
    has normal operands and a normal result), so the cheaper :func:`quotient_normal`
    gives the same bits as :func:`divide`.
    """
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
        div = quotient_normal if normal else divide
        q = div(c1, jnp.full(c1.shape, elem_max, work), "odd" if coarse else mode)
        s = _codec.quantize(q, scale_fmt, mode, saturate=True)
        s = jnp.where(valid, at_least(s, max(scale_fmt.min_subnormal, float(np.finfo(work).tiny))), 1)
    return jnp.where(jnp.isnan(c), jnp.nan, s).astype(work)


def clip_range(c):
    """``(amax, lo, hi)`` over all groups' clip values ``c``, in one variadic integer reduction:
    the largest magnitude of the non-NaN ones (as a float, for :func:`tensor_scale`), and
    the smallest and largest bits of those that are not NaN or +0 (for
    :func:`quotients_normal`; ``hi == 0`` where there is none). One reduction: XLA's CPU
    backend compiles a lone integer max into materialized bits and a tree of windows."""
    lay = layout_of(c.dtype)
    U = lay.uint
    ones = U((1 << lay.width) - 1)
    b = lax.bitcast_convert_type(c, U)
    nan = jnp.isnan(c)
    skip = nan | (b == U(0))
    mag = jnp.where(nan, U(0), magnitude_bits(c, lay))
    amax, lo, hi = lax.reduce((mag, jnp.where(skip, ones, b), jnp.where(skip, U(0), b)), (U(0), ones, U(0)),
                              _max_min_max, tuple(range(c.ndim)))
    return lax.bitcast_convert_type(amax, c.dtype), lo, hi


def _max_min_max(a, b):
    return jnp.maximum(a[0], b[0]), jnp.minimum(a[1], b[1]), jnp.maximum(a[2], b[2])


def tensor_scale(amax, scheme, elem_max):
    """NVFP4's FP32 tensor scale ``amax / (scale_fmt.max * elem_max)`` from the largest block
    clip value (:func:`clip_range`): correctly rounded, at least ``2**-126``; 1 for an
    all-zero tensor."""
    ok = positive_finite(amax)
    a1 = jnp.where(ok, amax, 1)
    ts = divide(a1, jnp.asarray(scheme.scale_fmt.max * elem_max, amax.dtype))
    return jnp.where(ok, at_least(ts, float(np.finfo(amax.dtype).tiny)), 1).astype(amax.dtype)


def in_tensor_units(c, ts, *, normal=False):
    """The block clip values in the tensor scale's units, ``c / ts`` rounded to odd (so
    that the block scale's rounding into ``scale_fmt`` sees the exact quotient); NaN
    stays NaN. ``normal``: as in :func:`choose_scale`."""
    finite = jnp.where(jnp.isnan(c), 0, c)
    q = quotient_normal(finite, ts, "odd") if normal else divide(finite, jnp.broadcast_to(ts, c.shape), "odd")
    return jnp.where(jnp.isnan(c), jnp.nan, q)


def quotients_normal(lo, hi, ts, scheme, elem_max):
    """Whether every division and product of the scale choice has normal operands and a
    normal result (a traced bool): ``c / ts`` (NVFP4), the quotient by ``elem_max``, and
    ``scale * ts``. Then :func:`choose_scale`, :func:`in_tensor_units` and the scale
    product may take the float unit's results (``normal=True``).

    Decided conservatively from the exponents of the smallest and largest clip value
    (``lo``, ``hi`` of :func:`clip_range`): a clip value that is not NaN, +0 or a
    positive normal float (a negative or infinite given clip, a subnormal absmax) says no.
    """
    dtype = np.dtype(np.float32 if lo.dtype == jnp.uint32 else np.float64)  # the clip values' type
    lay = layout_of(dtype)
    U, S = lay.uint, lay.sint
    info = np.finfo(dtype)
    lowest, highest = info.minexp, info.maxexp  # normal: [2**-126, 2**128) in float32
    e_m = int(np.floor(np.log2(elem_max)))
    if not (-e_m - 1 >= lowest and 1 - e_m <= highest):  # the stand-in clip 1 of empty groups
        return jnp.asarray(False)
    none = hi == U(0)
    ok = (lo >= magnitude_bits(jnp.asarray(info.tiny, dtype), lay)) & (hi < inf_bits(lay))
    e_lo, e_hi = ((v >> U(lay.man)).astype(S) - S(lay.bias) for v in (lo, hi))  # floor(log2) of normals
    # The quotient of [2**e, 2**(e+1)) by [2**f, 2**(f+1)) lies in (2**(e-f-1), 2**(e-f+1));
    # rounded, it stays at or above the lower end (and, rounded to odd, below the upper one,
    # which a rounding up or to nearest can reach). Below, e_hi is an exclusive bound.
    if ts is not None:  # c / ts, then / elem_max
        e_t = exponent_and_significand(ts)[0].astype(S)
        e_lo, e_hi = e_lo - e_t - 1, e_hi - e_t + 1
        ok &= (e_lo >= lowest) & (e_hi <= highest)
        s_lo = min(max(scheme.scale_fmt.min_subnormal, float(info.tiny)), 1.0)
        s_hi = max(scheme.scale_fmt.max, 1.0)
        ok &= (e_t + int(np.floor(np.log2(s_lo))) >= lowest) & (e_t + int(np.floor(np.log2(s_hi))) + 3 <= highest)
    else:
        e_hi = e_hi + 1
    ok &= (e_lo - e_m - 1 >= lowest) & (e_hi - e_m <= highest)
    return none | ok


def range_width(lo, hi):
    """``hi - lo`` for ``lo <= 0 <= hi``, the same on every backend: tiny ranges are
    scaled up by ``2**64`` on the bits before the float subtraction (a subnormal
    operand would read as 0 on CPU), then back."""
    tiny = magnitude_bits(jnp.asarray(2.0**-60, hi.dtype))
    small = (magnitude_bits(hi) < tiny) & (magnitude_bits(lo) < tiny)
    k = jnp.asarray(64, jnp.int32)
    up = mul_pow2(mul_pow2(hi, k) - mul_pow2(lo, k), -k)
    return jnp.where(small, up, hi - lo)
