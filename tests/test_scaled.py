"""Tests of numfmt.scaled: QArray, quantize_scaled, MX and NVFP4."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numfmt.formats as F
from numfmt import codec
from numfmt.autodiff import fake_quant
from numfmt.mx import mx_quantize, nvfp4_quantize
from numfmt.scaled import QArray, dequantize, quantize_scaled
from numfmt.scales import pow2_scale_exponent
from tests.hlo_arrays import entry_arrays

MX_ELEMS = ["e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "int8"]


def _block(values, n=32):
    return jnp.asarray(list(values) + [0.0] * (n - len(values)), jnp.float32)


# ---- known answers (OCP MX v1.0 and the reference libraries) ---------------------------------


def test_mxfp4_ties_to_even():
    q = mx_quantize(_block([1.25, 1.75, 4.0]), "e2m1")
    assert float(q.scale[0]) == 1.0
    np.testing.assert_array_equal(q.dequantize(), _block([1.0, 2.0, 4.0]))


def test_all_quarter_block_scale_two_to_minus_four():
    q = mx_quantize(jnp.full((32,), 0.25, jnp.float32), "mxfp4")
    assert float(q.scale[0]) == 2.0**-4
    assert int(q.scale_codes[0]) == 127 - 4  # the E8M0 code
    np.testing.assert_array_equal(q.dequantize(), jnp.full((32,), 0.25))


def test_e2m1_amax_seven_scale_one_and_clamps_to_six():
    q = mx_quantize(_block([7.0, -7.0, 0.5]), "e2m1")
    assert float(q.scale[0]) == 1.0
    np.testing.assert_array_equal(q.dequantize()[:3], [6.0, -6.0, 0.5])


def test_mxint8_fixed_point_elements():
    q = mx_quantize(_block([1.0, 1 / 128, 3 / 128]), "mxint8")
    assert float(q.scale[0]) == 1.0 and q.elem_scale == 2.0**-6
    np.testing.assert_array_equal(q.codes[:3], [64, 0, 2])
    np.testing.assert_array_equal(q.dequantize(), _block([1.0, 0.0, 1 / 32]))


def test_mxfp4_64x64_nbytes():
    q = mx_quantize(jnp.ones((64, 64), jnp.float32), "e2m1")
    assert q.nbytes == 2048 + 128
    assert q.bits_per_value == 4.25
    assert q.scale.shape == (64, 2) and q.codes.shape == (64, 64)
    assert q.packed_codes().shape == (2048,)


def test_nbytes_of_other_layouts():
    x = jnp.ones((64, 64), jnp.float32)
    assert mx_quantize(x, "e3m2").nbytes == 64 * 64 * 6 // 8 + 128
    assert quantize_scaled(x, "int8", axis=1).nbytes == 4096 + 64 * 4
    assert quantize_scaled(x, "uint4", axis=1, symmetric=False).nbytes == 2048 + 64 * 4 + 32
    assert nvfp4_quantize(x).nbytes == 2048 + 256 + 4


@pytest.mark.parametrize("elem", MX_ELEMS)
def test_mx_matches_gfloat_quantize_block(elem):
    pytest.importorskip("gfloat")
    import gfloat.formats as gff
    from gfloat.block import compute_scale_amax, quantize_block

    fi = {"e4m3": gff.format_info_mxfp8_e4m3, "e5m2": gff.format_info_mxfp8_e5m2,
          "e3m2": gff.format_info_mxfp6_e3m2, "e2m3": gff.format_info_mxfp6_e2m3,
          "e2m1": gff.format_info_mxfp4_e2m1, "int8": gff.format_info_mxint8}[elem]
    rng = np.random.default_rng(7)
    mags = 2.0 ** rng.integers(-20, 20, size=(24, 1))
    x = (rng.standard_normal((24, 32)) * mags).astype(np.float32)
    x[3, :] = 0.0
    x[5, 7] = 0.0
    ours = np.asarray(mx_quantize(jnp.asarray(x), elem).dequantize())
    ref = np.stack([quantize_block(fi, x[i].astype(np.float64), compute_scale_amax) for i in range(24)])
    np.testing.assert_array_equal(ours, ref.astype(np.float32))


def test_nvfp4_exact_case_and_structure():
    row0 = 448 * np.array([6, 4, 3, 2, 1.5, 1, 0.5, 0] + [0] * 8)
    row1 = np.array([-6, 4, -3, 2, 1.5, 1, 0.5, 0] + [0] * 8)
    x = jnp.asarray(np.stack([row0, row1]), jnp.float32)
    q = nvfp4_quantize(x)
    assert float(q.tensor_scale) == 1.0  # amax 2688 = 448 * 6
    np.testing.assert_array_equal(q.scale[:, 0], [448.0, 1.0])
    np.testing.assert_array_equal(q.dequantize(), x)
    rng = np.random.default_rng(0)
    y = jnp.asarray(rng.standard_normal((8, 64)) * 2.0 ** rng.integers(-8, 8, (8, 1)), jnp.float32)
    q = nvfp4_quantize(y)
    assert q.scale.shape == (8, 4) and q.scale_fmt == F.E4M3 and q.fmt == F.E2M1
    np.testing.assert_array_equal(codec.quantize(q.scale, F.E4M3), q.scale)  # E4M3 values
    err = np.abs(np.asarray(q.dequantize() - y)).reshape(8, 4, 16)
    amax = np.abs(np.asarray(y)).reshape(8, 4, 16).max(-1, keepdims=True)
    assert np.all(err <= amax / 6)  # within one E2M1 step at the block's top binade (scale rounding)


# ---- scale rounding policies -----------------------------------------------------------------


def _ref_exponent(amax: float, elem_max: float, elem_emax: int, policy: str) -> int:
    a = Fraction(amax)
    fl = math.floor(math.log2(a.numerator) - math.log2(a.denominator))
    while Fraction(2) ** fl > a:
        fl -= 1
    while Fraction(2) ** (fl + 1) <= a:
        fl += 1
    if policy == "floor":
        return fl - elem_emax
    target = a / Fraction(elem_max)
    e = fl - elem_emax - 2
    while Fraction(2) ** (e + 1) < target:
        e += 1
    # now 2**e < target <= 2**(e+1)
    if policy == "ceil":
        return e + 1
    lo, hi = Fraction(2) ** e, Fraction(2) ** (e + 1)
    if target - lo < hi - target:
        return e
    if target - lo > hi - target:
        return e + 1
    return e if (e + 127) % 2 == 0 else e + 1


@settings(deadline=None)
@given(
    amax=st.floats(min_value=2.0**-100, max_value=2.0**100, width=32),
    elem=st.sampled_from(["e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "int8"]),
    policy=st.sampled_from(["floor", "ceil", "nearest"]),
)
def test_pow2_scale_exponent_matches_exact_arithmetic(amax, elem, policy):
    fmt = F.get(elem)
    emax = fmt.emax if isinstance(fmt, F.FloatFormat) else 6
    e = pow2_scale_exponent(jnp.float32(amax), float(fmt.max), emax, policy, F.E8M0)
    assert int(e) == _ref_exponent(amax, float(fmt.max), emax, policy)


def test_nearest_scale_ties_and_ceil_nothing_clips():
    # c / max_elem = 3 * 2**-2 exactly: a tie between 2**-1 and 2**0; E8M0 code 127 is odd.
    assert int(pow2_scale_exponent(jnp.float32(4.5), 6.0, 2, "nearest", F.E8M0)) == -1
    x = jnp.asarray(np.random.default_rng(1).standard_normal((16, 32)), jnp.float32)
    for elem in MX_ELEMS:
        q = mx_quantize(x, elem, scale_rounding="ceil")
        fmt = F.get(elem)
        top = float(fmt.max) * (2.0**-6 if elem == "int8" else 1.0)
        y = np.abs(np.asarray(x)).reshape(16, 1, 32) / np.asarray(q.scale)[:, :, None]
        assert np.all(y <= top)


# ---- properties ---------------------------------------------------------------------------

_mag = st.one_of(st.just(0.0), st.floats(min_value=2.0**-40, max_value=2.0**40))
_signed = st.builds(lambda m, s: -m if s else m, _mag, st.booleans())


def _half_step(y, fmt):
    """Half the gap of fmt's grid around |y| (no clipping)."""
    if isinstance(fmt, F.IntFormat):
        return np.full_like(y, 0.5)
    a = np.abs(y.astype(np.float64))
    e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    e = np.maximum(e, fmt.emin)
    return 0.5 * 2.0 ** (e - fmt.man_bits)


