"""Scaled quantization against the exact oracle, on subnormal and near-subnormal data.

XLA on CPU flushes subnormal operands and results of float arithmetic to zero, and
turns a division by a broadcast scale into a multiplication by its reciprocal; a GPU
does neither. numfmt applies scales on the bits, so both give the exact results
checked here. Each reference is written on Fractions from the documented rules
(docs/scaled.md) with numfmt.testing's scalar oracle doing every rounding.
"""

import functools
import itertools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import numfmt.formats as F
from numfmt import calibration as cal
from numfmt.autodiff import fake_quant
from numfmt.matmul import OperandSpec, _quantize_operand
from numfmt.mx import mx_quantize, nvfp4_quantize
from numfmt.rounding import hash_bits
from numfmt.scaled import quantize_scaled
from numfmt.scheme import mx_scheme
from numfmt.testing import reference_decode, reference_round

TINY = Fraction(2) ** -126


def rne(frac, fmt=F.FP32, mode="nearest_even", saturate=False) -> Fraction:
    """``frac`` rounded once into ``fmt`` (the oracle), as an exact Fraction."""
    return Fraction(reference_decode(reference_round(frac, fmt, mode, saturate=saturate), fmt))


def f32(frac: Fraction) -> np.float32:
    return np.float32(float(frac))  # frac is a float32 value here: exact


def floor_log2(a: Fraction) -> int:
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    return e


def near_subnormal_data(seed: int, shape, spread: int = 40) -> np.ndarray:
    """Groups of values from about ``2**-150`` to ``2**-100``, with exact subnormal bit
    patterns, zeros, a few ordinary values and both signs."""
    rng = np.random.default_rng(seed)
    top = rng.integers(-140, -100, size=shape[:-1] + (1,))
    e = top - rng.integers(0, spread, size=shape)
    x = (1 + rng.random(shape)) * np.exp2(e.astype(np.float64))
    x = np.where(rng.random(shape) < 0.15, rng.integers(1, 1 << 23, shape).astype(np.uint32).view(np.float32), x)
    x = np.where(rng.random(shape) < 0.05, 0.0, x)
    x = np.where(rng.random(shape) < 0.03, rng.standard_normal(shape), x)
    return (x * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


def fracs(a):
    return [Fraction(float(v)) for v in np.asarray(a, np.float32).ravel()]


def signed(frac: Fraction, like: float):
    """``frac``, or for a zero the signed float zero of ``like``'s sign (Fractions have no -0)."""
    return frac if frac != 0 else float(np.copysign(0.0, like))


# ---- MX: power-of-two scales, exact quotients ------------------------------------------------------


def ref_mx_block(block, elem, rounding="nearest_even", words=None):
    """(E8M0 scale, codes, values) of one MX block: OCP MX v1.0 §6.3 on Fractions."""
    scheme = mx_scheme(elem)
    _, emax = scheme.elem_range()
    amax = max(abs(v) for v in fracs(block))
    k = -127 if amax == 0 else min(max(floor_log2(amax) - emax, -127), 127)
    codes, values = [], []
    for i, v in enumerate(fracs(block)):
        y = signed(v / Fraction(2) ** k / Fraction(scheme.elem_scale), block[i])
        kw = {} if words is None else {"u": int(words[i])}
        c = reference_round(y, scheme.fmt, rounding, saturate=True, **kw)
        codes.append(c)
        values.append(f32(Fraction(reference_decode(c, scheme.fmt)) * Fraction(scheme.elem_scale) * Fraction(2) ** k))
    return 2.0**k, codes, values


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), elem=st.sampled_from(["e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "int8"]),
       rounding=st.sampled_from(["nearest_even", "up", "odd", "toward_zero", "stochastic"]))
def test_mx_equals_the_exact_reference_near_subnormals(seed, elem, rounding):
    x = near_subnormal_data(seed, (3, 64))
    key = jax.random.key(seed) if rounding == "stochastic" else None
    q = mx_quantize(jnp.asarray(x), elem, rounding=rounding, key=key)
    words = None if key is None else np.asarray(hash_bits(key, (3, 2, 32), jnp.uint32)).reshape(3, 64)
    deq = np.asarray(q.dequantize())
    for r in range(3):
        for b in range(2):
            sl = slice(32 * b, 32 * b + 32)
            scale, codes, values = ref_mx_block(x[r, sl], elem, rounding, None if words is None else words[r, sl])
            assert float(q.scale[r, b]) == scale
            np.testing.assert_array_equal(np.asarray(q.codes[r, sl]), codes)
            np.testing.assert_array_equal(deq[r, sl], values)


def test_issue_example_e2m1_subnormal_input():
    # Subnormal inputs (about 8.8e-39) in a block with E8M0 scale code 1 (2**-126):
    # x / scale = 0.75, a tie that goes to 1.0 (E2M1 code 2), and 0.7486 goes to 0.5.
    # XLA's CPU flush of subnormal operands gave 0 for both.
    block = np.zeros(32, np.float32)
    block[0], block[1], block[2] = 2.0**-124, 0.75 * 2.0**-126, 8.8e-39
    q = mx_quantize(jnp.asarray(block), "e2m1")
    assert int(q.scale_codes[0]) == 1
    np.testing.assert_array_equal(np.asarray(q.codes[1:3]), [2, 1])
    np.testing.assert_array_equal(np.asarray(q.dequantize()[1:3]), [2.0**-126, 2.0**-127])


# ---- FP32 / BF16 / E4M3 scales: correctly rounded quotients and products --------------------------------


def ref_scaled_group(group, fmt, scale_fmt=F.FP32):
    """(scale, codes, values) of one group with a non-power-of-two scale format (docs/scaled.md)."""
    fmt = F.get(fmt)
    elem_max = Fraction(fmt.max)
    amax = max(abs(v) for v in fracs(group))
    if amax == 0:
        s = Fraction(1)
    else:
        s = max(rne(amax / elem_max, scale_fmt, saturate=True), max(Fraction(scale_fmt.min_subnormal), TINY))
    codes, values = [], []
    for v, xv in zip(fracs(group), np.ravel(group)):
        y = signed(rne(v / s), xv)  # the float32 quotient, correctly rounded with gradual underflow
        c = reference_round(y, fmt, saturate=True)
        codes.append(c)
        values.append(f32(rne(Fraction(reference_decode(c, fmt)) * s)))
    return s, codes, values


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1),
       case=st.sampled_from([("int8", "fp32", None), ("int8", "fp32", 1), ("e4m3", "fp32", 1),
                             ("e4m3", "bf16", 1), ("int4", "fp32", 0), ("e2m1", "e4m3", 1)]),
       block=st.sampled_from([None, 16]))
