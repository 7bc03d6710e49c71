"""Scaled and block quantization: :class:`QArray` and :func:`quantize_scaled`.

A ``QArray`` is the storage format: element codes with their scales (and zero points,
and NVFP4's tensor scale). ``quantize_scaled`` makes one from its arguments: a
:class:`~numfmt.scheme.QuantScheme`, applied by the one core,
:func:`numfmt.quantcore.quantize_with` (docs/scaled.md). The MX and NVFP4 presets are
in :mod:`numfmt.mx`.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from numfmt import calibration as _calibration
from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import packing as _packing
from numfmt.bitlayout import check_float_input
from numfmt.checks import check_bool, is_traced, normalize_axes
from numfmt.quantcore import (
    dequantize_values,
    given_clip,
    group_layout,
    quantize_with,
    resolve_axes,
)
from numfmt.scheme import SCALE_ROUNDINGS, QuantScheme

__all__ = ["SCALE_ROUNDINGS", "QArray", "dequantize", "quantize_scaled"]


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
        return math.prod(group_layout(self.shape, self.axis, self.block_size)[2])

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
    blocked, _, _, keep = group_layout(q.shape, q.axis, q.block_size)
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
        _, _, user, keep = group_layout(x.shape, axis, scheme.block_size)
        jax.eval_shape(lambda c: given_clip(c, user, keep, axis), clip)
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
