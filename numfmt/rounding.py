"""Rounding modes: their names, the checks made at the API boundary, the rounding step and the random bits.

The public names (``__all__``) are the modes, the boundary check and :func:`hash_bits`,
the one source of random bits of every stochastic path. :func:`round_shift`,
:func:`stochastic_increment` and :func:`overflows_to_infinity` are the rounding step
of the codec's engine (:mod:`numfmt.encoder`), not part of the public surface.

The modes follow IEEE 754-2019 §4.3 (the four directed / nearest attributes plus
roundTiesToAway), round-to-odd (Boldo & Melquiond, "Emulation of FMA and correctly
rounded sums", IEEE TC 2008), and stochastic rounding (see ``numfmt.codec``).
"""

from __future__ import annotations

__all__ = ["DETERMINISTIC_MODES", "ROUNDING_MODES", "SR_VARIANTS", "check_rounding", "hash_bits"]

DETERMINISTIC_MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd")
ROUNDING_MODES = DETERMINISTIC_MODES + ("stochastic",)

_ALIASES = {
    "rne": "nearest_even",
    "nearest": "nearest_even",
    "rna": "nearest_away",
    "rtz": "toward_zero",
    "truncate": "toward_zero",
    "rtp": "up",
    "ceil": "up",
    "rtn": "down",
    "floor": "down",
    "rto": "odd",
    "sr": "stochastic",
}


def modes_of(fmt) -> tuple[str, ...]:
    """The rounding modes ``fmt`` takes: :data:`ROUNDING_MODES` for every format, plus the
    modes of its own (``fmt.extra_rounding_modes``: ``"nearest_log"`` for the logarithmic
    formats) before ``"stochastic"``, which is left out where ``fmt.stochastic_rounding``
    is False (log formats of base sqrt(2))."""
    extra = tuple(getattr(fmt, "extra_rounding_modes", ()))
    stochastic = ("stochastic",) if getattr(fmt, "stochastic_rounding", True) else ()
    return DETERMINISTIC_MODES + extra + stochastic


def check_rounding(rounding, fmt=None) -> str:
    """Return the canonical name of ``rounding``; raise ValueError naming the known modes.

    ``fmt``: the format the mode is for. A format whose modes are not
    :data:`ROUNDING_MODES` (:func:`modes_of`: the logarithmic formats add
    ``"nearest_log"``, and have no ``"stochastic"`` for base sqrt(2)) accepts exactly its own.
    """
    if not isinstance(rounding, str):
        raise TypeError(f"rounding must be a str, one of {ROUNDING_MODES}, got {rounding!r}")
    name = _ALIASES.get(rounding.strip().lower(), rounding.strip().lower())
    modes = modes_of(fmt)
    if modes != ROUNDING_MODES:
        if name not in modes:
            raise ValueError(f"rounding {rounding!r} is not a mode of {fmt.name}: expected one of {', '.join(modes)}")
        return name
    if name not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding {rounding!r}: expected one of {', '.join(ROUNDING_MODES)}")
    return name


# ---- the rounding step shared by every format ------------------------------------------
#
# Everything below works inside jit on unsigned integer arrays. ``X / 2**d`` is the exact
# magnitude, in units of the target's step, of the value being rounded.

import jax
import jax.numpy as jnp
from jax import lax

SR_VARIANTS = ("truncate", "unbiased")


def round_shift(X, d, sign, rounding, *, d_true=None, rand=None, rbits=None, variant="truncate"):
    """``round(X / 2**d)`` by ``rounding``, for unsigned integers ``X`` and shifts ``d``.

    Args:
      X: unsigned integer array (uint32 or uint64).
      d: shift per element, ``0 <= d < X``'s width; callers clamp it where all of
        ``X`` is dropped anyway (the result is then 0 plus the increment).
      sign: bool array, the sign of the value (directed modes round toward ±inf).
      rounding: a canonical mode name.
      d_true: for stochastic rounding, the unclamped shift (the fraction dropped is
        ``rem / 2**d_true``); defaults to ``d``.
      rand: for stochastic rounding, random words of ``X``'s dtype.
      rbits, variant: see :func:`stochastic_increment`.

    Returns:
      the rounded integer, of ``X``'s dtype.
    """
    dt = X.dtype
    one = jnp.asarray(1, dt)
    d = d.astype(dt)
    q = X >> d
    rem = X - (q << d)
    inexact = rem != 0
    if rounding == "toward_zero":
        return q
    if rounding == "odd":
        return q | inexact.astype(dt)
    if rounding == "stochastic":
        dd = d if d_true is None else d_true.astype(dt)
        return q + stochastic_increment(rem, dd, rand, rbits, variant).astype(dt)
    half = (one << d) >> one  # 0 when d == 0, and then rem == 0 too
    if rounding == "nearest_even":
        inc = (rem > half) | ((rem == half) & inexact & ((q & one) == one))
    elif rounding == "nearest_away":
        inc = (rem >= half) & inexact
    elif rounding == "up":
        inc = inexact & ~sign
    elif rounding == "down":
        inc = inexact & sign
    else:  # pragma: no cover - check_rounding stops this earlier
        raise ValueError(rounding)
    return q + inc.astype(dt)


