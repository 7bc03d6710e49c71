"""numfmt.tensorcore against recorded H100 output, an exact Python reference, and properties.

* Every recorded output that a model covers (tests/tensorcore_cases.py) must be
  reproduced bit for bit in at least 99.9 % of its elements; the figure each test
  measures is the one docs/hardware.md quotes (``python tests/tensorcore_cases.py``
  prints that table). Outputs no model reproduces are listed with the best agreement
  reached, and the test checks that figure still holds.
* An independent reference, in plain Python on ``fractions.Fraction``, computes the
  block-FMA model of Fasi et al. (2021) from its definition; the JAX kernel must equal it
  for every parameter (a kernel that rounds, aligns, promotes or splits wrongly fails).
* Properties: exact products when nothing is truncated, jit == eager, vmap, rows and
  columns independent of the others, zero padding of K changes nothing, and the fast and
  general paths of the kernel agree.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from fractions import Fraction

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numfmt as nf
from numfmt import tensorcore as tc
from numfmt import tensorcore_kernel as tk
from numfmt.testing.reference import reference_round
from tests.bits import same_bits

# The recorded cases live beside this file (shared with the table printer).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import tensorcore_cases as cases

R = dataclasses.replace

# ---- the recorded hardware ------------------------------------------------------------------------

FITTED = [c for c in cases.CASES if c.best is None]
NOT_FITTED = [c for c in cases.CASES if c.best is not None]


@pytest.mark.parametrize("c", FITTED, ids=lambda c: c.id)
def test_recorded_output(c):
    frac = cases.agreement(c)
    print(f"{c.id}: {100 * frac:.3f} % bit-identical ({c.model.name}; {c.kernel or 'as named'})")
    assert frac >= 0.999, f"{c.id}: only {100 * frac:.3f} % of the outputs are bit-identical"


@pytest.mark.parametrize("c", NOT_FITTED, ids=lambda c: c.id)
def test_not_fitted_output_keeps_its_recorded_agreement(c):
    # A known limit (docs/hardware.md): the figure quoted there must stay true.
    frac = cases.agreement(c)
    print(f"{c.id}: {100 * frac:.3f} % bit-identical (not fitted: {c.why})")
    assert frac >= c.best - 1e-9


def test_every_recorded_output_is_listed():
    listed = {c.id for c in cases.CASES}
    for name in cases.FILES:
        for key in cases._npz(name).files:
            if key.rsplit("/", 1)[1] in ("A", "B", "scales", "scale_a", "scale_b"):
                continue
            assert key in listed, f"{key} has no entry in tests/tensorcore_cases.py"


# ---- an exact reference ------------------------------------------------------------------------------


def _floor_log2(x: Fraction) -> int:
    x = abs(x)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    return e if Fraction(2) ** e <= x else e - 1


def _round(x: Fraction, man_bits: int, mode: str) -> Fraction:
    """``x`` rounded to ``man_bits`` fraction bits (unbounded exponent)."""
    if x == 0:
        return Fraction(0)
    q = Fraction(2) ** (_floor_log2(x) - man_bits)
    y = x / q
    if mode == "toward_zero":
        r = int(y)
    else:
        r = round(y)  # Python rounds a Fraction half to even
    return r * q


def _chop(x: Fraction, mode: str) -> int:
    return int(x) if mode == "toward_zero" else round(x)


def _exp(v: float, fmt) -> int:
    return max(_floor_log2(Fraction(float(v))), fmt.emin)


def _chain(a, b, model: tc.TensorCoreModel) -> Fraction:
    """The block-FMA model for one output, from its definition."""
    acc, w, n = model.accumulator_fmt, model.alignment_bits, model.block_size
    c, total, since = Fraction(0), Fraction(0), 0
    for start in range(0, len(a), n):
        if w is None:
            c = _round(c + Fraction(float(a[start])) * Fraction(float(b[start])), 23, "nearest_even")
        else:
            terms = [(Fraction(float(x)) * Fraction(float(y)), _exp(x, model.lhs_fmt) + _exp(y, model.rhs_fmt))
                     for x, y in zip(a[start:start + n], b[start:start + n]) if x != 0 and y != 0]
            exps = [e for _, e in terms]
            if model.accumulator_in_alignment and c != 0:
                exps.append(_floor_log2(c))
            if exps:
                q = Fraction(2) ** (max(exps) - w)
                s = sum(_chop(p / q, model.alignment_rounding) for p, _ in terms) * q
                if model.accumulator_in_alignment:
                    c = _round(s + _chop(c / q, model.alignment_rounding) * q, acc.man_bits,
                               model.accumulator_rounding)
                else:
                    s = _round(s, acc.man_bits, model.accumulator_rounding)
                    c = _round(c + s, acc.man_bits, model.accumulator_rounding)
        since += n
        if model.promotion_interval and since == model.promotion_interval:
            total, c, since = _round(total + c, 23, "nearest_even"), Fraction(0), 0
    return _round(total + c, 23, "nearest_even") if model.promotion_interval else c


def reference_dot(a: np.ndarray, b: np.ndarray, model: tc.TensorCoreModel) -> np.ndarray:
    """``a`` (M, K), ``b`` (N, K) -> (M, N) float64, by the definition (split-K included)."""
    k = a.shape[1]
    s, g = model.split_k, model.split_k_granule
    if s == 1:
        parts = [list(range(k))]
    elif model.split_k_interleave:
        parts = [[i for i in range(k) if (i // g) % s == j] for j in range(s)]
    else:
        length = -(-((k + s - 1) // s) // g) * g
        parts = [list(range(j * length, min(k, (j + 1) * length))) for j in range(s)]
    parts = [_block_order(p, model) for p in parts]
    out = np.zeros((a.shape[0], b.shape[0]))
    for m in range(a.shape[0]):
        for col in range(b.shape[0]):
            sums = [_chain([0.0 if i is None else a[m, i] for i in p], [0.0 if i is None else b[col, i] for i in p],
                           model) for p in parts]
            r = model.split_k_partials
            groups = [sums[j::r] for j in range(min(r, len(sums)))]
            if model.split_k_tree:
                acc = [_pairwise_sum(g) for g in groups]
            else:
                acc = []
                for g in groups:
                    v = g[0]
                    for x in g[1:]:
                        v = _round(v + x, 23, "nearest_even")
                    acc.append(v)
            out[m, col] = float(_pairwise_sum(acc))
    return out


def _pairwise_sum(values):
    """Float32 sums of adjacent pairs, level by level (an odd last value goes up as it is)."""
    while len(values) > 1:
        values = [_round(values[i] + values[i + 1], 23, "nearest_even") if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def _block_order(indices, model):
    """The part's element indices in the order the blocks take them (``block_interleave``),
    with None for the zeros that pad the last group."""
    j, n = model.block_interleave, model.block_size
    if j == 1:
        return indices
    g = j * n
    padded = list(indices) + [None] * (-len(indices) % g)
    out = []
    for start in range(0, len(padded), g):
        pairs = [padded[start + 2 * p:start + 2 * p + 2] for p in range(g // 2)]
        for blk in range(j):
            out += [x for p in range(blk, g // 2, j) for x in pairs[p]]
    return out


_DT = {nf.E4M3: ml_dtypes.float8_e4m3fn, nf.E5M2: ml_dtypes.float8_e5m2, nf.BF16: ml_dtypes.bfloat16,
       nf.FP16: np.float16, nf.TF32: None, nf.FP32: np.float32}


def _random_operand(rng, fmt, shape, spread: int) -> np.ndarray:
    """Values of ``fmt`` with magnitudes spread over ``2**-spread .. 2**spread``, a few zeros."""
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread + 1, shape))
    x[rng.random(shape) < 0.1] = 0
    x = np.asarray(nf.quantize(jnp.asarray(x.astype(np.float32)), fmt, saturate=True))
    return x.astype(np.float32)


MODELS = {
    "fp8_fast": tc.H100_FP8_FAST_ACCUM,
    "fp8_promote64": R(tc.H100_FP8, promotion_interval=64),
    "e5m2xe4m3": R(tc.H100_FP8_FAST_ACCUM, lhs_fmt=nf.E5M2),
    "bf16": tc.H100_BF16,
    "fp16_split3": R(tc.H100_FP16, split_k=3, split_k_granule=16, split_k_partials=2),
    "tf32_interleave": R(tc.H100_TF32, split_k=2, split_k_granule=8, split_k_interleave=True),
    "fp32_fma": R(tc.H100_FP32, promotion_interval=8),
    "round_nearest": R(tc.H100_FP8_FAST_ACCUM, alignment_rounding="nearest_even", accumulator_rounding="nearest_even"),
    "late_accumulator": R(tc.H100_BF16, accumulator_in_alignment=False, alignment_bits=20),
    "narrow_window": R(tc.H100_FP8_FAST_ACCUM, block_size=8, alignment_bits=5),
    "bf16_interleave2": R(tc.H100_BF16, block_interleave=2, promotion_interval=32),
    "fp8_interleave4_split": R(tc.H100_FP8_FAST_ACCUM, block_size=8, alignment_bits=5, block_interleave=4, split_k=2,
                               split_k_granule=1),
    "tf32_split_tree": R(tc.H100_TF32, split_k=8, split_k_granule=4, split_k_partials=2, split_k_tree=True),
    "fp32_split_tree": R(tc.H100_FP32, split_k=5, split_k_granule=1, split_k_tree=True),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@given(seed=st.integers(0, 2**32 - 1), spread=st.sampled_from([0, 3, 12]))
def test_kernel_equals_the_exact_reference(name, seed, spread):
    model = MODELS[name]
    rng = np.random.default_rng(seed)
    a = _random_operand(rng, model.lhs_fmt, (3, 96), spread)
    b = _random_operand(rng, model.rhs_fmt, (2, 96), spread)
    got = np.asarray(tc.tensorcore_dot(a, b, model))
    want = reference_dot(a, b, model).astype(np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_reference_reproduces_recorded_probe():
    # The Fraction reference itself against the hardware, on the probe case that pins
    # alignment_bits, the nominal exponent of subnormals and the E8M13 truncation.
    a, b = cases.operands("probe_align/K32")
    hw = cases.array("probe_align/K32/fp8_fast")
    rows = np.arange(0, 1024, 37)
    want = reference_dot(a[rows], b, tc.H100_FP8_FAST_ACCUM).astype(np.float32)
    np.testing.assert_array_equal(want.view(np.uint32), hw[rows].view(np.uint32))


# ---- properties ------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**32 - 1))
def test_exact_when_nothing_is_truncated(seed):
    # Small integers: every product fits the 13-bit window and every sum the accumulator.
    rng = np.random.default_rng(seed)
    a = rng.integers(-15, 16, (4, 64)).astype(np.float32)
    b = rng.integers(-15, 16, (5, 64)).astype(np.float32)
    for model in (tc.H100_FP8_FAST_ACCUM, tc.H100_FP8, tc.H100_BF16, tc.H100_TF32, tc.H100_FP32):
        np.testing.assert_array_equal(np.asarray(tc.tensorcore_dot(a, b, model)), a @ b.T)


def test_truncation_is_toward_zero_on_the_magnitude():
    # 1 + 2**-14 + 2**-14: each small term lies below the 13-bit window of 2**0 and is dropped.
    a = np.array([[1.0, 2.0**-7, 2.0**-7]], np.float32)
    b = np.array([[1.0, 2.0**-7, 2.0**-7]], np.float32)
    assert float(tc.tensorcore_dot(a, b, tc.H100_FP8_FAST_ACCUM)[0, 0]) == 1.0
    assert float(tc.tensorcore_dot(-a, b, tc.H100_FP8_FAST_ACCUM)[0, 0]) == -1.0
    # In BF16's 25-bit window they are kept.
    assert float(tc.tensorcore_dot(a, b, tc.H100_BF16)[0, 0]) == 1.0 + 2.0**-13


def test_jit_equals_eager_and_vmap_equals_batch():
    rng = np.random.default_rng(0)
    a = _random_operand(rng, nf.E4M3, (2, 3, 40), 4)
    b = _random_operand(rng, nf.E4M3, (2, 4, 40), 4)
    model = R(tc.H100_FP8, promotion_interval=32)
    batched = np.asarray(tc.tensorcore_dot(a, b, model))
    jitted = np.asarray(jax.jit(lambda x, y: tc.tensorcore_dot(x, y, model))(a, b))
    mapped = np.asarray(jax.vmap(lambda x, y: tc.tensorcore_dot(x, y, model))(a, b))
    with jax.disable_jit():
        eager = np.asarray(tk.contract(model, jnp.asarray(a[0]), jnp.asarray(b[0]), nf.E4M3, nf.E4M3))
    np.testing.assert_array_equal(batched, jitted)
    np.testing.assert_array_equal(batched, mapped)
    np.testing.assert_array_equal(batched[0], eager)
    for i in range(2):
        np.testing.assert_array_equal(batched[i], np.asarray(tc.tensorcore_dot(a[i], b[i], model)))


def test_each_output_depends_on_its_own_row_and_column_only():
    # As recorded at K = 4096 for M = N from 16 to 2048 (data README).
    a, b = cases.operands("shape_uniform01/M128/K4096")
    full = np.asarray(tc.tensorcore_dot(a, b, tc.H100_FP8_FAST_ACCUM))
    part = np.asarray(tc.tensorcore_dot(a[5:21], b[90:106], tc.H100_FP8_FAST_ACCUM))
    np.testing.assert_array_equal(full[5:21, 90:106], part)
    np.testing.assert_array_equal(part, cases.array("shape_uniform01/M128/K4096/fp8_fast")[5:21, 90:106])


@pytest.mark.parametrize("model", [tc.H100_FP8_FAST_ACCUM, tc.H100_FP8, tc.H100_BF16, tc.H100_TF32, tc.H100_FP32],
                         ids=lambda m: m.name)
def test_zero_padding_of_k_changes_nothing(model):
    rng = np.random.default_rng(1)
    a = _random_operand(rng, model.lhs_fmt, (4, 100), 6)
    b = _random_operand(rng, model.rhs_fmt, (3, 100), 6)
    pad = [(0, 0), (0, 156)]
    np.testing.assert_array_equal(np.asarray(tc.tensorcore_dot(a, b, model)),
                                  np.asarray(tc.tensorcore_dot(np.pad(a, pad), np.pad(b, pad), model)))


@pytest.mark.parametrize("spread", [2, 40])
def test_fast_and_general_paths_agree(spread):
    # spread 40 puts some blocks' products more than 126 / P binades below their rows'
    # and columns' largest: "auto" must then take the general path.
    rng = np.random.default_rng(spread)
    model = tc.H100_BF16
    a = jnp.asarray(_random_operand(rng, nf.BF16, (8, 64), spread))
    b = jnp.asarray(_random_operand(rng, nf.BF16, (6, 64), spread))
    general = tk.contract(model, a, b, nf.BF16, nf.BF16, path="general")
    auto = tk.contract(model, a, b, nf.BF16, nf.BF16)
    np.testing.assert_array_equal(np.asarray(auto), np.asarray(general))
    np.testing.assert_array_equal(np.asarray(general), reference_dot(np.asarray(a), np.asarray(b), model))
    if spread == 2:
        assert bool(tk.fast_path_ok(model, tk.decompose(a, nf.BF16)[:2], tk.decompose(b, nf.BF16)[:2]))
        fast = tk.contract(model, a, b, nf.BF16, nf.BF16, path="fast")
        np.testing.assert_array_equal(np.asarray(fast), np.asarray(general))


def test_fp8_levels_cover_the_formats():
    assert tk.levels(tc.H100_FP8_FAST_ACCUM) == 1 and tk.absolute(tc.H100_FP8_FAST_ACCUM)
    assert tk.levels(R(tc.H100_FP8, lhs_fmt=nf.E5M2, rhs_fmt=nf.E5M2)) == 3
    assert tk.levels(tc.H100_FP16) == 3
    assert tk.levels(tc.H100_BF16) is None


@pytest.mark.parametrize(("fmt", "big", "tiny"), [(nf.E4M3, 448.0, 2.0**-9), (nf.E5M2, 57344.0, 2.0**-16)])
def test_extreme_fp8_exponents_take_the_right_level(fmt, big, tiny):
    # The only product lies far below its row's and column's largest exponents (a deeper
    # power level), next to one just inside the window below it.
    a = np.array([[big, 0.0, tiny, tiny]], np.float32)
    b = np.array([[0.0, big, tiny, 3 * tiny]], np.float32)
    model = R(tc.H100_FP8_FAST_ACCUM, lhs_fmt=fmt, rhs_fmt=fmt)
    np.testing.assert_array_equal(np.asarray(tc.tensorcore_dot(a, b, model)), reference_dot(a, b, model))
    np.testing.assert_array_equal(np.asarray(tc.tensorcore_dot(a, b, model)), [[4 * tiny * tiny]])


def test_inf_and_nan_operands_propagate():
    a = np.array([[1.0, np.inf], [1.0, 2.0]], np.float32)
    b = np.array([[1.0, 1.0], [1.0, 0.0]], np.float32)
    out = np.asarray(tc.tensorcore_dot(a, b, R(tc.H100_FP8, lhs_fmt=nf.E5M2, rhs_fmt=nf.E5M2)))
    assert out[0, 0] == np.inf and np.isnan(out[0, 1]) and out[1, 0] == 3.0 and out[1, 1] == 1.0


def _fp32(sign, e, m):
    return np.float32((-1) ** sign * (1 + m / 2.0**23) * 2.0**e)


# Normal float32 values from 2**-30 up to the largest: products, their 12-bit partial
# products and any cancellation stay normal (the kernel does not model float32's
# subnormal range, which XLA's CPU backend flushes), and the top of the range, where a
# product or a sum overflows, is drawn often.
_TOP = st.builds(_fp32, st.integers(0, 1), st.integers(100, 127), st.integers(0, 2**23 - 1))
_ANY = st.builds(_fp32, st.integers(0, 1), st.integers(-30, 127), st.integers(0, 2**23 - 1))
_FMA_OPERAND = st.one_of(_TOP, _ANY, st.sampled_from([np.float32(0), np.float32(-0.0), np.float32(np.inf),
                                                      np.float32(-np.inf), np.float32(np.nan)]))


@given(_FMA_OPERAND, _FMA_OPERAND, _FMA_OPERAND)
def test_fma_is_ieee_fma_up_to_the_overflow(x, y, c):
    # numfmt.ops.fma rounds x * y + c once into FP32 (a float64 proxy rounded to odd;
    # checked against Berkeley SoftFloat for FP16 in test_ops), overflow to +-inf included. Before the scaling near the top of the range,
    # the kernel's FMA gave NaN for every product past 2**128, even where the sum is finite.
    got = np.asarray(jax.jit(tk.fma)(*(jnp.asarray([v], jnp.float32) for v in (x, y, c))))
    want = nf.ops.fma(np.array([x]), np.array([y]), np.array([c]), nf.FP32).astype(np.float32)  # FP32 values
    assert same_bits(got, want), (x, y, c, got, want)
    if np.isfinite([x, y, c]).all():  # and the exact sum, rounded by numfmt.testing's reference
        exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(c))
        negative_zero = exact == 0 and np.signbit(x) != np.signbit(y) and (x == 0 or y == 0) and np.signbit(c)
        code = 0x80000000 if negative_zero else reference_round(exact, nf.FP32)
        assert int(got.view(np.uint32)[0]) == code, (x, y, c, got)


@pytest.mark.parametrize("x, y, c", [
    (3e38, 2.0, -3e38),  # the product alone overflows; the sum does not
    (3e38, 2.0, 0.0), (-3e38, 2.0, 0.0), (3e38, 1.0, 1e38),  # the sum overflows: -+inf, not NaN
    (2.0**127 * (2 - 2.0**-23), 1.0, 2.0**103),  # the largest float plus half its ulp: a tie, to even (inf)
    (2.0**127 * (2 - 2.0**-23), 1.0, 2.0**103 - 2.0**80),  # just below the overflow threshold
    # (1 + 2**-12)**2 * 2**126 lies on a midpoint; a tiny c (far below the scaled range)
    # decides the direction, and c = 0 leaves it to even (down):
    (2.0**100 * (1 + 2.0**-12), 2.0**26 * (1 + 2.0**-12), 2.0**-50),
    (2.0**100 * (1 + 2.0**-12), 2.0**26 * (1 + 2.0**-12), -(2.0**-50)),
    (2.0**100 * (1 + 2.0**-12), 2.0**26 * (1 + 2.0**-12), 0.0),
    (2.0**-20, 2.0**-20 * 3, 3e38), (-(2.0**-20), 2.0**-20, 2.0**127),  # a negligible product beside a huge c
    (0.0, 5.0, 3e38), (3e38, 2.0, np.inf), (3e38, 2.0, -np.inf), (np.inf, 0.0, 1.0), (np.inf, 2.0, -np.inf),
])
def test_fma_at_the_top_of_the_range(x, y, c):
    x, y, c = (np.float32(v) for v in (x, y, c))
    got = np.asarray(tk.fma(*(jnp.asarray([v], jnp.float32) for v in (x, y, c))))
    want = nf.ops.fma(np.array([x]), np.array([y]), np.array([c]), nf.FP32).astype(np.float32)
    assert same_bits(got, want), (x, y, c, got)


def test_fp32_model_and_block_scales_overflow_to_inf():
    # H100_FP32 chains exact FMAs: 3e38 * 2 overflows to inf and stays there (IEEE); the
    # DeepSeek-V3 promotion multiplies a partial sum by two block scales in one FMA.
    a = np.array([[3e38, 1.0], [3e38, -3e38]], np.float32)
    b = np.array([[2.0, 0.0], [2.0, 2.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(tc.tensorcore_dot(a, b, tc.H100_FP32)), np.full((2, 2), np.inf))
    x = np.ones((2, 128), np.float32)
    x[0, :2] = 3e38  # row 0's block scale is 3e38 / 448: its ones quantize to 0
    x[1, 0] = 448.0  # row 1's and w's block scales are 1
    w = np.ones((128, 2), np.float32)
    w[0, 1], w[5, 0] = -1.0, 448.0
    y = np.asarray(nf.qmatmul(x, w, nf.matmul_profile("deepseek_v3_fp8")))
    # 3e38 + 3e38 overflows, -3e38 + 3e38 is 0; 448 + 448 + 126 and -448 + 127.
    np.testing.assert_array_equal(y, [[np.inf, 0.0], [1022.0, -321.0]])


def test_fp32_chain_takes_the_full_fma_only_near_the_top(monkeypatch):
    # H100_FP32 runs the FMA without its top-of-range handling (1.7x cheaper) when
    # |a| |b| K < 2**125 bounds every product and running sum; the bound is exact at
    # its edge, and the full FMA gives the same bits wherever the cheaper one is used.
    k = 16
    def bound(ea, eb):
        a, b = np.full((2, k), 2.0**ea, np.float32), np.full((3, k), -(2.0**eb), np.float32)
        return bool(tk._sums_stay_normal(jnp.asarray(a), jnp.asarray(b), k))
    assert bound(59, 59) and bound(127, -10) and not bound(60, 59) and not bound(127, 0)
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((8, 64)) * 2.0 ** rng.integers(-30, 30, (8, 1))).astype(np.float32)
    b = (rng.standard_normal((6, 64)) * 2.0 ** rng.integers(-30, 30, (6, 1))).astype(np.float32)
    cheap = np.asarray(tc.tensorcore_dot(a, b, tc.H100_FP32))
    monkeypatch.setattr(tk, "_sums_stay_normal", lambda *args: jnp.asarray(False))
    jax.clear_caches()
    full = np.asarray(tc.tensorcore_dot(a, b, tc.H100_FP32))
    jax.clear_caches()
    np.testing.assert_array_equal(cheap.view(np.uint32), full.view(np.uint32))


def test_exact_zero_sum_is_positive_zero():
    a = np.array([[1.0, -1.0]], np.float32)
    b = np.array([[1.0, 1.0]], np.float32)
    for model in (tc.H100_FP8_FAST_ACCUM, tc.H100_BF16, tc.H100_FP32):
        assert not np.signbit(np.asarray(tc.tensorcore_dot(a, b, model))[0, 0])


# ---- epilogue ---------------------------------------------------------------------------------------


def test_epilogue_rounds_twice_for_bfloat16_output():
    # acc * alpha = 1 + 2**-8 + d with 0 < d < 2**-24: float32 rounds it onto the
    # bfloat16 tie 1 + 2**-8, which goes to even (1.0); rounded once, it would go up.
    acc = np.array([[1.0 + 2.0**-8 + 2.0**-23]], np.float32)
    alpha = np.float32(1 - 2.0**-24)
    exact = Fraction(float(acc[0, 0])) * Fraction(float(alpha))
    assert Fraction(1) + Fraction(1, 2**8) < exact < Fraction(1) + Fraction(1, 2**8) + Fraction(1, 2**24)
    out = float(tc.tensorcore_epilogue(acc, scale_a=alpha, out_fmt=nf.BF16)[0, 0])
    assert out == 1.0  # (one rounding: 1 + 2**-7)


def test_epilogue_scales_per_row_and_column():
    acc = np.arange(6, dtype=np.float32).reshape(2, 3)
    sa, sb = np.array([2.0, 3.0], np.float32), np.array([1.0, 0.5, 0.25], np.float32)
    want = acc * (sa[:, None] * sb[None, :])
    for a_shape, b_shape in (((2,), (3,)), ((2, 1), (1, 3))):
        got = tc.tensorcore_epilogue(acc, scale_a=sa.reshape(a_shape), scale_b=sb.reshape(b_shape))
        np.testing.assert_array_equal(np.asarray(got), want)



def test_epilogue_keeps_subnormal_products_on_every_backend():
    """fl32(acc * fl32(sa * sb)) with gradual underflow: XLA's CPU float multiply would
    flush these products (or the subnormal operand) to zero, a GPU would not."""
    acc = np.array([[1.5e-30, 3.0, 2.0**-100], [2.0**-100, -7.0, 2.0**-140]], np.float32)
    sa = np.array([2.0**-20, 4.0], np.float32)
    sb = np.array([0.7 * 2.0**-15, 3.0, 2.0**-10], np.float32)
    want = acc * (sa[:, None] * sb[None, :])  # NumPy: IEEE products, no flush
    assert np.count_nonzero((want != 0) & (np.abs(want) < np.finfo(np.float32).tiny)) >= 3
    for fn in (tc.tensorcore_epilogue, jax.jit(tc.tensorcore_epilogue)):
        got = fn(acc, scale_a=sa, scale_b=sb)
        np.testing.assert_array_equal(np.asarray(got).view(np.uint32), want.view(np.uint32))

# ---- bad input ---------------------------------------------------------------------------------------


def test_bad_arguments_are_named():
    a = np.zeros((2, 32), np.float32)
    with pytest.raises(TypeError, match="a must be a float32"):
        tc.tensorcore_dot(a.astype(np.float16), a, tc.H100_FP8)
    with pytest.raises(ValueError, match="same batch shape and K"):
        tc.tensorcore_dot(a, np.zeros((2, 16), np.float32), tc.H100_FP8)
    with pytest.raises(TypeError, match="model must be a TensorCoreModel"):
        tc.tensorcore_dot(a, a, "h100_fp8")
    with pytest.raises(ValueError, match="promotion_interval must be a multiple of block_size"):
        tc.TensorCoreModel(promotion_interval=48)
    with pytest.raises(ValueError, match="lhs_fmt"):
        tc.TensorCoreModel(lhs_fmt=nf.FP32)
    with pytest.raises(ValueError, match="alignment_rounding"):
        tc.TensorCoreModel(alignment_rounding="up")
    with pytest.raises(ValueError, match="alignment_bits=None"):
        tc.TensorCoreModel(alignment_bits=None)
    with pytest.raises(ValueError, match="block_interleave=2 deals pairs"):
        tc.TensorCoreModel(block_size=1, alignment_bits=None, accumulator_fmt=nf.FP32,
                           accumulator_rounding="nearest_even", block_interleave=2)
    with pytest.raises((TypeError, ValueError), match="block_interleave"):
        tc.TensorCoreModel(block_interleave=0)
    with pytest.raises((TypeError, ValueError), match="split_k_tree"):
        tc.TensorCoreModel(split_k_tree="yes")
    with pytest.raises(ValueError, match="scale_a"):
        tc.tensorcore_epilogue(np.zeros((2, 3), np.float32), scale_a=np.ones(3, np.float32))


def test_models_are_hashable_and_named():
    assert len({tc.H100_FP8, tc.H100_FP8_FAST_ACCUM, tc.H100_BF16, tc.H100_FP16, tc.H100_TF32, tc.H100_FP32}) == 6
    assert set(tc.MODELS) == {"h100_fp8_fast_accum", "h100_fp8", "h100_bf16", "h100_fp16", "h100_tf32", "h100_fp32"}


@pytest.mark.slow  # a GPU setting forced on the CPU (CI runs it: marker "slow")
def test_the_gpu_layout_of_the_products_gives_the_same_bits(monkeypatch):
    """Off the CPU a block's products are laid out (M, N, n) and summed over their minor
    axis (tensorcore_kernel.reduce_minor). Forced here, every model must still equal the
    exact reference on the fast and the general path, and recorded H100 operands must
    give the bits of the CPU layout."""
    assert tk.reduce_minor("cpu") is False and tk.reduce_minor("gpu") is True and tk.reduce_minor("cuda") is True
    plain = [c for c in FITTED if c.out_fmt == nf.FP32 and c.scales is None]
    recorded = [(c, *(v[:16] for v in cases.operands(c.case))) for c in plain[:: max(1, len(plain) // 6)]]

    def run_recorded():
        return [np.asarray(tc.tensorcore_dot(a, b, c.model)) for c, a, b in recorded]

    before = run_recorded()
    monkeypatch.setattr(tk, "reduce_minor", lambda backend=None: True)
    jax.clear_caches()  # traced again with the forced layout
    for (c, _, _), x, y in zip(recorded, before, run_recorded()):
        np.testing.assert_array_equal(x.view(np.uint32), y.view(np.uint32), err_msg=c.id)
    rng = np.random.default_rng(7)
    for name, model in sorted(MODELS.items()):
        for spread in (0, 12, 40):
            a = _random_operand(rng, model.lhs_fmt, (3, 96), spread)
            b = _random_operand(rng, model.rhs_fmt, (4, 96), spread)
            want = reference_dot(a, b, model).astype(np.float32).view(np.uint32)
            got = np.asarray(tc.tensorcore_dot(a, b, model))
            np.testing.assert_array_equal(got.view(np.uint32), want, err_msg=f"{name}, spread {spread}")
            if model.alignment_bits is not None and model.split_k == 1:
                general = tk.contract(model, jnp.asarray(a), jnp.asarray(b), model.lhs_fmt, model.rhs_fmt,
                                      path="general")
                np.testing.assert_array_equal(np.asarray(general).view(np.uint32), want, err_msg=f"{name} general")
    jax.clear_caches()
