"""The block-scaled presets: OCP Microscaling (MX v1.0) and NVIDIA NVFP4.

Both are :func:`numfmt.scaled.quantize_scaled` with fixed choices: MX uses blocks of
32 with E8M0 (power-of-two) scales and saturating elements (OCP Microscaling Formats
(MX) Specification v1.0, section 6.3); NVFP4 uses blocks of 16 with E4M3 scales and one
FP32 tensor scale (NVIDIA's two-level NVFP4 recipe). See docs/scaled.md.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from numfmt import calibration as _calibration
from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt.bitlayout import check_float_input
from numfmt.formats import FloatFormat, IntFormat
from numfmt.scaled import (
    QArray,
    _layout,
    _quantize_core,
    check_granularity,
    check_scale_rounding,
    choose_scale,
)

__all__ = ["MX_ELEMENTS", "mx_element", "mx_quantize", "nvfp4_quantize"]

MX_ELEMENTS = {
    "mxfp8_e4m3": _formats.E4M3,
    "mxfp8_e5m2": _formats.E5M2,
    "mxfp6_e3m2": _formats.E3M2,
    "mxfp6_e2m3": _formats.E2M3,
    "mxfp4_e2m1": _formats.E2M1,
    "mxfp4": _formats.E2M1,
    "mxint8": _formats.INT8,
}


def mx_element(elem):
    """The element format of an MX name or format; IntFormat elements are fixed point (docs)."""
    if isinstance(elem, str) and elem.strip().lower() in MX_ELEMENTS:
        return MX_ELEMENTS[elem.strip().lower()]
    fmt = _formats.get(elem)
    if isinstance(fmt, FloatFormat) or (isinstance(fmt, IntFormat) and fmt.signed and fmt.bits >= 2):
        return fmt
    raise ValueError(
        f"elem must be an MX element format (OCP MX v1.0: e4m3, e5m2, e3m2, e2m3, e2m1, int8; or another "
        f"float format or signed int format), got {fmt.name}"
    )


def mx_quantize(x, elem, *, axis=-1, block_size=32, scale_rounding="floor", rounding="nearest_even",
                key=None, rbits=None) -> QArray:
    """OCP Microscaling (MX v1.0) quantization: blocks of 32 along ``axis``, E8M0 scales.

    MXFP8 (``"e4m3"``, ``"e5m2"``), MXFP6 (``"e3m2"``, ``"e2m3"``), MXFP4 (``"e2m1"``)
    and MXINT8 (``"int8"`` / ``"mxint8"``). The shared scale is
    ``2**(floor(log2 amax) - emax_elem)`` (the spec's conversion; ``scale_rounding`` picks "ceil" or
    "nearest" instead), clamped to E8M0's range; the elements are ``x / scale`` rounded
    by ``rounding`` and saturated to the element's largest value.

    MXINT8 elements are 8-bit two's complement with an implicit scale of ``2**-6``
    (values ``k / 64``, -2 to 127/64, ``emax_elem = 0``): codes are ``IntFormat`` int8
    codes and ``QArray.elem_scale`` is ``2**-6``. Any signed ``IntFormat`` of ``b`` bits
    is taken the same way, with implicit scale ``2**-(b-2)``.
    """
    x = check_float_input(x)
    fmt = mx_element(elem)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int (the axis blocks run along), got {axis!r}")
    axis, block_size = check_granularity(x.shape, axis, block_size)
    policy = check_scale_rounding(scale_rounding, _formats.E8M0)
    rounding = _rounding.check_rounding(rounding)
    elem_scale = 2.0 ** -(fmt.bits - 2) if isinstance(fmt, IntFormat) else 1.0
    codes, scale, _ = _quantize_core(
        x, None, key, rbits, fmt=fmt, axis=axis, block_size=block_size, scale_fmt=_formats.E8M0,
        symmetric=True, calibration="absmax", rounding=rounding, policy=policy, elem_scale=elem_scale)
    return QArray(codes, scale, None, None, fmt=fmt, scale_fmt=_formats.E8M0, shape=x.shape, dtype=x.dtype,
                  axis=axis, block_size=block_size, elem_scale=elem_scale)


@functools.partial(jax.jit, static_argnames=("axis", "block_size", "rounding"))
def _nvfp4_core(x, key, rbits, *, axis, block_size, rounding):
    work = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    blocked, reduce, user = _layout(x.shape, axis, block_size)
    xb = x.astype(work).reshape(blocked)
    elem, scale_fmt = _formats.E2M1, _formats.E4M3
    c = _calibration.calibrate(xb, elem, "absmax", axis=reduce, keepdims=True)
    amax = jnp.max(c)  # the tensor's absmax: the largest block absmax
    ok = jnp.isfinite(amax) & (amax > 0)
    # The tensor scale maps the tensor's amax to the largest block scale times the
    # largest element (448 * 6), so block scales use E4M3's whole range.
    tensor_scale = jnp.where(ok, jnp.maximum(amax / work(scale_fmt.max * elem.max), 2.0**-126), 1).astype(work)
    scale = choose_scale(c / tensor_scale, elem.max, elem.emax, scale_fmt, "nearest", work)
    y = xb / (scale * tensor_scale)
    codes = _codec.encode(y, elem, rounding, key=key, rbits=rbits, saturate=True)
    return codes.reshape(x.shape), scale.reshape(user), tensor_scale


def nvfp4_quantize(x, *, axis=-1, block_size=16, rounding="nearest_even", key=None, rbits=None) -> QArray:
    """NVIDIA NVFP4: E2M1 elements, blocks of 16 with E4M3 scales, one FP32 tensor scale.

    ``tensor_scale = amax(x) / (448 * 6)``; each block's scale is
    ``amax(block) / (6 * tensor_scale)`` rounded to nearest E4M3 (saturating, at least
    E4M3's smallest subnormal); elements are ``x / (scale * tensor_scale)`` rounded to
    E2M1 and saturated. The value of a code is ``e2m1 * scale * tensor_scale``. As in
    NVIDIA's NVFP4 recipe (the "two-level scaling" of the Blackwell NVFP4 blog and
    Transformer Engine).
    """
    x = check_float_input(x)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int (the axis blocks run along), got {axis!r}")
    axis, block_size = check_granularity(x.shape, axis, block_size)
    rounding = _rounding.check_rounding(rounding)
    codes, scale, tensor_scale = _nvfp4_core(x, key, rbits, axis=axis, block_size=block_size, rounding=rounding)
    return QArray(codes, scale.astype(jnp.float32) if x.dtype != jnp.float64 else scale, None, tensor_scale,
                  fmt=_formats.E2M1, scale_fmt=_formats.E4M3, shape=x.shape, dtype=x.dtype, axis=axis,
                  block_size=block_size)