def test_per_tensor_channel_block_equal_the_exact_reference(seed, case, block):
    fmt, scale_fmt, axis = case
    if block is not None:
        axis = 1
    x = near_subnormal_data(seed, (4, 32))
    q = quantize_scaled(jnp.asarray(x), fmt, axis=axis, block_size=block, scale_fmt=scale_fmt)
    deq = np.asarray(q.dequantize())
    sf = F.get(scale_fmt)
    if axis is None:
        groups = [(slice(None), slice(None))]
    elif block is not None:
        groups = [(r, slice(16 * b, 16 * b + 16)) for r in range(4) for b in range(2)]
    elif axis == 1:
        groups = [(r, slice(None)) for r in range(4)]
    else:
        groups = [(slice(None), c) for c in range(32)]
    scales = np.asarray(q.scale)
    for n, g in enumerate(groups):
        s, codes, values = ref_scaled_group(x[g], fmt, sf)
        assert float(scales.ravel()[n] if scales.ndim else scales) == float(s)
        np.testing.assert_array_equal(np.asarray(q.codes[g]).ravel(), codes)
        np.testing.assert_array_equal(deq[g].ravel(), values)


def ref_nvfp4(x):
    """(tensor scale, block scales, values) of NVFP4 (docs/scaled.md), blocks of 16 along the last axis."""
    rows = [[fracs(x[r, 16 * b: 16 * b + 16]) for b in range(x.shape[1] // 16)] for r in range(x.shape[0])]
    amax = max(abs(v) for row in rows for blk in row for v in blk)
    ts = Fraction(1) if amax == 0 else max(rne(amax / 2688), TINY)
    scales, values = [], []
    for row in rows:
        srow, vrow = [], []
        for blk in row:
            c = max(abs(v) for v in blk)
            s = Fraction(1) if c == 0 else max(rne(c / (6 * ts), F.E4M3, saturate=True), Fraction(2) ** -9)
            total = rne(s * ts)
            for v in blk:
                code = reference_round(rne(v / total), F.E2M1, saturate=True)  # values only: no -0 to keep
                vrow.append(f32(rne(rne(Fraction(reference_decode(code, F.E2M1)) * s) * ts)))
            srow.append(float(s))
        scales.append(srow)
        values.append(vrow)
    return float(ts), np.asarray(scales), np.asarray(values, np.float32)


def assert_nvfp4_is_the_reference(x):
    """nvfp4_quantize's tensor scale, block scales and values equal ref_nvfp4's."""
    q = nvfp4_quantize(jnp.asarray(x))
    ts, scales, values = ref_nvfp4(x)
    assert float(q.tensor_scale) == ts
    np.testing.assert_array_equal(np.asarray(q.scale), scales)
    np.testing.assert_array_equal(np.asarray(q.dequantize()), values)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), normal=st.booleans())
def test_nvfp4_equals_the_exact_reference(seed, normal):
    x = near_subnormal_data(seed, (3, 32))
    if normal:  # ordinary data: the tensor scale is not clamped
        x = (x.astype(np.float64) * 2.0**120).astype(np.float32)
    assert_nvfp4_is_the_reference(x)


def test_nvfp4_tensor_scale_is_the_correctly_rounded_quotient():
    # amax / 2688 as a multiplication by the reciprocal is 1 ulp off for about a quarter
    # of random amax values; these are some.
    amax = np.random.default_rng(0).uniform(1, 1000, 400).astype(np.float32)
    want = np.asarray([f32(rne(Fraction(float(a)) / 2688)) for a in amax])
    recip = amax * np.float32(1 / 2688)
    assert np.sum(recip != want) > 20  # the shortcut differs on this data
    got = [float(nvfp4_quantize(jnp.full((16,), a, jnp.float32)).tensor_scale) for a in amax[:60]]
    np.testing.assert_array_equal(got, want[:60])


def test_int8_scales_and_elements_are_correctly_rounded_quotients():
    # c / 127 and x / s computed as x * (1 / s) differ from the quotient in the last bit;
    # where x / s lies near a tie of the integer grid that moves the code.
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, (64, 256)).astype(np.float32)
    q = quantize_scaled(jnp.asarray(x), "int8", axis=1)
    amax = np.max(np.abs(x), axis=1, keepdims=True)
    s = np.asarray([[f32(rne(Fraction(float(a)) / 127))] for a in amax[:, 0]])
    np.testing.assert_array_equal(np.asarray(q.scale), s)
    y = x / s  # NumPy: IEEE division, correctly rounded
    want = np.clip(np.round(y), -128, 127).astype(np.int8).view(np.uint8)
    np.testing.assert_array_equal(np.asarray(q.codes), want)


