"""Tests of numfmt.intgemm against independent big-int and NumPy int64 references."""

import math
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numfmt as nf
from numfmt import intgemm as ig

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
RNG = np.random.default_rng(7)


# ---- independent references, from the published definitions, on Python ints / Fractions ---------


def ref_quantize_multiplier(real, single=False):
    """TFLite QuantizeMultiplier, on exact rationals: real = q 2**shift, 1/2 <= |q| < 1."""
    if real == 0:
        return 0, 0
    a = abs(Fraction(real))
    shift = a.numerator.bit_length() - a.denominator.bit_length()
    while a / Fraction(2) ** shift >= 1:
        shift += 1
    while a / Fraction(2) ** shift < Fraction(1, 2):
        shift -= 1
    v = a / Fraction(2) ** shift * 2**31
    q = math.floor(v + Fraction(1, 2))  # std::round: ties away from zero (on the magnitude)
    q = -q if real < 0 else q
    if q == 2**31:
        q, shift = 2**30, shift + 1
    if shift < -31:
        return 0, 0
    if single and shift > 30:
        return 2**31 - 1, 30
    return q, shift


def wrap32(v):
    return (v + 2**31) % 2**32 - 2**31


def ref_srdhm(a, b):
    """round(a b / 2**31) with ties toward +inf, saturated: what the nudge-and-truncate computes."""
    if a == b == I32_MIN:
        return I32_MAX
    return math.floor(Fraction(a * b, 2**31) + Fraction(1, 2))


def ref_rdbpot(x, e):
    """x / 2**e rounded to nearest, ties away from zero."""
    v = Fraction(x, 2**e)
    r = math.floor(abs(v) + Fraction(1, 2))
    return -r if v < 0 else r


def ref_mbqm(x, m, shift, single=False):
    if single:
        t = 31 - shift
        return wrap32((x * m + 2 ** (t - 1)) >> t)
    left, right = max(shift, 0), max(-shift, 0)
    return ref_rdbpot(ref_srdhm(wrap32(x * 2**left), m), right)


# ---- quantize_multiplier ----------------------------------------------------------------------------

EDGE_REALS = [0.0, 1e-12, 2.0**-31, 2.0**-32, 1.5 * 2.0**-32, 0.999 * 2.0**-31, 2.0**-20 * 1.3, 2.0**-21,
              2.0**-25 * 1.7, 0.5, 0.75, 1.0, 1.0 - 2.0**-40, 1.5, 3.7, 1000.0, 2.0**30, 2.0**31 * 0.9, 2.0**40,
              0.1, 1 / 3, -0.3, -1.0, -(1 - 2.0**-40), 0.5 + 2.0**-33, 0.5 + 2.0**-32 * 1.5]


@pytest.mark.parametrize("real", EDGE_REALS)
@pytest.mark.parametrize("rounding", ["double", "single"])
def test_quantize_multiplier_edges(real, rounding):
    assert ig.quantize_multiplier(real, rounding=rounding) == ref_quantize_multiplier(real, rounding == "single")


@settings(max_examples=200)
@given(st.floats(2.0**-40, 2.0**40, allow_nan=False))
def test_quantize_multiplier_random(real):
    assert ig.quantize_multiplier(real) == ref_quantize_multiplier(real)


def test_quantize_multiplier_arrays_and_errors():
    m, s = ig.quantize_multiplier([0.25, 3.0, 2.0**-40])
    assert m.dtype == np.int32 and list(zip(m, s)) == [ref_quantize_multiplier(v) for v in (0.25, 3.0, 2.0**-40)]
    with pytest.raises(ValueError, match="finite"):
        ig.quantize_multiplier(float("inf"))
    with pytest.raises(ValueError, match="rounding"):
        ig.quantize_multiplier(0.5, rounding="triple")


# ---- the fixed-point multiply ------------------------------------------------------------------------

