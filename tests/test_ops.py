"""Tests of numfmt.ops: correctly rounded arithmetic and IEEE 754 flags.

Three independent references: Berkeley SoftFloat (through the ``softfloatpy`` binding,
skipped when it is not installed) for float16, every rounding mode it has and both
tininess modes; exact ``Fraction`` arithmetic rounded by the oracle for every pair of
FP8 values; and hand-worked flag cases.
"""

import decimal
import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numfmt as nf
from numfmt import ops
from numfmt.testing import reference_decode, reference_round
from numfmt.testing import strategies as nfst

FP16_MAX = 65504.0
MIN_NORMAL16 = 2.0**-14


def flags_of(result):
    return set(result[1].raised())


# ---- hand-worked flag cases ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "args", "fmt", "value", "flags"),
    [
        (ops.div, (1.0, 0.0), nf.FP16, np.inf, {"divbyzero"}),
        (ops.div, (-1.0, 0.0), nf.FP16, -np.inf, {"divbyzero"}),
        (ops.div, (1.0, -0.0), nf.E4M3, np.nan, {"divbyzero"}),  # no inf in e4m3: NaN
        (ops.div, (0.0, 0.0), nf.FP16, np.nan, {"invalid"}),
        (ops.div, (np.inf, np.inf), nf.FP16, np.nan, {"invalid"}),
        (ops.div, (1.0, 3.0), nf.E4M3, 0.34375, {"inexact"}),
        (ops.sqrt, (-1.0,), nf.FP16, np.nan, {"invalid"}),
        (ops.sqrt, (-0.0,), nf.FP16, -0.0, set()),
        (ops.sqrt, (2.0,), nf.FP16, 1.4140625, {"inexact"}),
        (ops.sqrt, (4.0,), nf.E2M1, 2.0, set()),
        (ops.sqrt, (3.0,), nf.E2M1, 1.5, {"inexact"}),  # 1.732 is below the midpoint 1.75
        (ops.add, (np.inf, -np.inf), nf.FP16, np.nan, {"invalid"}),
        (ops.mul, (0.0, np.inf), nf.FP16, np.nan, {"invalid"}),
        (ops.fma, (0.0, np.inf, np.nan), nf.FP16, np.nan, {"invalid"}),  # as SoftFloat does
        (ops.fma, (np.nan, 1.0, 1.0), nf.FP16, np.nan, set()),  # quiet NaN: no flag
        (ops.mul, (FP16_MAX, 2.0), nf.FP16, np.inf, {"overflow", "inexact"}),
        (ops.mul, (448.0, 2.0), nf.E4M3, np.nan, {"overflow", "inexact"}),
        (ops.mul, (6.0, 2.0), nf.E2M1, 6.0, {"overflow", "inexact"}),  # no inf, no NaN: max
        (ops.add, (FP16_MAX, 16.0), nf.FP16, np.inf, {"overflow", "inexact"}),  # the tie past max
        (ops.add, (FP16_MAX, 8.0), nf.FP16, FP16_MAX, {"inexact"}),
        (ops.mul, (MIN_NORMAL16, MIN_NORMAL16), nf.FP16, 0.0, {"underflow", "inexact"}),
        (ops.mul, (-MIN_NORMAL16, MIN_NORMAL16), nf.FP16, -0.0, {"underflow", "inexact"}),
        (ops.mul, (2.0**-10, 2.0**-10), nf.FP16, 2.0**-20, set()),  # tiny but exact: no underflow
        (ops.add, (1.0, -1.0), nf.FP16, 0.0, set()),
    ],
)
def test_known_flags(op, args, fmt, value, flags):
    got, f = op(*args, fmt, flags=True)
    assert set(f.raised()) == flags
    assert np.array_equal(got, value, equal_nan=True) and np.signbit(got) == np.signbit(value)


def test_tininess_before_and_after_rounding_differ():
    # (1 - 2**-6) * (1 + 2**-6) * 2**-14 = min_normal * (1 - 2**-12): below min_normal, but
    # rounded to 11 bits with an unbounded exponent it is min_normal (a tie, to even).
    a, b = (1 - 2.0**-6) * MIN_NORMAL16, 1 + 2.0**-6
    after = ops.mul(a, b, nf.FP16, flags=True, tininess="after")
    before = ops.mul(a, b, nf.FP16, flags=True, tininess="before")
    assert after[0] == before[0] == MIN_NORMAL16
    assert flags_of(after) == {"inexact"}
    assert flags_of(before) == {"underflow", "inexact"}