# ---- calibration, autodiff, matmul operands ------------------------------------------------------


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), axis=st.sampled_from([None, 1, 0]), n=st.sampled_from([32, 300]))
def test_calibration_absmax_and_range_are_exact(seed, axis, n):
    x = near_subnormal_data(seed, (4, n))
    got = np.asarray(cal.calibrate(jnp.asarray(x), "int8", axis=axis))
    np.testing.assert_array_equal(got, np.max(np.abs(x), axis=axis))
    lo, hi = cal.calibrate(jnp.asarray(x), "int8", axis=axis, symmetric=False)
    np.testing.assert_array_equal(lo, np.minimum(np.min(x, axis=axis), 0))
    np.testing.assert_array_equal(hi, np.maximum(np.max(x, axis=axis), 0))


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), elem=st.sampled_from(["e4m3", "e2m1", "int8"]))
def test_fake_quant_values_and_clipped_gradient_are_exact(seed, elem):
    x = near_subnormal_data(seed, (2, 32))
    y = fake_quant(jnp.asarray(x), elem, granularity="block", axis=1, block_size=32, scale_fmt=F.E8M0)
    want = np.asarray([ref_mx_block(x[r], "int8" if elem == "int8" else elem)[2] for r in range(2)], np.float32)
    if elem == "int8":  # plain int8 elements here (no MX fixed point): a different reference
        want = np.asarray(mx_like_int8(x), np.float32)
    np.testing.assert_array_equal(np.asarray(y), want)
    g = jax.grad(lambda v: jnp.sum(fake_quant(v, "e4m3", granularity="channel", axis=1, clipped=True)))(jnp.asarray(x))
    # Inside each row's range [-448 s, 448 s] (the float32 products): the row's absmax
    # itself can lie outside when s = amax / 448 was rounded down.
    top = np.asarray([[float(rne(448 * ref_scaled_group(x[r], "e4m3")[0]))] for r in range(2)], np.float32)
    np.testing.assert_array_equal(np.asarray(g), (np.abs(x) <= top).astype(np.float32))


