"""The one core of scaled quantization: :func:`quantize_with` applies a :class:`~numfmt.scheme.QuantScheme`.

Every quantizer of numfmt above the codec calls it: ``quantize_scaled``,
``mx_quantize``, ``nvfp4_quantize`` (through :mod:`numfmt.scaled`), ``fake_quant`` and
``quantize_grad`` (:mod:`numfmt.autodiff`) and the matmul operands
(:mod:`numfmt.matmul`). :func:`dequantize_values` is the one dequantization. The value
of a code is ``decode(code) * elem_scale * scale * tensor_scale``, or
``(decode(code) - zero_point) * scale`` for affine integers.

The scale of each group is chosen by :mod:`numfmt.scales` from the group's clip value.
Scale application is exact and the same on every backend (:mod:`numfmt.scalemath`): a
fast path where every quotient and product of the array is a normal float, which the
float unit computes exactly, and an exact path on the bits otherwise (subnormals, which
XLA's CPU backend would flush to zero).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import calibration as _calibration
from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import scalemath as _sm
from numfmt import scales as _scales
from numfmt.bitlayout import (
    divide,
    exponent_and_significand,
    layout_of,
    magnitude_bits,
    multiply,
    pow2,
    quotient_nearest,
)
from numfmt.checks import normalize_axes
from numfmt.formats import FloatFormat, IntFormat
from numfmt.scheme import QuantScheme

__all__ = ["Quantized", "dequantize_values", "given_clip", "group_layout", "quantize_with", "resolve_axes",
           "scale_layout"]


# ---- layouts: which values share a scale -----------------------------------------------------------


@functools.cache
def group_layout(shape, axis, block_size):
    """``(blocked shape, reduced axes of it, scale shape (QArray's), scale shape in the blocked layout)``
    for normalized ``axis`` / ``block_size``."""
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
    blocked, _, _, keep = group_layout(tuple(shape), axis, block_size)
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
    input). ``values``: the dequantized values, work dtype. (Both in
    :func:`quantize_with`'s ``cast`` when one is given.) ``scale``: the scales,
    QArray's layout (module doc). ``zero_point``: int32, like ``scale``, or None.
    ``tensor_scale``: NVFP4's scalar, or None.
    """

    codes: Any
    elems: Any
    values: Any
    scale: Any
    zero_point: Any
    tensor_scale: Any


def given_clip(clip, user, keep, axis):
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
        c = given_clip(clip, user, keep, axis).astype(xb.dtype)
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
                  codes=True, elems=False, values=False, cast=None) -> Quantized:
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
      cast: None, or a dtype (static) that ``elems`` and ``values`` are converted to
        inside the element pass, so that its loop writes them in that dtype (the GPU
        matmul's bf16 route asks for bfloat16 where they are exact in it). A conversion
        after the pass's ``lax.cond`` would be a second loop over the elements.

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
        q = _unscaled_pass(x.astype(work), scheme, scale, key, want)
        return q if cast is None else q._replace(**{f: getattr(q, f).astype(cast) for f in ("elems", "values")
                                                    if getattr(q, f) is not None})
    axis, bs = resolve_axes(scheme, x.shape)
    blocked, reduce, user, keep = group_layout(x.shape, axis, bs)
    xb = x.astype(work).reshape(blocked)
    if scheme.symmetric:
        c, bad, ext = _calibrated(xb, scheme, clip, reduce, user, keep, axis)
        groups = _scale_groups(c, scheme)
        fast = _fast_ok(groups, ext, bad, scheme, values)
    else:
        groups, bad, ext = _affine_groups(xb, scheme, clip, reduce, user, keep, axis)
        groups = _Groups(*_sm.once_per_group(tuple(groups)))
        fast = _fast_ok(groups, ext, bad, scheme, values)
    tail = functools.partial(_element_pass, scheme=scheme, want=want, blocked=blocked, keep=keep, cast=cast)
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
    """Scales and zero points of an affine scheme (docs/scaled.md), the poisoned groups,
    and the group extents (:func:`numfmt.calibration.group_extent`, for :func:`_fast_ok`).

    The extents are computed once, with the non-finite values in them where ``propagate``
    marks those groups (``_fast_ok`` leaves poisoned groups out): both outputs of their
    reduction are used, which keeps it the fast variadic kind on XLA's CPU backend (a
    lone absmax there materialized the magnitudes and reduced them in a tree of
    windows, about 1.3x a copy at 4096 x 4096). With the absmax calibration the finite
    range comes from the same pass (:func:`numfmt.calibration.extent_and_range`): per-tensor
    affine fake quantization on the 2-core CPU of docs/benchmarks.md went from 1.93x-2.04x
    a copy to 1.64x-1.74x.
    """
    propagate = scheme.nonfinite == "propagate"
    work = xb.dtype
    if clip is None and scheme.calibration == "absmax":  # one pass over x for both
        ext, (lo, hi) = _calibration.extent_and_range(xb, reduce, True, finite=not propagate)
    else:
        ext = _calibration.group_extent(xb, reduce, True, finite=not propagate)
        if clip is not None:
            lo, hi = given_clip(clip, user, keep, axis)
        else:
            f = scheme.calibration if callable(scheme.calibration) else functools.partial(
                _calibration.calibrate, method=scheme.calibration)
            lo, hi = f(xb, scheme.fmt, axis=reduce, keepdims=True, symmetric=False)
    lo, hi = (jnp.broadcast_to(v, keep).astype(work) for v in (lo, hi))
    bad = jnp.isnan(lo) | jnp.isnan(hi) | jnp.isinf(lo) | jnp.isinf(hi)
    if propagate:
        bad = bad | ~jnp.isfinite(ext.absmax)
    lo, hi = jnp.minimum(jnp.where(bad, 0, lo), 0), jnp.maximum(jnp.where(bad, 0, hi), 0)
    qmin, qmax = scheme.fmt.min, scheme.fmt.max
    levels = float(qmax - qmin)
    width = jnp.where(bad, jnp.nan if propagate else 0, _scales.range_width(lo, hi))
    s = _scales.choose_scale(width, scheme, levels, math.frexp(levels)[1] - 1)
    s1 = jnp.where(jnp.isnan(s), 1, s)
    zp = jnp.clip(qmin - jnp.round(divide(lo, s1)), qmin, qmax)
    return _Groups(s, None, zp, _sm.scale_parts(s1)), bad, ext


def _scale_groups(c, scheme):
    """The per-group data of a symmetric scheme from its clip values ``c``, computed once.

    Materialized (a ``lax.cond``'s result): XLA's CPU fusion would otherwise copy the
    scale arithmetic into each of its consumers, the loop over the elements among them.
    Scales that are not powers of two come from divisions (and NVFP4's from a product
    with the tensor scale): where :func:`numfmt.scales.quotients_normal` finds every
    operand and result of them normal, the float unit's quotient with its exact residual
    gives the bits of the exact division on the integers, at a fraction of its work
    (NVFP4's per-block kernels in a one-pass fake quantization of 4096 x 4096 on the
    2-core CPU of docs/benchmarks.md: about 12.7 ms before, 4 ms after); the exact path
    runs otherwise.
    """
    elem_max, elem_emax = scheme.elem_range()
    if scheme.pow2_scales:
        s = _scales.choose_scale(c, scheme, elem_max, elem_emax)
        s = _sm.once_per_group(s)
        return _Groups(s, None, None, _divisor(s, None, scheme))
    amax, lo, hi = _scales.clip_range(c)
    ts = _scales.tensor_scale(amax, scheme, elem_max) if scheme.tensor_scale else None
    normal = _scales.quotients_normal(lo, hi, ts, scheme, elem_max)
    branch = functools.partial(_scales_and_divisor, scheme=scheme)
    s, div = lax.cond(normal, functools.partial(branch, normal=True), functools.partial(branch, normal=False), c, ts)
    return _Groups(s, ts, None, div)


def _scales_and_divisor(c, ts, *, scheme, normal):
    """The scales of clip values ``c`` (NVFP4: with its tensor scale ``ts``) and the
    element pass's divisor; ``normal`` as in :func:`numfmt.scales.choose_scale`."""
    elem_max, elem_emax = scheme.elem_range()
    cc = c if ts is None else _scales.in_tensor_units(c, ts, normal=normal)
    s = _scales.choose_scale(cc, scheme, elem_max, elem_emax, normal=normal)
    return s, _divisor(s, ts, scheme, normal=normal)


def _divisor(s, ts, scheme, *, normal=False):
    """What the element pass divides by, ``scale * elem_scale * tensor_scale``:
    ``(k,)`` for power-of-two scales (``x * 2**-k``), else ``(m, k)`` (:func:`numfmt.scalemath.scale_parts`).
    ``normal``: the product with the tensor scale is a normal float (the float unit's is exact then)."""
    s1 = jnp.where(jnp.isnan(s), 1, s)
    log2_elem = math.frexp(scheme.elem_scale)[1] - 1
    if scheme.pow2_scales:
        return (exponent_and_significand(s1)[0] + log2_elem,)
    if ts is not None:  # the float32 product, as NVIDIA's recipe forms it
        s1 = s1 * ts if normal else multiply(s1, jnp.broadcast_to(ts, s1.shape))
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


def _element_pass(xb, key, groups, *, fast, scheme, want, blocked, keep, cast=None):
    """Quantize (and dequantize) every element: one fused loop. ``fast``: on the float
    unit (:func:`_fast_ok` holds), else on the bits (:mod:`numfmt.scalemath`). Element
    values and values are returned in ``cast`` when given."""
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
        # The float unit's quotient need not be correctly rounded (XLA on GPU): corrected on the integers.
        y = quotient_nearest(xb, d)
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
    if cast is not None:
        ev, vals = (None if v is None else v.astype(cast) for v in (ev, vals))
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
        # Scales numfmt chooses are at least ``floor``; a QArray's may not be (an XNOR-Net
        # alpha can be subnormal): those take the bits. Zero, inf and NaN are IEEE's.
        mag = magnitude_bits(s)
        return jnp.all((mag == 0) | (mag >= magnitude_bits(jnp.asarray(floor, s.dtype))))
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
