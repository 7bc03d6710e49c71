"""The bit layout of IEEE binary inputs, and exact power-of-two arithmetic on those bits.

The codec reads float16 to float64 inputs through :class:`Layout`. The scaled layer
takes exponents and builds powers of two here, from the bits, never through ``log2``:
XLA on CPU treats subnormal operands and results of float arithmetic as zero
(``jax.jit(lambda v: v * 2.0)(1e-40)`` is 0 there, not on a GPU), so anything exact
near the bottom of the range is done with integer operations (:func:`decompose`,
:func:`compose`) that every backend computes alike.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt.rounding import overflows_to_infinity, round_shift


class Layout:
    """Bit layout of an IEEE binary input type (float32 or float64)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        info = np.finfo(self.dtype)
        self.width = self.dtype.itemsize * 8
        self.man = info.nmant  # P: stored mantissa bits
        self.bias = -info.minexp + 1
        self.uint = jnp.uint32 if self.width == 32 else jnp.uint64
        self.sint = jnp.int32 if self.width == 32 else jnp.int64


F32 = Layout(np.float32)
F64 = Layout(np.float64)


def layout_of(dtype) -> Layout:
    """:data:`F64` for float64, else :data:`F32` (float16 and bfloat16 widen to float32 exactly)."""
    return F64 if np.dtype(dtype) == np.float64 else F32


def check_float_input(x, arg="x"):
    """``x`` as a JAX array; a TypeError naming ``arg`` unless it is floating-point."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{arg} must be a floating-point array, got dtype {x.dtype}")
    return x


def as_float_input(x, arg="x"):
    """Checks that ``x`` is a real float array; widens float16/bfloat16 to float32 exactly."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{arg} must be a real floating-point array (float16, bfloat16, float32 or float64), "
            f"got dtype {x.dtype}"
        )
    if x.dtype == jnp.float64:
        return x, F64
    if x.dtype.itemsize > 4:
        raise TypeError(f"{arg} has unsupported dtype {x.dtype}")
    return x.astype(jnp.float32), F32


def split_bits(x, lay):
    """Sign (bool), biased exponent (int), mantissa and magnitude bits of ``x``."""
    u = lax.bitcast_convert_type(x, lay.uint)
    sign = (u >> lay.uint(lay.width - 1)) == 1
    mag = u & lay.uint((1 << (lay.width - 1)) - 1)
    e_in = (mag >> lay.uint(lay.man)).astype(lay.sint)
    man = mag & lay.uint((1 << lay.man) - 1)
    return sign, e_in, man, mag


@contextlib.contextmanager
def x64():
    """Run JAX with 64-bit types inside (so float64 inputs stay float64 and decode is exact)."""
    if hasattr(jax, "enable_x64"):  # newer jax: a config state usable as a context
        with jax.enable_x64(True):
            yield
    else:  # pragma: no cover - older jax
        from jax.experimental import enable_x64

        with enable_x64():
            yield


# ---- exponents and powers of two from the bits ------------------------------------------------


def magnitude_bits(x, lay=None):
    """``|x|``'s bits as unsigned integers: they order like the magnitudes, NaN above inf."""
    lay = lay or layout_of(x.dtype)
    return lax.bitcast_convert_type(x, lay.uint) & lay.uint((1 << (lay.width - 1)) - 1)


def inf_bits(lay):
    """The magnitude bits of infinity: ``magnitude_bits(x) >= inf_bits`` is ``not isfinite(x)``."""
    return lay.uint(((1 << (lay.width - 1 - lay.man)) - 1) << lay.man)


def ordered(x, lay=None):
    """Signed integer keys that order like the floats ``x`` (the bits, negative half flipped).

    ``ordered(a) <= ordered(b)`` is ``a <= b`` for non-NaN floats, subnormals included
    (a float compare reads subnormals as 0 on XLA's CPU backend); -0 sorts just below +0.
    """
    lay = lay or layout_of(x.dtype)
    b = lax.bitcast_convert_type(x, lay.sint)
    # Flip the magnitude bits of negative values (an arithmetic shift spreads the sign);
    # no select, so that a reduction over the keys stays vectorized on XLA's CPU backend.
    return b ^ ((b >> lay.sint(lay.width - 1)) & lay.sint((1 << (lay.width - 1)) - 1))


