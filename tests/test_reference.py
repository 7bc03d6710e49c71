"""Tests of the exact oracle ``numfmt.testing.reference`` itself.

A wrong oracle would make every codec test meaningless, so it is checked against an
independent implementation (ml_dtypes' casts, every code of every format it has) and
against answers computed by hand from docs/semantics.md.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from numfmt import formats as F
from numfmt.formats import FloatFormat, IntFormat
from numfmt.testing import reference_decode, reference_round
from numfmt.testing.reference import grid_value, special_codes

MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd")
ML_FORMATS = [F.get(n) for n in F.names() if F.get(n).kind == "float" and F.get(n).dtype is not None]
CUSTOM_FORMATS = [
    FloatFormat("e3m2_ftz", 3, 2, subnormals=False),
    FloatFormat("e4m0", 4, 0),
    FloatFormat("e3m0_fn", 3, 0, specials="fn"),
    FloatFormat("ue4m3", 4, 3, signed=False),
    FloatFormat("ue2m1", 2, 1, signed=False, specials="none"),
    FloatFormat("e5m2_b3", 5, 2, bias=3, specials="fnuz"),
    FloatFormat("e1m2", 1, 2, specials="none"),
    FloatFormat("e4m2_ftz_fn", 4, 2, subnormals=False, specials="fn"),
    FloatFormat("e4m1_e8m0", 4, 1, signed=False, specials="e8m0"),
    FloatFormat("e3m2_fnuz_ftz", 3, 2, subnormals=False, specials="fnuz"),
]
RNG = np.random.default_rng(0)


def _codes(fmt, sample=3000):
    """Every code of ``fmt``, or a sample (all exponents, edge mantissas) past 16 bits."""
    if fmt.bits <= 16:
        return range(1 << fmt.bits)
    p = fmt.man_bits
    edges = [0, 1, 2, (1 << p) - 2, (1 << p) - 1]
    codes = {(s << (fmt.bits - 1)) | (e << p) | m for s in (0, 1) for e in range(1 << fmt.exp_bits) for m in edges}
    codes |= {int(c) for c in RNG.integers(0, 1 << fmt.bits, sample)}
    return sorted(codes)


def _ml_value(code, fmt):
    container = fmt.code_dtype
    return np.array([code], dtype=container).view(fmt.dtype)[0]


def _same(ours, theirs) -> bool:
    """Exact equality of an oracle value with a float, NaN == NaN, sign of zero checked."""
    theirs = float(theirs)
    if math.isnan(theirs):
        return isinstance(ours, float) and math.isnan(ours)
    if isinstance(ours, float) and math.isnan(ours):
        return False
    if theirs == 0:
        return ours == 0 and math.copysign(1, float(ours)) == math.copysign(1, theirs)
    if math.isinf(theirs):
        return ours == theirs
    return Fraction(theirs) == ours


@pytest.mark.parametrize("fmt", ML_FORMATS, ids=str)
def test_decode_matches_ml_dtypes(fmt):
    for code in _codes(fmt):
        ours = reference_decode(code, fmt)
        assert _same(ours, _ml_value(code, fmt)), (fmt.name, hex(code), ours)


def _expected_roundtrip(code, fmt, value):
    if value == 0:  # canonical zero: keeps only the sign, and only where -0 exists
        return fmt.sign_mask if math.copysign(1, float(value)) < 0 and fmt.has_negative_zero else 0
    return code


@pytest.mark.parametrize("fmt", ML_FORMATS + CUSTOM_FORMATS, ids=str)
def test_round_of_decode_is_identity(fmt):
    # Exact values bypass the choice between neighbours, so a few (mode, saturate)
    # pairs suffice for the wide formats.
    if fmt.bits <= 8:
        cases = [(mode, saturate) for mode in MODES for saturate in (False, True)]
    else:
        cases = [("nearest_even", False), ("toward_zero", True), ("odd", False)]
    for code in _codes(fmt, sample=500):
        value = reference_decode(code, fmt)
        if isinstance(value, float) and math.isnan(value):
            continue
        expected = _expected_roundtrip(code, fmt, value)
        for mode, saturate in cases:
            assert reference_round(value, fmt, mode, saturate=saturate) == expected, (fmt.name, hex(code), mode)


def _grid_value(fmt, code):
    """Value of a magnitude code on the extended grid (past ``max`` by the normal formula)."""
    if code <= fmt.max_code:
        return reference_decode(code, fmt)
    p = fmt.man_bits
    return (Fraction(1 << p) + (code & ((1 << p) - 1))) * Fraction(2) ** ((code >> p) - fmt.bias - p)


def _neighbour_pairs(fmt, sample):
    """Pairs of neighbouring non-negative grid points, up to the first one past ``max``.

    All of them for small formats; else the lowest and highest 40 and a random sample
    of ``sample`` between.
    """
    first = [0] if fmt.has_zero else []
    n = fmt.max_code + 2 - fmt.min_positive_code + len(first)  # number of grid points
    if n <= 2 * sample:
        index = range(n - 1)
    else:
        index = sorted(set(range(40)) | set(range(n - 41, n - 1)) | set(RNG.integers(0, n - 1, sample).tolist()))

    def code(i):
        return 0 if (first and i == 0) else fmt.min_positive_code + i - len(first)

    return [(_grid_value(fmt, code(i)), _grid_value(fmt, code(i + 1))) for i in index]


def _f32_inputs(fmt, sample=1500):
    """Hard float32 inputs: ties, ±1 ulp around them, thresholds, tiny values, specials.

    Returns the inputs and the set of those that are exact ties between grid points.
    """
    ties = set()
    out = []
    with np.errstate(over="ignore"):  # grid points past float32's range become inf
        for lo, hi in _neighbour_pairs(fmt, sample):
            mid = (lo + hi) / 2
            m32 = np.float32(float(mid))
            if np.isfinite(m32) and Fraction(float(m32)) == mid:
                ties.add(float(m32))
            up, down = np.nextafter(m32, np.float32(np.inf)), np.nextafter(m32, np.float32(-np.inf))
            for v in (m32, up, down, np.float32(float(hi))):
                out += [v, -v]
    tiny = np.float32(fmt.min_subnormal)
    f32 = np.finfo(np.float32)
    out += [tiny, tiny / 2, np.nextafter(tiny / 2, np.float32(1)), f32.max, f32.smallest_subnormal, np.float32(0.0)]
    out += [-v for v in out] + [np.float32(np.inf), np.float32(-np.inf), np.float32(np.nan), -np.float32(np.nan)]
    out = np.array(out, dtype=np.float32)
    return out, ties


def _assert_special_codes_agree(fmt):
    """The oracle works the special codes out itself; formats.py must agree. Returns max_code."""
    max_code, nan_code, inf_code, negative_zero = special_codes(fmt)
    assert (max_code, nan_code, inf_code, negative_zero) == (
        fmt.max_code,
        fmt.nan_code,
        fmt.inf_code,
        fmt.has_negative_zero,
    )
    return max_code


@pytest.mark.parametrize("fmt", [f for f in map(F.get, F.names()) if f.kind == "float"] + CUSTOM_FORMATS, ids=str)
def test_layout_agrees_with_formats_module(fmt):
    max_code = _assert_special_codes_agree(fmt)
    assert grid_value(max_code, fmt) == Fraction(fmt.max) and grid_value(fmt.min_positive_code, fmt) == Fraction(
        fmt.min_subnormal
    )
    assert grid_value(max_code + 1, fmt) > grid_value(max_code, fmt)


@st.composite
def _float_formats(draw):
    exp_bits, man_bits = draw(st.integers(1, 8)), draw(st.integers(0, 10))
    specials = draw(st.sampled_from(F.SPECIALS))
    signed = specials == "fnuz" or (specials != "e8m0" and draw(st.booleans()))
    subnormals = specials != "e8m0" and draw(st.booleans())
    try:
        return FloatFormat("custom", exp_bits, man_bits, bias=draw(st.integers(-300, 300)), signed=signed,
                           subnormals=subnormals, specials=specials)  # fmt: skip
    except ValueError:
        assume(False)


@given(fmt=_float_formats(), data=st.data())
def test_random_formats_decode_and_round_trip(fmt, data):
    _assert_special_codes_agree(fmt)
    code = data.draw(st.integers(0, (1 << fmt.bits) - 1))
    value = reference_decode(code, fmt)
    if fmt.is_finite_code(code):
        assert abs(value) == fmt.value_of(code & ~fmt.sign_mask)  # formats.py's own reading
        assert reference_round(value, fmt, data.draw(st.sampled_from(MODES))) == _expected_roundtrip(code, fmt, value)
    else:
        assert math.isnan(value) or math.isinf(value)


def _ml_code(x, fmt) -> int:
    return int(np.array([x], dtype=np.float32).astype(fmt.dtype).view(fmt.code_dtype)[0])


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


@pytest.mark.parametrize("fmt", ML_FORMATS, ids=str)
def test_round_matches_ml_dtypes_cast(fmt):
    xs, ties = _f32_inputs(fmt)
    with np.errstate(over="ignore"):
        theirs = xs.astype(fmt.dtype).view(fmt.code_dtype)
    mismatches = set()
    for x, code in zip(xs, theirs):
        ours = reference_round(x, fmt)
        ours_value, their_value = reference_decode(ours, fmt), reference_decode(int(code), fmt)
        if np.isnan(x) and not fmt.has_nan:
            assert ours == 0 and their_value == 0, (fmt.name, x, hex(code))  # sign ignored
        elif _is_nan(their_value) or _is_nan(ours_value):
            if not (_is_nan(their_value) and _is_nan(ours_value)):  # NaN codes may differ
                mismatches.add(float(x))
        elif ours != int(code):
            mismatches.add(float(x))
    if fmt is F.E8M0:
        # ml_dtypes 0.6 rounds E8M0 ties up; numfmt takes the even code (IEEE P3109).
        # It also sends every float32 *subnormal* input in (2**-127, 2**-126) up to
        # 2**-126 (e.g. 1.0001 * 2**-127), which is no tie: a second ml_dtypes quirk.
        band = {m for m in mismatches if 2.0**-127 < m < 2.0**-126}
        assert all(_ml_code(m, fmt) == 1 for m in band)
        even_lo_ties = {t for t in ties if reference_round(t, fmt) == reference_round(t, fmt, "toward_zero")}
        assert mismatches - band and mismatches - band == even_lo_ties - band
    else:
        assert not mismatches, (fmt.name, sorted(mismatches)[:10])


# ---- known answers, computed by hand ---------------------------------------------------

NAN = math.nan
E3M2_FTZ, E4M0, UE4M3, UE2M1 = CUSTOM_FORMATS[0], CUSTOM_FORMATS[1], CUSTOM_FORMATS[3], CUSTOM_FORMATS[4]
INT4_NARROW = IntFormat("int4_narrow", 4, narrow=True)
INT1 = IntFormat("int1", 1)

KNOWN = [
    # E4M3 (OCP fn): max 448, next grid point 480, min subnormal 2**-9.
    (F.E4M3, 464.0, "nearest_even", False, 448.0),  # tie 448 | 480: 448 has the even code
    (F.E4M3, 465.0, "nearest_even", False, NAN),
    (F.E4M3, 464.0, "nearest_away", False, NAN),
    (F.E4M3, 1000.0, "toward_zero", False, 448.0),
    (F.E4M3, -1000.0, "up", False, -448.0),
    (F.E4M3, -1000.0, "down", False, NAN),
    (F.E4M3, 449.0, "up", False, NAN),
    (F.E4M3, 449.0, "up", True, 448.0),
    (F.E4M3, 449.0, "odd", False, 448.0),  # odd picks code 127 past max: goes to max
    (F.E4M3, 1e30, "odd", False, 448.0),
    (F.E4M3, math.inf, "toward_zero", False, NAN),
    (F.E4M3, math.inf, "nearest_even", True, 448.0),
    (F.E4M3, -math.inf, "nearest_even", True, -448.0),
    (F.E4M3, 2.0**-10, "nearest_even", False, 0.0),
    (F.E4M3, -(2.0**-10), "nearest_even", False, -0.0),
    (F.E4M3, 2.0**-10, "nearest_away", False, 2.0**-9),
    (F.E4M3, 2.0**-20, "up", False, 2.0**-9),
    (F.E4M3, -(2.0**-20), "up", False, -0.0),
    (F.E4M3, 2.0**-20, "odd", False, 2.0**-9),
    (F.E4M3, 3 * 2.0**-11, "odd", False, 2.0**-9),
    (F.E4M3, 1.0625, "odd", False, 1.125),
    (F.E4M3, 1.1875, "odd", False, 1.125),
    (F.E4M3, 1.0625, "nearest_even", False, 1.0),
    (F.E4M3, 1.1875, "nearest_even", False, 1.25),
    # E5M2 (IEEE): max 57344, overflow threshold 61440.
    (F.E5M2, 61440.0, "nearest_even", False, math.inf),
    (F.E5M2, 61439.0, "nearest_even", False, 57344.0),
    (F.E5M2, 1e9, "toward_zero", False, 57344.0),
    (F.E5M2, 57345.0, "up", False, math.inf),
    (F.E5M2, 57345.0, "down", False, 57344.0),
    (F.E5M2, -57345.0, "down", False, -math.inf),
    (F.E5M2, -1e9, "up", False, -57344.0),
    (F.E5M2, 1e9, "nearest_even", True, 57344.0),
    (F.E5M2, math.inf, "nearest_even", True, math.inf),
    (F.E5M2, -math.inf, "toward_zero", False, -math.inf),
    (F.FP16, 65520.0, "nearest_even", False, math.inf),
    (F.FP16, 65519.0, "nearest_even", False, 65504.0),
    (F.FP16, 2.0**-25, "nearest_even", False, 0.0),
    (F.FP16, 2.0**-25 * (1 + 2.0**-20), "nearest_even", False, 2.0**-24),
    # E2M1 (OCP FP4, no inf / NaN): values 0 .5 1 1.5 2 3 4 6.
    (F.E2M1, 2.5, "nearest_even", False, 2.0),
    (F.E2M1, 3.5, "nearest_even", False, 4.0),
    (F.E2M1, 2.5, "nearest_away", False, 3.0),
    (F.E2M1, 0.25, "nearest_even", False, 0.0),
    (F.E2M1, -0.25, "nearest_even", False, -0.0),
    (F.E2M1, 0.75, "nearest_even", False, 1.0),
    (F.E2M1, 7.0, "nearest_even", False, 6.0),  # overflows: no inf, no NaN -> max
    (F.E2M1, 100.0, "up", False, 6.0),
    (F.E2M1, -math.inf, "nearest_even", False, -6.0),
    (F.E2M1, NAN, "nearest_even", False, 0.0),
    (F.E2M1, 5.0, "odd", False, 6.0),
    (F.E2M1, 2.2, "odd", False, 3.0),
    (F.E2M1, 5.0, "down", False, 4.0),
    (F.E2M1, -5.0, "down", False, -6.0),
    # E8M0 (no zero, no sign, ties to the even code): code 127 is 1.0.
    (F.E8M0, 3.0, "nearest_even", False, 2.0),
    (F.E8M0, 6.0, "nearest_even", False, 8.0),
    (F.E8M0, 1.5, "nearest_even", False, 2.0),
    (F.E8M0, 3.0, "nearest_away", False, 4.0),
    (F.E8M0, 3.0, "odd", False, 4.0),  # 2.0 is code 128 (even), 4.0 code 129 (odd)
    (F.E8M0, 5.0, "odd", False, 4.0),
    (F.E8M0, 0.0, "nearest_even", False, NAN),
    (F.E8M0, -0.0, "up", True, NAN),
    (F.E8M0, -1.0, "nearest_even", False, NAN),
    (F.E8M0, 2.0**-130, "down", False, 2.0**-127),
    (F.E8M0, 1.5 * 2.0**127, "nearest_even", False, 2.0**127),
    (F.E8M0, 1.75 * 2.0**127, "nearest_even", False, NAN),
    (F.E8M0, 1.75 * 2.0**127, "nearest_even", True, 2.0**127),
    (F.E8M0, 1.1 * 2.0**127, "toward_zero", False, 2.0**127),
    (F.E8M0, math.inf, "toward_zero", False, NAN),
    (F.E8M0, math.inf, "toward_zero", True, 2.0**127),
    # fnuz: no -0, NaN at 0x80.
    (F.E4M3FNUZ, -0.0, "nearest_even", False, 0.0),
    (F.E4M3FNUZ, -(2.0**-12), "nearest_even", False, 0.0),
    (F.E4M3FNUZ, 1000.0, "nearest_even", False, NAN),
    (F.E4M3FNUZ, 1000.0, "toward_zero", False, 240.0),
    # No subnormals (bias 3): grid below min_normal 0.25 is {0, 0.25}, 0 even, 0.25 odd.
    (E3M2_FTZ, 0.125, "nearest_even", False, 0.0),
    (E3M2_FTZ, 0.125, "nearest_away", False, 0.25),
    (E3M2_FTZ, 0.1, "odd", False, 0.25),
    (E3M2_FTZ, 0.001, "up", False, 0.25),
    (E3M2_FTZ, -0.001, "down", False, -0.25),
    (E3M2_FTZ, -0.001, "up", False, -0.0),
    (E3M2_FTZ, 0.28125, "nearest_even", False, 0.25),  # normal range: parity of M
    (E3M2_FTZ, 0.28, "odd", False, 0.3125),
    # IEEE with no mantissa bits: inf but no NaN; max 128, threshold 192.
    (E4M0, NAN, "nearest_even", False, 0.0),
    (E4M0, 192.0, "nearest_even", False, 128.0),
    (E4M0, 193.0, "nearest_even", False, math.inf),
    (E4M0, 2.0**-7, "nearest_even", False, 0.0),
    (E4M0, 1.5 * 2.0**-6, "nearest_even", False, 2.0**-5),
    # Unsigned: negatives rounding to zero give +0, others NaN (else 0).
    (UE4M3, -1.0, "nearest_even", False, NAN),
    (UE4M3, -1.0, "nearest_even", True, NAN),
    (UE4M3, -(2.0**-10), "nearest_even", False, 0.0),
    (UE4M3, -(2.0**-10), "nearest_away", False, NAN),
    (UE4M3, -(2.0**-12), "up", False, 0.0),
    (UE4M3, -(2.0**-12), "down", False, NAN),
    (UE4M3, -math.inf, "nearest_even", True, NAN),
    (UE2M1, -1.0, "nearest_even", False, 0.0),
    (UE2M1, -math.inf, "nearest_even", True, 0.0),
    (UE2M1, 100.0, "nearest_even", False, 6.0),
    # Integers: round, then clamp.
    (F.INT4, 7.5, "nearest_even", False, 7),
    (F.INT4, -8.5, "nearest_even", False, -8),
    (F.INT4, -9.0, "nearest_even", False, -8),
    (F.INT4, 100.0, "up", False, 7),
    (F.INT4, math.inf, "nearest_even", False, 7),
    (F.INT4, -math.inf, "nearest_even", False, -8),
    (F.INT4, NAN, "nearest_even", False, 0),
    (F.INT4, 2.5, "nearest_even", False, 2),
    (F.INT4, 3.5, "nearest_even", False, 4),
    (F.INT4, 2.5, "nearest_away", False, 3),
    (F.INT4, -2.5, "nearest_away", False, -3),
    (F.INT4, -2.7, "toward_zero", False, -2),
    (F.INT4, -2.5, "up", False, -2),
    (F.INT4, -2.5, "down", False, -3),
    (F.INT4, 2.5, "odd", False, 3),
    (F.INT4, 3.5, "odd", False, 3),
    (F.INT4, 4.0, "odd", False, 4),
    (INT4_NARROW, -8.5, "nearest_even", False, -7),
    (F.UINT4, -3.0, "nearest_even", False, 0),
    (F.UINT4, 15.5, "nearest_even", False, 15),
    (F.UINT4, 16.0, "down", False, 15),
    (INT1, 0.7, "nearest_even", False, 0),
    (INT1, -0.7, "nearest_even", False, -1),
]


@pytest.mark.parametrize("fmt, x, mode, saturate, expected", KNOWN, ids=lambda v: str(v))
def test_known_answers(fmt, x, mode, saturate, expected):
    got = reference_decode(reference_round(x, fmt, mode, saturate=saturate), fmt)
    assert _same(got, expected), (fmt.name, x, mode, saturate, got)


def test_known_codes():
    assert reference_round(464.0, F.E4M3) == 0x7E
    assert reference_round(465.0, F.E4M3) == 0x7F
    assert reference_round(-1000.0, F.E4M3, "up") == 0xFE
    assert reference_round(3.0, F.E8M0) == 128
    assert reference_round(0.0, F.E8M0) == 255
    assert reference_round(-8.5, F.INT4) == 0b1000
    assert reference_round(-1.0, F.INT8) == 0xFF
    assert reference_round(math.nan, F.E5M2) == 0x7E
    assert reference_round(math.nan, F.E4M3FNUZ) == 0x80
    assert reference_round(math.nan, F.FP32) == 0x7FC00000
    assert reference_round(-0.0, F.FP16) == 0x8000


def test_input_types_agree():
    x = Fraction(13, 8)
    for value in (x, 1.625, np.float16(1.625), np.float32(1.625), np.float64(1.625), ml_dtypes.bfloat16(1.625)):
        assert reference_round(value, F.E2M1) == reference_round(x, F.E2M1)
    assert reference_round(3, F.INT4) == 3 and reference_round(np.int8(-3), F.INT4) == 0b1101
    assert reference_round(np.float32(-0.0), F.E4M3) == 0x80
    assert reference_round(Fraction(1, 10**50), F.E5M2, "up") == 1  # below float64's range


def test_codebook_nearest_ties_to_lower_code():
    nf4 = F.NF4
    assert reference_round(1.0, nf4) == 15 and reference_round(-5.0, nf4) == 0 and reference_round(5.0, nf4) == 15
    assert reference_round(0.0, nf4) == 7
    mid = (Fraction(nf4.table[7]) + Fraction(nf4.table[8])) / 2
    assert reference_round(mid, nf4) == 7
    assert reference_round(mid + Fraction(1, 10**12), nf4) == 8
    assert reference_decode(15, nf4) == 1


# ---- stochastic rounding: known answers, computed by hand ------------------------------
#
# docs/stochastic.md: with f the fraction of the way from lo to hi, |x| goes to hi iff
# (u mod 2**m) + T >= 2**m, where m = W (word_bits) and T = floor(f 2**W) in exact mode,
# m = r and T = floor(f 2**r) ("truncate") or T = round-half-even(f 2**r) ("unbiased").
# So the smallest word that rounds up has low m bits 2**m - T.

W32, W64 = 1 << 32, 1 << 64
SR_KNOWN = [
    # (fmt, x, u, rbits, variant, saturate, word_bits, expected value)
    # INT8 at 1.25: f = 1/4. Exact: T = 2**30, up iff u >= 2**32 - 2**30 = 0xC0000000.
    (F.INT8, 1.25, 0, None, "truncate", False, 32, 1),
    (F.INT8, 1.25, 0xBFFFFFFF, None, "truncate", False, 32, 1),
    (F.INT8, 1.25, 0xC0000000, None, "truncate", False, 32, 2),
    (F.INT8, 1.25, 0xFFFFFFFF, None, "truncate", False, 32, 2),
    (F.INT8, 1.25, 0xC0000000, None, "unbiased", False, 32, 2),  # the variant only matters with rbits
    (F.INT8, 1.25, 0xBFFFFFFFFFFFFFFF, None, "truncate", False, 64, 1),  # 64-bit words: T = 2**62
    (F.INT8, 1.25, 0xC000000000000000, None, "truncate", False, 64, 2),
    # r = 2: f * 4 = 1 exactly, T = 1 in both variants; up iff u mod 4 = 3 (high bits ignored).
    (F.INT8, 1.25, 2, 2, "truncate", False, 32, 1),
    (F.INT8, 1.25, 3, 2, "truncate", False, 32, 2),
    (F.INT8, 1.25, 0xFFFFFFFC, 2, "truncate", False, 32, 1),
    (F.INT8, 1.25, 7, 2, "unbiased", False, 32, 2),
    (F.INT8, 1.25, 2, 2, "unbiased", False, 32, 1),
    # r = 1: f * 2 = 1/2. truncate: T = 0, never up; unbiased: the tie goes to even T = 0, never up.
    (F.INT8, 1.25, 1, 1, "truncate", False, 32, 1),
    (F.INT8, 1.25, 0xFFFFFFFF, 1, "unbiased", False, 32, 1),
    # INT8 at 1.75, r = 1: f * 2 = 3/2. truncate: T = 1, up iff u is odd; unbiased: T = 2, always up.
    (F.INT8, 1.75, 0, 1, "truncate", False, 32, 1),
    (F.INT8, 1.75, 1, 1, "truncate", False, 32, 2),
    (F.INT8, 1.75, 0, 1, "unbiased", False, 32, 2),
    # f = 3/8, r = 2: f * 4 = 3/2: truncate T = 1 (up iff u mod 4 = 3), unbiased T = 2 (u mod 4 >= 2).
    (F.INT8, 1.375, 2, 2, "truncate", False, 32, 1),
    (F.INT8, 1.375, 3, 2, "truncate", False, 32, 2),
    (F.INT8, 1.375, 1, 2, "unbiased", False, 32, 1),
    (F.INT8, 1.375, 2, 2, "unbiased", False, 32, 2),
    # f = 5/8, r = 2: f * 4 = 5/2: both T = 2 (the tie goes to even 2): up iff u mod 4 >= 2.
    (F.INT8, 1.625, 1, 2, "truncate", False, 32, 1),
    (F.INT8, 1.625, 1, 2, "unbiased", False, 32, 1),
    (F.INT8, 1.625, 2, 2, "unbiased", False, 32, 2),
    # f = 2**-40 (float64 input): T = 0 with 32-bit words (never up); 2**24 with 64-bit words.
    (F.INT8, 1 + 2.0**-40, 0xFFFFFFFF, None, "truncate", False, 32, 1),
    (F.INT8, 1 + 2.0**-40, W64 - 2**24 - 1, None, "truncate", False, 64, 1),
    (F.INT8, 1 + 2.0**-40, W64 - 2**24, None, "truncate", False, 64, 2),
    # Grid points never move; the sign is kept (up in magnitude); integers clamp after rounding.
    (F.INT8, 1.0, 0xFFFFFFFF, None, "truncate", False, 32, 1),
    (F.INT8, -1.25, 0xBFFFFFFF, None, "truncate", False, 32, -1),
    (F.INT8, -1.25, 0xC0000000, None, "truncate", False, 32, -2),
    (F.INT4, -8.5, 0xFFFFFFFF, None, "truncate", False, 32, -8),
    (F.UINT4, 15.5, 0xFFFFFFFF, None, "truncate", False, 32, 15),
    (F.UINT4, -0.5, 0xFFFFFFFF, None, "truncate", False, 32, 0),
    (F.INT4, math.inf, 0, None, "truncate", False, 32, 7),
    (F.INT4, NAN, 0xFFFFFFFF, None, "truncate", False, 32, 0),
    # E4M3 at 460: between max 448 and the extended grid's 480, f = 12/32 = 3/8:
    # T = 0x60000000, up iff u >= 0xA0000000; up overflows: NaN, or 448 with saturate.
    (F.E4M3, 460.0, 0x9FFFFFFF, None, "truncate", False, 32, 448.0),
    (F.E4M3, 460.0, 0xA0000000, None, "truncate", False, 32, NAN),
    (F.E4M3, 460.0, 0xA0000000, None, "truncate", True, 32, 448.0),
    (F.E4M3, -460.0, 0xA0000000, None, "truncate", False, 32, NAN),
    (F.E4M3, -460.0, 0xFFFFFFFF, None, "truncate", True, 32, -448.0),
    (F.E4M3, 460.0, 4, 3, "truncate", False, 32, 448.0),  # r = 3: T = 3, up iff u mod 8 >= 5
    (F.E4M3, 460.0, 5, 3, "truncate", False, 32, NAN),
    # E5M2: 59392 is 1/4 of the way from max 57344 to 65536: up goes to inf (max with saturate).
    (F.E5M2, 59392.0, 0xBFFFFFFF, None, "truncate", False, 32, 57344.0),
    (F.E5M2, 59392.0, 0xC0000000, None, "truncate", False, 32, math.inf),
    (F.E5M2, -59392.0, 0xC0000000, None, "truncate", False, 32, -math.inf),
    (F.E5M2, 59392.0, 0xC0000000, None, "truncate", True, 32, 57344.0),
    # Specials, whatever the word.
    (F.E5M2, math.inf, 0, None, "truncate", False, 32, math.inf),
    (F.E5M2, -math.inf, 0, 4, "unbiased", True, 32, -math.inf),
    (F.E4M3, math.inf, 0, None, "truncate", False, 32, NAN),
    (F.E4M3, math.inf, 0, None, "truncate", True, 32, 448.0),
    (F.E4M3, NAN, 0xFFFFFFFF, None, "truncate", False, 32, NAN),
    (F.E2M1, NAN, 0xFFFFFFFF, None, "truncate", False, 32, 0.0),
    (F.E4M3, -0.0, 0xFFFFFFFF, None, "truncate", False, 32, -0.0),
    (F.E4M3FNUZ, -0.0, 0xFFFFFFFF, None, "truncate", False, 32, 0.0),
    # Subnormals: E4M3 at 2**-11 is 1/4 of the way from 0 to 2**-9; a negative one rounds to -0 or -2**-9.
    (F.E4M3, 2.0**-11, 0xBFFFFFFF, None, "truncate", False, 32, 0.0),
    (F.E4M3, 2.0**-11, 0xC0000000, None, "truncate", False, 32, 2.0**-9),
    (F.E4M3, -(2.0**-11), 0, None, "truncate", False, 32, -0.0),
    (F.E4M3, -(2.0**-11), 0xC0000000, None, "truncate", False, 32, -(2.0**-9)),
    (F.E4M3FNUZ, -(2.0**-12), 0, None, "truncate", False, 32, 0.0),  # no -0
    # No subnormals (min_normal 0.25): the grid is {0, 0.25}; 0.0625 has f = 1/4.
    (E3M2_FTZ, 0.0625, 0xBFFFFFFF, None, "truncate", False, 32, 0.0),
    (E3M2_FTZ, 0.0625, 0xC0000000, None, "truncate", False, 32, 0.25),
    (E3M2_FTZ, -0.0625, 3, 2, "truncate", False, 32, -0.25),
    # E8M0: 3.0 is halfway from 2 to 4 (T = 2**31); below min gives min; zero and negatives NaN.
    (F.E8M0, 3.0, 0x7FFFFFFF, None, "truncate", False, 32, 2.0),
    (F.E8M0, 3.0, 0x80000000, None, "truncate", False, 32, 4.0),
    (F.E8M0, 3.0, 1, 1, "unbiased", False, 32, 4.0),  # f * 2 = 1 exactly: T = 1, up iff u odd
    (F.E8M0, 2.0**-130, 0xFFFFFFFF, None, "truncate", False, 32, 2.0**-127),
    (F.E8M0, 0.0, 0, None, "truncate", False, 32, NAN),
    (F.E8M0, -3.0, 0, None, "truncate", False, 32, NAN),
    (F.E8M0, 1.5 * 2.0**127, 0x80000000, None, "truncate", False, 32, NAN),  # up is past max
    (F.E8M0, 1.5 * 2.0**127, 0x80000000, None, "truncate", True, 32, 2.0**127),
    # Unsigned: a negative value that rounds to -0 gives +0; one that rounds away, NaN.
    (UE4M3, -(2.0**-11), 0xBFFFFFFF, None, "truncate", False, 32, 0.0),
    (UE4M3, -(2.0**-11), 0xC0000000, None, "truncate", False, 32, NAN),
    (UE2M1, -0.125, 0xC0000000, None, "truncate", False, 32, 0.0),  # 1/4 of the way to -0.5: no NaN, 0
]


@pytest.mark.parametrize("fmt, x, u, rbits, variant, saturate, word_bits, expected", SR_KNOWN, ids=lambda v: str(v))
def test_stochastic_known_answers(fmt, x, u, rbits, variant, saturate, word_bits, expected):
    code = reference_round(x, fmt, "stochastic", u=u, rbits=rbits, variant=variant, saturate=saturate,
                           word_bits=word_bits)  # fmt: skip
    got = reference_decode(code, fmt)
    assert _same(got, expected), (fmt.name, x, hex(u), rbits, variant, saturate, word_bits, got)


def test_stochastic_known_codes():
    assert reference_round(460.0, F.E4M3, "stochastic", u=0xA0000000) == 0x7F
    assert reference_round(-460.0, F.E4M3, "stochastic", u=0, saturate=True) == 0xFE
    assert reference_round(-1.25, F.INT8, "stochastic", u=np.uint32(0xC0000000)) == 0xFE
    assert reference_round(-1.25, F.INT8, "stochastic", u=np.uint64(0xC000000000000000), word_bits=64) == 0xFE
    assert reference_round(59392.0, F.E5M2, "stochastic", u=0xC0000000) == 0x7C
    assert reference_round(3.0, F.E8M0, "stochastic", u=0x80000000) == 129


def test_stochastic_probability_is_the_fraction():
    # Over every word of r bits, the share that rounds up is T / 2**r: floor(f 2**r) / 2**r
    # (truncate) or rne(f 2**r) / 2**r (unbiased); with r = W the exact f of a short fraction.
    lo, step = Fraction(1), Fraction(1, 2**7)  # BF16 between 1 and 1 + 2**-7
    for num, den in ((1, 8), (3, 8), (5, 8), (1, 3), (9, 10), (1, 2), (7, 1024)):
        x = float(lo + Fraction(num, den) * step)
        f = (Fraction(x) - lo) / step  # float64's f
        for r in (1, 2, 3, 4, 6):
            ups = {}  # how many of the 2**r words round up, from 1.0 (0x3F80)
            for v in ("truncate", "unbiased"):
                codes = [reference_round(x, F.BF16, "stochastic", u=u, rbits=r, variant=v) for u in range(1 << r)]
                ups[v] = sum(c != 0x3F80 for c in codes)
            scaled = f * (1 << r)
            assert ups["truncate"] == math.floor(scaled), (x, r)
            assert ups["unbiased"] == round(scaled), (x, r)  # Python's round: half to even
    # rbits = W with truncate is the exact mode
    for x in (1.25, 1.1, 1 + 2.0**-30, 460.0):
        for u in (0, 0x12345678, 0xC0000000, 0xFFFFFFFF):
            for fmt in (F.INT8, F.E4M3, F.BF16):
                exact = reference_round(x, fmt, "stochastic", u=u)
                assert reference_round(x, fmt, "stochastic", u=u, rbits=32) == exact


def test_stochastic_bad_arguments():
    with pytest.raises(ValueError, match="needs u="):
        reference_round(1.0, F.E4M3, "stochastic")
    for u in (-1, W32, 1.5, True, "1"):
        with pytest.raises(ValueError, match=r"u must be an int in \[0, 2\*\*32\)"):
            reference_round(1.0, F.E4M3, "stochastic", u=u)
    reference_round(1.0, F.E4M3, "stochastic", u=W64 - 1, word_bits=64)
    for rbits in (0, 33, 2.0, True):
        with pytest.raises(ValueError, match=r"rbits must be an int in \[1, 32\]"):
            reference_round(1.0, F.E4M3, "stochastic", u=0, rbits=rbits)
    with pytest.raises(ValueError, match="variant must be one of"):
        reference_round(1.0, F.E4M3, "stochastic", u=0, variant="ieee")
    with pytest.raises(ValueError, match="word_bits must be 32 or 64"):
        reference_round(1.0, F.E4M3, "stochastic", u=0, word_bits=16)
    for kw in ({"u": 0}, {"rbits": 3}):
        with pytest.raises(ValueError, match=f"{next(iter(kw))} is only used with rounding='stochastic'"):
            reference_round(1.0, F.E4M3, "nearest_even", **kw)
    with pytest.raises(ValueError, match="codebook formats round to nearest only"):
        reference_round(0.3, F.NF4, "stochastic", u=0)


def test_bad_arguments():
    with pytest.raises(ValueError):
        reference_round(1.0, F.E4M3, "nearest")
    with pytest.raises(ValueError):
        reference_decode(256, F.E4M3)
    with pytest.raises(TypeError):
        reference_round("1.0", F.E4M3)


def test_reference_functions_name_fmt_when_it_is_not_a_format():
    for call in (lambda: reference_decode(0, "e4m3"), lambda: reference_round(1.0, "e4m3", "nearest_even")):
        with pytest.raises(TypeError, match="fmt must be a FloatFormat"):
            call()
