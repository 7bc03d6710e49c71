"""Tests of numfmt.lowbit: binarize and ternarize against a NumPy reference, and their STE forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numfmt as nf
from numfmt.lowbit import BINARY, TERNARY, ternary_delta

EXAMPLES = settings().max_examples


def _groups(x, axis):
    """``x`` as (groups, members): the values sharing one alpha in each row."""
    if axis is None:
        return x.reshape(1, -1), ()
    axis = tuple(a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis))
    keep = [i for i in range(x.ndim) if i not in axis]
    moved = np.transpose(x, keep + list(axis))
    scale_shape = tuple(1 if i in axis else d for i, d in enumerate(x.shape))
    return moved.reshape(math.prod(x.shape[i] for i in keep), -1), scale_shape


def _exact_mean(row) -> float:
    return math.fsum(abs(float(v)) for v in row) / len(row)


def _close(got, want, n):
    """``got`` within the error of a pairwise float32 mean of ``n`` non-negative terms of ``want``."""
    return abs(got - want) <= ((n - 1).bit_length() + 2) * 2.0**-24 * abs(want) + 2.0**-149


def _pairwise(y):
    """docs/lowbit.md's order: zeros up to a power of two, then the first half plus the second half."""
    size = 1 << max(len(y) - 1, 0).bit_length()
    y = np.concatenate([y, np.zeros(size - len(y), np.float32)])
    while len(y) > 1:
        y = y[: len(y) // 2] + y[len(y) // 2 :]  # float32 additions, NumPy keeps subnormals
    return y[0]


def _reference(row, delta_factor=None):
    """alpha (and delta, and the mask) of one group by docs/lowbit.md's recipe, in NumPy float32."""
    a = np.abs(row.astype(np.float32))
    e_max = max(int((a.view(np.uint32) >> 23).max()), 1) - 127
    k = -e_max
    y64 = a.astype(np.float64) * 2.0**k  # exact
    y = np.where(y64 < 2.0**-126, 0, y64).astype(np.float32)
    mean_y = np.float32(_pairwise(y)) / np.float32(len(y))

    def unscale(v):
        with np.errstate(over="ignore"):  # past float32's range it is inf, as numfmt's delta is
            return np.float32(np.float64(v) * 2.0**-k)  # one rounding, subnormals included

    if delta_factor is None:
        return unscale(mean_y)
    delta_y = np.float32(np.float32(delta_factor) * mean_y)
    beyond = y > delta_y
    alpha_y = np.float32(_pairwise(np.where(beyond, y, np.float32(0)))) / np.float32(max(beyond.sum(), 1))
    return unscale(alpha_y), unscale(delta_y), beyond


ARRAYS = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9),
                    elements=st.one_of(st.floats(-1e3, 1e3, width=32), st.floats(-2.0**-120, 2.0**-120, width=32),
                                       st.sampled_from([0.0, -0.0, 2.0**-149, -3 * 2.0**-149, 2.0**-126, 3e38])))
AXES = st.sampled_from([None, 0, -1, (0,)])


# ---- binarize --------------------------------------------------------------------------------


@settings(max_examples=2 * EXAMPLES)
@given(x=ARRAYS, axis=AXES)
def test_binarize_matches_numpy_reference(x, axis):
    q = nf.binarize(x, axis=axis)
    rows, scale_shape = _groups(x, axis)
    alpha = np.asarray(q.scale).reshape(-1)
    assert q.scale.shape == scale_shape and q.fmt is BINARY and q.codes.dtype == np.uint8
    for a, row in zip(alpha, rows):
        assert a.view(np.uint32) == _reference(row).view(np.uint32)  # bit for bit
        assert _close(float(a), _exact_mean(row), row.size)
    assert np.array_equal(np.asarray(q.codes), (x >= 0).astype(np.uint8))  # sign(0) = sign(-0) = +1, subnormals too
    deq = np.asarray(q.dequantize())
    full_alpha = np.broadcast_to(np.asarray(q.scale), x.shape)
    # Every alpha, subnormal ones included (XLA on CPU would flush a float product): bit for bit.
    want = np.where(x >= 0, full_alpha, -full_alpha)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(deq), nan) and np.array_equal(deq.view(np.uint32)[~nan], want.view(np.uint32)[~nan])


def test_dequantize_keeps_a_subnormal_alpha():
    q = nf.binarize(np.array([1e-45, -1e-45], np.float32))
    assert float(q.scale) == 2.0**-149  # alpha itself is right on every backend
    assert np.asarray(q.dequantize()).tolist() == [2.0**-149, -(2.0**-149)]


