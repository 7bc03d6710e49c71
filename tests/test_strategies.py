"""Tests of numfmt.testing.cases and numfmt.testing.strategies: the hard cases, drawn formats, codes and values."""

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numfmt as nf
from numfmt.formats import FloatFormat, IntFormat
from numfmt.testing import cases as nfcases
from numfmt.testing import reference_decode, reference_round
from numfmt.testing import strategies as nfst


def _by_family(cases):
    out = {}
    for case in cases:
        out.setdefault(case.family, []).append(float(case.value))
    return out


@given(nfst.formats())
def test_formats_are_valid_and_small(fmt):
    assert isinstance(fmt, nf.formats.Format)
    assert fmt.bits <= 16


def test_formats_reach_every_special_style_and_ftz():
    # find() raises if no drawn format satisfies the condition.
    from hypothesis import find

    custom = nfst.formats(builtin=False, ints=False)
    for style in ("ieee", "fn", "fnuz", "none"):
        fmt = find(custom, lambda f, s=style: f.specials == s)
        assert isinstance(fmt, FloatFormat)
    assert not find(custom, lambda f: not f.subnormals).subnormals
    assert find(custom, lambda f: f.bias != 2 ** (f.exp_bits - 1) - 1 and f.specials == "ieee")
    assert isinstance(find(nfst.formats(builtin=False, custom=False), lambda f: f.narrow), IntFormat)


def test_formats_needs_some_kind():
    with pytest.raises(ValueError, match="at least one"):
        nfst.formats(builtin=False, custom=False, ints=False)


@given(st.data())
def test_codes_and_values_are_representable(data):
    fmt = data.draw(nfst.formats())
    code = data.draw(nfst.codes(fmt))
    assert 0 <= code < (len(fmt.table) if fmt.kind == "codebook" else 1 << fmt.bits)
    value = data.draw(nfst.values(fmt))
    assert np.isfinite(value)
    if fmt.kind != "codebook":  # a value rounds to itself
        assert reference_decode(reference_round(value, fmt), fmt) == value


def test_cases_for_e4m3_from_float32():
    cases = nfcases.cases_for(nf.E4M3)
    fam = _by_family(cases)
    assert set(fam) <= set(nfcases.FAMILIES)
    assert fam["overflow_threshold"] == [464.0, -464.0]
    assert fam["past_max"] == [480.0, -480.0]
    assert fam["max"] == [448.0, -448.0]
    assert fam["half_min_subnormal"] == [2.0**-10, -(2.0**-10)]
    assert fam["min_subnormal"] == [2.0**-9, -(2.0**-9)]
    assert fam["min_normal"] == [2.0**-6, -(2.0**-6)]
    up = np.nextafter(np.float32(464), np.float32(np.inf))
    assert float(up) in fam["overflow_threshold+ulp"]
    # Every tie between neighbouring positive values but the specific ones: 126 per sign.
    assert len(fam["tie"]) == 2 * 125
    assert 1.0625 in fam["tie"]  # between 1 and 1.125
    assert len(fam["tie-ulp"]) == len(fam["tie+ulp"]) == len(fam["tie"])
    bits = [nfcases.to_bits(c.value) for c in cases]
    assert len(bits) == len(set(bits))
    assert all(c.value.dtype == np.float32 for c in cases)
    nans = [c for c in cases if c.family == "nan"]
    assert len(nans) == 2 and all(np.isnan(c.value) for c in nans)
    # Sorted simplest first: +0 leads, NaN trails.
    assert nfcases.to_bits(cases[0].value) == 0 and np.isnan(cases[-1].value)


def test_cases_for_ties_are_exact_midpoints():
    # At a tie, nearest_even and nearest_away differ exactly when the lower neighbour is even.
    fmt = nf.E5M2
    ties = [c.value for c in nfcases.cases_for(fmt, np.float16) if c.family == "tie"]
    differ = [v for v in ties if reference_round(v, fmt) != reference_round(v, fmt, "nearest_away")]
    assert ties and len(differ) == len(ties) // 2
    for v in ties:
        assert reference_round(v, fmt, "toward_zero") + 1 == reference_round(v, fmt, "nearest_away") or v < 0


