"""Tests of numfmt.logformat and numfmt.logcodec: the logarithmic formats, against the exact oracle."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numfmt as nf
from numfmt import cli
from numfmt.logformat import LogFormat, rounded_power
from numfmt.testing import reference_round
from numfmt.testing import strategies as nfst
from numfmt.testing.log_reference import power

LOG_FORMATS = [nf.LOG4, nf.LOG8, nf.LOG4_SQRT2, nf.LOG8_SQRT2]
CUSTOM = [
    LogFormat("ulog3", 3, signed=False),
    LogFormat("log2_lo", 1, emin=-5),  # {0, ±2**-5}
    LogFormat("log5_sqrt2_hi", 4, base="sqrt2", emax=40),
    LogFormat("log6_deep", 5, emin=-160),  # reaches below float32's normal range
    LogFormat("ulog4_sqrt2", 4, base="sqrt2", emin=-300, signed=False),  # odd emin, float32 subnormals
]
LINEAR = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd")
MODES = (*LINEAR, "nearest_log")
EXAMPLES = settings().max_examples


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and np.array_equal(a.view(f"uint{8 * a.itemsize}"), b.view(f"uint{8 * b.itemsize}"))


def _check_oracle(x, fmt, mode, **kw):
    codes = np.asarray(nf.encode(x, fmt, mode, **kw)).tolist()
    bad = [(float(v), hex(c), hex(reference_round(v, fmt, mode))) for v, c in zip(x, codes)
           if c != reference_round(v, fmt, mode)]
    assert not bad, f"{fmt.name} {mode}: {bad[:8]}"


# ---- the values are the powers of the base ------------------------------------------------


def _is_nearest(v: float, k: int, r: int, dtype) -> bool:
    """Whether the float ``v`` of ``dtype`` is the nearest to ``2**(k/r)``: ``(v -+ ulp/2)**r`` bracket ``2**k``."""
    lo = np.nextafter(dtype(v), dtype(0))
    hi = np.nextafter(dtype(v), dtype(np.inf))
    below, above = (Fraction(float(v)) + Fraction(float(lo))) / 2, (Fraction(float(v)) + Fraction(float(hi))) / 2
    target = Fraction(2) ** k
    return below**r < target < above**r


@pytest.mark.parametrize("fmt", LOG_FORMATS + CUSTOM, ids=str)
def test_values_are_exactly_the_powers_of_the_base(fmt):
    values = fmt.values()
    r = fmt.root
    powers = values[values > 0]
    assert len(powers) == 2**fmt.exp_bits - 1 == fmt.emax - fmt.emin + 1
    assert np.count_nonzero(values == 0) == 1 and len(values) == (2 * len(powers) if fmt.signed else len(powers)) + 1
    for k, v in zip(range(fmt.emin, fmt.emax + 1), powers):
        if r == 1 or k % 2 == 0:
            assert Fraction(float(v)) == Fraction(2) ** (k // r)  # exact
        else:
            assert _is_nearest(v, k, r, np.float64)  # sqrt(2)**k is irrational: the nearest float64
    assert fmt.max == powers[-1] and fmt.min_normal == powers[0]
    with jax.enable_x64(True):
        decoded = np.asarray(nf.decode(np.arange(2**fmt.bits).astype(fmt.code_dtype), fmt, jnp.float64))
    mags = decoded[: 2**fmt.exp_bits]
    assert np.array_equal(mags, np.concatenate([[0.0], powers]))
    if fmt.signed:
        assert _same_bits(decoded[2**fmt.exp_bits:], -mags)  # the sign bit; code 0b1000.. is -0


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_rounded_power_is_correctly_rounded(dtype):
    info = np.finfo(dtype)
    for k in range(2 * int(info.minexp) - 2 * int(info.nmant) - 4, 2 * int(info.maxexp) + 2):
        v = rounded_power(k, 2, dtype)
        if np.isinf(v):
            assert Fraction(2) ** k >= (Fraction(float(info.max)) + Fraction(2) ** (int(info.maxexp) - int(info.nmant) - 2)) ** 2
        elif v == 0:
            assert Fraction(2) ** k <= (Fraction(float(info.smallest_subnormal)) / 2) ** 2
        else:
            assert _is_nearest(v, k, 2, dtype) or Fraction(float(v)) ** 2 == Fraction(2) ** k


def test_base_two_format_is_the_float_format_without_mantissa():
    f = nf.LOG4.as_float_format()
    assert (f.exp_bits, f.man_bits, f.subnormals, f.specials, f.signed) == (3, 0, False, "none", True)
    assert np.array_equal(f.values(), nf.LOG4.values())
    with pytest.raises(ValueError, match="only base-2"):
        nf.LOG4_SQRT2.as_float_format()


def test_properties_and_registry():
    assert nf.get("log4") is nf.LOG4 and nf.get("LOG4_BASE2") is nf.LOG4
    assert (nf.LOG4.bits, nf.LOG4.emin, nf.LOG4.emax, nf.LOG4.max, nf.LOG4.eps) == (4, -3, 3, 8.0, 1.0)
    assert nf.LOG8_SQRT2.max == math.sqrt(2.0) * 2.0**31 and nf.LOG4_SQRT2.eps == math.sqrt(2.0) - 1
    assert not (nf.LOG4.has_inf or nf.LOG4.has_nan) and nf.LOG4.has_negative_zero
    assert nf.LOG4.code_dtype == np.uint8 and {"log4", "log8", "log4_sqrt2", "log8_sqrt2"} <= set(nf.names())
    assert LogFormat("x", 3, emin=0).emax == 6 and LogFormat("x", 3, emax=0, emin=-6).emin == -6
    assert hash(nf.LOG4) == hash(LogFormat("log4", 3, base=2))


# ---- rounding against the exact oracle -----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", LOG_FORMATS + CUSTOM, ids=str)
def test_structured_cases_match_oracle(fmt, mode):
    cases = nfst.cases_for(fmt, np.float32)
    x = np.array([c.value for c in cases], np.float32)
    _check_oracle(x, fmt, mode)


@st.composite
def log_formats(draw):
    base = draw(st.sampled_from(["2", "sqrt2"]))
    exp_bits = draw(st.integers(1, 6))
    emax = draw(st.integers(-200, 200))
    return LogFormat("drawn", exp_bits, base=base, emax=emax, signed=draw(st.booleans()))


@settings(max_examples=2 * EXAMPLES)
@given(data=st.data(), fmt=st.one_of(st.sampled_from(LOG_FORMATS + CUSTOM), log_formats()),
       mode=st.sampled_from(MODES), wide=st.booleans())
def test_encode_matches_oracle(data, fmt, mode, wide):
    dtype = np.float64 if wide else np.float32
    x = np.array(data.draw(st.lists(nfst.floats_for(fmt, dtype), min_size=32, max_size=32)), dtype)
    with jax.enable_x64(wide):  # float64 inputs are rounded once, straight to the format
        _check_oracle(x, fmt, mode)


@settings(max_examples=EXAMPLES)
@given(data=st.data(), fmt=st.sampled_from([nf.LOG4, nf.LOG8, CUSTOM[0], CUSTOM[3]]),
       rbits=st.one_of(st.none(), st.integers(1, 23)))
def test_stochastic_matches_oracle_and_the_float_engine(data, fmt, rbits):
    x = np.array(data.draw(st.lists(nfst.floats_for(fmt), min_size=32, max_size=32)), np.float32)
    u = np.array(data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=32, max_size=32)), np.uint32)
    got = np.asarray(nf.encode(x, fmt, "stochastic", random_bits=u, rbits=rbits)).tolist()
    want = [reference_round(v, fmt, "stochastic", u=int(w), rbits=rbits) for v, w in zip(x, u)]
    assert got == want
    as_float = nf.encode(x, fmt.as_float_format(), "stochastic", random_bits=u, rbits=rbits)
    assert got == np.asarray(as_float).tolist()


@settings(max_examples=EXAMPLES)
@given(data=st.data(), fmt=st.sampled_from([nf.LOG4, nf.LOG8, CUSTOM[0], CUSTOM[1], CUSTOM[3]]),
       mode=st.sampled_from(LINEAR))
def test_base_two_linear_modes_equal_the_float_engine(data, fmt, mode):
    x = np.array(data.draw(st.lists(nfst.floats_for(fmt), min_size=64, max_size=64)), np.float32)
    assert _same_bits(nf.encode(x, fmt, mode), nf.encode(x, fmt.as_float_format(), mode))


def _compare(code: int, fmt, x: Fraction) -> int:
    """The sign of ``value(code) - x``, exactly (an odd power of sqrt(2) compared by squares)."""
    field, negative = code & fmt.max_code, bool(code & fmt.sign_mask)
    mag = Fraction(0) if field == 0 else None
    if field:
        p = power(fmt.emin + field - 1, fmt.root)
        mag_minus = (lambda a: -1 if p.below(a) else (0 if p.B == 0 and p.A == a else 1))
    else:
        mag_minus = (lambda a: (mag > a) - (mag < a))
    if negative:  # -m - x = -(m - (-x))
        return -mag_minus(-x) if -x >= 0 else -1
    return mag_minus(x) if x >= 0 else 1


@settings(max_examples=EXAMPLES)
@given(data=st.data(), fmt=st.sampled_from(LOG_FORMATS + CUSTOM), mode=st.sampled_from(MODES))
def test_rounding_is_monotone_and_directed_modes_bound(data, fmt, mode):
    x = np.sort(np.array(data.draw(st.lists(nfst.floats_for(fmt), min_size=64, max_size=64)), np.float32))
    x = x[~np.isnan(x)]
    with jax.enable_x64(True):
        q = np.asarray(nf.decode(nf.encode(x, fmt, mode), fmt, jnp.float64))
    assert np.all(q[:-1] <= q[1:])
    # Within the range rounding moves a value only to a neighbour, on the side the mode says.
    codes = np.asarray(nf.encode(x, fmt, mode)).tolist()
    for xi, c in zip(x, codes):
        if not np.isfinite(xi) or abs(float(xi)) > fmt.max or (xi < 0 and not fmt.signed):
            continue
        d = _compare(c, fmt, Fraction(float(xi)))
        if mode == "down":
            assert d <= 0
        elif mode == "up":
            assert d >= 0
        elif mode == "toward_zero":
            assert d * (1 if xi >= 0 else -1) <= 0


@pytest.mark.parametrize("fmt", LOG_FORMATS + CUSTOM, ids=str)
def test_values_round_trip(fmt):
    v = fmt.values()
    v = v[np.abs(v) <= float(np.finfo(np.float32).max)].astype(np.float32)
    codes = np.asarray(nf.encode(v, fmt))
    assert np.array_equal(nf.decode(codes, fmt), v)
    # Nearest modes give back every value; directed ones too for base 2, where the values are exact.
    modes = MODES if fmt.root == 1 else ("nearest_even", "nearest_away", "nearest_log")
    for mode in modes:
        assert np.array_equal(np.asarray(nf.encode(v, fmt, mode)), codes), mode
        assert _same_bits(nf.quantize(v, fmt, mode), v), mode


def test_sqrt2_values_are_rounded_floats_so_directed_modes_see_their_side():
    # float32(sqrt(2)) is below sqrt(2): rounding it down gives 1, up gives sqrt(2) (documented).
    s = np.float32(math.sqrt(2))
    assert float(nf.quantize(s, "log4_sqrt2", "down")) == 1.0
    assert float(nf.quantize(s, "log4_sqrt2", "up")) == float(s)


# ---- the documented edge rules -------------------------------------------------------------


def test_edge_rules():
    f = nf.LOG4
    x = np.array([100.0, -100.0, np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0], np.float32)
    for mode in MODES:
        for saturate in (False, True):
            q = np.asarray(nf.quantize(x, f, mode, saturate=saturate))
            assert _same_bits(q, np.array([8, -8, 8, -8, 0, 0, 0, -0.0], np.float32)), (mode, saturate)
    # Below the smallest power (0.125): min/2 is the linear tie, min/sqrt(2) the log threshold.
    t = np.array([0.0625, 0.0625 * (1 + 2**-23), 0.0883883, 0.0883884], np.float32)
    assert np.asarray(nf.quantize(t, f, "nearest_even")).tolist() == [0, 0.125, 0.125, 0.125]
    assert np.asarray(nf.quantize(t, f, "nearest_away")).tolist() == [0.125] * 4
    assert np.asarray(nf.quantize(t, f, "nearest_log")).tolist() == [0, 0, 0, 0.125]
    # Between powers: 1.5 is the linear tie (to the even code: 1.0 has field 4, 2.0 field 5),
    # sqrt(2) the log one; 3 is a tie too, and goes up to 4.0 (field 6).
    y = np.array([1.5, 1.4142135, 1.4142137, 3.0, 2.8284270, 2.8284273], np.float32)
    assert np.asarray(nf.quantize(y, f, "nearest_even")).tolist() == [1, 1, 1, 4, 2, 2]
    assert np.asarray(nf.quantize(y, f, "nearest_away")).tolist() == [2, 1, 1, 4, 2, 2]
    assert np.asarray(nf.quantize(y, f, "nearest_log")).tolist() == [2, 1, 2, 4, 2, 4]
    u = LogFormat("ulog4", 4, signed=False)
    assert np.asarray(nf.encode(np.array([-1.0, -1e-30, -np.inf, -0.0], np.float32), u, "down")).tolist() == [0] * 4


def test_jit_vmap_and_scaled():
    x = jax.random.normal(jax.random.key(0), (4, 64))
    q = jax.jit(lambda v: nf.quantize(v, nf.LOG4, "nearest_log"))(x)
    assert _same_bits(q, nf.quantize(x, nf.LOG4, "nearest_log"))
    assert _same_bits(jax.vmap(lambda v: nf.quantize(v, "log4_sqrt2"))(x), nf.quantize(x, "log4_sqrt2"))
    qa = nf.quantize_scaled(x, "log4", axis=1, rounding="nearest_log")
    v = np.asarray(qa.dequantize()) / np.asarray(qa.scale)
    assert set(np.abs(v[v != 0]).tolist()) <= set(nf.LOG4.values().tolist())
    # absmax maps to max = 8: each row's largest magnitude is exactly its scale times 8.
    assert np.allclose(np.abs(np.asarray(x)).max(1), np.abs(np.asarray(qa.dequantize())).max(1))
    g = jax.grad(lambda v: nf.fake_quant(v, "log4", "nearest_log", granularity="tensor").sum())(x)
    assert np.all(np.asarray(g) == 1.0)


def test_cli_lists_and_describes_log_formats(capsys):
    assert cli.main(["info", "log4_sqrt2"]) == 0
    out = capsys.readouterr().out
    assert "s1l3 base sqrt2" in out and "sqrt(2)**3" in out
    assert cli.main(["values", "log4"]) == 0
    assert "0x7   0111     8.0" in capsys.readouterr().out
    assert cli.main(["encode", "log4", "-r", "nearest_log", "1.42", "1.41"]) == 0
    assert "2.0" in capsys.readouterr().out
    assert cli.main(["encode", "log4_sqrt2", "-r", "stochastic", "1"]) == 2
    assert "expected one of" in capsys.readouterr().err


# ---- bad input -------------------------------------------------------------------------------


def test_bad_formats_name_the_argument():
    with pytest.raises(ValueError, match=r"exponent range .* does not fit in exp_bits=3"):
        LogFormat("x", 3, emin=-10, emax=10)
    with pytest.raises(ValueError, match="leaves codes unused"):
        LogFormat("x", 3, emin=-2, emax=2)
    with pytest.raises(ValueError, match="exp_bits must be an int in"):
        LogFormat("x", 9)
    with pytest.raises(ValueError, match="base must be"):
        LogFormat("x", 3, base=3)
    with pytest.raises(ValueError, match="normal float64"):
        LogFormat("x", 3, emax=1030)
    with pytest.raises(TypeError, match="signed must be True or False"):
        LogFormat("x", 3, signed="yes")


def test_rounding_modes_are_checked_per_format():
    x = np.float32(1.0)
    with pytest.raises(ValueError, match="rounding 'nearest_log' is not a mode of e4m3|unknown rounding"):
        nf.encode(x, "e4m3", "nearest_log")
    with pytest.raises(ValueError, match="'stochastic' is not a mode of log4_sqrt2"):
        nf.quantize(x, "log4_sqrt2", "stochastic", key=jax.random.key(0))
    with pytest.raises(ValueError, match="unknown rounding"):
        nf.quantize_scaled(np.ones(4, np.float32), "int8", rounding="nearest_log")