def test_binarize_adversarial():
    zeros = nf.binarize(np.zeros((2, 3), np.float32), axis=1)
    assert np.asarray(zeros.scale).tolist() == [[0.0], [0.0]] and np.all(np.asarray(zeros.codes) == 1)
    one = nf.binarize(np.array([0.0, 0.0, -3.0, 0.0], np.float32))
    assert float(one.scale) == 0.75 and np.asarray(one.dequantize()).tolist() == [0.75, 0.75, -0.75, 0.75]
    neg_zero = nf.binarize(np.array([-0.0, 2.0], np.float32))
    assert np.asarray(neg_zero.dequantize()).tolist() == [1.0, 1.0]
    nan = nf.binarize(np.array([[1.0, np.nan], [1.0, 2.0]], np.float32), axis=1)
    assert np.isnan(np.asarray(nan.dequantize())[0]).all() and np.asarray(nan.dequantize())[1].tolist() == [1.5, 1.5]
    inf = nf.binarize(np.array([1.0, -np.inf], np.float32))
    assert np.asarray(inf.dequantize()).tolist() == [np.inf, -np.inf]
    # Subnormals count (XLA on CPU would flush them in a plain float mean): the mean of
    # {2**-149, 2**-149} is 2**-149; of {3 * 2**-149, 0} it is 1.5 * 2**-149, a tie, to even: 2**-148.
    assert float(nf.binarize(np.array([1e-45, 1e-45], np.float32)).scale) == 2.0**-149
    assert float(nf.binarize(np.array([3 * 2.0**-149, 0], np.float32)).scale) == 2.0**-148
    big = np.array([3e38, 3e38, 3e38], np.float32)  # the sum overflows float32; the scaled sum does not
    assert float(nf.binarize(big).scale) == float(_reference(big)) == pytest.approx(3e38, rel=1e-7)


def test_binarize_packs_one_bit_a_value():
    x = np.random.default_rng(0).standard_normal((6, 37)).astype(np.float32)
    q = nf.binarize(x, axis=1)
    assert q.nbytes == nf.packed_nbytes(6 * 37, 1) + 4 * 6 == 28 + 24
    packed = q.packed_codes()
    assert packed.dtype == np.uint8 and packed.shape == (28,)
    assert np.array_equal(nf.unpack(packed, 1, (6, 37)), np.asarray(q.codes))
    t = nf.ternarize(x)
    assert t.nbytes == nf.packed_nbytes(6 * 37, 2) + 4 and t.fmt.bits == 2


def test_jit_and_vmap():
    x = jax.random.normal(jax.random.key(1), (3, 4, 16))
    for fn in (lambda v: nf.binarize(v, axis=-1).dequantize(), lambda v: nf.ternarize(v, axis=-1).dequantize()):
        eager = np.asarray(fn(x))
        assert np.array_equal(np.asarray(jax.jit(fn)(x)), eager)
        assert np.array_equal(np.asarray(jax.vmap(fn)(x)), eager)  # per-row groups either way
    q = jax.jit(lambda v: nf.binarize(v, axis=1))(x[0])
    assert isinstance(q, nf.QArray) and q.scale.shape == (4, 1)


# ---- ternarize -------------------------------------------------------------------------------


@settings(max_examples=2 * EXAMPLES)
@given(x=ARRAYS, axis=AXES, factor=st.sampled_from([0.7, 0.5, 1.0, 0.05, 2.0]))
def test_ternarize_matches_numpy_reference(x, axis, factor):
    q = nf.ternarize(x, axis=axis, delta_factor=factor)
    delta = np.asarray(ternary_delta(x, axis=axis, delta_factor=factor))
    rows, scale_shape = _groups(x, axis)
    codes, _ = _groups(np.asarray(q.codes), axis)
    assert q.scale.shape == delta.shape == scale_shape and q.fmt is TERNARY
    for row, got_alpha, got_delta, got_codes in zip(rows, np.asarray(q.scale).reshape(-1), delta.reshape(-1), codes):
        alpha, want_delta, beyond = _reference(row, factor)
        assert got_delta.view(np.uint32) == want_delta.view(np.uint32)
        assert got_alpha.view(np.uint32) == alpha.view(np.uint32)
        assert np.array_equal(got_codes, np.where(beyond, np.where(row < 0, 0, 2), 1))
        if 2.0**-126 <= want_delta < np.inf:  # the scaled domain decides as |x| > delta (else more finely)
            assert np.array_equal(beyond, np.abs(row) > want_delta)
        if np.isfinite(got_delta):
            assert _close(float(got_delta), float(np.float32(factor)) * _exact_mean(row), row.size + 1)
        want_alpha = math.fsum(abs(float(v)) for v in row[beyond]) / beyond.sum() if beyond.any() else 0.0
        assert _close(float(got_alpha), want_alpha, row.size)


