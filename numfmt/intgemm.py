"""Integer-only inference: int8 GEMM with zero points, fixed-point requantization, im2col conv.

The scheme of Jacob et al., "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference" (CVPR 2018, arXiv 1712.05877), as gemmlowp
and TensorFlow Lite run it. A real value ``r`` is ``S * (q - Z)``; a layer
``y = x W + b`` becomes, with ``K`` the contraction length,

    acc[m, n] = sum_k (qx[m,k] - Zx) (qw[k,n] - Zw[n]) + qb[n]
              = sum_k qx qw  -  Zw[n] * sum_k qx[m,k]  +  (qb[n] - Zx * sum_k qw[k,n] + K Zx Zw[n])

(eq. 7-9 of the paper). The last bracket depends on the weights only: it is
precomputed once, with the bias folded in (:func:`prepare_linear`); the row sums of
``qx`` cost one pass over the input; the core is an int8 x int8 -> int32 matmul.
``qb = round(b / (Sx Sw[n]))`` is the bias in int32 with scale ``Sx Sw[n]``.

The int32 accumulator is brought to the output scale by the real multiplier
``M = Sx Sw[n] / Sy``, held as a fixed-point int32 ``m`` and a shift
(:func:`quantize_multiplier`, TFLite's ``QuantizeMultiplier``), applied by
:func:`requantize` as TFLite's ``MultiplyByQuantizedMultiplier``: gemmlowp's
``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``, then the output zero
point is added and the result clamped to the activation range (fused ReLU / ReLU6 /
clamp). Every step is integer arithmetic in int32 (the 64-bit products of the fixed
point multiply are built from 16-bit limbs, so no ``jax_enable_x64`` is needed).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import scaled as _scaled
from numfmt import scalemath as _sm
from numfmt.checks import check_bool, check_int, check_positive
from numfmt.formats import IntFormat

__all__ = [
    "IntLinear",
    "activation_range",
    "dequantize_affine",
    "im2col",
    "int_conv2d",
    "int_gemm",
    "int_linear",
    "multiply_by_quantized_multiplier",
    "prepare_conv2d",
    "prepare_linear",
    "quantize_affine",
    "quantize_multiplier",
    "requantize",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul",
]

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
REQUANT_ROUNDINGS = ("double", "single")


# ---- the fixed-point multiplier ----------------------------------------------------------------


def _round_half_away(v: float) -> int:
    """``std::round``: to nearest, ties away from zero (exact for doubles below 2**52)."""
    a = abs(v)
    n = math.floor(a)
    n += 1 if a - n >= 0.5 else 0
    return -n if v < 0 else n


def _quantize_multiplier_scalar(real: float, rounding: str) -> tuple[int, int]:
    if not math.isfinite(real):
        raise ValueError(f"the real multiplier must be finite, got {real}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)  # real = q * 2**shift, 0.5 <= |q| < 1
    q_fixed = _round_half_away(q * 2.0**31)
    if q_fixed == 2**31:  # q rounded up to 1.0
        q_fixed //= 2
        shift += 1
    if shift < -31:  # every bit would be shifted out: flush to zero
        return 0, 0
    if rounding == "single" and shift > 30:
        return 2**31 - 1, 30
    return q_fixed, shift


def quantize_multiplier(real, *, rounding: str = "double"):
    """A real multiplier as a Q0.31 fixed-point int32 ``m`` and a power-of-two ``shift``.

    TFLite's ``QuantizeMultiplier`` (tensorflow/lite/kernels/internal/quantization_util.cc):
    ``real = q * 2**shift`` with ``0.5 <= |q| < 1`` (``frexp``), ``m = round(q * 2**31)``
    (ties away from zero); ``m == 2**31`` becomes ``2**30`` with ``shift + 1``; a shift
    below -31 flushes to ``(0, 0)``; zero gives ``(0, 0)``. With ``rounding="single"``
    (TFLite's ``TFLITE_SINGLE_ROUNDING`` build) a shift above 30 saturates to
    ``(2**31 - 1, 30)``. So ``real ~= m * 2**(shift - 31)``.

    Args:
      real: a Python float, or an array / sequence of them (per channel).
      rounding: ``"double"`` or ``"single"``, the requantization it is meant for.

    Returns:
      ``(m, shift)``: Python ints for a scalar, else two int32 NumPy arrays.
    """
    if rounding not in REQUANT_ROUNDINGS:
        raise ValueError(f"rounding must be one of {REQUANT_ROUNDINGS}, got {rounding!r}")
    if np.ndim(real) == 0:
        return _quantize_multiplier_scalar(float(real), rounding)
    reals = np.asarray(real, dtype=np.float64)
    pairs = [_quantize_multiplier_scalar(float(v), rounding) for v in reals.reshape(-1)]
    m = np.array([p[0] for p in pairs], dtype=np.int32).reshape(reals.shape)
    s = np.array([p[1] for p in pairs], dtype=np.int32).reshape(reals.shape)
    return m, s


# ---- 64-bit products from 32-bit limbs -----------------------------------------------------------


def _wide_mul(x, y):
    """The 64-bit product of uint32 arrays, as ``(hi, lo)`` uint32 words."""
    m16 = jnp.uint32(0xFFFF)
    xl, xh = x & m16, x >> 16
    yl, yh = y & m16, y >> 16
    ll, lh, hl, hh = xl * yl, xl * yh, xh * yl, xh * yh
    mid = lh + hl
    carry_mid = (mid < lh).astype(jnp.uint32)
    lo = ll + (mid << 16)
    carry_lo = (lo < ll).astype(jnp.uint32)
    hi = hh + (mid >> 16) + (carry_mid << 16) + carry_lo
    return hi, lo


def _magnitude(x):
    """``|x|`` of int32 as uint32 (``|INT32_MIN| = 2**31`` fits)."""
    u = lax.bitcast_convert_type(x, jnp.uint32)
    return jnp.where(x < 0, ~u + jnp.uint32(1), u)


def _as_int32(a, arg="x"):
    """``a`` as int32; a TypeError naming ``arg`` for float (or bool) input, which a cast would truncate."""
    a = jnp.asarray(a)
    if not jnp.issubdtype(a.dtype, jnp.integer):
        raise TypeError(f"{arg} must be integers (an int array or Python int), got dtype {a.dtype}: quantize "
                        f"floats first (quantize_affine, or quantize_scaled with an IntFormat)")
    return a.astype(jnp.int32)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp's ``SaturatingRoundingDoublingHighMul``: ``(a * b + nudge) / 2**31`` in int32.

    The exact 64-bit product, a nudge of ``2**30`` (``1 - 2**30`` for a negative product),
    and a division truncating toward zero; the single overflow, ``INT32_MIN**2``,
    saturates to ``INT32_MAX``. Int32 arrays in, int32 out (broadcasting).
    """
    a, b = jnp.broadcast_arrays(_as_int32(a, "a"), _as_int32(b, "b"))
    neg = (a < 0) != (b < 0)
    hi, lo = _wide_mul(_magnitude(a), _magnitude(b))
    nudge = jnp.where(neg, jnp.uint32(2**30 - 1), jnp.uint32(2**30))  # P + 2**30 (- 1 when negative)
    lo2 = lo + nudge
    hi2 = hi + (lo2 < lo).astype(jnp.uint32)
    r = (hi2 << 1) | (lo2 >> 31)  # floor(. / 2**31) of the magnitude
    r = jnp.where(neg, ~r + jnp.uint32(1), r)
    out = lax.bitcast_convert_type(r, jnp.int32)
    overflow = (a == b) & (a == _INT32_MIN)
    return jnp.where(overflow, jnp.int32(_INT32_MAX), out)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded to nearest, ties away from zero.

    ``exponent`` in [0, 31] (int or int32 array, broadcasting).
    """
    x = _as_int32(x)
    e = _as_int32(exponent, "exponent")
    mask = lax.bitcast_convert_type((jnp.uint32(1) << e.astype(jnp.uint32)) - jnp.uint32(1), jnp.int32)
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(jnp.int32)
    return lax.shift_right_arithmetic(x, jnp.broadcast_to(e, x.shape)) + (remainder > threshold).astype(jnp.int32)


def _single_rounding(x, m, shift):
    """``(x * m + 2**(t-1)) >> t`` with ``t = 31 - shift``, in 64 bits, low 32 bits kept."""
    x, m, shift = jnp.broadcast_arrays(_as_int32(x), _as_int32(m, "m"), _as_int32(shift, "shift"))
    neg = (x < 0) != (m < 0)
    hi, lo = _wide_mul(_magnitude(x), _magnitude(m))
    # two's complement negation of the 64-bit product
    nlo = ~lo + jnp.uint32(1)
    nhi = ~hi + (nlo == 0).astype(jnp.uint32)
    hi, lo = jnp.where(neg, nhi, hi), jnp.where(neg, nlo, lo)
    t = (31 - shift).astype(jnp.uint32)  # 1 .. 62
    low_round = t <= 32
    add_lo = jnp.where(low_round, jnp.uint32(1) << jnp.minimum(t - 1, 31), jnp.uint32(0))
    add_hi = jnp.where(low_round, jnp.uint32(0), jnp.uint32(1) << jnp.clip(t - 33, 0, 31))
    lo2 = lo + add_lo
    hi = hi + add_hi + (lo2 < lo).astype(jnp.uint32)
    lo = lo2
    small = t < 32
    ts = jnp.minimum(t, 31)
    low_part = (lo >> ts) | (hi << jnp.minimum(jnp.uint32(32) - ts, 31))
    high_part = lax.shift_right_arithmetic(lax.bitcast_convert_type(hi, jnp.int32),
                                           jnp.clip(t.astype(jnp.int32) - 32, 0, 31))
    return jnp.where(small, lax.bitcast_convert_type(low_part, jnp.int32), high_part)


def multiply_by_quantized_multiplier(x, m, shift, *, rounding: str = "double"):
    """TFLite's ``MultiplyByQuantizedMultiplier``: ``x * m * 2**(shift - 31)`` rounded, in int32.

    ``"double"`` (TFLite's default): ``RoundingDivideByPOT(SRDHM(x * 2**max(shift, 0), m),
    max(-shift, 0))``; the left shift wraps in int32 as compiled code does, so keep
    ``|x| * 2**shift < 2**31``. ``"single"`` (``TFLITE_SINGLE_ROUNDING``): one rounding,
    ``(x * m + 2**(30 - shift)) >> (31 - shift)`` in 64 bits, for shift in [-31, 30].
    """
    if rounding not in REQUANT_ROUNDINGS:
        raise ValueError(f"rounding must be one of {REQUANT_ROUNDINGS}, got {rounding!r}")
    if not isinstance(shift, jax.core.Tracer):
        s = np.asarray(shift)
        lo, hi = (-31, 30) if rounding == "single" else (-31, 31)
        if s.size and (s.min() < lo or s.max() > hi):
            raise ValueError(f"shift must be in [{lo}, {hi}] for rounding={rounding!r}, got {s.min()}..{s.max()}")
    if rounding == "single":
        return _single_rounding(x, m, shift)
    x, shift = _as_int32(x), _as_int32(shift, "shift")
    left = jnp.maximum(shift, 0)
    right = jnp.maximum(-shift, 0)
    shifted = lax.shift_left(jnp.broadcast_to(x, jnp.broadcast_shapes(x.shape, left.shape)),
                             jnp.broadcast_to(left, jnp.broadcast_shapes(x.shape, left.shape)))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m), right)


def _int_range(fmt, arg="out_fmt"):
    fmt = _formats.get(fmt)
    if not isinstance(fmt, IntFormat):
        raise ValueError(f"{arg} must be an IntFormat, got {fmt.name}")  # noqa: TRY004
    return fmt


def requantize(acc, m, shift, zero_point, out_fmt=_formats.INT8, *, act_min=None, act_max=None,
               rounding: str = "double"):
    """An int32 accumulator to the output format: ``clamp(MBQM(acc, m, shift) + zero_point)``.

    Args:
      acc: int32 array.
      m, shift: from :func:`quantize_multiplier`; scalars or per-channel arrays that
        broadcast against ``acc`` (channels on the last axis).
      zero_point: the output zero point.
      out_fmt: the output IntFormat (int8, uint8, int4, ...).
      act_min, act_max: the fused activation's range in the output's integers
        (:func:`activation_range`); default the format's range.
      rounding: ``"double"`` or ``"single"`` (:func:`multiply_by_quantized_multiplier`).

    Returns:
      int32 values in ``[act_min, act_max]``.
    """
    fmt = _int_range(out_fmt)
    lo = fmt.min if act_min is None else act_min
    hi = fmt.max if act_max is None else act_max
    y = multiply_by_quantized_multiplier(_as_int32(acc, "acc"), m, shift, rounding=rounding)
    y = jnp.clip(y + _as_int32(zero_point, "zero_point"), fmt.min, fmt.max)
    return jnp.clip(y, lo, hi).astype(jnp.int32)


def activation_range(activation, scale: float, zero_point: int, out_fmt=_formats.INT8) -> tuple[int, int]:
    """The output integers a fused activation keeps (TFLite's ``CalculateActivationRangeQuantized``).

    ``activation``: None (the whole format), ``"relu"`` (``[Z, max]``), ``"relu6"``
    (``[Z, Z + round(6 / S)]``), ``"relu_n1_to_1"`` (``[Z + round(-1/S), Z + round(1/S)]``),
    or a ``(lo, hi)`` pair of real values to clamp to. Rounding is half away from zero.
    """
    fmt = _int_range(out_fmt)

    def q(v):
        return zero_point + _round_half_away(v / scale)

    if activation is None:
        lo, hi = fmt.min, fmt.max
    elif activation == "relu":
        lo, hi = max(fmt.min, q(0.0)), fmt.max
    elif activation == "relu6":
        lo, hi = max(fmt.min, q(0.0)), min(fmt.max, q(6.0))
    elif activation == "relu_n1_to_1":
        lo, hi = max(fmt.min, q(-1.0)), min(fmt.max, q(1.0))
    elif isinstance(activation, tuple) and len(activation) == 2:
        lo, hi = max(fmt.min, q(float(activation[0]))), min(fmt.max, q(float(activation[1])))
    else:
        raise ValueError(f"activation must be None, 'relu', 'relu6', 'relu_n1_to_1' or (lo, hi), got {activation!r}")
    return int(lo), int(hi)


# ---- affine quantization ------------------------------------------------------------------------


def quantize_affine(x, scale, zero_point, fmt=_formats.INT8):
    """``clamp(round(x / scale) + zero_point)`` as int32 (TFLite's ``AffineQuantize``; ties away)."""
    fmt = _int_range(fmt, "fmt")
    x = jnp.asarray(x, jnp.float32)
    # The float32 quotient correctly rounded with gradual underflow on every backend (XLA on
    # GPU divides within 2 ulps; on CPU it flushes subnormals).
    r = _codec.quantize(_sm.quotient(x, jnp.asarray(scale, jnp.float32)), _formats.INT32, "nearest_away")
    return jnp.clip(r.astype(jnp.int32) + _as_int32(zero_point, "zero_point"), fmt.min, fmt.max)


def dequantize_affine(q, scale, zero_point):
    """``scale * (q - zero_point)`` in float32."""
    q, zero_point = _as_int32(q, "q"), _as_int32(zero_point, "zero_point")
    return _sm.product((q - zero_point).astype(jnp.float32), jnp.asarray(scale, jnp.float32))  # no flush on CPU


# ---- the integer GEMM ------------------------------------------------------------------------


def _int_dot(x, w):
    return lax.dot_general(x.astype(jnp.int32), w.astype(jnp.int32), (((x.ndim - 1,), (0,)), ((), ())),
                           preferred_element_type=jnp.int32)


def int_gemm(x_q, w_q, x_zero_point, w_zero_point, bias=None):
    """``sum_k (x_q - Zx)(w_q - Zw) + bias`` exactly, in int32 (wrapping past 2**31).

    ``x_q``: ``(..., K)`` integers; ``w_q``: ``(K, N)``; ``w_zero_point``: scalar or
    ``(N,)``; ``bias``: int32 ``(N,)`` or None. Computed by the expansion of the module
    doc (one int32 matmul, the row sums of ``x_q``, and weight-only terms).
    """
    x_q, w_q = _as_int32(x_q, "x_q"), _as_int32(w_q, "w_q")
    if x_q.shape[-1] != w_q.shape[0]:
        raise ValueError(f"mismatched shapes: x_q {x_q.shape} has K={x_q.shape[-1]}, w_q {w_q.shape} has K={w_q.shape[0]}")
    folded = _fold_bias(w_q, x_zero_point, w_zero_point, bias)
    return _int_dot(x_q, w_q) - jnp.sum(x_q, axis=-1, keepdims=True) * _as_int32(w_zero_point, "w_zero_point") + folded


def _fold_bias(w_q, x_zero_point, w_zero_point, bias):
    """``bias - Zx * colsum(w_q) + K Zx Zw``: everything that depends on the weights only."""
    K = w_q.shape[0]
    zx, zw = _as_int32(x_zero_point, "x_zero_point"), _as_int32(w_zero_point, "w_zero_point")
    b = jnp.zeros(w_q.shape[1:], jnp.int32) if bias is None else _as_int32(bias, "bias")
    return b - zx * jnp.sum(w_q, axis=0) + jnp.int32(K) * zx * zw


@jax.tree_util.register_pytree_node_class
class IntLinear:
    """A prepared integer layer ``y = act(x W + b)``: a JAX pytree.

    Arrays: ``w_q`` (K, N) int32 weights, ``w_zero_point`` (N,), ``bias_folded`` (N,)
    int32 (bias and the weight-only zero-point terms), ``multiplier`` and ``shift``
    (N,), ``w_scale`` (N,) and ``bias_q`` (N,) for reference. Static: the input and
    output zero points and scales, ``out_fmt``, the activation range, ``rounding``.
    """

    def __init__(self, w_q, w_zero_point, bias_folded, multiplier, shift, w_scale, bias_q, *, x_scale, x_zero_point,
                 out_scale, out_zero_point, out_fmt, act_min, act_max, rounding):
        self.w_q, self.w_zero_point, self.bias_folded = w_q, w_zero_point, bias_folded
        self.multiplier, self.shift, self.w_scale, self.bias_q = multiplier, shift, w_scale, bias_q
        self.x_scale, self.x_zero_point = x_scale, x_zero_point
        self.out_scale, self.out_zero_point, self.out_fmt = out_scale, out_zero_point, out_fmt
        self.act_min, self.act_max, self.rounding = act_min, act_max, rounding

    def tree_flatten(self):
        children = (self.w_q, self.w_zero_point, self.bias_folded, self.multiplier, self.shift, self.w_scale,
                    self.bias_q)
        aux = (self.x_scale, self.x_zero_point, self.out_scale, self.out_zero_point, self.out_fmt, self.act_min,
               self.act_max, self.rounding)
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        (obj.w_q, obj.w_zero_point, obj.bias_folded, obj.multiplier, obj.shift, obj.w_scale, obj.bias_q) = children
        (obj.x_scale, obj.x_zero_point, obj.out_scale, obj.out_zero_point, obj.out_fmt, obj.act_min, obj.act_max,
         obj.rounding) = aux
        return obj


def prepare_linear(w, bias=None, *, x_scale: float, x_zero_point: int, out_scale: float, out_zero_point: int,
                   w_fmt="int8_narrow", per_channel: bool = True, symmetric: bool = True, activation=None,
                   out_fmt=_formats.INT8, rounding: str = "double") -> IntLinear:
    """Quantize a float layer ``(w: (K, N), bias: (N,))`` for :func:`int_linear`.

    Weights: ``w_fmt`` with absmax scales per output channel (``per_channel``) or per
    tensor, symmetric (zero point 0; TFLite's int8 spec uses ``[-127, 127]``) or
    affine. Bias: int32 with scale ``x_scale * w_scale[n]``, zero point 0. The
    multipliers ``x_scale * w_scale[n] / out_scale`` go through
    :func:`quantize_multiplier` (in float64, from the float32 scales).
    """
    w = jnp.asarray(w, jnp.float32)
    if w.ndim != 2:
        raise ValueError(f"w must be (K, N), got shape {w.shape}")
    w_fmt = _int_range(w_fmt, "w_fmt")  # the int32 GEMM takes integer weights only
    out_range = _int_range(out_fmt)
    x_scale, out_scale = check_positive(x_scale, "x_scale"), check_positive(out_scale, "out_scale")
    x_zero_point = check_int(x_zero_point, "x_zero_point", _INT32_MIN, _INT32_MAX)
    out_zero_point = check_int(out_zero_point, "out_zero_point", out_range.min, out_range.max)
    per_channel, symmetric = check_bool(per_channel, "per_channel"), check_bool(symmetric, "symmetric")
    qa = _scaled.quantize_scaled(w, w_fmt, axis=0 if per_channel else None, symmetric=symmetric)
    w_q = _codec.decode(qa.codes, qa.fmt, jnp.float32).astype(jnp.int32)
    N = w.shape[1]
    w_scale = np.broadcast_to(np.asarray(qa.scale, np.float64).reshape(-1), (N,)).copy()
    zp = np.zeros(N, np.int32) if qa.zero_point is None else np.broadcast_to(
        np.asarray(qa.zero_point).reshape(-1), (N,)).astype(np.int32)
    bias_scale = float(np.float32(x_scale)) * w_scale
    if bias is None:
        bias_q = np.zeros(N, np.int32)
    else:
        b = np.asarray(bias, np.float64)
        bias_q = np.array([_round_half_away(v) for v in (b / bias_scale)], dtype=np.int64)
        bias_q = np.clip(bias_q, _INT32_MIN, _INT32_MAX).astype(np.int32)
    m, s = quantize_multiplier(bias_scale / float(np.float32(out_scale)), rounding=rounding)
    act_min, act_max = activation_range(activation, out_scale, out_zero_point, out_fmt)
    folded = _fold_bias(w_q, x_zero_point, jnp.asarray(zp), jnp.asarray(bias_q))
    return IntLinear(w_q, jnp.asarray(zp), folded, jnp.asarray(m), jnp.asarray(s), jnp.asarray(w_scale, jnp.float32),
                     jnp.asarray(bias_q), x_scale=x_scale, x_zero_point=x_zero_point,
                     out_scale=out_scale, out_zero_point=out_zero_point, out_fmt=out_range,
                     act_min=act_min, act_max=act_max, rounding=rounding)


def int_linear(x_q, layer: IntLinear):
    """``act(x W + b)`` in integers only: int32 GEMM with folded terms, then :func:`requantize`."""
    x_q = _as_int32(x_q, "x_q")
    acc = _int_dot(x_q, layer.w_q) - jnp.sum(x_q, axis=-1, keepdims=True) * layer.w_zero_point + layer.bias_folded
    return requantize(acc, layer.multiplier, layer.shift, layer.out_zero_point, layer.out_fmt,
                      act_min=layer.act_min, act_max=layer.act_max, rounding=layer.rounding)


# ---- convolution by im2col -------------------------------------------------------------------


def _pads(size, k, stride, padding):
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        return total // 2, total - total // 2
    raise ValueError(f"padding must be 'SAME', 'VALID' or ((top, bottom), (left, right)), got {padding!r}")


def im2col(x, kernel_size, *, stride=(1, 1), padding="VALID", pad_value=0):
    """Patches of an NHWC array: ``(N, OH, OW, KH * KW * C)``, ordered (kh, kw, c).

    ``padding``: ``"VALID"``, ``"SAME"`` (TensorFlow's rule: the extra row / column goes
    at the end) or explicit ``((top, bottom), (left, right))``; padded positions hold
    ``pad_value`` (for quantized inputs, the input zero point: a real zero).
    """
    x = jnp.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be NHWC (4-D), got shape {x.shape}")
    kh, kw = kernel_size
    sh, sw = stride
    if isinstance(padding, str):
        ph, pw = _pads(x.shape[1], kh, sh, padding), _pads(x.shape[2], kw, sw, padding)
    else:
        ph, pw = padding
    x = jnp.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=pad_value)
    H, W = x.shape[1], x.shape[2]
    oh, ow = (H - kh) // sh + 1, (W - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"the kernel {kernel_size} does not fit the padded input {H}x{W}")
    cols = [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
    return jnp.concatenate(cols, axis=-1)


def prepare_conv2d(w, bias=None, **kwargs) -> IntLinear:
    """Quantize an HWIO conv kernel ``(KH, KW, C, O)`` as the ``(KH*KW*C, O)`` GEMM of im2col.

    Keyword arguments are :func:`prepare_linear`'s.
    """
    w = jnp.asarray(w, jnp.float32)
    if w.ndim != 4:
        raise ValueError(f"w must be HWIO (4-D), got shape {w.shape}")
    return prepare_linear(w.reshape(-1, w.shape[-1]), bias, **kwargs)


def int_conv2d(x_q, layer: IntLinear, kernel_size, *, stride=(1, 1), padding="VALID"):
    """An integer-only NHWC convolution: im2col (padding with the input zero point), then :func:`int_linear`."""
    patches = im2col(_as_int32(x_q, "x_q"), kernel_size, stride=stride, padding=padding, pad_value=layer.x_zero_point)
    return int_linear(patches, layer)
