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

import functools

import jax
import jax.numpy as jnp
from jax import lax

from numfmt import codec as _codec
from numfmt.bitlayout import magnitude_bits
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


def two_sum(a, b):
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


def _finish(model, c, x, c_sig, c_exp, big_e, axis: int = -2):
    """Sum the aligned products ``x`` (…, M, n, N), or (…, M, N, n) with ``axis=-1``
    (:func:`reduce_minor`), truncated, add ``c``, normalize once.

    ``x`` holds each product in units of ``2**(E - w)``: its kept bits are its integer
    part, at most ``w + 2`` bits. They are summed in int32 (associative, so XLA
    vectorizes the reduction, which it cannot do for a float32 sum) and the total is
    carried on as an exact pair of float32.
    """
    w = model.alignment_bits
    chop = jnp.trunc if model.alignment_rounding == "toward_zero" else jnp.round
    # Float-to-integer conversion truncates toward zero (XLA's convert; |x| < 2**(w + 2)
    # here): no separate trunc, which XLA lowers to a select of ceil and floor per product.
    k = (x if model.alignment_rounding == "toward_zero" else chop(x)).astype(_I32)
    if _split_sum(model):
        cut = 12
        hi = jnp.sum(k >> cut, axis=axis).astype(_F32) * _F32(2.0**cut)
        lo = jnp.sum(k & ((1 << cut) - 1), axis=axis).astype(_F32)
    else:
        cut = 8
        total = jnp.sum(k, axis=axis)
        hi = (total >> cut).astype(_F32) * _F32(2.0**cut)
        lo = (total & ((1 << cut) - 1)).astype(_F32)
    if model.accumulator_in_alignment:
        kc = chop(c_sig * pow2(jnp.clip(w - (big_e - c_exp), -126, 127)))
        hi, lo = hi + _high(kc, cut), lo + (kc - _high(kc, cut))
    s, e = two_sum(hi, lo)
    acc = model.accumulator_fmt
    out = _plus_zero(_scale(_round_pair(s, e, acc, model.accumulator_rounding), big_e - w))
    if not model.accumulator_in_alignment:
        s, e = two_sum(c, out)
        out = _plus_zero(_round_pair(s, e, acc, model.accumulator_rounding))
    return out


def power_bits(model) -> int:
    """P: a sum of ``block_size`` powers 2**(P*x) stays below 2**(P*(max x + 1))."""
    return model.block_size.bit_length()


