"""The issue-14 cases of the scaled layer: each returned a wrong result without a word before.

Only the public API is used, so that the file runs against older versions too (each
case failed there).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numfmt as nf

X = jnp.asarray(np.random.default_rng(0).standard_normal((4, 32)), jnp.float32)


# ---- arithmetic at the edges ---------------------------------------------------------------------


def test_mx_keeps_float32_subnormal_inputs():
    # The whole block below 2**-126: its E8M0 scale 2**-127 makes the elements
    # representable; XLA's CPU flush of subnormal operands used to give all zeros.
    x = jnp.asarray(np.linspace(1, 1.9375, 32) * 2.0**-127, jnp.float32)
    for elem in ("e4m3", "e2m1"):
        d = nf.mx_quantize(x, elem).dequantize()
        assert np.all(np.asarray(d) > 0), elem


def test_per_tensor_int8_keeps_subnormal_inputs():
    for n in (4, 300):  # a small group and a large one (two absmax paths)
        x = jnp.asarray(np.resize([1e-38, -7e-39, 3e-39, 0.0], n), jnp.float32)
        q = nf.quantize_scaled(x, "int8")
        assert float(q.scale) == 2.0**-126
        np.testing.assert_array_equal(np.asarray(q.codes.view(jnp.int8))[:4], [1, -1, 0, 0])


def test_nvfp4_tensor_scale_is_correctly_rounded():
    amax = np.float32(54.87677)  # amax * (1 / 2688) is 1 ulp off amax / 2688
    assert amax / np.float32(2688) != amax * np.float32(1 / 2688)
    q = nf.nvfp4_quantize(jnp.full((16,), amax, jnp.float32))
    assert float(q.tensor_scale) == amax / np.float32(2688)


def test_nan_in_an_mx_block_makes_the_block_nan():
    # OCP MX reference (microxcaling): a NaN in a block makes its shared scale NaN.
    x = np.ones((2, 32), np.float32)
    x[0, 5] = np.nan
    for elem in ("e4m3", "e3m2", "e2m1"):
        q = nf.mx_quantize(jnp.asarray(x), elem)
        assert np.isnan(float(q.scale[0, 0])) and np.isfinite(float(q.scale[1, 0]))
        assert int(q.scale_codes[0, 0]) == 0xFF  # E8M0's NaN
        d = np.asarray(q.dequantize())
        assert np.all(np.isnan(d[0])) and np.all(d[1] == 1.0), elem


def test_nan_in_mxfp4_never_becomes_a_number():
    x = np.zeros(32, np.float32)
    x[3] = np.nan
    assert np.isnan(np.asarray(nf.mx_quantize(jnp.asarray(x), "e2m1").dequantize())[3])
    assert np.isnan(np.asarray(nf.fake_quant(jnp.asarray(x), "e2m1", granularity="block", axis=0, block_size=32,
                                              scale_fmt=nf.E8M0))[3])


def test_inf_in_an_mx_block_gives_non_finite_products():
    a = np.ones((4, 32), np.float32)
    a[1, 7] = np.inf
    y = np.asarray(nf.qmatmul(jnp.asarray(a), jnp.ones((32, 4), jnp.float32), "mxfp8"))
    assert np.all(~np.isfinite(y[1])) and np.all(np.isfinite(y[[0, 2, 3]]))


def test_the_old_rule_by_name():
    x = np.ones(32, np.float32)
    x[0] = np.nan
    q = nf.mx_quantize(jnp.asarray(x), "e4m3", nonfinite="ignore")
    assert float(q.scale[0]) == 2.0**-8 and np.asarray(q.dequantize())[1] == 1.0


# ---- misuse that passed silently ------------------------------------------------------------------


@pytest.mark.parametrize("clip", [-1.0, 0.0, float("nan"), float("inf")])
def test_bad_clip_values(clip):
    with pytest.raises(ValueError, match="calibration"):
        nf.quantize_scaled(X, "int8", calibration=clip)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_bad_explicit_scales(scale):
    with pytest.raises(ValueError, match="scale must be positive"):
        nf.fake_quant(X, "int8", scale=scale)


def test_traced_bad_scale_gives_nan_not_zeros():
    y = jax.jit(lambda x, s: nf.fake_quant(x, "int8", scale=s))(X, jnp.float32(0.0))
    assert np.all(np.isnan(np.asarray(y)))


def test_mx_refuses_e8m0_elements():
    with pytest.raises(ValueError, match="elem"):
        nf.mx_quantize(X, "e8m0")


def test_calibrate_result_without_keepdims_is_a_clip_value():
    c = nf.calibrate(X, "int8", axis=1)
    q = nf.quantize_scaled(X, "int8", axis=1, calibration=c)
    np.testing.assert_array_equal(np.asarray(q.scale), np.asarray(nf.quantize_scaled(X, "int8", axis=1).scale))
    with pytest.raises(ValueError, match="calibration"):
        nf.quantize_scaled(X, "int8", axis=1, calibration=jnp.ones(3))


def test_dequantize_outside_vmap():
    qb = jax.vmap(lambda r: nf.mx_quantize(r, "e4m3"))(X)
    np.testing.assert_array_equal(np.asarray(qb.dequantize()), np.asarray(nf.mx_quantize(X, "e4m3").dequantize()))


@pytest.mark.parametrize("call", [
    lambda: nf.quantize_scaled(X, "int8", symmetric="no"),
    lambda: nf.fake_quant(X, "int8", saturate="no"),
    lambda: nf.fake_quant(X, "int8", clipped="yes"),
    lambda: nf.calibrate(X, "int8", keepdims="yes"),
    lambda: nf.OperandSpec(nf.INT8, granularity="tensor", symmetric="no"),
    lambda: nf.OperandSpec(nf.E2M1, granularity="block", block_size=16, scale_fmt=nf.E4M3, two_level="yes"),
])
def test_truthy_strings_are_not_booleans(call):
    with pytest.raises(TypeError, match="must be True or False"):
        call()


def test_saturate_false_with_a_scale_is_refused():
    with pytest.raises(ValueError, match="saturate"):
        nf.fake_quant(X, "e4m3", saturate=False, granularity="tensor")
