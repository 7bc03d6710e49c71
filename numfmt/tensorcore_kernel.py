"""The arithmetic of :mod:`numfmt.tensorcore`: block FMAs, the scan over K, split-K.

Everything here is exact on float32 and int32 (no float64). A block FMA needs, per
output, the largest nominal exponent ``E`` of its products and the sum of the products
truncated to ``alignment_bits`` fraction bits below ``2**E``. Two paths compute it:

* the *fast* path (used whenever the data allow it, which is almost always): each
  operand block is scaled by its row's (column's) largest power of two, ``2**ca``
  (``2**cb``), so that products are exact float32 near 1 whatever the operands' range;
  ``E - ca - cb`` is read off a matrix product of powers ``2**(P*(e - ca))``: a sum of
  at most ``n < 2**P`` powers ``2**(P*x_i)`` lies in ``[2**(P*X), 2**(P*X + P))`` where
  ``X = max x_i``, so ``X = floor(log2(sum) / P)`` exactly, even with the sum rounded.
  Then each product costs two multiplications, a truncation and an addition.
* the *general* path, taken by :func:`jax.lax.cond` when some output's largest product
  lies more than ``126 / P`` binades below ``2**(ca + cb)`` (the powers would underflow):
  exponents are added and max-reduced per product in int32.

Both give identical bits; tests/test_tensorcore.py checks one against the other.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from numfmt import codec as _codec
from numfmt.formats import FloatFormat

_ZERO_EXP = -(1 << 20)  # the exponent given to a zero operand: below every product's
_F32 = jnp.float32
_I32 = jnp.int32
_HI = lax.Precision.HIGHEST


# ---- bits ---------------------------------------------------------------------------------------


def pow2(e):
    """2.0**e as float32 for int32 ``e`` in [-126, 127] (built from exponent bits)."""
    return lax.bitcast_convert_type((e + 127) << 23, _F32)


def decompose(x, fmt: FloatFormat):
    """Signed significand (float32, |sig| < 2), nominal exponent (int32), non-finite mask.

    ``x == sig * 2**exp`` with ``exp = max(floor(log2|x|), fmt.emin)``, read from the
    bit pattern (a subnormal operand keeps its format's ``emin``, as the hardware aligns
    it); zeros and non-finite values get ``sig = 0`` and an exponent below every product's.
    """
    u = lax.bitcast_convert_type(x, jnp.uint32)
    field = ((u >> 23) & 0xFF).astype(_I32)
    man = (u & 0x7FFFFF).astype(_I32)
    nonfinite = field == 255
    floor_exp = jnp.where(field == 0, -126, field - 127)
    exp = jnp.maximum(floor_exp, fmt.emin)
    sig_normal = lax.bitcast_convert_type(((127 + floor_exp - exp) << 23) | man, _F32)
    sig_sub = man.astype(_F32) * _F32(2.0**-23)  # a float32 subnormal input: exp is -126
    sig = jnp.where(field == 0, sig_sub, sig_normal)
    zero = ((u & jnp.uint32(0x7FFFFFFF)) == 0) | nonfinite
    sig = jnp.where(zero, _F32(0), jnp.where((u >> 31) == 1, -sig, sig))
    return sig, jnp.where(zero, _ZERO_EXP, exp), nonfinite


def _acc_parts(c):
    """The running sum's signed significand in [1, 2) and exponent; zero: (0, _ZERO_EXP)."""
    u = lax.bitcast_convert_type(c, jnp.uint32)
    field = ((u >> 23) & 0xFF).astype(_I32)
    sig = lax.bitcast_convert_type((u & jnp.uint32(0x807FFFFF)) | jnp.uint32(0x3F800000), _F32)
    zero = field == 0  # (float32 subnormal sums are not modelled: XLA's CPU backend flushes them)
    return jnp.where(zero, _F32(0), sig), jnp.where(zero, _ZERO_EXP, field - 127)


