"""A model of the accumulator inside a matrix product: :class:`Accumulator` and the emulated sum.

A hardware dot-product unit does not add products one at a time in FP32. It sums a
few products exactly (``dot_width`` of them, the width of its adder tree), adds that
partial sum to a running sum held in some accumulator format, rounding each time, and
may move the running sum to a wider FP32 register every ``promotion_interval``
elements. DeepSeek-V3 (arXiv 2412.19437, §3.3.2) found that FP8 GEMM on H800 tensor
cores keeps only about 14 bits in that running sum, and promoted it to FP32 on the CUDA
cores every 128 elements.

The emulation here follows that structure (docs/matmul.md has the full model):

1. The contraction axis ``K`` is cut into chunks of ``dot_width`` elements. Each chunk's
   sum of products is one native float32 matmul (``precision=HIGHEST``). It is exact
   when the chunk's products fit float32's 24-bit significand: for products of ``b``-bit
   significands (8 for E4M3 x E4M3) whose exponents span ``s`` binades, when
   ``b + s + ceil(log2 dot_width) <= 24``. Otherwise it carries one float32 rounding
   error, ``2**-24`` of the chunk's magnitude sum or less per addition.
2. A ``lax.scan`` over the chunks adds each chunk sum to the running sum and rounds the
   exact result into the accumulator format with the accumulator's rounding mode
   (``order="sequential"``), or the chunk sums are combined by a balanced tree of
   rounded additions (``order="pairwise"``).
3. With ``promotion_interval=P``, the running sum is added to an FP32 accumulator (and
   restarted at zero) after every ``P`` elements of ``K``.

The addition ``s + c`` is rounded once, exactly: ``TwoSum`` gives ``s + c = hi + lo``
with both float32, round-to-odd folds ``lo`` into ``hi``'s last bit, and the codec
rounds that into the accumulator format; round-to-odd at two or more extra bits
followed by any rounding gives the correctly rounded result (Boldo & Melquiond,
"Emulation of FMA and correctly rounded sums: proved algorithms using rounding to
odd", IEEE TC 2008). Stochastic rounding gets its probability from the float32
round-to-odd value (exact to ``2**-(23 - man_bits)``) and its random bits from
:func:`numfmt.rounding.hash_bits` through the codec, ``rbits`` of them.

This is the emulation for accumulators a user configures; the hardware's own
accumulation (H100 tensor cores, fitted to recorded output) is :mod:`numfmt.tensorcore`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import rounding as _rounding
from numfmt.checks import check_int
from numfmt.formats import FloatFormat, IntFormat
from numfmt.tensorcore_kernel import scan_unroll, two_sum

__all__ = ["NATIVE_DOTS", "ORDERS", "Accumulator", "accumulate", "round_add"]

ORDERS = ("sequential", "pairwise")
NATIVE_DOTS = ("auto", "highest")

_HI = lax.Precision.HIGHEST


def _is_fp32(fmt) -> bool:
    return isinstance(fmt, FloatFormat) and fmt._key() == _formats.FP32._key()


def _fits_float32(fmt: FloatFormat) -> bool:
    """Whether every value of ``fmt`` is a float32 (normal or subnormal)."""
    lowest = fmt.emin - (fmt.man_bits if fmt.subnormals else 0)
    return fmt.man_bits <= 23 and fmt.emax <= 127 and lowest >= -149


def _check_positive(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """How a matrix product sums its products: the running sum's format and its adder.

    Args:
      fmt: format of the running sum: a signed ``FloatFormat`` within float32's range
        with at most 21 mantissa bits, or FP32 itself (e.g. ``numfmt.E8M13``, BF16, FP16,
        FP32), or a signed ``IntFormat`` (e.g. INT32, INT16; additions saturate).
      dot_width: how many products the hardware sums exactly before each addition to
        the running sum. ``None`` means the native matmul (the fast path) for an FP32
        accumulator with ``nearest_even`` rounding, or the exact int32 matmul for an
        INT32 accumulator; for every other accumulator ``None`` means 1.
      promotion_interval: every this many elements of the contraction, the running sum
        is added to an FP32 accumulator and restarts at zero (DeepSeek-V3's fix); a
        multiple of ``dot_width``. ``None``: never.
      order: ``"sequential"`` (a running sum, as a systolic array or a MAC loop does)
        or ``"pairwise"`` (a balanced tree over the chunk sums).
      rounding: the rounding of each addition, one of ``numfmt.ROUNDING_MODES``
        (``"stochastic"`` needs ``key=`` at the call).
      rbits: for ``"stochastic"``: how many random bits decide each rounding, as the
        codec's ``rbits`` (1 to 23; None: the codec's default for a narrower format,
        23 for FP32). The bits come from :func:`numfmt.rounding.hash_bits`, the one
        source of random bits.

      native_dot: for the native FP32 matmul (``dot_width=None``): ``"auto"`` (default)
        or ``"highest"``. ``"auto"``: on a GPU, when both operands enter the product with
        values exact in bfloat16 (FP8 / FP6 / FP4 / INT<=8 elements, times power-of-two
        block scales or NVFP4's E4M3 block scales; per-tensor and per-channel scales and
        NVFP4's tensor scale are applied after the product), the product runs on bf16
        operands with a float32 result, i.e. on the tensor cores, whose accumulation is
        the hardware's as XLA's kernel forms it (``numfmt.tensorcore.H100_BF16`` models
        the H100's cuBLAS products and XLA's at small K, not XLA's split-K kernel at
        large K: docs/matmul.md), not the idealized float32 sum; elsewhere as
        ``"highest"``. ``"highest"``: the dequantized operands in one float32 matmul at
        ``precision=HIGHEST`` on every backend. docs/matmul.md gives the rule.

    This is the emulated accumulator a user configures (a BF16 or stochastic running
    sum, say); the hardware's accumulation is :class:`numfmt.tensorcore.TensorCoreModel`.
    """

    fmt: object = _formats.FP32
    dot_width: int | None = dataclasses.field(default=None, kw_only=True)
    promotion_interval: int | None = dataclasses.field(default=None, kw_only=True)
    order: str = dataclasses.field(default="sequential", kw_only=True)
    rounding: str = dataclasses.field(default="nearest_even", kw_only=True)
    rbits: int | None = dataclasses.field(default=None, kw_only=True)
    native_dot: str = dataclasses.field(default="auto", kw_only=True)

    def __post_init__(self):
        fmt = _formats.get(self.fmt)
        if isinstance(fmt, FloatFormat):
            if not (fmt.signed and fmt.has_zero):
                raise ValueError(f"an accumulator format must be signed and have a zero, got {fmt.name}")
            if not _is_fp32(fmt) and (fmt.man_bits > 21 or not _fits_float32(fmt)):
                raise ValueError(
                    f"a float accumulator needs at most 21 mantissa bits and float32's range, or is FP32 "
                    f"itself; got {fmt.name} (exp_bits={fmt.exp_bits}, man_bits={fmt.man_bits})")
        elif isinstance(fmt, IntFormat):
            if not fmt.signed:
                raise ValueError(f"an integer accumulator must be signed, got {fmt.name}")
        else:
            raise ValueError(f"an accumulator format must be a FloatFormat or an IntFormat, got {fmt.name}")  # noqa: TRY004
        object.__setattr__(self, "fmt", fmt)
        rounding = _rounding.check_rounding(self.rounding)
        object.__setattr__(self, "rounding", rounding)
        if self.rbits is not None:
            check_int(self.rbits, "rbits", 1, 23)
            if rounding != "stochastic":
                raise ValueError(f"rbits is for rounding='stochastic', got rounding={rounding!r}")
        if self.native_dot not in NATIVE_DOTS:
            raise ValueError(f"native_dot must be one of {NATIVE_DOTS}, got {self.native_dot!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        dot_width = _check_positive("dot_width", self.dot_width)
        interval = _check_positive("promotion_interval", self.promotion_interval)
        native_ok = (
            (_is_fp32(fmt) and rounding == "nearest_even") or (isinstance(fmt, IntFormat) and fmt.bits == 32)
        ) and self.order == "sequential" and interval is None
        if dot_width is None and not native_ok:
            dot_width = 1
        object.__setattr__(self, "dot_width", dot_width)
        if interval is not None and interval % dot_width:
            raise ValueError(
                f"promotion_interval must be a multiple of dot_width={dot_width}, got {interval}")

    @property
    def native(self) -> bool:
        """Whether the sum is the native matmul's own (no emulation of the order)."""
        return self.dot_width is None

    @property
    def is_int(self) -> bool:
        """Whether the running sum is an integer format (an INT32 accumulator, say)."""
        return isinstance(self.fmt, IntFormat)


# ---- one rounded addition -------------------------------------------------------------------


def _truncated(hi, lo):
    """Bits of ``hi + lo`` rounded toward zero to float32, and whether it was inexact."""
    bits = lax.bitcast_convert_type(hi, jnp.uint32)
    below = (lo != 0) & (jnp.signbit(lo) != jnp.signbit(hi))  # |hi + lo| < |hi|
    bits = jnp.where(below, bits - jnp.uint32(1), bits)
    return bits, lo != 0


def _fp32_round(hi, lo, rounding, key, rbits=None):
    """``hi + lo`` rounded to float32 by ``rounding`` (``hi = fl(hi + lo)`` to nearest even)."""
    if rounding == "nearest_even":
        return hi
    bits, inexact = _truncated(hi, lo)
    trunc = lax.bitcast_convert_type(bits, jnp.float32)
    finite = jnp.isfinite(hi)
    if rounding == "toward_zero":
        out = trunc
    elif rounding == "odd":
        out = lax.bitcast_convert_type(bits | inexact.astype(jnp.uint32), jnp.float32)
    elif rounding == "up":
        out = jnp.where(lo > 0, jnp.nextafter(hi, jnp.float32(jnp.inf)), hi)
    elif rounding == "down":
        out = jnp.where(lo < 0, jnp.nextafter(hi, jnp.float32(-jnp.inf)), hi)
    elif rounding == "nearest_away":
        far = jnp.nextafter(hi, jnp.where(lo > 0, jnp.float32(jnp.inf), jnp.float32(-jnp.inf)))
        tie = inexact & (2 * lo == far - hi) & (jnp.signbit(lo) == jnp.signbit(hi))
        out = jnp.where(tie, far, hi)
    else:  # stochastic: away from zero with probability |exact - trunc| / ulp
        away = jnp.nextafter(trunc, jnp.where(jnp.signbit(hi), jnp.float32(-jnp.inf), jnp.float32(jnp.inf)))
        ulp = jnp.abs(away - trunc)
        dist = jnp.where(trunc == hi, jnp.abs(lo), ulp - jnp.abs(lo))
        # As the codec's "truncate" variant: r random bits R, away iff R + floor(f 2**r)
        # >= 2**r with f = dist / ulp (exact: ulp is a power of two).
        r = 23 if rbits is None else rbits
        frac = jnp.floor(dist / ulp * jnp.float32(2.0**r))
        rand = (_rounding.hash_bits(key, hi.shape) >> (32 - r)).astype(jnp.float32)
        out = jnp.where(inexact & (rand + frac >= jnp.float32(2.0**r)), away, trunc)
    return jnp.where(finite, out, hi)


def _check_accumulator(acc, what: str):
    if not isinstance(acc, Accumulator):
        raise TypeError(f"{what}: acc must be an Accumulator (e.g. numfmt.Accumulator(numfmt.E8M13, dot_width=32)), "
                        f"got {type(acc).__name__}")


def round_add(s, c, acc: Accumulator, key=None):
    """``s + c`` rounded once into ``acc.fmt`` by ``acc.rounding`` (float32 or int32 arrays)."""
    _check_accumulator(acc, "round_add")
    fmt = acc.fmt
    if isinstance(fmt, IntFormat):
        r = s + c  # int32, wraps on overflow: detect it and saturate
        overflow = ((s ^ r) & (c ^ r)) < 0
        r = jnp.where(overflow, jnp.where(c > 0, jnp.int32(2**31 - 1), jnp.int32(-(2**31))), r)
        return jnp.clip(r, fmt.min, fmt.max)
    hi, lo = two_sum(s, c)
    if _is_fp32(fmt):
        return _fp32_round(hi, lo, acc.rounding, key, acc.rbits)
    bits, inexact = _truncated(hi, lo)
    odd = lax.bitcast_convert_type(bits | inexact.astype(jnp.uint32), jnp.float32)
    odd = jnp.where(jnp.isfinite(hi), odd, hi)
    if acc.rounding == "stochastic":
        return _codec.quantize(odd, fmt, "stochastic", key=key, rbits=acc.rbits)
    return _codec.quantize(odd, fmt, acc.rounding)


# ---- the emulated sum -----------------------------------------------------------------------


def _chunk_dot(a, b, is_int):
    """``(B, M, w) x (B, N, w) -> (B, M, N)``: the chunk's exact (float32 or int32) sums."""
    dims = (((2,), (2,)), ((0,), (0,)))
    if is_int:
        return lax.dot_general(a, b, dims, preferred_element_type=jnp.int32)
    return lax.dot_general(a, b, dims, precision=_HI, preferred_element_type=jnp.float32)


def _scaled(v, sa, sb):
    return v * (sa[..., :, None] * sb[..., None, :])


def _check_accumulate(a, b, acc):
    """``a`` and ``b`` as arrays, after the checks that name what is wrong (bad input at the boundary)."""
    _check_accumulator(acc, "accumulate")
    if acc.dot_width is None:
        raise ValueError("accumulate emulates the sum chunk by chunk: acc needs a dot_width "
                         "(dot_width=None is the native matmul, which qmatmul runs itself)")
    a, b = jnp.asarray(a), jnp.asarray(b)
    want = jnp.int32 if acc.is_int else jnp.float32
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 3:
            raise ValueError(f"{name} must have shape (B, rows, K), got shape {x.shape}")
        if x.dtype != want:
            raise TypeError(f"{name} must hold {jnp.dtype(want).name} element values for a "
                            f"{acc.fmt.name} accumulator, got dtype {x.dtype}")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"a (B, M, K) and b (B, N, K) need the same B and K, got {a.shape} and {b.shape}")
    unit = acc.promotion_interval or acc.dot_width
    if a.shape[2] % unit:
        what = "promotion_interval" if acc.promotion_interval else "dot_width"
        raise ValueError(f"K = {a.shape[2]} must be a multiple of {what} = {unit} (pad both operands with zeros)")
    return a, b


