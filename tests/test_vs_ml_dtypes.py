"""Bit-exactness of ``numfmt.encode`` against the NumPy / ml_dtypes casts.

For every float format of the registry with a dtype, ``encode(x, fmt)`` (nearest_even,
saturate=False) must give the bits of ``x.astype(fmt.dtype)`` for float32 ``x``, except
for the accepted families of benchmarks/exhaustive_vs_ml_dtypes.py (see
docs/conformance.md): both NaN; NaN to zero in formats without NaN; and in E8M0 only,
ties (P3109 even rule) and the ml_dtypes subnormal bug.

Integer formats are not compared with ml_dtypes on purpose: an ml_dtypes / NumPy int
cast truncates toward zero and wraps around like C, while numfmt rounds by the mode
and clamps to the range (quantization semantics, docs/design.md). tests of the int codec
check it against the exact oracle instead.

The default run checks every float16 bit pattern, every tie point of each format
with one float32 ulp either side, and a few million random float32 patterns. The
``exhaustive`` marker runs all 2**32 float32 patterns (minutes; see docs/benchmarks.md).
"""

import pathlib
import sys
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

import numfmt as nf

# The check's core lives in the benchmark script. It is imported by name from a path
# entry, so that its worker processes ('spawn', which re-imports by name and inherits
# sys.path) can find it.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import exhaustive_vs_ml_dtypes as exhaustive

FORMATS = exhaustive.compared_formats()
N_RANDOM = 1 << 22


def test_every_format_with_a_dtype_is_compared():
    names = {f.name for f in FORMATS}
    expected = {
        "fp32", "fp16", "bf16", "e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "e4m3b11fnuz",
        "e4m3ieee", "e3m4", "e3m2", "e2m3", "e2m1", "e8m0",
    }  # fmt: skip
    assert expected <= names
    assert nf.E8M0.dtype == np.dtype(ml_dtypes.float8_e8m0fnu)
    assert nf.FP16.dtype == np.dtype(np.float16)


def tie_points(fmt) -> np.ndarray:
    """Every midpoint of neighbouring values (and the overflow threshold), ± one ulp, both signs."""
    top = fmt.value_of(fmt.max_code + 1)  # the next value of the grid extended past max
    grid = np.append(np.unique(np.abs(fmt.values())), float(top))
    mids = (grid[1:] + grid[:-1]) / 2  # exact in float64: the values have few bits
    ties = mids.astype(np.float32)
    assert np.array_equal(ties.astype(np.float64), mids), f"a tie of {fmt.name} is not a float32"
    around = [ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(0))]
    pos = np.concatenate(around)
    return np.concatenate([pos, -pos]).view(np.uint32)


def fast_inputs(fmt) -> np.ndarray:
    """float32 bit patterns: every float16, the format's ties, and random patterns."""
    f16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    parts = [f16.view(np.uint32)]
    if fmt.bits <= 16:
        parts.append(tie_points(fmt))
    rng = np.random.default_rng(20240917)
    parts.append(rng.integers(0, 1 << 32, N_RANDOM, dtype=np.uint64).astype(np.uint32))
    return np.concatenate(parts)


def _report(fmt, counts, examples):
    return "\n  ".join([f"{fmt.name}: {counts}", *exhaustive.describe_examples(examples)])


def _assert_only_accepted(fmt, counts, examples):
    assert counts["unexplained"] == 0, _report(fmt, counts, examples)
    assert counts["quantize_differs"] == 0, _report(fmt, counts, examples)
    if fmt.specials != "e8m0":
        assert counts["e8m0_tie"] == counts["e8m0_subnormal"] == 0
    if fmt.has_nan:
        assert counts["nan_input_zero"] == 0


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_encode_matches_ml_dtypes(fmt):
    """encode == the ml_dtypes cast up to the accepted families; quantize == decode(encode)."""
    bits = fast_inputs(fmt)
    counts, examples = exhaustive.check_bits(bits, fmt)
    _assert_only_accepted(fmt, counts, examples)
    assert sum(counts[k] for k in exhaustive.FAMILIES) == bits.size


def test_quantize_check_catches_a_difference(monkeypatch):
    # check_bits also compares quantize with decode(encode) (numfmt's short quantize
    # paths); a quantize that negates its result must show up in quantize_differs.
    real = nf.quantize
    monkeypatch.setattr(nf, "quantize", lambda x, fmt, *a, **k: -real(x, fmt, *a, **k))
    exhaustive._numfmt_side.cache_clear()
    try:
        x = np.array([1.0, -2.5, 0.0, 448.0, np.nan, 1e-3], np.float32)
        counts, examples = exhaustive.check_bits(x.view(np.uint32), nf.E4M3)
    finally:
        exhaustive._numfmt_side.cache_clear()
    assert counts["quantize_differs"] == 5  # all but the NaN
    assert examples[-1][:2] == ("quantize", int(x.view(np.uint32)[0]))
    assert counts["unexplained"] == 0  # encode itself is unchanged


def test_ties_points_are_ties():
    # 2.5 and 3.5 sit between E2M1's 2, 3 and 4; 5 between 4 and 6; 7 is the overflow threshold.
    t = tie_points(nf.E2M1).view(np.float32)
    assert {0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0} <= set(t.tolist())


# ---- E8M0: the two accepted families, checked with exact arithmetic ------------------