def from_ordered(key, dtype):
    """The floats of :func:`ordered` keys (the map is its own inverse on the bits)."""
    lay = layout_of(dtype)
    return lax.bitcast_convert_type(jnp.where(key < 0, key ^ lay.sint((1 << (lay.width - 1)) - 1), key), dtype)


def decompose(x, lay=None):
    """``x = (-1)**sign * M * 2**e`` with an integer significand ``M`` in ``[2**P, 2**(P+1))``.

    For finite non-zero ``x`` (normal or subnormal); ``P`` is the stored mantissa width.
    A subnormal is normalized with the position of its leading one (``lax.clz``). For
    zeros ``M`` is 0. Returns ``(sign, M, e)`` (bool, unsigned, signed arrays).
    """
    lay = lay or layout_of(x.dtype)
    U, S, P = lay.uint, lay.sint, lay.man
    sign, e_field, man, _ = split_bits(x, lay)
    sub = e_field == 0
    shift = lax.clz(man).astype(S) - S(lay.width - 1 - P)  # puts a subnormal's leading one at bit P
    M = jnp.where(sub, man << jnp.clip(shift, 0, lay.width - 1).astype(U), man | U(1 << P))
    E = jnp.where(sub, S(1 - lay.bias) - shift, e_field - S(lay.bias))
    return sign, M, E - S(P)


def exponent_and_significand(a):
    """``floor(log2 a)`` and ``a / 2**floor(log2 a)`` (in [1, 2)) for positive finite floats.

    Read from the bits (:func:`decompose`); exact; never calls ``log2``.
    """
    lay = layout_of(a.dtype)
    _, M, e = decompose(a, lay)
    sig = lax.bitcast_convert_type((M & lay.uint((1 << lay.man) - 1)) | lay.uint(lay.bias << lay.man), a.dtype)
    return (e + lay.sint(lay.man)).astype(jnp.int32), sig


def pow2(e, dtype=jnp.float32):
    """``2.0**e`` for integer arrays ``e`` in the normal and subnormal range of ``dtype``, from bits."""
    lay = layout_of(dtype)
    p, bias, U, S = lay.man, lay.bias, lay.uint, lay.sint
    e = e.astype(S)
    normal = lax.shift_left((e + S(bias)).astype(U), U(p))
    sub = lax.shift_left(U(1), jnp.clip(e + S(bias - 1 + p), 0, S(p)).astype(U))
    return lax.bitcast_convert_type(jnp.where(e >= S(1 - bias), normal, sub), dtype)


def compose(sign, Z, e, rounding, dtype):
    """The float of ``(-1)**sign * Z * 2**e``, rounded once into ``dtype`` by ``rounding``.

    ``Z`` is an unsigned integer below ``2**(width - 2)``, ``e`` a signed exponent. The
    result is rounded to the format's precision, with gradual underflow below its
    normal range (IEEE 754 §7.5), by any deterministic mode of
    :func:`numfmt.rounding.round_shift`. Past the largest finite value the result is
    inf or the largest finite value as IEEE 754 §7.4 says for the mode (round to odd:
    the largest finite value). ``Z == 0`` gives a zero of the given sign. Integer
    operations only: no flush to zero on any backend.
    """
    lay = layout_of(dtype)
    U, S, P, W = lay.uint, lay.sint, lay.man, lay.width
    e = e.astype(S)
    lead = S(W - 1) - lax.clz(Z).astype(S)  # the index of Z's leading one (-1 for 0)
    E = lead + e  # floor(log2 |value|)
    emin = S(1 - lay.bias)
    normal = E >= emin
    d = jnp.where(normal, lead - S(P), emin - S(P) - e)  # bits to drop (negative: to append)
    Zs = Z << jnp.clip(-d, 0, W - 1).astype(U)
    R = round_shift(Zs, jnp.clip(d, 0, W - 1), sign, rounding)
    # Normal: R in [2**P, 2**(P+1)]; a carry to 2**(P+1) moves into the exponent field.
    field = jnp.clip(E - emin, 0, (1 << (W - 1 - P)) - 2).astype(U)  # clipped: no wrap past inf
    bits = jnp.where(normal, (field << U(P)) + R, R)
    top = inf_bits(lay)
    bits = jnp.where(bits >= top, jnp.where(overflows_to_infinity(rounding, sign), top, top - U(1)), bits)
    bits = jnp.where(Z == 0, U(0), bits) | (sign.astype(U) << U(W - 1))
    return lax.bitcast_convert_type(bits, dtype)