@settings(deadline=None)
@given(vals=st.lists(_signed, min_size=64, max_size=64), elem=st.sampled_from(MX_ELEMS))
def test_error_at_most_half_a_step_of_its_block(vals, elem):
    x = np.asarray(vals, np.float32).reshape(2, 32)
    q = mx_quantize(jnp.asarray(x), elem, scale_rounding="ceil")  # ceil: nothing clips
    fmt = F.get(elem)
    scale = np.repeat(np.asarray(q.scale, np.float64), 32, axis=1) * q.elem_scale
    y = x / scale
    err = np.abs(np.asarray(q.dequantize(), np.float64) - x)
    assert np.all(err <= _half_step(y, fmt) * scale)


@settings(deadline=None)
@given(vals=st.lists(_signed, min_size=24, max_size=24), fmt=st.sampled_from(["int8", "int4", "int8_narrow"]))
def test_int_error_half_step_with_fp32_scales(vals, fmt):
    x = np.asarray(vals, np.float32).reshape(3, 8)
    q = quantize_scaled(jnp.asarray(x), fmt, axis=1)
    s = np.asarray(q.scale, np.float64)
    err = np.abs(np.asarray(q.dequantize(), np.float64) - x)
    assert np.all(err <= 0.5 * s * (1 + 2.0**-20))


