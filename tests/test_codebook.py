"""Tests of numfmt.codebook: k-means codebooks, QAT update, pruning, Huffman accounting; NF4."""

import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numfmt.formats as F
from numfmt.codebook import (
    CodebookArray,
    centroid_grads,
    huffman_code_lengths,
    kmeans_qat_update,
    kmeans_quantize,
    magnitude_prune,
    storage_report,
)
from numfmt.scaled import quantize_scaled

CENTERS = np.array([-3.0, -1.0, 2.0, 5.0])


@pytest.fixture(scope="module")
def clustered():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.05, 500) for c in CENTERS]).astype(np.float32)
    return jnp.asarray(rng.permutation(x))


@pytest.mark.parametrize("init", ["linear", "quantile"])
def test_recovers_obvious_clusters(clustered, init):
    q = kmeans_quantize(clustered, 2, init=init)
    np.testing.assert_allclose(q.codebook, CENTERS, atol=0.02)
    x = np.asarray(clustered)
    expected = np.argmin(np.abs(x[:, None] - CENTERS[None, :]), axis=1)
    np.testing.assert_array_equal(q.labels, expected)
    assert q.labels.dtype == jnp.uint8 and q.labels.shape == x.shape


def test_kmeans_beats_linear_int4_on_gaussian():
    x = jnp.asarray(np.random.default_rng(1).standard_normal((256, 256)), jnp.float32)
    km = kmeans_quantize(x, 4)
    lin = quantize_scaled(x, "int4")
    mse_km = float(jnp.mean((km.dequantize() - x) ** 2))
    mse_lin = float(jnp.mean((lin.dequantize() - x) ** 2))
    assert mse_km < 0.5 * mse_lin
    # Lloyd's iterations never increase the error.
    errs = [float(jnp.mean((kmeans_quantize(x, 4, iters=n).dequantize() - x) ** 2)) for n in (0, 2, 10)]
    assert errs[0] >= errs[1] >= errs[2] >= mse_km


def test_nf4_matches_qlora_construction():
    # QLoRA (Dettmers et al. 2023) §3: quantiles of N(0, 1) at 8 evenly spaced
    # probabilities from 0.9677 down to 1/2 (positive side, 8 values) and 7 (negative
    # side), plus an exact zero, normalized to [-1, 1].
    ppf = statistics.NormalDist().inv_cdf
    offset = 0.9677083
    pos = [ppf(p) for p in np.linspace(offset, 0.5, 9)[:-1]]
    neg = [-ppf(p) for p in np.linspace(offset, 0.5, 8)[:-1]]
    values = np.sort(np.array(pos + [0.0] + neg))
    values = values / values.max()
    assert F.NF4.bits == 4 and len(F.NF4.table) == 16
    np.testing.assert_allclose(F.NF4.values(), values, rtol=0, atol=5e-7)
    assert F.NF4.table[7] == 0.0 and F.NF4.table[0] == -1.0 and F.NF4.table[15] == 1.0


def test_kmeans_under_jit_and_nbytes():
    # Bit-equal by construction: every centroid sum is an exact integer sum (see
    # numfmt/codebook.py), so XLA's order of reduction, which differs between this jit
    # and the eager call's own jit on a GPU, changes no bit.
    x = jnp.asarray(np.random.default_rng(2).standard_normal((64, 64)), jnp.float32)
    q = jax.jit(kmeans_quantize, static_argnums=1)(x, 3)
    assert isinstance(q, CodebookArray)
    np.testing.assert_array_equal(q.dequantize(), kmeans_quantize(x, 3).dequantize())
    assert q.nbytes == 64 * 64 * 3 // 8 + 8 * 4
    assert np.all(np.diff(np.asarray(q.codebook)) > 0)


