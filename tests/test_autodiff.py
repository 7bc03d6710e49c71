"""Tests of numfmt.autodiff: straight-through fake_quant and quantize_grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numfmt as nf
from numfmt import scaled
from numfmt.autodiff import fake_quant, quantize_grad

X = jnp.linspace(-600.0, 600.0, 241)


@pytest.mark.parametrize("fmt,lo,hi", [(nf.E4M3, -448.0, 448.0), (nf.INT8, -128.0, 127.0), (nf.E2M1, -6.0, 6.0)])
def test_fake_quant_forward_and_straight_through_gradient(fmt, lo, hi):
    y = fake_quant(X, fmt)
    np.testing.assert_array_equal(y, nf.quantize(X, fmt, saturate=True))
    g = jax.grad(lambda x: jnp.sum(fake_quant(x, fmt)))(X)
    np.testing.assert_array_equal(g, jnp.ones_like(X))  # STE: 1 everywhere
    gc = jax.grad(lambda x: jnp.sum(fake_quant(x, fmt, clipped=True)))(X)
    inside = (X >= lo) & (X <= hi)
    np.testing.assert_array_equal(gc, inside.astype(jnp.float32))  # 1 inside the range, 0 outside
    assert 0 < int(inside.sum()) < X.size


def test_fake_quant_with_scale_and_granularity():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 64)), jnp.float32)
    y = fake_quant(x, nf.E4M3, granularity="block", axis=1, block_size=32, scale_fmt=nf.E8M0)
    np.testing.assert_array_equal(y, scaled.quantize_scaled(x, nf.E4M3, axis=1, block_size=32,
                                                            scale_fmt=nf.E8M0).dequantize())
    # A clip value: values past it saturate and, with clipped=True, get no gradient.
    g = jax.grad(lambda x: jnp.sum(fake_quant(x, nf.INT8, granularity="tensor", calibration=1.0, clipped=True)))(x)
    sc = scaled.quantize_scaled(x, nf.INT8, calibration=1.0).scale  # 1 / 127: the range is [-128, 127] * sc
    np.testing.assert_array_equal(g, ((x >= -128 * sc) & (x <= 127 * sc)).astype(jnp.float32))
    assert 0 < float(g.sum()) < g.size
    s = 0.05
    y = fake_quant(x, nf.INT4, scale=s, clipped=True)
    # The reference quotient in NumPy, correctly rounded (a GPU's float32 division in
    # jnp is only faithful, and fake_quant promises x / scale correctly rounded).
    xs = np.asarray(x) / np.float32(s)
    np.testing.assert_allclose(y, np.clip(np.round(xs), -8, 7) * np.float32(s), rtol=1e-6)
    g = jax.grad(lambda x: jnp.sum(fake_quant(x, nf.INT4, scale=s, clipped=True)))(x)
    np.testing.assert_array_equal(g, ((xs >= -8) & (xs <= 7)).astype(np.float32))


def test_fake_quant_under_jit_and_vmap():
    f = jax.jit(jax.vmap(lambda x: fake_quant(x, nf.E5M2)))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((3, 17)) * 100, jnp.float32)
    np.testing.assert_array_equal(f(x), nf.quantize(x, nf.E5M2, saturate=True))


def test_quantize_grad_quantizes_cotangents():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal(1000), jnp.float32)
    c = jnp.asarray(rng.standard_normal(1000) * 1e-3, jnp.float32)
    np.testing.assert_array_equal(quantize_grad(x, nf.E5M2), x)  # identity forward
    g = jax.grad(lambda x: jnp.sum(quantize_grad(x, nf.E5M2) * c))(x)
    np.testing.assert_array_equal(g, nf.quantize(c, nf.E5M2, saturate=True))
    # Stochastic: values of the grid, reproducible from the key, unbiased on average.
    gs = [jax.grad(lambda x, i=i: jnp.sum(quantize_grad(x, nf.E5M2, "stochastic", key=jax.random.key(i)) * c))(x)
          for i in range(64)]
    for v in gs[:2]:
        np.testing.assert_array_equal(v, nf.quantize(v, nf.E5M2))
    again = jax.grad(lambda x: jnp.sum(quantize_grad(x, nf.E5M2, "stochastic", key=jax.random.key(0)) * c))(x)
    np.testing.assert_array_equal(again, gs[0])
    mean = np.mean(np.stack(gs), axis=0)
    assert np.abs(mean - c).mean() < 0.2 * np.abs(np.asarray(gs[0]) - c).mean()
    # Scaled gradients: per-tensor FP32 scale before E4M3 rounding.
    g = jax.grad(lambda x: jnp.sum(quantize_grad(x, nf.E4M3, granularity="tensor") * c))(x)
    np.testing.assert_array_equal(g, scaled.quantize_scaled(c, nf.E4M3).dequantize())


def test_bad_input():
    with pytest.raises(ValueError, match="key"):
        fake_quant(X, nf.E4M3, "stochastic")
    with pytest.raises(ValueError, match="granularity"):
        fake_quant(X, nf.E4M3, granularity="row")
    with pytest.raises(ValueError, match="block_size"):
        quantize_grad(X, nf.E4M3, granularity="block", axis=0)
    with pytest.raises(TypeError, match="floating"):
        fake_quant(jnp.arange(3), nf.INT8)
    with pytest.raises(ValueError, match="unknown format"):
        fake_quant(X, "e9m9")