@settings(deadline=None)
@given(vals=st.lists(_signed, min_size=30, max_size=30),
       case=st.sampled_from([("uint8", "fp32"), ("int8", "bf16"), ("uint4", "e8m0"), ("int4", "fp32")]))
def test_affine_maps_zero_exactly(vals, case):
    fmt, scale_fmt = case
    x = np.asarray(vals, np.float32).reshape(3, 10)
    x[:, ::3] = 0.0
    q = quantize_scaled(jnp.asarray(x), fmt, axis=1, symmetric=False, scale_fmt=scale_fmt)
    f = F.get(fmt)
    zp = np.asarray(q.zero_point)
    assert zp.dtype == np.int32 and np.all((f.min <= zp) & (zp <= f.max))
    deq = np.asarray(q.dequantize())
    assert np.all(deq[:, ::3] == 0.0)
    assert np.all(np.isfinite(deq))


def test_affine_error_bound_and_formula():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(-1, 3, (4, 50)), jnp.float32)
    q = quantize_scaled(x, "uint8", axis=1, symmetric=False)
    s, z = np.asarray(q.scale), np.asarray(q.zero_point)
    np.testing.assert_array_equal(np.asarray(q.dequantize()), s * (np.asarray(q.codes, np.float32) - z.astype(np.float32)))
    assert np.all(np.abs(np.asarray(q.dequantize() - x)) <= 0.5 * s * (1 + 1e-5) + 1e-7)


@settings(deadline=None)
@given(vals=st.lists(_signed, min_size=4 * 32, max_size=4 * 32),
       case=st.sampled_from([("int8", "fp32"), ("e4m3", "e8m0"), ("e2m1", "e4m3"), ("nf4", "fp32")]))
def test_per_channel_equals_per_tensor_of_each_slice(vals, case):
    fmt, scale_fmt = case
    x = jnp.asarray(np.asarray(vals, np.float32).reshape(4, 32))
    q = quantize_scaled(x, fmt, axis=1, scale_fmt=scale_fmt)
    for i in range(4):
        qi = quantize_scaled(x[i], fmt, scale_fmt=scale_fmt)
        np.testing.assert_array_equal(q.codes[i], qi.codes)
        np.testing.assert_array_equal(q.dequantize()[i], qi.dequantize())


def test_per_channel_along_axis_zero_equals_columns():
    x = jnp.asarray(np.random.default_rng(8).standard_normal((16, 6)), jnp.float32)
    q = quantize_scaled(x, "int4", axis=0)
    assert q.scale.shape == (1, 6)
    for j in range(6):
        np.testing.assert_array_equal(q.dequantize()[:, j], quantize_scaled(x[:, j], "int4").dequantize())


def test_block_along_axis_zero_and_3d():
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((64, 3, 5)), jnp.float32)
    q = mx_quantize(x, "e4m3", axis=0)
    assert q.scale.shape == (2, 3, 5)
    ref = mx_quantize(jnp.moveaxis(x, 0, -1), "e4m3")
    np.testing.assert_array_equal(jnp.moveaxis(q.dequantize(), 0, -1), ref.dequantize())