def _kmeans_oracle(x, bits, init, iters, keep=None):
    """The codebook kmeans_quantize promises, in NumPy with exact int64 sums (no mask: all kept)."""

    def flush(v):  # magnitudes below 2**-126 (subnormals) count as +0
        return np.where(np.abs(v) < np.float32(2.0**-126), np.float32(0), v).astype(np.float32)

    x = flush(np.asarray(x, np.float32).reshape(-1))
    xs = np.sort(x if keep is None else x[np.asarray(keep).reshape(-1)])
    k, m = (1 << bits) - (keep is not None), len(xs)
    e = int(np.frexp(max(abs(xs[0]), abs(xs[-1])))[1])
    step = 2.0 ** (e - 23)  # the grid: max|x| < 2**e, 24 significant bits
    q = np.round(xs.astype(np.float64) / step).astype(np.int64)  # exact scaling, ties to even
    i = np.arange(k)
    if init == "linear":
        c = flush((q[0] + (q[-1] - q[0]) * i // (k - 1)) * step)
    else:
        c = xs[(2 * i + 1) * (m - 1) // (2 * k)]
    prefix = np.concatenate([[0], np.cumsum(q)])
    for _ in range(iters):
        mids = flush((c[1:] + c[:-1]) / np.float32(2))
        b = np.concatenate([[0], np.searchsorted(xs, mids, side="right"), [m]])
        cnt = np.maximum(np.diff(b), 1)
        quot, rem = np.divmod(prefix[b[1:]] - prefix[b[:-1]], cnt)
        mean = quot.astype(np.float32) + rem.astype(np.float32) / cnt.astype(np.float32)
        c = np.sort(np.where(np.diff(b) > 0, flush(mean.astype(np.float64) * step), c))
    return c if keep is None else np.concatenate([[np.float32(0)], c])


@pytest.mark.parametrize(("n", "init"), [(1000, "linear"), (1000, "quantile"), (300_001, "linear")])
def test_kmeans_matches_exact_integer_oracle(n, init):
    # Values over six decades and both signs; 300_001 values make the int32 digits
    # 11 bits wide (three digits per value), 1000 values 20 bits (two).
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)).astype(np.float32)
    got = kmeans_quantize(jnp.asarray(x), 3, init=init, iters=4).codebook
    np.testing.assert_array_equal(got, _kmeans_oracle(x, 3, init, 4))
    keep = np.abs(x) > np.median(np.abs(x))
    got = kmeans_quantize(jnp.asarray(x), 4, init=init, iters=3, mask=jnp.asarray(keep)).codebook
    np.testing.assert_array_equal(got, _kmeans_oracle(x, 4, init, 3, keep))


@settings(deadline=None, max_examples=40)
@given(
    st.sampled_from([1, 2, 5, 64, 200]).flatmap(
        lambda n: st.lists(st.floats(-(2.0**100), 2.0**100, width=32), min_size=n, max_size=n)
    ),
    st.booleans(), st.sampled_from([1, 3]), st.sampled_from(["linear", "quantile"]), st.sampled_from([0, 3]),
)  # fmt: skip
def test_kmeans_oracle_and_order_independence_property(values, tiny, bits, init, iters):
    # Subnormal, tiny and huge magnitudes (|x| <= 2**100, so that no midpoint overflows),
    # and data made only of tiny values (scaled by 2**-120);
    # few distinct shapes and settings, so that few compilations are needed.
    x = (np.asarray(values, np.float64) * (2.0**-120 if tiny else 1.0)).astype(np.float32)
    q = kmeans_quantize(jnp.asarray(x), bits, init=init, iters=iters)
    np.testing.assert_array_equal(q.codebook, _kmeans_oracle(x, bits, init, iters))
    r = kmeans_quantize(jnp.asarray(x[::-1].copy()), bits, init=init, iters=iters)
    np.testing.assert_array_equal(r.codebook, q.codebook)
    np.testing.assert_array_equal(r.labels, np.asarray(q.labels)[::-1])


@pytest.mark.parametrize("init", ["linear", "quantile"])
def test_kmeans_codebook_ignores_the_order_of_the_values(init):
    # A float32 sum would depend on the order of its terms: a permutation changed the
    # last bits of the codebook before the sums were made exact.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((256, 256)).astype(np.float32)
    perm = rng.permutation(x.size)
    mask = magnitude_prune(jnp.asarray(x), 0.5)
    for kw in ({}, {"mask": mask}):
        a = kmeans_quantize(jnp.asarray(x), 4, init=init, **kw)
        pm = {"mask": jnp.asarray(np.asarray(mask).reshape(-1)[perm])} if kw else {}
        b = kmeans_quantize(jnp.asarray(x.reshape(-1)[perm]), 4, init=init, **pm)
        np.testing.assert_array_equal(a.codebook, b.codebook)
        np.testing.assert_array_equal(np.asarray(a.labels).reshape(-1)[perm], b.labels)


def test_kmeans_cluster_mean_is_exact():
    # Two clusters around -1 and +1 whose offsets j * 2**-21 cancel exactly: their
    # means are exactly -1 and +1. A float32 running sum of 2**16 values near 1 has a
    # step of 2**-7 and loses the offsets' bits.
    j = np.arange(1, 1 << 15, dtype=np.float64) * 2.0**-21
    half = np.concatenate([1 + j, 1 - j, [1.0, 1.0]])
    x = np.random.default_rng(8).permutation(np.concatenate([half, -half])).astype(np.float32)
    q = kmeans_quantize(jnp.asarray(x), 1, iters=3)
    np.testing.assert_array_equal(q.codebook, np.array([-1.0, 1.0], np.float32))


def test_kmeans_subnormals_and_signed_zeros_count_as_zero():
    # XLA on CPU reads subnormal operands as zero and a GPU does not: k-means flushes
    # them (and -0.0) to +0.0 itself, so that both give the same bits.
    sub = np.float32(2.0**-140)
    q = kmeans_quantize(jnp.asarray([sub, -sub, -0.0, 0.0], jnp.float32), 1)
    assert np.asarray(q.codebook).view(np.uint32).tolist() == [0, 0]
    x = np.array([-1.0, -sub, 0.0, -0.0, sub, 1.0], np.float32)
    q = kmeans_quantize(jnp.asarray(x), 2, init="quantile", iters=2)
    np.testing.assert_array_equal(q.codebook, _kmeans_oracle(x, 2, "quantile", 2))
    assert not np.any(np.signbit(np.asarray(q.codebook)[np.asarray(q.codebook) == 0]))
    np.testing.assert_array_equal(np.asarray(q.labels)[1:5], np.asarray(q.labels)[2])


def test_kmeans_refuses_more_values_than_exact_sums_allow():
    too_many = jax.ShapeDtypeStruct(((1 << 29) + 1,), jnp.float32)
    with pytest.raises(ValueError, match=r"at most 2\*\*29"):
        jax.eval_shape(lambda x: kmeans_quantize(x, 2), too_many)


def test_qat_gradient_is_summed_per_cluster():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal(1000), jnp.float32)
    target = jnp.asarray(rng.standard_normal(1000), jnp.float32)
    q = kmeans_quantize(x, 3)

    def loss(codebook):
        w = codebook[q.labels.astype(jnp.int32)]
        return jnp.sum((w - target) ** 2) / 2

    g_auto = jax.grad(loss)(q.codebook)
    g_weights = q.dequantize() - target  # dL/dw
    np.testing.assert_allclose(centroid_grads(g_weights, q.labels, 8), g_auto, rtol=1e-5, atol=1e-5)
    q2 = kmeans_qat_update(q, g_weights, lr=1e-3)
    assert float(loss(q2.codebook)) < float(loss(q.codebook))
    np.testing.assert_array_equal(q2.labels, q.labels)


