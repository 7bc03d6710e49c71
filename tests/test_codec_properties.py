"""Property tests of the codec (``encode`` / ``decode`` / ``quantize``) against the oracle.

Every built-in format (NF4 aside) in every deterministic rounding mode, with and
without ``saturate``, and formats drawn at random (any exponent / mantissa width, bias,
special style, sign and subnormal choice; integers of 1 to 32 bits) are encoded in
batches of hard float32 inputs and compared code by code with the exact oracle
``numfmt.testing.reference`` (docs/semantics.md). Invariants that need no oracle
(round trip, idempotence, monotonicity, directed bounds) are checked too, and float64
inputs are shown to be rounded once, not through float32.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import numfmt as nf
from numfmt import formats as F
from numfmt.formats import SPECIALS, FloatFormat, IntFormat
from numfmt.testing.reference import grid_value, reference_decode, reference_round
from tests.bits import same_bits

MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd")
BUILTIN = [F.get(n) for n in F.names() if F.get(n).kind in ("float", "int")]  # log formats: tests/test_logformat.py
BATCH = 64
EXAMPLES = settings().max_examples  # of the loaded profile (tests/conftest.py)
F32 = np.finfo(np.float32)
F32_MAX = float(F32.max)


# ---- inputs: float32 bit patterns ---------------------------------------------------


def _bits(v) -> int:
    """The float32 bit pattern of ``v`` (a Fraction or float), rounded to nearest; inf past range."""
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    with np.errstate(over="ignore"):
        return int(np.array([f], dtype=np.float32).view(np.uint32)[0])


def _step(bits: int, k: int) -> int:
    """Move a float32 bit pattern ``k`` ulps away from zero (not past inf, not below 0)."""
    mag = bits & 0x7FFFFFFF
    if mag >= 0x7F800000:
        return bits
    return (bits & 0x80000000) | min(max(mag + k, 0), 0x7F800000)


def _points(fmt):
    """``(n, point)``: the number of points of the extended grid and the i-th, from the bottom.

    Float formats: the non-negative points up to the first past ``max``; integers: the
    integers from ``min - 1`` to ``max + 1``.
    """
    if fmt.kind == "int":
        lo = fmt.min - 1
        return fmt.max - lo + 2, lambda i: Fraction(lo + i)
    first = 1 if fmt.has_zero else 0
    n = fmt.max_code + 2 - fmt.min_positive_code + first

    def point(i):
        return Fraction(0) if first and i == 0 else grid_value(fmt.min_positive_code + i - first, fmt)

    return n, point


def tie_bits(fmt):
    """Ties between neighbouring grid points, one ulp either side, or the points themselves."""
    n, point = _points(fmt)
    index = st.one_of(st.integers(0, min(n - 2, 40)), st.integers(max(0, n - 42), n - 2), st.integers(0, n - 2))

    def build(i, where, k, negative):
        lo, hi = point(i), point(i + 1)
        v = {"tie": (lo + hi) / 2, "lo": lo, "quarter": (3 * lo + hi) / 4}[where]
        b = _step(_bits(v), k)
        return b ^ 0x80000000 if negative else b

    return st.builds(
        build, index, st.sampled_from(["tie", "tie", "lo", "quarter"]), st.sampled_from([-1, 0, 0, 1]), st.booleans()
    )


def special_bits(fmt):
    """Zeros, infinities, NaNs, float32's extremes, the format's smallest and largest values."""
    out = [0, 0x7F800000, 0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0x7F7FFFFF, 1]
    if fmt.kind == "float":
        tiny = _bits(grid_value(fmt.min_positive_code, fmt))
        top, nxt = grid_value(fmt.max_code, fmt), grid_value(fmt.max_code + 1, fmt)
        threshold = _bits((top + nxt) / 2)
        out += [tiny, _bits(grid_value(fmt.min_positive_code, fmt) / 2), _bits(top)]
        out += [_step(b, k) for b in (tiny, threshold) for k in (-1, 0, 1)]
    else:
        out += [_bits(fmt.max), _bits(fmt.max + 0.5), _bits(fmt.min - 0.5), _bits(fmt.min)]
    out += [b ^ 0x80000000 for b in out]
    return st.sampled_from(out)


def batches(fmt):
    """A float32 array of ``BATCH`` hard inputs for ``fmt``."""
    element = st.one_of(tie_bits(fmt), special_bits(fmt), st.integers(0, 2**32 - 1))
    # Full batches: short lists padded by repetition would waste most of an example.
    return st.lists(element, min_size=BATCH, max_size=BATCH).map(
        lambda b: np.array(b, dtype=np.uint32).view(np.float32)
    )


@st.composite
def float_formats(draw, anywhere=True):
    """A valid FloatFormat: bias near the IEEE default, or (``anywhere``) any legal one."""
    exp_bits, man_bits = draw(st.integers(1, 8)), draw(st.integers(0, 10))
    specials = draw(st.sampled_from(SPECIALS))
    signed = specials == "fnuz" or (specials != "e8m0" and draw(st.booleans()))
    subnormals = specials != "e8m0" and draw(st.booleans())
    default = 2 ** (exp_bits - 1) - 1
    near = st.integers(default - 2**exp_bits, default + 2**exp_bits)
    bias = draw(st.one_of(near, near, near, st.integers(-1000, 1000)) if anywhere else near)
    try:
        return FloatFormat(
            "custom", exp_bits, man_bits, bias=bias, signed=signed, subnormals=subnormals, specials=specials
        )
    except ValueError:
        assume(False)


@st.composite
def int_formats(draw):
    bits, signed = draw(st.integers(1, 32)), draw(st.booleans())
    narrow = signed and bits >= 2 and draw(st.booleans())
    return IntFormat("custom_int", bits, signed=signed, narrow=narrow)


def _fits_float32(fmt) -> bool:
    """Whether every value of ``fmt`` is a float32 (so ``quantize`` on float32 is exact).

    A float format's lowest binade steps by ``min_normal * 2**-man_bits`` with or
    without subnormals (without them, ``min_normal`` itself needs every mantissa bit
    below it): that step, not the smallest value, must be a float32 step.
    """
    if fmt.kind == "int":
        return fmt.bits <= 24
    step = fmt.min_normal * 2.0 ** -fmt.man_bits
    return fmt.man_bits <= 23 and fmt.max <= F32_MAX and step >= float(F32.smallest_subnormal)


# ---- comparison with the oracle -------------------------------------------------------


def _is_nan_code(code: int, fmt) -> bool:
    value = reference_decode(code, fmt)
    return isinstance(value, float) and math.isnan(value)


def check_against_oracle(x, fmt, mode, saturate):
    """Encode ``x`` and compare every code with ``reference_round`` (NaN codes: any NaN)."""
    codes = np.asarray(nf.encode(x, fmt, mode, saturate=saturate))
    assert codes.dtype == fmt.code_dtype
    bad = []
    for xi, got in zip(x, codes.tolist()):
        want = reference_round(xi, fmt, mode, saturate=saturate)
        if got != want and not (_is_nan_code(got, fmt) and _is_nan_code(want, fmt)):
            bad.append(
                f"x={float(xi)!r} (0x{int(np.float32(xi).view(np.uint32)):08x}): codec {got:#x}, oracle {want:#x}"
            )
    assert not bad, f"{fmt!r} rounding={mode} saturate={saturate}:\n" + "\n".join(bad[:10])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", BUILTIN, ids=str)
@settings(max_examples=max(4, EXAMPLES // 3))
@given(data=st.data())
def test_builtin_formats_match_oracle(fmt, mode, data):
    saturate = data.draw(st.booleans(), label="saturate")
    check_against_oracle(data.draw(batches(fmt), label="x"), fmt, mode, saturate)


@settings(max_examples=2 * EXAMPLES)
@given(
    data=st.data(), fmt=st.one_of(float_formats(), int_formats()), mode=st.sampled_from(MODES), saturate=st.booleans()
)
def test_custom_formats_match_oracle(data, fmt, mode, saturate):
    check_against_oracle(data.draw(batches(fmt), label="x"), fmt, mode, saturate)


@pytest.mark.parametrize("specials", ["none", "fn", "fnuz"])
def test_infinity_into_a_format_wider_than_float32(specials):
    # max = 1.875 * 2**255: float32's inf must still become ±max (or NaN), not 2**128.
    fmt = FloatFormat("wide", 8, 3, bias=0, specials=specials)
    check_against_oracle(np.array([np.inf, -np.inf] * (BATCH // 2), np.float32), fmt, "toward_zero", True)
    check_against_oracle(np.array([np.inf, -np.inf] * (BATCH // 2), np.float32), fmt, "nearest_even", False)


def _check_decode(fmt):
    """``decode`` of every code (at most 2**16) against ``reference_decode``, bitwise."""
    codes = np.arange(min(1 << fmt.bits, 1 << 16), dtype=np.uint32).astype(fmt.code_dtype)
    got = np.asarray(nf.decode(codes, fmt, np.float32))
    want = np.array([float(reference_decode(c, fmt)) for c in codes.tolist()], dtype=np.float32)
    bad = np.flatnonzero(~((got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))))
    assert not bad.size, [(hex(int(codes[i])), got[i], want[i]) for i in bad[:10]]


@pytest.mark.parametrize("fmt", [f for f in BUILTIN if f.bits <= 16], ids=str)
def test_decode_matches_oracle(fmt):
    _check_decode(fmt)


@settings(max_examples=EXAMPLES)
@given(fmt=st.one_of(float_formats(anywhere=False), int_formats()).filter(lambda f: _fits_float32(f) and f.bits <= 16))
def test_decode_of_a_custom_format_matches_oracle(fmt):
    _check_decode(fmt)


# ---- invariants -----------------------------------------------------------------------


formats_fitting_float32 = st.one_of(
    st.sampled_from([f for f in BUILTIN if _fits_float32(f)]), float_formats(anywhere=False), int_formats()
).filter(_fits_float32)


@settings(max_examples=EXAMPLES)
@given(data=st.data(), fmt=formats_fitting_float32, mode=st.sampled_from(MODES), saturate=st.booleans())
def test_decode_of_encode_is_quantize_and_idempotent(data, fmt, mode, saturate):
    x = data.draw(batches(fmt), label="x")
    q = np.asarray(nf.quantize(x, fmt, mode, saturate=saturate))
    assert q.dtype == np.float32
    assert same_bits(nf.decode(nf.encode(x, fmt, mode, saturate=saturate), fmt, np.float32), q)
    assert same_bits(nf.quantize(q, fmt, mode, saturate=saturate), q)


@settings(max_examples=EXAMPLES)
@given(data=st.data(), fmt=formats_fitting_float32, mode=st.sampled_from(MODES), saturate=st.booleans())
def test_monotone_and_directed_bounds(data, fmt, mode, saturate):
    x = data.draw(batches(fmt), label="x")
    x = np.sort(x[~np.isnan(x)])
    q = np.asarray(nf.quantize(x, fmt, mode, saturate=saturate))
    finite_q = q[~np.isnan(q)]
    assert np.all(finite_q[:-1] <= finite_q[1:]), (x[~np.isnan(q)], finite_q)

    # Within the format's range rounding moves a value only to a neighbour.
    if fmt.kind == "int":
        lo, hi = fmt.min, fmt.max
    else:
        hi = fmt.max
        lo = -hi if fmt.signed else (fmt.min_subnormal if fmt.specials == "e8m0" else 0.0)
    inside = (x >= lo) & (x <= hi) & ~np.isnan(q)
    xin, qin = x[inside].astype(np.float64), q[inside].astype(np.float64)
    if mode == "down":
        assert np.all(qin <= xin)
    elif mode == "up":
        assert np.all(qin >= xin)
    elif mode == "toward_zero":
        assert np.all(np.abs(qin) <= np.abs(xin))


def _values_fitting_float32(fmt):
    v = fmt.values()
    return v[np.abs(v) <= F32_MAX].astype(np.float32)


@pytest.mark.parametrize("fmt", [f for f in BUILTIN if f.bits <= 16], ids=str)
def test_every_value_round_trips(fmt):
    v = _values_fitting_float32(fmt)
    for mode in MODES:
        assert same_bits(nf.quantize(v, fmt, mode), v), mode
    assert same_bits(nf.decode(nf.encode(v, fmt, "odd", saturate=True), fmt, np.float32), v)


@settings(max_examples=EXAMPLES)
@given(fmt=formats_fitting_float32.filter(lambda f: f.bits <= 12), mode=st.sampled_from(MODES))
def test_every_value_of_a_custom_format_round_trips(fmt, mode):
    v = _values_fitting_float32(fmt)
    assert same_bits(nf.quantize(v, fmt, mode), v)


# ---- float64 inputs: rounded once ---------------------------------------------------------


def _double_rounding_cases(fmt):
    """float64 inputs just off a tie of ``fmt`` that float32 rounds onto the tie.

    Above a tie whose lower neighbour has the even code (and below one whose upper
    neighbour has), float64 -> float32 -> fmt lands on the wrong neighbour.
    """
    n, point = _points(fmt)
    out = []
    for i in sorted(set(np.linspace(0, n - 2, 300).astype(int).tolist())):
        lo, hi = point(i), point(i + 1)
        tie = (lo + hi) / 2
        nudge = abs(tie) * Fraction(1, 2**40)
        down = reference_round(tie, fmt) == reference_round(lo, fmt)  # where the tie itself goes
        x = float(tie + nudge if down else tie - nudge)
        if x and np.float32(x) == tie:
            out += [x, -x] if fmt.signed else [x]
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("fmt", [F.E4M3, F.E5M2, F.FP16, F.BF16, F.E2M1, F.E8M0, F.INT8], ids=str)
def test_float64_input_is_rounded_once(fmt):
    x = _double_rounding_cases(fmt)
    once = [reference_round(v, fmt) for v in x]
    twice = [reference_round(np.float32(v), fmt) for v in x]
    wrong = sum(a != b for a, b in zip(once, twice))
    assert wrong >= len(x) // 2 > 0, wrong  # the double-rounding trap is real for these inputs
    with jax.enable_x64(True):
        codes = nf.encode(x, fmt)
        assert codes.dtype == fmt.code_dtype
        assert np.asarray(codes).tolist() == once
        q = nf.quantize(x, fmt)  # its own short path (numfmt.nearest): rounded once as well
        assert same_bits(q, nf.decode(np.array(once, fmt.code_dtype), fmt, q.dtype))


# ---- quantize's short path (numfmt.nearest), hard cases in float32 and float64 ------------


def _hard_inputs(fmt, dtype) -> np.ndarray:
    """Values of ``fmt`` and the midpoints between them (all of them for formats of at
    most 8 bits, else every 64th and the ends of the range), each with one ``dtype`` ulp
    either side; half the smallest subnormal, the overflow threshold, the input type's
    largest and smallest numbers, zeros, infinities and NaN; both signs."""
    grid = np.unique(np.abs(fmt.values()[np.isfinite(fmt.values())])).astype(np.float64)
    top = float(fmt.value_of(fmt.max_code + 1))  # the grid extended past max: its midpoint is the threshold
    grid = np.append(grid, top)
    mids = (grid[1:] + grid[:-1]) / 2
    if grid.size > 512:
        keep = np.r_[0:8, 8:grid.size - 8:64, grid.size - 8:grid.size]
        grid, mids = grid[keep], mids[keep[:-1]]
    info = np.finfo(dtype)
    pts = np.concatenate([grid, mids, [grid[1] / 4]])
    pts = pts[pts <= info.max].astype(dtype)
    pts = np.concatenate([pts, np.nextafter(pts, dtype(np.inf)), np.nextafter(pts, dtype(0)),
                          [info.max, info.tiny, info.smallest_subnormal, np.inf, 0.0]]).astype(dtype)
    return np.concatenate([pts, -pts, [np.nan]]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "fmt",
    [F.E4M3, F.E5M2, F.E4M3FNUZ, F.E5M2FNUZ, F.E3M2, F.E2M3, F.E2M1, F.FP16, F.BF16,
     FloatFormat("e3m3", 3, 3), FloatFormat("e4m1_nonan", 4, 1, specials="none")],
    ids=str,
)
def test_quantize_short_path_at_the_hard_cases(fmt, dtype):
    """``quantize(x, fmt)`` (nearest_even) is the exactly rounded value at the ties, the
    overflow threshold, half the smallest subnormal, the input type's extremes, zeros,
    infinities and NaN, saturating or not, from float32 and from float64 inputs (the
    oracle's encode is checked elsewhere; this is quantize's own short path,
    :mod:`numfmt.nearest`: its bit rounding and its subnormal step on the float unit)."""
    x = _hard_inputs(fmt, dtype)
    with jax.enable_x64(dtype == np.float64):
        for saturate in (False, True):
            q = nf.quantize(x, fmt, saturate=saturate)
            want = [reference_round(float(v), fmt, saturate=saturate) for v in x]
            assert same_bits(q, nf.decode(np.array(want, fmt.code_dtype), fmt, q.dtype)), (fmt, saturate)
