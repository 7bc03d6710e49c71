"""Binary and ternary quantization: :func:`binarize`, :func:`ternarize` and their straight-through forms.

* :func:`binarize` (XNOR-Net, Rastegari, Ordonez, Redmon & Farhadi, "XNOR-Net: ImageNet
  classification using binary convolutional neural networks", ECCV 2016, arXiv
  1603.05279, §3.1): ``x ~ alpha * sign(x)`` with ``alpha = mean(|x|)`` over the values
  that share it (the least-squares optimal scale for a given sign pattern), and
  ``sign(0) = +1``.
* :func:`ternarize` (Ternary Weight Networks, Li, Zhang & Liu 2016, arXiv 1605.04711,
  §2.2): ``delta = delta_factor * mean(|x|)`` (``delta_factor = 0.7``, their
  approximation of the optimal threshold for Gaussian-like weights), values
  ``-alpha, 0, +alpha`` by ``|x| > delta`` and the sign, and ``alpha`` the mean of ``|x|``
  over the values beyond ``delta``.

Both return a :class:`numfmt.QArray` whose element format is the codebook
:data:`BINARY` (``{-1, +1}``, 1 bit, code 1 is ``+1``) or :data:`TERNARY`
(``{-1, 0, +1}``, 2 bits, codes 0, 1, 2) and whose ``scale`` is ``alpha`` (float32, or
float64 for float64 inputs), per tensor (``axis=None``) or shared along ``axis`` as in
:func:`numfmt.quantize_scaled`: for a weight ``(out, in)`` used as ``x @ w.T``, XNOR-Net's
per-filter scales are ``axis=1``. ``nbytes`` counts the codes packed (``numfmt.pack``: 1
or 2 bits a value) plus one float32 scale per group.

How the numbers are computed (the tests hold these to a NumPy reference):

* ``mean(|x|)`` is ``jnp.mean`` in the work dtype (float32, or float64); ``delta`` is
  ``fl(fl(delta_factor) * mean)`` in that dtype, and ``|x| == delta`` counts as *not*
  beyond it (TWN's set is ``|x| > delta``), so a tie becomes 0;
* all zeros: binary ``alpha = 0`` (values ``+0``); ternary: every code 0 (the value 0)
  and ``alpha = 0``; a group where no value exceeds ``delta`` (a ``delta_factor`` of 1
  or more can do that) is all zeros too;
* a group holding NaN or inf gets a non-finite ``alpha`` (NaN, or inf), so its values
  read back as NaN or inf, never as finite numbers.

:func:`fake_binarize` / :func:`fake_ternarize` are the quantization-aware-training forms,
built like :func:`numfmt.fake_quant`: the forward pass gives the dequantized values, the
backward pass the clipped straight-through estimator of BinaryConnect (Courbariaux,
Bengio & David 2015, arXiv 1511.00363) and of the binarized networks of Courbariaux,
Hubara et al. 2016 (arXiv 1602.02830) that XNOR-Net uses: ``g * (|x| <= clip)``.
``alpha`` is held constant in the backward pass.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt.bitlayout import F32, F64, check_float_input, pow2, quotient_nearest
from numfmt.checks import normalize_axes
from numfmt.formats import CodebookFormat
from numfmt.scaled import QArray

__all__ = ["BINARY", "TERNARY", "binarize", "fake_binarize", "fake_ternarize", "ternarize", "ternary_delta"]

#: The element format of :func:`binarize`: code 0 is -1, code 1 is +1 (the bit an XNOR kernel stores).
BINARY = CodebookFormat("binary", (-1.0, 1.0))
#: The element format of :func:`ternarize`: codes 0, 1, 2 are -1, 0, +1 (2 bits).
TERNARY = CodebookFormat("ternary", (-1.0, 0.0, 1.0))


def _layout_of(x):
    return F64 if x.dtype == jnp.float64 else F32


def _reduced(shape, axis):
    """The reduced axes and the scale's shape (size 1 on the reduced axes; ``()`` per tensor)."""
    if axis is None:
        return tuple(range(len(shape))), ()
    return axis, tuple(1 if i in axis else d for i, d in enumerate(shape))


def _check(x, axis, arg="x"):
    x = check_float_input(x, arg)
    if x.size == 0:  # as calibrate and kmeans_quantize say: the scale is a mean of |x|
        raise ValueError(f"{arg} is empty: there is no magnitude to take the scale from")
    return x, normalize_axes(axis, x.ndim)