def _e8m0(bits):
    bits = np.asarray(bits, dtype=np.uint32)
    x = bits.view(np.float32)
    ours = np.asarray(nf.encode(x, nf.E8M0)).astype(np.int64)
    ref = exhaustive.reference_codes(x, nf.E8M0).astype(np.int64)
    return x, ours, ref


def _e8m0_value(code):
    return Fraction(2) ** (int(code) - 127)


def test_e8m0_ties_follow_the_even_rule():
    """Family (a): at 1.5 * 2**k ml_dtypes rounds up; numfmt gives the even code (P3109)."""
    ks = np.arange(-127, 128)
    x = (1.5 * np.ldexp(1.0, ks)).astype(np.float32)
    x, ours, ref = _e8m0(x.view(np.uint32))
    n_mismatch = 0
    for xi, k, o, r in zip(x, ks, ours, ref):
        assert Fraction(float(xi)) == Fraction(3, 2) * Fraction(2) ** int(k)  # exactly a tie
        lo = int(k) + 127  # the code of 2**k; the tie is between lo and lo + 1
        assert o == (lo if lo % 2 == 0 else lo + 1), (k, o)  # the even one
        assert r == lo + 1  # ml_dtypes 0.6 rounds every tie up (lo + 1 = 255 is NaN)
        n_mismatch += o != r
    assert n_mismatch == 128  # odd k: -127, -125, ..., 127
    counts, _ = exhaustive.classify(x.view(np.uint32), ours.astype(np.uint8), ref.astype(np.uint8), nf.E8M0)
    assert counts["e8m0_tie"] == 128 and counts["unexplained"] == 0


def test_e8m0_subnormal_family_is_an_ml_dtypes_bug():
    """Family (b): float32 subnormals in (2**-127, 1.5 * 2**-127) are nearer 2**-127.

    ml_dtypes 0.6 gives code 1 (2**-126) for each of them; numfmt gives code 0.
    """
    lo, tie = 0x00400000, 0x00600000  # 2**-127 and 1.5 * 2**-127, float32 subnormals
    rng = np.random.default_rng(7)
    inside = np.concatenate([[lo + 1, lo + 2, tie - 2, tie - 1], rng.integers(lo + 1, tie, 2000)])
    x, ours, ref = _e8m0(inside)
    assert (ours == 0).all() and (ref == 1).all()
    for xi, o, r in zip(x, ours, ref):
        v = Fraction(float(xi))
        assert _e8m0_value(0) < v < Fraction(3, 2) * _e8m0_value(0)
        assert abs(v - _e8m0_value(o)) < abs(v - _e8m0_value(r))  # numfmt is nearer: exact
    counts, _ = exhaustive.classify(x.view(np.uint32), ours.astype(np.uint8), ref.astype(np.uint8), nf.E8M0)
    assert counts["e8m0_subnormal"] == inside.size
    # Just outside the family both agree: 2**-127 itself, the tie's far side, and below.
    x, ours, ref = _e8m0([lo, lo - 1, 1, tie + 1, 0x007FFFFF, 0x00800000])
    assert list(ours) == list(ref) == [0, 0, 0, 1, 1, 1]


def test_e8m0_family_tests_are_exact():
    # The integer test in the script against Fraction arithmetic, on the family's edges.
    lo, tie = 0x00400000, 0x00600000
    bits = np.array([lo - 1, lo, lo + 1, tie - 1, tie, tie + 1], dtype=np.uint32)
    got = exhaustive.is_e8m0_subnormal_case(bits)
    for b, g in zip(bits, got):
        v = Fraction(float(np.array(b, np.uint32).view(np.float32)))
        nearer_low = abs(v - Fraction(2) ** -127) < abs(v - Fraction(2) ** -126)
        assert g == (v > Fraction(2) ** -127 and nearer_low), hex(b)
    assert list(exhaustive.is_e8m0_tie(bits)) == [False, False, False, False, True, False]


def test_no_nan_formats_give_zero_for_nan():
    x = np.array([np.nan, -np.nan], dtype=np.float32)
    x = np.concatenate([x, (x.view(np.uint32) | np.uint32(0x123)).view(np.float32)])
    for fmt in (nf.E2M1, nf.E3M2, nf.E2M3):
        ours = np.asarray(nf.encode(x, fmt))
        ref = exhaustive.reference_codes(x, fmt)
        assert (ours == 0).all()
        assert (ref & ~np.uint8(fmt.sign_mask) == 0).all()  # a zero of either sign


@pytest.fixture(scope="module")
def exhaustive_results(request):
    """All 2**32 float32 patterns for every format, in one pool of 2 worker processes."""
    results, wall = exhaustive.run([f.name for f in FORMATS], workers=2, verbose=False)
    # The counts table goes to the log (CI's record of the run), not only to a failure.
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(exhaustive.format_table(results))
            reporter.write_line(f"all 2**32 float32 inputs, {len(results)} formats, 2 workers: {wall:.0f} s wall")
    return results


@pytest.mark.exhaustive
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_encode_matches_ml_dtypes_exhaustive(fmt, exhaustive_results):
    res = exhaustive_results[fmt.name]
    counts = res["counts"]
    _assert_only_accepted(fmt, counts, res["examples"])
    assert sum(counts[k] for k in exhaustive.FAMILIES) == 1 << 32
    if fmt.specials == "e8m0":
        assert counts["e8m0_tie"] == 128  # 1.5 * 2**k for odd k in -127..127
        assert counts["e8m0_subnormal"] == 0x00600000 - 0x00400000 - 1