def test_qarray_through_jit_vmap_and_tree_map():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((6, 64)), jnp.float32)
    q = mx_quantize(x, "e2m1")
    qj = jax.jit(lambda a: mx_quantize(a, "e2m1"))(x)
    assert isinstance(qj, QArray) and qj.nbytes == q.nbytes
    np.testing.assert_array_equal(qj.codes, q.codes)
    np.testing.assert_array_equal(jax.jit(dequantize)(q), q.dequantize())
    np.testing.assert_array_equal(jax.jit(lambda t: t.dequantize(jnp.bfloat16))(q), q.dequantize(jnp.bfloat16))
    # vmap over rows: each row quantized on its own equals per-channel along axis 1
    rows = jax.vmap(lambda r: quantize_scaled(r, "int8").dequantize())(x)
    np.testing.assert_array_equal(rows, quantize_scaled(x, "int8", axis=1).dequantize())
    qb = jax.vmap(lambda r: mx_quantize(r, "e4m3"))(x)
    assert qb.codes.shape == (6, 64) and qb.scale.shape == (6, 2)
    np.testing.assert_array_equal(jax.vmap(dequantize)(qb), mx_quantize(x, "e4m3").dequantize())
    leaves = jax.tree_util.tree_leaves(q)
    assert len(leaves) == 2  # codes and scale; no zero point or tensor scale
    doubled = jax.tree_util.tree_map(lambda a: a, q)
    assert isinstance(doubled, QArray) and doubled.fmt == q.fmt


def test_half_and_bfloat16_inputs_keep_dtype():
    x = jnp.asarray(np.linspace(-3, 3, 64), jnp.bfloat16)
    q = mx_quantize(x, "e4m3")
    assert q.dequantize().dtype == jnp.bfloat16
    np.testing.assert_array_equal(q.dequantize(jnp.float32), mx_quantize(x.astype(jnp.float32), "e4m3").dequantize())


def test_nf4_blockwise_like_qlora():
    x = jnp.asarray(np.random.default_rng(4).standard_normal((4, 64)), jnp.float32)
    q = quantize_scaled(x, "nf4", axis=1, block_size=64)
    np.testing.assert_allclose(q.scale[:, 0], jnp.max(jnp.abs(x), axis=1))
    table = np.asarray(F.NF4.table, np.float32)
    np.testing.assert_array_equal(q.dequantize(), table[np.asarray(q.codes)] * np.asarray(q.scale))


def test_calibration_given_values_and_observer():
    from numfmt.calibration import minmax_init, minmax_update

    x = jnp.asarray([[0.5, -2.0, 1.0, 3.0]], jnp.float32)
    q = quantize_scaled(x, "int8", calibration=1.0)  # clip at 1: 3.0 and -2.0 saturate
    assert float(q.scale) == np.float32(1.0) / 127
    np.testing.assert_array_equal(q.codes, [[64, 128, 127, 127]])  # int8 keeps -128
    q = quantize_scaled(x, "int8_narrow", calibration=1.0)
    np.testing.assert_array_equal(q.codes, [[64, 129, 127, 127]])
    st_ = minmax_update(minmax_init(), x)
    qa = quantize_scaled(x, "uint8", symmetric=False, calibration=st_)
    qb = quantize_scaled(x, "uint8", symmetric=False)
    np.testing.assert_array_equal(qa.dequantize(), qb.dequantize())


# ---- special values and bad input ------------------------------------------------------------


def test_zero_and_nan_blocks_with_nonfinite_ignore_never_give_nan_or_inf_scales():
    # numfmt's rule before the OCP one became the default, kept by name: nonfinite="ignore".
    x = np.zeros((4, 32), np.float32)
    x[1, :] = np.nan
    x[2, 3] = np.nan
    x[2, 4] = 2.0
    x[3, 0] = np.inf
    x[3, 1] = 1.0
    for elem in MX_ELEMS:
        q = mx_quantize(jnp.asarray(x), elem, nonfinite="ignore")
        s = np.asarray(q.scale)
        assert np.all(np.isfinite(s)) and np.all(s > 0)
        assert s[0, 0] == 2.0**-127 and s[1, 0] == 2.0**-127
        assert int(q.scale_codes[0, 0]) == 0  # the smallest E8M0 code
        d = np.asarray(q.dequantize())
        assert np.all(d[0] == 0)
        fmt = F.get(elem)
        np.testing.assert_array_equal(d[2, 4], 2.0)  # the NaN does not move the scale
        if fmt.has_nan:
            assert np.isnan(d[2, 3])
        else:
            assert d[2, 3] == 0.0
        assert d[3, 0] == (np.inf if fmt.has_inf else float(fmt.max) * q.elem_scale * float(q.scale[3, 0]))
    for fmt, sf in [("int8", "fp32"), ("e4m3", "bf16"), ("e2m1", "e4m3")]:
        q = quantize_scaled(jnp.asarray(x), fmt, axis=1, scale_fmt=sf, nonfinite="ignore")
        assert np.all(np.isfinite(np.asarray(q.scale))) and np.all(np.asarray(q.scale) > 0)
        assert float(q.scale[0, 0]) == 1.0
    q = nvfp4_quantize(jnp.zeros((2, 16), jnp.float32))
    assert float(q.tensor_scale) == 1.0 and np.all(np.asarray(q.scale) == 1.0)
    assert np.all(np.asarray(q.dequantize()) == 0)


