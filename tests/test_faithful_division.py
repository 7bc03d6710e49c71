"""Exact results from a division that is not correctly rounded (XLA on GPU), checked on CPU.

XLA's GPU backend lowers a float32 division to a faithful one (``div.full.f32``, within
2 ulps), XLA's CPU backend to IEEE's correctly rounded one. numfmt takes the float
unit's quotient as a first guess only and corrects it with an exact integer residual
(:func:`numfmt.bitlayout._nearest_quotient`). Here the float unit's division
(``numfmt.bitlayout._float_div``) is replaced, for the whole module, by one that is off
by 1 or 2 ulps in every quotient, the correction is forced on CPU, and the exact
reference tests of the scaled paths (tests/test_scaled_exact.py, tests/test_lowbit.py)
run again: a path that trusted the float quotient would fail them.
"""

from __future__ import annotations

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

# The exact reference tests, collected again here: they run under this module's divider.
from test_bitlayout import test_quotient_normal_rounds_once  # noqa: F401
from test_codebook import (  # noqa: F401
    test_kmeans_cluster_mean_is_exact,
    test_kmeans_matches_exact_integer_oracle,
)
from test_lowbit import (  # noqa: F401
    test_binarize_matches_numpy_reference,
    test_dequantize_keeps_a_subnormal_alpha,
    test_ternarize_matches_numpy_reference,
)
from test_scaled_exact import (  # noqa: F401
    test_fake_quant_values_and_clipped_gradient_are_exact,
    test_int8_scales_and_elements_are_correctly_rounded_quotients,
    test_matmul_operands_equal_the_exact_reference,
    test_normal_scale_path_agrees_with_the_exact_one,
    test_nvfp4_block_scales_at_e4m3_midpoints,
    test_nvfp4_equals_the_exact_reference,
    test_nvfp4_tensor_scale_is_the_correctly_rounded_quotient,
    test_per_tensor_channel_block_equal_the_exact_reference,
)

import numfmt as nf
from numfmt import bitlayout as bl
from numfmt import scalemath as sm
from numfmt.testing import reference_decode, reference_round
from tests.bits import bit_view

# A deeper re-run (CI runs it: .ci/run, marker "slow"); the default run stays under 15 minutes.
pytestmark = pytest.mark.slow

IEEE_DIV = bl._float_div


def off_by_ulps(a, b):
    """``a / b`` moved by -2, -1, +1 or +2 ulps (chosen by a hash of the operands' bits)
    wherever the quotient is finite, non-zero and not within 8 ulps of 0 or inf: never
    the correctly rounded quotient, always within the 2 ulps of ``div.full.f32``'s bound."""
    q = IEEE_DIV(a, b)
    lay = bl.layout_of(q.dtype)
    U = lay.uint
    a, b = jnp.broadcast_to(a, q.shape), jnp.broadcast_to(b, q.shape)
    h = (lax.bitcast_convert_type(a, U) ^ (lax.bitcast_convert_type(b, U) * U(3))) * U(2654435761)
    pick = (h >> U(lay.width - 2)).astype(jnp.int32)  # 0..3
    delta = jnp.where(pick < 2, pick - 2, pick - 1)  # -2, -1, 1, 2
    u = lax.bitcast_convert_type(q, U)
    mag = bl.magnitude_bits(q, lay)
    moved = jnp.where(delta > 0, u + delta.astype(U), u - (-delta).astype(U))
    ok = (mag > U(8)) & (mag < bl.inf_bits(lay) - U(8))
    return lax.bitcast_convert_type(jnp.where(ok, moved, u), q.dtype)


@pytest.fixture(autouse=True, scope="module")
def faithful_divider():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bl, "_float_div", off_by_ulps)
        mp.setattr(bl, "CPU_DIVISION_IS_IEEE", False)
        jax.clear_caches()  # jitted functions retrace with the divider above
        yield
    jax.clear_caches()


def _same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    nan = np.isnan(want)
    return np.array_equal(np.isnan(got), nan) and np.array_equal(bit_view(got)[~nan], bit_view(want)[~nan])


