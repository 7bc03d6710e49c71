"""Bit-exact models of a GPU matrix unit's inner product, fitted to recorded NVIDIA H100 output.

A tensor core does not add its products one by one in IEEE float32. Each instruction
takes a *block* of ``block_size`` products and the running sum ``c`` (Fasi, Higham,
Mikaitis & Pranesh 2021, "Numerical behavior of NVIDIA tensor cores", PeerJ CS 7:e330;
Khattak & Mikaitis 2025, "Accurate models of NVIDIA tensor cores", arXiv 2512.07004):

1. every product is exact: significands multiplied in full, exponents added; the
   *nominal* exponent of a product is ``ea + eb``, the operands' exponents as their
   format stores them (a subnormal operand counts with its format's ``emin``);
2. all products, and ``c`` when ``accumulator_in_alignment``, are aligned to the
   largest of these exponents, ``E``; of each aligned term only ``alignment_bits``
   fraction bits below ``2**E`` are kept, the rest dropped by ``alignment_rounding``
   (hardware truncates: ``"toward_zero"`` on the magnitude);
3. the kept terms are added exactly (the adder has carry bits to spare) and the sum is
   normalized once, rounded into ``accumulator_fmt`` by ``accumulator_rounding``;
4. every ``promotion_interval`` elements a kernel may add ``c`` into a separate float32
   register with an ordinary round-to-nearest-even addition and restart ``c`` at zero
   (cuBLASLt's default FP8 mode does; DeepSeek-V3 section 3.3 does it by hand);
5. a kernel may split the contraction into ``split_k`` parts, accumulated separately
   and added in float32 at the end (in order, or in the order of a reduction tree).

:func:`tensorcore_dot` computes this, bit for bit, for operands given by their exact
values as float32, in JAX (``jit``, ``vmap``, any batch shape). :func:`tensorcore_epilogue`
applies the scales and output rounding as cuBLASLt's epilogue does, and
:func:`tensorcore_matmul` does both. The named models (``H100_*``) are fitted to the
H100 data in ``tests/data/h100`` (docs/hardware.md gives each parameter and the probe
that showed it, and the agreement per recorded case).

How the model is computed (numfmt.tensorcore_kernel)
-------------------------
All arithmetic is exact, on float32 and int32 only (no float64, so it runs without
``jax_enable_x64`` on CPU, GPU or TPU). Operands are split, from their bit patterns,
into a signed significand and a nominal exponent. For each block the largest exponent
``E`` is a max-reduction over integer exponent sums; each product is scaled by a power
of two built from exponent bits, so that its kept bits are an integer of at most
``alignment_bits + 2`` bits, truncated by ``trunc`` and summed exactly in float32 (split
in a high and a low part when the sum could pass 24 bits). The exact sum, held as an
unevaluated pair ``s + e`` (TwoSum), is rounded into the accumulator by bit operations.
The contraction is a :func:`jax.lax.scan` over steps of several blocks, so memory per
step is a few ``(batch, M, N, block_size)`` arrays, however long ``K`` is.

Known limits (docs/hardware.md): results and partial sums below float32's normal
range (``2**-126``) are not modelled (XLA on CPU flushes float32 subnormals; the
recorded data hold none); for BF16 / TF32 operands, a product whose exponent falls
outside float32's normal range is not covered by the recorded data. Inf and NaN
operands give the IEEE float32 result of the plain product (NaN where a product is
NaN), which the recorded data do not test either.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt import tensorcore_kernel as _kernel
from numfmt.checks import check_bool, check_int
from numfmt.formats import E8M13, FloatFormat
from numfmt.rounding import check_rounding
from numfmt.scalemath import product as _product

__all__ = [
    "ACCUMULATOR_ROUNDINGS",
    "ALIGNMENT_ROUNDINGS",
    "H100_BF16",
    "H100_FP8",
    "H100_FP8_FAST_ACCUM",
    "H100_FP16",
    "H100_FP32",
    "H100_TF32",
    "TensorCoreModel",
    "tensorcore_dot",
    "tensorcore_epilogue",
    "tensorcore_matmul",
]


ALIGNMENT_ROUNDINGS = ("toward_zero", "nearest_even")
ACCUMULATOR_ROUNDINGS = ("toward_zero", "nearest_even")

_F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class TensorCoreModel:
    """The parameters of a matrix unit's inner product (hashable; a static argument).

    Args:
      lhs_fmt, rhs_fmt: the operands' formats (their ``emin`` sets the nominal exponent
        of a subnormal operand). Operand values must be values of these formats, unless
        ``operand_rounding`` is set.
      block_size: products per block FMA (one normalization per block).
      alignment_bits: fraction bits kept below the block's largest exponent when the
        terms are aligned; None: nothing is dropped, each product is added by an exact
        fused multiply-add rounded to nearest even (float32 CUDA cores: needs
        ``block_size=1``, an FP32 accumulator with ``"nearest_even"``).
      alignment_rounding: how the bits beyond the window are dropped:
        ``"toward_zero"`` (truncation of the magnitude) or ``"nearest_even"``.
      accumulator_in_alignment: whether the running sum is aligned with the products
        (True), or the products' sum is normalized first and then added to it with
        one more rounding (False).
      accumulator_fmt: the running sum's format (E8M13 or FP32: float32's exponent
        range, at most 23 fraction bits).
      accumulator_rounding: the rounding of each block's normalization into
        ``accumulator_fmt``: ``"toward_zero"`` or ``"nearest_even"``.
      promotion_interval: every this many contraction elements the running sum is
        added (round to nearest even) into a float32 register and restarts at zero; a
        multiple of ``block_size``, or None (never).
      split_k: the number of parts the contraction is split into; part ``i`` covers
        elements ``[i*L, (i+1)*L)`` with ``L = ceil(K / split_k)`` rounded up to a
        multiple of ``split_k_granule``; parts are added in float32, in order.
      split_k_granule: see ``split_k`` (cuBLASLt: 128, one K-tile).
      split_k_interleave: False: the parts are contiguous (split-K across thread blocks,
        above). True: "sliced K" within a thread block, k-tile ``t`` of
        ``split_k_granule`` elements goes to part ``t mod split_k``.
      split_k_partials: how the parts are added: into this many float32 sums (part ``i``
        into sum ``i mod split_k_partials``), which are then added pairwise. 1: one
        running sum, in order (cuBLASLt); 4: XLA's loop reduction of its split-K parts,
        as recorded at 128 x 128 x 256; 2 with ``split_k_tree``: XLA's Triton reduction
        (``tl.sum`` over a [parts, 64] tile with 2 warps along the parts, recorded at
        128 x 128 x 4096).
      split_k_tree: how each of the ``split_k_partials`` sums adds its parts: False, a
        running sum in order; True, a pairwise tree of adjacent parts (Triton's
        reduction of the values one thread holds: ``((p0 + p1) + (p2 + p3)) + ...``).
      block_interleave: how the blocks take their elements: 1, ``block_size`` consecutive
        elements each; ``j > 1``, each group of ``j * block_size`` consecutive elements is
        cut into pairs and pair ``p`` goes to the group's block ``p mod j`` (blocks in
        order). 2: Triton's mma.sync on 8-bit operands converted to 16 bits (dot-operand
        ``kWidth=4``: a thread holds 4 consecutive K elements, an m16n8k16 takes 2 of them).
      operand_rounding: None (operands are exact values of their formats) or the
        rounding mode that converts float32 operands into them first (TF32:
        ``"nearest_away"``, as ``cvt.rna.tf32.f32``).
      name: a label (not part of the arithmetic).
    """

    lhs_fmt: object = _formats.E4M3
    rhs_fmt: object = _formats.E4M3
    block_size: int = 32
    alignment_bits: int | None = 13
    alignment_rounding: str = "toward_zero"
    accumulator_in_alignment: bool = True
    accumulator_fmt: object = E8M13
    accumulator_rounding: str = "toward_zero"
    promotion_interval: int | None = None
    split_k: int = 1
    split_k_granule: int = 128
    split_k_partials: int = 1
    split_k_interleave: bool = False
    operand_rounding: str | None = None
    block_interleave: int = 1
    split_k_tree: bool = False
    name: str = dataclasses.field(default="custom", compare=False)

    def __post_init__(self):
        exact = self.alignment_bits is None
        for arg in ("lhs_fmt", "rhs_fmt"):
            fmt = _formats.get(getattr(self, arg))
            if not (isinstance(fmt, FloatFormat) and fmt.signed and fmt.has_zero
                    and fmt.man_bits <= (23 if exact else 11) and fmt.emin >= -126 and fmt.emax <= 127):
                raise ValueError(
                    f"{arg} must be a signed float format within float32's exponent range with at most "
                    f"{23 if exact else 11} mantissa bits (FP8, FP16, BF16, TF32 ...), got {fmt.name}")
            object.__setattr__(self, arg, fmt)
        # block_size <= 64 keeps the block sums exact in int32 halves (tensorcore_kernel._finish).
        check_int(self.block_size, "block_size", 1, 64)
        if not exact:
            check_int(self.alignment_bits, "alignment_bits", 1, 27)
        if self.alignment_rounding not in ALIGNMENT_ROUNDINGS:
            raise ValueError(f"alignment_rounding must be one of {ALIGNMENT_ROUNDINGS}, got {self.alignment_rounding!r}")
        check_bool(self.accumulator_in_alignment, "accumulator_in_alignment")
        acc = _formats.get(self.accumulator_fmt)
        if not (isinstance(acc, FloatFormat) and acc.exp_bits == 8 and acc.bias == 127 and acc.signed
                and acc.specials == "ieee"):
            raise ValueError(f"accumulator_fmt must be an IEEE-style float with float32's exponent (E8Mx), "
                             f"got {acc.name}")
        object.__setattr__(self, "accumulator_fmt", acc)
        if exact and not (self.block_size == 1 and acc.man_bits == 23 and self.accumulator_rounding == "nearest_even"):
            raise ValueError("alignment_bits=None (exact FMAs) needs block_size=1 and an FP32 accumulator "
                             "with accumulator_rounding='nearest_even'")
        if self.accumulator_rounding not in ACCUMULATOR_ROUNDINGS:
            raise ValueError(
                f"accumulator_rounding must be one of {ACCUMULATOR_ROUNDINGS}, got {self.accumulator_rounding!r}")
        if self.accumulator_rounding == "nearest_even" and acc.man_bits in (22,):
            # rounding the exact pair goes through round-to-odd at 24 bits: needs 2 spare bits
            raise ValueError("accumulator_rounding='nearest_even' needs accumulator_fmt with at most 21 or "
                             f"exactly 23 mantissa bits, got {acc.man_bits}")
        if self.promotion_interval is not None:
            check_int(self.promotion_interval, "promotion_interval", 1)
            if self.promotion_interval % self.block_size:
                raise ValueError(f"promotion_interval must be a multiple of block_size={self.block_size}, "
                                 f"got {self.promotion_interval}")
        check_int(self.split_k, "split_k", 1, 1024)
        check_int(self.split_k_granule, "split_k_granule", 1)
        check_int(self.split_k_partials, "split_k_partials", 1, 1024)
        check_bool(self.split_k_interleave, "split_k_interleave")
        check_bool(self.split_k_tree, "split_k_tree")
        check_int(self.block_interleave, "block_interleave", 1, 64)
        if self.block_interleave > 1 and self.block_size % 2:
            raise ValueError(f"block_interleave={self.block_interleave} deals pairs of elements: it needs an even "
                             f"block_size, got {self.block_size}")
        if self.operand_rounding is not None and check_rounding(self.operand_rounding) == "stochastic":
            raise ValueError("operand_rounding cannot be 'stochastic' (the hardware converts deterministically)")


# ---- the public functions ------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("model",))
def _dot(a, b, interval, model: TensorCoreModel, scales=None):
    if model.operand_rounding is not None:
        a = _codec.quantize(a, model.lhs_fmt, model.operand_rounding)
        b = _codec.quantize(b, model.rhs_fmt, model.operand_rounding)
    return _kernel.contract(model, a, b, model.lhs_fmt, model.rhs_fmt, interval=interval, scales=scales)


def _check_operands(a, b):
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    for arg, x in (("a", a), ("b", b)):
        if x.dtype != jnp.float32:
            raise TypeError(f"{arg} must be a float32 array holding the operand's exact values, got dtype {x.dtype}")
        if x.ndim < 2:
            raise ValueError(f"{arg} must have shape (..., rows, K), got shape {x.shape}")
    if a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"a (..., M, K) and b (..., N, K) need the same batch shape and K (contraction last), "
            f"got {a.shape} and {b.shape}")
    return a, b


def tensorcore_dot(a, b, model: TensorCoreModel, *, interval_scales=None):
    """The matrix unit's raw result ``c[..., m, n] = sum_k a[..., m, k] * b[..., n, k]``.

    Computes the inner products as the modelled hardware does (see the module doc),
    bit for bit, before any epilogue (scales, output rounding).

    Args:
      a: float32 array (..., M, K): the left operand's exact values (values of
        ``model.lhs_fmt``, or float32 values to convert when ``model.operand_rounding``).
      b: float32 array (..., N, K): the right operand, contraction last (B transposed).
      model: a :class:`TensorCoreModel` (e.g. ``H100_FP8_FAST_ACCUM``).
      interval_scales: None, or ``(sa, sb)``, float32 arrays (..., M, K // P) and
        (..., N, K // P), one scale per promotion interval of ``P =
        model.promotion_interval`` elements (block scales along K). At each promotion
        the running sum ``c`` is multiplied by ``s = fl32(sa * sb)`` of its interval
        and added to the float32 total by one fused multiply-add, ``total =
        RN(c * s + total)``: DeepSeek-V3's recipe (arXiv 2412.19437, section 3.3.2:
        partial sums dequantized on the CUDA cores; DeepGEMM's ``final += scale *
        accum``, which nvcc compiles to an FMA). This step is NOT fitted to hardware:
        the recorded data hold no block scales. Needs ``K`` a multiple of ``P``,
        ``split_k == 1`` and ``block_interleave == 1``.

    Returns:
      float32 array (..., M, N): the accumulator's value.

    Works under ``jit`` and ``vmap``. Follows the block-FMA model of Fasi et al. (2021)
    and Khattak & Mikaitis (2025) with parameters fitted to recorded H100 output
    (docs/hardware.md).
    """
    if not isinstance(model, TensorCoreModel):
        raise TypeError(f"model must be a TensorCoreModel, got {type(model).__name__}")
    a, b = _check_operands(a, b)
    scales = None
    if interval_scales is not None:
        scales = _check_interval_scales(interval_scales, a, b, model)
    # The promotion interval is passed as data: models that differ only in it share a compilation.
    interval = _kernel.NEVER if model.promotion_interval is None else model.promotion_interval
    return _dot(a, b, jnp.int32(interval), dataclasses.replace(model, promotion_interval=None), scales)


def _check_interval_scales(interval_scales, a, b, model):
    """``(sa, sb)`` per promotion interval -> one scale per block of ``block_size`` (checked)."""
    p = model.promotion_interval
    if p is None or model.split_k != 1 or model.block_interleave != 1:
        raise ValueError("interval_scales needs a model with a promotion_interval, split_k=1 and "
                         f"block_interleave=1, got {model}")
    k = a.shape[-1]
    if k % p:
        raise ValueError(f"interval_scales needs K ({k}) to be a multiple of promotion_interval={p}")
    try:
        sa, sb = (jnp.asarray(s, _F32) for s in interval_scales)
    except (TypeError, ValueError):
        raise TypeError("interval_scales must be a pair (sa, sb) of float32 arrays")
    for arg, s, x in (("sa", sa, a), ("sb", sb, b)):
        if s.shape != x.shape[:-1] + (k // p,):
            raise ValueError(f"interval_scales' {arg} must have shape {x.shape[:-1] + (k // p,)} "
                             f"(one scale per row and interval of {p}), got {s.shape}")
    reps = p // model.block_size
    return jnp.repeat(sa, reps, axis=-1), jnp.repeat(sb, reps, axis=-1)


def _scale_vector(s, arg, axis_len, where):
    s = jnp.asarray(s, _F32) if s is not None else None
    if s is None or s.ndim == 0:
        return s
    if s.shape[-1] != axis_len and not (s.ndim >= 2 and s.shape[-2:] in ((axis_len, 1), (1, axis_len))):
        raise ValueError(f"{arg} must be a scalar or hold one scale per {where} ({axis_len}), got shape {s.shape}")
    if s.ndim >= 2 and s.shape[-1] == 1 and s.shape[-2] == axis_len:
        s = s[..., 0]
    elif s.ndim >= 2 and s.shape[-2] == 1:
        s = s[..., 0, :]
    return s


@functools.partial(jax.jit, static_argnames=("out_fmt",))
def _epilogue(acc, scale_a, scale_b, out_fmt):
    sa = _F32(1) if scale_a is None else (scale_a if scale_a.ndim == 0 else scale_a[..., :, None])
    sb = _F32(1) if scale_b is None else (scale_b if scale_b.ndim == 0 else scale_b[..., None, :])
    # On the bits (correctly rounded, gradual underflow): a float multiply flushes a
    # subnormal operand or result on XLA's CPU backend and not on a GPU.
    y = acc if scale_a is None and scale_b is None else _product(acc, _product(sa, sb))
    if out_fmt != _formats.FP32:
        y = _codec.quantize(y, out_fmt)
    return y


def tensorcore_epilogue(acc, *, scale_a=None, scale_b=None, out_fmt=_formats.FP32):
    """Scales and output rounding as cuBLASLt's FP8 epilogue applies them.

    ``alpha = fl32(scale_a * scale_b)`` (per tensor, or per row of ``a`` times per
    column of ``b``), then ``fl32(acc * alpha)``, then, for a narrower output such as
    BF16, a second rounding to nearest even of that float32 (the hardware rounds twice:
    the recorded ``epilogue`` case with scales (0.0625, 0.7) shows it).

    Args:
      acc: float32 (..., M, N), e.g. :func:`tensorcore_dot`'s result.
      scale_a: None, a scalar, or one scale per row: shape (..., M) or (..., M, 1).
      scale_b: None, a scalar, or one scale per column: shape (..., N) or (..., 1, N).
      out_fmt: the output format (FP32 or e.g. BF16), rounded to nearest even.

    Returns:
      float32 (..., M, N) holding values of ``out_fmt``.
    """
    acc = jnp.asarray(acc)
    if acc.dtype != jnp.float32 or acc.ndim < 2:
        raise TypeError(f"acc must be a float32 array (..., M, N), got {acc.dtype} {acc.shape}")
    out_fmt = _formats.get(out_fmt)
    if not isinstance(out_fmt, FloatFormat):
        raise ValueError(f"out_fmt must be a float format, got {out_fmt.name}")  # noqa: TRY004
    sa = _scale_vector(scale_a, "scale_a", acc.shape[-2], "row of a")
    sb = _scale_vector(scale_b, "scale_b", acc.shape[-1], "column of b")
    return _epilogue(acc, sa, sb, out_fmt)


def tensorcore_matmul(a, b, model: TensorCoreModel, *, scale_a=None, scale_b=None, out_fmt=_formats.FP32):
    """:func:`tensorcore_dot` followed by :func:`tensorcore_epilogue` (see both)."""
    return tensorcore_epilogue(tensorcore_dot(a, b, model), scale_a=scale_a, scale_b=scale_b, out_fmt=out_fmt)


# ---- named models (fitted to tests/data/h100; docs/hardware.md) ---------------------------------

H100_FP8_FAST_ACCUM = TensorCoreModel(
    _formats.E4M3, _formats.E4M3, block_size=32, alignment_bits=13, accumulator_fmt=E8M13,
    name="h100_fp8_fast_accum")
H100_FP8 = dataclasses.replace(H100_FP8_FAST_ACCUM, promotion_interval=128, name="h100_fp8")
H100_BF16 = TensorCoreModel(
    _formats.BF16, _formats.BF16, block_size=16, alignment_bits=25, accumulator_fmt=_formats.FP32,
    name="h100_bf16")
H100_FP16 = dataclasses.replace(H100_BF16, lhs_fmt=_formats.FP16, rhs_fmt=_formats.FP16, name="h100_fp16")
H100_TF32 = TensorCoreModel(
    _formats.TF32, _formats.TF32, block_size=8, alignment_bits=25, accumulator_fmt=_formats.FP32,
    operand_rounding="nearest_even", name="h100_tf32")

H100_FP32 = TensorCoreModel(
    _formats.FP32, _formats.FP32, block_size=1, alignment_bits=None, accumulator_fmt=_formats.FP32,
    accumulator_rounding="nearest_even", name="h100_fp32")

MODELS = {m.name: m for m in (H100_FP8_FAST_ACCUM, H100_FP8, H100_BF16, H100_FP16, H100_TF32, H100_FP32)}
