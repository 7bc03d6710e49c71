"""Error metrics: :func:`error_stats`, :func:`ulp`, :func:`ulp_error`, :func:`unit_roundoff`.

Measurements run on the host in float64 (NumPy), so that measuring adds (almost) no
rounding error of its own: the difference of two float32 values is exact in float64
when they are within a factor ``2**29`` of each other, as a value and its rounding are
(unless it lies far below the format's smallest subnormal), and a division by a power
of two is exact. Called on traced values (inside ``jax.jit``), the same
formulas run in ``jax.numpy`` in the traced dtype instead.

The ulp here is taken from the bits of the reference value (``frexp`` on the host is
exact); this is analysis code, not the codec, which never uses ``frexp``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat

__all__ = ["error_stats", "precision", "ulp", "ulp_error", "unit_roundoff"]

_NEAREST = ("nearest_even", "nearest_away")


def _is_traced(*arrays) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


def _as_float64(x, arg):
    """``x`` as a float64 NumPy array (bfloat16, float8, ... widen exactly)."""
    a = np.asarray(x)
    if a.dtype.kind in "cOSUMm":
        raise TypeError(f"{arg} must be a real numeric array, got dtype {a.dtype}")
    return a.astype(np.float64)


def _inputs(ref, approx):
    """Both arrays, broadcast, in float64 (host) or the traced float dtype; and the module."""
    if _is_traced(ref, approx):
        r, a = jnp.asarray(ref), jnp.asarray(approx)
        dt = jnp.result_type(r.dtype, a.dtype, jnp.float32)
        r, a = jnp.broadcast_arrays(r.astype(dt), a.astype(dt))
        return r, a, jnp
    r, a = _as_float64(ref, "ref"), _as_float64(approx, "approx")
    try:
        r, a = np.broadcast_arrays(r, a)
    except ValueError:
        raise ValueError(f"ref and approx must broadcast together, got shapes {r.shape} and {a.shape}") from None
    return r, a, np


def _range_ends(fmt):
    """The most negative and the largest finite value of ``fmt``."""
    if isinstance(fmt, CodebookFormat):
        return fmt.table[0], fmt.table[-1]
    if isinstance(fmt, IntFormat):
        return float(fmt.min), float(fmt.max)
    lo = -fmt.max if fmt.signed else fmt.min_subnormal if not fmt.has_zero else 0.0
    return lo, fmt.max


def error_stats(ref, approx, fmt=None) -> dict:
    """Summary statistics of the error of ``approx`` against the reference ``ref``.

    With ``e = approx - ref`` (formed exactly, in float64), the keys are:

    * ``count``: number of elements (after broadcasting).
    * ``nan_in``: elements whose ``ref`` is NaN; they are left out of everything else.
    * ``nan_produced``: ``ref`` is not NaN but ``approx`` is NaN (e.g. an overflow in a
      format with NaN but no infinity, such as E4M3).
    * ``overflow``: ``ref`` is finite but ``approx`` is ``±inf``.
    * ``saturated``: ``ref`` lies beyond the largest (or most negative) finite value of
      ``fmt`` and ``approx`` equals that value; ``None`` when ``fmt`` is not given.
    * ``underflow``: ``ref`` is finite and non-zero but ``approx`` is zero (flushed).
    * ``n_finite``: elements where both ``ref`` and ``approx`` are finite; every error
      statistic below is over these only, so read it together with the counts above.
    * ``exact``: elements with ``e == 0``.
    * ``abs_max``, ``abs_mean``, ``abs_rms``: ``max |e|``, ``mean |e|``, ``sqrt(mean e**2)``.
    * ``mse``: ``mean e**2``.
    * ``bias``: ``mean e``, the mean signed error (0 for an unbiased rounding, on average).
    * ``rel_max``, ``rel_mean``, ``rel_rms``: the same of ``|e| / |ref|``, over the
      finite elements with ``ref != 0`` (``n_rel`` of them).
    * ``sqnr_db``: signal-to-quantization-noise ratio ``10 log10(sum ref**2 / sum e**2)``,
      ``inf`` when there is no error, ``nan`` when there is no finite non-zero signal.

    Args:
      ref: the exact values (any real array; NumPy or JAX).
      approx: the approximations, broadcasting with ``ref``.
      fmt: optional format (or name) ``approx`` was rounded to, for the ``saturated`` count.

    Returns:
      a dict of Python ints and floats (of 0-d ``jax.Array``\\ s when called inside ``jit``).
    """
    r, a, xp = _inputs(ref, approx)
    fmt = None if fmt is None else _formats.get(fmt)
    ref_nan = xp.isnan(r)
    ref_fin = xp.isfinite(r)
    fin = ref_fin & xp.isfinite(a)
    zero = xp.zeros((), r.dtype)
    e = xp.where(fin, a - r, zero)
    ae = xp.abs(e)
    e2 = e * e
    n_fin = xp.sum(fin)
    nz = fin & (r != 0)
    rel = xp.where(nz, ae / xp.where(nz, xp.abs(r), 1), zero)
    n_rel = xp.sum(nz)
    signal = xp.sum(xp.where(fin, r * r, zero))
    noise = xp.sum(e2)

    def mean(total, n):
        return xp.where(n > 0, total / xp.maximum(n, 1), xp.nan)

    if fmt is None:
        saturated = None
    else:
        lo, hi = _range_ends(fmt)
        saturated = xp.sum(ref_fin & (((r > hi) & (a == hi)) | ((r < lo) & (a == lo))))
    out = {
        "count": r.size,
        "nan_in": xp.sum(ref_nan),
        "nan_produced": xp.sum(~ref_nan & xp.isnan(a)),
        "overflow": xp.sum(ref_fin & xp.isinf(a)),
        "saturated": saturated,
        "underflow": xp.sum(ref_fin & (r != 0) & (a == 0)),
        "n_finite": n_fin,
        "exact": xp.sum(fin & (e == 0)),
        "abs_max": xp.where(n_fin > 0, xp.max(ae, initial=0.0), xp.nan),
        "abs_mean": mean(xp.sum(ae), n_fin),
        "abs_rms": xp.sqrt(mean(noise, n_fin)),
        "mse": mean(noise, n_fin),
        "bias": mean(xp.sum(e), n_fin),
        "n_rel": n_rel,
        "rel_max": xp.where(n_rel > 0, xp.max(rel, initial=0.0), xp.nan),
        "rel_mean": mean(xp.sum(rel), n_rel),
        "rel_rms": xp.sqrt(mean(xp.sum(rel * rel), n_rel)),
        "sqnr_db": _sqnr_db(signal, noise, xp),
    }
    if xp is np:
        out = {k: _py(v) for k, v in out.items()}
    return out


def _sqnr_db(signal, noise, xp):
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = xp.where(noise > 0, signal / xp.where(noise > 0, noise, 1), xp.inf)
        ratio = xp.where(signal > 0, ratio, xp.nan)
        return 10 * xp.log10(ratio)


def _py(v):
    if v is None:
        return None
    v = np.asarray(v)
    if v.dtype.kind in "iub":
        return int(v)
    return float(v)


# ---- ulp and unit roundoff ------------------------------------------------------------------


def _float_format(fmt, what):
    fmt = _formats.get(fmt)
    if isinstance(fmt, CodebookFormat):
        raise ValueError(f"{what} is not defined for the codebook format {fmt.name}: its values are not a binary grid")  # noqa: TRY004
    return fmt


def ulp(x, fmt):
    """The spacing of ``fmt``'s grid at ``x``: the unit in the last place.

    For a float format with ``p = man_bits`` stored mantissa bits and lowest normal
    exponent ``emin``::

        ulp(x) = 2 ** (max(floor(log2 |x|), emin) - p)

    with ``floor(log2 |x|)`` read exactly from the bits of ``x`` (``frexp``), so
    ``ulp(0) = 2**(emin - p)``, the subnormal spacing. A format without subnormals has
    only ``{0, min_normal}`` below ``min_normal``: there the spacing is ``min_normal``.
    Above ``max`` the formula continues (the extended grid of docs/semantics.md).
    Integer formats have spacing 1. NaN and inf give NaN.

    Returns:
      float64 NumPy array of the shape of ``x`` (traced dtype inside ``jit``).
    """
    fmt = _float_format(fmt, "ulp")
    if _is_traced(x):
        x = jnp.asarray(x)
        xp = jnp
        x = x.astype(jnp.result_type(x.dtype, jnp.float32))
    else:
        xp = np
        x = _as_float64(x, "x")
    if isinstance(fmt, IntFormat):
        u = xp.ones_like(x)
    else:
        _, e = xp.frexp(xp.abs(x))  # |x| = m * 2**e, m in [0.5, 1): floor(log2|x|) = e - 1
        e = xp.where(x == 0, fmt.emin, e - 1)
        u = xp.ldexp(xp.ones_like(x), (xp.maximum(e, fmt.emin) - fmt.man_bits).astype(xp.int32))
        if not fmt.subnormals and fmt.has_zero:
            u = xp.where(xp.abs(x) < fmt.min_normal, fmt.min_normal, u)
    return xp.where(xp.isfinite(x), u, xp.nan)


def ulp_error(ref, approx, fmt, *, signed: bool = False):
    """The error of ``approx`` in units of ``fmt``'s ulp at ``ref``: ``|approx - ref| / ulp(ref)``.

    A correctly rounded result has ``ulp_error <= 0.5`` under the nearest modes and
    ``< 1`` under the directed ones, for every ``ref`` in range. ``signed=True`` keeps
    the sign of ``approx - ref``. Computed in float64 on the host: exact for a float32
    value and its rounding, except far below the format's smallest subnormal, where
    an error of ``1 - 2**-60`` ulp shows as 1. See :func:`ulp` for the grid spacing used.
    """
    r, a, xp = _inputs(ref, approx)
    e = (a - r) / ulp(r, fmt)
    return e if signed else xp.abs(e)


def precision(fmt) -> int:
    """The precision ``p`` of a float format: significand bits, ``man_bits + 1``."""
    fmt = _float_format(fmt, "precision")
    if not isinstance(fmt, FloatFormat):
        raise ValueError(f"precision is defined for float formats, not {fmt.name}")  # noqa: TRY004
    return fmt.man_bits + 1


def unit_roundoff(fmt, rounding="nearest_even") -> float:
    """The unit roundoff ``u`` of ``fmt`` under ``rounding``: ``|fl(x) - x| <= u |x|``.

    With precision ``p = man_bits + 1``: ``u = 2**-p`` for the nearest modes and
    ``u = 2**(1-p)`` for the directed modes, round-to-odd and stochastic rounding (one
    ulp relative to the leading bit). It holds for ``x`` in the normal range
    (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002, Thm 2.2).
    Integer and codebook formats have an absolute, not relative, error: ValueError.
    """
    fmt = _formats.get(fmt)
    rounding = _rounding.check_rounding(rounding)
    if not isinstance(fmt, FloatFormat):
        raise ValueError(  # noqa: TRY004
            f"unit roundoff is defined for floating-point formats; {fmt.name} is a {fmt.kind} format "
            "(its rounding error is absolute: at most 1/2 or 1 step of its grid)"
        )
    p = precision(fmt)
    return math.ldexp(1.0, -p if rounding in _NEAREST else 1 - p)