def _shift_right_clamped(v, s, width):
    """``v >> s`` for any ``s >= 0`` (0 once ``s >= width``)."""
    dt = v.dtype
    return jnp.where(s >= width, jnp.asarray(0, dt), v >> jnp.minimum(s, width - 1).astype(dt))


def stochastic_increment(rem, d, rand, rbits, variant):
    """Whether stochastic rounding rounds up, given the dropped fraction ``rem / 2**d``.

    The random word ``rand`` is *added* to the fraction and the carry out decides, as
    hardware does (add random bits below the kept bits, then truncate):

    * ``rbits=None`` (exact): the fraction, scaled to the word's width W (32 bits for
      float32 inputs, 64 for float64), ``T = floor(rem * 2**W / 2**d)``; round up iff
      ``rand + T >= 2**W``. The probability is ``T / 2**W``, which equals the exact
      fraction whenever ``d <= W`` (always, except for values far below the subnormals).
    * ``rbits=r``: only the low r bits of ``rand`` count, ``R = rand mod 2**r``, and the
      fraction is cut to r bits: ``variant="truncate"`` floors it (probability
      ``floor(f * 2**r) / 2**r``, biased toward zero by less than ``2**-r``; what an adder
      of r random bits does), ``variant="unbiased"`` rounds it to nearest, ties to even
      (the IEEE P3109 definition; E[result] = x exactly when f has at most r bits, and
      on average over fractions otherwise, since the ties that round up and down
      balance). Round up iff ``R + T_r >= 2**r``.
    """
    dt = rem.dtype
    width = dt.itemsize * 8
    d = d.astype(dt)
    if rbits is None:
        up = rem << jnp.minimum(jnp.asarray(width, dt) - jnp.minimum(d, width), width - 1)
        down = _shift_right_clamped(rem, d - jnp.minimum(d, width), width)
        T = jnp.where(d <= width, jnp.where(d == 0, jnp.asarray(0, dt), up), down)
        return (rand + T) < rand  # the carry out of the W-bit sum
    r = jnp.asarray(rbits, dt)
    R = rand & ((jnp.asarray(1, dt) << r) - jnp.asarray(1, dt))
    small = d <= r
    exact_part = rem << jnp.where(small, r - d, jnp.asarray(0, dt))
    drop = jnp.where(small, jnp.asarray(0, dt), d - r)
    if variant == "truncate":
        cut = _shift_right_clamped(rem, drop, width)
    else:
        drop = jnp.minimum(drop, width - 1)
        cut = round_shift(rem, drop, jnp.zeros(rem.shape, bool), "nearest_even")
    T = jnp.where(small, exact_part, cut)
    return ((R + T) >> r) != 0


def overflows_to_infinity(rounding, sign):
    """IEEE 754 §7.4: whether an overflow goes to infinity (else to the largest finite).

    Stochastic rounding overflows to infinity when it rounds past ``max``, as the
    round-to-nearest modes do.
    """
    if rounding in ("nearest_even", "nearest_away", "stochastic"):
        return jnp.ones_like(sign)
    if rounding == "up":
        return ~sign
    if rounding == "down":
        return sign
    return jnp.zeros_like(sign)


# ---- random bits -------------------------------------------------------------------------


def _fmix32(h):
    """MurmurHash3's 32-bit finalizer (Appleby): a bijective avalanche mix."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def hash_bits(key, shape, dtype=jnp.uint32):
    """Random words for every element of ``shape``: a keyed counter-based hash.

    Two words ``(k0, k1)`` are drawn from ``key`` once (with ``jax.random.bits``), and
    element ``i`` (its row-major index) gets ``fmix32(fmix32(i * φ + k0) ^ k1)``, where
    φ = 0x9E3779B9 (the golden-ratio increment) and ``fmix32`` is MurmurHash3's
    finalizer. It costs a dozen integer operations per element, fused into the
    rounding kernel, with no extra pass over memory; the same key gives the same bits.
    It is a statistical generator, not a cryptographic one: see docs/stochastic.md for
    the tests it passes. ``dtype=uint64`` concatenates two such words.
    """
    k = jax.random.bits(key, (4,), jnp.uint32)
    n = 1
    for s in shape:
        n *= s
    idx = lax.iota(jnp.uint32, n).reshape(shape) if shape else jnp.uint32(0)
    base = idx * jnp.uint32(0x9E3779B9)
    lo = _fmix32(_fmix32(base + k[0]) ^ k[1])
    if jnp.dtype(dtype) == jnp.uint32:
        return lo
    hi = _fmix32(_fmix32(base + k[2]) ^ k[3])
    return (hi.astype(jnp.uint64) << jnp.uint64(32)) | lo.astype(jnp.uint64)
