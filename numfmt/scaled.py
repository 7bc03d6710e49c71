"""Scaled and block quantization: :class:`QArray` and :func:`quantize_scaled`.

The MX and NVFP4 presets built on it are in :mod:`numfmt.mx`.

A quantized array stores codes of an element format together with scales (and, for
affine integers, zero points) shared by groups of values:

* per tensor (``axis=None``): one scale;
* per channel (``axis`` an int or a tuple): the values along ``axis`` share a scale,
  so there is one scale per index of the other axes (the scale has size 1 on ``axis``);
* per block (``block_size=B``): ``B`` consecutive values along the single ``axis``
  share a scale. ``B`` must divide the axis length: partial blocks are rejected (pad
  the array yourself), see docs/scaled.md.

The value of a code is ``decode(code) * elem_scale * scale * tensor_scale``, or
``(decode(code) - zero_point) * scale`` for affine integers. The scale is computed
from the calibrated clip value ``c`` of its group (:mod:`numfmt.calibration`) and
rounded into ``scale_fmt``:

* power-of-two scale formats (no mantissa bits, e.g. E8M0) take the exponent from the
  bits of ``c`` with integer operations (never ``log2``), by ``scale_rounding``:

  - ``"floor"``: the OCP MX v1.0 conversion rule: ``2**(floor(log2 c) - emax_elem)``;
    values in ``(max_elem, 2**(emax_elem+1))`` times the scale clip to ``max_elem``;
  - ``"ceil"``: the smallest power of two ``>= c / max_elem``, so nothing clips (the
    round-toward-infinity scale of Mishra et al., "Recipes for pre-training LLMs with
    MXFP8", arXiv 2506.08027, NVIDIA's MXFP8 recipe);
  - ``"nearest"``: the power of two nearest to ``c / max_elem`` (ties to the even code);

  the exponent is clamped to the scale format's range (E8M0: ``2**-127 .. 2**127``).
* other scale formats (FP32, BF16, E4M3, ...) round ``c / max_elem`` into the format:
  ``"nearest"`` (nearest even, the default), ``"ceil"`` (up) or ``"floor"`` (down),
  saturating, and at least ``max(min_subnormal, 2**-126)``.

A group whose clip value is zero or not finite (all zeros, all NaN) gets the smallest
scale of a power-of-two format (as the OCP reference code and gfloat do) or 1.0
otherwise: never 0, NaN or inf. Elements always saturate (OCP MX: "elements saturate").
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import calibration as _calibration
from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import packing as _packing
from numfmt import rounding as _rounding
from numfmt.bitlayout import check_float_input
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat

__all__ = ["SCALE_ROUNDINGS", "QArray", "dequantize", "quantize_scaled"]

SCALE_ROUNDINGS = ("floor", "ceil", "nearest")
_DIRECTED = {"floor": "down", "ceil": "up", "nearest": "nearest_even"}


def is_pow2_format(fmt) -> bool:
    """Whether every value of ``fmt`` is a power of two (a float format with no mantissa)."""
    return isinstance(fmt, FloatFormat) and fmt.man_bits == 0


# ---- power-of-two scales from the bits of a float --------------------------------------------


def _info(dtype):
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    uint = jnp.uint32 if dtype.itemsize == 4 else jnp.uint64
    sint = jnp.int32 if dtype.itemsize == 4 else jnp.int64
    return info.nmant, -info.minexp + 1, uint, sint


def exponent_and_significand(a):
    """``floor(log2 a)`` and ``a / 2**floor(log2 a)`` (in [1, 2)) for positive finite floats.

    Read from the bits: the biased exponent field, or for a subnormal the position of
    its leading one (``lax.clz``). Exact; never calls ``log2``.
    """
    p, bias, U, S = _info(a.dtype)
    width = 8 * np.dtype(a.dtype).itemsize
    bits = lax.bitcast_convert_type(a, U)
    e_field = ((bits >> U(p)) & U((1 << (width - 1 - p)) - 1)).astype(S)
    man = bits & U((1 << p) - 1)
    lead = (width - 1) - lax.clz(man).astype(S)  # bit index of the subnormal's leading one
    sub_shift = jnp.clip(S(p) - lead, 0, S(p)).astype(U)
    man = jnp.where(e_field == 0, (man << sub_shift) & U((1 << p) - 1), man)
    e = jnp.where(e_field == 0, lead - S(p) + S(1 - bias), e_field - S(bias))
    sig = lax.bitcast_convert_type(man | (U(bias) << U(p)), a.dtype)
    return e.astype(jnp.int32), sig


def pow2(e, dtype=jnp.float32):
    """``2.0**e`` for integer arrays ``e`` in the normal and subnormal range of ``dtype``, from bits."""
    p, bias, U, S = _info(dtype)
    e = e.astype(S)
    normal = lax.shift_left((e + S(bias)).astype(U), U(p))
    sub = lax.shift_left(U(1), jnp.clip(e + S(bias - 1 + p), 0, S(p)).astype(U))
    return lax.bitcast_convert_type(jnp.where(e >= S(1 - bias), normal, sub), dtype)


def mul_pow2(x, e):
    """``x * 2**e`` for integer ``e`` in ``[-254, 254]``, as two factors that are normal floats.

    XLA on CPU treats subnormal operands as zero, so ``x * 2.0**-127`` would be 0; two
    half-size factors keep every factor normal and the product exact unless the result
    itself underflows or overflows.
    """
    e = e.astype(jnp.int32)
    half = jnp.floor_divide(e, 2)
    return (x * pow2(half, x.dtype)) * pow2(e - half, x.dtype)


def pow2_scale_exponent(c, elem_max: float, elem_emax: int, policy: str, scale_fmt: FloatFormat):
    """The exponent ``e`` of the power-of-two scale for clip values ``c > 0`` (module doc)."""
    e_c, sig = exponent_and_significand(c)
    max_sig = elem_max / 2.0**elem_emax  # in [1, 2): exact for every element format
    e0 = e_c - elem_emax  # the OCP floor rule
    if policy == "floor":
        e = e0
    elif policy == "ceil":
        e = e0 + (sig > max_sig).astype(jnp.int32)
    else:
        # c / max_elem = (sig / max_sig) * 2**e0 with sig / max_sig in (1/2, 2): its
        # powers of two neighbours are (e0 - 1, e0) or (e0, e0 + 1), midpoints at 3/4, 3/2.
        below = sig < max_sig
        e_lo = jnp.where(below, e0 - 1, e0)
        mid = jnp.where(below, 0.75 * max_sig, 1.5 * max_sig).astype(sig.dtype)
        odd_lo = ((e_lo + scale_fmt.bias) & 1) == 1  # tie: the even code wins
        e = jnp.where(sig > mid, e_lo + 1, jnp.where(sig < mid, e_lo, e_lo + odd_lo.astype(jnp.int32)))
    return e


# ---- layouts: which values share a scale -----------------------------------------------------


@functools.cache
def _layout(shape, axis, block_size):
    """(blocked shape, reduced axes of it, user scale shape) for a granularity."""
    ndim = len(shape)
    if block_size is not None:
        (a,) = axis
        blocked = shape[:a] + (shape[a] // block_size, block_size) + shape[a + 1 :]
        return blocked, (a + 1,), shape[:a] + (shape[a] // block_size,) + shape[a + 1 :]
    if axis is None:
        return shape, tuple(range(ndim)), ()
    return shape, axis, tuple(1 if i in axis else d for i, d in enumerate(shape))


def _elem_params(fmt):
    """(largest value, floor(log2 of it)) of an element format."""
    if isinstance(fmt, FloatFormat):
        return fmt.max, fmt.emax
    top = float(fmt.max)
    return top, math.frexp(top)[1] - 1


# ---- QArray -------------------------------------------------------------------------------


@jax.tree_util.register_pytree_node_class
class QArray:
    """A quantized array: element codes with their scales, a JAX pytree.

    Children (arrays): ``codes`` (unsigned codes of ``fmt``, the original shape),
    ``scale`` (float32 values of ``scale_fmt``: shape ``()`` per tensor, size 1 on the
    reduced axes per channel, the axis length divided by ``block_size`` per block),
    ``zero_point`` (int32, like ``scale``, or None) and ``tensor_scale`` (a float32
    scalar, NVFP4's second level, or None). Static aux data: ``fmt``, ``scale_fmt``,
    ``shape``, ``dtype``, ``axis``, ``block_size`` and ``elem_scale`` (the implicit
    factor of MX integer elements, 2**-6 for MXINT8).
    """

    def __init__(self, codes, scale, zero_point=None, tensor_scale=None, *, fmt, scale_fmt,
                 shape, dtype, axis=None, block_size=None, elem_scale=1.0):
        self.codes = codes
        self.scale = scale
        self.zero_point = zero_point
        self.tensor_scale = tensor_scale
        self.fmt = fmt
        self.scale_fmt = scale_fmt
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.axis = axis
        self.block_size = block_size
        self.elem_scale = float(elem_scale)

    def tree_flatten(self):
        children = (self.codes, self.scale, self.zero_point, self.tensor_scale)
        aux = (self.fmt, self.scale_fmt, self.shape, self.dtype, self.axis, self.block_size, self.elem_scale)
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)  # no checks: transformations put non-arrays in the leaves
        obj.codes, obj.scale, obj.zero_point, obj.tensor_scale = children
        (obj.fmt, obj.scale_fmt, obj.shape, obj.dtype, obj.axis, obj.block_size, obj.elem_scale) = aux
        return obj

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
        """The scales as codes of ``scale_fmt`` (the bits a file or a kernel stores)."""
        return _codec.encode(self.scale, self.scale_fmt)

    def packed_codes(self):
        """The element codes packed into bytes (:func:`numfmt.packing.pack`)."""
        return _packing.pack(self.codes, self.fmt.bits)

    def dequantize(self, dtype=None):
        """The values this array stands for, as ``dtype`` (default: the original dtype)."""
        return _dequantize(self, dtype)

    def __repr__(self):
        gran = "per-tensor" if self.axis is None else (
            f"block {self.block_size} along axis {self.axis[0]}" if self.block_size else f"shared along axes {self.axis}")
        return (f"QArray(shape={self.shape}, fmt={self.fmt.name}, scale_fmt={self.scale_fmt.name}, {gran}, "
                f"dtype={self.dtype.name}, {self.bits_per_value:.3g} bits/value)")


def dequantize(q: QArray, dtype=None):
    """The values of a :class:`QArray`, as ``dtype`` (default: its original dtype)."""
    if not isinstance(q, QArray):
        raise TypeError(f"q must be a QArray, got {type(q).__name__}")
    return _dequantize(q, dtype)


def _dequantize(q, dtype):
    return _dequantize_jit(q, q.dtype if dtype is None else np.dtype(dtype))


@functools.partial(jax.jit, static_argnames=("dtype",))
def _dequantize_jit(q, dtype):
    work = jnp.float64 if q.dtype == np.float64 else jnp.float32
    blocked, _, _ = _layout(q.shape, q.axis, q.block_size)
    v = _codec.decode(q.codes, q.fmt, work).reshape(blocked)
    scale = jnp.asarray(q.scale, work)
    if q.block_size is not None:
        scale = jnp.expand_dims(scale, q.axis[0] + 1)
    elif q.axis is None:
        scale = scale.reshape((1,) * len(blocked))
    if q.zero_point is not None:
        zp = jnp.asarray(q.zero_point).astype(work).reshape(scale.shape)
        v = v - zp
    if q.elem_scale != 1.0:
        v = v * work(q.elem_scale)
    v = multiply_by_scale(v, scale, q.scale_fmt)
    if q.tensor_scale is not None:
        v = v * jnp.asarray(q.tensor_scale, work)
    return v.reshape(q.shape).astype(dtype)


# ---- quantize_scaled ---------------------------------------------------------------------


def check_granularity(shape, axis, block_size):
    """Normalized ``(axis, block_size)``; raises ValueError / TypeError naming the argument."""
    axis = _calibration.normalize_axes(axis, len(shape))
    if block_size is None:
        return axis, None
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"block_size must be a positive int or None, got {block_size!r}")
    if block_size <= 0:
        raise ValueError(f"block_size must be a positive int, got {block_size}")
    if axis is None or len(axis) != 1:
        raise ValueError(f"block_size needs one axis to run along (axis=int), got axis={axis!r}")
    n = shape[axis[0]]
    if n % block_size:
        raise ValueError(
            f"block_size={block_size} does not divide axis {axis[0]} of length {n}: numfmt rejects "
            f"partial blocks; pad that axis to a multiple of {block_size} (e.g. with jnp.pad)"
        )
    return axis, int(block_size)


def choose_scale(c, elem_max, elem_emax, scale_fmt, policy, work):
    """Scale values for clip values ``c`` (keepdims), per the module doc's rules."""
    valid = jnp.isfinite(c) & (c > 0)
    c = jnp.where(valid, c, 1).astype(work)
    if is_pow2_format(scale_fmt):
        e = pow2_scale_exponent(c, elem_max, elem_emax, policy, scale_fmt)
        e = jnp.clip(e, scale_fmt.emin, scale_fmt.emax)
        return pow2(jnp.where(valid, e, scale_fmt.emin), work)
    s = _codec.quantize(c / work(elem_max), scale_fmt, _DIRECTED[policy], saturate=True)
    floor = max(scale_fmt.min_subnormal, 2.0**-126)
    return jnp.where(valid, jnp.maximum(s, floor), 1).astype(work)


def multiply_by_scale(v, scale, scale_fmt):
    """``v * scale``, exact for power-of-two scale formats (the inverse of :func:`divide_by_scale`)."""
    if is_pow2_format(scale_fmt):
        return mul_pow2(v, exponent_and_significand(scale)[0])
    return v * scale


def divide_by_scale(xb, scale, scale_fmt):
    if is_pow2_format(scale_fmt):
        return mul_pow2(xb, -exponent_and_significand(scale)[0])
    return xb / scale


def _calibrate_in(xb, fmt, calibration, given, reduce, symmetric, user, keep):
    if given is not None:
        # A given range broadcasts against the scale's shape, then takes the blocked layout.
        if symmetric:
            return jnp.broadcast_to(given, user).reshape(keep)
        return tuple(jnp.broadcast_to(g, user).reshape(keep) for g in given)
    if callable(calibration):
        return calibration(xb, fmt, axis=reduce, keepdims=True, symmetric=symmetric)
    return _calibration.calibrate(xb, fmt, calibration, axis=reduce, keepdims=True, symmetric=symmetric)


@functools.partial(jax.jit, static_argnames=(
    "fmt", "axis", "block_size", "scale_fmt", "symmetric", "calibration", "rounding", "policy", "elem_scale"))
def _quantize_core(x, given, key, rbits, *, fmt, axis, block_size, scale_fmt, symmetric, calibration,
                   rounding, policy, elem_scale):
    work = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    blocked, reduce, user = _layout(x.shape, axis, block_size)
    keep = tuple(1 if i in reduce else d for i, d in enumerate(blocked))
    xb = x.astype(work).reshape(blocked)
    enc = functools.partial(_codec.encode, rounding=rounding, key=key, rbits=rbits, saturate=True)
    if symmetric:
        elem_max, elem_emax = _elem_params(fmt)
        elem_max *= elem_scale
        elem_emax += math.frexp(elem_scale)[1] - 1
        c = _calibrate_in(xb, fmt, calibration, given, reduce, True, user, keep)
        scale = choose_scale(jnp.broadcast_to(c, keep), elem_max, elem_emax, scale_fmt, policy, work)
        y = divide_by_scale(xb, scale, scale_fmt)
        if elem_scale != 1.0:
            y = y * work(1.0 / elem_scale)  # a power of two: exact
        codes = enc(y, fmt)
        zero_point = None
    else:
        lo, hi = _calibrate_in(xb, fmt, calibration, given, reduce, False, user, keep)
        lo = jnp.broadcast_to(jnp.minimum(lo, 0), keep).astype(work)
        hi = jnp.broadcast_to(jnp.maximum(hi, 0), keep).astype(work)
        qmin, qmax = fmt.min, fmt.max
        levels = float(qmax - qmin)
        scale = choose_scale(hi - lo, levels, math.frexp(levels)[1] - 1, scale_fmt, policy, work)
        zp = jnp.clip(qmin - jnp.round(divide_by_scale(lo, scale, scale_fmt)), qmin, qmax)
        # Round x / s first and add the zero point after: adding first would move ties.
        r = _codec.quantize(divide_by_scale(xb, scale, scale_fmt), _formats.INT32, rounding, key=key, rbits=rbits)
        codes = _codec.encode(jnp.clip(r + zp, qmin, qmax), fmt)
        zero_point = zp.astype(jnp.int32).reshape(user)
    scale = scale.reshape(user).astype(jnp.float32) if work == jnp.float32 else scale.reshape(user)
    return codes.reshape(x.shape), scale, zero_point


def check_scale_rounding(scale_rounding, scale_fmt):
    if scale_rounding is None:
        return "floor" if is_pow2_format(scale_fmt) else "nearest"
    if scale_rounding not in SCALE_ROUNDINGS:
        raise ValueError(f"scale_rounding must be one of {SCALE_ROUNDINGS} or None, got {scale_rounding!r}")
    return scale_rounding


def quantize_scaled(x, fmt, *, axis=None, block_size=None, scale_fmt=_formats.FP32, symmetric=True,
                    calibration="absmax", rounding="nearest_even", key=None, rbits=None,
                    scale_rounding=None) -> QArray:
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
        with its signature (e.g. a ``functools.partial`` of it), a clip value (number
        or array broadcasting to the scale), or a :class:`~numfmt.calibration.MinMaxState`.
      rounding: the element rounding mode; ``key`` / ``rbits`` go to the codec.
      scale_rounding: ``"floor"`` (OCP MX), ``"ceil"`` or ``"nearest"``; None picks
        ``"floor"`` for power-of-two scale formats and ``"nearest"`` otherwise.

    Returns:
      a :class:`QArray`.
    """
    x = check_float_input(x)
    fmt = _formats.get(fmt)
    scale_fmt = _formats.get(scale_fmt)
    if not isinstance(scale_fmt, FloatFormat):
        raise TypeError(f"scale_fmt must be a float format (FP32, BF16, E8M0, E4M3, ...), got {scale_fmt.name}")
    axis, block_size = check_granularity(x.shape, axis, block_size)
    policy = check_scale_rounding(scale_rounding, scale_fmt)
    rounding = _rounding.check_rounding(rounding, fmt)
    if not symmetric and not isinstance(fmt, IntFormat):
        raise ValueError(f"symmetric=False (a zero point) needs an IntFormat element, got {fmt.name}")
    if isinstance(fmt, CodebookFormat) and rounding not in ("nearest_even", "nearest_away"):
        raise ValueError(f"codebook format {fmt.name} supports nearest rounding only, got {rounding!r}")
    given, method = None, calibration
    if isinstance(calibration, _calibration.MinMaxState):
        given = _calibration.minmax_range(calibration, symmetric=bool(symmetric))
        method = None
    elif isinstance(calibration, str):
        if calibration not in _calibration.METHODS:
            raise ValueError(f"calibration must be one of {_calibration.METHODS}, a callable, a clip value "
                             f"or a MinMaxState, got {calibration!r}")
    elif not callable(calibration):
        if not symmetric:
            raise ValueError("with symmetric=False pass calibration as a method, a callable or a MinMaxState")
        given, method = jnp.asarray(calibration, jnp.float32), None
    codes, scale, zp = _quantize_core(
        x, given, key, rbits, fmt=fmt, axis=axis, block_size=block_size, scale_fmt=scale_fmt,
        symmetric=bool(symmetric), calibration=method, rounding=rounding, policy=policy, elem_scale=1.0)
    return QArray(codes, scale, zp, None, fmt=fmt, scale_fmt=scale_fmt, shape=x.shape, dtype=x.dtype,
                  axis=axis, block_size=block_size)