def test_e8m0_scale_overflow_and_underflow_clamp():
    big = jnp.full((32,), 3.4e38, jnp.float32)
    q = mx_quantize(big, "int8", scale_rounding="ceil")  # would need 2**128
    assert float(q.scale[0]) == 2.0**127
    np.testing.assert_array_equal(q.dequantize(), jnp.full((32,), 127 / 64 * 2.0**127))
    q = mx_quantize(big, "e2m1")  # floor rule: 2**125, and 3.4e38 / 2**125 = 7.99 clamps to 6
    assert float(q.scale[0]) == 2.0**125
    np.testing.assert_array_equal(q.dequantize(), jnp.full((32,), 6 * 2.0**125))
    tiny = jnp.full((32,), 2.0**-120, jnp.float32)
    q = mx_quantize(tiny, "e4m3")  # would need 2**-128
    assert float(q.scale[0]) == 2.0**-127
    np.testing.assert_array_equal(q.dequantize(), tiny)


def test_bad_block_size_and_axis():
    x = jnp.ones((4, 48), jnp.float32)
    for bad in (0, -32):
        with pytest.raises(ValueError, match="block_size must be a positive int"):
            quantize_scaled(x, "int8", axis=1, block_size=bad)
    with pytest.raises(TypeError, match="block_size must be a positive int or None"):
        quantize_scaled(x, "int8", axis=1, block_size=2.5)
    with pytest.raises(ValueError, match="block_size=32 does not divide axis 1 of length 48"):
        mx_quantize(x, "e4m3")
    with pytest.raises(ValueError, match="block_size needs one axis"):
        quantize_scaled(x, "int8", block_size=4)
    with pytest.raises(ValueError, match="axis=2 is out of range for an array of 2 dimension"):
        quantize_scaled(x, "int8", axis=2)
    with pytest.raises(ValueError, match="axis=-3 is out of range"):
        mx_quantize(jnp.ones((4, 32)), "e4m3", axis=-3)
    with pytest.raises(ValueError, match="repeated axes"):
        quantize_scaled(x, "int8", axis=(1, -1))
    with pytest.raises(TypeError, match="axis must be an int"):
        mx_quantize(jnp.ones((4, 32)), "e4m3", axis=(0, 1))


def test_bad_formats_and_options():
    x = jnp.ones((2, 32), jnp.float32)
    with pytest.raises(ValueError, match="elem must be an MX element format"):
        mx_quantize(x, "uint8")
    with pytest.raises(ValueError, match="elem must be an MX element format"):
        mx_quantize(x, "nf4")
    with pytest.raises(ValueError, match="unknown format"):
        mx_quantize(x, "e9m9")
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        mx_quantize(jnp.ones((2, 32), jnp.int32), "e4m3")
    with pytest.raises(ValueError, match="scale_rounding must be one of"):
        mx_quantize(x, "e4m3", scale_rounding="round")
    with pytest.raises(ValueError, match="symmetric=False .* needs an IntFormat"):
        quantize_scaled(x, "e4m3", symmetric=False)
    with pytest.raises(TypeError, match="scale_fmt must be a float format"):
        quantize_scaled(x, "int8", scale_fmt="int8")
    with pytest.raises(ValueError, match="calibration must be one of"):
        quantize_scaled(x, "int8", calibration="minmax")
    with pytest.raises(ValueError, match="unknown rounding"):
        quantize_scaled(x, "int8", rounding="banker")
    with pytest.raises(TypeError, match="q must be a QArray"):
        dequantize(x)


@pytest.mark.parametrize("case", ["uint8 affine rows", "uint8 affine tensor", "int8 columns", "fake int8 columns",
                                  "int8 rows", "mx e4m3"])