def _random_floats(rng, n, dtype=np.float32):
    """Random bit patterns (every exponent: subnormals, zeros, inf, NaN) and near-subnormal values."""
    width = np.dtype(dtype).itemsize * 8
    u = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    x = (u if width == 64 else (u >> np.uint64(32)).astype(np.uint32)).view(dtype).copy()
    tiny = np.finfo(dtype).tiny
    near = (rng.random(n // 2) * 4 * tiny).astype(dtype)  # about half subnormal
    x[: n // 2] = np.where(rng.random(n // 2) < 0.5, near, x[: n // 2])
    return x


def test_the_divider_is_off_everywhere():
    # The hook is live and never correctly rounded: trusting it would fail the tests below.
    rng = np.random.default_rng(0)
    a = (1 + rng.random(4096)).astype(np.float32)
    b = (1 + rng.random(4096)).astype(np.float32)
    got = np.asarray(jax.jit(bl._float_div)(a, b))
    assert np.all(got != a / b)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_divide_is_exact_for_every_input(seed, dtype):
    rng = np.random.default_rng(seed)
    with bl.x64():
        a = _random_floats(rng, 2048, dtype)
        b = np.abs(_random_floats(rng, 2048, dtype))
        b = np.where(np.isfinite(b) & (b > 0), b, dtype(3))
        got = np.asarray(jax.jit(bl.divide)(a, b))
    with np.errstate(all="ignore"):
        assert _same(got, a / b)  # NumPy: IEEE, correctly rounded, gradual underflow


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rounding=st.sampled_from(["odd", "up", "down", "toward_zero", "nearest_away"]))
def test_divide_rounds_once_in_every_mode(seed, rounding):
    rng = np.random.default_rng(seed)
    a = _random_floats(rng, 128)
    b = np.abs(_random_floats(rng, 128))
    ok = np.isfinite(a) & (a != 0) & np.isfinite(b) & (b > 0)
    a, b = a[ok], b[ok]
    got = np.asarray(jax.jit(bl.divide, static_argnums=2)(a, b, rounding))
    for g, x, y in zip(got, a, b):  # the oracle: the exact quotient rounded once into float32
        code = reference_round(Fraction(float(x)) / Fraction(float(y)), nf.FP32, rounding)
        want = np.float32(float(reference_decode(code, nf.FP32)))
        assert g == want and np.signbit(g) == np.signbit(x)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_quotient_nearest_is_correctly_rounded(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(4096) * np.exp2(rng.integers(-60, 60, 4096))).astype(np.float32)
    d = (np.abs(rng.standard_normal(4096)) + 0.5).astype(np.float32) * np.float32(2.0) ** rng.integers(-30, 30, 4096)
    x[:7] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0]
    got = jax.jit(bl.quotient_nearest)(x, d.astype(np.float32))
    assert _same(got, x / d.astype(np.float32))
    assert not _same(jax.jit(bl._float_div)(x[7:], d[7:]), x[7:] / d[7:])  # what the correction repairs


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_product_and_quotient_of_any_floats(seed):
    rng = np.random.default_rng(seed)
    specials = np.array([0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.0, 3e38], np.float32)
    a, s = _random_floats(rng, 4096), _random_floats(rng, 4096)
    a[::9], s[::7] = specials[rng.integers(0, 9, a[::9].size)], specials[rng.integers(0, 9, s[::7].size)]
    with np.errstate(all="ignore"):
        assert _same(jax.jit(sm.product)(a, s), a * s)
        assert _same(jax.jit(sm.quotient)(a, s), a / s)


@pytest.mark.parametrize("case", ["int8_channel", "e4m3_tensor", "int4_block", "uint8_affine", "e4m3_scale"])
def test_scaled_paths_match_the_ieee_divider(case):
    # The data of the GPU cross-check (ordinary and near-subnormal rows): the codes,
    # scales and values equal those computed with the IEEE divider on CPU.
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((16, 256)) * np.exp2(rng.integers(-130, 10, (16, 1)))).astype(np.float32)
    x[::5, ::13] = np.exp2(rng.integers(-149, -126, x[::5, ::13].shape)).astype(np.float32)

    def run():
        a = jnp.asarray(x)
        q = {"int8_channel": lambda: nf.quantize_scaled(a, "int8", axis=1),
             "e4m3_tensor": lambda: nf.quantize_scaled(a, "e4m3"),
             "int4_block": lambda: nf.quantize_scaled(a, "int4", axis=1, block_size=64),
             "uint8_affine": lambda: nf.quantize_scaled(a, "uint8", symmetric=False),
             "e4m3_scale": lambda: nf.quantize_scaled(a, "e2m1", axis=1, block_size=16, scale_fmt="e4m3")}[case]()
        return [np.asarray(v) for v in (q.codes, q.scale, q.dequantize())]

    got = run()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bl, "_float_div", IEEE_DIV)
        mp.setattr(bl, "CPU_DIVISION_IS_IEEE", True)
        jax.clear_caches()
        want = run()
    jax.clear_caches()
    for g, w in zip(got, want):
        assert _same(g, w) if g.dtype.kind == "f" else np.array_equal(g, w)


def test_binarize_and_ternarize_dequantize_exactly():
    # alpha times +-1 (or 0) is alpha itself: every value, subnormal alphas included.
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((8, 83)) * np.exp2([[-145], [-140], [-136], [-132], [-128], [-126], [-10], [3]])).astype(np.float32)
    b, t = nf.binarize(jnp.asarray(x), axis=1), nf.ternarize(jnp.asarray(x), axis=1)
    assert np.any(np.asarray(b.scale) < 2.0**-126)  # the data reaches subnormal alphas
    alpha_b, alpha_t = np.broadcast_to(b.scale, x.shape), np.broadcast_to(t.scale, x.shape)
    sign_b = {0: -1.0, 1: 1.0}
    assert _same(b.dequantize(), (np.vectorize(sign_b.get)(np.asarray(b.codes)) * alpha_b).astype(np.float32))
    sign_t = {0: -1.0, 1: 0.0, 2: 1.0}
    assert _same(t.dequantize(), (np.vectorize(sign_t.get)(np.asarray(t.codes)) * alpha_t).astype(np.float32))


def test_rescale_keeps_a_subnormal_scale_when_the_smallest_element_is_above_one():
    # min_abs = 2: tiny / min_abs is subnormal, which a CPU compare reads as 0; the
    # product must still be the correctly rounded one with gradual underflow.
    v = np.array([2.0, -4.0, 0.0, 6.0], np.float32)
    got = jax.jit(lambda v, s: sm.rescale(v, s, min_abs=2.0, scale_floor=0.0))(v, np.float32(1e-40))
    assert _same(got, v * np.float32(1e-40))