def _check_delta_factor(delta_factor) -> float:
    if isinstance(delta_factor, bool) or not isinstance(delta_factor, (int, float, np.integer, np.floating)):
        raise TypeError(f"delta_factor must be a positive number (a Python float), got {delta_factor!r}")
    # The bounds keep fl(delta_factor * mean) a normal float in the scaled domain (see _scaled).
    if not (math.isfinite(delta_factor) and 2.0**-32 <= delta_factor <= 2.0**32):
        raise ValueError(f"delta_factor must be a positive finite number in [2**-32, 2**32], got {delta_factor!r}")
    return float(delta_factor)


# ---- group means that every backend computes alike ------------------------------------------------
#
# XLA on CPU flushes subnormal operands and results of float arithmetic to zero, and a
# reduction's order is the backend's. So the magnitudes of each group are first scaled by
# a power of two 2**k, on their bits, to put the group's largest in [1, 2) (a scaled value
# below 2**-126 is taken as 0: it cannot move a sum of at least 1), summed in a fixed
# pairwise order, divided (a true division, not a reciprocal), and scaled back by 2**-k
# on the bits, rounding to nearest even where the result is subnormal. docs/lowbit.md.


def _grouped_bits(x, axis):
    """``(reduce, user, lay, bits)``: the magnitude bits of ``x`` with the reduced axes moved last and
    flattened, shape ``(..., n)``, with the reduced axes, the scale's shape and the layout."""
    reduce, user = _reduced(x.shape, axis)
    lay = _layout_of(x)
    keep = [i for i in range(x.ndim) if i not in reduce]
    xt = jnp.transpose(x.astype(lay.dtype), keep + list(reduce))
    xt = xt.reshape(tuple(x.shape[i] for i in keep) + (-1,))
    bits = lax.bitcast_convert_type(xt, lay.uint) & lay.uint((1 << (lay.width - 1)) - 1)
    return reduce, user, lay, bits


def _negative(x, lay):
    """``x < 0`` read from the bits: the sign bit of a non-zero value (a CPU compare flushes subnormals).

    So ``sign(0) = sign(-0) = +1``; a NaN counts by its sign bit.
    """
    bits = lax.bitcast_convert_type(x.astype(lay.dtype), lay.uint)
    return (bits >> lay.uint(lay.width - 1) == 1) & ((bits << lay.uint(1)) != 0)


def _ungroup(v, shape, reduce):
    """The inverse of :func:`_grouped_bits`' layout: ``(..., n)`` back to ``shape``."""
    keep = [i for i in range(len(shape)) if i not in reduce]
    order = keep + list(reduce)
    v = v.reshape(tuple(shape[i] for i in order))
    return jnp.transpose(v, np.argsort(order))


def _scaled(bits, lay):
    """``(y, k)``: ``y = |x| * 2**k`` (below 2**-emin taken as 0) with ``k`` per group, the largest ``y`` in [1, 2)."""
    S, U, P = lay.sint, lay.uint, lay.man
    E = (bits >> U(P)).astype(S)  # exponent fields (all ones for inf / NaN)
    k = S(lay.bias) - jnp.maximum(jnp.max(E, axis=-1, keepdims=True), 1)  # 2**(E_max - bias) * 2**k = 1
    normal = (bits.astype(S) + (k << S(P))).astype(U)
    y_normal = jnp.where((E >= 1) & (E + k >= 1), lax.bitcast_convert_type(normal, lay.dtype), 0)
    # A subnormal m * 2**(1 - bias - P) as (m * 2**-P) * 2**(k + 1 - bias): two normal factors
    # (k < 0 only when the group's largest is at least 2, and then y is far below 2**-126).
    m = (bits & U((1 << P) - 1)).astype(S).astype(lay.dtype) * np.asarray(2.0**-P, lay.dtype)
    y_sub = jnp.where(k >= 0, m * pow2(jnp.maximum(k, 0) + S(1 - lay.bias), lay.dtype), 0)
    y = jnp.where(E == 0, y_sub, y_normal)
    tiny = np.asarray(2.0 ** (1 - lay.bias), lay.dtype)
    return jnp.where(y < tiny, 0, y), k


def _pairwise_sum(y):
    """The sum over the last axis: padded with zeros to a power of two, then halves added until one is left."""
    n = y.shape[-1]
    size = 1 << max(n - 1, 0).bit_length()
    y = jnp.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, size - n)])
    while y.shape[-1] > 1:
        half = y.shape[-1] // 2
        y = y[..., :half] + y[..., half:]
    return y


