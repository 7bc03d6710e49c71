"""Stochastic rounding (issue 3): exactness, statistics, stagnation, JAX, errors, the RNG.

The rule under test (``numfmt.rounding.stochastic_increment``, docs/stochastic.md): a
value between neighbours ``lo < |x| < hi`` of the format's extended grid, at fraction
``f = (|x| - lo) / (hi - lo)``, rounds up in magnitude iff the random word ``R`` added to
the fraction carries out:

* exact (``rbits=None``): ``R + floor(f * 2**W) >= 2**W``, W = 32 (float16 / bfloat16 /
  float32 inputs, uint32 words) or 64 (float64 inputs, uint64 words);
* ``rbits=r``: ``(R mod 2**r) + T_r >= 2**r`` with ``T_r = floor(f * 2**r)``
  (``sr_variant="truncate"``) or ``f * 2**r`` rounded to nearest, ties to even
  (``"unbiased"``, IEEE P3109).

The exactness tests recompute that rule here in Python integers and Fractions: the
neighbours and the fraction from the value's exact binade, and the codes of ``lo`` and
``hi`` (which are exact grid points, or past ``max``) from the deterministic oracle
``reference_round(., "nearest_even")``, so that overflow, specials, saturation and the
sign of zero follow docs/semantics.md without sharing code with the codec. They also hold
the codec to the exact oracle's own stochastic mode, ``reference_round(., "stochastic",
u=...)``, and a hypothesis test does so over random formats, inputs and words.

Statistical tests use a 5-standard-error tolerance (two-sided false-alarm rate about
6e-7 per check); the random source is fixed by the key, so each run is deterministic.
"""

from __future__ import annotations

import math
import zlib
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jax import lax

import numfmt as nf
from numfmt.formats import CodebookFormat, FloatFormat, IntFormat
from numfmt.rounding import SR_VARIANTS, hash_bits
from numfmt.testing.reference import grid_value, reference_round

F32 = np.float32
Z = 5.0  # tolerance in standard errors

# A float format without subnormals (grid {0, min_normal} below the normal range), and an
# unsigned one, besides the registry's.
E4M3_NOSUB = FloatFormat("e4m3_nosub", 4, 3, subnormals=False, specials="fn")
E3M3_UNSIGNED = FloatFormat("e3m3u", 3, 3, signed=False)
FLOAT_FMTS = [
    nf.BF16, nf.FP16, nf.E4M3, nf.E5M2, nf.E2M1, nf.E3M2, nf.E2M3, nf.E4M3FNUZ,
    nf.E5M2FNUZ, nf.E8M0, nf.TF32, nf.FP32, E4M3_NOSUB, E3M3_UNSIGNED,
]  # fmt: skip
INT_FMTS = [nf.INT8, nf.INT4, nf.UINT8, nf.INT16, IntFormat("int8n", 8, narrow=True), nf.INT32, nf.UINT4]
ALL_FMTS = FLOAT_FMTS + INT_FMTS


# ---- the rule, recomputed in Python integers -------------------------------------------


def _pow2(k: int) -> Fraction:
    return Fraction(2) ** k


def _split(x: float, fmt, saturate: bool):
    """``(lo_code, hi_code, num, den)``: ``x`` gives ``hi_code`` iff it rounds up, at ``f = num/den``.

    Specials, zeros and E8M0's no-neighbour cases have one outcome: ``f = 0``.
    """
    x = float(x)

    def code(v):
        return reference_round(v, fmt, "nearest_even", saturate=saturate)

    if math.isnan(x) or math.isinf(x) or x == 0.0:
        c = code(x)
        return c, c, 0, 1
    neg = x < 0
    a = abs(Fraction(x))
    if isinstance(fmt, IntFormat):
        step = Fraction(1)
    else:
        if fmt.specials == "e8m0" and (neg or a < _pow2(fmt.emin)):
            c = code(x)
            return c, c, 0, 1
        e = math.frexp(abs(x))[1] - 1  # 2**e <= a < 2**(e + 1)
        p = fmt.man_bits
        if e >= fmt.emin:
            step = _pow2(e - p)
        elif fmt.subnormals:
            step = _pow2(fmt.emin - p)
        else:
            step = _pow2(fmt.emin)  # the grid {0, min_normal}
    q = a // step
    frac = a / step - q
    lo, hi = q * step, (q + 1) * step
    # Fractions (hi may lie past float64's range); -0.0 for a negative lo of 0
    signed = (lambda v: -v if v else -0.0) if neg else (lambda v: v)
    return code(signed(lo)), code(signed(hi)), frac.numerator, frac.denominator


def _threshold(num: int, den: int, rbits, variant, width: int) -> tuple[int, int]:
    """``(T, m)``: round up iff ``(R mod 2**m) + T >= 2**m``."""
    if rbits is None:
        return (num << width) // den, width
    scaled = num << rbits
    t, rest = divmod(scaled, den)
    if variant == "unbiased" and (2 * rest > den or (2 * rest == den and t % 2 == 1)):
        t += 1
    return t, rbits


def _words(rng, thresholds, width: int):
    """Random words; about 40% of them set on the carry boundary (``R mod 2**m = 2**m - T - {0, 1}``)."""
    out = []
    for t, m in thresholds:
        w = int(rng.integers(0, 1 << 62)) << 2 | int(rng.integers(0, 4))
        w &= (1 << width) - 1
        if rng.random() < 0.4:
            low = ((1 << m) - t - int(rng.integers(0, 2))) % (1 << m)
            w = (w >> m << m) | low
        out.append(w)
    return out


def _expected(splits, words, thresholds):
    return [
        hi if (w % (1 << m)) + t >= (1 << m) else lo for (lo, hi, _, _), w, (t, m) in zip(splits, words, thresholds)
    ]


# ---- inputs --------------------------------------------------------------------------