def _passes_through(x, lay):
    """Zeros, infinities and NaN: scaling by a positive finite factor leaves them as they are."""
    mag = magnitude_bits(x, lay)
    return (mag == 0) | (mag >= inf_bits(lay))


def mul_pow2(x, k, rounding="nearest_even"):
    """``x * 2**k`` for integer arrays ``k``: exact while the result is normal.

    Below the normal range the result is rounded by ``rounding`` (``"nearest_even"``:
    IEEE gradual underflow; ``"odd"``: keeps a sticky bit, so a later rounding into a
    format at least two bits coarser there rounds the exact product); past the largest
    finite value it is inf (``"odd"``: the largest finite value). Zeros, inf and NaN pass
    through. Works on the bits, so subnormal inputs and results are kept on every backend.
    """
    lay = layout_of(x.dtype)
    sign, M, e = decompose(x, lay)
    y = compose(sign, M, e + jnp.asarray(k).astype(lay.sint), rounding, x.dtype)
    return jnp.where(_passes_through(x, lay), x, y)


def _unit_significand(M, lay):
    """The float in [1, 2) with integer significand ``M`` (in ``[2**P, 2**(P+1))``)."""
    mask = lay.uint((1 << lay.man) - 1)
    return lax.bitcast_convert_type((M & mask) | lay.uint(lay.bias << lay.man), lay.dtype)


def _significand_of(v, lay):
    """For a float ``v`` in [0.5, 4): its integer significand and floor(log2 v) in {-1, 0, 1}."""
    u = lax.bitcast_convert_type(v, lay.uint)
    c = (u >> lay.uint(lay.man)).astype(lay.sint) - lay.sint(lay.bias)
    return (u & lay.uint((1 << lay.man) - 1)) | lay.uint(1 << lay.man), c


def _sticky(Mq, D, lay):
    """``4 * Mq + sign(D)``: a rounded significand with two more bits, rounded to odd.

    ``D`` is the exact residual (signed, or a wrapped unsigned difference) of the exact value
    against ``Mq``; its sign says on which side of ``Mq`` the exact value lies.
    """
    Ds = D if D.dtype == lay.sint else lax.bitcast_convert_type(D, lay.sint)
    return (Mq << lay.uint(2)) + jnp.sign(Ds).astype(lay.uint)  # wraps for -1: 4 * Mq - 1


def multiply(a, b, rounding="nearest_even"):
    """``a * b`` rounded once by ``rounding``, with gradual underflow, on every backend.

    ``b`` must be positive and finite (a scale); ``a`` is any float (zeros, inf and NaN
    pass through). The product of the two significands is rounded by the float unit
    (both in [1, 2), so nothing is subnormal), its residual is computed exactly from
    the low bits of the integer product, and :func:`compose` rounds the result once.
    """
    lay = layout_of(a.dtype)
    sa, Ma, ea = decompose(a, lay)
    _, Mb, eb = decompose(b, lay)
    p = _unit_significand(Ma, lay) * _unit_significand(Mb, lay)  # in [1, 4): RNE
    Mp, c = _significand_of(p, lay)
    shift = (c + lay.sint(lay.man)).astype(lay.uint)
    D = Ma * Mb - (Mp << shift)  # exact: |D| <= 2**(shift - 1); the wrapped low bits suffice
    y = compose(sa, _sticky(Mp, D, lay), ea + eb + shift.astype(lay.sint) - lay.sint(2), rounding, a.dtype)
    return jnp.where(_passes_through(a, lay), a, y)


def _float_div(a, b):
    """The float unit's ``a / b``. Backends differ: XLA on CPU rounds it correctly, XLA on
    GPU lowers it to a faithful division (``div.full.f32``, within 2 ulps). Everything
    exact here takes it as a first guess only and corrects it on the integers
    (:func:`_nearest_quotient`); tests replace this function by one that is off by a few ulps."""
    return a / b