def mx_like_int8(x):
    """int8 elements (not fixed point) with E8M0 floor scales: 2**(floor(log2 amax) - 6)."""
    out = []
    for row in x:
        amax = max(abs(v) for v in fracs(row))
        k = -127 if amax == 0 else max(floor_log2(amax) - 6, -127)
        out.append([f32(Fraction(reference_decode(reference_round(v / Fraction(2) ** k, F.INT8, saturate=True),
                                                  F.INT8)) * Fraction(2) ** k) for v in fracs(row)])
    return out


@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1))
def test_matmul_operands_equal_the_exact_reference(seed):
    x = near_subnormal_data(seed, (2, 32))
    mx = OperandSpec(F.E4M3, granularity="block", block_size=32, scale_fmt=F.E8M0)
    deq = np.asarray(_quantize_operand(jnp.asarray(x)[None], mx, None).deq)[0]
    np.testing.assert_array_equal(deq, [ref_mx_block(x[r], "e4m3")[2] for r in range(2)])
    per_tensor = OperandSpec(F.E4M3, granularity="tensor")
    deq = np.asarray(_quantize_operand(jnp.asarray(x), per_tensor, None).deq)
    np.testing.assert_array_equal(deq.ravel(), ref_scaled_group(x, "e4m3")[2])
    nv = OperandSpec(F.E2M1, granularity="block", block_size=16, scale_fmt=F.E4M3, two_level=True)
    deq = np.asarray(_quantize_operand(jnp.asarray(x)[None], nv, None).deq)[0]
    np.testing.assert_array_equal(deq, ref_nvfp4(x)[2])


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1),
       case=st.sampled_from(["mx_e4m3", "mx_e2m1", "mx_int8", "nvfp4", "int8_channel", "e4m3_block", "bf16_scale",
                             "uint8_affine"]),
       rounding=st.sampled_from(["nearest_even", "stochastic"]))
def test_fast_and_exact_passes_agree(seed, case, rounding):
    # One subnormal input sends the whole array down the exact path (on the bits); the
    # other values must come out as the fast path (the float unit) gives them without it.
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((4, 64)) * 2.0 ** rng.integers(-20, 20, (4, 1))).astype(np.float32)
    y = x.copy()
    j = int(np.argmin(np.abs(x[0, :16])))  # not a block's largest: the scales stay as they are
    y[0, j] = 1e-40
    key = jax.random.key(seed) if rounding == "stochastic" else None

    def run(a):
        a = jnp.asarray(a)
        if case.startswith("mx_"):
            q = mx_quantize(a, case[3:], rounding=rounding, key=key)
        elif case == "nvfp4":
            q = nvfp4_quantize(a, rounding=rounding, key=key)
        elif case == "int8_channel":
            q = quantize_scaled(a, "int8", axis=1, rounding=rounding, key=key)
        elif case == "e4m3_block":
            q = quantize_scaled(a, "e4m3", axis=1, block_size=32, rounding=rounding, key=key)
        elif case == "uint8_affine":
            q = quantize_scaled(a, "uint8", axis=1, symmetric=False, rounding=rounding, key=key)
        else:
            q = quantize_scaled(a, "e4m3", axis=1, scale_fmt="bf16", rounding=rounding, key=key)
        return np.asarray(q.codes), np.asarray(q.dequantize()), np.asarray(q.scale)

    (cx, dx, sx), (cy, dy, sy) = run(x), run(y)
    np.testing.assert_array_equal(sx, sy)
    keep = np.ones(x.shape, bool)
    keep[0, j] = False
    np.testing.assert_array_equal(cx[keep], cy[keep])
    np.testing.assert_array_equal(dx[keep], dy[keep])