def test_directed_rounding_at_overflow():
    # Toward zero, a result past max is max; it overflows only if rounding with an
    # unbounded exponent would exceed max (IEEE 754 §7.4).
    assert flags_of(ops.add(FP16_MAX, 16.0, nf.FP16, "toward_zero", flags=True)) == {"inexact"}
    v, f = ops.add(FP16_MAX, 32.0, nf.FP16, "toward_zero", flags=True)
    assert v == FP16_MAX and set(f.raised()) == {"overflow", "inexact"}
    v, f = ops.mul(FP16_MAX, 2.0, nf.FP16, saturate=True, flags=True)
    assert v == FP16_MAX and set(f.raised()) == {"overflow", "inexact"}


def test_signed_zero_sums():
    assert np.signbit(ops.add(1.0, -1.0, nf.FP16, "down"))
    assert not np.signbit(ops.add(1.0, -1.0, nf.FP16, "up"))
    assert np.signbit(ops.add(-0.0, -0.0, nf.FP16))
    assert not np.signbit(ops.add(0.0, -0.0, nf.FP16))
    assert np.signbit(ops.sub(-0.0, 0.0, nf.FP16))
    assert np.signbit(ops.fma(-1.0, 0.0, -0.0, nf.FP16))


def test_broadcasting_and_flags_shape():
    v, f = ops.add(np.ones((2, 1)), np.array([1.0, 2.0**-11, FP16_MAX]), nf.FP16, flags=True)
    assert v.shape == f.inexact.shape == (2, 3)
    assert f.inexact.tolist() == [[False, True, True]] * 2
    assert "inexact" in str(f)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"b must hold values of e4m3; b\[1\] = 0.1 is not one"):
        ops.add(1.0, np.array([1.0, 0.1]), nf.E4M3)
    with pytest.raises(ValueError, match="a must hold values of e2m1"):
        ops.sqrt(np.nan, nf.E2M1)  # no NaN in FP4
    with pytest.raises(ValueError, match="must hold values of e4m3"):
        ops.mul(np.inf, 1.0, nf.E4M3)  # no inf in e4m3
    with pytest.raises(TypeError, match="a must be a float array"):
        ops.add(np.array([1, 2]), 1.0, nf.FP16)
    with pytest.raises(TypeError, match="signed float format"):
        ops.add(1.0, 1.0, nf.INT8)
    with pytest.raises(ValueError, match="rounding must be one of"):
        ops.add(1.0, 1.0, nf.FP16, "stochastic")
    with pytest.raises(ValueError, match="tininess must be"):
        ops.add(1.0, 1.0, nf.FP16, tininess="never")
    with pytest.raises(ValueError, match="lie in"):
        ops.add(1.0, 1.0, nf.FloatFormat("huge", 8, 3, bias=-400))


# ---- every pair of FP8 values against exact Fraction arithmetic ---------------------------------


def _finite_values(fmt):
    codes = [c for c in range(1 << fmt.bits) if fmt.is_finite_code(c)]
    return [float(reference_decode(c, fmt)) for c in codes]


def _check_pairs(op, exact, fmt, rounding="nearest_even"):
    vals = _finite_values(fmt)
    pairs = [(a, b) for a, b in itertools.product(vals, vals) if exact(a, b) is not None]
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    got, flags = op(a, b, fmt, rounding, flags=True)
    want = {}
    for i, (x, y) in enumerate(pairs):
        r = exact(x, y)
        key = (r, x < 0, y < 0) if r == 0 else r  # the sign of a zero depends on the operands
        if key not in want:
            want[key] = reference_round(r, fmt, rounding)
        code = want[key]
        if r == 0:  # an exact zero: sign by IEEE 754 §6.3, checked in test_signed_zero_sums
            continue
        value = reference_decode(code, fmt)
        assert np.array_equal(got[i], float(value), equal_nan=True), (x, y, got[i], value)
        assert flags.inexact[i] == (not isinstance(value, Fraction) or value != r), (x, y)
    return len(pairs)


def test_e4m3_add_every_pair():
    assert _check_pairs(ops.add, lambda a, b: Fraction(a) + Fraction(b), nf.E4M3) == 254 * 254


def test_e4m3_mul_every_pair():
    assert _check_pairs(ops.mul, lambda a, b: Fraction(a) * Fraction(b), nf.E4M3) == 254 * 254


def test_e4m3_div_every_pair():
    _check_pairs(ops.div, lambda a, b: Fraction(a) / Fraction(b) if b != 0 else None, nf.E4M3)


@pytest.mark.exhaustive
@pytest.mark.parametrize("rounding", ["nearest_away", "toward_zero", "up", "down", "odd"])
@pytest.mark.parametrize("fmt", [nf.E4M3, nf.E5M2, nf.E2M1], ids=lambda f: f.name)
def test_fp8_every_pair_every_mode(fmt, rounding):
    _check_pairs(ops.add, lambda a, b: Fraction(a) + Fraction(b), fmt, rounding)
    _check_pairs(ops.mul, lambda a, b: Fraction(a) * Fraction(b), fmt, rounding)
    _check_pairs(ops.div, lambda a, b: Fraction(a) / Fraction(b) if b != 0 else None, fmt, rounding)