def _nearest_quotient(Ma, Mb, q, field, lay):
    """``(Mq, D, low)``: the quotient of significands rounded to the nearest integer.

    ``Ma``, ``Mb`` are integer significands in ``[2**P, 2**(P+1))``; ``low`` is
    ``Ma < Mb``, so that ``Q = Ma * 2**(P + low) / Mb`` lies in ``[2**P, 2**(P+1))``.
    ``q`` is a positive normal float within four ulps of ``Q`` times the power of two
    whose biased exponent field is ``field`` (any division's result, correctly rounded
    or not). ``Mq`` is the integer nearest to ``Q`` (in ``[2**P, 2**(P+1)]``; a tie is
    impossible: a quotient of two ``P+1``-bit integers is never a midpoint), and
    ``D = Ma * 2**(P + low) - Mq * Mb`` its exact residual as a signed integer
    (``|D| < Mb / 2``), from the low bits of integer products. Four fixed correction
    steps, selects only: no data-dependent control flow.
    """
    U, S, P = lay.uint, lay.sint, lay.man
    implicit = U(1 << P)
    low = Ma < Mb
    uq = lax.bitcast_convert_type(q, U) & U((1 << (lay.width - 1)) - 1)
    Mq = (uq & (implicit - U(1))) | implicit
    off = (uq >> U(P)).astype(S) - field.astype(S)  # -1, 0 or 1: q fell into a neighbouring binade
    Mq = jnp.where(off > 0, Mq << U(1), jnp.where(off < 0, Mq >> U(1), Mq))
    shift = (low.astype(U) + U(P))
    D = lax.bitcast_convert_type((Ma << shift) - Mq * Mb, S)  # exact: wraps, |D| < 8 Mb
    half = lax.bitcast_convert_type(Mb, S)
    for _ in range(4):
        up = D + D > half
        down = D + D < -half
        Mq = Mq + up.astype(U) - down.astype(U)
        D = D - jnp.where(up, half, 0) + jnp.where(down, half, 0)
    return Mq, D, low


# XLA on CPU divides floats as IEEE 754 says (correctly rounded: LLVM's fdiv, no fast
# math); :func:`quotient_nearest` then uses the plain quotient there. Tests set this to
# False to run the integer correction on CPU under a deliberately faithful divider.
CPU_DIVISION_IS_IEEE = True


def quotient_nearest(x, d):
    """``x / d`` correctly rounded (nearest even) for normal ``x`` and positive normal
    ``d`` whose quotient is normal; zeros, inf and NaN of ``x`` pass through.

    The same bits on every backend. On CPU the float unit's IEEE quotient; elsewhere
    (XLA on GPU divides within 2 ulps, not correctly rounded) that quotient corrected
    on the integers (:func:`_nearest_quotient`): ``lax.platform_dependent`` picks the
    branch when the computation is lowered for its device. ``d`` goes through a select
    that depends on ``x``, so that XLA cannot turn a division by a broadcast scale into
    a multiplication by its reciprocal (which is not correctly rounded).
    """
    lay = layout_of(x.dtype)
    U = lay.uint
    d = jnp.broadcast_to(d, x.shape)
    guarded = jnp.where(lax.bitcast_convert_type(x, U) == U((1 << lay.width) - 1), lay.dtype.type(1), d)
    if CPU_DIVISION_IS_IEEE:
        return lax.platform_dependent(x, guarded, cpu=_float_div, default=_corrected_quotient)
    return _corrected_quotient(x, guarded)