FRACTIONS = [Fraction(0), Fraction(1, 8), Fraction(1, 4), Fraction(1, 3), Fraction(1, 2), Fraction(9, 10),
             Fraction(1, 2**20), 1 - Fraction(1, 2**20)]  # fmt: skip


def _to_f32(v) -> np.float32:
    try:
        f = float(v)
    except OverflowError:
        f = math.inf if v > 0 else -math.inf
    with np.errstate(over="ignore"):
        return np.float32(f)


def _cases(fmt, seed: int, n_grid: int = 160) -> np.ndarray:
    """A few thousand float32 inputs: grid points, ties and fractions between neighbours
    (random and at the edges: zero, the subnormals, min_normal, max and past it), random
    magnitudes across the whole range and beyond, random bit patterns, and the specials."""
    rng = np.random.default_rng(seed)
    vals = []
    if isinstance(fmt, IntFormat):
        lo_int, hi_int = fmt.min, fmt.max
        edges = [lo_int - 2, lo_int - 1, lo_int, lo_int + 1, -1, 0, 1, hi_int - 1, hi_int, hi_int + 1]
        span = min(hi_int - lo_int, 1 << 22)
        bases = edges + [int(v) for v in rng.integers(-span // 2, span // 2 + 1, n_grid)]
        for b in bases:
            for f in FRACTIONS + [Fraction(float(rng.random()))]:
                vals.append(_to_f32(b + f))
        mags = np.exp2(rng.uniform(-30, 34, 300))
    else:
        p = fmt.man_bits
        top = fmt.max_code
        min_normal = fmt.emin_field << p
        special = [0, 1, 2, min_normal - 1, min_normal, min_normal + 1, top - 1, top, top + 1, top + 2]
        codes = [c for c in special if c >= 0] + [int(c) for c in rng.integers(0, top + 3, n_grid)]
        for c in codes:
            lo, hi = grid_value(c, fmt), grid_value(c + 1, fmt)
            for f in FRACTIONS + [Fraction(float(rng.random()))]:
                vals.append(_to_f32(lo + f * (hi - lo)))
        lo_exp = math.log2(fmt.min_subnormal if fmt.subnormals else fmt.min_normal) - 4
        mags = np.exp2(rng.uniform(max(lo_exp, -160), min(math.log2(fmt.max) + 3, 128), 300))
        # below the smallest step and in the flush region
        small = fmt.min_subnormal if fmt.subnormals else fmt.min_normal
        vals += [_to_f32(small * k) for k in (2.0**-30, 1e-3, 0.25, 0.5, 0.75, 0.999)]
    vals += [F32(v) for v in mags.astype(np.float32)]
    vals += list(rng.integers(0, 1 << 32, 200, dtype=np.uint64).astype(np.uint32).view(np.float32))
    vals += [F32(v) for v in (0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 1e-40, 2.0**-126, 3.4e38)]
    arr = np.array(vals, dtype=np.float32)
    signs = rng.random(arr.size) < 0.5
    return np.where(signs, -arr, arr)


def _check(fmt, x, rbits, variant, seed, *, saturate=False, width=32, op=None):
    """Encode ``x`` with supplied random words and compare with the rule, code by code."""
    rng = np.random.default_rng(seed)
    splits = [_split(v, fmt, saturate) for v in x.tolist()]
    thresholds = [_threshold(num, den, rbits, variant, width) for (_, _, num, den) in splits]
    words = _words(rng, thresholds, width)
    wdt = np.uint32 if width == 32 else np.uint64
    got = nf.encode(x, fmt, "stochastic", random_bits=np.array(words, wdt), rbits=rbits,
                    sr_variant=variant, saturate=saturate)  # fmt: skip
    got = np.asarray(got).astype(np.int64).tolist()
    want = _expected(splits, words, thresholds)
    # The exact oracle must give the same codes (it is checked against ``want`` here, and
    # encode against both).
    oracle = [reference_round(v, fmt, "stochastic", u=w, rbits=rbits, variant=variant, saturate=saturate,
                              word_bits=width) for v, w in zip(x.tolist(), words)]  # fmt: skip
    assert oracle == want, next(
        f"oracle != integer rule for {fmt.name} rbits={rbits} {variant}: x={x[i]!r} R={words[i]:#x}: "
        f"{oracle[i]:#x} vs {want[i]:#x}" for i in range(len(want)) if oracle[i] != want[i]
    )
    bad = [i for i in range(len(want)) if got[i] != want[i]]
    if bad:
        i = bad[0]
        (lo, hi, num, den), w = splits[i], words[i]
        raise AssertionError(
            f"{len(bad)}/{len(want)} mismatches for {fmt.name} rbits={rbits} {variant} saturate={saturate}; "
            f"first: x={x[i]!r} ({float(x[i]).hex()}), R={w:#x}, f={num}/{den}, lo={lo:#x}, hi={hi:#x}: "
            f"expected {want[i]:#x}, got {got[i]:#x}"
        )
    return splits


# ---- exactness ---------------------------------------------------------------------------


SATURATE_SAMPLE = ("e4m3", "e5m2", "bf16", "e2m1", "e4m3fnuz", "e3m3u", "int8")


@pytest.mark.parametrize(
    "fmt, saturate",
    [(f, False) for f in ALL_FMTS] + [(f, True) for f in ALL_FMTS if f.name in SATURATE_SAMPLE],
    ids=lambda v: v.name if hasattr(v, "name") else ("saturate" if v else "nosat"),
)
def test_exact_mode_follows_the_carry_rule(fmt, saturate):
    x = _cases(fmt, seed=zlib.crc32(fmt.name.encode()) % 1000)
    _check(fmt, x, None, "truncate", seed=1, saturate=saturate)


@pytest.mark.parametrize("r", range(1, 24))
def test_rbits_variants_follow_their_rule(r):
    # Every r from 1 to 23, both variants, on a float and an integer format (rotating
    # through the formats, so that each is met at several r).
    ffmt = FLOAT_FMTS[r % len(FLOAT_FMTS)]
    ifmt = INT_FMTS[r % len(INT_FMTS)]
    for fmt in (ffmt, ifmt):
        x = _cases(fmt, seed=r, n_grid=60)
        for variant in ("truncate", "unbiased"):
            _check(fmt, x, r, variant, seed=100 + r)


def test_rbits_sweep_bf16_and_e4m3_all_r():
    # BF16 and E4M3 from float32 drop 16 and 20 bits: r below, at and above that, both variants.
    for fmt, rs in ((nf.BF16, (1, 2, 8, 15, 16, 17, 23, 31)), (nf.E4M3, (3, 19, 20, 21, 31))):
        x = _cases(fmt, seed=7, n_grid=40)
        for r in rs:
            for variant in ("truncate", "unbiased"):
                _check(fmt, x, r, variant, seed=r)


def _float_or_none(e, m, style, signed, sub):
    try:
        fmt = FloatFormat("drawn", e, m, specials=style, signed=signed or style == "fnuz", subnormals=sub)
    except (ValueError, TypeError):
        return None
    return fmt


_fmt_strategy = st.one_of(
    st.sampled_from(ALL_FMTS),
    st.builds(_float_or_none, st.integers(2, 8), st.integers(0, 10), st.sampled_from(["ieee", "fn", "fnuz", "none"]),
              st.booleans(), st.booleans()).filter(lambda f: f is not None),
    st.builds(lambda b, s, n: IntFormat("drawn", b, signed=s, narrow=n and s), st.integers(2, 32), st.booleans(),
              st.booleans()),
)  # fmt: skip


@settings(max_examples=25)
@given(fmt=_fmt_strategy, rbits=st.one_of(st.none(), st.integers(1, 23)), variant=st.sampled_from(["truncate", "unbiased"]),
       saturate=st.booleans(), seed=st.integers(0, 2**31), extra=st.lists(st.floats(width=32), max_size=64))  # fmt: skip
def test_property_random_formats_and_rbits(fmt, rbits, variant, saturate, seed, extra):
    x = np.concatenate([_cases(fmt, seed, n_grid=24), np.array(extra, np.float32)])
    _check(fmt, x, rbits, variant, seed, saturate=saturate)


def test_infinite_input_past_float32_range():
    # Formats without inf whose top binade reaches 2**128 (so that +-inf, read as 2**128, is not
    # past max_code). An infinite input is an overflow of the "to infinity" kind (docs/semantics.md):
    # +-max where the format has no NaN, and +-max with saturate=True, in every rounding mode.
    x = np.array([np.inf, -np.inf], np.float32)
    none = FloatFormat("e8m1_none", 8, 1, specials="none")
    fn = FloatFormat("e8m2_fn", 8, 2, specials="fn")
    for fmt, kws in ((none, ({}, {"saturate": True})), (fn, ({"saturate": True},))):
        want = [fmt.max_code, fmt.sign_mask | fmt.max_code]
        for kw in kws:
            assert [reference_round(float(v), fmt, **kw) for v in x] == want
            for mode in ({}, {"rounding": "stochastic", "key": jax.random.key(0)}):
                assert np.asarray(nf.encode(x, fmt, **kw, **mode)).tolist() == want, (fmt.name, kw, mode)


def test_float64_inputs_use_64_bit_words():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        for fmt in (nf.BF16, nf.E4M3, nf.INT8):
            with np.errstate(invalid="ignore"):  # signalling-NaN bit patterns
                base = _cases(fmt, seed=5, n_grid=30).astype(np.float64)
            # full 52-bit fractions, which a float32 input cannot carry
            x = np.concatenate([base, base * (1 + rng.random(base.size) * 2.0**-10)])
            for rbits, variant in (
                (None, "truncate"),
                (1, "unbiased"),
                (23, "truncate"),
                (40, "unbiased"),
                (63, "truncate"),
            ):
                _check(fmt, x, rbits, variant, seed=11, width=64)


def test_half_precision_inputs_widen_exactly():
    rng = np.random.default_rng(0)
    x32 = (rng.standard_normal(4096) * 4).astype(np.float32)
    bits = rng.integers(0, 1 << 32, 4096, dtype=np.uint64).astype(np.uint32)
    for dt in (jnp.float16, jnp.bfloat16):
        x = jnp.asarray(x32).astype(dt)
        a = nf.encode(x, nf.E2M1, "stochastic", random_bits=bits, rbits=5)
        b = nf.encode(x.astype(jnp.float32), nf.E2M1, "stochastic", random_bits=bits, rbits=5)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        q = nf.quantize(x, nf.E2M1, "stochastic", random_bits=bits, rbits=5)
        assert q.dtype == dt


@pytest.mark.parametrize(
    "fmt", [nf.BF16, nf.E4M3, nf.E2M1, nf.E8M0, E4M3_NOSUB, nf.INT8, nf.FP16], ids=lambda f: f.name
)
def test_quantize_is_decode_of_encode(fmt):
    # quantize has its own fast path (no codes formed): same random words, same values.
    x = _cases(fmt, seed=2, n_grid=60)
    bits = np.random.default_rng(1).integers(0, 1 << 32, x.size, dtype=np.uint64).astype(np.uint32)
    for rbits in (None, 4):
        q = nf.quantize(x, fmt, "stochastic", random_bits=bits, rbits=rbits)
        c = nf.encode(x, fmt, "stochastic", random_bits=bits, rbits=rbits)
        np.testing.assert_array_equal(np.asarray(q), np.asarray(nf.decode(c, fmt)))


def test_unbiased_variant_matches_gfloat():
    # gfloat's RoundMode.Stochastic (round the fraction to srnumbits bits, ties to even,
    # add srbits, carry decides) is the P3109 definition: our "unbiased" variant.
    gfloat = pytest.importorskip("gfloat")
    import gfloat.formats as gf

    pairs = ((nf.BF16, gf.format_info_bfloat16), (nf.E4M3, gf.format_info_ocp_e4m3),
             (nf.E5M2, gf.format_info_ocp_e5m2), (nf.E2M1, gf.format_info_ocp_e2m1))  # fmt: skip
    rng = np.random.default_rng(4)
    for fmt, fi in pairs:
        x = _cases(fmt, seed=9, n_grid=60)
        x = x[np.isfinite(x)]
        for r in (1, 3, 8):
            srbits = rng.integers(0, 1 << r, x.size).astype(np.int64)
            theirs = gfloat.round_ndarray(fi, x.astype(np.float64), gfloat.RoundMode.Stochastic, sat=fmt is nf.E2M1,
                                          srbits=srbits, srnumbits=r)  # fmt: skip
            ours = nf.quantize(
                x, fmt, "stochastic", random_bits=srbits.astype(np.uint32), rbits=r, sr_variant="unbiased"
            )
            np.testing.assert_array_equal(np.asarray(ours, np.float64), theirs, err_msg=f"{fmt.name} r={r}")


# ---- the exact oracle: encode == reference_round(..., "stochastic", u=...) ----------------
#
# numfmt.testing.reference_round implements docs/stochastic.md's definition on Fractions,
# independently of the codec and of the integer rule above (``_check`` holds all three
# equal on every input of the exactness tests). With random_bits supplied, encode must give
# the oracle's code for every element: every format, rbits None and 1..23, both variants,
# float32 and float64 inputs, saturate on and off.

ORACLE_FMTS = [f for f in map(nf.formats.get, nf.formats.names())
               if not isinstance(f, CodebookFormat) and f.kind != "log"] + [  # log: tests/test_logformat.py
    E4M3_NOSUB, E3M3_UNSIGNED,
    FloatFormat("e3m2_ftz", 3, 2, subnormals=False),
    FloatFormat("e4m0", 4, 0),
    FloatFormat("e3m0_fn", 3, 0, specials="fn"),
    FloatFormat("ue2m1", 2, 1, signed=False, specials="none"),
    FloatFormat("e5m2_b3", 5, 2, bias=3, specials="fnuz"),
    FloatFormat("e1m2", 1, 2, specials="none"),
    FloatFormat("e4m1_e8m0", 4, 1, signed=False, specials="e8m0"),
    FloatFormat("e3m2_fnuz_ftz", 3, 2, subnormals=False, specials="fnuz"),
    IntFormat("int8n", 8, narrow=True), IntFormat("int1", 1), IntFormat("uint1", 1, signed=False),
]  # fmt: skip


@st.composite
def _oracle_formats(draw):
    which = draw(st.integers(0, 3))
    if which <= 1:
        return draw(st.sampled_from(ORACLE_FMTS))
    if which == 3:
        bits, signed = draw(st.integers(1, 32)), draw(st.booleans())
        return IntFormat("drawn", bits, signed=signed, narrow=signed and bits >= 2 and draw(st.booleans()))
    e, m = draw(st.integers(1, 8)), draw(st.integers(0, 23))
    style = draw(st.sampled_from(["ieee", "fn", "fnuz", "none", "e8m0"]))
    signed = style == "fnuz" or (style != "e8m0" and draw(st.booleans()))
    sub = style != "e8m0" and draw(st.booleans())
    bias = draw(st.one_of(st.none(), st.integers(-140, 160)))
    try:
        return FloatFormat("drawn", e, m, bias=bias, signed=signed, subnormals=sub, specials=style)
    except ValueError:
        assume(False)


def _as_float(v, dtype):
    """``v`` (a Fraction or float) rounded to ``dtype``; past its range, ±inf."""
    try:
        f = float(v)
    except OverflowError:
        f = math.inf if v > 0 else -math.inf
    with np.errstate(over="ignore"):
        return dtype(f)


_FRACS = [Fraction(0), Fraction(1, 2), Fraction(1, 4), Fraction(3, 4), Fraction(1, 3), Fraction(1, 2**23),
          1 - Fraction(1, 2**23), Fraction(1, 2**40)]  # fmt: skip


@st.composite
def _oracle_value(draw, fmt, dtype, rbits):
    """One input of ``dtype`` that is hard for ``fmt``: a point of its grid or a fraction of
    the way to the next (ties, 1/4, random fractions, fractions of ``rbits + 1`` bits, which
    are ties for the unbiased variant's cut), optionally one ulp of ``dtype`` off, at the
    edges (zero, subnormals, min_normal, max and the overflow region) or anywhere; tiny
    values under the smallest step; raw bit patterns; the specials."""
    kind = draw(st.sampled_from(["grid", "grid", "grid", "tiny", "raw", "special"]))
    sign = draw(st.booleans())
    if kind == "special":
        info = np.finfo(dtype)
        v = draw(st.sampled_from([0.0, math.inf, math.nan, float(info.max), float(info.smallest_subnormal),
                                  float(info.smallest_normal)]))  # fmt: skip
        v = dtype(v)
    elif kind == "raw":
        ubits = np.uint32 if dtype is np.float32 else np.uint64
        v = np.array([draw(st.integers(0, (1 << (8 * ubits().itemsize)) - 1))], ubits).view(dtype)[0]
    else:
        if isinstance(fmt, IntFormat):
            step = Fraction(1)
            edges = [0, 1, 2, -1, fmt.min - 2, fmt.min - 1, fmt.min, fmt.min + 1, fmt.max - 1, fmt.max, fmt.max + 1]
            base = Fraction(draw(st.one_of(st.sampled_from(edges), st.integers(fmt.min - 3, fmt.max + 3))))
            lo, hi = base, base + 1
        else:
            top, min_normal = fmt.max_code, fmt.emin_field << fmt.man_bits
            edges = [0, 1, 2, min_normal - 1, min_normal, min_normal + 1, top - 1, top, top + 1, top + 2]
            c = draw(st.one_of(st.sampled_from([e for e in edges if e >= 0]), st.integers(0, top + 3)))
            lo, hi = grid_value(c, fmt), grid_value(c + 1, fmt)
            if hi == lo:  # no subnormals: the grid below min_normal is {0, min_normal}
                lo, hi = Fraction(0), grid_value(min_normal, fmt)
            step = hi - lo
        if kind == "tiny":
            k = draw(st.integers(1, 80))
            v = _as_float(step * Fraction(draw(st.integers(1, 2**20)), 2**20) * Fraction(1, 2**k), dtype)
        else:
            r = 32 if rbits is None else rbits
            f = draw(st.one_of(st.sampled_from(_FRACS), st.fractions(0, 1, max_denominator=2**30),
                               st.integers(0, 2**52 - 1).map(lambda n: Fraction(n, 2**52)),
                               st.integers(0, 2**r - 1).map(lambda n: Fraction(2 * n + 1, 2 ** (r + 1)))))  # fmt: skip
            v = _as_float(lo + f * step, dtype)
            nudge = draw(st.sampled_from([0, 0, 0, 1, -1]))
            if nudge and np.isfinite(v):
                v = np.nextafter(v, dtype(nudge * np.inf))
    return -v if sign else v


_U_KINDS = ("zero", "ones", "random")


def _oracle_words(kind, high, x, fmt, rbits, variant, saturate, width):
    """Three random words of ``width`` bits for ``x``: one that is 0, all ones or random,
    and two on its carry boundary, with low m bits ``2**m - T`` and one less (T and m
    from the integer rule above)."""
    mask = (1 << width) - 1
    w = {"zero": 0, "ones": mask, "random": high & mask}[kind]
    _, _, num, den = _split(x, fmt, saturate)
    t, m = _threshold(num, den, rbits, variant, width)
    at = ((1 << m) - t) % (1 << m)
    return [w, (high & mask) >> m << m | at, (~high & mask) >> m << m | (at - 1) % (1 << m)]


@settings(max_examples=3 * settings.default.max_examples)  # 60 with the "default" profile, 300 with "ci"
@given(fmt=_oracle_formats(), wide=st.booleans(), variant=st.sampled_from(SR_VARIANTS), saturate=st.booleans(),
       data=st.data())  # fmt: skip
def test_encode_equals_reference_round_with_u(fmt, wide, variant, saturate, data):
    dtype, width = (np.float64, 64) if wide else (np.float32, 32)
    # None and 1..23 (issue 3) mostly; now and then up to the word's width less one
    rbits = data.draw(st.one_of(st.none(), st.integers(1, 23), st.integers(1, 23), st.integers(24, width - 1)))
    element = st.tuples(_oracle_value(fmt, dtype, rbits), st.sampled_from(_U_KINDS), st.integers(0, 2**64 - 1))
    elems = data.draw(st.lists(element, min_size=24, max_size=64))
    x = np.array([e[0] for e in elems for _ in range(3)], dtype)
    words = [w for v, k, h in elems for w in _oracle_words(k, h, float(v), fmt, rbits, variant, saturate, width)]
    wdt = np.uint64 if wide else np.uint32
    with jax.enable_x64(wide):
        got = nf.encode(x, fmt, "stochastic", random_bits=np.array(words, wdt), rbits=rbits, sr_variant=variant,
                        saturate=saturate)  # fmt: skip
        got = np.asarray(got).astype(np.int64).tolist()
    for v, w, g in zip(x, words, got):
        want = reference_round(v, fmt, "stochastic", u=wdt(w), rbits=rbits, variant=variant, saturate=saturate,
                               word_bits=width)  # fmt: skip
        assert g == want, (f"{fmt!r} x={v!r} ({float(v).hex()}) u={w:#x} rbits={rbits} {variant} "
                           f"saturate={saturate}: oracle {want:#x}, encode {g:#x}")  # fmt: skip


# ---- statistics --------------------------------------------------------------------------

N_DRAWS = 1 << 20  # >= 10**6 draws per value
STAT_CASES = [  # (format, lower neighbour, step, sign): BF16 normal, E4M3 subnormal, E2M1's top binade, INT8 negative
    (nf.BF16, Fraction(1), _pow2(-7), 1),
    (nf.E4M3, 3 * _pow2(-9), _pow2(-9), 1),
    (nf.E2M1, Fraction(4), Fraction(2), 1),
    (nf.INT8, Fraction(5), Fraction(1), -1),
]
STAT_FRACS = (Fraction(1, 8), Fraction(1, 3), Fraction(1, 2), Fraction(9, 10))


def _stat_values(lo, step, sign):
    """The float32 values at 1/8, 1/3, 1/2, 0.9 of the way from lo to lo + step, and their exact fractions."""
    xs = [F32(sign * float(lo + f * step)) for f in STAT_FRACS]
    fr = [(abs(Fraction(float(x))) - lo) / step for x in xs]
    return np.array(xs, np.float32), fr


def _p_formula(f: Fraction, rbits, variant) -> Fraction:
    t, m = _threshold(f.numerator, f.denominator, rbits, variant, 32)
    return Fraction(t, 1 << m)


def _draw(fmt, xs, key, rbits=None, variant="truncate"):
    big = jnp.broadcast_to(jnp.asarray(xs)[:, None], (len(xs), N_DRAWS))
    return np.asarray(nf.quantize(big, fmt, "stochastic", key=key, rbits=rbits, sr_variant=variant), np.float64)


@pytest.mark.parametrize("fmt, lo, step, sign", STAT_CASES, ids=[c[0].name for c in STAT_CASES])
@pytest.mark.parametrize("rbits, variant", [(None, "truncate"), (16, "unbiased"), (3, "unbiased"), (3, "truncate")])
def test_probability_of_rounding_up(fmt, lo, step, sign, rbits, variant):
    xs, fr = _stat_values(lo, step, sign)
    q = _draw(fmt, xs, jax.random.key(2024), rbits, variant)
    hi = float(lo + step)
    for i, f in enumerate(fr):
        vals = np.unique(np.abs(q[i]))
        assert set(vals.tolist()) <= {float(lo), hi}, (fmt.name, vals)
        p = _p_formula(f, rbits, variant)
        p_hat = float(np.mean(np.abs(q[i]) == hi))
        se = math.sqrt(float(p * (1 - p)) / N_DRAWS)
        assert abs(p_hat - float(p)) <= Z * se, (fmt.name, float(f), rbits, variant, p_hat, float(p))
        # E[q] - x, in units of the step: zero (exact, and unbiased with r = 16 >= the
        # fraction's bits, up to 2**-17), or the truncation bias floor(f 2^r)/2^r - f.
        bias_hat = (abs(float(np.mean(q[i]))) - abs(float(xs[i]))) / float(step)
        bias = float(p - f)
        assert abs(bias_hat - bias) <= Z * se + 1e-12, (fmt.name, float(f), rbits, variant, bias_hat, bias)
        if rbits is None or (variant == "unbiased" and rbits >= 16):
            assert abs(bias) <= 2.0**-17 and abs(bias_hat) <= Z * se + 2.0**-17
        if variant == "truncate" and rbits == 3 and f.denominator > 8:
            # 1/3 and 0.9: the truncation bias is real and measured: -1/12 and -1/40 of a step
            assert bias < 0 and bias_hat < -Z * se, (float(f), bias, bias_hat)


def test_unbiased_on_average_truncate_biased():
    # Many values with random 16-bit fractions, rbits=3: the unbiased variant's error averages out
    # (its per-value bias is at most 2**-4 of a step, of either sign), the truncating variant's
    # does not (about -2**-4 of a step on average). Both match their formulas.
    rng = np.random.default_rng(8)
    m = 4096
    k = N_DRAWS // m
    fr = [Fraction(int(v), 1 << 16) for v in rng.integers(1, 1 << 16, m)]
    xs = np.array([F32(float(1 + f * _pow2(-7))) for f in fr], np.float32)
    big = jnp.repeat(jnp.asarray(xs), k)
    key = jax.random.key(77)
    for variant in ("unbiased", "truncate"):
        q = np.asarray(nf.quantize(big, nf.BF16, "stochastic", key=key, rbits=3, sr_variant=variant), np.float64)
        bias_hat = float(np.mean(q.reshape(m, k) - xs.astype(np.float64)[:, None])) * 2**7
        ps = [_p_formula(f, 3, variant) for f in fr]
        bias = float(sum(p - f for p, f in zip(ps, fr)) / m)
        se = math.sqrt(float(sum(p * (1 - p) for p in ps) / m) / N_DRAWS)
        assert abs(bias_hat - bias) <= Z * se, (variant, bias_hat, bias)
        if variant == "unbiased":
            assert abs(bias) < 3e-3 and abs(bias_hat) < Z * se + 3e-3
        else:
            assert bias < -0.05 and bias_hat < -0.05


# ---- stagnation --------------------------------------------------------------------------

ADDEND = 105 * 2.0**-20  # 1.00136e-4: exact in FP16, BF16 and float32; s + a is exact in float32 for s < 16
STEPS = 20_000
CHAINS = 128


def _accumulate(fmt, rounding, key):
    """``CHAINS`` sums of ``STEPS`` copies of ADDEND from 1.0, each partial sum rounded to ``fmt``.

    Also returns, per chain, the sum over the steps of the variance of that step's
    stochastic rounding: ``ulp * a - a**2`` (= ulp**2 p (1 - p), p = a / ulp, since the
    partial sum is on the grid and a < ulp).
    """
    p = fmt.man_bits

    def step(carry, i):
        s, var = carry
        t = s + jnp.float32(ADDEND)
        kw = {"key": jax.random.fold_in(key, i)} if rounding == "stochastic" else {}
        ulp = jnp.exp2(jnp.frexp(s)[1].astype(jnp.float32) - 1 - p)
        return (nf.quantize(t, fmt, rounding, **kw), var + ulp * ADDEND - ADDEND**2), None

    init = (jnp.ones(CHAINS, jnp.float32), jnp.zeros(CHAINS, jnp.float32))
    (s, var), _ = jax.jit(lambda c: lax.scan(step, c, jnp.arange(STEPS)))(init)
    return np.asarray(s, np.float64), np.asarray(var, np.float64)


@pytest.mark.parametrize("fmt", [nf.FP16, nf.BF16], ids=lambda f: f.name)
def test_stagnation(fmt):
    true = 1.0 + STEPS * ADDEND  # 3.0027
    # nearest_even: a is below half an ulp of 1 (FP16: 4.9e-4, BF16: 3.9e-3): every add is lost.
    s_rne, _ = _accumulate(fmt, "nearest_even", jax.random.key(0))
    assert np.all(s_rne == 1.0) and true - s_rne.max() > 2.0
    # stochastic: every chain within 5 standard deviations of the true sum; their mean
    # within 5 standard errors; their spread as predicted.
    s, var = _accumulate(fmt, "stochastic", jax.random.key(0))
    sd = np.sqrt(var)
    assert np.all(np.abs(s - true) <= Z * sd), (fmt.name, s, sd)
    assert abs(s.mean() - true) <= Z * sd.mean() / math.sqrt(CHAINS), (fmt.name, s.mean(), true)
    assert 0.75 < s.std(ddof=1) / sd.mean() < 1.25, (fmt.name, s.std(ddof=1), sd.mean())


# ---- JAX transformations -----------------------------------------------------------------

X_FRAC = jnp.asarray(np.linspace(-6, 6, 4099, dtype=np.float32) + F32(1 / 3))


def test_same_key_same_result_different_key_different():
    k1, k2 = jax.random.key(1), jax.random.key(2)
    a = nf.encode(X_FRAC, nf.E2M1, "stochastic", key=k1)
    b = nf.encode(X_FRAC, nf.E2M1, "stochastic", key=k1)
    c = nf.encode(X_FRAC, nf.E2M1, "stochastic", key=k2)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.mean(np.asarray(a) != np.asarray(c)) > 0.2
    # legacy uint32 keys work too
    d = nf.encode(X_FRAC, nf.E2M1, "stochastic", key=jax.random.PRNGKey(1))
    assert d.shape == a.shape


def test_key_draws_its_words_from_hash_bits():
    key = jax.random.key(3)
    a = nf.encode(X_FRAC, nf.E4M3, "stochastic", key=key, rbits=6)
    b = nf.encode(X_FRAC, nf.E4M3, "stochastic", random_bits=hash_bits(key, X_FRAC.shape), rbits=6)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with jax.enable_x64(True):
        x = jnp.asarray(X_FRAC, jnp.float64)
        a = nf.encode(x, nf.E4M3, "stochastic", key=key)
        b = nf.encode(x, nf.E4M3, "stochastic", random_bits=hash_bits(key, x.shape, jnp.uint64))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_under_jit():
    key = jax.random.key(5)
    f = jax.jit(lambda x, k: nf.quantize(x, nf.E4M3, "stochastic", key=k, rbits=8))
    np.testing.assert_array_equal(
        np.asarray(f(X_FRAC, key)), np.asarray(nf.quantize(X_FRAC, nf.E4M3, "stochastic", key=key, rbits=8))
    )
    g = jax.jit(lambda x, r: nf.encode(x, nf.INT4, "stochastic", random_bits=r))
    bits = jax.random.bits(key, X_FRAC.shape, jnp.uint32)
    np.testing.assert_array_equal(
        np.asarray(g(X_FRAC, bits)), np.asarray(nf.encode(X_FRAC, nf.INT4, "stochastic", random_bits=bits))
    )


def test_under_vmap():
    keys = jax.random.split(jax.random.key(6), 4)
    rows = jax.vmap(lambda k: nf.encode(X_FRAC, nf.E2M1, "stochastic", key=k))(keys)
    for i in range(4):
        np.testing.assert_array_equal(
            np.asarray(rows[i]), np.asarray(nf.encode(X_FRAC, nf.E2M1, "stochastic", key=keys[i]))
        )
    assert not np.array_equal(np.asarray(rows[0]), np.asarray(rows[1]))
    xb = X_FRAC[:4096].reshape(8, 512)
    bits = jax.random.bits(jax.random.key(7), xb.shape, jnp.uint32)
    v = jax.vmap(lambda x, r: nf.encode(x, nf.BF16, "stochastic", random_bits=r, rbits=7))(xb, bits)
    np.testing.assert_array_equal(
        np.asarray(v), np.asarray(nf.encode(xb, nf.BF16, "stochastic", random_bits=bits, rbits=7))
    )


def test_under_scan_matches_a_python_loop():
    key = jax.random.key(8)

    def body(s, i):
        s = nf.quantize(s + jnp.float32(0.3), nf.E4M3, "stochastic", key=jax.random.fold_in(key, i))
        return s, s

    _, trace = lax.scan(body, jnp.zeros(3, jnp.float32), jnp.arange(20))
    s = jnp.zeros(3, jnp.float32)
    for i in range(20):
        s = nf.quantize(s + jnp.float32(0.3), nf.E4M3, "stochastic", key=jax.random.fold_in(key, i))
        np.testing.assert_array_equal(np.asarray(trace[i]), np.asarray(s))


# ---- bad input ---------------------------------------------------------------------------

X3 = np.array([0.3, 1.7, -2.2], np.float32)


def test_no_key_no_random_bits():
    for fn in (nf.encode, nf.quantize):
        with pytest.raises(ValueError, match=r"stochastic.*needs key="):
            fn(X3, nf.E4M3, "stochastic")


@pytest.mark.parametrize("bad", [0, 32, -1, 2.5, True, "8"])
def test_rbits_out_of_range(bad):
    with pytest.raises(ValueError, match=r"rbits must be an int in \[1, 31\] for float32 inputs"):
        nf.encode(X3, nf.E4M3, "stochastic", key=jax.random.key(0), rbits=bad)


def test_rbits_range_for_float64():
    with jax.enable_x64(True):
        x = np.array([0.3], np.float64)
        with pytest.raises(ValueError, match=r"rbits must be an int in \[1, 63\] for float64"):
            nf.encode(x, nf.E4M3, "stochastic", key=jax.random.key(0), rbits=64)
        nf.encode(x, nf.E4M3, "stochastic", key=jax.random.key(0), rbits=63)


def test_random_bits_wrong_shape():
    with pytest.raises(ValueError, match=r"random_bits must have the shape of x, \(3,\), got \(4,\)"):
        nf.encode(X3, nf.E4M3, "stochastic", random_bits=np.zeros(4, np.uint32))
    with pytest.raises(ValueError, match="random_bits must have the shape of x"):
        nf.quantize(X3, nf.E4M3, "stochastic", random_bits=np.zeros((1, 3), np.uint32))


@pytest.mark.parametrize("dt", [np.int32, np.uint16, np.float32, np.uint8])
def test_random_bits_wrong_dtype(dt):
    with pytest.raises(TypeError, match=r"random_bits must have dtype uint32 for float32 inputs"):
        nf.encode(X3, nf.E4M3, "stochastic", random_bits=np.zeros(3, dt))


def test_random_bits_dtype_for_float64():
    want = r"random_bits must have dtype uint64 for float64 inputs, got uint32"
    with jax.enable_x64(True), pytest.raises(TypeError, match=want):
        nf.encode(np.zeros(3, np.float64), nf.E4M3, "stochastic", random_bits=np.zeros(3, np.uint32))


def test_key_together_with_random_bits():
    with pytest.raises(ValueError, match="either key= or random_bits=, not both"):
        nf.encode(X3, nf.E4M3, "stochastic", key=jax.random.key(0), random_bits=np.zeros(3, np.uint32))


@pytest.mark.parametrize("kw", [{"key": jax.random.key(0)}, {"rbits": 4}, {"random_bits": np.zeros(3, np.uint32)}])
def test_stochastic_arguments_with_a_deterministic_mode(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"{name} is only used with rounding='stochastic'"):
        nf.encode(X3, nf.E4M3, "nearest_even", **kw)


def test_stochastic_with_a_codebook():
    with pytest.raises(ValueError, match="codebook format nf4 supports nearest rounding only"):
        nf.quantize(X3, nf.NF4, "stochastic", key=jax.random.key(0))


def test_unknown_sr_variant():
    with pytest.raises(ValueError, match="sr_variant must be one of"):
        nf.encode(X3, nf.E4M3, "stochastic", key=jax.random.key(0), sr_variant="ieee")


# ---- the random source: hash_bits --------------------------------------------------------
#
# Thresholds: 5 sigma everywhere. Chi-square with 255 degrees of freedom must lie in
# [157, 385] (the 5-sigma-equivalent quantiles, Wilson-Hilferty); a count of ones out of
# n fair bits within n/2 +- 5 sqrt(n)/2; a correlation coefficient of n pairs within
# +- 5/sqrt(n).

N_WORDS = 1 << 20
CHI2_255 = (157.0, 385.0)


def _chi2(counts):
    counts = np.asarray(counts, np.float64)
    e = counts.sum() / counts.size
    return float(((counts - e) ** 2 / e).sum())


def _bits_balanced(words, n):
    ones = np.array([np.count_nonzero((words >> np.uint32(b)) & np.uint32(1)) for b in range(32)])
    return np.abs(ones - n / 2) <= Z * math.sqrt(n) / 2


def _uniform(words):
    return words.astype(np.float64) / 2.0**32


def test_hash_bits_bytes_and_bits_are_uniform():
    w = np.asarray(hash_bits(jax.random.key(123), (N_WORDS,)))
    assert w.dtype == np.uint32
    for b in range(4):
        c = _chi2(np.bincount((w >> np.uint32(8 * b)) & np.uint32(255), minlength=256))
        assert CHI2_255[0] <= c <= CHI2_255[1], (b, c)
    assert np.all(_bits_balanced(w, N_WORDS))
    # 2-D shapes index the flattened array: the same words
    w2 = np.asarray(hash_bits(jax.random.key(123), (1024, 1024)))
    np.testing.assert_array_equal(w2.ravel(), w)


def test_hash_bits_adjacent_indices_are_uncorrelated():
    w = np.asarray(hash_bits(jax.random.key(321), (N_WORDS,)))
    a, b = w[0::2], w[1::2]  # disjoint pairs (2i, 2i + 1)
    n = a.size
    assert abs(np.corrcoef(_uniform(a), _uniform(b))[0, 1]) <= Z / math.sqrt(n)
    assert abs(np.corrcoef(_uniform(w[1:-1:2]), _uniform(w[2::2]))[0, 1]) <= Z / math.sqrt(n)
    assert np.all(_bits_balanced(a ^ b, n))
    for shift, mask in ((28, 15), (0, 15)):  # top and bottom nibbles (rbits=4 uses the bottom)
        pair = ((a >> np.uint32(shift)) & np.uint32(mask)) * np.uint32(16) + ((b >> np.uint32(shift)) & np.uint32(mask))
        c = _chi2(np.bincount(pair, minlength=256))
        assert CHI2_255[0] <= c <= CHI2_255[1], (shift, c)


def test_hash_bits_adjacent_keys_are_uncorrelated():
    key = jax.random.key(99)
    a = np.asarray(hash_bits(jax.random.fold_in(key, 0), (N_WORDS,)))
    b = np.asarray(hash_bits(jax.random.fold_in(key, 1), (N_WORDS,)))
    assert abs(np.corrcoef(_uniform(a), _uniform(b))[0, 1]) <= Z / math.sqrt(N_WORDS)
    assert np.all(_bits_balanced(a ^ b, N_WORDS))
    pair = (a >> np.uint32(28)) * np.uint32(16) + (b >> np.uint32(28))
    c = _chi2(np.bincount(pair, minlength=256))
    assert CHI2_255[0] <= c <= CHI2_255[1], c
    # One element across 2**16 consecutive step keys (a scalar accumulator with fold_in per step).
    steps = 1 << 16
    col = np.asarray(jax.vmap(lambda i: hash_bits(jax.random.fold_in(key, i), (2,)))(jnp.arange(steps)))[:, 0]
    assert np.all(_bits_balanced(col, steps))
    assert abs(np.corrcoef(_uniform(col[:-1]), _uniform(col[1:]))[0, 1]) <= Z / math.sqrt(steps)
    c = _chi2(np.bincount(col >> np.uint32(24), minlength=256))
    assert CHI2_255[0] <= c <= CHI2_255[1], c


def test_hash_bits_uint64_and_same_key():
    key = jax.random.key(4)
    np.testing.assert_array_equal(np.asarray(hash_bits(key, (1000,))), np.asarray(hash_bits(key, (1000,))))
    with jax.enable_x64(True):
        w = np.asarray(hash_bits(key, (1 << 16,), jnp.uint64))
        assert w.dtype == np.uint64
        hi, lo = (w >> np.uint64(32)).astype(np.uint32), (w & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        assert np.all(_bits_balanced(hi, w.size)) and np.all(_bits_balanced(lo, w.size))
        assert abs(np.corrcoef(_uniform(hi), _uniform(lo))[0, 1]) <= Z / math.sqrt(w.size)