def test_ternarize_adversarial():
    zeros = nf.ternarize(np.zeros(5, np.float32))
    assert float(zeros.scale) == 0.0 and np.asarray(zeros.codes).tolist() == [1] * 5
    one = nf.ternarize(np.array([0.0, -4.0, 0.0, 0.0], np.float32))  # mean 1, delta 0.7
    assert float(one.scale) == 4.0 and np.asarray(one.dequantize()).tolist() == [0, -4.0, 0, 0]
    # A tie at delta: mean |x| = 2, delta = 0.5 * 2 = 1 exactly; |x| == delta becomes 0.
    tie = nf.ternarize(np.array([1.0, 3.0, -1.0, -3.0], np.float32), delta_factor=0.5)
    assert float(ternary_delta(np.array([1.0, 3.0], np.float32), delta_factor=0.5)) == 1.0
    assert np.asarray(tie.dequantize()).tolist() == [0.0, 3.0, 0.0, -3.0]
    # The same with the default 0.7: find data whose delta is one of its own elements.
    m = np.float32(4.0)
    while True:
        t = np.float32(np.float32(0.7) * m)
        x = np.array([t, -t, 2 * m - t, 2 * m - t], np.float32)
        if float(_reference(x, 0.7)[1]) == float(t):
            break
        m = np.nextafter(m, np.float32(8))
    assert float(ternary_delta(x)) == float(t) == float(np.abs(x[0]))
    q = nf.ternarize(x)
    assert np.asarray(q.codes).tolist() == [1, 1, 2, 2] and float(q.scale) == float(x[2])
    # Nothing beyond delta (delta_factor >= 1 on constant data): all zeros, alpha 0.
    flat = nf.ternarize(np.full(4, 3.0, np.float32), delta_factor=1.0)
    assert float(flat.scale) == 0.0 and np.asarray(flat.dequantize()).tolist() == [0.0] * 4
    nan = nf.ternarize(np.array([1.0, np.nan, 2.0], np.float32))
    assert np.isnan(np.asarray(nan.dequantize())).all()
    inf = nf.ternarize(np.array([1.0, np.inf], np.float32))
    assert not np.isfinite(np.asarray(inf.dequantize())).any()


# ---- straight-through estimators --------------------------------------------------------------


@pytest.mark.parametrize("ternary", [False, True])
def test_fake_forms_forward_values_and_clipped_gradient(ternary):
    x = jnp.array([[0.3, -1.5, 0.0, 0.9], [2.0, -0.1, 0.05, -0.6]], jnp.float32)
    fake = nf.fake_ternarize if ternary else nf.fake_binarize
    real = nf.ternarize if ternary else nf.binarize
    assert np.array_equal(np.asarray(fake(x, axis=1)), np.asarray(real(x, axis=1).dequantize()))
    c = jnp.arange(8.0).reshape(2, 4)
    g = jax.jit(jax.grad(lambda v: jnp.sum(fake(v, axis=1) * c)))(x)
    assert np.array_equal(np.asarray(g), np.where(np.abs(np.asarray(x)) <= 1.0, np.asarray(c), 0.0))
    g = jax.grad(lambda v: jnp.sum(fake(v, clip=None) * c))(x)
    assert np.array_equal(np.asarray(g), np.asarray(c))
    g = jax.grad(lambda v: jnp.sum(fake(v, clip=0.5) * c))(x)
    assert np.array_equal(np.asarray(g), np.where(np.abs(np.asarray(x)) <= 0.5, np.asarray(c), 0.0))


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    x = np.ones((2, 3), np.float32)
    for fn in (nf.binarize, nf.ternarize, nf.fake_binarize, nf.fake_ternarize):
        with pytest.raises(ValueError, match="axis=2 is out of range"):
            fn(x, axis=2)
        with pytest.raises(TypeError, match="x must be a floating-point array"):
            fn(np.ones((2, 3), np.int32))
        for empty in (np.zeros((0,), np.float32), np.zeros((0, 3), np.float32)):  # no mean magnitude to scale by
            with pytest.raises(ValueError, match="x is empty"):
                fn(empty)
    with pytest.raises(ValueError, match="x is empty"):
        nf.ternary_delta(np.zeros((3, 0), np.float32), axis=1)
    for bad in (0.0, -0.7, math.inf, math.nan):
        with pytest.raises(ValueError, match="delta_factor must be a positive finite number in"):
            nf.ternarize(x, delta_factor=bad)
    with pytest.raises(TypeError, match="delta_factor must be a positive number"):
        nf.ternarize(x, delta_factor="0.7")
    with pytest.raises(ValueError, match="clip must be a positive number or None"):
        nf.fake_binarize(x, clip=0)