def quotient_normal(a, b, rounding="nearest_even"):
    """``a / b`` rounded once by ``rounding`` (``"nearest_even"``, ``"odd"``, ``"up"``,
    ``"down"`` or ``"toward_zero"``) for positive normal ``a`` and ``b`` whose quotient is
    normal; ``a == +0`` gives +0. :func:`divide`'s bits there, at a fraction of its work.

    The preconditions are not checked (callers test them on their data and take
    :func:`divide` otherwise). The nearest quotient comes from :func:`quotient_nearest`
    (the float unit's on CPU, corrected on the integers elsewhere); its exact residual
    ``a - q * b``, from the low bits of an integer product as in
    :func:`_nearest_quotient`, says on which side of ``q`` the exact quotient lies,
    which gives every other mode: truncation steps back one ulp where ``q`` lies above
    it, rounding to odd sets the last bit of the truncated quotient where the residual
    is not zero (Boldo & Melquiond, "Emulation of FMA and correctly rounded sums:
    proved algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008).
    """
    lay = layout_of(a.dtype)
    U, S, P = lay.uint, lay.sint, lay.man
    b = jnp.broadcast_to(b, a.shape)
    ua, ub = lax.bitcast_convert_type(a, U), lax.bitcast_convert_type(b, U)
    uq = lax.bitcast_convert_type(quotient_nearest(a, b), U)
    if rounding == "nearest_even":
        return lax.bitcast_convert_type(jnp.where(ua == 0, U(0), uq), a.dtype)
    implicit = U(1 << P)
    Ma, Mb, Mq = ((v & (implicit - U(1))) | implicit for v in (ua, ub, uq))
    # Q = Ma * 2**(P + low) / Mb lies in [2**P, 2**(P+1)) and never within 1/2 of 2**(P+1):
    # that would need Ma * 2**(P + low) - 2**(P+1) * Mb in [-Mb/2, 0), but it is a multiple
    # of 2**P and Mb/2 < 2**P. So the nearest quotient's significand is Mq, in Q's binade.
    shift = (Ma < Mb).astype(U) + U(P)
    D = lax.bitcast_convert_type((Ma << shift) - Mq * Mb, S)  # exact: wraps, |D| < Mb
    trunc = uq - (D < 0).astype(U)  # positive: truncation is rounding down
    inexact = (D != 0).astype(U)
    out = {"odd": trunc | inexact, "down": trunc, "toward_zero": trunc, "up": trunc + inexact}[rounding]
    return lax.bitcast_convert_type(jnp.where(ua == 0, U(0), out), a.dtype)


def _corrected_quotient(x, d):
    """:func:`quotient_nearest` from any quotient within a few ulps (:func:`_float_div`)."""
    lay = layout_of(x.dtype)
    U, S, P = lay.uint, lay.sint, lay.man
    ux = lax.bitcast_convert_type(x, U)
    ud = lax.bitcast_convert_type(d, U)
    sign = ux & ~U((1 << (lay.width - 1)) - 1)
    mag = ux & ~sign
    q = _float_div(x, d)
    implicit = U(1 << P)
    Ma, Mb = (mag & (implicit - U(1))) | implicit, (ud & (implicit - U(1))) | implicit
    low = Ma < Mb
    field = (mag >> U(P)).astype(S) - (ud >> U(P)).astype(S) + S(lay.bias) - low.astype(S)
    Mq, _, _ = _nearest_quotient(Ma, Mb, q, field, lay)
    out = sign | ((field.astype(U) << U(P)) + Mq - implicit)  # Mq = 2**(P+1) carries into the exponent
    passes = (mag == 0) | (mag >= inf_bits(lay))
    return lax.bitcast_convert_type(jnp.where(passes, lax.bitcast_convert_type(q, U), out), x.dtype)


def divide(a, b, rounding="nearest_even"):
    """``a / b`` rounded once by ``rounding``, with gradual underflow, on every backend.

    ``b`` must be positive and finite (a scale); ``a`` is any float (zeros, inf and NaN
    pass through). The quotient of the significands (in (1/2, 2)) comes from the float
    unit, which need not round it correctly (XLA on GPU does not): it is corrected with
    its exact residual from the low bits of an integer product
    (:func:`_nearest_quotient`), and :func:`compose` rounds the result once. The
    divisor goes through a select that depends on ``a``, so that XLA cannot turn the
    division by a broadcast scale into a multiplication by its reciprocal.
    """
    lay = layout_of(a.dtype)
    sa, Ma, ea = decompose(a, lay)
    _, Mb, eb = decompose(b, lay)
    ua = lax.bitcast_convert_type(a, lay.uint)
    mb = jnp.where(ua == lay.uint(-1 & ((1 << lay.width) - 1)), lay.dtype.type(1), _unit_significand(Mb, lay))
    q = _float_div(_unit_significand(Ma, lay), mb)  # in (1/2, 2), within a few ulps
    Mq, D, low = _nearest_quotient(Ma, Mb, q, lay.sint(lay.bias) - (Ma < Mb).astype(lay.sint), lay)
    shift = lay.sint(lay.man) + low.astype(lay.sint)
    y = compose(sa, _sticky(Mq, D, lay), ea - eb - shift - lay.sint(2), rounding, a.dtype)
    return jnp.where(_passes_through(a, lay), a, y)