EDGE_X = [0, 1, -1, 2, -2, 3, -3, 5, -5, 7, -7, 1000, -1000, 2**20 + 1, -(2**20) - 1, I32_MAX, I32_MIN,
          I32_MAX - 1, I32_MIN + 1, 2**30, -(2**30), 123456789, -123456789]
EDGE_M = [0, 1, 2**30, 2**30 + 1, I32_MAX, I32_MAX - 1, 1518500250, 1073741825, -(2**30), I32_MIN, -1]


def test_srdhm_edges():
    a = np.array([x for x in EDGE_X for _ in EDGE_M], np.int32)
    b = np.array([m for _ in EDGE_X for m in EDGE_M], np.int32)
    got = np.asarray(ig.saturating_rounding_doubling_high_mul(a, b))
    want = [ref_srdhm(int(x), int(m)) for x, m in zip(a, b)]
    assert got.tolist() == want


def test_rdbpot_edges_including_ties():
    xs = np.array(list(range(-40, 41)) + EDGE_X, np.int32)
    for e in (0, 1, 2, 3, 5, 16, 30, 31):
        got = np.asarray(ig.rounding_divide_by_pot(xs, e))
        assert got.tolist() == [ref_rdbpot(int(x), e) for x in xs], e


@pytest.mark.parametrize("real", [0.5, 0.25, 0.125 * 3, 2.0**-20 * 1.3, 2.0**-25, 0.0003, 0.999, 1.0, 1.7, 3.0,
                                  37.5, 2.0**-31, 2.0**-30 * 1.1])
@pytest.mark.parametrize("rounding", ["double", "single"])
def test_multiply_by_quantized_multiplier_edges(real, rounding):
    m, shift = ig.quantize_multiplier(real, rounding=rounding)
    xs = list(range(-64, 65)) + EDGE_X
    if shift > 0:  # keep x * 2**shift in int32 for the ties; wrapping is checked separately
        xs = [x for x in xs if abs(x) < 2 ** (31 - shift)]
    got = np.asarray(ig.multiply_by_quantized_multiplier(np.array(xs, np.int32), m, shift, rounding=rounding))
    want = [ref_mbqm(x, m, shift, rounding == "single") for x in xs]
    assert got.tolist() == want


def test_double_rounding_ties_and_left_shift_wrap():
    # m = 2**30, shift = -1: x / 4 as round(round(x / 2) / 2) -- two ties for x = 2 mod 4 etc.
    xs = np.arange(-20, 21, dtype=np.int32)
    got = np.asarray(ig.multiply_by_quantized_multiplier(xs, 2**30, -1)).tolist()
    assert got == [ref_mbqm(int(x), 2**30, -1) for x in xs]
    assert got[20 + 3] == 1 and got[20 - 3] == -1  # 3/4: 3/2 -> 2 (half up), 2/2 -> 1
    big = np.array([I32_MAX, I32_MIN, 2**29 + 7], np.int32)
    got = np.asarray(ig.multiply_by_quantized_multiplier(big, 2**30, 3)).tolist()
    assert got == [ref_mbqm(int(x), 2**30, 3) for x in big]


@settings(max_examples=100)
@given(st.integers(I32_MIN, I32_MAX), st.floats(2.0**-31, 1.0), st.sampled_from(["double", "single"]))
def test_mbqm_random(x, real, rounding):
    m, shift = ig.quantize_multiplier(real, rounding=rounding)
    got = int(ig.multiply_by_quantized_multiplier(np.int32(x), m, shift, rounding=rounding))
    assert got == ref_mbqm(x, m, shift, rounding == "single")