def test_pruning_and_compression_ratio():
    x = jnp.asarray(np.random.default_rng(4).standard_normal((128, 128)), jnp.float32)
    mask = magnitude_prune(x, 0.9)
    assert abs(float(jnp.mean(mask)) - 0.1) < 0.01
    q = kmeans_quantize(x, 4, mask=mask)
    assert q.pruned and float(q.codebook[0]) == 0.0
    d = np.asarray(q.dequantize())
    assert np.all(d[~np.asarray(mask)] == 0) and np.all(d[np.asarray(mask)] != 0)
    q2 = kmeans_qat_update(q, jnp.ones_like(x), lr=0.1)
    assert float(q2.codebook[0]) == 0.0  # pruned weights stay pruned
    r = storage_report(q)
    assert r.n == 128 * 128 and r.kept == int(jnp.sum(mask))
    assert r.bits_fixed == pytest.approx(4 + 16 * 32 / r.n)
    assert r.entropy_bits <= r.bits_huffman - 16 * 32 / r.n <= r.entropy_bits + 1
    assert r.ratio_huffman > 32 / 4 * 1.5  # pruning pays off through the Huffman code
    dense = storage_report(kmeans_quantize(x, 4))
    assert dense.ratio_fixed == pytest.approx(32 / dense.bits_fixed)
    assert r.ratio_huffman > dense.ratio_huffman