@pytest.mark.parametrize("case", ["mx_e4m3", "nvfp4", "int8_channel", "unscaled_e4m3"])
def test_quantize_with_cast_writes_the_same_values_in_the_cast_dtype(case):
    # quantize_with(..., cast=bf16) converts inside the element pass (the GPU matmul's bf16
    # route): the same elements and values as without it, converted, on either pass (a
    # subnormal input in the second array sends it down the exact path).
    from numfmt.quantcore import quantize_with
    from numfmt.scheme import NVFP4, QuantScheme, mx_scheme

    scheme = {"mx_e4m3": mx_scheme("e4m3"), "nvfp4": NVFP4, "int8_channel": QuantScheme("int8", axis=1),
              "unscaled_e4m3": QuantScheme("e4m3", scale_fmt=None)}[case]
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 64)) * 2.0 ** rng.integers(-8, 8, (4, 1))).astype(np.float32)
    y = x.copy()
    y[1, 3] = 1e-40
    run = jax.jit(lambda a, c: quantize_with(a, scheme, codes=False, elems=True, values=True, cast=c),
                  static_argnums=1)
    for a in (x, y):
        plain, cast = run(jnp.asarray(a), None), run(jnp.asarray(a), jnp.bfloat16)
        for got, want in ((cast.elems, plain.elems), (cast.values, plain.values)):
            assert got.dtype == jnp.bfloat16
            np.testing.assert_array_equal(np.asarray(got).view(np.uint16),
                                          np.asarray(want.astype(jnp.bfloat16)).view(np.uint16))


@settings(max_examples=8)
@example(seed=5, case="int8", tiny=None, rounding="nearest_even", special=np.nan, nonfinite="propagate")
@example(seed=6, case="e4m3_block", tiny=1e-40, rounding="up", special=np.nan, nonfinite="ignore")
@example(seed=7, case="uint8_affine", tiny=1e-40, rounding="nearest_even", special=-np.inf, nonfinite="ignore")
@given(seed=st.integers(0, 2**32 - 1),
       case=st.sampled_from(["int8", "e4m3_block", "e2m1_bf16_scale", "uint8_affine"]),
       tiny=st.sampled_from([None, 1e-40, 2.0**-149, 3e-39]), rounding=st.sampled_from(["nearest_even", "up"]),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf]), nonfinite=st.sampled_from(["propagate", "ignore"]))
def test_column_groups_equal_row_groups_of_the_transpose(seed, case, tiny, rounding, special, nonfinite):
    # Groups along axis 0 are reduced in stages (numfmt.calibration.reduce_staged; until
    # 2026-11-27 a float max and a whole-array bound of the smallest magnitude); rows in one
    # reduce. The same groups laid out either way must give the same bits, subnormal inputs
    # included (a bound too high would let the fast pass flush them on XLA's CPU: rounded
    # up, a tiny positive input is the smallest element, flushed it is zero), and NaN or
    # inf inputs (XLA's CPU float max reduction drops a NaN: docs/semantics.md, "Backends").
    # The affine case takes its range and extents from one reduction (extent_and_range).
    # 1024 x 6: XLA's CPU backend hands reductions of 4096 elements or more to YNNPACK,
    # whose float max drops NaN; smaller ones keep it.
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((1024, 6)) * 2.0 ** rng.integers(-30, 30, (1, 6))).astype(np.float32)
    if tiny is not None:
        x[int(rng.integers(1024)), int(rng.integers(6))] = np.float32(tiny)
    if special is not None:
        x[rng.integers(1024, size=2), rng.integers(6, size=2)] = special
    kw = {"int8": {"fmt": "int8"}, "e4m3_block": {"fmt": "e4m3", "block_size": 32},
          "e2m1_bf16_scale": {"fmt": "e2m1", "scale_fmt": "bf16"},
          "uint8_affine": {"fmt": "uint8", "symmetric": False}}[case]
    fmt = kw.pop("fmt")
    kw["nonfinite"] = nonfinite
    cols = quantize_scaled(jnp.asarray(x), fmt, axis=0, rounding=rounding, **kw)
    rows = quantize_scaled(jnp.asarray(x.T), fmt, axis=1, rounding=rounding, **kw)
    np.testing.assert_array_equal(np.asarray(cols.codes), np.asarray(rows.codes).T)
    np.testing.assert_array_equal(np.asarray(cols.scale).view(np.uint32), np.asarray(rows.scale).T.view(np.uint32))
    np.testing.assert_array_equal(np.asarray(cols.dequantize()).view(np.uint32),
                                  np.asarray(rows.dequantize()).T.view(np.uint32))
    gran = "block" if "block_size" in kw else "channel"
    fq = fake_quant(jnp.asarray(x), fmt, rounding, granularity=gran, axis=0, **kw)
    np.testing.assert_array_equal(np.asarray(fq).view(np.uint32), np.asarray(cols.dequantize()).view(np.uint32))


