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
``quantize(x / scale) * scale``) or a ``granularity`` handled by
:func:`numfmt.scaled.quantize_scaled` (``"tensor"``, ``"channel"`` along ``axis``,
``"block"`` of ``block_size`` along ``axis``).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt import scaled as _scaled
from numfmt.bitlayout import check_float_input
from numfmt.formats import CodebookFormat, IntFormat

__all__ = ["fake_quant", "quantize_grad"]

_GRANULARITIES = (None, "tensor", "channel", "block")


@dataclasses.dataclass(frozen=True)
class _Opts:
    fmt: object
    rounding: str
    rbits: int | None
    saturate: bool
    clipped: bool
    granularity: str | None
    axis: object
    block_size: int | None
    scale_fmt: object
    scale_rounding: str | None
    calibration: object
    symmetric: bool


def _range(fmt):
    """The smallest and largest value of a format."""
    if isinstance(fmt, IntFormat):
        return float(fmt.min), float(fmt.max)
    if isinstance(fmt, CodebookFormat):
        return fmt.table[0], fmt.table[-1]
    return (-fmt.max if fmt.signed else 0.0), fmt.max


def _quantize(x, opts: _Opts, key, scale):
    """``(q, inside)``: the quantized values and where ``x`` lies in the representable range."""
    fmt = opts.fmt
    lo, hi = _range(fmt)
    if opts.granularity is None:
        y = x if scale is None else x / scale
        q = _codec.quantize(y, fmt, opts.rounding, key=key, rbits=opts.rbits, saturate=opts.saturate)
        if scale is not None:
            q = q * scale
        return q, (y >= lo) & (y <= hi)
    axis = None if opts.granularity == "tensor" else opts.axis
    qa = _scaled.quantize_scaled(
        x, fmt, axis=axis, block_size=opts.block_size, scale_fmt=opts.scale_fmt, symmetric=opts.symmetric,
        calibration=opts.calibration, rounding=opts.rounding, key=key, rbits=opts.rbits,
        scale_rounding=opts.scale_rounding)
    q = qa.dequantize(x.dtype)
    # The range of each group: the values of its smallest and its largest code.
    bounds = []
    for v in (lo, hi):
        codes = jnp.broadcast_to(_codec.encode(jnp.float32(v), fmt), qa.codes.shape)
        edge = _scaled.QArray(codes, qa.scale, qa.zero_point, qa.tensor_scale, fmt=qa.fmt, scale_fmt=qa.scale_fmt,
                              shape=qa.shape, dtype=qa.dtype, axis=qa.axis, block_size=qa.block_size,
                              elem_scale=qa.elem_scale)
        bounds.append(edge.dequantize(x.dtype))
    return q, (x >= bounds[0]) & (x <= bounds[1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _fake_quant(x, key, scale, opts):
    return _quantize(x, opts, key, scale)[0]


def _fake_quant_fwd(x, key, scale, opts):
    q, inside = _quantize(x, opts, key, scale)
    return q, (inside if opts.clipped else None, scale)


def _fake_quant_bwd(opts, res, g):
    inside, scale = res
    gx = g if inside is None else jnp.where(inside, g, jnp.zeros_like(g))
    return gx, None, None if scale is None else jnp.zeros_like(scale)


_fake_quant.defvjp(_fake_quant_fwd, _fake_quant_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _quantize_grad(x, key, scale, opts):
    return x


def _quantize_grad_fwd(x, key, scale, opts):
    return x, (key, scale)


def _quantize_grad_bwd(opts, res, g):
    key, scale = res
    q = _quantize(g, opts, key, scale)[0]
    return q, None, None if scale is None else jnp.zeros_like(scale)


_quantize_grad.defvjp(_quantize_grad_fwd, _quantize_grad_bwd)


def _make_opts(x, fmt, rounding, key, rbits, saturate, clipped, scale, granularity, axis, block_size, scale_fmt,
               scale_rounding, calibration, symmetric):
    x = check_float_input(x)
    fmt = _formats.get(fmt)
    rounding = _rounding.check_rounding(rounding, fmt)
    if rounding == "stochastic" and key is None:
        raise ValueError("rounding='stochastic' needs key= (a jax.random key)")
    if rounding != "stochastic" and (key is not None or rbits is not None):
        raise ValueError(f"key and rbits are only used with rounding='stochastic', got rounding={rounding!r}")
    if granularity not in _GRANULARITIES:
        raise ValueError(f"granularity must be one of {_GRANULARITIES}, got {granularity!r}")
    if granularity is not None and scale is not None:
        raise ValueError("pass either scale= or granularity=, not both")
    if granularity == "block" and block_size is None:
        raise ValueError("granularity='block' needs block_size")
    if granularity != "block" and block_size is not None:
        raise ValueError("block_size is for granularity='block'")
    if isinstance(axis, list):
        axis = tuple(axis)
    if scale is not None:
        scale = jnp.asarray(scale, x.dtype)
    opts = _Opts(fmt, rounding, rbits, bool(saturate), bool(clipped), granularity, axis, block_size,
                 _formats.get(scale_fmt), scale_rounding, calibration, bool(symmetric))
    return x, opts, scale


def fake_quant(x, fmt, rounding="nearest_even", *, key=None, rbits=None, saturate=True, clipped=False, scale=None,
               granularity=None, axis=-1, block_size=None, scale_fmt=_formats.FP32, scale_rounding=None,
               calibration="absmax", symmetric=True):
    """Quantize ``x`` in the forward pass; pass the gradient straight through.

    Args:
      x: a float array.
      fmt: the format (object or name).
      rounding: a mode of ``numfmt.ROUNDING_MODES``; ``key`` / ``rbits`` for ``"stochastic"``.
      saturate: values past the format's largest value become it (default True; the
        codec's inf / NaN rules otherwise; scaled elements always saturate).
      clipped: zero the gradient where ``x`` lies outside the representable range
        (``[min, max]`` of the format, times the scale; per group when scaled).
      scale: an explicit scale (array broadcasting against ``x``): the result is
        ``quantize(x / scale) * scale``; the scale gets a zero gradient.
      granularity: None (no scale, or ``scale``), ``"tensor"``, ``"channel"`` (the values
        along ``axis`` share a scale) or ``"block"`` (``block_size`` along ``axis``):
        :func:`numfmt.scaled.quantize_scaled` with ``scale_fmt``, ``scale_rounding``,
        ``calibration`` and ``symmetric``.

    Returns:
      the quantized values, with ``x``'s dtype. The gradient is the identity
      (straight-through), or with ``clipped`` the indicator of the range.
    """
    x, opts, scale = _make_opts(x, fmt, rounding, key, rbits, saturate, clipped, scale, granularity, axis,
                                block_size, scale_fmt, scale_rounding, calibration, symmetric)
    return _fake_quant(x, key, scale, opts)


def quantize_grad(x, fmt, rounding="nearest_even", *, key=None, rbits=None, saturate=True, scale=None,
                  granularity=None, axis=-1, block_size=None, scale_fmt=_formats.FP32, scale_rounding=None,
                  calibration="absmax", symmetric=True):
    """The identity in the forward pass; the cotangent is quantized in the backward pass.

    Takes :func:`fake_quant`'s quantization arguments; they apply to the cotangent
    (``scale`` divides it before rounding and multiplies it back after, as loss scaling
    does). With ``rounding="stochastic"`` the ``key`` decides the random bits.
    """
    x, opts, scale = _make_opts(x, fmt, rounding, key, rbits, saturate, False, scale, granularity, axis,
                                block_size, scale_fmt, scale_rounding, calibration, symmetric)
    return _quantize_grad(x, key, scale, opts)
