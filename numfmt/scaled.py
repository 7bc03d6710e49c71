"""Scaled and block quantization: the core :func:`quantize_with`, :class:`QArray`, :func:`quantize_scaled`.

Everything about a quantization that is not data is a :class:`~numfmt.scheme.QuantScheme`;
:func:`quantize_with` applies one, and every quantizer of numfmt above the codec
(``quantize_scaled``, ``mx_quantize``, ``nvfp4_quantize``, ``fake_quant``,
``quantize_grad``, the matmul operands) calls it. The value of a code is
``decode(code) * elem_scale * scale * tensor_scale``, or ``(decode(code) - zero_point) * scale``
for affine integers; :func:`dequantize_values` is the one place it is computed.

The scale of each group is computed by :mod:`numfmt.scales` from the group's clip
value. Scale application is exact and the same on every backend
(:mod:`numfmt.scalemath`): a fast path where every quotient and product of the array
is a normal float, which the float unit computes exactly, and an exact path on the
bits otherwise (subnormals, which XLA's CPU backend would flush to zero).
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
from numfmt import scales as _scales
from numfmt.bitlayout import (
    check_float_input,
    divide,
    exponent_and_significand,
    layout_of,
    magnitude_bits,
    multiply,
    pow2,
)
from numfmt.checks import check_bool, is_traced, normalize_axes
from numfmt.formats import FloatFormat, IntFormat
from numfmt.scheme import SCALE_ROUNDINGS, QuantScheme

__all__ = ["SCALE_ROUNDINGS", "QArray", "dequantize", "quantize_scaled"]



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
    """``(c, bad, extent)`` of a symmetric scheme per group, in the blocked scale layout.

    ``extent`` (:func:`numfmt.calibration.group_extent`) is computed in every case: it
    is the absmax calibration, it marks the groups a NaN or inf poisons, and it decides
    whether the fast path is exact.
    """
    propagate = scheme.nonfinite == "propagate"
    ext = _calibration.group_extent(xb, reduce, True, finite=not propagate)
    bad = ~jnp.isfinite(ext.absmax) if propagate else jnp.zeros(keep, bool)
    if clip is not None:
        c = _given_clip(clip, user, keep, axis).astype(xb.dtype)
        bad_clip = jnp.isnan(c) | jnp.isinf(c) | (lax.bitcast_convert_type(c, layout_of(xb.dtype).sint) < 0)
        if propagate:
            bad = bad | bad_clip
        else:
            c = jnp.where(bad_clip, 0, c)
    elif scheme.calibration == "absmax":
        c = ext.absmax
    else:
        f = scheme.calibration if callable(scheme.calibration) else functools.partial(
            _calibration.calibrate, method=scheme.calibration)
        c = f(xb, scheme.fmt, axis=reduce, keepdims=True, symmetric=True)
    return jnp.where(bad, jnp.nan, c), bad, ext


class _Groups(NamedTuple):
    """Per-group data of the element pass, in the blocked scale layout."""

    scale: Any  # NaN where a NaN or inf poisons the group
    tensor_scale: Any  # NVFP4's scalar, or None
    zero_point: Any  # affine: float zero points, else None
    divisor: Any  # power-of-two scales: (k,) for x * 2**-k; else (m, k): x / (m * 2**k)


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

    The scales are computed first (one pass over ``x`` for the calibration); then one
    pass quantizes every element (and dequantizes it, for ``values``). That pass runs
    on the float unit when every quotient and product it forms is a normal float (then
    it is exact, and the same on every backend), and on the bits otherwise (a
    ``lax.cond`` on the per-group extents).
    """
    work = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    want = (codes, elems, values)
    if scheme.scale_fmt is None:
        return _unscaled_pass(x.astype(work), scheme, scale, key, want)
    axis, bs = resolve_axes(scheme, x.shape)
    blocked, reduce, user, keep = _layout(x.shape, axis, bs)
    xb = x.astype(work).reshape(blocked)
    if scheme.symmetric:
        c, bad, ext = _calibrated(xb, scheme, clip, reduce, user, keep, axis)
        elem_max, elem_emax = scheme.elem_range()
        ts = None
        if scheme.tensor_scale:
            ts, c = _scales.tensor_scale(c, scheme, elem_max)
        s = _scales.choose_scale(c, scheme, elem_max, elem_emax)
        # Materialized: XLA would copy the scale arithmetic into each of its consumers.
        s, ts = _sm.once_per_group((s, ts))
        groups = _Groups(s, ts, None, _divisor(s, ts, scheme))
        fast = _fast_ok(groups, ext, bad, scheme, values)
    else:
        groups, bad = _affine_groups(xb, scheme, clip, reduce, user, keep, axis)
        groups = _Groups(*_sm.once_per_group(tuple(groups)))
        ext = _calibration.group_extent(xb, reduce, True, finite=True)
        fast = _fast_ok(groups, ext, bad, scheme, values)
    tail = functools.partial(_element_pass, scheme=scheme, want=want, blocked=blocked, keep=keep)
    if fast is False:
        out = tail(xb, key, _sm.once_per_group(groups), fast=False)
    else:
        args = (xb, key, groups)  # each branch is one fused loop over the elements; the groups are computed once
        out = lax.cond(fast, functools.partial(tail, fast=True), functools.partial(tail, fast=False), *args)
    out_codes, ev, vals = (None if v is None else v.reshape(x.shape) for v in out)
    zp = None if groups.zero_point is None else jnp.where(bad, 0, groups.zero_point).astype(jnp.int32).reshape(user)
    return Quantized(out_codes, ev if elems else None, vals, groups.scale.reshape(user), zp, groups.tensor_scale)


