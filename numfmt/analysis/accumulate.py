"""Sequential accumulation in a low-precision format: sums, dot products, stagnation.

A small, exact model of an accumulator: ``s_k = fl(s_{k-1} + t_k)``, where ``fl``
rounds to the accumulator's format by any rounding mode (``numfmt.quantize``). Each
addition is *correctly* rounded: the exact sum is first formed as a float64 pair
(TwoSum, Knuth, TAOCP vol. 2, §4.2.2) and rounded to odd in float64 (Boldo &
Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using
rounding to odd", IEEE TC 57(4), 2008), which a second rounding into any format of at
most 51 significant bits turns into the correctly rounded result, for every mode.
Products of float32 values are exact in float64.

This is the textbook model (one product, one rounding into any format, any mode) that
the study sets beside Higham's bounds. What hardware does is another sum: the study's
"error against K" of the profiles users run comes from the one hardware accumulator
model, :func:`numfmt.tensorcore.tensorcore_dot` (``experiments.hardware_vs_k``), which
``qmatmul`` runs for the ``h100_*`` profiles.
The functions run under ``jax.enable_x64`` internally and return float64 NumPy arrays.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt.bitlayout import x64
from numfmt.formats import FloatFormat

__all__ = ["dot_partials", "harmonic_sum", "recursive_sum", "stagnation"]


def _round_to_odd_sum(s, t):
    """``s + t`` rounded to odd in float64: exact when representable, else the odd neighbour."""
    hi = s + t
    bb = hi - s
    lo = (s - (hi - bb)) + (t - bb)  # TwoSum: hi + lo == s + t exactly
    even = (lax.bitcast_convert_type(hi, jnp.uint64) & jnp.uint64(1)) == 0
    toward = jnp.where(lo > 0, jnp.inf, -jnp.inf)
    return jnp.where((lo != 0) & even, jnp.nextafter(hi, toward), hi)


@functools.partial(jax.jit, static_argnames=("acc", "rounding", "round_terms", "rbits"))
def _scan_sum(terms, init, key, *, acc, rounding, round_terms, rbits):
    stochastic = rounding == "stochastic"
    n = terms.shape[0]
    if stochastic:
        # Every rounding's random word drawn at once, outside the loop: (init, terms, sums),
        # from the codec's one source of random bits (numfmt.rounding.hash_bits).
        words = _rounding.hash_bits(key, (2 * n + 1, *terms.shape[1:]), jnp.uint64)
        w0, w_terms, w_add = words[0], words[1 : n + 1], words[n + 1 :]
    else:
        w0 = w_terms = w_add = jnp.zeros((n, 0), jnp.uint64)

    def rnd(v, w):
        if stochastic:
            return _codec.quantize(v, acc, rounding, random_bits=w, rbits=rbits)
        return _codec.quantize(v, acc, rounding)

    def step(s, xs):
        t, wt, wa = xs
        if round_terms:
            t = rnd(t, wt)
        s = rnd(_round_to_odd_sum(s, t), wa)
        return s, s

    s0 = rnd(jnp.broadcast_to(init, terms.shape[1:]).astype(jnp.float64), w0)
    _, partials = lax.scan(step, s0, (terms, w_terms, w_add))
    return partials


def _check_acc(acc):
    acc = _formats.get(acc)
    if not isinstance(acc, FloatFormat) or acc.man_bits > 49:
        raise ValueError(f"the accumulator must be a float format, got {acc.name}")
    return acc


def recursive_sum(terms, acc, rounding="nearest_even", *, key=None, init=0.0, round_terms=False, rbits=None):
    """Partial sums of ``terms`` along axis 0, each addition rounded into ``acc``.

    ``out[k] = fl(out[k-1] + t_k)`` with ``out[-1] = fl(init)``, every ``fl`` a correct
    rounding into ``acc`` by ``rounding`` (module doc). The other axes are independent
    sums (trials).

    Args:
      terms: array ``(n, ...)``, float32 or float64 values.
      acc: the accumulator's float format (or name), e.g. ``"bf16"``, ``numfmt.E8M13``.
      rounding: any rounding mode; ``"stochastic"`` needs ``key`` (each rounding draws
        fresh bits from it) and takes ``rbits``.
      init: the starting value (rounded into ``acc``).
      round_terms: also round each term into ``acc`` before adding it (as a product
        rounded to the accumulator's format would be).

    Returns:
      float64 NumPy array of the shape of ``terms``: the partial sums.
    """
    acc = _check_acc(acc)
    rounding = _rounding.check_rounding(rounding)
    if rounding == "stochastic" and key is None:
        raise ValueError("rounding='stochastic' needs key= (a jax.random key)")
    if key is None:
        key = jax.random.key(0)
    with x64():
        t = jnp.asarray(np.asarray(terms, dtype=np.float64))
        if t.ndim == 0:
            raise ValueError("terms must have at least one axis (the summation axis 0)")
        out = _scan_sum(t, jnp.float64(init), key, acc=acc, rounding=rounding, round_terms=bool(round_terms),
                        rbits=rbits)
        return np.asarray(out)


def dot_partials(a, b, acc, rounding="nearest_even", *, key=None, fma=False):
    """Sequential dot products of ``a`` and ``b`` along axis 0, accumulated in ``acc``.

    Each product ``a_i b_i`` (exact in float64 for float32 inputs) is rounded into
    ``acc`` (unless ``fma``, where it enters the addition exactly, as a fused
    multiply-add does), then added with one rounding into ``acc``.

    Returns:
      ``(computed, exact, magnitude)``: float64 arrays of the shape of ``a * b``, the
      computed partial sums, the exact ones (float64 running sums of the exact products,
      off by at most ``n 2**-53`` relative to ``magnitude``), and the running
      ``sum_i |a_i b_i|`` that the bounds of :mod:`numfmt.analysis.bounds` are relative to.
    """
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    for name, v in (("a", np.asarray(a)), ("b", np.asarray(b))):
        if v.dtype.itemsize > 4 and v.dtype.kind == "f":
            raise TypeError(f"{name} must hold float32 (or narrower) values so that products are exact in float64")
    prod = a64 * b64
    computed = recursive_sum(prod, acc, rounding, key=key, round_terms=not fma)
    return computed, np.cumsum(prod, axis=0), np.cumsum(np.abs(prod), axis=0)


def stagnation(fmt, increment, n: int, *, start: float = 1.0, runs: int = 16, seed: int = 0,
               roundings=("nearest_even", "stochastic")) -> dict:
    """Add ``increment`` to ``start`` ``n`` times in ``fmt``: the classic stagnation test.

    Under round to nearest the sum stops growing once ``increment`` is below half an
    ulp of the sum; stochastic rounding keeps the expected value exact (Connolly,
    Higham & Mary 2021, §5). ``increment`` and ``start`` are rounded into ``fmt`` first
    (nearest even).

    Returns:
      dict with ``format``, ``steps`` (1..n), ``exact`` (float64), ``increment`` and
      ``start`` (as rounded), and for each rounding mode an ``(n, runs)`` array of
      partial sums (the runs of a deterministic mode are all equal).
    """
    fmt = _check_acc(fmt)
    inc = float(np.asarray(_codec.quantize(np.float32(increment), fmt)))
    s0 = float(np.asarray(_codec.quantize(np.float32(start), fmt)))
    out = {"format": fmt.name, "steps": np.arange(1, n + 1), "increment": inc, "start": s0,
           "exact": s0 + inc * np.arange(1, n + 1, dtype=np.float64)}
    key = jax.random.key(seed)
    terms = np.full((n, runs), inc)
    for rounding in roundings:
        rounding = _rounding.check_rounding(rounding)
        # round_terms is a no-op here (the increment is a value of fmt); it lets this
        # share its compiled loop with dot_partials of the same shape.
        out[rounding] = recursive_sum(terms, fmt, rounding, key=key, init=s0, round_terms=True)
    return out


def harmonic_sum(fmt, n: int, rounding="nearest_even", *, runs: int = 1, seed: int = 0) -> np.ndarray:
    """Partial sums of the harmonic series ``sum 1/k`` computed in ``fmt`` by ``rounding``.

    Each term ``1/k`` (float64) is rounded into ``fmt`` by the same mode, then added. Under
    round to nearest the series famously stops growing (in IEEE half precision at 7.0859375,
    from ``k = 513`` on). Returns an ``(n, runs)`` float64 array.
    """
    terms = np.repeat((1.0 / np.arange(1, n + 1, dtype=np.float64))[:, None], runs, axis=1)
    key = jax.random.key(seed)
    return recursive_sum(terms, fmt, rounding, key=key, round_terms=True)
