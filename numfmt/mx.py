"""The block-scaled presets: OCP Microscaling (MX v1.0) and NVIDIA NVFP4.

Both are schemes (:mod:`numfmt.scheme`) applied by :func:`numfmt.quantcore.quantize_with`,
not code paths of their own: MX uses blocks of 32 with E8M0 (power-of-two) scales and
saturating elements (OCP Microscaling Formats (MX) Specification v1.0, section 6.3);
NVFP4 uses blocks of 16 with E4M3 scales and one FP32 tensor scale (NVIDIA's two-level
NVFP4 recipe). See docs/scaled.md.
"""

from __future__ import annotations

import dataclasses

from numfmt.checks import check_int
from numfmt.scaled import QArray, quantize_array
from numfmt.scheme import MX_ELEMENTS, NVFP4, mx_element, mx_scheme

__all__ = ["MX_ELEMENTS", "mx_element", "mx_quantize", "nvfp4_quantize"]


def mx_quantize(x, elem, *, axis=-1, block_size=32, scale_rounding="floor", rounding="nearest_even",
                key=None, rbits=None, nonfinite="propagate") -> QArray:
    """OCP Microscaling (MX v1.0) quantization: blocks of 32 along ``axis``, E8M0 scales.

    MXFP8 (``"e4m3"``, ``"e5m2"``), MXFP6 (``"e3m2"``, ``"e2m3"``), MXFP4 (``"e2m1"``)
    and MXINT8 (``"int8"`` / ``"mxint8"``). The shared scale is
    ``2**(floor(log2 amax) - emax_elem)`` (the spec's conversion; ``scale_rounding`` picks
    ``"ceil"`` or ``"nearest"`` instead), clamped to E8M0's range; the elements are
    ``x / scale`` rounded by ``rounding`` (``key`` / ``rbits`` for ``"stochastic"``) and
    saturated to the element's largest value. A block holding a NaN or inf gets a NaN
    scale, so it reads NaN throughout, as the OCP reference code (microxcaling) does;
    ``nonfinite="ignore"`` leaves non-finite values out of the scale instead.

    MXINT8 elements are 8-bit two's complement with an implicit scale of ``2**-6``
    (values ``k / 64``, -2 to 127/64, ``emax_elem = 0``): codes are ``IntFormat`` int8
    codes and ``QArray.elem_scale`` is ``2**-6``. Any signed ``IntFormat`` of ``b`` bits
    is taken the same way, with implicit scale ``2**-(b-2)``.
    """
    check_int(axis, "axis")
    scheme = mx_scheme(elem, axis=axis, block_size=block_size, scale_rounding=scale_rounding, rounding=rounding,
                       rbits=rbits, nonfinite=nonfinite)
    return quantize_array(x, scheme, key=key)


def nvfp4_quantize(x, *, axis=-1, block_size=16, rounding="nearest_even", key=None, rbits=None,
                   nonfinite="propagate") -> QArray:
    """NVIDIA NVFP4: E2M1 elements, blocks of 16 with E4M3 scales, one FP32 tensor scale.

    ``tensor_scale = amax(x) / (448 * 6)``, correctly rounded (at least ``2**-126``);
    each block's scale is ``amax(block) / (6 * tensor_scale)`` rounded once to the
    nearest E4M3 value (saturating, at least E4M3's smallest subnormal); elements are
    ``x / (scale * tensor_scale)`` (the float32 product, then the correctly rounded
    quotient) rounded to E2M1 and saturated. The value of a code is
    ``e2m1 * scale * tensor_scale``. As in NVIDIA's NVFP4 recipe (the "two-level
    scaling" of the Blackwell NVFP4 blog and Transformer Engine). A block holding a NaN
    or inf gets a NaN scale (``nonfinite="ignore"``: left out) and the tensor scale
    comes from the other blocks.
    """
    check_int(axis, "axis")
    scheme = dataclasses.replace(NVFP4, axis=axis, block_size=block_size, rounding=rounding, rbits=rbits,
                                 nonfinite=nonfinite)
    return quantize_array(x, scheme, key=key)
