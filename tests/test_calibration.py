"""Tests of numfmt.calibration: the clip-choosing methods and the min/max observer."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numfmt import calibration as cal
from numfmt.scaled import quantize_scaled
from tests.hlo_arrays import entry_arrays


@pytest.fixture(scope="module")
def gaussian_with_outliers():
    # 2**20 standard normal values and three 100-sigma outliers: the outliers' clipping
    # cost (3 * 96**2 / 2**20 = 0.026) is below absmax's INT8 rounding noise (0.052).
    rng = np.random.default_rng(0)
    x = rng.standard_normal(2**20).astype(np.float32)
    x[[10, 5000, 70000]] = [100.0, -100.0, 100.0]
    return jnp.asarray(x)


def _mse(x, fmt, calibration):
    q = quantize_scaled(x, fmt, calibration=calibration)
    return float(jnp.mean((q.dequantize() - x) ** 2))


# Margins: every method must cut absmax's MSE at least this much.
MARGIN = {"int8": 0.6, "int4": 0.1}


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_each_method_beats_absmax_on_outliers(gaussian_with_outliers, fmt):
    x = gaussian_with_outliers
    base = _mse(x, fmt, "absmax")
    for method in ("percentile", "mse", "kl"):
        err = _mse(x, fmt, method)
        assert err < MARGIN[fmt] * base, (method, err, base)
    clip = float(cal.calibrate(x, fmt, "percentile"))
    assert 3.5 < clip < 4.5  # the 99.99th percentile of |N(0, 1)| is 3.89


def test_absmax_ignores_non_finite_values():
    x = jnp.asarray([[1.0, -3.0, jnp.nan], [jnp.inf, 0.5, -0.25]], jnp.float32)
    assert float(cal.calibrate(x, "int8")) == 3.0
    np.testing.assert_array_equal(cal.calibrate(x, "int8", axis=1), [3.0, 0.5])
    lo, hi = cal.calibrate(x, "uint8", axis=1, keepdims=True, symmetric=False)
    np.testing.assert_array_equal(lo, [[-3.0], [-0.25]])
    np.testing.assert_array_equal(hi, [[1.0], [0.5]])
    assert float(cal.calibrate(jnp.full((4,), jnp.nan), "int8")) == 0.0


def test_percentile_matches_numpy_per_axis():
    x = np.random.default_rng(1).standard_normal((3, 1000)).astype(np.float32)
    c = cal.calibrate(jnp.asarray(x), "int8", "percentile", axis=1, percentile=99.0, keepdims=True)
    assert c.shape == (3, 1)
    np.testing.assert_allclose(c[:, 0], np.percentile(np.abs(x), 99.0, axis=1), rtol=1e-5)
    lo, hi = cal.calibrate(jnp.asarray(x), "int8", "percentile", percentile=90.0, symmetric=False)
    np.testing.assert_allclose([lo, hi], np.percentile(x, [10.0, 90.0]), rtol=1e-5)


def test_mse_search_is_the_best_ratio_on_its_grid():
    x = jnp.asarray(np.random.default_rng(2).laplace(size=4096), jnp.float32)
    c = float(cal.calibrate(x, "int4", "mse", num_ratios=20))
    amax = float(jnp.max(jnp.abs(x)))
    errs = {k: _mse(x, "int4", k / 20 * amax) for k in range(1, 21)}
    best = min(errs, key=errs.get)
    assert c == pytest.approx(best / 20 * amax, rel=1e-6)
    # per-channel: one clip per row, and shapes follow axis / keepdims
    c2 = cal.calibrate(x.reshape(4, 1024), "int8", "mse", axis=1, num_ratios=10)
    assert c2.shape == (4,)
    lo, hi = cal.calibrate(x.reshape(4, 1024), "uint8", "mse", axis=1, symmetric=False, num_ratios=10)
    assert lo.shape == hi.shape == (4,) and np.all(np.asarray(lo) <= 0) and np.all(np.asarray(hi) >= 0)


def test_mse_on_uniform_data_keeps_nearly_everything():
    x = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, 10000), jnp.float32)
    assert float(cal.calibrate(x, "int8", "mse")) >= 0.95 * float(jnp.max(jnp.abs(x)))


def test_kl_threshold_is_inside_the_range():
    x = jnp.asarray(np.random.default_rng(4).standard_normal(50000), jnp.float32)
    c = float(cal.calibrate(x, "int8", "kl", kl_stride=4))
    assert 2.0 < c <= float(jnp.max(jnp.abs(x)))
    assert float(cal.calibrate(jnp.zeros(100), "int8", "kl")) == 0.0


def test_callable_calibration_in_quantize_scaled():
    x = jnp.asarray(np.random.default_rng(5).standard_normal((2, 256)), jnp.float32)
    f = functools.partial(cal.calibrate, method="percentile", percentile=99.0)
    q = quantize_scaled(x, "int8", axis=1, calibration=f)
    np.testing.assert_allclose(q.scale[:, 0] * 127, cal.calibrate(x, "int8", "percentile", axis=1, percentile=99.0),
                               rtol=1e-6)


def test_calibrate_bad_input():
    x = jnp.ones((4, 8), jnp.float32)
    with pytest.raises(ValueError, match="method must be one of"):
        cal.calibrate(x, "int8", "entropy")
    with pytest.raises(ValueError, match="percentile must be in"):
        cal.calibrate(x, "int8", "percentile", percentile=0)
    with pytest.raises(ValueError, match="num_ratios must be an int >= 1"):
        cal.calibrate(x, "int8", "mse", num_ratios=0)
    with pytest.raises(ValueError, match="signed integer formats"):
        cal.calibrate(x, "e4m3", "kl")
    with pytest.raises(ValueError, match="one range per tensor"):
        cal.calibrate(x, "int8", "kl", axis=1)
    with pytest.raises(ValueError, match="symmetric only"):
        cal.calibrate(x, "int8", "kl", symmetric=False)
    with pytest.raises(ValueError, match="bins must be an int >= fmt.max"):
        cal.calibrate(x, "int8", "kl", bins=64)
    with pytest.raises(ValueError, match="axis=5 is out of range"):
        cal.calibrate(x, "int8", axis=5)
    with pytest.raises(ValueError, match="needs an IntFormat"):
        cal.calibrate(x, "e4m3", symmetric=False)
    with pytest.raises(TypeError, match="floating-point"):
        cal.calibrate(jnp.ones(4, jnp.int32), "int8")
    with pytest.raises(ValueError, match="x is empty"):
        cal.calibrate(jnp.ones((0,), jnp.float32), "int8")


# ---- observer -----------------------------------------------------------------------------


def test_observer_first_batch_then_moving_average():
    s = cal.minmax_init()
    s = cal.minmax_update(s, jnp.asarray([-1.0, 2.0]))
    assert (float(s.min), float(s.max), int(s.count)) == (-1.0, 2.0, 1)
    s = cal.minmax_update(s, jnp.asarray([-3.0, 4.0]), momentum=0.5)
    assert (float(s.min), float(s.max), int(s.count)) == (-2.0, 3.0, 2)
    assert float(cal.minmax_range(s)) == 3.0
    lo, hi = cal.minmax_range(s, symmetric=False)
    assert (float(lo), float(hi)) == (-2.0, 3.0)
    s2 = cal.minmax_update(s, jnp.asarray([jnp.nan, jnp.inf]))
    assert (float(s2.min), float(s2.max), int(s2.count)) == (-2.0, 3.0, 2)  # nothing finite: unchanged
    for empty in (jnp.zeros((0,), jnp.float32), jnp.zeros((0, 3), jnp.float32)):  # an empty batch: unchanged too
        s3 = jax.jit(cal.minmax_update)(s, empty)
        assert (float(s3.min), float(s3.max), int(s3.count)) == (-2.0, 3.0, 2)
    s4 = cal.minmax_update(cal.minmax_init((1, 3)), jnp.zeros((0, 3), jnp.float32), axis=0)
    assert int(s4.count) == 0 and s4.min.shape == (1, 3)


def test_observer_under_scan_and_per_channel():
    batches = jnp.asarray(np.random.default_rng(6).standard_normal((10, 3, 16)), jnp.float32)
    update = jax.jit(functools.partial(cal.minmax_update, axis=1))

    def body(s, b):
        return update(s, b), None

    s, _ = jax.lax.scan(body, cal.minmax_init((3, 1)), batches)
    ref_min = np.asarray(batches[0]).min(1, keepdims=True)
    for b in np.asarray(batches[1:]):
        ref_min = ref_min + np.float32(0.01) * (b.min(1, keepdims=True) - ref_min)
    np.testing.assert_allclose(s.min, ref_min, rtol=1e-6)
    q = quantize_scaled(batches[-1].T, "int8", axis=0, calibration=s._replace(min=s.min.T, max=s.max.T))
    assert q.scale.shape == (1, 3)
    with pytest.raises(ValueError, match="the batch reduces to shape"):
        cal.minmax_update(cal.minmax_init(), batches[0], axis=1)
    with pytest.raises(ValueError, match="momentum must be in"):
        cal.minmax_update(cal.minmax_init(), batches[0], momentum=0.0)


@pytest.mark.parametrize("shape, axis", [
    ((7, 40), 1), ((600,), None), ((4, 300, 5), None), ((4, 300, 5), 1), ((4, 300, 5), (0, 1)),
    ((4, 300, 5), -1), ((4, 300, 5), (0, 2)), ((2, 64, 3), (1, 2)),
])
@pytest.mark.parametrize("special", [None, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("keepdims", [False, True])
def test_finite_absmax_is_the_largest_finite_magnitude(shape, axis, special, keepdims):
    # Groups of at most 256 and of more (two code paths); an inf or NaN in one group, a
    # large negative value elsewhere; a group of only zeros and -0.0 gives +0.
    rng = np.random.default_rng(len(shape) * 10 + (0 if axis is None else 1))
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., 0] = -0.0
    x.flat[3] = -1000.0
    if special is not None:
        x.flat[x.size // 2 + 1] = special
    want = np.max(np.where(np.isfinite(x), np.abs(x), 0), axis=axis, keepdims=keepdims)
    got = np.asarray(jax.jit(functools.partial(cal.finite_absmax, axis=axis, keepdims=keepdims))(jnp.asarray(x)))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert not np.any(np.signbit(got))
    z = np.asarray(cal.finite_absmax(jnp.full((600,), -0.0, jnp.float32)))
    assert z == 0 and not np.signbit(z)


@pytest.mark.parametrize("finite", [True, False])
@pytest.mark.parametrize("special", [np.nan, -np.nan, np.inf])
def test_group_extent_of_columns_with_a_nan_in_every_lane(finite, special):
    # XLA's CPU backend (jax 0.10) drops NaN in float max reductions, and a dropped NaN
    # spoils the maximum of its vector lane (related: openxla/xla#21461, tensorflow#116992): one
    # NaN in each of 32 columns, at 32 different rows, found both. The column path must
    # give the largest finite magnitude (finite=True) or the non-finite value (False).
    x = np.random.default_rng(1).standard_normal((256, 64)).astype(np.float32)
    cols = np.arange(32)
    x[cols * 3, cols] = special
    ext = jax.jit(functools.partial(cal.group_extent, axis=0, finite=finite))(jnp.asarray(x))
    got = np.asarray(ext.absmax)
    mag = np.abs(x)
    if finite:
        np.testing.assert_array_equal(got, np.max(np.where(np.isfinite(x), mag, 0), axis=0))
    else:
        assert np.all(~np.isfinite(got[:32])) and np.array_equal(np.isnan(got[:32]), np.isnan(mag[cols * 3, cols]))
        np.testing.assert_array_equal(got[32:], np.max(mag[:, 32:], axis=0))
    # The scaled layer on the same columns: a NaN or inf poisons its column's scale.
    q = quantize_scaled(jnp.asarray(x), "int8", axis=0)
    assert np.all(np.isnan(np.asarray(q.scale)[0, :32])) and np.all(np.isfinite(np.asarray(q.scale)[0, 32:]))


@pytest.mark.parametrize("axis", [1, None, 0])
def test_absmax_calibration_writes_no_array_of_the_input_size(axis):
    # A lone integer max (the extent's minimum unused) compiled on XLA's CPU backend into
    # materialized magnitude bits and a tree of reduce-windows, 1.6x a copy; the
    # variadic reduce with both outputs used writes nothing of x's size.
    x = jnp.asarray(np.random.default_rng(0).standard_normal((64, 256)), jnp.float32)
    full = entry_arrays(jax.jit(lambda a: cal.calibrate(a, "int8", axis=axis)).lower(x).compile().as_text(), [x.size])
    assert full == [], full
    want = np.max(np.abs(np.asarray(x)), axis=axis)
    np.testing.assert_array_equal(np.asarray(cal.calibrate(x, "int8", axis=axis)), want)


def _extent_reference(g):
    """group_extent's two magnitudes and finite_range's ends of one group, in NumPy (exact)."""
    mag = np.abs(g).view(np.uint32)
    inf = np.uint32(0x7F800000)
    fin = g[np.isfinite(g)]
    nonzero = mag[mag != 0]
    return {"absmax_any": mag.max(), "absmax_finite": np.abs(fin).view(np.uint32).max() if fin.size else 0,
            "min_nonzero": min(nonzero.min(), inf) if nonzero.size else inf,
            # finite_range orders -0 just below +0: the low end is -0 where -0 is the least finite value
            "lo": np.float32(fin.min() if fin.size and fin.min() < 0 else -0.0 if np.signbit(fin).any() else 0.0),
            "hi": np.float32(fin.max() if fin.size and fin.max() > 0 else 0.0)}  # and +0 below +0


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)])
@pytest.mark.parametrize("special", ["none", "nan_inf", "negative_only", "all_nan_row"])
def test_extent_and_range_in_one_pass(axis, special):
    # Affine quantization's one reduction must give what the two separate ones give: the
    # largest magnitude (with and without NaN and inf), the smallest non-zero one and the
    # finite range, subnormals and -0 included.
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((6, 48)) * np.exp2(rng.integers(-140, 20, (6, 1)))).astype(np.float32)
    x[:, ::7] = rng.integers(1, 1 << 23, x[:, ::7].shape).astype(np.uint32).view(np.float32)  # subnormals
    x[1, :] = np.where(x[1] < 0, -0.0, 0.0)
    x[2, 5] = -0.0
    if special == "negative_only":  # seen only at the low key: -inf and a NaN with the sign bit
        x[3, 9], x[4, 4] = -np.inf, -np.float32(np.nan)
    elif special != "none":
        x[3, [2, 9]] = [np.nan, -np.inf]
        x[4, 4] = -np.float32(np.nan)
    if special == "all_nan_row":
        x[5, :] = np.nan
    xs = jnp.asarray(x)
    for finite in (True, False):
        ext, (lo, hi) = jax.jit(functools.partial(cal.extent_and_range, axis=axis, finite=finite))(xs)
        want_ext = cal.group_extent(xs, axis, finite=finite)
        for got, want in zip(ext, want_ext):
            assert np.array_equal(np.asarray(got).view(np.uint32), np.asarray(want).view(np.uint32))
        assert all(np.array_equal(np.asarray(g).view(np.uint32), np.asarray(w).view(np.uint32))
                   for g, w in zip((lo, hi), cal.finite_range(xs, axis)))  # its second half
        rows = [x] if axis in (None, (0, 1)) else list(x.T) if axis == 0 else list(x)
        refs = [_extent_reference(r.ravel()) for r in rows]
        key = "absmax_finite" if finite else "absmax_any"
        np.testing.assert_array_equal(np.asarray(ext.absmax).ravel().view(np.uint32), [r[key] for r in refs])
        np.testing.assert_array_equal(np.asarray(ext.min_nonzero).ravel().view(np.uint32), [r["min_nonzero"] for r in refs])
        np.testing.assert_array_equal(np.asarray(lo).ravel().view(np.uint32), np.array([r["lo"] for r in refs]).view(np.uint32))
        np.testing.assert_array_equal(np.asarray(hi).ravel().view(np.uint32), np.array([r["hi"] for r in refs]).view(np.uint32))
    ext_k, (lo_k, _) = cal.extent_and_range(xs, axis, True)
    assert ext_k.absmax.ndim == lo_k.ndim == 2


@pytest.mark.parametrize("shape,axes", [((4096, 8), (0,)), ((37, 5), (0,)), ((96, 3, 4), (0, 1)), ((3, 64, 7), (1,)),
                                        ((1, 9), (0,)), ((70, 33, 2), (0, 1)), ((6, 40), (1,))])
def test_reduce_staged_equals_one_reduction(shape, axes):
    # Stages of at most 32 along each reduced axis (prime lengths past 32 in one piece):
    # the same maxima and minima as one lax.reduce, for unsigned and signed keys.
    rng = np.random.default_rng(sum(shape))
    u = jnp.asarray(rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32))
    k = jnp.asarray(rng.integers(-(2**31), 2**31, shape).astype(np.int32))

    def max_min(a, b):
        return jnp.maximum(a[0], b[0]), jnp.minimum(a[1], b[1])

    inits = (jnp.uint32(0), jnp.int32(2**31 - 1))
    got = jax.jit(lambda u, k: cal.reduce_staged((u, k), inits, max_min, axes))(u, k)
    want = jax.lax.reduce((u, k), inits, max_min, axes)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