def _unscaled_pass(xw, scheme, scale, key, want):
    """No scale, or an explicit one (``fake_quant(scale=...)``): the codec, and exact scaling."""
    codes, elems, values = want
    rnd = {"rounding": scheme.rounding, "key": key if scheme.rounding == "stochastic" else None,
           "rbits": scheme.rbits, "saturate": scheme.saturate}
    s, y = None, xw
    if scale is not None:
        s = jnp.asarray(scale, xw.dtype)
        s = jnp.where(_scales.positive_finite(s), s, jnp.nan)
        coarse = _sm.is_coarse(scheme.min_step(), xw.dtype)
        y = _sm.unscale(xw, *_sm.scale_parts(jnp.where(jnp.isnan(s), 1, s)), coarse=coarse)
        y = jnp.where(jnp.isnan(s), jnp.nan, y)
    out_codes = _codec.encode(y, scheme.fmt, **rnd) if codes else None
    ev = vals = None
    if elems or values:
        ev = _codec.decode(out_codes, scheme.fmt, xw.dtype) if codes else _codec.quantize(y, scheme.fmt, **rnd)
    if values:
        vals = ev if s is None else dequantize_values(ev, s, None, None, scheme, xw.shape, xw.shape)
    return Quantized(out_codes, ev if elems else None, vals, s, None, None)


def _affine_groups(xb, scheme, clip, reduce, user, keep, axis):
    """Scales and zero points of an affine scheme (docs/scaled.md), and the poisoned groups."""
    propagate = scheme.nonfinite == "propagate"
    work = xb.dtype
    if clip is not None:
        lo, hi = _given_clip(clip, user, keep, axis)
        bad = jnp.zeros(keep, bool)
    elif scheme.calibration == "absmax":
        lo, hi = _calibration.finite_range(xb, reduce, True)
        bad = jnp.zeros(keep, bool)
    else:
        f = scheme.calibration if callable(scheme.calibration) else functools.partial(
            _calibration.calibrate, method=scheme.calibration)
        lo, hi = f(xb, scheme.fmt, axis=reduce, keepdims=True, symmetric=False)
        bad = jnp.zeros(keep, bool)
    lo, hi = (jnp.broadcast_to(v, keep).astype(work) for v in (lo, hi))
    bad = bad | jnp.isnan(lo) | jnp.isnan(hi) | jnp.isinf(lo) | jnp.isinf(hi)
    if propagate:
        bad = bad | ~jnp.isfinite(_calibration.group_absmax(xb, reduce, True, finite=False))
    lo, hi = jnp.minimum(jnp.where(bad, 0, lo), 0), jnp.maximum(jnp.where(bad, 0, hi), 0)
    qmin, qmax = scheme.fmt.min, scheme.fmt.max
    levels = float(qmax - qmin)
    width = jnp.where(bad, jnp.nan if propagate else 0, _scales.range_width(lo, hi))
    s = _scales.choose_scale(width, scheme, levels, math.frexp(levels)[1] - 1)
    s1 = jnp.where(jnp.isnan(s), 1, s)
    zp = jnp.clip(qmin - jnp.round(divide(lo, s1)), qmin, qmax)
    return _Groups(s, None, zp, _sm.scale_parts(s1)), bad


