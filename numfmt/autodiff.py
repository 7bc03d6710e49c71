"""Gradients through quantization: :func:`fake_quant` (straight-through) and :func:`quantize_grad`.

* :func:`fake_quant` rounds its input in the forward pass and passes the gradient
  straight through (the straight-through estimator of Bengio, Léonard & Courville 2013,
  arXiv 1308.3432, as used for quantization-aware training by Jacob et al. 2018,
  arXiv 1712.05877). With ``clipped=True`` the gradient is zero where the input lies
  outside the representable range, as in TensorFlow's ``FakeQuantWithMinMaxVars`` and
  PACT (Choi et al. 2018).
* :func:`quantize_grad` is the identity in the forward pass and rounds the cotangent in
  the backward pass, e.g. to E5M2 with stochastic rounding, as QPyTorch's
  ``Quantizer(backward_number=...)`` does (Zhang et al. 2019, arXiv 1910.04540) and
  FP8 training recipes do for gradients (Micikevicius et al. 2022, arXiv 2209.05433).

Both take the same quantization arguments: a format, a rounding mode (and ``key`` for
``"stochastic"``), and optionally a scale: an explicit ``scale`` (values are
``quantize(x / scale) * scale``) or a ``granularity`` (``"tensor"``, ``"channel"`` along
``axis``, ``"block"`` of ``block_size`` along ``axis``). They make one
:class:`~numfmt.scheme.QuantScheme` and call the scaled layer's core,
:func:`numfmt.quantcore.quantize_with`, which gives the dequantized values and the scales
that bound each group's range.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from numfmt import formats as _formats
from numfmt import scalemath as _sm
from numfmt.bitlayout import check_float_input, ordered
from numfmt.checks import check_bool, is_traced
from numfmt.formats import CodebookFormat, IntFormat
from numfmt.quantcore import (
    dequantize_values,
    quantize_with,
    resolve_axes,
    scale_layout,
)
from numfmt.scaled import check_clip
from numfmt.scheme import QuantScheme

__all__ = ["fake_quant", "quantize_grad"]

_GRANULARITIES = (None, "tensor", "channel", "block")


def _range(fmt):
    """The smallest and largest element value of a format."""
    if isinstance(fmt, IntFormat):
        return float(fmt.min), float(fmt.max)
    if isinstance(fmt, CodebookFormat):
        return fmt.table[0], fmt.table[-1]
    return (-fmt.max if fmt.signed else 0.0), fmt.max


def _quantize(x, scheme: QuantScheme, key, scale, clip, want_inside):
    """``(q, inside)``: the fake-quantized values (x's dtype) and, if asked, where ``x``
    lies in the representable range (each group's smallest to largest value)."""
    q = quantize_with(x, scheme, clip=clip, scale=scale, key=key, codes=False, values=True)
    out = q.values.astype(x.dtype)
    if not want_inside:
        return out, None
    work = q.values.dtype
    lo, hi = _range(scheme.fmt)
    xw = x.astype(work)
    if scheme.scale_fmt is None:
        y = xw if q.scale is None else _sm.unscale(xw, *_sm.scale_parts(jnp.where(jnp.isnan(q.scale), 1, q.scale)),
                                                     coarse=True)
        inside = _between(y, jnp.asarray(lo, work), jnp.asarray(hi, work))
        return out, inside if q.scale is None else inside & ~jnp.isnan(q.scale)
    # The range of each group: its smallest and largest element value, dequantized.
    axis, bs = resolve_axes(scheme, x.shape)
    blocked, keep = scale_layout(x.shape, axis, bs)
    bounds = [dequantize_values(jnp.full(keep, v, work), q.scale, q.zero_point, q.tensor_scale, scheme, keep, keep)
              for v in (lo, hi)]
    return out, _between(xw.reshape(blocked), *bounds).reshape(x.shape)


def _between(v, lo, hi):
    """``lo <= v <= hi``, compared on ordered integer keys (exact for subnormals on every
    backend); False where any of them is NaN."""
    ok = ~(jnp.isnan(v) | jnp.isnan(lo) | jnp.isnan(hi))
    return ok & (ordered(v) >= ordered(lo)) & (ordered(v) <= ordered(hi))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _fake_quant(x, key, scale, clip, scheme, clipped):
    return _quantize(x, scheme, key, scale, clip, False)[0]


def _fake_quant_fwd(x, key, scale, clip, scheme, clipped):
    q, inside = _quantize(x, scheme, key, scale, clip, clipped)
    return q, (inside, scale, clip)


def _zeros_like(v):
    return None if v is None else jax.tree_util.tree_map(jnp.zeros_like, v)


def _fake_quant_bwd(scheme, clipped, res, g):
    inside, scale, clip = res
    gx = g if inside is None else jnp.where(inside, g, jnp.zeros_like(g))
    return gx, None, _zeros_like(scale), _zeros_like(clip)


_fake_quant.defvjp(_fake_quant_fwd, _fake_quant_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _quantize_grad(x, key, scale, clip, scheme):
    return x


def _quantize_grad_fwd(x, key, scale, clip, scheme):
    return x, (key, scale, clip)


def _quantize_grad_bwd(scheme, res, g):
    key, scale, clip = res
    q = _quantize(g, scheme, key, scale, clip, False)[0]
    return q, None, _zeros_like(scale), _zeros_like(clip)


_quantize_grad.defvjp(_quantize_grad_fwd, _quantize_grad_bwd)


def _make_scheme(x, fmt, rounding, key, rbits, saturate, scale, granularity, axis, block_size, scale_fmt,
                 scale_rounding, calibration, symmetric, nonfinite):
    """The checked input, the scheme, and the data (explicit scale, clip values)."""
    x = check_float_input(x)
    saturate, symmetric = check_bool(saturate, "saturate"), check_bool(symmetric, "symmetric")
    if granularity not in _GRANULARITIES:
        raise ValueError(f"granularity must be one of {_GRANULARITIES}, got {granularity!r}")
    if granularity is not None and scale is not None:
        raise ValueError("pass either scale= or granularity=, not both")
    if granularity == "block" and block_size is None:
        raise ValueError("granularity='block' needs block_size")
    if granularity != "block" and block_size is not None:
        raise ValueError("block_size is for granularity='block'")
    clip = None
    if granularity is None:
        scheme = QuantScheme(fmt, rounding=rounding, rbits=rbits, saturate=saturate, scale_fmt=None)
        if scale is not None:
            scale = _check_scale(scale, x)
    else:
        if not saturate:
            raise ValueError("saturate=False is for unscaled quantization: scaled elements always saturate (OCP MX)")
        calibration, clip = check_clip(calibration, symmetric)
        scheme = QuantScheme(fmt, rounding=rounding, rbits=rbits, scale_fmt=scale_fmt,
                             axis=None if granularity == "tensor" else axis, block_size=block_size,
                             scale_rounding=scale_rounding, calibration=calibration, symmetric=symmetric,
                             nonfinite=nonfinite)
        resolve_axes(scheme, x.shape)
    if scheme.rounding == "stochastic" and key is None:
        raise ValueError("rounding='stochastic' needs key= (a jax.random key)")
    if scheme.rounding != "stochastic" and key is not None:
        raise ValueError(f"key and rbits are only used with rounding='stochastic', got rounding={scheme.rounding!r}")
    return x, scheme, scale, clip


def _check_scale(scale, x):
    """An explicit scale: positive and finite when concrete (traced: NaN results where it is not)."""
    s = jnp.asarray(scale, x.dtype if x.dtype == jnp.float64 else jnp.float32)
    if not is_traced(s):
        v = np.asarray(s, np.float64)
        if not np.all(np.isfinite(v) & (v > 0)):
            raise ValueError(f"scale must be positive and finite (values are quantize(x / scale) * scale), got {scale!r}")
    try:
        np.broadcast_shapes(s.shape, x.shape)
    except ValueError:
        raise ValueError(f"scale of shape {s.shape} does not broadcast against x of shape {x.shape}") from None
    return s


def fake_quant(x, fmt, rounding="nearest_even", *, key=None, rbits=None, saturate=True, clipped=False, scale=None,
               granularity=None, axis=-1, block_size=None, scale_fmt=_formats.FP32, scale_rounding=None,
               calibration="absmax", symmetric=True, nonfinite="propagate"):
    """Quantize ``x`` in the forward pass; pass the gradient straight through.

    Args:
      x: a float array.
      fmt: the format (object or name).
      rounding: a mode of ``numfmt.ROUNDING_MODES``; ``key`` / ``rbits`` for ``"stochastic"``.
      saturate: values past the format's largest value become it. Default True, unlike
        ``nf.quantize`` (False, IEEE overflow to inf / NaN, fixed by the design): in
        training an overflow to inf or NaN would poison the loss, and FP8 recipes clip.
        Scaled elements always saturate (OCP MX), so ``saturate=False`` needs no
        ``granularity``.
      clipped: zero the gradient where ``x`` lies outside the representable range
        (``[min, max]`` of the format, times the scale; per group when scaled).
      scale: an explicit scale (positive and finite, an array broadcasting against
        ``x``): the result is ``quantize(x / scale) * scale``, both operations correctly
        rounded (a traced scale that is not positive and finite gives NaN); the scale
        gets a zero gradient.
      granularity: None (no scale, or ``scale``), ``"tensor"``, ``"channel"`` (the values
        along ``axis`` share a scale) or ``"block"`` (``block_size`` along ``axis``):
        a :class:`~numfmt.scheme.QuantScheme` with ``scale_fmt``, ``scale_rounding``,
        ``calibration``, ``symmetric`` and ``nonfinite`` (the arguments of
        :func:`numfmt.scaled.quantize_scaled`; "channel" has the one meaning of
        numfmt.scheme: the values along ``axis`` share a scale).

    Returns:
      the quantized values, with ``x``'s dtype. The gradient is the identity
      (straight-through), or with ``clipped`` the indicator of the range.
    """
    x, scheme, scale, clip = _make_scheme(x, fmt, rounding, key, rbits, saturate, scale, granularity, axis,
                                          block_size, scale_fmt, scale_rounding, calibration, symmetric, nonfinite)
    return _fake_quant(x, key, scale, clip, scheme, check_bool(clipped, "clipped"))


def quantize_grad(x, fmt, rounding="nearest_even", *, key=None, rbits=None, saturate=True, scale=None,
                  granularity=None, axis=-1, block_size=None, scale_fmt=_formats.FP32, scale_rounding=None,
                  calibration="absmax", symmetric=True, nonfinite="propagate"):
    """The identity in the forward pass; the cotangent is quantized in the backward pass.

    Takes :func:`fake_quant`'s quantization arguments; they apply to the cotangent
    (``scale`` divides it before rounding and multiplies it back after, as loss scaling
    does). With ``rounding="stochastic"`` the ``key`` decides the random bits.
    """
    x, scheme, scale, clip = _make_scheme(x, fmt, rounding, key, rbits, saturate, scale, granularity, axis,
                                          block_size, scale_fmt, scale_rounding, calibration, symmetric, nonfinite)
    return _quantize_grad(x, key, scale, clip, scheme)
