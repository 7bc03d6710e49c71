"""The products binary, ternary and logarithmic formats exist for, computed as their hardware does.

* :func:`binary_matmul`: two binarized operands (:func:`numfmt.binarize`). Their signs
  are packed 32 to a uint32 word along the contraction axis and each dot product is
  ``2 * popcount(XNOR) - K`` (XNOR-Net, Rastegari et al. 2016, §3.2), an exact integer.
* :func:`lowbit_weight_matmul`: integer activations (:func:`numfmt.quantize_scaled`
  with INT8, UINT8, INT4 ... elements) times binary or ternary weights: the dot product
  is the sum of the activations where the weight is ``+1`` less the sum where it is
  ``-1``, additions only, exact in int32 (BinaryConnect / TWN inference).
* :func:`log_matmul`: two operands of a log format (:class:`numfmt.LogFormat`): each
  product's sign is an XOR and its exponent an integer addition (Miyashita et al. 2016,
  §3), and the signed powers are accumulated exactly in a fixed-point int32 register.

Every function ends the same way, in float32 (float64 when both scales are), in this
order: the exact integer sum ``S`` is converted once (round to nearest even; exact when
``|S| <= 2**24``), then multiplied by the left operand's scale and then by the right
one's: ``(float(S) * scale_a) * scale_b``, one rounding each. The scales must be shared
along the contraction axis (per tensor, per row of the left operand, per column of the
right one); anything else is refused, naming the operand.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import packing as _packing
from numfmt import scalemath as _sm
from numfmt.bitlayout import mul_pow2
from numfmt.formats import IntFormat
from numfmt.logformat import LogFormat
from numfmt.lowbit import BINARY, TERNARY
from numfmt.scaled import QArray

__all__ = ["binary_matmul", "log_matmul", "lowbit_weight_matmul"]

WORD = 32
_DIMS = (((1,), (0,)), ((), ()))


# ---- argument checks ---------------------------------------------------------------------------


def _check_operand(q, arg: str, is_kind, what: str, k_axis: int):
    """``q``'s codes and scale: a 2-D QArray whose format passes ``is_kind``, with a scale shared along ``k_axis``."""
    if not isinstance(q, QArray) or not is_kind(q.fmt):
        got = f"a QArray of {q.fmt.name}" if isinstance(q, QArray) else type(q).__name__
        raise TypeError(f"{arg} must be {what}, got {got}")
    if q.codes.ndim != 2:
        raise ValueError(f"{arg} must be 2-D ({'M, K' if k_axis == 1 else 'K, N'}), got shape {q.codes.shape}")
    if q.block_size is not None or q.tensor_scale is not None or q.elem_scale != 1.0:
        raise ValueError(f"{arg} must have per-tensor or per-channel scales (no blocks, no second-level scale)")
    if q.axis is not None and k_axis not in q.axis:
        raise ValueError(f"{arg}'s scale must be shared along its contraction axis ({k_axis}): quantize it with "
                         f"axis=None or axis={k_axis}, got axis={q.axis}")
    return q.codes, jnp.asarray(q.scale)


def _check_inner(a_codes, b_codes):
    if a_codes.shape[1] != b_codes.shape[0]:
        raise ValueError(f"the inner dimensions differ: qa is {a_codes.shape}, qb is {b_codes.shape} "
                         "(qa's K must equal qb's K)")


def _work(scale_a, scale_b):
    """float32, or float64 when both scales are (float64 inputs with ``jax_enable_x64``)."""
    return jnp.float64 if scale_a.dtype == jnp.float64 and scale_b.dtype == jnp.float64 else jnp.float32


def _finish(total, scale_a, scale_b):
    """``(total * scale_a) * scale_b``, one rounding each: the module doc's order.

    Each product on the bits (:func:`numfmt.scalemath.product`): a subnormal scale (an
    XNOR-Net ``alpha`` can be one) would read as zero on XLA's CPU backend."""
    work = total.dtype
    return _sm.product(_sm.product(total, scale_a.astype(work)), scale_b.astype(work))


# ---- binary x binary: XNOR and popcount ------------------------------------------------------------


