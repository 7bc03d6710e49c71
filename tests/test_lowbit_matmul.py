"""Tests of numfmt.lowbit_matmul: XNOR-popcount, integer-by-binary/ternary and log-domain products, exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numfmt as nf
from numfmt.lowbit_matmul import pack_sign_words
from tests.bits import bit_view

EXAMPLES = settings().max_examples
# Each example compiles numfmt's kernels for its own formats, axes and shapes (about 3 s
# on 2 cores): the two exactness properties below draw half as many by default.
FEWER = max(EXAMPLES // 2, 1)


def _sign(x):
    return np.where(x >= 0, 1, -1).astype(np.int64)


# ---- binary x binary ----------------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(data=st.data(), K=st.sampled_from([1, 5, 31, 32, 33, 63, 64, 65, 100, 257]),
       axes=st.sampled_from([(1, 0), (None, 0), (1, None), (None, None)]))
def test_binary_matmul_is_the_float_product_bit_for_bit(data, K, axes):
    M, N = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    seed = data.draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    a[rng.random(a.shape) < 0.1] = 0.0  # sign(0) = +1 on both sides
    qa, qb = nf.binarize(a, axis=axes[0]), nf.binarize(b, axis=axes[1])
    got = nf.binary_matmul(qa, qb)
    # The documented float evaluation: (float32(sign(a) @ sign(b)) * alpha_a) * alpha_b.
    want = (np.float32(_sign(a) @ _sign(b)) * np.asarray(qa.scale)) * np.asarray(qb.scale)
    assert got.shape == (M, N) and np.array_equal(bit_view(got), bit_view(want))
    # And it is the float product of the dequantized operands wherever that is exact (alphas 1).
    ones = nf.binary_matmul(nf.binarize(np.sign(a) + (a == 0), axis=axes[0]),
                            nf.binarize(np.sign(b) + (b == 0), axis=axes[1]))
    assert np.array_equal(np.asarray(ones), np.float32(_sign(a) @ _sign(b)))


def test_pack_sign_words_layout():
    codes = np.zeros((2, 40), np.uint8)
    codes[0, [0, 31, 32, 39]] = 1
    codes[1, :] = 1
    words = np.asarray(pack_sign_words(jnp.asarray(codes)))
    assert words.dtype == np.uint32 and words.shape == (2, 2)
    assert words[0].tolist() == [1 | (1 << 31), 1 | (1 << 7)]
    assert words[1].tolist() == [0xFFFFFFFF, 0xFF]  # bits past K are 0


def test_binary_matmul_jit_vmap():
    a = jax.random.normal(jax.random.key(0), (3, 4, 37))
    b = jax.random.normal(jax.random.key(1), (3, 37, 5))

    def f(x, y):
        return nf.binary_matmul(nf.binarize(x, axis=1), nf.binarize(y, axis=0))

    eager = np.stack([np.asarray(f(x, y)) for x, y in zip(a, b)])
    assert np.array_equal(np.asarray(jax.jit(jax.vmap(f))(a, b)), eager)


# ---- integer activations x binary / ternary weights ------------------------------------------------


@settings(max_examples=FEWER)
@given(data=st.data(), fmt=st.sampled_from(["int8", "int8_narrow", "uint8", "int4"]),
       ternary=st.booleans(), symmetric=st.booleans())
def test_lowbit_weight_matmul_is_exact(data, fmt, ternary, symmetric):
    if not symmetric and fmt == "int8_narrow":
        fmt = "int8"
    M, K, N = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 300)), data.draw(st.integers(1, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = (rng.standard_normal((M, K)) * 3).astype(np.float32)
    w = rng.standard_normal((K, N)).astype(np.float32)
    qx = nf.quantize_scaled(x, fmt, axis=data.draw(st.sampled_from([None, 1])), symmetric=symmetric)
    qw = (nf.ternarize if ternary else nf.binarize)(w, axis=data.draw(st.sampled_from([None, 0])))
    got = nf.lowbit_weight_matmul(qx, qw)
    q = np.asarray(nf.decode(qx.codes, qx.fmt)).astype(np.int64)
    if qx.zero_point is not None:
        q = q - np.asarray(qx.zero_point, np.int64)
    wv = np.asarray(nf.decode(qw.codes, qw.fmt)).astype(np.int64)  # -1, 0, +1
    S = q @ wv  # exact in int64
    want = (np.float32(S) * np.asarray(qx.scale)) * np.asarray(qw.scale)
    assert np.array_equal(bit_view(got), bit_view(want))
    # Close to the float product of the dequantized operands (rounding only in the scales).
    ref = np.asarray(qx.dequantize(), np.float64) @ np.asarray(qw.dequantize(), np.float64)
    assert np.allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_lowbit_weight_matmul_jit_vmap():
    x = jax.random.normal(jax.random.key(4), (2, 3, 40))
    w = jax.random.normal(jax.random.key(5), (2, 40, 6))

    def f(a, b):
        return nf.lowbit_weight_matmul(nf.quantize_scaled(a, "int8", axis=1), nf.ternarize(b, axis=0))

    eager = np.stack([np.asarray(f(a, b)) for a, b in zip(x, w)])
    assert np.array_equal(np.asarray(jax.jit(jax.vmap(f))(x, w)), eager)


# ---- log x log ----------------------------------------------------------------------------------


@settings(max_examples=FEWER)
@given(data=st.data(), fmt=st.sampled_from(["log4", "log4_sqrt2", nf.LogFormat("log4_low", 3, emin=-10)]))
def test_log_matmul_equals_the_float_product_where_exact(data, fmt):
    fmt = nf.get(fmt)
    M, K, N = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 200)), data.draw(st.integers(1, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    mode = data.draw(st.sampled_from(["nearest_even", "nearest_log"]))
    # Power-of-two (E8M0) scales keep the dequantized values exact.
    qa = nf.quantize_scaled(a, fmt, axis=1, scale_fmt="e8m0", rounding=mode)
    qb = nf.quantize_scaled(b, fmt, axis=0, scale_fmt="e8m0", rounding=mode)
    got = np.asarray(nf.log_matmul(qa, qb))
    exact = np.asarray(qa.dequantize(), np.float64) @ np.asarray(qb.dequantize(), np.float64)
    if fmt.root == 1:
        # Every product and partial sum is exact in float64 here: the result is it, rounded once.
        assert np.array_equal(bit_view(got), bit_view(exact.astype(np.float32)))
    else:
        # An odd power of sqrt(2) is irrational: close, not equal.
        assert np.allclose(got, exact, rtol=3e-7, atol=1e-6 * np.abs(exact).max())


def test_log_matmul_multiplies_by_adding_exponents():
    # Products of powers of two are exact: 2**3 * 2**-3 = 1 and 2**3 * 2**3 = 64 sum exactly.
    qa = nf.quantize_scaled(np.array([[8.0, 8.0, -0.125]], np.float32), "log4", calibration=8.0)
    qb = nf.quantize_scaled(np.array([[0.125], [8.0], [8.0]], np.float32), "log4", calibration=8.0)
    assert np.asarray(nf.log_matmul(qa, qb)).tolist() == [[1.0 + 64.0 - 1.0]]
    # Base sqrt(2): sqrt2 * sqrt2 is exactly 2 (the float product of float32(sqrt 2) with itself is not).
    s = np.float32(np.sqrt(2))

    def unscaled(v):
        v = np.asarray(v, np.float32)
        return nf.QArray(nf.encode(v, "log4_sqrt2"), jnp.float32(1), fmt=nf.LOG4_SQRT2, scale_fmt=nf.FP32,
                         shape=v.shape, dtype=v.dtype)

    qa, qb = unscaled([[s, s]]), unscaled([[s], [-2 * s]])
    assert np.asarray(qa.dequantize()).tolist() == [[s, s]] and s * s != np.float32(2)
    assert np.asarray(nf.log_matmul(qa, qb)).tolist() == [[2.0 - 4.0]]


def test_log_matmul_jit_and_range_check():
    a = jax.random.normal(jax.random.key(2), (4, 64))
    b = jax.random.normal(jax.random.key(3), (64, 3))

    def f(x, y):
        return nf.log_matmul(nf.quantize_scaled(x, "log4", axis=1), nf.quantize_scaled(y, "log4", axis=0))

    assert np.array_equal(np.asarray(jax.jit(f)(a, b)), np.asarray(f(a, b)))
    batch = jnp.stack([a, 2 * a]), jnp.stack([b, b / 2])
    assert np.array_equal(np.asarray(jax.vmap(f)(*batch)), np.stack([np.asarray(f(p, q)) for p, q in zip(*batch)]))
    q8a, q8b = nf.quantize_scaled(a, "log8", axis=1), nf.quantize_scaled(b, "log8", axis=0)
    with pytest.raises(ValueError, match="more than 31"):
        nf.log_matmul(q8a, q8b)


# ---- bad input ------------------------------------------------------------------------------------


def test_bad_operands_name_the_argument():
    x = np.ones((3, 4), np.float32)
    qa, qb = nf.binarize(x, axis=1), nf.binarize(x.T, axis=0)
    with pytest.raises(TypeError, match="qa must be binarized"):
        nf.binary_matmul(nf.ternarize(x, axis=1), qb)
    with pytest.raises(TypeError, match="qb must be binarized .* got ndarray"):
        nf.binary_matmul(qa, x.T)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        nf.binary_matmul(qa, nf.binarize(np.ones((5, 2), np.float32), axis=0))
    with pytest.raises(ValueError, match="qa's scale must be shared along its contraction axis"):
        nf.binary_matmul(nf.binarize(x, axis=0), qb)
    with pytest.raises(ValueError, match="qb's scale must be shared"):
        nf.binary_matmul(qa, nf.binarize(x.T, axis=1))
    with pytest.raises(ValueError, match="qa must be 2-D"):
        nf.binary_matmul(nf.binarize(np.ones(4, np.float32)), qb)
    with pytest.raises(TypeError, match="qx must be quantized to an integer format of at most 8 bits"):
        nf.lowbit_weight_matmul(nf.quantize_scaled(x, "int16", axis=1), qb)
    with pytest.raises(TypeError, match="qw must be binarized or ternarized"):
        nf.lowbit_weight_matmul(nf.quantize_scaled(x, "int8", axis=1), nf.quantize_scaled(x.T, "int8", axis=0))
    with pytest.raises(TypeError, match="qa must be log-quantized"):
        nf.log_matmul(qa, qb)
    with pytest.raises(ValueError, match="same base"):
        nf.log_matmul(nf.quantize_scaled(x, "log4", axis=1), nf.quantize_scaled(x.T, "log4_sqrt2", axis=0))