def test_cases_for_sources_and_wide_formats():
    fp16_in_bf16 = _by_family(nfcases.cases_for(nf.FP16, ml_dtypes.bfloat16))
    assert 65504.0 in fp16_in_bf16.get("max", []) or "max" not in fp16_in_bf16  # bf16 lacks 65504
    assert fp16_in_bf16["overflow_threshold-ulp"]  # the threshold's bf16 neighbours stand in
    fp32 = nfcases.cases_for(nf.FP32)
    assert 1000 < len(fp32) < 20000  # a sample of the grid, not 2**32 values
    assert float(np.finfo(np.float32).max) in _by_family(fp32)["max"]
    ints = _by_family(nfcases.cases_for(nf.INT8))
    assert {127.5, -128.5} <= set(ints["overflow_threshold"])  # max + 1/2 and min - 1/2
    assert 2.5 in ints["tie"]
    nf4 = _by_family(nfcases.cases_for(nf.NF4))
    assert nf4["tie"]


@settings(max_examples=10)
@given(nfst.formats())
def test_cases_for_any_format(fmt):
    cases = nfcases.cases_for(fmt, np.float16)
    assert {c.family for c in cases} <= set(nfcases.FAMILIES)
    assert {"zero", "inf", "nan"} <= {c.family for c in cases}


@given(st.data())
def test_floats_for_draws_source_scalars(data):
    fmt = data.draw(st.sampled_from([nf.E4M3, nf.BF16, nf.INT4, nf.E8M0]))
    source = data.draw(st.sampled_from([np.float32, np.float16, ml_dtypes.bfloat16]))
    case = data.draw(nfst.floats_for(fmt, source, labelled=True))
    assert case.family in nfcases.FAMILIES
    assert np.asarray(case.value).dtype == np.dtype(source)
    bare = data.draw(nfst.floats_for(fmt, source))
    assert np.asarray(bare).dtype == np.dtype(source)


def test_family_of():
    assert nfcases.family_of(np.float32(464), nf.E4M3) == "tie"
    assert nfcases.family_of(np.float32(448), nf.E4M3) == "grid"
    assert nfcases.family_of(np.float32(470), nf.E4M3) == "overflow_range"
    assert nfcases.family_of(np.float32(1e-4), nf.E4M3) == "underflow_range"
    assert nfcases.family_of(np.float32(0.003), nf.E4M3) == "subnormal_range"
    assert nfcases.family_of(np.float32(1.1), nf.E4M3) == "normal_range"
    assert nfcases.family_of(np.float32(-0.0), nf.E4M3) == "zero"
    assert nfcases.family_of(np.float32(2.5), nf.INT8) == "tie"
    assert nfcases.family_of(np.float32(np.nan), nf.INT8) == "nan"


def test_source_dtype():
    assert nfcases.source_dtype("bf16") == np.dtype(ml_dtypes.bfloat16)
    assert nfcases.source_dtype(np.float16) == np.dtype(np.float16)
    with pytest.raises(ValueError, match="source must be one of"):
        nfcases.source_dtype("fp8")
    with pytest.raises(TypeError, match="source must be"):
        nfcases.source_dtype(np.int32)


def test_simplicity_orders_finite_then_inf_then_nan():
    vals = [np.float32(v) for v in (np.nan, -np.inf, 3.0, -1.0, 1.0, -0.0, 0.0)]
    ordered = sorted(vals, key=nfcases.simplicity)
    assert [float(v) for v in ordered[:4]] == [0.0, -0.0, 1.0, -1.0]
    assert np.isinf(ordered[-2]) and np.isnan(ordered[-1])
    assert Fraction(float(ordered[4])) == 3