def _divisor(s, ts, scheme):
    """What the element pass divides by, ``scale * elem_scale * tensor_scale``:
    ``(k,)`` for power-of-two scales (``x * 2**-k``), else ``(m, k)`` (:func:`numfmt.scalemath.scale_parts`)."""
    s1 = jnp.where(jnp.isnan(s), 1, s)
    log2_elem = math.frexp(scheme.elem_scale)[1] - 1
    if scheme.pow2_scales:
        return (exponent_and_significand(s1)[0] + log2_elem,)
    if ts is not None:
        s1 = multiply(s1, jnp.broadcast_to(ts, s1.shape))  # the float32 product, as NVIDIA's recipe forms it
    return _sm.scale_parts(s1, log2_elem)


def _fast_ok(groups, ext, bad, scheme, values):
    """Whether every quotient ``x / divisor`` (and, for ``values``, every product of an
    element value and its scales) is a normal float: then the float unit computes them
    exactly, flushing nothing. Decided on the per-group extents, conservatively (a
    product or quotient here that underflows can only say no)."""
    work = groups.scale.dtype
    info = np.finfo(work)
    amax = jnp.where(bad, 0, ext.absmax)
    e_min = exponent_and_significand(jnp.where(ext.min_nonzero < info.tiny, 1, ext.min_nonzero))[0]
    ok_min = (magnitude_bits(ext.min_nonzero) >= magnitude_bits(jnp.asarray(info.tiny, work)))
    e_max = exponent_and_significand(jnp.where(amax > 0, amax, 1))[0]
    if len(groups.divisor) == 1:  # power-of-two scales (affine ones divide by (m, k) with m = 1)
        (k,) = groups.divisor  # includes elem_scale: a value is decode(code) * 2**k
        ok = (k <= -info.minexp - 1) & (k >= -info.maxexp + 1)  # 2**-k and 2**k normal
        ok &= ok_min & (e_min - k >= info.minexp + 1) & (e_max - k <= info.maxexp - 2)
        if values:  # the smallest element value times its scale stays normal
            ok &= k + math.frexp(scheme.min_step())[1] - 1 >= info.minexp + 1
    else:
        _m, k = groups.divisor
        ok = (k >= info.minexp + 1) & (k <= info.maxexp - 2) & ok_min
        ok &= (e_min - k >= info.minexp + 2) & (e_max - k <= info.maxexp - 3)
        if values:  # the smallest element value times the scale (and times the tensor scale) stays normal
            step = jnp.asarray(scheme.min_step() * scheme.elem_scale / 2, work)
            s = jnp.where(bad, 1, groups.scale)
            ok &= s * step >= info.tiny
            if groups.tensor_scale is not None:
                ok &= s * step * groups.tensor_scale >= info.tiny
    return jnp.all(ok | bad)