def _divide(total, count):
    """``total / count`` correctly rounded, for finite ``total`` (0 or at least 1: the
    largest scaled value is in [1, 2)) and ``count >= 1``: the quotient is normal.

    :func:`numfmt.bitlayout.quotient_nearest`: XLA rewrites a division by a constant, or
    by anything broadcast (as ``vmap`` does to an unbatched divisor), into a product with
    its reciprocal (1 ulp off, e.g. 83 / 3), and on GPU divides within 2 ulps only.
    """
    return quotient_nearest(total, jnp.asarray(count, total.dtype))


def _unscale(v, k, lay):
    """``v * 2**-k`` for positive normal ``v``, correctly rounded (nearest even) on the bits; inf past the range."""
    S, U, P = lay.sint, lay.uint, lay.man
    bits = lax.bitcast_convert_type(v, U)
    E = (bits >> U(P)).astype(S) - k
    normal = (bits.astype(S) - (k << S(P))).astype(U)
    d = jnp.clip(S(1) - E, 0, S(P + 2))  # how far a subnormal result's significand moves right
    sig = (bits & U((1 << P) - 1)) | U(1 << P)
    sub = _rounding.round_shift(sig, d, jnp.zeros(sig.shape, bool), "nearest_even")
    out = lax.bitcast_convert_type(jnp.where(E >= 1, normal, sub), lay.dtype)
    top = (1 << (lay.width - 1 - P)) - 1  # the exponent field of inf: past it, the result overflows
    return jnp.where(v == 0, v, jnp.where(E >= top, jnp.asarray(np.inf, lay.dtype), out))


def _finite_or(alpha, bits, lay):
    """NaN where the group has a NaN, else inf where it has an inf, else ``alpha``."""
    inf_bits = lay.uint(((1 << (lay.width - 1)) - 1) ^ ((1 << lay.man) - 1))
    nan = jnp.any(bits > inf_bits, axis=-1, keepdims=True)
    inf = jnp.any(bits == inf_bits, axis=-1, keepdims=True)
    return jnp.where(nan, jnp.nan, jnp.where(inf, jnp.inf, alpha)).astype(alpha.dtype)


@functools.partial(jax.jit, static_argnames=("axis",))
def _binarize(x, *, axis):
    _, user, lay, bits = _grouped_bits(x, axis)
    y, k = _scaled(bits, lay)
    alpha = _unscale(_divide(_pairwise_sum(y), y.shape[-1]), k, lay)
    alpha = _finite_or(alpha, bits, lay).reshape(user)
    return _negative(x, lay).astype(jnp.uint8) ^ jnp.uint8(1), alpha


def _ternary_threshold(x, axis, delta_factor):
    """The scaled domain of :func:`_ternarize`: ``(reduce, user, lay, bits, y, k, delta_y)``,
    ``delta_y = fl(fl(delta_factor) * mean_y)``."""
    reduce, user, lay, bits = _grouped_bits(x, axis)
    y, k = _scaled(bits, lay)
    mean_y = _divide(_pairwise_sum(y), y.shape[-1])
    return reduce, user, lay, bits, y, k, np.asarray(delta_factor, lay.dtype) * mean_y


@functools.partial(jax.jit, static_argnames=("axis", "delta_factor"))
def _ternarize(x, *, axis, delta_factor):
    reduce, user, lay, bits, y, k, delta_y = _ternary_threshold(x, axis, delta_factor)
    beyond_y = y > delta_y  # a tie at delta is not beyond it
    count = jnp.sum(beyond_y, axis=-1, keepdims=True)
    alpha_y = _divide(_pairwise_sum(jnp.where(beyond_y, y, 0)), jnp.maximum(count, 1))  # 0 if none is beyond
    alpha = _finite_or(_unscale(alpha_y, k, lay), bits, lay).reshape(user)
    beyond = _ungroup(beyond_y, x.shape, reduce)  # |x| > delta exactly where y > delta_y
    codes = jnp.where(beyond, jnp.where(_negative(x, lay), 0, 2), 1).astype(jnp.uint8)
    return codes, alpha


@functools.partial(jax.jit, static_argnames=("axis", "delta_factor"))
def _ternary_delta(x, *, axis, delta_factor):
    _, user, lay, _, _, k, delta_y = _ternary_threshold(x, axis, delta_factor)
    return _unscale(delta_y, k, lay).reshape(user)


def _qarray(x, codes, alpha, fmt, axis):
    # As in quantize_scaled, a float64 input keeps its scales in float64; storage counts FP32 scales.
    return QArray(codes, alpha, None, None, fmt=fmt, scale_fmt=_formats.FP32, shape=x.shape, dtype=x.dtype, axis=axis)