def test_scaled_quantization_materializes_nothing_of_the_input_size(case):
    # Calibration and the fast/exact choice reduce x without writing an array of its size
    # (magnitude bits or ordered keys as a lax.cond operand, or a lone reduce that XLA's CPU
    # backend turns into a materialized tree of windows, each cost a copy's time); the
    # element loop, inside its conditional, writes the one output.
    f = {"uint8 affine rows": lambda a: quantize_scaled(a, "uint8", axis=1, symmetric=False),
         "uint8 affine tensor": lambda a: quantize_scaled(a, "uint8", symmetric=False),
         "int8 columns": lambda a: quantize_scaled(a, "int8", axis=0),
         "fake int8 columns": lambda a: fake_quant(a, "int8", granularity="channel", axis=0),
         "int8 rows": lambda a: quantize_scaled(a, "int8", axis=1),
         "mx e4m3": lambda a: mx_quantize(a, "e4m3")}[case]
    x = jnp.asarray(np.random.default_rng(0).standard_normal((64, 256)), jnp.float32)
    full = entry_arrays(jax.jit(f).lower(x).compile().as_text(), [x.size])
    assert full == [("conditional", "f32" if case.startswith("fake") else "u8")], full


@pytest.mark.parametrize("case", ["nvfp4", "int8_columns", "int8_columns_ignore", "e4m3_blocks_axis0", "uint8_affine_rows",
                                  "uint8_affine_columns", "uint8_affine_tensor_ignore"])
def test_vmap_over_arrays_whose_scale_paths_differ(case):
    # Under vmap a lax.cond with a batched predicate becomes a select of both branches
    # with every captured operand batched (lax.reduce has no rule for a batched initial
    # value, which a captured one was). The items take different paths (one with
    # subnormal data, one with a NaN): the batch must equal the items quantized alone.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 32, 64)).astype(np.float32)
    x[1] *= np.float32(1e-30)
    x[1, 0, 0] = np.float32(1e-40)
    x[2, 5, 7] = np.nan
    fn = {"nvfp4": lambda a: nvfp4_quantize(a),
          "int8_columns": lambda a: quantize_scaled(a, "int8", axis=0),
          "int8_columns_ignore": lambda a: quantize_scaled(a, "int8", axis=0, nonfinite="ignore"),
          "e4m3_blocks_axis0": lambda a: quantize_scaled(a, "e2m1", axis=0, block_size=16, scale_fmt="e4m3"),
          "uint8_affine_rows": lambda a: quantize_scaled(a, "uint8", axis=1, symmetric=False),
          "uint8_affine_columns": lambda a: quantize_scaled(a, "uint8", axis=0, symmetric=False, nonfinite="ignore"),
          "uint8_affine_tensor_ignore": lambda a: quantize_scaled(a, "uint8", symmetric=False, nonfinite="ignore"),
          }[case]
    batched = np.asarray(jax.vmap(lambda a: fn(a).dequantize())(jnp.asarray(x)))
    alone = np.stack([np.asarray(fn(jnp.asarray(v)).dequantize()) for v in x])
    np.testing.assert_array_equal(batched.view(np.uint32), alone.view(np.uint32))


@pytest.mark.parametrize("shape", [(0,), (0, 32), (4, 0), (2, 0, 64)])
@pytest.mark.parametrize(
    "quantizer",
    [
        lambda x: mx_quantize(x, "e4m3"),
        lambda x: mx_quantize(x, "e2m1", rounding="stochastic", key=jax.random.key(0)),
        nvfp4_quantize,
        lambda x: quantize_scaled(x, "int8"),
        lambda x: quantize_scaled(x, "int8", axis=-1),
        lambda x: quantize_scaled(x, "int8", axis=-1, block_size=32),
        lambda x: quantize_scaled(x, "uint8", symmetric=False),
        lambda x: quantize_scaled(x, "int8", axis=0),
        lambda x: quantize_scaled(x, "uint8", axis=0, symmetric=False),
        lambda x: mx_quantize(x, "e4m3", axis=0) if x.shape[0] == 0 else mx_quantize(x, "e4m3"),
    ],
    ids=["mxfp8", "mxfp4_stochastic", "nvfp4", "tensor", "channel", "block", "affine", "column", "affine_column",
         "mx_axis0"],
)
def test_empty_arrays_give_empty_results(quantizer, shape):
    """An empty x has no groups (or empty ones): eagerly and under jit, the result is an
    empty QArray of x's shape, not an error from reading a scale that does not exist
    (MX once raised an IndexError here)."""
    x = jnp.zeros(shape, jnp.float32)
    for f in (quantizer, jax.jit(quantizer)):
        q = f(x)
        assert q.codes.shape == shape and q.dequantize().shape == shape
        assert q.dequantize().dtype == jnp.float32