def test_e4m3_sqrt_every_value():
    decimal.getcontext().prec = 60  # 60 digits: far finer than any e4m3 midpoint's distance
    vals = [v for v in _finite_values(nf.E4M3) if v > 0]
    got = ops.sqrt(np.array(vals), nf.E4M3)
    for v, g in zip(vals, got):
        root = Fraction(decimal.Decimal(v).sqrt())
        assert g == float(reference_decode(reference_round(root, nf.E4M3), nf.E4M3)), v


# ---- float16 against Berkeley SoftFloat ---------------------------------------------------------


def _softfloat():
    return pytest.importorskip("softfloatpy", reason="the softfloat extra (pip install numfmt[softfloat])")


_SF_FLAGS = {"inexact": 1, "underflow": 2, "overflow": 4, "divbyzero": 8, "invalid": 16}
_SF_OPS = {"add": "f16_add", "sub": "f16_sub", "mul": "f16_mul", "div": "f16_div", "fma": "f16_mul_add",
           "sqrt": "f16_sqrt"}
_SF_MODES = {"nearest_even": "NEAR_EVEN", "toward_zero": "MIN_MAG", "down": "MIN", "up": "MAX",
             "nearest_away": "NEAR_MAX_MAG"}
_ARITY = {"add": 2, "sub": 2, "mul": 2, "div": 2, "fma": 3, "sqrt": 1}

# FP16 operands: any finite value (uniform over codes, so every binade and the subnormals
# come up), and now and then ±inf or a quiet NaN (SoftFloat raises invalid on signalling
# NaNs, which ops does not model).
_FP16 = st.one_of(nfst.values(nf.FP16), st.sampled_from([np.inf, -np.inf, np.nan, 0.0, -0.0]))


def _sf_run(sf, name, args, rounding, tininess):
    sf.set_rounding_mode(getattr(sf.RoundingMode, _SF_MODES[rounding]))
    sf.set_tininess_mode(sf.TininessMode.AFTER_ROUNDING if tininess == "after" else sf.TininessMode.BEFORE_ROUNDING)
    fn = getattr(sf, _SF_OPS[name])
    values, flags = [], []
    for row in zip(*args):
        operands = [sf.Float16.from_bytes(np.float16(v).view(np.uint16).item().to_bytes(2, "big")) for v in row]
        sf.set_exception_flags(0)
        out = fn(*operands)
        raised = sf.get_exception_flags()
        values.append(np.uint16(int.from_bytes(out.to_bytes(), "big")).view(np.float16))
        flags.append({k for k, bit in _SF_FLAGS.items() if raised & bit})
    sf.set_rounding_mode(sf.RoundingMode.NEAR_EVEN)
    sf.set_tininess_mode(sf.TininessMode.AFTER_ROUNDING)
    return np.array(values, dtype=np.float64), flags


@pytest.mark.parametrize(("name", "rounding", "tininess"), [
    ("add", "nearest_even", "after"),
    ("add", "toward_zero", "before"),
    ("sub", "down", "after"),
    ("mul", "nearest_even", "after"),
    ("mul", "up", "before"),
    ("mul", "nearest_away", "after"),
    ("fma", "nearest_even", "after"),
    ("fma", "down", "before"),
    ("div", "nearest_even", "before"),
    ("sqrt", "up", "after"),
])
@given(data=st.data())
def test_fp16_matches_softfloat(name, rounding, tininess, data):
    sf = _softfloat()
    rows = data.draw(st.lists(st.tuples(*[_FP16] * _ARITY[name]), min_size=64, max_size=64))
    args = [np.array(col, dtype=np.float64) for col in zip(*rows)]
    got, flags = getattr(ops, name)(*args, nf.FP16, rounding, flags=True, tininess=tininess)
    want, want_flags = _sf_run(sf, name, args, rounding, tininess)
    for i, row in enumerate(rows):
        assert np.array_equal(got[i], want[i], equal_nan=True), (row, got[i], want[i])
        assert np.signbit(got[i]) == np.signbit(want[i]) or np.isnan(want[i]), row
        mine = {k for k in _SF_FLAGS if getattr(flags, k)[i]}
        assert mine == want_flags[i], (row, mine, want_flags[i])


def test_fp16_tininess_case_matches_softfloat():
    sf = _softfloat()
    a, b = np.array([(1 - 2.0**-6) * MIN_NORMAL16]), np.array([1 + 2.0**-6])
    for tininess in ("before", "after"):
        _, want = _sf_run(sf, "mul", [a, b], "nearest_even", tininess)
        got = ops.mul(a, b, nf.FP16, flags=True, tininess=tininess)
        assert set(got[1].raised()) == want[0]