def levels(model) -> int | None:
    """How many power matrix products find E exactly for any operands of the model's formats.

    Level ``j`` reads exponents ``x`` in ``[-(j+1)*D, -j*D]`` (``D = 126 // P`` binades
    below the row's and column's largest): the powers are shifted up by ``j*D``, half
    on each operand, so that none overflows. Up to three levels cover FP8 and FP16;
    formats with float32's exponent range (BF16, TF32) return None: the fast path then
    runs when one level covers the data (``fast_path_ok``), else the general path.
    """
    if absolute(model):
        return 1
    span = sum(f.emax - f.emin for f in (model.lhs_fmt, model.rhs_fmt))
    d = 126 // power_bits(model)
    need = -(-(span + 1) // d)
    return need if need <= 3 else None


def absolute(model) -> bool:
    """Whether powers of the exponents themselves (no per-block offset) stay normal.

    True for E4M3 x E4M3 (exponents -6 .. 8): then one power product finds E, and the
    operands go unscaled (their products are exact float32).
    """
    p = power_bits(model)
    a, b = model.lhs_fmt, model.rhs_fmt
    return p * (a.emin + b.emin) >= -126 and p * (a.emax + b.emax) <= 126


def _block_fast(model, c, a, b, nlevels: int, minor: bool = False):
    """One block FMA on the fast path; ``a = (a_s, a_rel, ca)`` (…, M, n), ``b`` (…, n, N),
    or (…, N, n) with ``minor`` (products laid out (…, M, N, n), :func:`reduce_minor`)."""
    (a_s, a_rel, ca), (b_s, b_rel, cb) = a, b
    c_sig, c_exp = _acc_parts(c)
    p = power_bits(model)
    d = 126 // p
    base = ca[..., :, None] + cb[..., None, :]
    e_prod = jnp.full(base.shape, _ZERO_EXP, _I32)
    for j in reversed(range(nlevels)):  # the highest level that holds a normal sum wins
        sa, sb = (j + 1) // 2 * d, j // 2 * d

        def powers(rel, shift):
            q = p * rel + p * shift
            return jnp.where(q >= -126, pow2(jnp.clip(q, -126, 127)), _F32(0))

        q = jnp.einsum("...mi,...ni->...mn" if minor else "...mi,...in->...mn", powers(a_rel, sa),
                       powers(b_rel, sb), precision=_HI)
        field = lax.bitcast_convert_type(q, _I32) >> 23  # (q >= 0: no sign bit)
        found = (field > 0) & (field < 255)
        e_prod = jnp.where(found, base + jnp.floor_divide(field - 127, p) - j * d, e_prod)
    big_e = jnp.maximum(e_prod, c_exp) if model.accumulator_in_alignment else e_prod
    big_e = jnp.maximum(big_e, -(1 << 12))  # an all-zero block: any E will do
    scale = pow2(jnp.clip(model.alignment_bits - (big_e - base), -126, 127))
    axis = -1 if minor else -2
    pa, pb = _pairs(a_s, b_s, minor)
    x = (pa * pb) * jnp.expand_dims(scale, axis)
    return _finish(model, c, x, c_sig, c_exp, big_e, axis=axis)


def _pairs(a, b, minor: bool):
    """``a`` (…, M, n) and ``b`` (…, n, N), or (…, N, n) with ``minor``, shaped to broadcast
    to the block's products: (…, M, n, N), or (…, M, N, n) (:func:`reduce_minor`)."""
    if minor:
        return a[..., :, None, :], b[..., None, :, :]
    return a[..., :, :, None], b[..., None, :, :]


def _block_general(model, c, a, b, minor: bool = False):
    """One block FMA on the general path; ``a = (sig, exp)`` (…, M, n), ``b`` (…, n, N),
    or (…, N, n) with ``minor`` (:func:`reduce_minor`)."""
    (a_s, a_e), (b_s, b_e) = a, b
    c_sig, c_exp = _acc_parts(c)
    axis = -1 if minor else -2
    ea, eb = _pairs(a_e, b_e, minor)
    t = ea + eb
    e_prod = jnp.max(t, axis=axis)
    big_e = jnp.maximum(e_prod, c_exp) if model.accumulator_in_alignment else e_prod
    big_e = jnp.maximum(big_e, -(1 << 12))
    shift = jnp.maximum(t + jnp.expand_dims(model.alignment_bits - big_e, axis), -126)
    pa, pb = _pairs(a_s, b_s, minor)
    x = (pa * pb) * pow2(shift)
    return _finish(model, c, x, c_sig, c_exp, big_e, axis=axis)


def _split12(x):
    """``x = hi + lo`` with ``hi`` the top 12 significand bits (a bit mask) and ``lo`` exact."""
    hi = lax.bitcast_convert_type(lax.bitcast_convert_type(x, jnp.uint32) & jnp.uint32(0xFFFFF000), _F32)
    return hi, x - hi


def _block_fma(model, c, a, b, normal: bool = False):
    """One exact fused multiply-add per output: ``RN(a * b + c)`` in float32 (``a`` (…, M, 1)).

    The product is exact as ``p + err`` (Dekker's product on 12-bit halves), and
    ``RN(c + p + err)`` is one rounding by Boldo & Melquiond's emulated FMA ("Emulation
    of FMA and correctly rounded sums: proved algorithms using rounding to odd", IEEE
    TC 2008): ``th + tl = c + p`` exactly, ``v = RO(tl + err)``, result ``RN(th + v)``.
    ``normal``: every product and running sum is known to stay below ``2**125``
    (:func:`_sums_stay_normal`): the FMA without its handling of the top of the range.
    """
    return (_fma_normal if normal else fma)(a[0][..., :, 0][..., :, None], b[0][..., 0, :][..., None, :], c)


def _sums_stay_normal(a, b, k: int):
    """Whether ``k`` products of finite ``a`` (…, M, K) and ``b`` (…, N, K) values, and every
    running sum of them, stay below ``2**125`` in magnitude: ``|a| |b| k < 2**125``."""
    def exponent(x):  # floor(log2(max |x|)), from the bits (-127 for all zeros, or none)
        return (jnp.max(magnitude_bits(x), initial=jnp.uint32(0)) >> 23).astype(_I32) - 127
    return exponent(a) + exponent(b) + 2 + max(k - 1, 0).bit_length() <= 124


def fma(x, y, c):
    """``RN(x * y + c)`` in float32, one rounding, on any backend (see :func:`_block_fma`).

    Written out because whether XLA contracts ``x * y + c`` into a hardware FMA depends
    on the backend and on the surrounding program (its CPU backend does for a product
    with one use). IEEE 754's FMA at the top of the range too: a result past float32's
    largest value is +-inf, and one within it is exact even where ``x * y`` alone would
    overflow (``3e38 * 2 - 3e38`` is ``3e38``); ``x`` or ``y`` infinite or NaN gives
    ``x * y + c``, an infinite or NaN ``c`` (with finite ``x``, ``y``) gives ``c``.
    """
    ux, uy, uc = (lax.bitcast_convert_type(v, jnp.uint32) for v in (x, y, c))
    fx, fy, fc = (((u >> 23) & 0xFF).astype(_I32) for u in (ux, uy, uc))
    neg_product = (ux >> 31) != (uy >> 31)
    # Near the top of the range the error terms below would overflow (inf - inf): the
    # larger factor and c are scaled by 2**-64 and the result back by 2**64 (exact, or
    # the overflow to inf that the unscaled sum has). A partner so small that it would
    # leave the normal range there only breaks ties (it lies far below half an ulp of
    # the other): it is replaced by a normal stand-in of its sign.
    big = (fx + fy >= 125 + 2 * 127) | (fc >= 125 + 127)
    swap = fy > fx
    hi, lo = jnp.where(swap, y, x), jnp.where(swap, x, y)
    zero_product = (fx == 0) | (fy == 0)  # (subnormal operands are not modelled: XLA's CPU backend flushes them)
    tiny_product = big & ~zero_product & (fx + fy < 4 + 2 * 127)
    hi = jnp.where(tiny_product, jnp.copysign(_F32(2.0**-30), hi), jnp.where(big, hi * _F32(2.0**-64), hi))
    lo = jnp.where(tiny_product, jnp.copysign(_F32(2.0**-30), lo), lo)
    tiny_c = big & (fc != 0) & (fc < -36 + 127)
    cs = jnp.where(tiny_c, jnp.copysign(_F32(2.0**-100), c), jnp.where(big, c * _F32(2.0**-64), c))
    r = _fma_normal(hi, lo, cs)
    r = jnp.where(big, r * _F32(2.0**64), r)
    # A product of at least 2**129 beside a finite c: the sum overflows, to the product's sign.
    r = jnp.where(fx + fy >= 129 + 2 * 127, jnp.where(neg_product, -jnp.inf, jnp.inf).astype(_F32), r)
    # An exact zero is +0 (round to nearest), but -0 for (-0) + (-0): a zero product of
    # negative sign and c = -0. (Chains that start from +0, as the hardware's do, never meet it.)
    neg_zero = (((ux << 1) == 0) | ((uy << 1) == 0)) & neg_product & (uc == jnp.uint32(0x80000000))
    r = jnp.where(neg_zero, _F32(-0.0), r)
    nonfinite_xy = (fx == 255) | (fy == 255)
    return jnp.where(nonfinite_xy | (fc == 255), jnp.where(nonfinite_xy, x * y + c, c), r)


def _fma_normal(x, y, c):
    """:func:`fma` where no step overflows: ``|x * y| < 2**126`` and ``|c| < 2**125``."""
    p = x * y
    xh, xl = _split12(x)
    yh, yl = _split12(y)
    err = (((xh * yh - p) + xh * yl) + xl * yh) + xl * yl
    th, tl = two_sum(c, p)
    v, ve = two_sum(tl, err)
    u = lax.bitcast_convert_type(v, jnp.uint32)
    toward = jnp.where((ve > 0) == (v > 0), u + 1, u - 1)
    v = lax.bitcast_convert_type(jnp.where((ve != 0) & ((u & 1) == 0), toward, u), _F32)
    return _plus_zero(th + v)


# ---- the scan over K --------------------------------------------------------------------------


def _fast_operand(sig, exp, n: int, offset: bool = True):
    """(…, R, K) significands and exponents -> the fast path's scaled significands, exponents
    relative to each block's largest (int32), and that largest (…, R, K // n).

    Without ``offset`` the "largest" is 0: values and exponents as they are.
    """
    shape = sig.shape
    blocks = exp.reshape(*shape[:-1], shape[-1] // n, n)
    if offset:
        top = jnp.max(blocks, axis=-1)
        top = jnp.where(top == _ZERO_EXP, 0, top)
    else:
        top = jnp.zeros(blocks.shape[:-1], _I32)
    rel = jnp.maximum(blocks - top[..., None], -(1 << 12))
    scaled = sig.reshape(blocks.shape) * pow2(jnp.maximum(rel, -126))
    return scaled.reshape(shape), rel.reshape(shape), top


def _blocks(x, n: int, rows_last: bool):
    """(…, R, steps*n) -> (steps, …, R, n), or (steps, …, n, R) when ``rows_last``."""
    x = jnp.moveaxis(x.reshape(*x.shape[:-1], x.shape[-1] // n, n), -2, 0)
    return jnp.swapaxes(x, -1, -2) if rows_last else x


NEVER = 1 << 30  # a promotion interval that never comes


def reduce_minor(backend: str | None = None) -> bool:
    """Whether a block's products are laid out (…, M, N, n) and summed over their minor
    axis (GPU, TPU), or laid out (…, M, n, N) and summed over n (CPU). Trace time.

    The sum is of int32, exact in any order: the layout changes no bit
    (tests/test_tensorcore.py forces the GPU layout on the CPU and compares).
    CPU: XLA's CPU backend vectorizes the block's elementwise work along N, contiguous
    in the products and the output. GPU: in the (M, n, N) layout the block sum is a
    column reduction whose every product loads its operands again; one block step at
    4096^2 outputs took 4.3 ms on an H100 (0.69 ms at 2048^2, a quarter of the
    products: the operands and per-output scales no longer stayed in cache). In the
    (M, N, n) layout (b's blocks as stored, (N, n)) an output's ``n`` products read one
    contiguous row of each operand block and its per-output values once (a row
    reduction). Chosen by that reasoning; not yet timed on a GPU
    (``benchmarks/gpu_quick.py layouts`` times both).
    """
    return (backend or jax.default_backend()) != "cpu"


#: Elements per loop iteration on an accelerator (issue 15, item 3).
UNROLL_ELEMENTS = 64


def scan_unroll(width: int, backend: str | None = None) -> int:
    """Steps of ``width`` elements per iteration of the loop over K, by backend (trace time).

    CPU: 1 (XLA's CPU backend compiled one block per step several times faster than
    unrolled steps). GPU / TPU: enough steps for ``UNROLL_ELEMENTS`` elements, so that a
    long contraction with narrow steps (FP32's one product, TF32's 8) is not thousands of
    while-loop iterations, each a kernel launch and a device-to-host check of the loop
    condition. Unrolling runs the same operations in the same order: the same bits
    (tests/test_matmul_tensorcore.py checks it on CPU by forcing it).
    """
    if (backend or jax.default_backend()) == "cpu":
        return 1
    return max(1, UNROLL_ELEMENTS // width)


def _scan(model, block, xs, valid, shape, interval, scales=None):
    """The running sum over the blocks of ``xs`` (one block per step), promoted every ``interval``.

    One block per step: XLA compiles that several times faster than unrolled steps, and
    a step is already M * N * n products. ``interval`` (elements, int32, traced, so that
    models differing only in it share a compilation) is a multiple of the block size.
    ``scales``: None, or ``(sa, sb)`` of shapes ``(steps, …, M)`` and ``(steps, …, N)``:
    at each promotion the running sum ``c`` is multiplied by ``s = fl32(sa * sb)`` of its
    last step and added with one rounding, ``RN(c * s + total)`` (block scales along K,
    DeepSeek-V3's recipe, as DeepGEMM's compiled ``final += scale * accum`` does).
    """
    n = model.block_size

    def step(carry, x):
        c, total, since = carry
        (a, b), ok, s = x
        c = jnp.where(ok, block(model, c, a, b), c)
        since = since + n
        promote = since >= interval
        if s is not None:  # one rounding: fma(c, fl32(sa * sb), total) (see :func:`fma`)
            added = fma(c, s[0][..., :, None] * s[1][..., None, :], total)
        else:
            added = total + c
        total = jnp.where(promote, added, total)
        c = jnp.where(promote, jnp.zeros_like(c), c)
        return (c, total, jnp.where(promote, 0, since)), None

    zeros = jnp.zeros(shape, _F32)
    (c, total, _), _ = lax.scan(step, (zeros, zeros, jnp.int32(0)), (xs, valid, scales), unroll=scan_unroll(n))
    return total + c  # (total is +0 when nothing was promoted: c exactly)


def chain(model, a, b, interval, path: str = "auto", scales=None):
    """The running sum of one part: ``a`` (sig, exp) (…, M, K), ``b`` (…, N, K) -> (…, M, N).

    ``path``: ``"auto"`` (the fast path where the data allow it), ``"fast"`` or
    ``"general"`` (for tests: the two must agree wherever the fast path is valid).
    ``scales``: None or ``(sa, sb)``, one scale per block of ``block_size`` elements,
    (…, M, K // block_size) and (…, N, K // block_size) (see :func:`_scan`).
    """
    n, j = model.block_size, model.block_interleave
    k = a[0].shape[-1]
    steps = max(1, _ceil_div(k, n * j)) * j
    pad = [(0, 0)] * (a[0].ndim - 1) + [(0, steps * n - k)]
    a = tuple(_interleave(jnp.pad(v, pad, constant_values=0 if i == 0 else _ZERO_EXP), n, j) for i, v in enumerate(a))
    b = tuple(_interleave(jnp.pad(v, pad, constant_values=0 if i == 0 else _ZERO_EXP), n, j) for i, v in enumerate(b))
    valid = jnp.arange(steps) < (_ceil_div(k, n) if j == 1 else steps)
    shape = a[0].shape[:-1] + (b[0].shape[-2],)
    if scales is not None:  # (…, R, steps) -> (steps, …, R); the caller has j == 1, no padding
        scales = tuple(jnp.moveaxis(s, -1, 0) for s in scales)
    nlevels = levels(model)
    minor = reduce_minor()  # b's blocks as stored, (…, N, n), or transposed to (…, n, N)

    def fast(a, b):
        offset = not absolute(model)
        fa, fb = _fast_operand(*a, n, offset), _fast_operand(*b, n, offset)
        xs_a = (_blocks(fa[0], n, False), _blocks(fa[1], n, False), _blocks(fa[2], 1, False)[..., 0])
        xs_b = (_blocks(fb[0], n, not minor), _blocks(fb[1], n, not minor), _blocks(fb[2], 1, False)[..., 0])
        block = functools.partial(_block_fast, nlevels=nlevels or 1, minor=minor)
        return _scan(model, block, (xs_a, xs_b), valid, shape, interval, scales)

    def general(a, b):
        xs_a = tuple(_blocks(v, n, False) for v in a)
        xs_b = tuple(_blocks(v, n, not minor) for v in b)
        return _scan(model, functools.partial(_block_general, minor=minor), (xs_a, xs_b), valid, shape, interval,
                     scales)

    if model.alignment_bits is None:
        # The full IEEE FMA (scaling near the top of float32's range) costs about 1.7x the
        # chain's time: it runs only where the operands allow a product or sum past 2**125.
        xs = (tuple(_blocks(v, n, False) for v in a), tuple(_blocks(v, n, True) for v in b))

        def run(normal):
            return lambda xs: _scan(model, functools.partial(_block_fma, normal=normal), xs, valid, shape, interval,
                                    scales)
        return lax.cond(_sums_stay_normal(a[0], b[0], k), run(True), run(False), xs)
    if path == "general":
        return general(a, b)
    if path == "fast" or nlevels is not None:
        return fast(a, b)
    return lax.cond(fast_path_ok(model, a, b), fast, general, a, b)


def _interleave(x, n: int, j: int):
    """(…, K) with K a multiple of ``j * n`` -> the same elements in block order: within each
    group of ``j * n``, pair ``p`` (elements ``2p, 2p + 1``) goes to block ``p mod j``."""
    if j == 1:
        return x
    shape = x.shape
    x = x.reshape(*shape[:-1], shape[-1] // (j * n), n // 2, j, 2)
    return jnp.swapaxes(x, -3, -2).reshape(shape)


def fast_path_ok(model, a, b):
    """Whether one power level finds E for every block and output (wide formats only)."""
    n, p = model.block_size, power_bits(model)
    _, ra, _ = _fast_operand(*a, n)
    _, rb, _ = _fast_operand(*b, n)

    def split(x):  # (…, R, K) -> (blocks, …, R, n)
        return jnp.moveaxis(x.reshape(*x.shape[:-1], x.shape[-1] // n, n), -2, 0)

    def power(rel):
        return jnp.where(p * rel >= -126, pow2(jnp.maximum(p * rel, -126)), _F32(0))

    def one(_, blk):
        pa, pb, za, zb = blk
        q = jnp.einsum("...mi,...ni->...mn", pa, pb, precision=_HI)
        z = jnp.einsum("...mi,...ni->...mn", za, zb, precision=_HI)
        return None, jnp.any((q < _F32(2.0**-126)) & (z > 0))

    xs = (split(power(ra)), split(power(rb)), split((a[0] != 0).astype(_F32)), split((b[0] != 0).astype(_F32)))
    _, bad = lax.scan(one, None, xs)
    return ~jnp.any(bad)


def contract(model, a, b, a_fmt: FloatFormat, b_fmt: FloatFormat, path: str = "auto", interval=None,
             scales=None):
    """The model's result for float32 values ``a`` (…, M, K), ``b`` (…, N, K): (…, M, N).

    ``interval``: the promotion interval in elements (may be traced); None reads
    ``model.promotion_interval``. ``scales``: None, or per-block scales ``(sa, sb)``,
    (…, M, K // block_size) and (…, N, K // block_size), applied at each promotion
    (:func:`_scan`; needs ``split_k == 1``, ``block_interleave == 1`` and ``K`` a
    multiple of ``block_size``).
    """
    if interval is None:
        interval = NEVER if model.promotion_interval is None else model.promotion_interval
    sa, ea, bad_a = decompose(a, a_fmt)
    sb, eb, bad_b = decompose(b, b_fmt)
    if model.alignment_bits is None:  # exact FMAs read the values themselves
        sa, sb = jnp.where(bad_a, _F32(0), a), jnp.where(bad_b, _F32(0), b)
    k = a.shape[-1]
    if model.split_k == 1:
        out = chain(model, (sa, ea), (sb, eb), interval, path, scales)
    else:
        s, g = model.split_k, model.split_k_granule
        if model.split_k_interleave:  # k-tile t (of g elements) goes to part t mod s
            length = _ceil_div(k, s * g) * g
        else:  # part i holds elements [i*length, (i+1)*length)
            length = _ceil_div(_ceil_div(k, s), g) * g

        def parts(x, fill):  # (…, R, K) -> (S, …, R, L)
            x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, s * length - k)], constant_values=fill)
            if model.split_k_interleave:
                x = x.reshape(*x.shape[:-1], length // g, s, g)
                return jnp.moveaxis(x, -2, 0).reshape(s, *x.shape[:-3], length)
            return jnp.moveaxis(x.reshape(*x.shape[:-1], s, length), -2, 0)

        sums = chain(model, (parts(sa, 0), parts(ea, _ZERO_EXP)), (parts(sb, 0), parts(eb, _ZERO_EXP)), interval,
                     path)
        out = combine_parts([sums[i] for i in range(s)], model.split_k_partials, model.split_k_tree)
    # Inf or NaN operands: the IEEE float32 sum of the products (not recorded on hardware).
    special = jnp.any(bad_a, axis=-1)[..., :, None] | jnp.any(bad_b, axis=-1)[..., None, :]
    if scales is not None:  # each element times its block's scale
        n = model.block_size
        a = a * jnp.repeat(scales[0], n, axis=-1)
        b = b * jnp.repeat(scales[1], n, axis=-1)
    plain = jnp.einsum("...mk,...nk->...mn", a, b, precision=_HI)
    return jnp.where(special, plain, out)


def _ceil_div(x: int, y: int) -> int:
    return -(-x // y)


def _pairwise(sums):
    """Adjacent pairs added, level by level (an odd last value goes up unchanged)."""
    while len(sums) > 1:
        sums = [sums[i] + sums[i + 1] if i + 1 < len(sums) else sums[i] for i in range(0, len(sums), 2)]
    return sums[0]


def combine_parts(parts, partials: int, tree: bool = False):
    """Float32 sum of split-K parts: part i into sum i mod ``partials`` (a running sum in order,
    or with ``tree`` a pairwise tree of its parts), then the sums pairwise."""
    groups = [parts[j::partials] for j in range(min(partials, len(parts)))]
    if tree:
        return _pairwise([_pairwise(g) for g in groups])
    sums = []
    for g in groups:
        acc = g[0]
        for p in g[1:]:
            acc = acc + p
        sums.append(acc)
    return _pairwise(sums)