def test_huffman_known_answer_and_single_symbol():
    np.testing.assert_array_equal(huffman_code_lengths([1, 1, 2, 4]), [3, 3, 2, 1])
    np.testing.assert_array_equal(huffman_code_lengths([0, 5, 0]), [0, 1, 0])
    np.testing.assert_array_equal(huffman_code_lengths([3, 0, 3]), [1, 0, 1])
    with pytest.raises(ValueError, match="non-negative"):
        huffman_code_lengths([1, -1])


@settings(deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=2, max_size=40).filter(lambda c: sum(1 for v in c if v) >= 2))
def test_huffman_is_a_prefix_code_within_one_bit_of_entropy(counts):
    counts = np.asarray(counts)
    lengths = huffman_code_lengths(counts)
    used = counts > 0
    assert np.all(lengths[~used] == 0)
    assert sum(2.0 ** -lengths[used]) == pytest.approx(1.0)  # Kraft equality: a full tree
    p = counts[used] / counts.sum()
    entropy = -np.sum(p * np.log2(p))
    avg = np.sum(p * lengths[used])
    assert entropy - 1e-9 <= avg < entropy + 1


def test_bad_input():
    x = jnp.ones(16, jnp.float32)
    for bits in (0, 9, 16):
        with pytest.raises(ValueError, match=r"bits must be in \[1, 8\]"):
            kmeans_quantize(x, bits)
    with pytest.raises(TypeError, match="bits must be an int"):
        kmeans_quantize(x, 2.0)
    with pytest.raises(ValueError, match="init must be one of"):
        kmeans_quantize(x, 2, init="random")
    with pytest.raises(ValueError, match="iters must be an int"):
        kmeans_quantize(x, 2, iters=-1)
    with pytest.raises(ValueError, match="mask must have the shape"):
        kmeans_quantize(x, 2, mask=jnp.ones(8, bool))
    with pytest.raises(ValueError, match="needs bits >= 2"):
        kmeans_quantize(x, 1, mask=jnp.ones(16, bool))
    with pytest.raises(TypeError, match="floating-point"):
        kmeans_quantize(jnp.ones(16, jnp.int32), 2)
    with pytest.raises(ValueError, match="sparsity must be in"):
        magnitude_prune(x, 1.0)
    assert magnitude_prune(jnp.zeros((0, 4)), 0.5).shape == (0, 4)  # no weights: an empty mask, not an error


def test_constant_input_is_exact():
    q = kmeans_quantize(jnp.full((10,), 2.5, jnp.float32), 2)
    np.testing.assert_array_equal(q.dequantize(), jnp.full((10,), 2.5))


def test_qat_update_and_centroid_grads_name_bad_arguments():
    x = jnp.asarray(np.random.default_rng(3).standard_normal((8, 8)), jnp.float32)
    q = kmeans_quantize(x, 2)
    with pytest.raises(ValueError, match="grads must have q's shape"):
        kmeans_qat_update(q, jnp.ones((4, 4)), lr=0.1)
    with pytest.raises(TypeError, match="q must be a CodebookArray"):
        kmeans_qat_update(x, jnp.ones((8, 8)), lr=0.1)
    with pytest.raises(ValueError, match="one entry per label"):
        centroid_grads(jnp.ones(63), q.labels, 4)
    for k in (0, 2.5, True):
        with pytest.raises(ValueError, match="k must be a positive int"):
            centroid_grads(jnp.ones(64), q.labels, k)
