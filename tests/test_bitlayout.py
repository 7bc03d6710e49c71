"""Tests of numfmt.bitlayout: exponents, powers of two, and exact products and quotients on the bits.

Every result is checked against the exact oracle (numfmt.testing.reference_round on
Fractions), over inputs that reach the subnormals, where XLA on CPU would flush float
arithmetic to zero.
"""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numfmt.formats as F
from numfmt import bitlayout as bl
from numfmt.bitlayout import exponent_and_significand, pow2
from numfmt.testing import reference_decode, reference_round

MODES = ["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd"]


def f32_of(frac: Fraction, mode="nearest_even") -> np.float32:
    """``frac`` rounded once into float32 by ``mode`` (the oracle), as a float32."""
    code = reference_round(frac, F.FP32, mode)
    return np.uint32(code).view(np.float32)


def _same(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return np.array_equal(a.view(np.uint32), b.view(np.uint32)) or (np.isnan(a).all() and np.isnan(b).all())


def _float(bits):
    return np.uint32(bits).view(np.float32)


# Near the bottom of float32's range: subnormals, the normal/subnormal boundary, and
# ordinary values, each with a random significand and sign.
near_subnormal = st.one_of(
    st.integers(1, (1 << 23) - 1).map(_float),                                    # subnormals
    st.integers(0x00800000 - 64, 0x00800000 + 64).map(_float),                    # around 2**-126
    st.builds(lambda e, m: _float((e << 23) | m), st.integers(1, 40), st.integers(0, (1 << 23) - 1)),
    st.builds(lambda e, m: _float((e << 23) | m), st.integers(1, 254), st.integers(0, (1 << 23) - 1)),
).flatmap(lambda v: st.sampled_from([v, -v]))
positive = near_subnormal.map(abs).filter(lambda v: v > 0)


@settings(max_examples=200)
@given(a=near_subnormal, b=positive, mode=st.sampled_from(MODES))
def test_multiply_and_divide_round_once(a, b, mode):
    m = jax.jit(bl.multiply, static_argnums=2)(jnp.float32(a), jnp.float32(b), mode)
    assert _same(m, f32_of(Fraction(float(a)) * Fraction(float(b)), mode))
    d = jax.jit(bl.divide, static_argnums=2)(jnp.float32(a), jnp.float32(b), mode)
    assert _same(d, f32_of(Fraction(float(a)) / Fraction(float(b)), mode))


@settings(max_examples=200)
@given(a=near_subnormal, k=st.integers(-300, 300), mode=st.sampled_from(MODES))
def test_mul_pow2_rounds_once(a, k, mode):
    r = jax.jit(bl.mul_pow2, static_argnums=2)(jnp.float32(a), jnp.int32(k), mode)
    assert _same(r, f32_of(Fraction(float(a)) * Fraction(2) ** k, mode))


def test_specials_pass_through_and_cpu_flush_does_not_apply():
    x = jnp.asarray([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-45], jnp.float32)
    s = jnp.full(x.shape, 3.0, jnp.float32)
    np.testing.assert_array_equal(np.signbit(bl.multiply(x, s))[:2], [False, True])
    out = np.asarray(jax.jit(bl.multiply)(x, s))
    assert np.isinf(out[2]) and out[3] < 0 and np.isnan(out[4])
    assert out[5] == np.float32(1e-40) * np.float32(3.0) and out[6] == np.float32(-1e-45) * np.float32(3.0)
    # Plain float arithmetic in XLA on CPU flushes these; the bit versions do not.
    assert float(jax.jit(bl.mul_pow2)(jnp.float32(1e-40), jnp.int32(1))) == np.float32(1e-40) * np.float32(2)


def test_float64_with_x64():
    with bl.x64():
        a = jnp.asarray([5e-324, 3e-310, 1.5, -2.2250738585072014e-308], jnp.float64)
        b = jnp.asarray([3.0, 7.0, 1e-300, 0.75], jnp.float64)
        np.testing.assert_array_equal(jax.jit(bl.multiply)(a, b), np.asarray(a) * np.asarray(b))
        np.testing.assert_array_equal(jax.jit(bl.divide)(a, b), np.asarray(a) / np.asarray(b))


def test_exponent_bits_helpers_on_subnormals():
    a = jnp.asarray([2.0**-149, 3 * 2.0**-140, 1.0, 1.5 * 2.0**127], jnp.float32)
    e, sig = exponent_and_significand(a)
    np.testing.assert_array_equal(e, [-149, -139, 0, 127])
    np.testing.assert_array_equal(sig, [1.0, 1.5, 1.0, 1.5])
    np.testing.assert_array_equal(pow2(jnp.asarray([-149, -127, 0, 127])), [2.0**-149, 2.0**-127, 1.0, 2.0**127])


@pytest.mark.parametrize("mode", ["nearest_even", "odd"])
def test_compose_overflow(mode):
    big = bl.compose(jnp.asarray(False), jnp.uint32(3 << 24), jnp.int32(200), mode, jnp.float32)
    assert float(big) == (np.inf if mode == "nearest_even" else float(np.finfo(np.float32).max))
    assert float(reference_decode(reference_round(Fraction(3 << 24) * 2**200, F.FP32, mode), F.FP32)) in (
        np.inf, float(np.finfo(np.float32).max))


def normal_quotient_operands(seed: int, n: int):
    """Positive normal float32 pairs ``(a, b)`` whose quotient is normal: random ones, exact
    quotients (short significands, so that ``a = q * b`` exactly) and their neighbours one
    ulp away (residuals of either sign, the cases a mode that misreads the residual gets
    wrong), and pairs at the ends of the normal range."""
    rng = np.random.default_rng(seed)
    k = n // 4

    def short(m):  # 12 significant bits
        return (1 + rng.integers(0, 1 << 11, m) / 2.0**11) * np.exp2(rng.integers(-40, 40, m))

    q, b = short(k), short(k)
    exact_a = (q * b).astype(np.float32)  # 24 significant bits at most: exact
    b_exact = b.astype(np.float32)
    a = np.concatenate([
        (1 + rng.random(k)) * np.exp2(rng.integers(-60, 60, k)),
        exact_a,
        np.nextafter(exact_a, np.float32(np.inf)),
        np.nextafter(exact_a, np.float32(0)),
    ]).astype(np.float32)
    b = np.concatenate([((1 + rng.random(k)) * np.exp2(rng.integers(-60, 60, k))).astype(np.float32),
                        b_exact, b_exact, b_exact])
    a[:4] = [np.finfo(np.float32).tiny * 2, np.finfo(np.float32).max, np.float32(1.5), np.float32(3.0)]
    b[:4] = [np.float32(2.0), np.float32(1.5), np.float32(1.5), np.float32(1.0)]
    return a, b


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["nearest_even", "odd", "up", "down", "toward_zero"]))
def test_quotient_normal_rounds_once(seed, mode):
    # The fast quotient for normal operands and results must give divide's bits: the exact
    # quotient rounded once. The exact quotients and their one-ulp neighbours are where a
    # truncation or a sticky bit taken from the wrong side of the residual goes wrong.
    a, b = normal_quotient_operands(seed, 256)
    got = np.asarray(jax.jit(bl.quotient_normal, static_argnums=2)(a, b, mode))
    want = [f32_of(Fraction(float(x)) / Fraction(float(y)), mode) for x, y in zip(a, b)]
    assert _same(got, np.asarray(want, np.float32))
    assert float(jax.jit(bl.quotient_normal, static_argnums=2)(jnp.float32(0), jnp.float32(3), mode)) == 0.0


