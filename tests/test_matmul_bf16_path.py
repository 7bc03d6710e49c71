"""The GPU fast path (issue 15, item 1): bf16 tensor cores where they change no operand.

It is chosen at trace time by backend; here the choice is forced on the CPU (the private
``numfmt.matmul._on_gpu``), and the tests check what makes it safe: every value that
enters the bf16 product is exactly its bfloat16 cast, so the only difference from the
float32 HIGHEST product is the order and rounding of the float32 accumulation.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import numfmt as nf
from numfmt import matmul
from tests.hlo_arrays import entry_arrays

# A deeper re-run (CI runs it: .ci/run, marker "slow"); the default run stays under 15 minutes.
pytestmark = pytest.mark.slow

RNG = np.random.default_rng(11)
T = nf.OperandSpec

ELIGIBLE = {
    "e4m3 tensor": nf.MatmulConfig(T(nf.E4M3, granularity="tensor"), T(nf.E4M3, granularity="tensor")),
    "e5m2 x e4m3 channel": nf.MatmulConfig(T(nf.E5M2, granularity="channel"), T(nf.E4M3, granularity="channel")),
    "bf16": nf.matmul_profile("bf16_fp32acc"),
    "mxfp8": nf.matmul_profile("mxfp8"),
    "mxfp4": nf.matmul_profile("mxfp4"),
    "mxfp6 e3m2": nf.MatmulConfig(*(T(nf.E3M2, granularity="block", block_size=32, scale_fmt=nf.E8M0),) * 2),
    "nvfp4": nf.matmul_profile("nvfp4"),
    "int8 channel": nf.MatmulConfig(T(nf.INT8, granularity="channel"), T(nf.INT8, granularity="channel")),
    "int4 tensor": nf.MatmulConfig(T(nf.INT4, granularity="tensor"), T(nf.INT4, granularity="tensor")),
    "e4m3 cast": nf.MatmulConfig(nf.E4M3, nf.E4M3),
    "e4m3 with e4m3 block scales": nf.MatmulConfig(*(T(nf.E4M3, granularity="block", block_size=16,
                                                       scale_fmt=nf.E4M3),) * 2),  # 4 + 4 significant bits
}
NOT_ELIGIBLE = {
    "fp32": nf.matmul_profile("fp32"),
    "fp32 block scales": nf.MatmulConfig(*(T(nf.E4M3, granularity="block", block_size=32),) * 2),
    "affine int8": nf.matmul_profile("int8_tflite"),
    "nf4 codebook": nf.MatmulConfig(T(nf.NF4, granularity="channel"), T(nf.NF4, granularity="channel")),
    "e4m3 with bf16 block scales": nf.MatmulConfig(*(T(nf.E4M3, granularity="block", block_size=16,
                                                       scale_fmt=nf.BF16),) * 2),
}


def _data():
    return RNG.standard_normal((2, 24, 64)).astype(np.float32), RNG.standard_normal((2, 40, 64)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(ELIGIBLE))
def test_operands_entering_the_bf16_product_are_exact(name):
    cfg = ELIGIBLE[name]
    a, b = _data()
    for x, spec in ((a, cfg.lhs), (b, cfg.rhs)):
        assert matmul.bf16_exact(spec)
        o = matmul._operand(jnp.asarray(x), spec, None, None)
        v, post = matmul._bf16_operand(o, spec)
        v = np.asarray(v)
        np.testing.assert_array_equal(v, v.astype(ml_dtypes.bfloat16).astype(np.float32))
        # and they are the dequantized operand, once the scale constant along K is applied
        deq = v if post is None else v * (np.asarray(post)[..., None] if np.ndim(post) else np.float32(post))
        np.testing.assert_allclose(deq, np.asarray(o.deq), rtol=2.0**-23, atol=0)


@pytest.mark.parametrize("name", sorted(NOT_ELIGIBLE))
def test_other_configs_keep_the_float32_product(name, on_gpu):
    cfg = NOT_ELIGIBLE[name]
    assert not (matmul.bf16_exact(cfg.lhs) and matmul.bf16_exact(cfg.rhs))
    a, b = _data()
    y = nf.qmatmul(a[0], b[0].T, cfg)
    highest = dataclasses.replace(cfg, accumulator=nf.Accumulator(native_dot="highest")) \
        if isinstance(cfg.accumulator, nf.Accumulator) and cfg.accumulator.native and not cfg.accumulator.is_int \
        else cfg
    np.testing.assert_array_equal(y, nf.qmatmul(a[0], b[0].T, highest))


@pytest.mark.parametrize("name", sorted(ELIGIBLE))
def test_forced_bf16_path_is_the_float32_sum_of_the_exact_products(name, on_gpu):
    cfg = ELIGIBLE[name]
    a, b = _data()
    y = np.asarray(nf.qmatmul(a[0], b[0].T, cfg), np.float64)
    highest = np.asarray(nf.qmatmul(a[0], b[0].T, dataclasses.replace(
        cfg, accumulator=nf.Accumulator(native_dot="highest"))), np.float64)
    lo = matmul._operand(jnp.asarray(a[:1]), cfg.lhs, None, None)
    ro = matmul._operand(jnp.asarray(b[:1]), cfg.rhs, None, None)
    (va, sa), (vb, sb) = matmul._bf16_operand(lo, cfg.lhs), matmul._bf16_operand(ro, cfg.rhs)
    exact = np.asarray(va[0], np.float64) @ np.asarray(vb[0], np.float64).T
    mag = np.abs(np.asarray(va[0], np.float64)) @ np.abs(np.asarray(vb[0], np.float64)).T
    post = np.ones_like(exact)
    for s, axis in ((sa, 1), (sb, 0)):
        if s is not None:
            post = post * (np.expand_dims(np.asarray(s, np.float64)[0], axis) if np.ndim(s) else float(s))
    # float32 accumulation of exact products (64 terms), then up to two scale roundings
    assert np.all(np.abs(y - exact * post) <= (64 * 2.0**-24 * mag + 2 * 2.0**-24 * np.abs(exact)) * np.abs(post))
    assert np.all(np.abs(y - highest) <= 2 * (64 * 2.0**-24 * mag + 2 * 2.0**-24 * np.abs(exact)) * np.abs(post))


def test_gradients_take_the_bf16_path_too(on_gpu):
    cfg = dataclasses.replace(ELIGIBLE["e4m3 tensor"], grad=T(nf.E5M2, granularity="tensor"))
    a, b = _data()
    ga = jax.grad(lambda x: jnp.sum(nf.qmatmul(x, b[0].T, cfg)))(jnp.asarray(a[0]))
    assert ga.shape == a[0].shape and bool(jnp.all(jnp.isfinite(ga)))


def test_native_dot_is_checked():
    assert nf.Accumulator().native_dot == "auto"
    with pytest.raises(ValueError, match="native_dot"):
        nf.Accumulator(native_dot="bf16")


@pytest.mark.parametrize("name", sorted(ELIGIBLE))
def test_cast_operands_are_the_bfloat16_values_of_the_float32_ones(name):
    # The bf16 route quantizes with cast=bfloat16 (the element loop writes bfloat16):
    # what enters the product, and the scale after it, must be those of the float32 operand.
    cfg = ELIGIBLE[name]
    a, b = _data()
    for x, spec in ((a, cfg.lhs), (b, cfg.rhs)):
        (v32, s32) = matmul._bf16_operand(matmul._operand(jnp.asarray(x), spec, None, None), spec)
        (v16, s16) = matmul._bf16_operand(matmul._operand(jnp.asarray(x), spec, None, None, jnp.bfloat16), spec)
        assert v16.dtype == v32.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(v16).view(np.uint16), np.asarray(v32).view(np.uint16))
        assert (s16 is None) == (s32 is None)
        if s16 is not None:
            np.testing.assert_array_equal(np.asarray(s16), np.asarray(s32))


@pytest.mark.parametrize("name", ["e4m3 tensor", "mxfp8", "nvfp4", "int8 channel"])
def test_the_bf16_route_writes_no_float32_operand_after_its_conditional(name, on_gpu):
    # Each operand's element loop runs inside a lax.cond (fast or exact pass); on the bf16
    # route it must write the bfloat16 operand itself: a float32 output converted after the
    # conditional was one more pass over each operand (issue 15: qmatmul 1.73x bf16 on an H100).
    cfg = ELIGIBLE[name]
    a, b = _data()
    x, y = jnp.asarray(a[0]), jnp.asarray(b[0].T)  # (24, 64) @ (64, 40)
    hlo = jax.jit(lambda p, q: nf.qmatmul(p, q, cfg)).lower(x, y).compile().as_text()
    conds = [dt for op, dt in entry_arrays(hlo, {24 * 64, 40 * 64}) if op == "conditional"]
    assert len(conds) == 2 and set(conds) == {"bf16"}, conds  # one loop per operand, each writing bf16