def _is_binary(fmt) -> bool:
    return fmt == BINARY


def pack_sign_words(codes):
    """Pack the 1-bit codes of each row of ``codes`` ``(R, K)`` into uint32 words ``(R, ceil(K/32))``.

    Bit ``t`` of word ``w`` is code ``32 w + t`` (``numfmt.pack``'s little-endian bit stream,
    read four bytes at a time); the bits past ``K`` in the last word are 0.
    """
    K = codes.shape[1]
    nbytes = 4 * -(-K // WORD)
    packed = jax.vmap(lambda row: _packing.pack(row, 1))(codes).astype(jnp.uint32)  # (R, ceil(K/8)) bytes
    packed = jnp.pad(packed, ((0, 0), (0, nbytes - packed.shape[1]))).reshape(codes.shape[0], -1, 4)
    return jnp.sum(packed << (jnp.arange(4, dtype=jnp.uint32) * jnp.uint32(8)), axis=2, dtype=jnp.uint32)


@jax.jit
def _binary_matmul(a_codes, b_codes, alpha_a, alpha_b):
    K = a_codes.shape[1]
    wa = pack_sign_words(a_codes)  # (M, W)
    wb = pack_sign_words(b_codes.T)  # (N, W)
    pad = wa.shape[1] * WORD - K  # padded bits are 0 in both operands: XNOR counts them as agreeing

    def step(agree, words):
        x, y = words
        return agree + lax.population_count(~(x[:, None] ^ y[None, :])).astype(jnp.int32), None

    agree, _ = lax.scan(step, jnp.zeros((wa.shape[0], wb.shape[0]), jnp.int32), (wa.T, wb.T))
    S = 2 * (agree - pad) - K  # agreements minus disagreements
    return _finish(S.astype(_work(alpha_a, alpha_b)), alpha_a, alpha_b)


def binary_matmul(qa, qb):
    """The product of two binarized matrices by XNOR and popcount on packed words, exactly.

    Args:
      qa: ``(M, K)`` from :func:`numfmt.binarize` with ``axis=None`` or ``axis=1``
        (one ``alpha`` per row).
      qb: ``(K, N)`` from :func:`numfmt.binarize` with ``axis=None`` or ``axis=0``
        (one ``alpha`` per column).

    Returns:
      ``(M, N)`` float32: bit for bit ``(float32(sign(a) @ sign(b)) * alpha_a) * alpha_b``
      (module doc), where ``sign(a) @ sign(b) = 2 * popcount(XNOR) - K`` is computed on
      uint32 words (any ``K``: the last word's padding is subtracted) and is exact.
    """
    a_codes, alpha_a = _check_operand(qa, "qa", _is_binary, "binarized (numfmt.binarize)", 1)
    b_codes, alpha_b = _check_operand(qb, "qb", _is_binary, "binarized (numfmt.binarize)", 0)
    _check_inner(a_codes, b_codes)
    return _binary_matmul(a_codes, b_codes, alpha_a, alpha_b)


# ---- integer activations x binary / ternary weights: additions only ------------------------------


@jax.jit
def _lowbit_weight_matmul(x_int, w_codes, ternary, scale_x, alpha_w):
    plus = (w_codes == jnp.where(ternary, 2, 1)).astype(jnp.int32)  # the weights +1
    minus = (w_codes == 0).astype(jnp.int32)  # the weights -1 (ternary code 1 is 0)
    # Each int32 dot product with a 0/1 matrix is a sum of selected activations: additions only.
    S = lax.dot_general(x_int, plus, _DIMS, preferred_element_type=jnp.int32) - lax.dot_general(
        x_int, minus, _DIMS, preferred_element_type=jnp.int32)
    return _finish(S.astype(_work(scale_x, alpha_w)), scale_x, alpha_w)


def lowbit_weight_matmul(qx, qw):
    """Integer activations times binary or ternary weights, with additions only and an exact int32 sum.

    Args:
      qx: ``(M, K)`` activations from :func:`numfmt.quantize_scaled` with an integer
        element format of at most 8 bits (INT8, UINT8, INT4, ``int8_narrow`` ...),
        symmetric or affine (the zero point is subtracted first), with ``axis=None`` or
        ``axis=1``.
      qw: ``(K, N)`` weights from :func:`numfmt.binarize` or :func:`numfmt.ternarize`
        with ``axis=None`` or ``axis=0``.

    Returns:
      ``(M, N)`` float32: ``(float32(S) * scale_x) * alpha_w`` where ``S[m, n]`` is the sum
      of ``q[m, k] - z`` over the ``k`` with weight ``+1`` less the sum over weight ``-1``,
      exact in int32 (``K <= 2**31 / 2**8``, checked).
    """
    x_codes, scale_x = _check_operand(qx, "qx", lambda f: isinstance(f, IntFormat) and f.bits <= 8,
                                      "quantized to an integer format of at most 8 bits (numfmt.quantize_scaled)", 1)
    w_codes, alpha_w = _check_operand(qw, "qw", lambda f: f in (BINARY, TERNARY),
                                      "binarized or ternarized (numfmt.binarize, numfmt.ternarize)", 0)
    _check_inner(x_codes, w_codes)
    K = x_codes.shape[1]
    if K > (2**31 - 1) // 2**8:
        raise ValueError(f"K={K} is too long for an exact int32 sum of 8-bit activations (at most {2**23 - 1})")
    x_int = _int_values(qx)
    return _lowbit_weight_matmul(x_int, w_codes, qw.fmt == TERNARY, scale_x, alpha_w)


def _int_values(qx):
    """The integer values ``q - z`` of an integer QArray, as int32 (two's complement codes read as ints)."""
    from numfmt.codec import decode

    v = decode(qx.codes, qx.fmt, jnp.float32).astype(jnp.int32)  # exact: at most 8 bits
    if qx.zero_point is not None:
        v = v - jnp.asarray(qx.zero_point, jnp.int32)
    return v


# ---- log x log: exponents added, powers accumulated in fixed point -----------------------------------


def _is_log(fmt) -> bool:
    return isinstance(fmt, LogFormat)


def _log_parts(codes, fmt: LogFormat):
    """``(nonzero, negative, e)`` of log codes: the exponent ``e`` of ``base**e`` (any value where zero)."""
    c = codes.astype(jnp.int32)
    field = c & fmt.max_code
    return field != 0, (c & fmt.sign_mask) != 0, field - fmt.bias


@functools.partial(jax.jit, static_argnames=("fa", "fb", "chunk"))
def _log_matmul(a_codes, b_codes, scale_a, scale_b, *, fa, fb, chunk):
    r = fa.root
    t0 = fa.emin + fb.emin  # the smallest exponent a product can have: the register's lowest bit
    M, K = a_codes.shape
    N = b_codes.shape[1]
    pad = (-K) % chunk
    a_codes = jnp.pad(a_codes, ((0, 0), (0, pad)))  # code 0 is zero: padding adds nothing
    b_codes = jnp.pad(b_codes, ((0, pad), (0, 0)))
    na, sa, ea = (p.reshape(M, -1, chunk).transpose(1, 0, 2) for p in _log_parts(a_codes, fa))
    nb, sb, eb = (p.reshape(-1, chunk, N) for p in _log_parts(b_codes, fb))

    def step(acc, xs):
        na_c, sa_c, ea_c, nb_c, sb_c, eb_c = xs
        t = ea_c[:, :, None] + eb_c[None, :, :] - t0  # the product's exponent: an integer addition
        sign = jnp.where(sa_c[:, :, None] ^ sb_c[None, :, :], -1, 1)
        live = na_c[:, :, None] & nb_c[None, :, :]
        term = jnp.where(live, sign * jnp.left_shift(1, t // r), 0)
        odd = (t % r) == 1  # base sqrt(2): an odd exponent carries a factor sqrt(2)
        return (acc[0] + jnp.sum(jnp.where(odd, 0, term), axis=1),
                acc[1] + jnp.sum(jnp.where(odd, term, 0), axis=1)), None

    zero = jnp.zeros((M, N), jnp.int32)
    (S_even, S_odd), _ = lax.scan(step, (zero, zero), (na, sa, ea, nb, sb, eb))
    work = _work(scale_a, scale_b)
    if r == 1:
        total = S_even.astype(work)
        shift = t0
    else:
        # (S_even + sqrt2 * S_odd) * 2**(t0/2): for odd t0 one sqrt(2) moves over (sqrt2 * sqrt2 = 2).
        P, Q = (S_even.astype(work), S_odd.astype(work)) if t0 % 2 == 0 else (S_odd.astype(work) * 2, S_even.astype(work))
        # sqrt is correctly rounded. XLA (on CPU, and on a GPU) contracts a fused
        # ``P + c * Q`` into one FMA, a single rounding, and an optimization barrier
        # around the product is gone before fusion. So the product first takes a zero
        # the compiler cannot fold away (``Q * 0`` is not folded for floats, and the
        # barrier hides the constant besides): contracted or not, ``c * Q + Q * 0`` is
        # ``c * Q`` rounded once, and the sum is the documented two roundings.
        zero = Q * lax.optimization_barrier(jnp.zeros((), work))  # +-0: x + (+-0) is x
        total = P + (np.sqrt(np.asarray(2.0, work)) * Q + zero)
        shift = t0 // 2
    return _finish(mul_pow2(total, jnp.full((), shift, jnp.int32)), scale_a, scale_b)


def log_matmul(qa, qb):
    """The product of two log-quantized matrices: exponents added, the signed powers summed exactly.

    Args:
      qa: ``(M, K)`` QArray with a :class:`numfmt.LogFormat` element (e.g.
        ``numfmt.quantize_scaled(a, "log4", axis=1)``), scales per tensor or per row.
      qb: ``(K, N)`` likewise, with the same base, scales per tensor or per column.

    Each product ``±base**ea * ±base**eb`` is ``±base**(ea + eb)``: a sign XOR and an
    integer addition. The products are summed in a fixed-point two's complement int32
    register whose lowest bit is ``base**(emin_a + emin_b)`` (for base sqrt(2), two
    registers, for the even and the odd powers): exact, with no rounding. The register
    must hold ``K * base**(span)`` (checked at trace time). Then, in float32: base 2,
    ``float(S) * 2**(emin_a + emin_b)``; base sqrt(2), ``float(P) + fl(sqrt2) * float(Q)``
    times a power of two (``P``, ``Q`` the registers, the odd one doubled when the lowest
    exponent is odd), each step rounded to nearest even; then the module doc's
    ``(... * scale_a) * scale_b``.

    Returns:
      ``(M, N)`` float32. For base 2 it equals the float product of the dequantized
      operands wherever that is exact (every partial sum representable), and is the
      correctly rounded exact sum times the scales otherwise (when ``|S| > 2**24``).
    """
    a_codes, scale_a = _check_operand(qa, "qa", _is_log, "log-quantized (a numfmt.LogFormat element)", 1)
    b_codes, scale_b = _check_operand(qb, "qb", _is_log, "log-quantized (a numfmt.LogFormat element)", 0)
    _check_inner(a_codes, b_codes)
    fa, fb = qa.fmt, qb.fmt
    if fa.root != fb.root:
        raise ValueError(f"qa and qb must have the same base, got {fa.name} (base {fa.base}) and {fb.name} "
                         f"(base {fb.base})")
    K = a_codes.shape[1]
    span = (fa.emax + fb.emax - fa.emin - fb.emin) // fa.root  # the largest term is 2**span
    if K * 2**span >= 2**31:
        raise ValueError(f"the exact int32 sum of K={K} products of {fa.name} x {fb.name} spans {span} + "
                         f"log2(K) bits, more than 31: use formats with fewer exponents, or split K into parts "
                         f"of at most {max(1, (2**31 - 1) >> span)}")
    chunk = max(1, min(K, (1 << 22) // max(1, a_codes.shape[0] * b_codes.shape[1])))
    return _log_matmul(a_codes, b_codes, scale_a, scale_b, fa=fa, fb=fb, chunk=chunk)