def _f64_rounded(q: Fraction, mode: str) -> float:
    """A positive Fraction rounded once into float64 (Python's float(Fraction) is nearest)."""
    f = float(q)
    down = f if Fraction(f) <= q else float(np.nextafter(f, 0.0))
    if Fraction(down) == q:
        return down
    up = float(np.nextafter(down, np.inf))
    odd = down if np.float64(down).view(np.uint64) & np.uint64(1) else up
    return {"down": down, "up": up, "odd": odd}[mode]


def test_quotient_normal_in_float64():
    # The same residual in 64-bit integers: float64 operands (under x64) round as IEEE says.
    rng = np.random.default_rng(5)
    with bl.x64():
        a = (1 + rng.random(512)) * np.exp2(rng.integers(-900, 900, 512).astype(np.float64))
        b = (1 + rng.random(512)) * np.exp2(rng.integers(-90, 90, 512).astype(np.float64))
        b[:256] = np.float64(3.0)  # exact quotients and inexact ones against one divisor
        a[:128] = (rng.integers(1, 1 << 20, 128) * 3).astype(np.float64)
        f = jax.jit(bl.quotient_normal, static_argnums=2)
        np.testing.assert_array_equal(np.asarray(f(a, b, "nearest_even")), a / b)
        for mode in ("odd", "up", "down"):
            got = np.asarray(f(a, b, mode))
            want = [_f64_rounded(Fraction(float(x)) / Fraction(float(y)), mode) for x, y in zip(a, b)]
            np.testing.assert_array_equal(got, want, err_msg=mode)
