"""Calibration: choosing the clipping range that a scale is computed from.

:func:`calibrate` returns, for each group of values that will share one scale, the
clip value ``c`` (symmetric: the scale maps ``c`` to the format's largest value) or
the range ``(lo, hi)`` (affine). The methods:

``absmax``
    the largest finite ``|x|`` (or the finite min and max). Nothing clips.
``percentile``
    the ``percentile``-th percentile of ``|x|`` (or the ``100 - p`` and ``p``
    percentiles of ``x``), ignoring non-finite values. The "percentile" calibrator of
    NVIDIA's pytorch-quantization and of Wu et al., "Integer quantization for deep
    learning inference" (arXiv 2004.09602), §4.
``mse``
    the clip ``r * absmax`` that minimises the mean squared quantization error of the
    group, searched over ``r = k / num_ratios`` for ``k = 1 .. num_ratios`` (ties go to
    the smaller ``r``). Every candidate is evaluated with the real format (the codec),
    FP32 scale, nearest-even rounding and saturation.
``kl``
    TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017):
    a ``bins``-bin histogram of ``|x|``; for every candidate edge ``i`` the reference
    distribution ``P`` is the first ``i`` bins with the clipped mass added to bin
    ``i-1``, and ``Q`` merges the same bins into ``fmt.max + 1`` levels and spreads each
    level evenly over its non-empty bins; the threshold is the edge of the ``i`` with
    least ``KL(P || Q)``. Symmetric integer formats, one range per tensor.

And a moving-average min/max observer for activations seen batch by batch (the
``MovingAverageMinMaxObserver`` of PyTorch's quantization, averaging constant 0.01): a
pure state (:class:`MinMaxState`, a pytree) and :func:`minmax_update`.

Methods other than ``absmax`` are meant for finite data; non-finite values are left
out of every statistic.

Backends: ``absmax`` and the affine range are reductions over the bits, the same on
every backend. ``percentile``, ``mse``, ``kl`` and the observer are float arithmetic by
definition (sums, means, divisions): XLA on CPU flushes their subnormal operands to
zero, a GPU divides within 2 ulps and sums in another order, so their clip values can
differ between backends in the last bits (docs/semantics.md, "Backends").
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt.bitlayout import (
    check_float_input,
    from_ordered,
    inf_bits,
    layout_of,
    magnitude_bits,
    ordered,
)
from numfmt.checks import check_bool, normalize_axes
from numfmt.formats import IntFormat

__all__ = ["METHODS", "MinMaxState", "calibrate", "minmax_init", "minmax_range", "minmax_update"]

METHODS = ("absmax", "percentile", "mse", "kl")


class Extent(NamedTuple):
    """The magnitudes of a group (:func:`group_extent`)."""

    absmax: jax.Array
    min_nonzero: jax.Array


def _axes(x, axis):
    """``axis`` (None, an int or a tuple) as a sorted tuple of non-negative axes of ``x``.

    Not :func:`numfmt.checks.normalize_axes`: the scaled layer passes checked axes, and
    ``()`` here means no axis (a scalar's one group), which that boundary check refuses.
    """
    axes = tuple(range(x.ndim)) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % x.ndim for a in axes))


def group_extent(x, axis=None, keepdims=False, *, finite=True) -> Extent:
    """The largest ``|x|`` over ``axis``, exact and the same on every backend, and the smallest non-zero one.

    ``absmax`` with ``finite=True``: the largest finite ``|x|`` (0 where there is none);
    with ``finite=False``: a non-finite value (NaN or inf) where the group holds one, else
    the largest ``|x|`` (the OCP MX reference's ``max(|x|)``, which a NaN or inf poisons).
    ``min_nonzero``: the smallest non-zero ``|x|`` (inf where there is none).

    The bits of ``|x|`` order like its value (NaN above inf), so integer reductions are
    exact and untouched by XLA's CPU flush of subnormal operands (a float max of
    subnormals is 0 there, and XLA's CPU backend drops NaN in a float max reduction of
    4096 or more elements: docs/semantics.md, "Backends"). One variadic integer reduce
    gives both: on XLA's CPU backend it runs at a third of a copy's time, faster than a
    lone ``jnp.max``; a select inside it would make it several times slower, so the
    smallest non-zero magnitude is taken as ``min(bits - 1) + 1`` on unsigned bits (0
    wraps to the top). Groups that leave out the last axis (per-column scales, blocks
    along axis 0) are reduced in stages (:func:`reduce_staged`): before, a float max
    with a check for NaN and subnormals, plus the rows' reduce for a lower bound of the
    smallest magnitude, took two passes over ``x``. Non-finite values, where ``finite``
    asks to leave them out, are masked in a second integer reduction run only when present.
    """
    axes = _axes(x, axis)
    lay = layout_of(x.dtype)
    U = lay.uint
    top = inf_bits(lay)
    b = magnitude_bits(x, lay)
    hi, below = reduce_staged((b, b - U(1)), (U(0), U((1 << lay.width) - 1)), _max_min, axes)
    lo = jnp.where(below >= top, top, below + U(1))  # no non-zero value: inf
    if finite:
        # The conditional takes x, not its magnitude bits, as operand: an operand of a
        # lax.cond is materialized, and bits computed outside would be one more full pass.
        def masked(v):
            m = magnitude_bits(v, lay)
            return reduce_staged((jnp.where(m < top, m, U(0)),), (U(0),), _max, axes)[0]

        hi = lax.cond(jnp.any(hi >= top), masked, lambda v: hi, x)
    ext = Extent(lax.bitcast_convert_type(hi, x.dtype), lax.bitcast_convert_type(lo, x.dtype))
    return Extent(*(jnp.expand_dims(v, axes) for v in ext)) if keepdims else ext


def reduce_staged(operands, inits, fn, axes):
    """``lax.reduce(operands, inits, fn, axes)`` for an associative, commutative ``fn``
    (max, min), computed in stages where ``axes`` leave out the last axis.

    XLA's CPU backend (jax 0.10) runs an integer reduction over a leading axis as a slow
    loop (the columns of a 4096 x 4096 array: 190 ms, eight copies' time) but one over a
    middle axis of 32 or fewer as a loop vectorized along the last axis: so each
    reduced axis is cut into pieces of at most 32 and reduced piece by piece (3 to 5 ms
    in all for those columns; docs/benchmarks.md). Exact: max and min do not depend on
    the order. A reduction that includes the last axis is one ``lax.reduce`` (the fast
    kind there already).
    """
    operands = tuple(operands)
    ndim = operands[0].ndim
    if ndim - 1 in axes or not axes or any(operands[0].shape[a] == 0 for a in axes):  # (over nothing: the inits)
        return lax.reduce(operands, tuple(inits), fn, tuple(axes))
    for a in sorted(axes, reverse=True):  # from the last reduced axis: the others keep their index
        while operands[0].shape[a] > 1:
            m = operands[0].shape[a]
            k = m if m <= 32 else next((d for d in range(32, 1, -1) if m % d == 0), m)
            shape = operands[0].shape[:a] + (m // k, k) + operands[0].shape[a + 1:]
            operands = lax.reduce(tuple(v.reshape(shape) for v in operands), tuple(inits), fn, (a + 1,))
        operands = tuple(v.reshape(v.shape[:a] + v.shape[a + 1:]) for v in operands)
    return operands


def _max(a, b):
    return (jnp.maximum(a[0], b[0]),)


def group_absmax(x, axis=None, keepdims=False, *, finite=True):
    """The largest ``|x|`` over ``axis`` (:func:`group_extent`'s ``absmax``)."""
    ext = group_extent(x, axis, keepdims, finite=finite)
    # With the extent's minimum unused, XLA's CPU backend compiles the lone max into
    # materialized magnitude bits and a tree of reduce-windows (1.6x a copy at 4096 x 4096);
    # with both outputs of the variadic reduce used it is the fast kind (0.1x). The
    # minimum is a magnitude, its top bit always 0: or-ing that bit in changes nothing.
    lay = layout_of(x.dtype)
    hi, lo = (lax.bitcast_convert_type(v, lay.uint) for v in ext)
    return lax.bitcast_convert_type(hi | (lo >> lay.uint(lay.width - 1)), x.dtype)


def finite_absmax(x, axis=None, keepdims=False):
    """The largest finite ``|x|`` over ``axis`` (0 where there is none); exact (:func:`group_absmax`)."""
    return group_absmax(x, axis, keepdims, finite=True)


def _max_min(a, b):
    return jnp.maximum(a[0], b[0]), jnp.minimum(a[1], b[1])




def _finite_abs(x):
    return jnp.where(jnp.isfinite(x), jnp.abs(x), 0)


def finite_range(x, axis=None, keepdims=False):
    """The finite ``(min(x, 0), max(x, 0))`` over ``axis``: exact, the same on every backend.

    A group with no finite value gets ``[0, 0]``. Computed on integer keys that order
    like the floats (:func:`numfmt.bitlayout.ordered`), so that a subnormal extreme is
    not read as 0 by XLA's CPU flush of subnormal operands: the range half of
    :func:`extent_and_range` (one variadic reduce; the masked reduction runs only where
    a NaN or inf is present).
    """
    return extent_and_range(x, axis, keepdims)[1]


def extent_and_range(x, axis=None, keepdims=False, *, finite=True):
    """``(group_extent(x, ...), finite_range(x, ...))`` from one pass over ``x`` (``finite_range`` is its second half).

    Affine quantization needs both (the range for its scale and zero point, the extent
    for the choice of its fast pass); as two reductions they read ``x`` twice. When the
    groups include the last axis one variadic integer reduce gives the ordered keys' min
    and max and the magnitudes' ``min(bits - 1)``: the largest magnitude is that of one
    of the two extreme keys (keys order like the values, so the most negative and the
    most positive value hold the largest magnitudes of their signs), a NaN or inf shows
    as a key past +-inf's, and only then (a ``lax.cond`` on ``x``) a masked reduction
    leaves them out. The extent equals :func:`group_extent`'s. Groups that leave out the last
    axis are reduced in stages (:func:`reduce_staged`).
    """
    axes = _axes(x, axis)
    lay = layout_of(x.dtype)
    U, S = lay.uint, lay.sint
    top = inf_bits(lay)
    big = S((1 << (lay.width - 1)) - 1)
    klo, khi, below = reduce_staged((ordered(x, lay), ordered(x, lay), magnitude_bits(x, lay) - U(1)),
                                    (big, -big - S(1), U((1 << lay.width) - 1)), _min_max_min, axes)
    mag = jnp.maximum(*(magnitude_bits(from_ordered(k, x.dtype), lay) for k in (klo, khi)))
    nonfinite = (khi >= top.astype(S)) | (klo <= ordered(jnp.asarray(-jnp.inf, x.dtype), lay))

    def masked(v):  # NaN and inf left out
        m = magnitude_bits(v, lay)
        key = jnp.where(m < top, ordered(v, lay), 0)
        # The initial values are made here, not captured: under vmap a lax.cond with a batched
        # predicate batches its captured operands, and lax.reduce has no rule for batched inits.
        hi_key = S((1 << (lay.width - 1)) - 1)
        return reduce_staged((key, key, jnp.where(m < top, m, U(0))), (hi_key, -hi_key - S(1), U(0)), _min_max_max,
                             axes)

    lo, hi, finite_mag = lax.cond(jnp.any(nonfinite), masked, lambda v: (klo, khi, mag), x)
    ext = Extent(lax.bitcast_convert_type(finite_mag if finite else mag, x.dtype),
                 lax.bitcast_convert_type(jnp.where(below >= top, top, below + U(1)), x.dtype))
    rng = from_ordered(jnp.minimum(lo, 0), x.dtype), from_ordered(jnp.maximum(hi, 0), x.dtype)
    if keepdims:
        ext, rng = Extent(*(jnp.expand_dims(v, axes) for v in ext)), tuple(jnp.expand_dims(v, axes) for v in rng)
    return ext, rng


def _min_max_min(a, b):
    return jnp.minimum(a[0], b[0]), jnp.maximum(a[1], b[1]), jnp.minimum(a[2], b[2])


def _min_max_max(a, b):
    return jnp.minimum(a[0], b[0]), jnp.maximum(a[1], b[1]), jnp.maximum(a[2], b[2])


def _fake_quant(x, c_lo, c_hi, fmt, symmetric):
    """Quantize-dequantize ``x`` with the range ``[c_lo, c_hi]`` (FP32 scale, nearest even)."""
    if symmetric:
        s = c_hi / fmt.max
        s = jnp.where(s > 0, s, 1)
        return _codec.quantize(x / s, fmt, saturate=True) * s
    qmin, qmax = fmt.min, fmt.max
    s = (c_hi - c_lo) / (qmax - qmin)
    s = jnp.where(s > 0, s, 1)
    z = jnp.clip(qmin - jnp.round(c_lo / s), qmin, qmax)
    return (jnp.clip(jnp.round(x / s) + z, qmin, qmax) - z) * s


def _mse_search(x, fmt, axis, symmetric, num_ratios):
    lo, hi = finite_range(x, axis, True)
    amax = jnp.maximum(-lo, hi)
    xf = jnp.where(jnp.isfinite(x), x, 0)

    def err(r):
        c_lo, c_hi = (r * -amax, r * amax) if symmetric else (r * lo, r * hi)
        d = _fake_quant(xf, c_lo, c_hi, fmt, symmetric) - xf
        return jnp.mean(d * d, axis=axis, keepdims=True)

    def body(k, carry):
        best_err, best_r = carry
        r = (k + 1).astype(x.dtype) / num_ratios
        e = err(r)
        better = e < best_err
        return jnp.where(better, e, best_err), jnp.where(better, r, best_r)

    init = (jnp.full(amax.shape, jnp.inf, x.dtype), jnp.ones(amax.shape, x.dtype))
    _, r = lax.fori_loop(0, num_ratios, body, init)
    return (r * lo, r * hi) if not symmetric else (None, r * amax)


def _kl_threshold(x, n_levels, bins, stride):
    """TensorRT entropy calibration on a histogram of ``|x|`` (module doc)."""
    a = _finite_abs(x).reshape(-1)
    amax = jnp.max(a)
    width = jnp.where(amax > 0, amax / bins, 1)
    idx = jnp.minimum((a / width).astype(jnp.int32), bins - 1)
    hist = jax.ops.segment_sum(jnp.ones_like(a), idx, num_segments=bins)
    b = jnp.arange(bins)
    candidates = jnp.arange(n_levels, bins + 1, stride)

    def kl(i):
        inside = b < i
        sliced = jnp.where(inside, hist, 0)
        p = sliced.at[i - 1].add(jnp.sum(hist) - jnp.sum(sliced))  # clipped mass into the last bin
        merged = i // n_levels
        level = jnp.minimum(b // merged, n_levels - 1)  # the last level takes the remainder
        level_mass = jax.ops.segment_sum(sliced, level, num_segments=n_levels)
        nonzero = inside & (p > 0)
        level_count = jax.ops.segment_sum(nonzero.astype(hist.dtype), level, num_segments=n_levels)
        q = jnp.where(nonzero, level_mass[level] / jnp.maximum(level_count[level], 1), 0)
        p = p / jnp.sum(p)
        q = q / jnp.maximum(jnp.sum(q), 1e-30)
        # A level whose bins were empty before the clipped mass came in: smooth Q so that
        # the divergence stays finite (it is then large, and the candidate loses).
        return jnp.sum(jnp.where(p > 0, p * jnp.log(p / jnp.maximum(q, 1e-12)), 0))

    kls = lax.map(kl, candidates, batch_size=64)
    best = candidates[jnp.argmin(kls)]
    return jnp.where(amax > 0, best * width, 0).astype(x.dtype)


def calibrate(
    x,
    fmt,
    method: str = "absmax",
    *,
    axis=None,
    keepdims: bool = False,
    symmetric: bool = True,
    percentile: float = 99.99,
    num_ratios: int = 100,
    bins: int = 2048,
    kl_stride: int = 1,
):
    """The clipping range of ``x`` for quantization to ``fmt`` (methods in the module doc).

    Args:
      x: a float array.
      fmt: the element format (a format or its name); ``mse`` rounds into it and
        ``kl`` takes its number of levels from it.
      method: ``"absmax"``, ``"percentile"``, ``"mse"`` or ``"kl"``.
      axis: the axes reduced together (values that share one scale); None: all.
      keepdims: keep the reduced axes with size 1 (then the result broadcasts against
        ``x``). ``quantize_scaled(calibration=...)`` takes the result either way.
      symmetric: True gives the clip value ``c`` (>= 0); False gives ``(lo, hi)`` with
        ``lo <= 0 <= hi``, for affine quantization with a zero point.
      percentile: for ``method="percentile"``, in (0, 100].
      num_ratios: for ``method="mse"``, the number of clip ratios tried.
      bins: for ``method="kl"``, the histogram size (TensorRT uses 2048).
      kl_stride: for ``method="kl"``, try every ``kl_stride``-th candidate edge.

    Returns:
      ``c`` or ``(lo, hi)``, arrays of ``x``'s float dtype.
    """
    fmt = _formats.get(fmt)
    x = check_float_input(x)
    keepdims, symmetric = check_bool(keepdims, "keepdims"), check_bool(symmetric, "symmetric")
    if x.dtype != jnp.float64:
        x = x.astype(jnp.float32)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    axes = normalize_axes(axis, x.ndim)
    if x.size == 0:
        raise ValueError("x is empty: there is nothing to calibrate on")
    if not symmetric and not isinstance(fmt, IntFormat):
        raise ValueError(f"symmetric=False (a zero point) needs an IntFormat, got {fmt.name}")
    if method == "percentile" and not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if method == "mse" and (isinstance(num_ratios, bool) or not isinstance(num_ratios, int) or num_ratios < 1):
        raise ValueError(f"num_ratios must be an int >= 1, got {num_ratios!r}")
    if method == "kl":
        if not isinstance(fmt, IntFormat) or not fmt.signed:
            raise ValueError(f"method='kl' is TensorRT's calibration for signed integer formats, got {fmt.name}")
        if not symmetric:
            raise ValueError("method='kl' is symmetric only (symmetric=True)")
        if axes is not None and axes != tuple(range(x.ndim)):
            raise ValueError("method='kl' calibrates one range per tensor: pass axis=None")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < fmt.max + 1:
            raise ValueError(f"bins must be an int >= fmt.max + 1 = {fmt.max + 1}, got {bins!r}")
        if isinstance(kl_stride, bool) or not isinstance(kl_stride, int) or kl_stride < 1:
            raise ValueError(f"kl_stride must be an int >= 1, got {kl_stride!r}")
    return _calibrate_jit(x, fmt=fmt, method=method, axes=axes, keepdims=keepdims, symmetric=symmetric,
                          percentile=float(percentile), num_ratios=num_ratios, bins=bins, kl_stride=kl_stride)


@functools.partial(jax.jit, static_argnames=(
    "fmt", "method", "axes", "keepdims", "symmetric", "percentile", "num_ratios", "bins", "kl_stride"))
def _calibrate_jit(x, *, fmt, method, axes, keepdims, symmetric, percentile, num_ratios, bins, kl_stride):
    if method == "absmax":
        if symmetric:
            return finite_absmax(x, axes, keepdims)
        return finite_range(x, axes, keepdims)
    if method == "percentile":
        if symmetric:
            a = jnp.where(jnp.isfinite(x), jnp.abs(x), jnp.nan)
            return jnp.nanpercentile(a, percentile, axis=axes, keepdims=keepdims)
        v = jnp.where(jnp.isfinite(x), x, jnp.nan)
        lo = jnp.nanpercentile(v, 100 - percentile, axis=axes, keepdims=keepdims)
        hi = jnp.nanpercentile(v, percentile, axis=axes, keepdims=keepdims)
        return jnp.minimum(lo, 0), jnp.maximum(hi, 0)
    if method == "mse":
        lo, c = _mse_search(x, fmt, axes, symmetric, num_ratios)
        if not keepdims:
            squeeze = axes if axes is not None else tuple(range(x.ndim))
            c = jnp.squeeze(c, squeeze)
            lo = None if symmetric else jnp.squeeze(lo, squeeze)
        return c if symmetric else (lo, c)
    c = _kl_threshold(x, fmt.max + 1, bins, kl_stride)
    return c.reshape((1,) * x.ndim) if keepdims else c


# ---- moving-average min/max observer ------------------------------------------------------


class MinMaxState(NamedTuple):
    """State of a moving-average min/max observer (a pytree: pass it through ``jit``).

    ``min`` and ``max`` are the running estimates; ``count`` the batches seen.
    """

    min: jax.Array
    max: jax.Array
    count: jax.Array


def minmax_init(shape=(), dtype=jnp.float32) -> MinMaxState:
    """A fresh observer state whose ``min``/``max`` have ``shape`` (``()``: per tensor)."""
    return MinMaxState(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype), jnp.zeros((), jnp.int32))


def minmax_update(state: MinMaxState, x, *, momentum: float = 0.01, axis=None) -> MinMaxState:
    """Fold one batch ``x`` into the observer.

    The first batch sets ``min``/``max`` to its own finite min/max; later batches move
    them by ``momentum`` toward the batch's: ``m <- m + momentum * (batch_m - m)``
    (PyTorch's ``MovingAverageMinMaxObserver``). ``axis``: the reduced axes (None: all),
    reduced with ``keepdims=True`` so per-channel states broadcast against ``x``. A
    batch with no finite value (an empty one too) leaves the state as it is.
    """
    if not 0 < momentum <= 1:
        raise ValueError(f"momentum must be in (0, 1], got {momentum}")
    x = jnp.asarray(x)
    axes = normalize_axes(axis, x.ndim)
    finite = jnp.isfinite(x)
    # The initial values make an empty batch one with no finite value (it leaves the state).
    bmin = jnp.min(jnp.where(finite, x, jnp.inf), axis=axes, keepdims=axes is not None, initial=jnp.inf)
    bmax = jnp.max(jnp.where(finite, x, -jnp.inf), axis=axes, keepdims=axes is not None, initial=-jnp.inf)
    if bmin.shape != state.min.shape:
        raise ValueError(
            f"the batch reduces to shape {bmin.shape} but the state has shape {state.min.shape}: "
            "create it with minmax_init(shape) of that shape"
        )
    seen = jnp.isfinite(bmin)
    first = state.count == 0
    new_min = jnp.where(first, bmin, state.min + momentum * (bmin - state.min))
    new_max = jnp.where(first, bmax, state.max + momentum * (bmax - state.max))
    new_min = jnp.where(seen, new_min, state.min).astype(state.min.dtype)
    new_max = jnp.where(seen, new_max, state.max).astype(state.max.dtype)
    return MinMaxState(new_min, new_max, state.count + jnp.any(seen).astype(jnp.int32))


def minmax_range(state: MinMaxState, *, symmetric: bool = True):
    """The observer's range: the clip value ``max(|min|, |max|)``, or ``(lo, hi)`` with 0 inside."""
    lo = jnp.minimum(state.min, 0)
    hi = jnp.maximum(state.max, 0)
    return jnp.maximum(-lo, hi) if symmetric else (lo, hi)