def _element_pass(xb, key, groups, *, fast, scheme, want, blocked, keep):
    """Quantize (and dequantize) every element: one fused loop. ``fast``: on the float
    unit (:func:`_fast_ok` holds), else on the bits (:mod:`numfmt.scalemath`)."""
    codes, elems, values = want
    fmt = scheme.fmt
    coarse = _sm.is_coarse(scheme.min_step(), xb.dtype)
    rnd = {"rounding": scheme.rounding, "key": key if scheme.rounding == "stochastic" else None,
           "rbits": scheme.rbits}
    bad = jnp.isnan(groups.scale)
    if fast and len(groups.divisor) == 1:
        y = xb * pow2(-groups.divisor[0], xb.dtype)  # exact: every factor and product normal
    elif fast:
        m, k = groups.divisor
        d = m * pow2(k, xb.dtype)  # the divisor itself (exact: normal)
        # A select that depends on x keeps XLA from rewriting x / broadcast(d) as x * (1 / d).
        y = xb / jnp.where(lax.bitcast_convert_type(xb, layout_of(xb.dtype).sint) == -1, 1, d)
    elif len(groups.divisor) == 1:
        y = _sm.unscale_pow2(xb, groups.divisor[0], coarse=coarse)
    else:
        y = _sm.unscale(xb, *groups.divisor, coarse=coarse)
    out_codes = ev = vals = None
    if groups.zero_point is None:
        y = jnp.where(bad, jnp.nan, y)
        out_codes = _codec.encode(y, fmt, saturate=True, **rnd) if codes else None
        if elems or values:
            ev = _codec.decode(out_codes, fmt, xb.dtype) if codes else _codec.quantize(y, fmt, saturate=True, **rnd)
    else:
        # Round x / s first and add the zero point after: adding first would move ties.
        r = _codec.quantize(y, _formats.INT32, **rnd)
        ev = jnp.clip(r + groups.zero_point, fmt.min, fmt.max)
        out_codes = _codec.encode(ev, fmt) if codes else None
    if values:
        vals = dequantize_values(ev, groups.scale, groups.zero_point, groups.tensor_scale, scheme, blocked, keep,
                                 fast=fast)
    return out_codes, ev if elems or values else None, vals


def dequantize_values(ev, scale, zero_point, tensor_scale, scheme: QuantScheme, blocked, keep, *, fast=None):
    """The values of element values ``ev`` (work dtype, or a function giving them) in the
    ``blocked`` layout, scales in ``keep``'s.

    The one dequantization: QArray's, fake quantization's and the matmul operands'.
    ``(ev - zero_point) * scale`` or ``ev * elem_scale * scale * tensor_scale``, each
    product correctly rounded in the work dtype. ``fast=True`` (the caller knows every
    product is a normal float) lets the float unit form them; ``False`` forms them on
    the bits (:mod:`numfmt.scalemath`); None decides from the scales (a ``lax.cond``,
    each branch one fused loop).
    """
    if callable(ev):  # codes to decode inside the loop (QArray.dequantize): one pass, nothing materialized
        decode, work = ev, np.dtype(jnp.asarray(scale).dtype)
    else:
        decode, work = (lambda e=ev: e), ev.dtype
    if scheme.scale_fmt is None:
        s = jnp.asarray(scale, work)
        return _sm.rescale(decode().reshape(blocked), jnp.where(jnp.isnan(s), jnp.nan, s), min_abs=scheme.min_step(),
                           scale_floor=0.0)
    s = jnp.asarray(scale, work).reshape(keep)
    zp = None if zero_point is None else jnp.asarray(zero_point).astype(work).reshape(keep)

    def f(s, zp, ts, *, fast):
        return _dequantize_pass(decode().reshape(blocked), s, zp, ts, fast=fast, scheme=scheme)

    if fast is None:
        fast = _products_normal(s, tensor_scale, zp is not None, scheme)
    if fast is True or fast is False:
        return f(s, zp, tensor_scale, fast=fast)
    return lax.cond(fast, functools.partial(f, fast=True), functools.partial(f, fast=False), s, zp, tensor_scale)