def binarize(x, *, axis=None) -> QArray:
    """Binarize ``x`` as XNOR-Net does: ``alpha * sign(x)``, ``alpha = mean(|x|)`` per group.

    Args:
      x: a float array.
      axis: None (one ``alpha`` for the tensor), or the axis / axes whose values share
        an ``alpha`` (as in :func:`numfmt.quantize_scaled`).

    Returns:
      a :class:`numfmt.QArray` with ``fmt=BINARY`` (code 1 for ``x >= 0``, including
      ``-0``; code 0 for ``x < 0``) and ``scale = alpha``; ``.dequantize()`` gives
      ``±alpha``. Module doc: the exact arithmetic, zeros and non-finite inputs.
    """
    x, axis = _check(x, axis)
    codes, alpha = _binarize(x, axis=axis)
    return _qarray(x, codes, alpha, BINARY, axis)


def ternarize(x, *, axis=None, delta_factor=0.7) -> QArray:
    """Ternarize ``x`` as Ternary Weight Networks do: ``{-alpha, 0, +alpha}`` by the threshold ``delta``.

    Args:
      x: a float array.
      axis: None (per tensor), or the axis / axes whose values share ``delta`` and ``alpha``.
      delta_factor: ``delta = delta_factor * mean(|x|)``; a positive number (TWN: 0.7).

    Returns:
      a :class:`numfmt.QArray` with ``fmt=TERNARY`` (codes 0, 1, 2 for ``-1, 0, +1``:
      ``+1`` where ``x > delta``, ``-1`` where ``x < -delta``, 0 otherwise, ties at
      ``delta`` included) and ``scale = alpha``, the mean of ``|x|`` over ``|x| > delta``
      (0 where no value is beyond ``delta``). Module doc: the exact arithmetic.
    """
    x, axis = _check(x, axis)
    delta_factor = _check_delta_factor(delta_factor)
    codes, alpha = _ternarize(x, axis=axis, delta_factor=delta_factor)
    return _qarray(x, codes, alpha, TERNARY, axis)


def ternary_delta(x, *, axis=None, delta_factor=0.7):
    """The threshold ``delta = fl(fl(delta_factor) * mean(|x|))`` that :func:`ternarize` uses, shaped like its scale."""
    x, axis = _check(x, axis)
    delta_factor = _check_delta_factor(delta_factor)
    return _ternary_delta(x, axis=axis, delta_factor=delta_factor)


# ---- straight-through forms for quantization-aware training ---------------------------------


@dataclasses.dataclass(frozen=True)
class _Opts:
    ternary: bool
    axis: tuple | None
    delta_factor: float
    clip: float | None


def _forward(x, opts: _Opts):
    fn = _ternarize if opts.ternary else _binarize
    kw = {"delta_factor": opts.delta_factor} if opts.ternary else {}
    codes, alpha = fn(x, axis=opts.axis, **kw)
    fmt = TERNARY if opts.ternary else BINARY
    return _qarray(x, codes, alpha, fmt, opts.axis).dequantize(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _fake(x, opts):
    return _forward(x, opts)


def _fake_fwd(x, opts):
    return _forward(x, opts), x


def _fake_bwd(opts, x, g):
    if opts.clip is None:
        return (g,)
    return (jnp.where(jnp.abs(x) <= opts.clip, g, jnp.zeros_like(g)),)


_fake.defvjp(_fake_fwd, _fake_bwd)


def _check_clip(clip):
    if clip is None:
        return None
    if isinstance(clip, bool) or not isinstance(clip, (int, float, np.integer, np.floating)) or not clip > 0:
        raise ValueError(f"clip must be a positive number or None, got {clip!r}")
    return float(clip)


def fake_binarize(x, *, axis=None, clip=1.0):
    """:func:`binarize` forward (the values ``±alpha``), the clipped straight-through gradient backward.

    The gradient is ``g * (|x| <= clip)`` (BinaryConnect's hard-tanh estimator;
    ``clip=None``: ``g``, the plain estimator); ``alpha`` is treated as a constant.
    """
    x, axis = _check(x, axis)
    return _fake(x, _Opts(False, axis, 0.0, _check_clip(clip)))


def fake_ternarize(x, *, axis=None, delta_factor=0.7, clip=1.0):
    """:func:`ternarize` forward (``{-alpha, 0, +alpha}``), the clipped straight-through gradient backward.

    The gradient is ``g * (|x| <= clip)`` (``clip=None``: ``g``), as in :func:`fake_binarize`.
    """
    x, axis = _check(x, axis)
    return _fake(x, _Opts(True, axis, _check_delta_factor(delta_factor), _check_clip(clip)))