# ---- scales from divisions: the float unit's quotient where every operand is normal ----------------


def midpoint_blocks(rng, n_blocks: int, amax: float):
    """NVFP4 data whose block scales ``c / (6 * ts)`` fall on and one or two ulps beside the
    midpoints between E4M3 values: each block's largest magnitude is the float32 nearest to
    ``mid * 6 * ts`` moved by -2 .. 2 ulps (``ts`` from ``amax``, the tensor's largest)."""
    ts = float(rne(Fraction(amax) / 2688))
    e4m3 = sorted({float(reference_decode(c, F.E4M3)) for c in range(0x01, 0x7F)})  # positive finite
    mids = [(a + b) / 2 for a, b in itertools.pairwise(e4m3)]
    x = rng.uniform(-1, 1, (n_blocks, 16)).astype(np.float32)
    for i in range(n_blocks):
        c = np.float32(mids[rng.integers(0, len(mids))] * 6 * ts)
        c = np.float32(c.view(np.uint32) + np.uint32(2) - np.uint32(rng.integers(0, 5))).view(np.float32)
        x[i] *= c * np.float32(0.99)  # the other values stay below c
        x[i, rng.integers(0, 16)] = c * rng.choice([-1, 1])
    x[0, 0] = np.float32(amax)
    return x.reshape(-1, 64)


@pytest.mark.parametrize("path", ["normal", "exact"])
def test_nvfp4_block_scales_at_e4m3_midpoints(path):
    # Block scales are c / (6 * ts) rounded once into E4M3; on and beside the midpoints a
    # quotient rounded twice (to float32, then to E4M3) or a mode taken from the wrong side
    # of the division's residual rounds to the wrong neighbour. "exact": one block with a
    # subnormal largest value sends the scale choice down the division on the integers.
    from numfmt.scales import clip_range, quotients_normal, tensor_scale
    from numfmt.scheme import NVFP4

    x = midpoint_blocks(np.random.default_rng(7), 256, 1000.0)
    if path == "exact":
        x[-1, -16:] = np.float32(3e-39)
    c = jnp.asarray(np.abs(x).reshape(-1, 16).max(axis=1))
    amax, lo, hi = clip_range(c)
    assert bool(quotients_normal(lo, hi, tensor_scale(amax, NVFP4, 6.0), NVFP4, 6.0)) == (path == "normal")
    assert_nvfp4_is_the_reference(x)


def _scale_schemes():
    from numfmt.scheme import NVFP4, QuantScheme

    return {"nvfp4": NVFP4,
            "int8_fp32_nearest": QuantScheme("int8", axis=0, block_size=4),
            "int8_fp32_ceil": QuantScheme("int8", axis=0, block_size=4, scale_rounding="ceil"),
            "int4_fp32_floor": QuantScheme("int4", axis=0, block_size=4, scale_rounding="floor"),
            "e2m1_e4m3": QuantScheme("e2m1", axis=0, block_size=4, scale_fmt="e4m3"),
            "e4m3_bf16_ceil": QuantScheme("e4m3", axis=0, block_size=4, scale_fmt="bf16", scale_rounding="ceil"),
            "fp16_fp32": QuantScheme("fp16", axis=0, block_size=4)}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), case=st.sampled_from(sorted(_scale_schemes())),
       edge=st.integers(-4, 4), low=st.integers(-160, 127), span=st.integers(0, 140), special=st.booleans())
