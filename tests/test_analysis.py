"""Tests of numfmt.analysis: metrics, bounds, tables, sweeps, data and the accumulator model."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numfmt as nf
from numfmt import analysis as A
from numfmt.testing import reference_decode, reference_round

# ---- error_stats --------------------------------------------------------------------------------


def test_error_stats_by_hand():
    ref = np.array([1.0, 2.0, 4.0, 0.0], np.float32)
    approx = np.array([1.5, 2.0, 3.0, 0.0], np.float32)
    s = A.error_stats(ref, approx)
    # e = [0.5, 0, -1, 0]
    assert s["count"] == 4 and s["n_finite"] == 4 and s["exact"] == 2
    assert s["abs_max"] == 1.0
    assert s["abs_mean"] == 0.375
    assert s["mse"] == 0.3125
    assert s["abs_rms"] == pytest.approx(math.sqrt(0.3125))
    assert s["bias"] == -0.125
    # relative errors over ref != 0: [0.5, 0, 0.25]
    assert s["n_rel"] == 3
    assert s["rel_max"] == 0.5
    assert s["rel_mean"] == pytest.approx(0.25)
    assert s["rel_rms"] == pytest.approx(math.sqrt((0.25 + 0.0625) / 3))
    assert s["sqnr_db"] == pytest.approx(10 * math.log10(21 / 1.25))
    assert s["saturated"] is None
    assert s["overflow"] == s["underflow"] == s["nan_produced"] == s["nan_in"] == 0


def test_error_stats_counts():
    ref = np.array([1e10, 5.0, np.nan, 3.0, 1e-3, 2.0], np.float64)
    approx = np.array([np.inf, np.nan, np.nan, 0.0, 0.0, 2.0], np.float64)
    s = A.error_stats(ref, approx)
    assert s["nan_in"] == 1
    assert s["nan_produced"] == 1
    assert s["overflow"] == 1
    assert s["underflow"] == 2
    # the error statistics are over the finite pairs only: 3 -> 0, 1e-3 -> 0, 2 -> 2
    assert s["n_finite"] == 3
    assert s["abs_max"] == 3.0
    assert s["bias"] == pytest.approx(-(3 + 1e-3) / 3)


def test_error_stats_saturation_uses_the_format():
    ref = np.array([500.0, -1000.0, 100.0, 448.0], np.float32)
    approx = np.asarray(nf.quantize(ref, "e4m3", saturate=True))
    assert list(approx) == [448.0, -448.0, 96.0, 448.0]
    assert A.error_stats(ref, approx, "e4m3")["saturated"] == 2
    ref = np.array([200.0, -300.0, 5.0], np.float32)
    approx = np.asarray(nf.quantize(ref, "int8"))
    assert list(approx) == [127.0, -128.0, 5.0]
    assert A.error_stats(ref, approx, nf.INT8)["saturated"] == 2


def test_error_stats_edge_cases():
    x = np.array([1.0, -2.0], np.float32)
    assert A.error_stats(x, x)["sqnr_db"] == math.inf
    assert math.isnan(A.error_stats(np.zeros(3), np.zeros(3))["sqnr_db"])
    s = A.error_stats(np.array([np.nan]), np.array([np.nan]))
    assert s["n_finite"] == 0 and math.isnan(s["abs_mean"]) and math.isnan(s["abs_max"])
    with pytest.raises(ValueError, match="broadcast"):
        A.error_stats(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match="ref"):
        A.error_stats(np.array(["a"]), np.zeros(1))


def test_error_stats_under_jit_matches_host():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float32)
    y = np.asarray(nf.quantize(x, "e4m3"))
    host = A.error_stats(x, y)
    traced = jax.jit(A.error_stats)(x, y)
    for k in ("abs_max", "abs_mean", "abs_rms", "bias", "rel_max", "rel_rms", "sqnr_db"):
        assert float(traced[k]) == pytest.approx(host[k], rel=1e-4, abs=1e-7), k
    assert int(traced["exact"]) == host["exact"]


# ---- ulp and unit roundoff ----------------------------------------------------------------------


def test_ulp_known_values():
    x = np.array([1.0, 1.5, 1.99, 2.0, 0.0, 3e-3, 448.0, 500.0, -448.0])
    want = [2.0**-3, 2.0**-3, 2.0**-3, 2.0**-2, 2.0**-9, 2.0**-9, 32.0, 32.0, 32.0]
    assert list(A.ulp(x, "e4m3")) == want
    assert list(A.ulp(np.array([0.0, 0.5, 1.0, 6.0]), "e2m1")) == [0.5, 0.5, 0.5, 2.0]
    assert list(A.ulp(np.array([0.3, 100.0]), "int8")) == [1.0, 1.0]
    assert np.isnan(A.ulp(np.array([np.inf, np.nan]), "bf16")).all()
    flush = nf.FloatFormat("e4m3_ftz", 4, 3, subnormals=False)
    assert list(A.ulp(np.array([0.0, 2.0**-8, 1.0]), flush)) == [2.0**-6, 2.0**-6, 2.0**-3]
    with pytest.raises(ValueError, match="codebook"):
        A.ulp(np.ones(2), "nf4")


def test_ulp_error_of_known_roundings():
    x = np.array([1.0 + 2.0**-4, 1.0 + 3 * 2.0**-5], np.float32)  # a tie, and 3/4 of an ulp
    assert list(A.ulp_error(x, nf.quantize(x, "e4m3"), "e4m3")) == [0.5, 0.25]
    assert list(A.ulp_error(x, nf.quantize(x, "e4m3", "toward_zero"), "e4m3", signed=True)) == [-0.5, -0.75]


FORMATS_IN_RANGE = ["e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "e4m3fnuz", "e5m2fnuz", "bf16", "fp16", "e3m4",
                    nf.FloatFormat("e4m3_ftz", 4, 3, subnormals=False)]


@given(data=st.data(), fmt=st.sampled_from(FORMATS_IN_RANGE), rounding=st.sampled_from(["nearest_even",
                                                                                         "nearest_away"]))
def test_ulp_error_of_nearest_rounding_is_at_most_half(data, fmt, rounding):
    fmt = nf.get(fmt)
    top = float(np.float32(fmt.max))
    xs = data.draw(st.lists(st.floats(-top, top, width=32, allow_nan=False), min_size=1, max_size=64))
    x = np.array(xs, np.float32)
    err = A.ulp_error(x, nf.quantize(x, fmt, rounding), fmt)
    assert np.all(err <= 0.5), (x[err > 0.5], err[err > 0.5])


@given(data=st.data(), fmt=st.sampled_from(["e4m3", "e2m1", "bf16"]),
       rounding=st.sampled_from(["toward_zero", "up", "down", "odd"]))
def test_ulp_error_of_directed_rounding_is_below_one(data, fmt, rounding):
    fmt = nf.get(fmt)
    top = float(np.float32(fmt.max))
    x = np.array(data.draw(st.lists(st.floats(-top, top, width=32, allow_nan=False), min_size=1, max_size=64)),
                 np.float32)
    err = A.ulp_error(x, nf.quantize(x, fmt, rounding), fmt)
    # Far below the smallest subnormal, 1 - tiny rounds to 1.0 in float64.
    assert np.all((err < 1) | ((err == 1) & (np.abs(x) < fmt.min_subnormal * 2.0**-40)))


def test_unit_roundoff():
    assert A.unit_roundoff("bf16") == 2.0**-8
    assert A.unit_roundoff("bf16", "rne") == 2.0**-8
    assert A.unit_roundoff("bf16", "nearest_away") == 2.0**-8
    for mode in ("toward_zero", "up", "down", "odd", "stochastic"):
        assert A.unit_roundoff("bf16", mode) == 2.0**-7
    assert A.unit_roundoff(nf.FP32) == 2.0**-24 == np.finfo(np.float32).eps / 2
    assert A.unit_roundoff("e4m3") == 2.0**-4
    assert A.precision("fp16") == 11
    with pytest.raises(ValueError, match="floating-point"):
        A.unit_roundoff("int8")
    with pytest.raises(ValueError, match="rounding"):
        A.unit_roundoff("bf16", "sideways")


# ---- bounds -------------------------------------------------------------------------------------


def test_bound_formulas():
    u = 2.0**-8
    assert A.gamma(10, u) == pytest.approx(10 * u / (1 - 10 * u))
    assert A.gamma(256, u) == math.inf
    assert list(A.gamma(np.array([1, 300]), u)) == [pytest.approx(u / (1 - u)), math.inf]
    # gamma_tilde = lam sqrt(n) u + O(u^2)
    assert A.gamma_tilde(100, 2.0**-24, 1.0) == pytest.approx(10 * 2.0**-24, rel=1e-6)
    lam = A.lambda_for_confidence(1000, u, 0.99)
    assert A.failure_probability(1000, u, lam) == pytest.approx(0.01)
    assert A.failure_probability(10, u, 0.1) == 1.0
    b = A.dot_product_bounds(np.array([16, 64]), "fp16", "stochastic")
    assert b["u"] == 2.0**-10 and b["rigorous"] and b["confidence"] == 0.99
    assert np.all(b["probabilistic"] < b["deterministic"])
    with pytest.raises(ValueError, match="confidence"):
        A.lambda_for_confidence(10, u, 1.5)
    # A sum of no terms: both bounds 0 (the probabilistic one was NaN from log(0)).
    b0 = A.dot_product_bounds(np.array([0, 16]), "bf16")
    assert b0["deterministic"][0] == b0["probabilistic"][0] == b0["lam"][0] == 0.0
    assert np.all(np.isfinite(b0["probabilistic"])) and b0["probabilistic"][1] > 0


ACCUMULATORS = [nf.BF16, nf.FP16, nf.E8M13, nf.E4M3IEEE]


@pytest.mark.parametrize("acc", ACCUMULATORS, ids=lambda f: f.name)
def test_nearest_dot_products_never_exceed_gamma_n(acc):
    # Magnitudes in [1/2, 2) with random signs: the products stay normal even in E4M3 (the
    # bound assumes no underflow; sums that underflow are exact under gradual underflow).
    rng = np.random.default_rng(1)
    n, trials = 128, 200

    def draw():
        mags = rng.uniform(0.5, 2.0, (n, trials))
        return np.where(rng.random((n, trials)) < 0.5, -mags, mags).astype(np.float32)

    a, b = draw(), draw()
    comp, exact, mag = A.dot_partials(a, b, acc, "nearest_even")
    assert np.all(np.isfinite(comp))
    rel = np.abs(comp - exact) / mag
    bound = A.gamma(np.arange(1, n + 1), A.unit_roundoff(acc))[:, None]
    assert np.all(rel <= bound)
    # The deterministic bound with the directed modes' u holds for toward_zero too.
    comp, exact, mag = A.dot_partials(a, b, acc, "toward_zero")
    assert np.all(np.abs(comp - exact) / mag <= A.gamma(np.arange(1, n + 1), A.unit_roundoff(acc, "up"))[:, None])


@pytest.mark.parametrize("acc", [nf.BF16, nf.FP16, nf.E8M13], ids=lambda f: f.name)
def test_stochastic_dot_products_stay_within_the_probabilistic_bound(acc):
    rng = np.random.default_rng(2)
    n, trials = 512, 200
    a = rng.random((n, trials), dtype=np.float32)
    b = rng.random((n, trials), dtype=np.float32)
    comp, exact, mag = A.dot_partials(a, b, acc, "stochastic", key=jax.random.key(3))
    rel = np.abs(comp - exact) / mag
    bounds = A.dot_product_bounds(np.arange(1, n + 1), acc, "stochastic", confidence=0.99)
    within = (rel <= bounds["probabilistic"][:, None]).mean(axis=1)
    assert np.all(within >= 0.99)


def test_recursive_sum_rounds_each_addition_exactly():
    """Against the Fraction oracle, with terms far apart in magnitude (the double-rounding cases)."""
    rng = np.random.default_rng(4)
    terms = (rng.standard_normal(40) * np.exp2(rng.integers(-70, 2, 40))).astype(np.float32)
    terms[5], terms[6] = 2.0**-60, -(2.0**-61)
    for fmt in (nf.BF16, nf.E4M3IEEE):
        for mode in ("nearest_even", "toward_zero", "up", "down", "odd"):
            got = A.recursive_sum(terms[:, None], fmt, mode, init=1.0)[:, 0]
            s = reference_decode(reference_round(1.0, fmt, mode), fmt)
            for k, t in enumerate(terms):
                s = reference_decode(reference_round(Fraction(s) + Fraction(float(t)), fmt, mode), fmt)
                assert got[k] == float(s), (fmt.name, mode, k)


def test_harmonic_series_stagnates_as_known():
    # IEEE half precision: the harmonic series stops at 7.0859375 (Higham, ASNA 2nd ed., §4.2).
    assert A.harmonic_sum("fp16", 600)[-1, 0] == 7.0859375
    assert A.harmonic_sum("bf16", 100)[-1, 0] == 5.0625


def test_stagnation_round_to_nearest_against_stochastic():
    res = A.stagnation("bf16", 2.0**-9, 512, runs=32, seed=1)
    assert np.all(res["nearest_even"] == 1.0)
    final = res["stochastic"][-1]
    exact = res["exact"][-1]
    assert exact == 2.0
    assert abs(final.mean() - exact) < 5 * final.std() / math.sqrt(final.size) + 1e-12
    with pytest.raises(ValueError, match="key"):
        A.recursive_sum(np.ones((3, 1)), "bf16", "stochastic")
    with pytest.raises(ValueError, match="float format"):
        A.recursive_sum(np.ones((3, 1)), "int8")


# ---- tables -------------------------------------------------------------------------------------


def _decoded_codes(fmt):
    with jax.enable_x64(True):
        codes = np.arange(1 << fmt.bits, dtype=np.uint32).astype(fmt.code_dtype)
        return np.asarray(nf.decode(codes, fmt, jnp.float64))


@pytest.mark.parametrize("name", [n for n in nf.names() if nf.get(n).bits <= 8])
def test_format_table_matches_the_format(name):
    fmt = nf.get(name)
    (row,) = A.format_table([name])
    values = fmt.values()
    positive = values[values > 0]
    decoded = _decoded_codes(fmt)
    assert row["name"] == fmt.name and row["bits"] == fmt.bits and row["kind"] == fmt.kind
    assert row["max"] == float(fmt.max) == values.max()
    assert row["nan_codes"] == int(np.isnan(decoded).sum())
    assert row["inf_codes"] == int(np.isinf(decoded).sum())
    if fmt.kind == "codebook":
        low = np.abs(values[values != 0]).min()
    else:
        low = positive.min()
        assert row["min_subnormal"] == fmt.min_subnormal
        assert row["min_normal"] == fmt.min_normal
        assert row["eps"] == fmt.eps
        assert row["bias"] == fmt.bias
    assert row["min_subnormal"] == low
    assert row["binades"] == pytest.approx(math.log2(values.max() / low))
    assert row["dynamic_range_db"] == pytest.approx(20 * math.log10(values.max() / low))
    if fmt.kind == "float":
        assert row["unit_roundoff"] == 2.0 ** -(fmt.man_bits + 1)
        assert (row["emin"], row["emax"]) == (fmt.emin, fmt.emax)


def test_format_table_wide_formats_and_rendering():
    fp32, = A.format_table("fp32")
    info = np.finfo(np.float32)
    assert fp32["max"] == float(info.max) and fp32["min_normal"] == float(info.tiny)
    assert fp32["min_subnormal"] == float(info.smallest_subnormal) and fp32["eps"] == float(info.eps)
    assert fp32["nan_codes"] == 2 * (2**23 - 1) and fp32["inf_codes"] == 2
    assert len(A.format_table()) == len(nf.names())
    import ml_dtypes

    for name, dtype in (("fp16", np.float16), ("bf16", ml_dtypes.bfloat16)):
        (row,) = A.format_table([name])
        info = ml_dtypes.finfo(dtype)
        assert row["max"] == float(info.max) and row["min_normal"] == float(info.tiny)
        assert row["min_subnormal"] == float(info.smallest_subnormal) and row["eps"] == float(info.eps)
        assert row["nan_codes"] == 2 * (2 ** info.nmant - 1)
    md = A.to_markdown(A.format_table(["e4m3", "int8"]), ["name", "max", "unit_roundoff"])
    lines = md.splitlines()
    assert lines[0] == "| name | max | unit_roundoff |"
    assert lines[1] == "| --- | ---: | ---: |"
    assert lines[2] == "| e4m3 | 448 | 0.0625 |"
    assert lines[3] == "| int8 | 127 |  |"


# ---- sweep and data -----------------------------------------------------------------------------


def test_sweep_grid_and_errors():
    calls = []
    rows = A.sweep(formats=["e4m3", "nf4"], roundings=["nearest_even", "up"], scales=[1.0, 8.0],
                   distributions=["gaussian", "laplace"], shape=(256,), errors="record", as_frame=False,
                   progress=lambda d, t: calls.append((d, t)))
    assert len(rows) == 2 * 2 * 2 * 2 and calls[-1] == (16, 16)
    bad = [r for r in rows if "error" in r]
    assert {(r["format"], r["rounding"]) for r in bad} == {("nf4", "up")}
    good = [r for r in rows if "error" not in r]
    assert all(r["sqnr_db"] > 10 for r in good if r["format"] == "e4m3")
    with pytest.raises(ValueError, match="nearest"):
        A.sweep(formats=["nf4"], roundings=["up"], shape=(8,), as_frame=False)


def test_sweep_custom_function_and_extra_axes():
    def fn(x, fmt, rounding, key, *, block):
        return float(np.abs(x).max()) * block

    rows = A.sweep(fn, formats=["e4m3"], scales=[2.0], shape=(64,), block=[1, 10], as_frame=False)
    assert [r["block"] for r in rows] == [1, 10]
    assert rows[1]["value"] == pytest.approx(10 * rows[0]["value"])
    with pytest.raises(TypeError, match="sequence"):
        A.sweep(fn, formats=["e4m3"], block=3)


def test_sweep_as_frame_without_pandas():
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pandas"):
            A.sweep(formats=["e4m3"], shape=(8,), as_frame=True)
        assert isinstance(A.sweep(formats=["e4m3"], shape=(8,)), list)
    else:  # pragma: no cover - pandas installed
        assert A.sweep(formats=["e4m3"], shape=(8,)).shape[0] == 1


def test_sample_distributions():
    for dist in A.DISTRIBUTIONS:
        x = A.sample(dist, (64, 256), seed=3)
        assert x.dtype == np.float32 and x.shape == (64, 256)
        assert np.array_equal(x, A.sample(dist, (64, 256), seed=3))
    big = A.sample("gaussian", 100_000)
    assert abs(big.std() - 1) < 0.02
    assert abs(A.sample("laplace", 100_000).std() - 1) < 0.03
    lu = np.abs(A.sample("log_uniform", 100_000))
    assert 2.0**-8 <= lu.min() and lu.max() <= 2.0**8
    ht = A.sample("heavy_tailed", (128, 256))
    col = np.abs(ht).max(axis=0)
    assert (col > 15).sum() >= 2  # outlier channels
    w = A.weight_like("gaussian", 64, 1024)
    assert abs(w.std() - 1 / 32) < 0.002
    with pytest.raises(ValueError, match="distribution"):
        A.sample("cauchy", 4)