def _two_sum(a, b):
    """s = fl(a + b) and the exact error e = a + b - s (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _trunc_bits(x, drop: int):
    """``x`` with its ``drop`` lowest significand bits cleared (toward zero)."""
    if drop == 0:
        return x
    u = lax.bitcast_convert_type(x, jnp.uint32)
    return lax.bitcast_convert_type(u & jnp.uint32(~((1 << drop) - 1) & 0xFFFFFFFF), _F32)


def _round_pair(s, e, fmt: FloatFormat, rounding: str):
    """The exact value ``s + e`` (with ``s = fl(s + e)``) rounded into ``fmt`` (an E8Mx)."""
    drop = 23 - fmt.man_bits
    if rounding == "nearest_even":
        if drop == 0:
            return s
        # Round to odd at 24 bits first (the sticky bit), then to nearest: one rounding
        # (Boldo & Melquiond, "When double rounding is odd", 2005).
        u = lax.bitcast_convert_type(s, jnp.uint32)
        toward = jnp.where((e > 0) == (s > 0), u + 1, u - 1)
        odd = jnp.where((e != 0) & ((u & 1) == 0), toward, u)
        return _codec.quantize(lax.bitcast_convert_type(odd, _F32), fmt)
    r = _trunc_bits(s, drop)
    # s was rounded away from zero past the true value: start one float32 below |s|.
    below = (r == s) & (e != 0) & ((e > 0) != (s > 0))
    u = lax.bitcast_convert_type(s, jnp.uint32)
    return jnp.where(below, _trunc_bits(lax.bitcast_convert_type(u - 1, _F32), drop), r)


def _plus_zero(x):
    """-0 as +0: an exact zero sum is +0 on the hardware (recorded data). (XLA folds ``x + 0``.)"""
    return jnp.where(x == 0, _F32(0), x)


def _scale(r, e):
    """``r * 2**e`` for int32 ``e`` beyond float32's exponent range, in two exact steps."""
    e1 = jnp.clip(e, -126, 127)
    return r * pow2(e1) * pow2(jnp.clip(e - e1, -126, 127))


# ---- one block FMA ----------------------------------------------------------------------------


def _split_sum(model) -> bool:
    """Whether the block's integer terms could overflow an int32 sum (then: two halves)."""
    return model.block_size << (model.alignment_bits + 2) > 1 << 31


def _high(k, bits: int):
    """Integer-valued float32 ``k`` without its ``bits`` lowest bits (toward zero), exactly.

    (Not ``(k + C) - C``: XLA folds that to ``k``.)
    """
    return jnp.trunc(k * _F32(2.0**-bits)) * _F32(2.0**bits)


def _finish(model, c, x, c_sig, c_exp, big_e):
    """Sum the aligned products ``x`` (…, M, n, N) truncated, add ``c``, normalize once.

    ``x`` holds each product in units of ``2**(E - w)``: its kept bits are its integer
    part, at most ``w + 2`` bits. They are summed in int32 (associative, so XLA
    vectorizes the reduction, which it cannot do for a float32 sum) and the total is
    carried on as an exact pair of float32.
    """
    w = model.alignment_bits
    chop = jnp.trunc if model.alignment_rounding == "toward_zero" else jnp.round
    k = chop(x).astype(_I32)
    if _split_sum(model):
        cut = 12
        hi = jnp.sum(k >> cut, axis=-2).astype(_F32) * _F32(2.0**cut)
        lo = jnp.sum(k & ((1 << cut) - 1), axis=-2).astype(_F32)
    else:
        cut = 8
        total = jnp.sum(k, axis=-2)
        hi = (total >> cut).astype(_F32) * _F32(2.0**cut)
        lo = (total & ((1 << cut) - 1)).astype(_F32)
    if model.accumulator_in_alignment:
        kc = chop(c_sig * pow2(jnp.clip(w - (big_e - c_exp), -126, 127)))
        hi, lo = hi + _high(kc, cut), lo + (kc - _high(kc, cut))
    s, e = _two_sum(hi, lo)
    acc = model.accumulator_fmt
    out = _plus_zero(_scale(_round_pair(s, e, acc, model.accumulator_rounding), big_e - w))
    if not model.accumulator_in_alignment:
        s, e = _two_sum(c, out)
        out = _plus_zero(_round_pair(s, e, acc, model.accumulator_rounding))
    return out


def power_bits(model) -> int:
    """P: a sum of ``block_size`` powers 2**(P*x) stays below 2**(P*(max x + 1))."""
    return model.block_size.bit_length()


def _block_fast(model, c, a, b):
    """One block FMA on the fast path; ``a = (a_s, a_p, ca)`` (…, M, n), ``b`` (…, n, N)."""
    (a_s, a_p, ca), (b_s, b_p, cb) = a, b
    c_sig, c_exp = _acc_parts(c)
    q = jnp.einsum("...mi,...in->...mn", a_p, b_p, precision=_HI)
    field = lax.bitcast_convert_type(q, _I32) >> 23
    base = ca[..., :, None] + cb[..., None, :]
    e_prod = jnp.where(field > 0, base + jnp.floor_divide(field - 127, power_bits(model)), _ZERO_EXP)
    big_e = jnp.maximum(e_prod, c_exp) if model.accumulator_in_alignment else e_prod
    big_e = jnp.maximum(big_e, -(1 << 12))  # an all-zero block: any E will do
    rel = big_e - base
    scale = pow2(jnp.clip(model.alignment_bits - rel, -126, 127))
    x = (a_s[..., :, :, None] * b_s[..., None, :, :]) * scale[..., None, :]
    return _finish(model, c, x, c_sig, c_exp, big_e)