@example(seed=1, case="nvfp4", edge=0, low=-125, span=19, special=False)  # scale * ts just below 2**-126
@example(seed=1, case="nvfp4", edge=0, low=-125, span=135, special=False)  # c / (6 ts) just below 2**-126
@example(seed=1, case="int8_fp32_nearest", edge=0, low=-120, span=0, special=False)  # c / 127 just below it
def test_normal_scale_path_agrees_with_the_exact_one(seed, case, edge, low, span, special):
    # Wherever quotients_normal says the float unit may divide, the scales and divisors it
    # gives equal those of the exact divisions on the integers, bit for bit. The clip
    # values span [2**low, 2**(low + span + 1)), both ends present; half the examples put
    # the low end a few binades from where c / elem_max leaves the normal range (a bound
    # one binade too loose lets a subnormal quotient through there), and NaN, zeros,
    # negative, infinite and subnormal clips are mixed in.
    from numfmt import quantcore
    from numfmt.scales import clip_range, quotients_normal, tensor_scale

    scheme = _scale_schemes()[case]
    elem_max, _ = scheme.elem_range()
    rng = np.random.default_rng(seed)
    if seed % 2:
        low = floor_log2(Fraction(elem_max)) - 126 + edge
    e = rng.integers(low, low + span + 1, 64)
    with np.errstate(over="ignore"):  # past float32: inf, a clip the check must stop
        c = ((1 + rng.random(64)) * np.exp2(e.astype(np.float64))).astype(np.float32)
        c[:2] = np.exp2(np.float64(low)), np.exp2(np.float64(low + span + 1)) * (1 - 2.0**-24)
    if special:
        pick = rng.integers(2, 64, 6)
        c[pick] = np.asarray([np.nan, 0.0, -0.0, -1.5, np.inf, 1e-40], np.float32)[rng.integers(0, 6, 6)]
    c = jnp.asarray(c)
    amax, lo, hi = clip_range(c)
    ts = tensor_scale(amax, scheme, elem_max) if scheme.tensor_scale else None
    fast = jax.jit(functools.partial(quantcore._scales_and_divisor, scheme=scheme, normal=True))
    exact = jax.jit(functools.partial(quantcore._scales_and_divisor, scheme=scheme, normal=False))
    if bool(quotients_normal(lo, hi, ts, scheme, elem_max)):
        for g, w in zip(jax.tree.leaves(fast(c, ts)), jax.tree.leaves(exact(c, ts))):
            assert np.array_equal(np.asarray(g).view(np.uint32), np.asarray(w).view(np.uint32))


def test_normal_scale_path_is_taken_for_ordinary_data_only():
    # The check must let ordinary data through (else nothing gets faster) and stop each
    # kind of clip value the float unit would get wrong.
    from numfmt.scales import clip_range, quotients_normal, tensor_scale

    schemes = _scale_schemes()

    def taken(c, case):
        scheme = schemes[case]
        c = jnp.asarray(np.asarray(c, np.float32))
        elem_max, _ = scheme.elem_range()
        amax, lo, hi = clip_range(c)
        ts = tensor_scale(amax, scheme, elem_max) if scheme.tensor_scale else None
        return bool(quotients_normal(lo, hi, ts, scheme, elem_max))

    ordinary = np.abs(np.random.default_rng(0).standard_normal(64)) * 3 + 0.1
    for case in schemes:
        assert taken(ordinary, case), case
        assert taken(np.concatenate([ordinary, [np.nan, 0.0]]), case), case
        assert taken(np.zeros(4), case), case
        for bad in (1e-40, -1.0, -0.0, np.inf):
            assert not taken(np.concatenate([ordinary, [bad]]), case), (case, bad)
    assert not taken([1e30, 1e-30], "nvfp4")  # c / (6 ts) below the normal range
    assert not taken([2.0**-106, 2.0**-110], "nvfp4")  # a scale of 2**-9 times ts below it
    assert not taken([2.0**-120], "int8_fp32_nearest")  # c / 127 below it
    assert taken([1e-30], "int8_fp32_nearest")
