"""Scaled and block quantization: the core :func:`quantize_with`, :class:`QArray`, :func:`quantize_scaled`.

Everything about a quantization that is not data is a :class:`~numfmt.scheme.QuantScheme`;
:func:`quantize_with` applies one, and every quantizer of numfmt above the codec
(``quantize_scaled``, ``mx_quantize``, ``nvfp4_quantize``, ``fake_quant``,
``quantize_grad``, the matmul operands) calls it. The value of a code is
``decode(code) * elem_scale * scale * tensor_scale``, or ``(decode(code) - zero_point) * scale``
for affine integers; :func:`dequantize_values` is the one place it is computed.

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
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import calibration as _calibration
from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import packing as _packing
from numfmt import scalemath as _sm
from numfmt.bitlayout import (
    check_float_input,
    divide,
    exponent_and_significand,
    layout_of,
    magnitude_bits,
    mul_pow2,
    multiply,
    pow2,
)
from numfmt.checks import check_bool, normalize_axes
from numfmt.formats import FloatFormat, IntFormat
from numfmt.scheme import QuantScheme, is_pow2_format

__all__ = ["QArray", "Quantized", "dequantize", "dequantize_values", "quantize_array", "quantize_scaled", "quantize_with",
           "resolve_axes", "scale_layout"]

_DIRECTED = {"floor": "down", "ceil": "up", "nearest": "nearest_even"}


# ---- power-of-two scales from the bits -----------------------------------------------------------


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


def _positive_finite(c):
    """``0 < c < inf``, read from the bits (a float compare flushes subnormal ``c`` on CPU)."""
    lay = layout_of(c.dtype)
    b = lax.bitcast_convert_type(c, lay.uint)
    return (b > 0) & (b < (magnitude_bits(jnp.asarray(jnp.inf, c.dtype), lay)))


def _at_least(s, floor: float):
    """``max(s, floor)`` for ``s >= 0``, compared on the bits."""
    f = jnp.asarray(floor, s.dtype)
    return jnp.where(magnitude_bits(s) < magnitude_bits(f), f, s)


def choose_scale(c, scheme: QuantScheme, elem_max: float, elem_emax: int):
    """Scale values for clip values ``c`` (module doc); a NaN scale where ``c`` is NaN."""
    work = c.dtype
    valid = _positive_finite(c)
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
        s = jnp.where(valid, _at_least(s, max(scale_fmt.min_subnormal, float(np.finfo(work).tiny))), 1)
    return jnp.where(jnp.isnan(c), jnp.nan, s).astype(work)


# ---- layouts: which values share a scale -----------------------------------------------------------


@functools.cache
def _layout(shape, axis, block_size):
    """(blocked shape, reduced axes of it, scale shape (QArray's), scale shape in the blocked layout)."""
    ndim = len(shape)
    if block_size is not None:
        (a,) = axis
        blocked = shape[:a] + (shape[a] // block_size, block_size) + shape[a + 1 :]
        user = shape[:a] + (shape[a] // block_size,) + shape[a + 1 :]
        return blocked, (a + 1,), user, user[: a + 1] + (1,) + user[a + 1 :]
    if axis is None:
        return shape, tuple(range(ndim)), (), (1,) * ndim
    user = tuple(1 if i in axis else d for i, d in enumerate(shape))
    return shape, axis, user, user


def scale_layout(shape, axis, block_size):
    """``(blocked shape, scale shape in it)`` for normalized ``axis`` / ``block_size``:
    ``x.reshape(blocked)`` and the scales reshaped to the second broadcast together."""
    blocked, _, _, keep = _layout(tuple(shape), axis, block_size)
    return blocked, keep


def resolve_axes(scheme: QuantScheme, shape):
    """``(axis, block_size)`` of ``scheme`` for an array of ``shape``: normalized and checked.

    Raises a ValueError naming the argument for axes out of range and for a block size
    that does not divide its axis (numfmt rejects partial blocks).
    """
    axis = normalize_axes(scheme.axis, len(shape))
    bs = scheme.block_size
    if bs is not None:
        n = shape[axis[0]]
        if n % bs:
            raise ValueError(
                f"block_size={bs} does not divide axis {axis[0]} of length {n}: numfmt rejects "
                f"partial blocks; pad that axis to a multiple of {bs} (e.g. with jnp.pad)")
    return axis, bs


# ---- the core ----------------------------------------------------------------------------------


class Quantized(NamedTuple):
    """What :func:`quantize_with` returns (fields not asked for are None).

    ``codes``: codes of the element format, ``x``'s shape. ``elems``: the element
    values (``decode(codes)``) in the work dtype (float32, or float64 for float64
    input). ``values``: the dequantized values, work dtype. ``scale``: the scales,
    QArray's layout (module doc). ``zero_point``: int32, like ``scale``, or None.
    ``tensor_scale``: NVFP4's scalar, or None.
    """

    codes: Any
    elems: Any
    values: Any
    scale: Any
    zero_point: Any
    tensor_scale: Any


def _given_clip(clip, user, keep, axis):
    """A given clip value (``c`` or ``(lo, hi)``) in the blocked scale layout.

    Takes the scale's shape or anything broadcasting to it, and the shape without the
    shared axes (what ``calibrate(..., keepdims=False)`` returns).
    """
    squeezed = tuple(d for i, d in enumerate(user) if axis is None or i not in axis) if user else ()

    def one(c):
        c = jnp.asarray(c)
        if axis is not None and c.ndim and c.shape == squeezed and c.shape != user:
            c = jnp.expand_dims(c, axis)
        try:
            return jnp.broadcast_to(c, user).reshape(keep)
        except ValueError:
            raise ValueError(f"calibration: a clip value of shape {c.shape} does not broadcast to the scale's "
                             f"shape {user} (nor is it that shape without the shared axes, {squeezed})") from None

    return one(clip) if not isinstance(clip, tuple) else tuple(one(c) for c in clip)


def _calibrated(xb, scheme, clip, reduce, user, keep, axis):
    """``(c or (lo, hi), poisoned)`` per group, in the blocked scale layout."""
    propagate = scheme.nonfinite == "propagate"
    sym = scheme.symmetric
    if clip is not None:
        c = _given_clip(clip, user, keep, axis)
        c = tuple(v.astype(xb.dtype) for v in c) if isinstance(c, tuple) else c.astype(xb.dtype)
        parts = c if isinstance(c, tuple) else (c,)
        bad = functools.reduce(jnp.logical_or, [jnp.isnan(v) | jnp.isinf(v) for v in parts])
        if sym:
            bad = bad | (lax.bitcast_convert_type(c, layout_of(xb.dtype).sint) < 0)  # a negative clip
    elif scheme.calibration == "absmax" and sym:
        c = _calibration.group_absmax(xb, reduce, True, finite=not propagate)
        bad = ~jnp.isfinite(c) if propagate else jnp.zeros(c.shape, bool)
        return c, bad
    elif scheme.calibration == "absmax":
        c = _calibration.finite_range(xb, reduce, True)
        bad = jnp.zeros(keep, bool)
    else:
        f = scheme.calibration if callable(scheme.calibration) else functools.partial(
            _calibration.calibrate, method=scheme.calibration)
        c = f(xb, scheme.fmt, axis=reduce, keepdims=True, symmetric=sym)
        bad = jnp.zeros(keep, bool)
    if propagate:
        bad = bad | ~jnp.isfinite(_calibration.group_absmax(xb, reduce, True, finite=False))
    return c, bad


def _range_width(lo, hi):
    """``hi - lo`` for ``lo <= 0 <= hi``, the same on every backend: tiny ranges are
    scaled up by ``2**64`` on the bits before the float subtraction (a subnormal
    operand would read as 0 on CPU), then back."""
    tiny = magnitude_bits(jnp.asarray(2.0**-60, hi.dtype))
    small = (magnitude_bits(hi) < tiny) & (magnitude_bits(lo) < tiny)
    k = jnp.asarray(64, jnp.int32)
    up = mul_pow2(mul_pow2(hi, k) - mul_pow2(lo, k), -k)
    return jnp.where(small, up, hi - lo)


def quantize_with(x, scheme: QuantScheme, *, clip=None, scale=None, key=None,
                  codes=True, elems=False, values=False) -> Quantized:
    """Quantize ``x`` by ``scheme``: the one core of every quantizer above the codec.

    Args:
      x: a float array (float16, bfloat16 and float32 work in float32, float64 in
        float64). Not checked here: call it inside ``jit`` with arguments checked at
        the boundary.
      scheme: a :class:`~numfmt.scheme.QuantScheme` (static).
      clip: optional given clip values: ``c`` (symmetric) or ``(lo, hi)`` (affine),
        broadcasting to the scale's shape; they replace the calibration.
      scale: for an unscaled scheme, an optional explicit scale (values are
        ``quantize(x / scale) * scale``); NaN results where it is not positive and finite.
      key: a ``jax.random`` key for stochastic rounding.
      codes, elems, values: which of codes, element values and dequantized values to
        compute (the others are None; asking for what is not used costs nothing).

    Returns:
      a :class:`Quantized`.
    """
    work = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    axis, bs = resolve_axes(scheme, x.shape) if scheme.scale_fmt is not None else (None, None)
    blocked, reduce, user, keep = _layout(x.shape, axis, bs)
    xb = x.astype(work).reshape(blocked)
    fmt = scheme.fmt
    coarse = _sm.is_coarse(scheme.min_step(), work)
    rnd = {"rounding": scheme.rounding, "key": key if scheme.rounding == "stochastic" else None, "rbits": scheme.rbits}
    s = zp = ts = None
    if scheme.scale_fmt is None:
        y = xb
        if scale is not None:
            s = jnp.asarray(scale, work)
            s = jnp.where(_positive_finite(s), s, jnp.nan)
            y = _sm.unscale(xb, *_sm.scale_parts(jnp.where(jnp.isnan(s), 1, s)), coarse=coarse)
            y = jnp.where(jnp.isnan(s), jnp.nan, y)
        sat = scheme.saturate
    elif scheme.symmetric:
        c, bad = _calibrated(xb, scheme, clip, reduce, user, keep, axis)
        c = jnp.where(bad, jnp.nan if scheme.nonfinite == "propagate" else 0, c)
        elem_max, elem_emax = scheme.elem_range()
        if scheme.tensor_scale:
            ts, c = _tensor_scale(c, scheme, elem_max)
        s = choose_scale(c, scheme, elem_max, elem_emax)
        s, ts, divisor = _sm.once_per_group((s, ts, _divisor(s, ts, scheme)))
        y = _unscaled(xb, divisor, coarse)
        sat = True
    else:
        (lo, hi), bad = _calibrated(xb, scheme, clip, reduce, user, keep, axis)
        lo = jnp.broadcast_to(jnp.minimum(lo, 0), keep).astype(work)
        hi = jnp.broadcast_to(jnp.maximum(hi, 0), keep).astype(work)
        qmin, qmax = fmt.min, fmt.max
        levels = float(qmax - qmin)
        width = jnp.where(bad, jnp.nan if scheme.nonfinite == "propagate" else 0, _range_width(lo, hi))
        s = choose_scale(width, scheme, levels, math.frexp(levels)[1] - 1)
        s1 = jnp.where(bad, 1, s)
        zp = jnp.clip(qmin - jnp.round(divide(lo, s1)), qmin, qmax)
        s, zp, divisor = _sm.once_per_group((s, zp, _sm.scale_parts(s1)))
        # Round x / s first and add the zero point after: adding first would move ties.
        r = _codec.quantize(_sm.unscale(xb, *divisor, coarse=True), _formats.INT32, **rnd)
        e = jnp.clip(r + zp, qmin, qmax)
        out_codes = _codec.encode(e, fmt).reshape(x.shape) if codes else None
        ev = e.reshape(x.shape) if elems or values else None
        vals = dequantize_values(e, s, zp, None, scheme, blocked, keep).reshape(x.shape) if values else None
        zp = jnp.where(bad, 0, zp).astype(jnp.int32).reshape(user)
        return Quantized(out_codes, ev, vals, s.reshape(user), zp, None)
    y = y if scheme.scale_fmt is None else jnp.where(jnp.isnan(s), jnp.nan, y)
    out_codes = _codec.encode(y, fmt, saturate=sat, **rnd) if codes else None
    if elems or values:
        ev = _codec.decode(out_codes, fmt, work) if codes else _codec.quantize(y, fmt, saturate=sat, **rnd)
    if values:
        vals = ev if s is None else dequantize_values(ev, s, None, ts, scheme, blocked, keep)
    reshape = lambda a: None if a is None else a.reshape(x.shape)
    s = s if s is None or scheme.scale_fmt is None else s.reshape(user)
    return Quantized(reshape(out_codes), reshape(ev) if elems else None, reshape(vals) if values else None, s, None, ts)


def _tensor_scale(c, scheme, elem_max):
    """NVFP4's FP32 tensor scale ``amax / (scale_fmt.max * elem_max)`` (correctly rounded,
    at least ``2**-126``; 1 for an all-zero tensor) from the block clip values, and the
    block clip values in its units (``c / tensor_scale``, rounded to odd so that the
    block scale's rounding into ``scale_fmt`` sees the exact quotient)."""
    lay = layout_of(c.dtype)
    finite = jnp.where(jnp.isnan(c), 0, c)
    amax = lax.bitcast_convert_type(jnp.max(magnitude_bits(finite, lay)), c.dtype)
    ok = _positive_finite(amax)
    a1 = jnp.where(ok, amax, 1)
    ts = divide(a1, jnp.asarray(scheme.scale_fmt.max * elem_max, c.dtype))
    ts = jnp.where(ok, _at_least(ts, float(np.finfo(c.dtype).tiny)), 1).astype(c.dtype)
    return ts, jnp.where(jnp.isnan(c), jnp.nan, divide(finite, jnp.broadcast_to(ts, c.shape), "odd"))


def _divisor(s, ts, scheme):
    """Per group: what the element loop divides by, ``scale * elem_scale * tensor_scale``:
    ``(k,)`` for power-of-two scales (``x * 2**-k``), else ``(m, k)`` (:func:`numfmt.scalemath.scale_parts`)."""
    s1 = jnp.where(jnp.isnan(s), 1, s)
    log2_elem = math.frexp(scheme.elem_scale)[1] - 1
    if scheme.pow2_scales:
        return (exponent_and_significand(s1)[0] + log2_elem,)
    if ts is not None:
        s1 = multiply(s1, jnp.broadcast_to(ts, s1.shape))  # the float32 product, as NVIDIA's recipe forms it
    return _sm.scale_parts(s1, log2_elem)


def _unscaled(xb, divisor, coarse):
    """``x`` over the :func:`_divisor` for the element rounding (:mod:`numfmt.scalemath`)."""
    if len(divisor) == 1:
        return _sm.unscale_pow2(xb, divisor[0], coarse=coarse)
    return _sm.unscale(xb, *divisor, coarse=coarse)


def dequantize_values(ev, scale, zero_point, tensor_scale, scheme: QuantScheme, blocked, keep):
    """The values of element values ``ev`` (work dtype) in the ``blocked`` layout, scales in ``keep``'s.

    The one dequantization: QArray's, fake quantization's and the matmul operands'.

    ``(ev - zero_point) * scale`` or ``ev * elem_scale * scale * tensor_scale``, each
    product correctly rounded in the work dtype (:mod:`numfmt.scalemath`).
    """
    work = ev.dtype
    ev = ev.reshape(blocked)
    if scheme.scale_fmt is None:
        s = jnp.asarray(scale, work)
        return _sm.rescale(ev, jnp.where(jnp.isnan(s), jnp.nan, s), min_abs=scheme.min_step(), scale_floor=0.0)
    s = jnp.asarray(scale, work).reshape(keep)
    bad = jnp.isnan(s)
    floor = max(scheme.scale_fmt.min_subnormal, float(np.finfo(work).tiny))
    if zero_point is not None:
        ev = ev - jnp.asarray(zero_point).astype(work).reshape(keep)
        return _sm.rescale(ev, s, min_abs=1.0, scale_floor=floor)
    m = scheme.min_step() * scheme.elem_scale
    if scheme.pow2_scales:
        k = exponent_and_significand(jnp.where(bad, 1, s))[0] + (math.frexp(scheme.elem_scale)[1] - 1)
        exact = (isinstance(scheme.fmt, (FloatFormat, IntFormat)) and m >= float(np.finfo(work).tiny)
                 and m * 2.0**scheme.scale_fmt.emin >= float(np.finfo(work).smallest_subnormal))
        v = _sm.rescale_pow2(ev, k, exact=exact)
        return jnp.where(bad, jnp.nan, v)
    if scheme.elem_scale != 1.0:
        ev = _sm.rescale_pow2(ev, jnp.asarray(math.frexp(scheme.elem_scale)[1] - 1, jnp.int32), exact=False)
    v = _sm.rescale(ev, s, min_abs=m, scale_floor=floor)
    if tensor_scale is not None:
        v = _sm.rescale(v, tensor_scale, min_abs=m * floor, scale_floor=float(np.finfo(work).tiny))
    return v


# ---- QArray ------------------------------------------------------------------------------------


@jax.tree_util.register_pytree_node_class
class QArray:
    """A quantized array: element codes with their scales, a JAX pytree.

    Children (arrays): ``codes`` (unsigned codes of ``fmt``, the original shape),
    ``scale`` (float32 values of ``scale_fmt``: shape ``()`` per tensor, size 1 on the
    shared axes per channel, the axis length divided by ``block_size`` per block),
    ``zero_point`` (int32, like ``scale``, or None) and ``tensor_scale`` (a float32
    scalar, NVFP4's second level, or None). Static aux data: the
    :class:`~numfmt.scheme.QuantScheme` (axes normalized), ``shape`` and ``dtype``;
    ``fmt``, ``scale_fmt``, ``axis``, ``block_size`` and ``elem_scale`` read from it.
    """

    def __init__(self, codes, scale, zero_point=None, tensor_scale=None, *, scheme: QuantScheme, shape, dtype):
        self.codes = codes
        self.scale = scale
        self.zero_point = zero_point
        self.tensor_scale = tensor_scale
        self.scheme = scheme
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    def tree_flatten(self):
        return (self.codes, self.scale, self.zero_point, self.tensor_scale), (self.scheme, self.shape, self.dtype)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)  # no checks: transformations put non-arrays in the leaves
        obj.codes, obj.scale, obj.zero_point, obj.tensor_scale = children
        obj.scheme, obj.shape, obj.dtype = aux
        return obj

    fmt = property(lambda self: self.scheme.fmt, doc="The element format.")
    scale_fmt = property(lambda self: self.scheme.scale_fmt, doc="The scales' format.")
    axis = property(lambda self: self.scheme.axis, doc="The shared axes (None: per tensor).")
    block_size = property(lambda self: self.scheme.block_size, doc="The block size, or None.")
    elem_scale = property(lambda self: self.scheme.elem_scale, doc="The implicit element factor (MXINT8: 2**-6).")

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def num_scales(self) -> int:
        return math.prod(_layout(self.shape, self.axis, self.block_size)[2])

    @property
    def nbytes(self) -> int:
        """Storage in bytes: packed codes + packed scales + zero points (+ 4 for a tensor scale)."""
        n = _packing.packed_nbytes(self.size, self.fmt.bits)
        n += _packing.packed_nbytes(self.num_scales, self.scale_fmt.bits)
        if self.zero_point is not None:
            n += _packing.packed_nbytes(self.num_scales, self.fmt.bits)
        if self.tensor_scale is not None:
            n += 4
        return n

    @property
    def bits_per_value(self) -> float:
        """Average storage bits per element, scales included (MXFP4: 4.25)."""
        return 8 * self.nbytes / max(self.size, 1)

    @property
    def scale_codes(self):
        """The scales as codes of ``scale_fmt`` (the bits a file or a kernel stores; NaN: its NaN code)."""
        return _codec.encode(self.scale, self.scale_fmt)

    def packed_codes(self):
        """The element codes packed into bytes (:func:`numfmt.packing.pack`)."""
        return _packing.pack(self.codes, self.fmt.bits)

    def dequantize(self, dtype=None):
        """The values this array stands for, as ``dtype`` (default: the original dtype)."""
        return dequantize(self, dtype)

    def __repr__(self):
        gran = "per-tensor" if self.axis is None else (
            f"block {self.block_size} along axis {self.axis[0]}" if self.block_size else f"shared along axes {self.axis}")
        return (f"QArray(shape={self.shape}, fmt={self.fmt.name}, scale_fmt={self.scale_fmt.name}, {gran}, "
                f"dtype={self.dtype.name}, {self.bits_per_value:.3g} bits/value)")


def dequantize(q: QArray, dtype=None):
    """The values of a :class:`QArray`, as ``dtype`` (default: its original dtype).

    Each value is the exact product of its code's value and its scales, correctly
    rounded to float32 (float64 for float64 input), then to ``dtype``. A QArray made
    under ``jax.vmap`` and used outside it (its leaves carry leading batch axes that
    its static ``shape`` does not) is dequantized batch by batch.
    """
    if not isinstance(q, QArray):
        raise TypeError(f"q must be a QArray, got {type(q).__name__}")
    dtype = q.dtype if dtype is None else np.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a float dtype, got {dtype}")
    extra = np.ndim(q.codes) - len(q.shape)
    if extra < 0 or tuple(np.shape(q.codes)[extra:]) != q.shape:
        raise ValueError(f"q.codes has shape {np.shape(q.codes)}, which does not end with the QArray's shape {q.shape}")
    fn = functools.partial(_dequantize_jit, dtype=dtype)
    for _ in range(extra):  # made under vmap: map over the batch axes its leaves carry
        fn = jax.vmap(fn)
    return fn(q)


@functools.partial(jax.jit, static_argnames=("dtype",))
def _dequantize_jit(q, dtype):
    work = jnp.float64 if q.dtype == np.float64 else jnp.float32
    blocked, _, _, keep = _layout(q.shape, q.axis, q.block_size)
    ev = _codec.decode(q.codes, q.fmt, work)
    v = dequantize_values(ev, q.scale, q.zero_point, q.tensor_scale, q.scheme, blocked, keep)
    return v.reshape(q.shape).astype(dtype)


# ---- quantize_scaled ------------------------------------------------------------------------------


def check_clip(calibration, symmetric: bool):
    """Split ``calibration`` into ``(method, clip data)``; clear errors for bad values.

    A method name or a callable stays the scheme's; a number, an array or a
    :class:`~numfmt.calibration.MinMaxState` is data. Concrete clip values must be
    positive and finite (``lo <= 0 <= hi`` for a range); traced ones follow the data
    rules (a NaN, inf or negative clip makes its group's scale NaN).
    """
    if isinstance(calibration, _calibration.MinMaxState):
        return "absmax", _calibration.minmax_range(calibration, symmetric=symmetric)
    if isinstance(calibration, str) or callable(calibration):
        return calibration, None
    if not symmetric:
        raise ValueError("with symmetric=False pass calibration as a method, a callable or a MinMaxState")
    try:
        clip = jnp.asarray(calibration)
    except TypeError:
        raise TypeError(f"calibration must be a method name, a callable, a clip value or a MinMaxState, "
                        f"got {type(calibration).__name__}") from None
    if not jnp.issubdtype(clip.dtype, jnp.number) or jnp.issubdtype(clip.dtype, jnp.complexfloating):
        raise TypeError(f"calibration as a clip value must be real numbers, got dtype {clip.dtype}")
    if not isinstance(clip, jax.core.Tracer):
        c = np.asarray(clip, np.float64)
        if not np.all(np.isfinite(c) & (c > 0)):
            raise ValueError(f"calibration as a clip value must be positive and finite (the |x| mapped to the "
                             f"format's largest value), got {calibration!r}")
    return "absmax", clip


@functools.partial(jax.jit, static_argnames=("scheme",))
def _quantize_jit(x, clip, key, scheme):
    q = quantize_with(x, scheme, clip=clip, key=key)
    scale = q.scale if x.dtype == jnp.float64 else q.scale.astype(jnp.float32)
    return q.codes, scale, q.zero_point, q.tensor_scale


def quantize_array(x, scheme: QuantScheme, *, clip=None, key=None) -> QArray:
    """A :class:`QArray` of ``x`` by ``scheme`` (checked: ``x``, axes, block size, key)."""
    x = check_float_input(x)
    axis, _ = resolve_axes(scheme, x.shape)
    if scheme.rounding == "stochastic" and key is None:
        raise ValueError("rounding='stochastic' needs key= (a jax.random key)")
    if scheme.rounding != "stochastic" and key is not None:
        raise ValueError(f"key is only used with rounding='stochastic', got rounding={scheme.rounding!r}")
    if clip is not None:  # its shape, checked now rather than inside jit
        _, _, user, keep = _layout(x.shape, axis, scheme.block_size)
        jax.eval_shape(lambda c: _given_clip(c, user, keep, axis), clip)
    codes, scale, zp, ts = _quantize_jit(x, clip, key, scheme)
    return QArray(codes, scale, zp, ts, scheme=dataclasses.replace(scheme, axis=axis), shape=x.shape, dtype=x.dtype)


def quantize_scaled(x, fmt, *, axis=None, block_size=None, scale_fmt=_formats.FP32, symmetric=True,
                    calibration="absmax", rounding="nearest_even", key=None, rbits=None,
                    scale_rounding=None, nonfinite="propagate") -> QArray:
    """Quantize ``x`` to ``fmt`` with per-tensor, per-channel or per-block scales.

    Args:
      x: a float array.
      fmt: the element format (FloatFormat, IntFormat or CodebookFormat, or a name).
      axis: None (one scale for the tensor), or the axis / axes whose values share a
        scale (per channel: for a weight ``(out, in)`` used as ``x @ w.T``, per-output-
        channel scales are ``axis=1``), or with ``block_size`` the axis blocks run along.
      block_size: ``B`` consecutive values along ``axis`` share a scale; must divide the
        axis length (partial blocks are rejected).
      scale_fmt: the format scales are rounded into (FP32, BF16, E8M0, E4M3, ...).
      symmetric: False gives affine integers with a zero point:
        ``q = clamp(round(x / s) + z)``, value ``s * (q - z)``; real 0 maps to ``z``
        exactly. Needs an IntFormat. Symmetric integers use ``s = c / fmt.max``; pass
        a narrow format (``"int8_narrow"``) for the symmetric range ``[-127, 127]``.
      calibration: a method name of :func:`numfmt.calibration.calibrate`, a callable
        with its signature (e.g. a ``functools.partial`` of it), a clip value (a positive
        number, or an array broadcasting to the scale's shape, with or without the
        shared axes: ``calibrate(..., keepdims=False)``'s result works), or a
        :class:`~numfmt.calibration.MinMaxState`.
      rounding: the element rounding mode; ``key`` / ``rbits`` for ``"stochastic"``.
      scale_rounding: ``"floor"`` (OCP MX), ``"ceil"`` or ``"nearest"``; None picks
        ``"floor"`` for power-of-two scale formats and ``"nearest"`` otherwise.
      nonfinite: ``"propagate"`` (a NaN or inf in a group makes its scale NaN, the OCP
        MX reference's rule) or ``"ignore"`` (left out of the scale).

    Returns:
      a :class:`QArray`.
    """
    symmetric = check_bool(symmetric, "symmetric")
    method, clip = check_clip(calibration, symmetric)
    scheme = QuantScheme(fmt, rounding=rounding, rbits=rbits, scale_fmt=scale_fmt, axis=axis, block_size=block_size,
                         scale_rounding=scale_rounding, calibration=method, symmetric=symmetric, nonfinite=nonfinite)
    return quantize_array(x, scheme, clip=clip, key=key)