def _block_general(model, c, a, b):
    """One block FMA on the general path; ``a = (sig, exp)`` (…, M, n), ``b`` (…, n, N)."""
    (a_s, a_e), (b_s, b_e) = a, b
    c_sig, c_exp = _acc_parts(c)
    t = a_e[..., :, :, None] + b_e[..., None, :, :]
    e_prod = jnp.max(t, axis=-2)
    big_e = jnp.maximum(e_prod, c_exp) if model.accumulator_in_alignment else e_prod
    big_e = jnp.maximum(big_e, -(1 << 12))
    shift = jnp.maximum(t + (model.alignment_bits - big_e)[..., None, :], -126)
    x = (a_s[..., :, :, None] * b_s[..., None, :, :]) * pow2(shift)
    return _finish(model, c, x, c_sig, c_exp, big_e)


# ---- the scan over K --------------------------------------------------------------------------


def _fast_operand(sig, exp, n: int, p: int):
    """(…, R, K) significands and exponents -> the fast path's (scaled sig, powers, row max)."""
    shape = sig.shape
    blocks = exp.reshape(*shape[:-1], shape[-1] // n, n)
    top = jnp.max(blocks, axis=-1)
    top = jnp.where(top == _ZERO_EXP, 0, top)
    rel = blocks - top[..., None]
    scaled = sig.reshape(blocks.shape) * pow2(jnp.maximum(rel, -126))
    powers = jnp.where(p * rel >= -126, pow2(jnp.maximum(p * rel, -126)), _F32(0))
    return scaled.reshape(shape), powers.reshape(shape), top


def _blocks(x, n: int, u: int, steps: int, rows_last: bool):
    """(…, R, steps*u*n) -> (steps, u, …, R, n), or (steps, u, …, n, R) when ``rows_last``."""
    x = x.reshape(*x.shape[:-1], steps, u, n)
    x = jnp.moveaxis(jnp.moveaxis(x, -2, 0), -2, 0)
    return jnp.swapaxes(x, -1, -2) if rows_last else x


def _step_blocks(model) -> int:
    """Blocks per scan step: wide steps (about 128 elements) dividing the promotion interval."""
    n = model.block_size
    want = max(1, 128 // n)
    if model.promotion_interval is None:
        return want
    per = model.promotion_interval // n
    return max(d for d in range(1, per + 1) if per % d == 0 and d <= want)


def _scan(model, block, xs, valid, shape):
    """The running sum (with promotion) over the steps of ``xs``."""
    u = valid.shape[1]
    per = None if model.promotion_interval is None else model.promotion_interval // model.block_size

    def step(carry, x):
        c, total, since = carry
        (a, b), ok = x
        for j in range(u):
            new = block(model, c, tuple(v[j] for v in a), tuple(v[j] for v in b))
            c = jnp.where(ok[j], new, c)
        if per is not None:
            since = since + u
            promote = since >= per
            total = jnp.where(promote, total + c, total)
            c = jnp.where(promote, jnp.zeros_like(c), c)
            since = jnp.where(promote, 0, since)
        return (c, total, since), None

    zeros = jnp.zeros(shape, _F32)
    (c, total, _), _ = lax.scan(step, (zeros, zeros, jnp.int32(0)), (xs, valid))
    return c if per is None else total + c


def chain(model, a, b, path: str = "auto"):
    """The running sum of one part: ``a`` (sig, exp) (…, M, K), ``b`` (…, N, K) -> (…, M, N).

    ``path``: ``"auto"`` (the fast path where the data allow it), ``"fast"`` or
    ``"general"`` (for tests: the two must agree wherever the fast path is valid).
    """
    n = model.block_size
    u = _step_blocks(model)
    k = a[0].shape[-1]
    steps = max(1, -(-k // (n * u)))
    pad = [(0, 0)] * (a[0].ndim - 1) + [(0, steps * u * n - k)]
    a = tuple(jnp.pad(v, pad, constant_values=0 if i == 0 else _ZERO_EXP) for i, v in enumerate(a))
    b = tuple(jnp.pad(v, pad, constant_values=0 if i == 0 else _ZERO_EXP) for i, v in enumerate(b))
    valid = (jnp.arange(steps * u) < -(-k // n)).reshape(steps, u)
    shape = a[0].shape[:-1] + (b[0].shape[-2],)
    p = power_bits(model)

    def fast(a, b):
        fa, fb = _fast_operand(*a, n, p), _fast_operand(*b, n, p)
        xs_a = (_blocks(fa[0], n, u, steps, False), _blocks(fa[1], n, u, steps, False),
                _blocks(fa[2], 1, u, steps, False)[..., 0])
        xs_b = (_blocks(fb[0], n, u, steps, True), _blocks(fb[1], n, u, steps, True),
                _blocks(fb[2], 1, u, steps, False)[..., 0])
        return _scan(model, _block_fast, (xs_a, xs_b), valid, shape)

    def general(a, b):
        xs_a = tuple(_blocks(v, n, u, steps, False) for v in a)
        xs_b = tuple(_blocks(v, n, u, steps, True) for v in b)
        return _scan(model, _block_general, (xs_a, xs_b), valid, shape)

    if path == "fast":
        return fast(a, b)
    if path == "general":
        return general(a, b)
    return lax.cond(fast_path_ok(model, a, b), fast, general, a, b)


def fast_path_ok(model, a, b):
    """Whether, for every block and output, the largest product's power stays normal."""
    n, p = model.block_size, power_bits(model)
    _, pa, _ = _fast_operand(*a, n, p)
    _, pb, _ = _fast_operand(*b, n, p)
    split = lambda x: jnp.moveaxis(x.reshape(*x.shape[:-1], x.shape[-1] // n, n), -2, -3)
    qa, qb = split(pa), split(pb)  # (…, blocks, R, n)
    za, zb = split((a[0] != 0).astype(_F32)), split((b[0] != 0).astype(_F32))

    def one(_, blk):
        qa_, qb_, za_, zb_ = blk
        q = jnp.einsum("...mi,...ni->...mn", qa_, qb_, precision=_HI)
        z = jnp.einsum("...mi,...ni->...mn", za_, zb_, precision=_HI)
        return None, jnp.any((q < _F32(2.0**-126)) & (z > 0))

    xs = tuple(jnp.moveaxis(x, -3, 0) for x in (qa, qb, za, zb))
    _, bad = lax.scan(one, None, xs)
    return ~jnp.any(bad)


def contract(model, a, b, a_fmt: FloatFormat, b_fmt: FloatFormat, path: str = "auto"):
    """The model's result for float32 values ``a`` (…, M, K), ``b`` (…, N, K): (…, M, N)."""
    sa, ea, bad_a = decompose(a, a_fmt)
    sb, eb, bad_b = decompose(b, b_fmt)
    k = a.shape[-1]
    if model.split_k == 1:
        out = chain(model, (sa, ea), (sb, eb), path)
    else:
        s, g = model.split_k, model.split_k_granule
        length = _ceil_div(_ceil_div(k, s), g) * g

        def parts(x, fill):  # (…, R, K) -> (S, …, R, L)
            x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, s * length - k)], constant_values=fill)
            return jnp.moveaxis(x.reshape(*x.shape[:-1], s, length), -2, 0)

        sums = chain(model, (parts(sa, 0), parts(ea, _ZERO_EXP)), (parts(sb, 0), parts(eb, _ZERO_EXP)), path)
        out = combine_parts([sums[i] for i in range(s)], model.split_k_partials)
    # Inf or NaN operands: the IEEE float32 sum of the products (not recorded on hardware).
    special = jnp.any(bad_a, axis=-1)[..., :, None] | jnp.any(bad_b, axis=-1)[..., None, :]
    plain = jnp.einsum("...mk,...nk->...mn", a, b, precision=_HI)
    return jnp.where(special, plain, out)


def _ceil_div(x: int, y: int) -> int:
    return -(-x // y)


def combine_parts(parts, partials: int):
    """Float32 sum of split-K parts: ``partials`` running sums (part i into i mod partials), then pairwise."""
    sums = [None] * min(partials, len(parts))
    for i, p in enumerate(parts):
        j = i % partials
        sums[j] = p if sums[j] is None else sums[j] + p
    while len(sums) > 1:
        sums = [sums[i] + sums[i + 1] if i + 1 < len(sums) else sums[i] for i in range(0, len(sums), 2)]
    return sums[0]
