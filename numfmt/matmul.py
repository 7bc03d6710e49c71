"""Quantized matrix products: :class:`MatmulConfig`, :func:`qmatmul`, :func:`dot_general`.

A product ``y = lhs . rhs`` is computed in three steps, each set by the config:

1. **Operands.** Each operand is quantized by its :class:`OperandSpec`: an element
   format, a scaling granularity along the contraction axis (none, per tensor, per
   channel, or per block of ``block_size`` contraction elements), a scale format with
   its rounding policy, and a rounding mode (:mod:`numfmt.scaled` does the work).
2. **Accumulation.** With a plain FP32 :class:`~numfmt.accumulator.Accumulator` (the
   fast path) the dequantized operands go to one native matmul. Otherwise the sum is
   emulated (:func:`numfmt.accumulator.accumulate`): chunk sums of ``dot_width``
   element products, rounded into the accumulator format, promoted to FP32 every
   ``promotion_interval`` elements. Scales that vary along the contraction (block
   scales) multiply each interval's sum as it is promoted, or each chunk sum when
   there is no promotion; scales that do not (tensor, channel) multiply the result.
3. **Output.** The float32 result is rounded into ``output`` when it is set.

:func:`dot_general` has :func:`jax.lax.dot_general`'s signature, so
``functools.partial(nf.dot_general, config=cfg)`` drops into a flax or equinox layer
that takes a ``dot_general``. Its gradient is a ``custom_vjp``: the two backward
products are computed the same way, with the cotangent quantized by ``config.grad``,
the saved operands quantized again by their forward specs along the backward
contraction axis (as microxcaling does for MX formats), and ``grad_accumulator``.
Ready configs are in :mod:`numfmt.matmul_profiles`. docs/matmul.md gives the model, the
profiles and the measurements.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import codec as _codec
from numfmt import formats as _formats
from numfmt.accumulator import Accumulator, accumulate
from numfmt.bitlayout import check_float_input
from numfmt.formats import FloatFormat, IntFormat
from numfmt.matmul_config import MatmulConfig, OperandSpec, tensorcore_for
from numfmt.matmul_profiles import matmul_profile
from numfmt.quantcore import quantize_with
from numfmt.scheme import is_pow2_format
from numfmt.tensorcore import TensorCoreModel, tensorcore_dot, tensorcore_epilogue

# MatmulConfig and OperandSpec (numfmt.matmul_config) are imported here for the
# numfmt.matmul namespace; the face exports them with their own module's family.
__all__ = ["dot_general", "qmatmul"]

_HI = lax.Precision.HIGHEST


# ---- operands ---------------------------------------------------------------------------------


class _Operand(NamedTuple):
    elem: jax.Array  # element values, (B, R, K): float32, int32 for integer elements, or the cast's dtype
    kscale: jax.Array | None  # block scales (B, R, K // block), or None
    escale: jax.Array | None  # scales constant along K: () or (B, R), or None
    deq: jax.Array | None  # the dequantized operand, float32 (B, R, K); None with a cast


def _quantize_operand(x, spec: OperandSpec, key, cast=None) -> _Operand:
    """Quantize a float32 operand: canonical ``(B, R, K)``, contraction axis last, or
    of any layout for the granularities ``"none"`` and ``"tensor"`` (see :func:`_operand`).

    One call of the scaled layer's core gives the element values and the dequantized
    operand together (no codes, no second decode). With ``cast`` (the GPU bf16 route,
    :func:`_bf16_operand`) the element loop itself writes what enters the product in
    that dtype, and no dequantized operand (``deq`` None): the element values, or for
    blocks without a tensor scale (MX) the dequantized values (``elem``, ``kscale``
    None), all exact in bfloat16 (``bf16_exact``; no zero points on that route).
    """
    if spec.is_identity:
        return _Operand(x, None, None, x)
    if spec.block_rows is not None:
        return _quantize_tiles(x, spec, key, cast)
    sch = spec.scheme
    whole = cast is not None and spec.granularity == "block" and not sch.tensor_scale
    q = quantize_with(x, sch, key=key, codes=False, elems=not whole, values=cast is None or whole, cast=cast)
    if whole:
        return _Operand(q.values, None, None, None)
    ev, fmt = q.elems, sch.fmt
    if cast is None and isinstance(fmt, IntFormat) and sch.elem_scale == 1.0:
        elem = ev.astype(jnp.int32)
        if q.zero_point is not None:
            elem = elem - q.zero_point
    else:
        elem = ev * jnp.asarray(sch.elem_scale, ev.dtype) if sch.elem_scale != 1.0 else ev  # a power of two: exact
    if spec.granularity == "none":
        return _Operand(elem, None, None, q.values)
    if spec.granularity == "block":
        return _Operand(elem, q.scale, q.tensor_scale, q.values)
    scale = q.scale.reshape(q.scale.shape[:2]) if q.scale.ndim else q.scale
    return _Operand(elem, None, scale, q.values)


def _quantize_tiles(x, spec: OperandSpec, key, cast=None) -> _Operand:
    """``spec.block_rows x spec.block_size`` tiles of a canonical ``(B, R, K)`` operand, one scale each.

    Each tile is laid out as one block of ``block_rows * block_size`` values along the
    last axis and quantized by the one core (the same scale rule as any block); the
    values go back to ``(B, R, K)`` and each tile's scale is repeated to its rows, so the
    products see block scales ``(B, R, K // block_size)`` as for 1-D blocks. When
    ``block_rows`` does not divide ``R``, the last tile has the rows that are left (zero
    padding, which changes no tile's absmax), as DeepSeek-V3's reference kernels tile a
    weight in ceil-div 128 x 128 blocks (``inference/kernel.py``, ``weight_dequant``).
    """
    B, R, K = x.shape
    br, bk = spec.block_rows, spec.block_size
    pad = (-R) % br
    xp = jnp.pad(x, ((0, 0), (0, pad), (0, 0))) if pad else x
    t = (R + pad) // br
    tiles = xp.reshape(B, t, br, K // bk, bk).transpose(0, 1, 3, 2, 4).reshape(B, t, K // bk, br * bk)
    sch = dataclasses.replace(spec.scheme, block_size=br * bk)
    q = quantize_with(tiles, sch, key=key, codes=False, elems=True, values=cast is None, cast=cast)

    def back(v):  # (B, t, K // bk, br * bk) -> (B, R, K)
        return v.reshape(B, t, K // bk, br, bk).transpose(0, 1, 3, 2, 4).reshape(B, t * br, K)[:, :R]

    scale = jnp.repeat(q.scale.reshape(B, t, K // bk), br, axis=1)[:, :R]
    return _Operand(back(q.elems), scale, q.tensor_scale, None if cast is not None else back(q.values))


def _check_block(K, spec, what):
    if spec.granularity == "block" and K % spec.block_size:
        raise ValueError(
            f"{what}: the contraction length {K} is not divisible by block_size={spec.block_size}; "
            f"numfmt does not pad: pad the contraction axis of both operands with zeros to a multiple "
            f"of {spec.block_size}")


def _per_unit(kscale, block, unit):
    """Block scales ``(B, R, K // block)`` repeated to one per ``unit`` elements, unit-major."""
    rep = jnp.repeat(kscale, block // unit, axis=2)
    return jnp.moveaxis(rep, 2, 0)


def _emulated(lo: _Operand, ro: _Operand, lspec, rspec, acc: Accumulator, key):
    a, b = lo.elem, ro.elem
    if acc.is_int:
        if a.dtype != jnp.int32 or b.dtype != jnp.int32:
            raise ValueError("an integer accumulator needs integer elements (IntFormat operands, not MX integers)")
    else:
        a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    K = a.shape[-1]
    P = acc.promotion_interval
    unit = P or acc.dot_width
    blocked = [(o, s) for o, s in ((lo, lspec), (ro, rspec)) if o.kscale is not None]
    for _, s in blocked:
        if s.block_size % unit:
            what = f"promotion_interval={P}" if P else f"dot_width={acc.dot_width}"
            raise ValueError(f"block_size={s.block_size} must be a multiple of {what}, so that each "
                             f"{'interval' if P else 'chunk'} of the contraction shares one scale")
    pad = (-K) % unit
    if pad:
        a = jnp.pad(a, ((0, 0), (0, 0), (0, pad)))
        b = jnp.pad(b, ((0, 0), (0, 0), (0, pad)))
    chunk_scale = interval_scale = None
    if blocked:
        n_units = (K + pad) // unit
        sa = (_per_unit(lo.kscale, lspec.block_size, unit) if lo.kscale is not None
              else jnp.ones((n_units,) + a.shape[:2], jnp.float32))
        sb = (_per_unit(ro.kscale, rspec.block_size, unit) if ro.kscale is not None
              else jnp.ones((n_units,) + b.shape[:2], jnp.float32))
        if P:
            interval_scale = (sa, sb)
        elif acc.is_int:
            raise ValueError("block scales with an integer accumulator need a promotion_interval")
        else:
            chunk_scale = (sa, sb)
    return accumulate(a, b, acc, chunk_scale=chunk_scale, interval_scale=interval_scale, key=key).astype(jnp.float32)


def _tensorcore(lo: _Operand, ro: _Operand, lspec, rspec, model: TensorCoreModel):
    """The product on the modelled matrix unit: element values into :func:`tensorcore_dot`,
    block scales at each promotion, scales constant along K through the fitted epilogue
    (``fl32(acc * fl32(sa * sb))``, :func:`tensorcore_epilogue`)."""
    model = tensorcore_for(model, lspec, rspec, "accumulator")
    a, b = lo.elem.astype(jnp.float32), ro.elem.astype(jnp.float32)
    scales = None
    if lo.kscale is not None or ro.kscale is not None:
        p = model.promotion_interval

        def per_interval(o, spec, x):
            if o.kscale is None:
                return jnp.ones(x.shape[:-1] + (x.shape[-1] // p,), jnp.float32)
            return jnp.repeat(o.kscale.astype(jnp.float32), spec.block_size // p, axis=-1)

        scales = (per_interval(lo, lspec, a), per_interval(ro, rspec, b))
    y = tensorcore_dot(a, b, model, interval_scales=scales)
    if lo.escale is None and ro.escale is None:
        return y
    return tensorcore_epilogue(y, scale_a=lo.escale, scale_b=ro.escale)


def _post_scale(y, sa, sb):
    """Scales constant along K applied to the product: per tensor (a scalar) or per row / column."""
    if sa is not None:
        y = y * (sa[..., :, None] if jnp.ndim(sa) else sa)
    if sb is not None:
        y = y * (sb[..., None, :] if jnp.ndim(sb) else sb)
    return y


# ---- the GPU fast path: bf16 tensor cores where they change no operand (issue 15) -------------


def _on_gpu() -> bool:
    """Whether this trace compiles for a GPU (``jax.default_backend()``, read at trace time)."""
    return jax.default_backend() in ("gpu", "cuda", "rocm")


def bf16_exact(spec: OperandSpec) -> bool:
    """Whether every value ``spec``'s operand enters a bf16 product with is a bfloat16 value.

    The values are the elements (``granularity`` none, tensor, channel: scales constant
    along K are applied after the product), times the block scale for ``"block"``. True
    when the element format fits bfloat16 (FP8, FP6, FP4, INT<=8, BF16:
    :func:`numfmt.formats.fits`) and a block scale is a power of two (MX's E8M0) or has so
    few significant bits that scale times element does (NVFP4's E4M3 scales on E2M1:
    4 + 2 <= 8 bits). Not for zero points, codebooks, FP32 operands or FP32 block scales.
    (Products that fall below bfloat16's normal range, ``2**-126``, are the one exception:
    a block scale of ``2**-127`` on a small element can land below bfloat16's subnormals.)
    """
    fmt = spec.fmt
    if not spec.symmetric or not _formats.fits(fmt, jnp.bfloat16):
        return False
    if spec.granularity != "block":
        return True
    if is_pow2_format(spec.scale_fmt):
        return True
    return (isinstance(fmt, FloatFormat) and isinstance(spec.scale_fmt, FloatFormat)
            and (fmt.man_bits + 1) + (spec.scale_fmt.man_bits + 1) <= 8)


def _bf16_operand(o: _Operand, spec: OperandSpec):
    """The values entering the bf16 product, as bfloat16 (exact when ``bf16_exact``), and
    the scale applied after it (None, a scalar or one per row).

    ``o`` is best quantized with ``cast=jnp.bfloat16`` (:func:`_operand`): its element
    loop then writes bfloat16 elements, and nothing else; a float32 ``o`` is converted here.
    """
    if spec.granularity == "none":  # no scale: the values are the elements
        return (o.elem if o.deq is None else o.deq).astype(jnp.bfloat16), None
    v = o.elem
    if o.kscale is not None:  # element times block scale: exact (bf16_exact), formed in float32
        v = v.astype(jnp.float32) * jnp.repeat(o.kscale.astype(jnp.float32), spec.block_size, axis=-1)
    return v.astype(jnp.bfloat16), o.escale


def _fold(key, i):
    return None if key is None else jax.random.fold_in(key, i)


class _Layout(NamedTuple):
    """How an operand becomes canonical ``(B, R, K)``: a transpose, then a reshape."""

    perm: tuple[int, ...]
    shape: tuple[int, int, int]


def _canon(x, lay: _Layout | None):
    return x if lay is None else jnp.transpose(x, lay.perm).reshape(lay.shape)


def _uncanon(g, lay: _Layout | None, shape):
    """The inverse of :func:`_canon`: a canonical cotangent back to the operand's shape."""
    if lay is None:
        return g
    return jnp.transpose(g.reshape(tuple(shape[p] for p in lay.perm)), np.argsort(lay.perm))


def _operand(x, spec: OperandSpec, lay: _Layout | None, key, cast=None) -> _Operand:
    """Quantize operand ``x`` by ``spec`` and bring it to canonical ``(B, R, K)``
    (``cast``: see :func:`_quantize_operand`)."""
    if spec.granularity in ("none", "tensor"):
        # Elementwise, or one scale for the whole tensor: quantize the array as it lies,
        # then transpose. Transposed first, XLA fuses the quantization into a strided
        # transpose, and the FP32 fast path at 2048^3 took 1.7x jnp.matmul instead of 1.1x.
        o = _quantize_operand(x, spec, key, cast)
        return _Operand(_canon(o.elem, lay), None, o.escale, None if o.deq is None else _canon(o.deq, lay))
    return _quantize_operand(_canon(x, lay), spec, key, cast)


def _product(l, r, lspec, rspec, acc: Accumulator, output, key, lays=(None, None)):
    """``l . r -> (B, M, N)`` float32, quantized as the specs say.

    ``l`` and ``r`` are canonical ``(B, M, K)`` and ``(B, N, K)``, or any layout that
    ``lays`` (a :class:`_Layout` per operand) turns into those.
    """
    bf16_route = (not isinstance(acc, TensorCoreModel) and acc.native and not acc.is_int
                  and acc.native_dot == "auto" and _on_gpu() and bf16_exact(lspec) and bf16_exact(rspec))
    # On the bf16 route the element loops write bfloat16 elements and nothing else (issue 15:
    # a float32 array converted after the loop's lax.cond was one more pass per operand).
    cast = jnp.bfloat16 if bf16_route else None
    lo = _operand(l, lspec, lays[0], _fold(key, 0), cast)
    ro = _operand(r, rspec, lays[1], _fold(key, 1), cast)
    dims = (((2,), (2,)), ((0,), (0,)))
    if lo.elem.shape[-1] == 0:
        # An empty contraction: the sum of no products is +0 under every accumulator, as in
        # jnp.matmul (and the scales of the empty operands, NaN for some, are not read).
        y = jnp.zeros(lo.elem.shape[:-1] + ro.elem.shape[-2:-1], jnp.float32)
    elif isinstance(acc, TensorCoreModel):
        y = _tensorcore(lo, ro, lspec, rspec, acc)
    elif bf16_route:
        (va, sa), (vb, sb) = _bf16_operand(lo, lspec), _bf16_operand(ro, rspec)
        y = lax.dot_general(va, vb, dims, preferred_element_type=jnp.float32)
        y = _post_scale(y, sa, sb)
    elif acc.native and not acc.is_int:
        y = lax.dot_general(lo.deq, ro.deq, dims, precision=_HI, preferred_element_type=jnp.float32)
    else:
        if acc.native:  # INT32: the exact int32 matmul (wraps past 2**31, as the hardware does)
            if lo.kscale is not None or ro.kscale is not None:
                raise ValueError("block scales with an integer accumulator need a promotion_interval")
            if lo.elem.dtype != jnp.int32 or ro.elem.dtype != jnp.int32:
                raise ValueError("an integer accumulator needs integer elements")
            y = lax.dot_general(lo.elem, ro.elem, dims, preferred_element_type=jnp.int32).astype(jnp.float32)
        else:
            y = _emulated(lo, ro, lspec, rspec, acc, _fold(key, 2))
        y = _post_scale(y, lo.escale, ro.escale)
    if output is not None:
        y = _codec.quantize(y, output, "nearest_even")
    return y


_NO_QUANT = OperandSpec()


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _qdot(l, r, key, config, lays):
    return _product(l, r, config.lhs, config.rhs, config.accumulator, config.output, _fold(key, 0), lays)


def _qdot_fwd(l, r, key, config, lays):
    return _qdot(l, r, key, config, lays), (l, r, key)


def _qdot_bwd(config, lays, res, g):
    # The barrier keeps XLA from constant-folding the backward products when an operand
    # or the cotangent is a compile-time constant: jax 0.10.2's CPU constant folding
    # dropped a transpose there (docs/matmul.md, "Limits").
    (l0, r0, g), key = lax.optimization_barrier((res[0], res[1], g)), res[2]
    l, r = _canon(l0, lays[0]), _canon(r0, lays[1])
    gspec = config.grad or _NO_QUANT
    acc = config.grad_accumulator or Accumulator()
    g = g.astype(jnp.float32)
    gl = _product(*_pad_contraction(g, jnp.swapaxes(r, 1, 2), gspec, config.rhs), gspec, config.rhs, acc, None,
                  _fold(key, 1))
    gr = _product(*_pad_contraction(jnp.swapaxes(g, 1, 2), jnp.swapaxes(l, 1, 2), gspec, config.lhs), gspec,
                  config.lhs, acc, None, _fold(key, 2))
    return _uncanon(gl, lays[0], l0.shape), _uncanon(gr, lays[1], r0.shape), None


def _pad_contraction(x, y, *specs):
    """Zero-pad the last axis of both backward operands to a multiple of every block size.

    The backward contraction runs over a free axis of the forward product, which need not
    be a multiple of a block size: the zeros change no sum, and the last block is partial.
    """
    sizes = [s.block_size for s in specs if s.granularity == "block"]
    if not sizes:
        return x, y
    unit = math.lcm(*sizes)
    pad = (-x.shape[2]) % unit
    if pad:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, pad)))
        y = jnp.pad(y, ((0, 0), (0, 0), (0, pad)))
    return x, y


_qdot.defvjp(_qdot_fwd, _qdot_bwd)


@functools.partial(jax.jit, static_argnames=("config", "lays"))
def _qdot_jit(l, r, key, config, lays):
    return _qdot(l, r, key, config, lays)


# ---- public API -------------------------------------------------------------------------------


def _check_config(config):
    if isinstance(config, str):
        return matmul_profile(config)
    if not isinstance(config, MatmulConfig):
        raise TypeError(f"config must be a MatmulConfig or a profile name, got {type(config).__name__}")
    return config


def _axes(dims, ndim, arg):
    out = tuple(int(d) + ndim if int(d) < 0 else int(d) for d in dims)
    if any(not 0 <= d < ndim for d in out) or len(set(out)) != len(out):
        raise ValueError(f"{arg} {tuple(dims)} are not distinct axes of a {ndim}-D array")
    return out


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, *, config=None,
                key=None, out_sharding=None):
    """A quantized :func:`jax.lax.dot_general`: same signature, plus ``config`` and ``key``.

    Args:
      lhs, rhs: float arrays.
      dimension_numbers: ``((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch))``
        as in :func:`jax.lax.dot_general`. Several contracting axes are flattened into
        one contraction (row-major), along which blocks run.
      precision: ignored: the config decides the arithmetic (native matmuls run at
        ``HIGHEST``).
      preferred_element_type: the result's dtype (default: the operands' float dtype).
      config: a :class:`MatmulConfig` or a profile name (:func:`numfmt.matmul_profiles.matmul_profile`).
      key: a ``jax.random`` key, needed when any rounding of the config is stochastic.
      out_sharding: accepted for signature compatibility; ignored.

    Returns:
      the product, shaped like ``lax.dot_general``'s: batch, lhs free, rhs free axes.
      Differentiable: the backward products are quantized as ``config`` says.
    """
    del precision, out_sharding
    config = _check_config(config)
    lhs, rhs = check_float_input(lhs, "lhs"), check_float_input(rhs, "rhs")
    try:
        (lc, rc), (lb, rb) = dimension_numbers
    except (TypeError, ValueError):
        raise ValueError("dimension_numbers must be ((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch))")
    lc, lb = _axes(lc, lhs.ndim, "lhs contracting dims"), _axes(lb, lhs.ndim, "lhs batch dims")
    rc, rb = _axes(rc, rhs.ndim, "rhs contracting dims"), _axes(rb, rhs.ndim, "rhs batch dims")
    if set(lc) & set(lb) or set(rc) & set(rb):
        raise ValueError("an axis cannot be both contracting and batch")
    lshape = [lhs.shape[d] for d in lc]
    rshape = [rhs.shape[d] for d in rc]
    if lshape != rshape:
        raise ValueError(f"mismatched contraction: lhs axes {lc} have sizes {lshape}, rhs axes {rc} have {rshape}")
    if [lhs.shape[d] for d in lb] != [rhs.shape[d] for d in rb]:
        raise ValueError(f"mismatched batch dims: lhs {[lhs.shape[d] for d in lb]}, rhs {[rhs.shape[d] for d in rb]}")
    if config.uses_stochastic() and key is None:
        raise ValueError("this config rounds stochastically: pass key= (a jax.random key)")
    lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
    batch = [lhs.shape[d] for d in lb]
    K = math.prod(lshape)
    M = math.prod(lhs.shape[d] for d in lf)
    N = math.prod(rhs.shape[d] for d in rf)
    _check_block(K, config.lhs, "lhs")  # the backward products pad instead (see _pad_contraction)
    _check_block(K, config.rhs, "rhs")
    Bn = math.prod(batch)
    lays = (_Layout(lb + tuple(lf) + lc, (Bn, M, K)), _Layout(rb + tuple(rf) + rc, (Bn, N, K)))
    out_dtype = preferred_element_type or jnp.result_type(lhs.dtype, rhs.dtype)
    y = _qdot_jit(lhs.astype(jnp.float32), rhs.astype(jnp.float32), key, config, lays)
    shape = tuple(batch) + tuple(lhs.shape[d] for d in lf) + tuple(rhs.shape[d] for d in rf)
    return y.reshape(shape).astype(out_dtype)


def qmatmul(a, b, config, *, key=None):
    """The quantized product ``a @ b`` for 2-D or batched operands (batch axes broadcast).

    Args:
      a: ``(..., M, K)`` float array.
      b: ``(..., K, N)`` float array.
      config: a :class:`MatmulConfig` or a profile name (:func:`numfmt.matmul_profiles.matmul_profile`).
      key: a ``jax.random`` key for stochastic roundings.

    Returns:
      ``(..., M, N)``, as :func:`dot_general` computes it.
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"qmatmul needs 2-D or batched operands, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"mismatched shapes: a {a.shape} has K={a.shape[-1]}, b {b.shape} has K={b.shape[-2]}")
    try:
        batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    except ValueError:
        raise ValueError(f"the batch axes of a {a.shape} and b {b.shape} do not broadcast")
    a = jnp.broadcast_to(a, batch + a.shape[-2:])
    b = jnp.broadcast_to(b, batch + b.shape[-2:])
    nb = len(batch)
    dims = (((nb + 1,), (nb,)), (tuple(range(nb)), tuple(range(nb))))
    return dot_general(a, b, dims, config=config, key=key)
