"""One description of how to quantize: :class:`QuantScheme`, and the MX / NVFP4 schemes.

A scheme says everything about a quantization that is not data: the element format
and its rounding, which values share a scale (``axis``, ``block_size``), the scale's
format and rounding, how the clip value is found (``calibration``), affine or
symmetric, NVIDIA's optional second tensor-level scale, and what a NaN or inf does
to its group. It is frozen and hashable (a static argument of ``jax.jit``) and
checked once, when it is made. :func:`numfmt.quantcore.quantize_with` applies it;
``quantize_scaled``, ``mx_quantize``, ``nvfp4_quantize``, ``fake_quant`` /
``quantize_grad`` and the matmul's ``OperandSpec`` are all built on it.

**One meaning of "channel".** ``axis`` names the axes whose values *share* a scale
(the axes the calibration reduces over). ``axis=None`` is one scale per tensor.
``axis=1`` on a weight ``(out, in)`` gives one scale per output channel (per row),
shared along the input axis, which is what ``x @ w.T`` wants; a matmul operand's
"channel" scale is shared along the contraction axis, one per row of the lhs and
per column of the rhs, the same rule. With ``block_size=B`` (one axis), each run of
``B`` consecutive values along ``axis`` shares a scale.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt.checks import check_bool, check_codebook_rounding, check_int
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat

# SCALE_ROUNDINGS, MX_ELEMENTS and mx_element are defined here and exported by
# numfmt.scaled and numfmt.mx, whose families they belong to.
__all__ = ["CALIBRATIONS", "NONFINITE", "NVFP4", "QuantScheme", "is_pow2_format", "mx_scheme"]

SCALE_ROUNDINGS = ("floor", "ceil", "nearest")
CALIBRATIONS = ("absmax", "percentile", "mse", "kl")
# "propagate": a NaN or inf makes its group's scale NaN, so the whole group reads NaN
# (the OCP MX reference code, microxcaling's mx_ops.py; torchao does the same).
# "ignore": non-finite values are left out of the scale and each element follows the
# codec's special-value rules (numfmt's behaviour before the OCP rule became the default).
NONFINITE = ("propagate", "ignore")


def is_pow2_format(fmt) -> bool:
    """Whether every value of ``fmt`` is a power of two (a float format with no mantissa)."""
    return isinstance(fmt, FloatFormat) and fmt.man_bits == 0


def _axes(axis):
    """``axis`` as None or a tuple of ints (negative allowed: resolved against the array)."""
    if axis is None:
        return None
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    for a in axes:
        check_int(a, "axis")
    if not axes:
        raise ValueError("axis must name at least one axis (use None for all), got ()")
    return tuple(int(a) for a in axes)


@dataclasses.dataclass(frozen=True)
class QuantScheme:
    """How to quantize an array: element format, scales, calibration; frozen and hashable.

    Args:
      fmt: the element format (a format object or a name).
      rounding: the element rounding mode (``"stochastic"`` needs a key at call time).
      rbits: for stochastic rounding, how many random bits decide (None: exact).
      saturate: for an unscaled scheme, whether values past ``fmt.max`` become
        ``±max``; scaled elements always saturate (OCP MX v1.0 §6.3), so a scaled
        scheme needs True.
      scale_fmt: the format scales are rounded into (FP32, BF16, E8M0, E4M3, ...), or
        None for no scale (the element format alone).
      axis: the axes whose values share a scale (module doc); None: the whole tensor.
      block_size: ``B`` consecutive values along the single ``axis`` share a scale.
      scale_rounding: ``"floor"`` (OCP MX), ``"ceil"`` or ``"nearest"``; None picks
        floor for power-of-two scale formats and nearest otherwise.
      calibration: how the clip value of a group is found: a method of
        :func:`numfmt.calibration.calibrate` or a callable with its signature.
      symmetric: False gives affine integers with a zero point (IntFormat only).
      tensor_scale: NVFP4's second level: an FP32 scale for the tensor over the block
        scales, ``amax / (scale_fmt.max * elem_max)`` (block schemes, non-power-of-two
        scale formats).
      elem_scale: an implicit power-of-two factor of the elements (MXINT8's ``2**-6``).
      nonfinite: ``"propagate"`` (default: a NaN or inf in a group makes its scale NaN,
        as the OCP MX reference code does) or ``"ignore"`` (left out of the scale).
    """

    fmt: object
    rounding: str = dataclasses.field(default="nearest_even", kw_only=True)
    rbits: int | None = dataclasses.field(default=None, kw_only=True)
    saturate: bool = dataclasses.field(default=True, kw_only=True)
    scale_fmt: object = dataclasses.field(default=_formats.FP32, kw_only=True)
    axis: object = dataclasses.field(default=None, kw_only=True)
    block_size: int | None = dataclasses.field(default=None, kw_only=True)
    scale_rounding: str | None = dataclasses.field(default=None, kw_only=True)
    calibration: object = dataclasses.field(default="absmax", kw_only=True)
    symmetric: bool = dataclasses.field(default=True, kw_only=True)
    tensor_scale: bool = dataclasses.field(default=False, kw_only=True)
    elem_scale: float = dataclasses.field(default=1.0, kw_only=True)
    nonfinite: str = dataclasses.field(default="propagate", kw_only=True)

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)
        fmt = _formats.get(self.fmt)
        put("fmt", fmt)
        put("rounding", _rounding.check_rounding(self.rounding, fmt))
        if self.rbits is not None:
            put("rbits", check_int(self.rbits, "rbits", 1, 63))
            if self.rounding != "stochastic":
                raise ValueError(f"rbits is only used with rounding='stochastic', got rounding={self.rounding!r}")
        check_codebook_rounding(fmt, self.rounding)
        for name in ("saturate", "symmetric", "tensor_scale"):
            put(name, check_bool(getattr(self, name), name))
        if self.nonfinite not in NONFINITE:
            raise ValueError(f"nonfinite must be one of {NONFINITE}, got {self.nonfinite!r}")
        if self.scale_fmt is None:
            for name, default in (("axis", None), ("block_size", None), ("scale_rounding", None),
                                  ("symmetric", True), ("tensor_scale", False), ("elem_scale", 1.0)):
                if getattr(self, name) != default:
                    raise ValueError(f"{name}={getattr(self, name)!r} needs a scale: pass scale_fmt")
            return
        scale_fmt = _formats.get(self.scale_fmt)
        if not isinstance(scale_fmt, FloatFormat):
            raise TypeError(f"scale_fmt must be a float format (FP32, BF16, E8M0, E4M3, ...), got {scale_fmt.name}")
        put("scale_fmt", scale_fmt)
        put("axis", _axes(self.axis))
        if self.block_size is not None:
            bs = self.block_size
            if isinstance(bs, (bool, np.bool_)) or not isinstance(bs, numbers.Integral):
                raise TypeError(f"block_size must be a positive int or None, got {bs!r}")
            if bs <= 0:
                raise ValueError(f"block_size must be a positive int, got {bs}")
            put("block_size", int(bs))
            if self.axis is None or len(self.axis) != 1:
                raise ValueError(f"block_size needs one axis to run along (axis=int), got axis={self.axis!r}")
        if self.scale_rounding is None:
            put("scale_rounding", "floor" if is_pow2_format(scale_fmt) else "nearest")
        elif self.scale_rounding not in SCALE_ROUNDINGS:
            raise ValueError(f"scale_rounding must be one of {SCALE_ROUNDINGS} or None, got {self.scale_rounding!r}")
        if isinstance(self.calibration, str):
            if self.calibration not in CALIBRATIONS:
                raise ValueError(f"calibration must be one of {CALIBRATIONS}, a callable, a clip value "
                                 f"or a MinMaxState, got {self.calibration!r}")
        elif not callable(self.calibration):
            raise TypeError(f"calibration must be a method name or a callable, got {self.calibration!r}")
        if not self.saturate:
            raise ValueError("scaled elements always saturate (OCP MX v1.0 §6.3): saturate=False needs scale_fmt=None")
        if not getattr(fmt, "has_zero", True) or (not getattr(fmt, "signed", True) and getattr(fmt, "has_nan", False)):
            raise ValueError(
                f"the element format must hold zero and, if unsigned, have no NaN for scaled quantization, got "
                f"{fmt.name}: it would turn every zero or negative value into NaN")
        if not self.symmetric and not isinstance(fmt, IntFormat):
            raise ValueError(f"symmetric=False (a zero point) needs an IntFormat element, got {fmt.name}")
        if self.tensor_scale and (self.block_size is None or not self.symmetric or is_pow2_format(scale_fmt)):
            raise ValueError("tensor_scale (NVFP4's second level) needs a symmetric block scheme whose "
                             "scale format is not a power of two (e.g. E4M3 block scales)")
        e = self.elem_scale
        if not (isinstance(e, (int, float)) and e > 0 and math.frexp(e)[0] == 0.5):
            raise ValueError(f"elem_scale must be a positive power of two, got {e!r}")
        put("elem_scale", float(e))
        if e != 1.0 and not self.symmetric:
            raise ValueError("elem_scale is for symmetric schemes (MX integer elements)")
        if self.nonfinite == "propagate" and not scale_fmt.has_nan:
            raise ValueError(f"nonfinite='propagate' marks a group with a NaN scale, but {scale_fmt.name} "
                             "has no NaN: pass nonfinite='ignore'")

    @property
    def granularity(self) -> str:
        """``"none"`` (no scale), ``"tensor"``, ``"channel"`` or ``"block"``."""
        if self.scale_fmt is None:
            return "none"
        if self.axis is None:
            return "tensor"
        return "block" if self.block_size is not None else "channel"

    @property
    def pow2_scales(self) -> bool:
        """Whether the scales are powers of two (E8M0): then scaling is exact."""
        return is_pow2_format(self.scale_fmt)

    def elem_range(self) -> tuple[float, float]:
        """The element format's largest value (times ``elem_scale``) and floor(log2) of it."""
        fmt = self.fmt
        top = float(fmt.max)
        emax = fmt.emax if isinstance(fmt, FloatFormat) else math.frexp(top)[1] - 1
        return top * self.elem_scale, emax + math.frexp(self.elem_scale)[1] - 1

    def min_step(self) -> float:
        """The smallest positive element value (before ``elem_scale``): the finest grid step."""
        fmt = self.fmt
        if isinstance(fmt, FloatFormat):
            return fmt.min_subnormal if fmt.subnormals else fmt.min_normal
        if isinstance(fmt, IntFormat):
            return 1.0
        if isinstance(fmt, CodebookFormat):
            return min(abs(v) for v in fmt.table if v != 0)
        return float(fmt.min_subnormal)  # other formats (logarithmic): their smallest positive value


# ---- the OCP MX and NVFP4 schemes -----------------------------------------------------------

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
    """The element format of an MX name or format; IntFormat elements are fixed point (docs/scaled.md)."""
    if isinstance(elem, str) and elem.strip().lower() in MX_ELEMENTS:
        return MX_ELEMENTS[elem.strip().lower()]
    fmt = _formats.get(elem)
    if (isinstance(fmt, FloatFormat) and fmt.signed and fmt.has_zero) or (
            isinstance(fmt, IntFormat) and fmt.signed and fmt.bits >= 2):
        return fmt
    raise ValueError(
        f"elem must be an MX element format (OCP MX v1.0: e4m3, e5m2, e3m2, e2m3, e2m1, int8; or another "
        f"signed float format or signed int format), got {fmt.name}"
    )


def mx_scheme(elem, *, axis=-1, block_size=32, scale_rounding="floor", rounding="nearest_even", rbits=None,
              nonfinite="propagate") -> QuantScheme:
    """The OCP MX v1.0 scheme of an element format: blocks of 32, E8M0 scales, the floor rule.

    A signed ``IntFormat`` of ``b`` bits is a fixed-point element with the implicit
    scale ``2**-(b-2)`` (MXINT8: ``2**-6``).
    """
    fmt = mx_element(elem)
    elem_scale = 2.0 ** -(fmt.bits - 2) if isinstance(fmt, IntFormat) else 1.0
    return QuantScheme(fmt, rounding=rounding, rbits=rbits, scale_fmt=_formats.E8M0, axis=axis,
                       block_size=block_size, scale_rounding=scale_rounding, elem_scale=elem_scale,
                       nonfinite=nonfinite)


MXFP8_E4M3 = mx_scheme("e4m3")
MXFP8_E5M2 = mx_scheme("e5m2")
MXFP6_E3M2 = mx_scheme("e3m2")
MXFP6_E2M3 = mx_scheme("e2m3")
MXFP4 = mx_scheme("e2m1")
MXINT8 = mx_scheme("int8")
# NVIDIA NVFP4: E2M1 elements, blocks of 16 with E4M3 scales (nearest), one FP32 tensor scale.
NVFP4 = QuantScheme(_formats.E2M1, scale_fmt=_formats.E4M3, axis=-1, block_size=16, scale_rounding="nearest",
                    tensor_scale=True)