def accumulate(a, b, acc: Accumulator, *, chunk_scale=None, interval_scale=None, key=None):
    """The emulated sum ``sum_k a[b, m, k] * b[b, n, k]`` through the accumulator ``acc``.

    Args:
      a: ``(B, M, K)`` element values (float32, or int32 for an integer accumulator).
      b: ``(B, N, K)`` element values, like ``a``.
      acc: an emulated :class:`Accumulator` (``dot_width`` set). ``K`` must be a
        multiple of ``acc.promotion_interval`` when it is set, else of ``dot_width``
        (callers pad with zeros, which change no sum).
      chunk_scale: ``(sa, sb)`` of shapes ``(C, B, M)`` and ``(C, B, N)``, one per chunk:
        each chunk sum is multiplied by ``sa * sb`` in float32 before it is added
        (block scales applied inside the dot unit, no promotion).
      interval_scale: ``(sa, sb)`` of shapes ``(n, B, M)``, ``(n, B, N)``, one per
        promotion interval: the interval's sum is multiplied by ``sa * sb`` in float32
        as it is promoted (DeepSeek-V3's dequantization on the CUDA cores).
      key: a ``jax.random`` key, for stochastic rounding.

    Returns:
      ``(B, M, N)`` sums: float32, or int32 for an integer accumulator without promotion.
    """
    a, b = _check_accumulate(a, b, acc)
    B, M, K = a.shape
    N = b.shape[1]
    w = acc.dot_width
    P = acc.promotion_interval or K
    n, r = K // P, P // w
    is_int = acc.is_int
    a_c = a.reshape(B, M, n, r, w).transpose(2, 3, 0, 1, 4)
    b_c = b.reshape(B, N, n, r, w).transpose(2, 3, 0, 1, 4)
    if chunk_scale is not None:
        csa = chunk_scale[0].reshape((n, r) + chunk_scale[0].shape[1:])
        csb = chunk_scale[1].reshape((n, r) + chunk_scale[1].shape[1:])
    zero = jnp.zeros((B, M, N), jnp.int32 if is_int else jnp.float32)
    stochastic = acc.rounding == "stochastic"
    base_key = key if stochastic else None

    def step_key(*ids):
        if base_key is None:
            return None
        k = base_key
        for i in ids:
            k = jax.random.fold_in(k, i)
        return k

    def interval_sum(i, ai, bi, si):
        """The rounded sum of one promotion interval's ``r`` chunks."""
        if acc.order == "sequential":
            if w == 1 and not is_int:
                # XLA turns a dot of one product into a multiply and would fuse it with
                # the addition into an FMA (one rounding instead of the float32
                # product's): the products are formed before the loop instead.
                prods = ai[:, :, :, None, 0] * bi[:, :, None, :, 0]

                def body(s, xs):
                    j, c, sj = xs
                    if sj is not None:
                        c = _scaled(c, *sj)
                    return round_add(s, c, acc, step_key(i, j)), None

                s, _ = lax.scan(body, zero, (jnp.arange(r), prods, si), unroll=scan_unroll(w))
                return s

            def body(s, xs):
                j, aj, bj, sj = xs
                c = _chunk_dot(aj, bj, is_int)
                if sj is not None:
                    c = _scaled(c, *sj)
                return round_add(s, c, acc, step_key(i, j)), None

            s, _ = lax.scan(body, zero, (jnp.arange(r), ai, bi, si), unroll=scan_unroll(w))
            return s
        # pairwise: every chunk sum of the interval, then a balanced tree of rounded adds
        c = jax.vmap(lambda x, y: _chunk_dot(x, y, is_int))(ai, bi)
        if si is not None:
            c = _scaled(c, *si)
        c = round_add(jnp.zeros_like(c), c, acc, step_key(i, 1 << 20))
        level = 0
        while c.shape[0] > 1:
            if c.shape[0] % 2:
                c = jnp.concatenate([c, jnp.zeros_like(c[:1])])
            c = round_add(c[0::2], c[1::2], acc, step_key(i, (1 << 21) + level))
            level += 1
        return c[0]

    def chunk_scales(i):
        if chunk_scale is None:
            return None
        return (csa[i], csb[i])

    if acc.promotion_interval is None:
        out = interval_sum(0, a_c[0], b_c[0], chunk_scales(0))
        return out

    def outer(total, xs):
        i, ai, bi = xs[:3]
        si = None if chunk_scale is None else (xs[3], xs[4])
        low = interval_sum(i, ai, bi, si).astype(jnp.float32)
        if interval_scale is not None:
            low = _scaled(low, xs[-2], xs[-1])
        return total + low, None

    xs = [jnp.arange(n), a_c, b_c]
    if chunk_scale is not None:
        xs += [csa, csb]
    if interval_scale is not None:
        xs += [interval_scale[0], interval_scale[1]]
    total, _ = lax.scan(outer, jnp.zeros((B, M, N), jnp.float32), tuple(xs))
    return total