def test_requantize_clamps_and_activation_ranges():
    acc = np.array([-100000, -5, 0, 5, 100000, 77777], np.int32)
    m, s = ig.quantize_multiplier(0.01)
    y = np.asarray(ig.requantize(acc, m, s, -3, nf.INT8))
    want = [min(127, max(-128, ref_mbqm(int(a), m, s) - 3)) for a in acc]
    assert y.tolist() == want
    lo, hi = ig.activation_range("relu6", 0.05, -3)
    assert (lo, hi) == (-3, -3 + 120)
    y = np.asarray(ig.requantize(acc, m, s, -3, nf.INT8, act_min=lo, act_max=hi))
    assert y.tolist() == [min(hi, max(lo, v)) for v in want]
    assert ig.activation_range("relu", 0.05, 10, nf.UINT8) == (10, 255)
    with pytest.raises(ValueError, match="activation"):
        ig.activation_range("gelu", 0.1, 0)
    with pytest.raises(ValueError, match="shift"):
        ig.multiply_by_quantized_multiplier(acc, m, -40)


# ---- the integer GEMM, layers and convolution against NumPy int64 -------------------------------------


def np_requant(acc, m, shift, zp, lo, hi):
    """The same formulas in NumPy int64 (vectorized, written independently of the JAX code)."""
    acc = acc.astype(np.int64)
    m = np.asarray(m, np.int64)
    shift = np.asarray(shift, np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    x = ((acc * (1 << left)) + 2**31) % 2**32 - 2**31  # the int32 left shift wraps
    ab = x * m
    nudge = np.where(ab >= 0, 2**30, 1 - 2**30)
    v = ab + nudge
    high = np.where(v >= 0, v // 2**31, -((-v) // 2**31))  # C++ division truncates toward zero
    high = np.where((x == I32_MIN) & (m == I32_MIN), I32_MAX, high)
    half = np.where(right > 0, 1 << np.maximum(right - 1, 0), 0)
    mag = (np.abs(high) + half) >> right
    out = np.sign(high) * mag
    return np.clip(out + zp, lo, hi)


def test_int_gemm_matches_int64_reference():
    x = RNG.integers(-128, 128, (7, 50))
    w = RNG.integers(-128, 128, (50, 9))
    zx, zw = 13, RNG.integers(-20, 20, 9)
    bias = RNG.integers(-5000, 5000, 9)
    got = np.asarray(ig.int_gemm(x, w, zx, zw, bias))
    want = (x - zx) @ (w - zw) + bias
    np.testing.assert_array_equal(got, want)


def _float_layer(K=48, N=10, M=16):
    x = RNG.standard_normal((M, K)).astype(np.float32)
    w = (RNG.standard_normal((K, N)) * 0.2).astype(np.float32)
    b = (RNG.standard_normal(N) * 0.1).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_int_linear_bit_exact_and_close_to_float(activation, per_channel):
    x, w, b = _float_layer()
    x_scale, x_zp = float(np.abs(x).max() / 120), 5
    y = x @ w + b
    out_scale = float((y.max() - y.min()) / 250)
    out_zp = round(-125 - float(y.min()) / out_scale)
    layer = ig.prepare_linear(w, b, x_scale=x_scale, x_zero_point=x_zp, out_scale=out_scale, out_zero_point=out_zp,
                              per_channel=per_channel, activation=activation)
    xq = np.asarray(ig.quantize_affine(x, x_scale, x_zp))
    got = np.asarray(ig.int_linear(xq, layer))
    # NumPy int64 reference of the same formulas, un-expanded
    wq = np.asarray(layer.w_q).astype(np.int64)
    acc = (xq.astype(np.int64) - x_zp) @ (wq - np.asarray(layer.w_zero_point)) + np.asarray(layer.bias_q)
    lo, hi = ig.activation_range(activation, out_scale, out_zp)
    want = np_requant(acc, np.asarray(layer.multiplier), np.asarray(layer.shift), out_zp, lo, hi)
    np.testing.assert_array_equal(got, want)
    # and it computes the float layer, to a few output steps
    ref = y if activation is None else np.maximum(y, 0) if activation == "relu" else np.clip(y, 0, 6)
    approx = np.asarray(ig.dequantize_affine(got, out_scale, out_zp))
    assert np.abs(approx - ref).max() < 4 * out_scale


@pytest.mark.parametrize("padding,stride", [("VALID", (1, 1)), ("SAME", (2, 2)), ("SAME", (1, 1))])
def test_int_conv2d_matches_direct_int64_convolution(padding, stride):
    x = RNG.standard_normal((2, 7, 6, 3)).astype(np.float32)
    w = (RNG.standard_normal((3, 3, 3, 4)) * 0.3).astype(np.float32)
    b = (RNG.standard_normal(4) * 0.1).astype(np.float32)
    x_scale, x_zp, out_scale, out_zp = 0.03, -7, 0.05, 3
    layer = ig.prepare_conv2d(w, b, x_scale=x_scale, x_zero_point=x_zp, out_scale=out_scale,
                              out_zero_point=out_zp, activation="relu")
    xq = np.asarray(ig.quantize_affine(x, x_scale, x_zp)).astype(np.int64)
    got = np.asarray(ig.int_conv2d(xq, layer, (3, 3), stride=stride, padding=padding))
    # direct convolution: out-of-bounds taps contribute (q - Zx) = 0
    wq = np.asarray(layer.w_q).astype(np.int64).reshape(3, 3, 3, 4)
    H, W = 7, 6
    if padding == "VALID":
        oh, ow, pt, pl = (H - 3) // stride[0] + 1, (W - 3) // stride[1] + 1, 0, 0
    else:
        oh, ow = -(-H // stride[0]), -(-W // stride[1])
        pt = max((oh - 1) * stride[0] + 3 - H, 0) // 2
        pl = max((ow - 1) * stride[1] + 3 - W, 0) // 2
    acc = np.zeros((2, oh, ow, 4), np.int64)
    for i in range(oh):
        for j in range(ow):
            for di in range(3):
                for dj in range(3):
                    r, c = i * stride[0] + di - pt, j * stride[1] + dj - pl
                    if 0 <= r < H and 0 <= c < W:
                        acc[:, i, j] += (xq[:, r, c, :] - x_zp) @ wq[di, dj]
    acc += np.asarray(layer.bias_q)
    lo, hi = ig.activation_range("relu", out_scale, out_zp)
    want = np_requant(acc, np.asarray(layer.multiplier), np.asarray(layer.shift), out_zp, lo, hi)
    np.testing.assert_array_equal(got, want)


def test_bad_input():
    with pytest.raises(ValueError, match="mismatched"):
        ig.int_gemm(np.ones((2, 3), np.int32), np.ones((4, 2), np.int32), 0, 0)
    with pytest.raises(ValueError, match="out_fmt must be an IntFormat"):
        ig.requantize(np.ones(3, np.int32), 2**30, 0, 0, nf.E4M3)
    with pytest.raises(ValueError, match="^fmt must be an IntFormat"):
        ig.quantize_affine(np.ones(3), 0.5, 0, "e4m3")
    with pytest.raises(ValueError, match="w_fmt must be an IntFormat"):  # float weights would be cast to int32
        ig.prepare_linear(np.ones((4, 2)), x_scale=0.1, x_zero_point=0, out_scale=0.2, out_zero_point=0,
                          w_fmt="e4m3")
    ok = {"x_scale": 0.1, "x_zero_point": 0, "out_scale": 0.2, "out_zero_point": 0}
    for arg, bad, err in [("x_scale", 0.0, ValueError), ("out_scale", -0.2, ValueError), ("x_scale", np.inf, ValueError),
                          ("out_scale", np.nan, ValueError), ("x_scale", "0.1", TypeError), ("x_zero_point", 0.5, TypeError),
                          ("out_zero_point", 128, ValueError), ("out_zero_point", True, TypeError)]:
        with pytest.raises(err, match=f"^{arg} must be"):  # a scale of 0 made every output the zero point
            ig.prepare_linear(np.ones((4, 2)), **{**ok, arg: bad})
    with pytest.raises(ValueError, match="NHWC"):
        ig.im2col(jnp.ones((3, 3)), (2, 2))
    with pytest.raises(ValueError, match="padding"):
        ig.im2col(jnp.ones((1, 3, 3, 1)), (2, 2), padding="FULL")