def _products_normal(s, ts, affine, scheme):
    """Whether every product of a non-zero element value and its scales is a normal float
    (then the float unit forms them exactly): True when the formats decide it, else a
    traced bool from the scales."""
    info = np.finfo(s.dtype)
    floor = max(scheme.scale_fmt.min_subnormal, float(info.tiny))
    smallest = 1.0 if affine else scheme.min_step() * scheme.elem_scale
    if scheme.pow2_scales:
        # 2**k must be normal for the float unit: not so for E8M0's 2**-127.
        k = exponent_and_significand(jnp.where(jnp.isnan(s), 1, s))[0] + (math.frexp(scheme.elem_scale)[1] - 1)
        return jnp.all((k >= info.minexp) & (k + math.frexp(scheme.min_step())[1] - 1 >= info.minexp + 1))
    if smallest < info.tiny:
        return False
    if ts is None and smallest * floor >= info.tiny:
        return True
    half = jnp.asarray(smallest / 2, s.dtype)
    ok = s * half >= info.tiny
    if ts is not None:
        ok &= s * half * ts >= info.tiny
    return jnp.all(ok | jnp.isnan(s))


def _dequantize_pass(ev, s, zp, ts, *, fast, scheme):
    """One fused loop: element values times their scales (``fast``: on the float unit)."""
    work = ev.dtype
    bad = jnp.isnan(s)
    if zp is not None:
        v = ev - zp  # integers: exact
        return v * s if fast else _bits_product(v, s)
    log2_elem = math.frexp(scheme.elem_scale)[1] - 1
    if scheme.pow2_scales:
        k = exponent_and_significand(jnp.where(bad, 1, s))[0] + log2_elem
        if fast:
            return jnp.where(bad, jnp.nan, ev * pow2(k, work))
        m = scheme.min_step() * scheme.elem_scale
        exact = (isinstance(scheme.fmt, (FloatFormat, IntFormat)) and m >= float(np.finfo(work).tiny)
                 and m * 2.0**scheme.scale_fmt.emin >= float(np.finfo(work).smallest_subnormal))
        return jnp.where(bad, jnp.nan, _sm.rescale_pow2(ev, k, exact=exact))
    if scheme.elem_scale != 1.0:
        ev = _sm.rescale_pow2(ev, jnp.asarray(log2_elem, jnp.int32), exact=False)
    if fast:
        v = ev * s
        return v if ts is None else v * ts
    v = _bits_product(ev, s)
    return v if ts is None else _bits_product(v, ts)


def _bits_product(v, s):
    """``v * s`` correctly rounded on the bits (NaN where ``s`` is NaN)."""
    bad = jnp.isnan(s)
    out = multiply(v, jnp.broadcast_to(jnp.where(bad, 1, s), v.shape))
    return jnp.where(bad, jnp.nan, out)


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
    Made from a ``scheme=``, or from those parts (``fmt=``, ``scale_fmt=``, ``axis=``,
    ``block_size=``, ``elem_scale=``).
    """

    def __init__(self, codes, scale, zero_point=None, tensor_scale=None, *, scheme: QuantScheme | None = None,
                 shape, dtype, fmt=None, scale_fmt=None, axis=None, block_size=None, elem_scale=1.0):
        if scheme is None:  # described by its parts, as a layer that builds its own QArrays does
            if fmt is None or scale_fmt is None:
                raise TypeError("QArray needs scheme=, or fmt= and scale_fmt=")
            scale_fmt = _formats.get(scale_fmt)
            scheme = QuantScheme(fmt, scale_fmt=scale_fmt, axis=normalize_axes(axis, len(tuple(shape))),
                                 block_size=block_size, symmetric=zero_point is None,
                                 tensor_scale=tensor_scale is not None, elem_scale=elem_scale,
                                 nonfinite="propagate" if scale_fmt.has_nan else "ignore")
        elif fmt is not None or scale_fmt is not None or axis is not None or block_size is not None:
            raise TypeError("pass either scheme= or the parts (fmt=, scale_fmt=, axis=, ...), not both")
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
    scale = jnp.asarray(q.scale, work)
    v = dequantize_values(lambda: _codec.decode(q.codes, q.fmt, work), scale, q.zero_point, q.tensor_scale, q.scheme,
                          blocked, keep)
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
    if not is_traced(clip):
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
