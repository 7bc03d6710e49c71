"""qmatmul with the tensor-core models (numfmt.tensorcore) as accumulators.

The h100_* profiles must reproduce recorded H100 output bit for bit (tests/data/h100,
the same cases as tests/test_tensorcore.py), agree with ``tensorcore_matmul`` on the
element values, follow the fitted epilogue for scales, apply block scales at each
promotion (DeepSeek-V3's recipe, checked against a NumPy reference), and differentiate.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numfmt as nf
from numfmt import tensorcore as tc
from tests import tensorcore_cases as cases

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("case, output, profile, replace", [
    ("uniform01/K256", "fp8_fast", "h100_fp8_fast_accum", None),
    ("uniform01/K256", "fp8_slow", "h100_fp8", None),
    ("e4m3xe5m2_normal/K128", "fp8_fast", "h100_fp8_fast_accum", "rhs"),
    ("e4m3xe5m2_normal/K128", "fp8_slow", "h100_fp8", "rhs"),
    ("e5m2xe4m3_wide/K128", "fp8_fast", "h100_fp8_fast_accum", "lhs"),
    ("e5m2xe4m3_wide/K32", "fp8_slow", "h100_fp8", "lhs"),
    ("bf16_normal/K32", "jax", "h100_bf16", None),
    ("fp16_normal/K32", "jax", "h100_fp16", None),
    ("f32_normal/K32", "torch_tf32", "h100_tf32", None),
    ("f32_normal/K32", "torch_fp32", "h100_fp32", None),
])
def test_profiles_reproduce_recorded_h100_output(case, output, profile, replace):
    a, b = cases.operands(case)  # a (M, K), b (N, K): float32 values of the hardware's formats
    cfg = nf.matmul_profile(profile)
    if replace:  # the hardware's mixed FP8 products: E4M3 x E5M2 and E5M2 x E4M3
        cfg = dataclasses.replace(cfg, **{replace: nf.OperandSpec(nf.E5M2)})
        assert getattr(cfg.accumulator, f"{replace}_fmt") == nf.E5M2
    y = np.asarray(nf.qmatmul(a, b.T, cfg))
    hw = cases.array(f"{case}/{output}")
    np.testing.assert_array_equal(y.view(np.uint32), hw.view(np.uint32))
    np.testing.assert_array_equal(y, np.asarray(tc.tensorcore_matmul(a, b, cfg.accumulator)))


def test_bf16_output_and_scales_follow_the_fitted_epilogue():
    # The recorded epilogue case: E4M3 operands, scales (scale_a, scale_b), BF16 output.
    a, b = cases.operands("epilogue/K256")
    sa, sb = (float(v) for v in cases.array("epilogue/K256/scales")[2])
    acc = np.asarray(tc.tensorcore_dot(a, b, tc.H100_FP8))
    want = np.asarray(tc.tensorcore_epilogue(acc, scale_a=sa, scale_b=sb, out_fmt=nf.BF16))
    hw = cases.array("epilogue/K256/s2_fp8_slow_bf16out")
    np.testing.assert_array_equal(want.view(np.uint32), hw.view(np.uint32))
    # qmatmul's BF16 output of an unscaled product: the same second rounding.
    cfg = dataclasses.replace(nf.matmul_profile("h100_fp8"), output=nf.BF16)
    got = np.asarray(nf.qmatmul(a, b.T, cfg))
    np.testing.assert_array_equal(got, np.asarray(tc.tensorcore_epilogue(acc, out_fmt=nf.BF16)))
    assert tuple(cases.array("epilogue/K256/scales")[0]) == (1.0, 1.0)  # the recorded pair 0: no scaling
    hw = cases.array("epilogue/K256/s0_fp8_slow_bf16out")
    np.testing.assert_array_equal(got.view(np.uint32), hw.view(np.uint32))


def test_channel_scales_are_the_epilogue_of_the_element_product():
    spec = nf.OperandSpec(nf.E4M3, granularity="channel")
    cfg = nf.MatmulConfig(spec, spec, tc.H100_FP8_FAST_ACCUM, output=nf.BF16)
    a, b = RNG.standard_normal((16, 96)).astype(np.float32), RNG.standard_normal((96, 8)).astype(np.float32)
    y = np.asarray(nf.qmatmul(a, b, cfg))
    qa = nf.quantize_scaled(a, nf.E4M3, axis=1)
    qb = nf.quantize_scaled(b.T, nf.E4M3, axis=1)
    ea, eb = (np.asarray(nf.decode(q.codes, nf.E4M3)) for q in (qa, qb))
    want = tc.tensorcore_matmul(ea, eb, tc.H100_FP8_FAST_ACCUM, scale_a=np.asarray(qa.scale)[:, 0],
                                scale_b=np.asarray(qb.scale)[:, 0], out_fmt=nf.BF16)
    np.testing.assert_array_equal(y, np.asarray(want))


def _fma32(x, y, c):
    """RN(x * y + c) into float32, exactly (Fractions)."""
    exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(c))
    return np.float32(nf.testing.reference_decode(nf.testing.reference_round(exact, nf.FP32, "nearest_even"),
                                                  nf.FP32))


def _tiles_of(bt, rows, cols):
    """Element values and scales of ``bt`` (N, K) quantized per ``rows x cols`` tile, each
    tile on its own by the per-tensor quantizer: scales repeated to (N, K // cols)."""
    N, K = bt.shape
    eb, sb = np.zeros((N, K), np.float32), np.zeros((N, K // cols), np.float32)
    for r in range(0, N, rows):
        for c in range(0, K, cols):
            q = nf.quantize_scaled(bt[r:r + rows, c:c + cols], nf.E4M3)
            eb[r:r + rows, c:c + cols] = np.asarray(nf.decode(q.codes, nf.E4M3))
            sb[r:r + rows, c // cols] = np.float32(q.scale)
    return eb, sb


def test_deepseek_v3_recipe_against_a_numpy_reference():
    """Each interval of 128: the fast-accumulation sum of the elements, then
    ``total = RN(c * fl32(sa * sb) + total)`` (the recipe as documented; not fitted),
    with 1 x 128 activation blocks and 128 x 128 weight tiles (the last one partial,
    72 columns, as DeepSeek-V3's reference kernels tile in ceil-div blocks)."""
    cfg = nf.matmul_profile("deepseek_v3_fp8")
    M, N, K = 3, 200, 384
    a = (RNG.standard_normal((M, K)) * np.repeat(2.0 ** RNG.integers(-8, 8, (M, 3)), 128, axis=1)).astype(np.float32)
    # Columns of different magnitude inside each tile: 1 x 128 blocks would scale them apart.
    b = (RNG.standard_normal((K, N)) * 2.0 ** RNG.integers(-6, 6, (1, N))).astype(np.float32)
    y = np.asarray(nf.qmatmul(a, b, cfg))
    qa = nf.quantize_scaled(a, nf.E4M3, axis=1, block_size=128)
    ea, sa = np.asarray(nf.decode(qa.codes, nf.E4M3)), np.asarray(qa.scale, np.float32)
    eb, sb = _tiles_of(np.ascontiguousarray(b.T), 128, 128)
    assert len(np.unique(sb)) == 2 * 3  # one scale per tile
    # (The 1 x 128 blocks of earlier versions give other bits on these operands.)
    rows = dataclasses.replace(cfg, rhs=dataclasses.replace(cfg.rhs, block_rows=None))
    assert not np.array_equal(np.asarray(nf.qmatmul(a, b, rows)), y)
    total = np.zeros((M, N), np.float32)
    for i in range(K // 128):
        part = slice(128 * i, 128 * (i + 1))
        c = np.asarray(tc.tensorcore_dot(ea[:, part], eb[:, part], tc.H100_FP8_FAST_ACCUM))
        for m in range(M):
            for n in range(N):
                total[m, n] = _fma32(c[m, n], np.float32(sa[m, i] * sb[n, i]), total[m, n])
    np.testing.assert_array_equal(y, total)
    # Its stated accuracy: within the fast accumulator's truncation (2**-13 per block,
    # about 2**-12 per interval of 4 blocks) of the exact product of the quantized operands.
    da = np.asarray(qa.dequantize(), np.float64)
    db = eb.astype(np.float64) * np.repeat(sb, 128, axis=1)
    deq, mag = da @ db.T, np.abs(da) @ np.abs(db).T
    assert np.all(np.abs(y - deq) <= 2.0**-10 * mag)


def test_weight_tiles_bad_input_and_gradients():
    spec = nf.OperandSpec(nf.E4M3, granularity="block", block_size=128, block_rows=128)
    for bad, err in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(err, match="block_rows"):
            dataclasses.replace(spec, block_rows=bad)
    with pytest.raises(ValueError, match="block_rows is for granularity='block'"):
        nf.OperandSpec(nf.E4M3, granularity="channel", block_rows=128)
    a, b = RNG.standard_normal((4, 256)).astype(np.float32), RNG.standard_normal((256, 200)).astype(np.float32)
    # Tiles on the lhs too: 4 rows in one partial tile, so one scale per 128 of K for all rows.
    y = nf.qmatmul(a, b[:, :128], nf.MatmulConfig(spec, spec))
    whole = dataclasses.replace(spec, granularity="tensor", block_size=None, block_rows=None)
    y1 = nf.qmatmul(a[:, :128], b[:128, :128], nf.MatmulConfig(whole, whole))
    y2 = nf.qmatmul(a[:, 128:], b[128:, :128], nf.MatmulConfig(whole, whole))
    np.testing.assert_allclose(y, y1 + y2, rtol=1e-5, atol=1e-5)  # (each K block: one tile per operand)
    # Batched operands: each batch element has its own tiles (the same bits as one at a time).
    ab = RNG.standard_normal((2, 4, 256)).astype(np.float32)
    bb = RNG.standard_normal((2, 256, 200)).astype(np.float32)
    yb = np.asarray(nf.qmatmul(ab, bb, "deepseek_v3_fp8"))
    for i in range(2):
        np.testing.assert_array_equal(yb[i], np.asarray(nf.qmatmul(ab[i], bb[i], "deepseek_v3_fp8")))
    # The backward products take the tiles across the other axis (the rows become the
    # forward's contraction): finite, and the exact product's gradients within the
    # quantization error.
    ga, gb = jax.grad(lambda a, b: jnp.sum(nf.qmatmul(a, b, "deepseek_v3_fp8") ** 2), argnums=(0, 1))(a, b)
    ra, rb = jax.grad(lambda a, b: jnp.sum((a @ b) ** 2), argnums=(0, 1))(a, b)
    for g, r in ((ga, ra), (gb, rb)):
        assert np.all(np.isfinite(g))
        assert np.linalg.norm(g - r) <= 0.15 * np.linalg.norm(r)


def test_gradients_through_a_tensorcore_accumulator():
    bf16 = nf.OperandSpec(nf.BF16)
    cfg = nf.MatmulConfig(bf16, bf16, tc.H100_BF16, grad=bf16, grad_accumulator=tc.H100_BF16)
    a = jnp.asarray(RNG.integers(-8, 9, (8, 32)).astype(np.float32))
    b = jnp.asarray(RNG.integers(-8, 9, (32, 4)).astype(np.float32))
    c = jnp.asarray(RNG.integers(-8, 9, (8, 4)).astype(np.float32))
    ga, gb = jax.jit(jax.grad(lambda a, b: jnp.sum(nf.qmatmul(a, b, cfg) * c), argnums=(0, 1)))(a, b)
    # small integers: every product and sum is exact, so the backward products are c b^T and a^T c
    np.testing.assert_array_equal(ga, np.asarray(c) @ np.asarray(b).T)
    np.testing.assert_array_equal(gb, np.asarray(a).T @ np.asarray(c))
    fwd = nf.MatmulConfig(nf.OperandSpec(nf.E4M3, granularity="tensor"), nf.OperandSpec(nf.E4M3, granularity="tensor"),
                          tc.H100_FP8)
    g = jax.grad(lambda a: jnp.sum(nf.qmatmul(a, b, fwd)))(a)
    assert g.shape == a.shape and bool(jnp.all(jnp.isfinite(g)))


def test_bad_tensorcore_configs():
    with pytest.raises(ValueError, match="do not fit the TensorCoreModel"):
        nf.MatmulConfig(nf.FP32, nf.FP32, tc.H100_FP8)  # FP32 operands on an FP8 tensor core
    with pytest.raises(ValueError, match="do not fit"):
        nf.MatmulConfig(nf.INT8, nf.INT8, tc.H100_FP8)
    affine = nf.OperandSpec(nf.INT8, granularity="tensor", symmetric=False)
    with pytest.raises(ValueError, match="integer elements or a zero point"):
        nf.MatmulConfig(affine, nf.E4M3, tc.H100_FP8)
    block = nf.OperandSpec(nf.E4M3, granularity="block", block_size=128)
    with pytest.raises(ValueError, match="promotion_interval"):
        nf.MatmulConfig(block, block, tc.H100_FP8_FAST_ACCUM)  # block scales need promotion
    with pytest.raises(ValueError, match="grad_accumulator"):
        nf.MatmulConfig(nf.BF16, nf.BF16, grad_accumulator=tc.H100_BF16)  # FP32 cotangent on a BF16 core
    with pytest.raises(TypeError, match="Accumulator or a TensorCoreModel"):
        nf.MatmulConfig(accumulator="e8m13")
    with pytest.raises(ValueError, match="interval_scales"):
        tc.tensorcore_dot(np.zeros((2, 64), np.float32), np.zeros((2, 64), np.float32), tc.H100_FP8,
                          interval_scales=(np.ones((2, 1), np.float32), np.ones((2, 1), np.float32)))
    with pytest.raises(ValueError, match="known profiles"):
        nf.matmul_profile("h100_fp8_no_promotion")


@pytest.mark.slow  # a GPU setting forced on the CPU (CI runs it: marker "slow")
def test_unrolled_loops_give_the_same_bits(monkeypatch):
    """On a GPU the loops over K take several steps per iteration (scan_unroll); forced
    here on the CPU, the results must not change by a bit."""
    from numfmt import accumulator, tensorcore_kernel

    a = np.asarray(nf.quantize(RNG.random((4, 256), dtype=np.float32), nf.E4M3))
    b = np.asarray(nf.quantize(RNG.random((256, 3), dtype=np.float32), nf.E4M3))
    emulated = nf.MatmulConfig(nf.E4M3, nf.E4M3, nf.Accumulator(nf.BF16, dot_width=4, promotion_interval=64))
    configs = ["h100_fp8_fast_accum", "h100_fp32", "deepseek_v3_fp8", emulated]

    calls = []
    original = tensorcore_kernel.scan_unroll

    def forced(width, backend=None):
        calls.append(width)
        return original(width, "gpu")

    def run():
        jax.clear_caches()  # traced again, so that the patched unroll is used
        return [np.asarray(nf.qmatmul(a, b, c)) for c in configs]

    plain = run()
    assert original(1, "gpu") == 64 and original(32, "cuda") == 2 and original(8, "cpu") == 1
    monkeypatch.setattr(tensorcore_kernel, "scan_unroll", forced)
    monkeypatch.setattr(accumulator, "scan_unroll", lambda width, backend=None: forced(width) and 4)
    for x, y in zip(plain, run()):
        np.testing.assert_array_equal(x, y)
    assert {1, 4, 32} <= set(calls)  # FP32's one product, the emulated chunks of 4, FP8's blocks of 32
