"""K-means codebook quantization and the Deep Compression storage pipeline.

Weight sharing as in Han, Mao & Dally, "Deep Compression: Compressing deep neural
networks with pruning, trained quantization and Huffman coding" (ICLR 2016):

* :func:`kmeans_quantize` clusters the values of a tensor into ``2**bits`` shared
  values (a codebook) with Lloyd's algorithm, run in JAX under ``jit`` from a
  deterministic initialisation: ``"linear"`` (evenly spaced between min and max, the
  paper's best choice) or ``"quantile"`` (the ``(i + 1/2) / k`` quantiles, "density"
  initialisation). In 1-D the clusters are intervals, so a value's label is found by
  binary search among the midpoints of the sorted centroids. Each centroid is the mean
  of its cluster's values rounded to a fixed-point grid, summed exactly in integers, so
  the codebook does not depend on the order of any reduction: it has the same bits on
  CPU and GPU, under ``jit`` or not, and for any permutation of the values.
* :func:`centroid_grads` / :func:`kmeans_qat_update`: the fine-tuning step of §3.3,
  where the gradient of each shared value is the sum of the gradients of the weights
  in its cluster (also what ``jax.grad`` of ``codebook[labels]`` gives).
* :func:`magnitude_prune` (§2) and :func:`storage_report`: bits per weight before and
  after, the Huffman-coded size of the labels (§4) and the compression ratio.

Pruning here is stored in the labels: with a ``mask``, label 0 is reserved for the
pruned weights and its centroid stays exactly 0, and the other ``2**bits - 1``
centroids are fitted to the kept weights. Huffman coding of the labels then pays for
the sparsity. (The paper stores the sparse matrix as CSR with relative indices; this
simpler accounting is stated in docs/scaled.md.)
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numfmt import packing as _packing
from numfmt.bitlayout import check_float_input, mul_pow2, quotient_nearest

__all__ = [
    "CodebookArray",
    "StorageReport",
    "centroid_grads",
    "huffman_code_lengths",
    "kmeans_qat_update",
    "kmeans_quantize",
    "magnitude_prune",
    "storage_report",
]

INITS = ("linear", "quantile")


@jax.tree_util.register_pytree_node_class
class CodebookArray:
    """Labels into a codebook of shared values: a JAX pytree.

    Children: ``labels`` (uint8, the original shape) and ``codebook`` (float32,
    ``2**bits`` sorted values). Static: ``bits``, ``shape``, ``dtype`` and ``pruned``
    (whether label 0 is the pruned weights' fixed 0).
    """

    def __init__(self, labels, codebook, *, bits, shape, dtype, pruned=False):
        self.labels = labels
        self.codebook = codebook
        self.bits = int(bits)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.pruned = bool(pruned)

    def tree_flatten(self):
        return (self.labels, self.codebook), (self.bits, self.shape, self.dtype, self.pruned)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.labels, obj.codebook = children
        obj.bits, obj.shape, obj.dtype, obj.pruned = aux
        return obj

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Packed labels plus the float32 codebook."""
        return _packing.packed_nbytes(self.size, self.bits) + 4 * (1 << self.bits)

    @property
    def bits_per_value(self) -> float:
        return 8 * self.nbytes / max(self.size, 1)

    def dequantize(self, dtype=None):
        """``codebook[labels]`` as ``dtype`` (default: the original dtype)."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        return self.codebook[self.labels.astype(jnp.int32)].astype(dtype)

    def __repr__(self):
        return f"CodebookArray(shape={self.shape}, bits={self.bits}, pruned={self.pruned}, dtype={self.dtype.name})"


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an int in [1, 8], got {bits!r}")
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in [1, 8] (2 to 256 centroids), got {bits}")
    return int(bits)


def _flush(v):
    """``v`` with magnitudes below 2**-126 (float32 subnormals, and -0.0) as +0.0.

    XLA on CPU treats subnormal operands as zero (in a compare too) and a GPU does not,
    so k-means never lets one reach an operation: the same bits on both.
    """
    return jnp.where(jnp.abs(v) < np.float32(2.0**-126), np.float32(0), v)


def _mids(centroids):
    return _flush((centroids[1:] + centroids[:-1]) / 2)


def _assign(x, centroids):
    """Index of the nearest centroid (sorted centroids; a tie goes to the lower one)."""
    return jnp.searchsorted(_mids(centroids), x, side="left").astype(jnp.int32)


# Why the centroid means are computed in integers.
#
# A float32 sum's rounding depends on the order of its terms, and XLA orders a
# reduction differently on CPU and GPU, inside a bigger jit or alone, and a GPU's
# scatter-add (segment_sum) even from run to run. K-means fed such sums gave codebooks
# that differed in their last bits between jit and eager on a GPU, and a label that sits
# on a midpoint can then flip. So every sum here is exact: the values are rounded once
# to a fixed-point grid (24 significant bits at the largest magnitude, step
# 2**(e - 23) where max|x| < 2**e, an error of at most half a step, 2**-24 * 2**e, per
# value), and the sums of their integers are computed exactly in int32 digits. Integer
# addition is associative, so no order of the terms changes a bit. The remaining float
# operations are each one IEEE-rounded add, divide, compare or exact power-of-two scale
# that no compiler reassociates or fuses into an FMA, on normal floats only (_flush):
# the codebook has the same bits on every backend, under jit or not, and for any
# permutation of x.
_GRID = 23  # grid integers lie in [-2**23, 2**23]
MAX_VALUES = 1 << 29  # int32 digits stay exact up to this many values (see _digit_bits)


def _digit_bits(n: int) -> int:
    """Digit width b with n * 2**b <= 2**30: a sum of n digits, plus a carry, fits int32."""
    return 30 - max(n - 1, 1).bit_length()


def _exact_means(digit_sums, counts, b: int):
    """Float32 means (in grid steps) of clusters given their exact digit sums.

    ``digit_sums`` (L, k) int32: the sums of base-``2**b`` digits of the offset values
    ``q + 2**23``; ``counts`` (k,) int32. The offset is taken off, the digits are
    normalized with carries, and the sum T is divided by the count in long division:
    ``T = Q * count + r`` exactly, and the mean is ``float(Q) + float(r) / float(count)``,
    within one float32 ulp of T / count (two roundings).
    """
    n_digits = digit_sums.shape[0]
    mask = (1 << b) - 1
    j0, r0 = divmod(_GRID, b)  # where the offset count * 2**23 sits among the digits
    carry = jnp.zeros_like(counts)
    digits = []
    for j in range(n_digits):
        v = digit_sums[j] + carry - (counts << r0 if j == j0 else 0)
        digits.append(v & mask)  # floor mod 2**b, also for negative v (two's complement)
        carry = v >> b  # floor division by 2**b
    cnt = jnp.maximum(counts, 1)
    quot, rem = jnp.floor_divide(carry, cnt), jnp.remainder(carry, cnt)  # the top digit, signed
    for d in reversed(digits):
        v = (rem << b) + d  # < count * 2**b <= 2**30
        quot = (quot << b) + v // cnt
        rem = v % cnt
    # rem / cnt correctly rounded on every backend (XLA on GPU divides within 2 ulps).
    return quot.astype(jnp.float32) + quotient_nearest(rem.astype(jnp.float32), cnt.astype(jnp.float32))


@functools.partial(jax.jit, static_argnames=("k", "init", "iters"))
def _lloyd(x, keep, *, k, init, iters):
    """Lloyd's iterations on flat float32 ``x``, over the values where ``keep`` is True.

    In 1-D a cluster is an interval of the sorted values, so the values are sorted once
    and each cluster's sum is a difference of two prefix sums (int32 digits, which may
    wrap: a difference of wrapped sums is exact when the true sum fits in 31 bits).
    """
    n = x.shape[0]
    b = _digit_bits(n)
    n_digits = -(-(_GRID + 2) // b)  # digits of q + 2**23, a 25-bit integer
    m = jnp.sum(keep, dtype=jnp.int32)
    xs = jnp.sort(jnp.where(keep, x, jnp.inf))  # the kept values first, ascending
    xs_kept = jnp.where(jnp.arange(n) < m, xs, 0)
    last = jnp.maximum(m - 1, 0)
    _, e = jnp.frexp(jnp.maximum(jnp.abs(xs_kept[0]), jnp.abs(xs_kept[last])))  # max|x| < 2**e
    e = e.astype(jnp.int32)
    q = jnp.round(mul_pow2(xs_kept, _GRID - e)).astype(jnp.int32)  # |q| <= 2**23
    u = q + (1 << _GRID)
    digits = jnp.stack([(u >> (j * b)) & ((1 << b) - 1) for j in range(n_digits)])
    prefix = jnp.pad(lax.cumsum(digits, axis=1), ((0, 0), (1, 0)))  # (L, n + 1), wrapping int32

    i = jnp.arange(k, dtype=jnp.int32)
    if init == "linear":
        # Evenly spaced from the smallest to the largest kept value, rounded down to the
        # grid: lo + floor(d * i / (k - 1)) without overflowing int32.
        lo, d = q[0], q[last] - q[0]
        c = lo + (d // (k - 1)) * i + ((d % (k - 1)) * i) // (k - 1)
        c = _flush(mul_pow2(c.astype(jnp.float32), e - _GRID))
    else:
        # The (i + 1/2)/k quantiles: the order statistic at floor((i + 1/2)/k * (m - 1)).
        two_k = 2 * k
        idx = (last // two_k) * (2 * i + 1) + ((last % two_k) * (2 * i + 1)) // two_k
        c = xs_kept[idx]

    def step(_, c):
        pos = jnp.minimum(jnp.searchsorted(xs, _mids(c), side="right").astype(jnp.int32), m)
        bounds = jnp.concatenate([jnp.zeros(1, jnp.int32), pos, m[None]])
        sums = prefix[:, bounds[1:]] - prefix[:, bounds[:-1]]
        counts = bounds[1:] - bounds[:-1]
        means = _flush(mul_pow2(_exact_means(sums, counts, b), e - _GRID))
        # An empty cluster keeps its centroid (it lies in its own empty interval, so
        # the order of the centroids is kept); sorting guards the search anyway.
        return jnp.sort(jnp.where(counts > 0, means, c))

    return lax.fori_loop(0, iters, step, c)


def kmeans_quantize(x, bits: int, *, init: str = "linear", iters: int = 30, mask=None) -> CodebookArray:
    """Cluster ``x`` into ``2**bits`` shared values with Lloyd's algorithm (Deep Compression §3).

    Each centroid is the mean of its cluster's values rounded to the grid of step
    ``2**(e - 23)``, where ``max|x| < 2**e`` (at most half a step from each value),
    summed exactly and divided once: within one float32 ulp of that mean, and the same
    bits on every backend, under ``jit`` or not, for any order of the values.
    Magnitudes below ``2**-126`` (subnormals) count as +0.0 (see :func:`_flush`).

    Args:
      x: a float array of at most ``2**29`` values (non-finite values are not supported).
      bits: label width, 1 to 8.
      init: ``"linear"`` (evenly spaced from the smallest to the largest value, rounded
        down to the grid) or ``"quantile"`` (the order statistic at position
        ``floor((i + 1/2) / k * (m - 1))`` of the ``m`` sorted values).
      iters: Lloyd iterations (a fixed count, so the whole fit is one ``jit``).
      mask: optional boolean array like ``x``: False marks pruned weights, which take
        label 0 with the fixed value 0 (needs ``bits >= 2``).

    Returns:
      a :class:`CodebookArray`.
    """
    bits = _check_bits(bits)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"iters must be an int >= 0, got {iters!r}")
    x = check_float_input(x)
    if x.size == 0:
        raise ValueError("x is empty: there is nothing to cluster")
    if x.size > MAX_VALUES:
        raise ValueError(f"x has {x.size} values; kmeans_quantize takes at most 2**29 (exact int32 sums)")
    flat = _flush(x.reshape(-1).astype(jnp.float32))
    k = 1 << bits
    if mask is None:
        codebook = _lloyd(flat, jnp.ones(flat.shape, bool), k=k, init=init, iters=iters)
        labels = _assign(flat, codebook)
        pruned = False
    else:
        mask = jnp.asarray(mask)
        if mask.shape != x.shape:
            raise ValueError(f"mask must have the shape of x {x.shape}, got {mask.shape}")
        if bits < 2:
            raise ValueError("a mask reserves label 0 for pruned weights, so it needs bits >= 2")
        keep = mask.reshape(-1).astype(bool)
        c = _lloyd(flat, keep, k=k - 1, init=init, iters=iters)
        codebook = jnp.concatenate([jnp.zeros(1, jnp.float32), c])
        labels = jnp.where(keep, _assign(flat, c) + 1, 0)
        pruned = True
    return CodebookArray(labels.astype(jnp.uint8).reshape(x.shape), codebook, bits=bits, shape=x.shape,
                         dtype=x.dtype, pruned=pruned)


def centroid_grads(grads, labels, k: int):
    """Gradient of each shared value: the sum of the gradients of its weights (Deep Compression eq. 3).

    ``labels`` gives each weight's shared value in ``[0, k)`` (a label outside it adds
    to nothing, as in ``jax.ops.segment_sum``); ``grads`` has one entry per label.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int (the number of shared values), got {k!r}")
    grads = jnp.asarray(grads)
    if grads.size != jnp.size(labels):
        raise ValueError(f"grads must have one entry per label: {grads.size} grads for {jnp.size(labels)} labels")
    return jax.ops.segment_sum(grads.reshape(-1).astype(jnp.float32),
                               jnp.asarray(labels).reshape(-1).astype(jnp.int32), num_segments=k)


def kmeans_qat_update(q: CodebookArray, grads, lr: float) -> CodebookArray:
    """One fine-tuning step of the shared values: ``codebook - lr * centroid_grads``.

    ``grads`` are the loss gradients with respect to the dequantized weights. Labels are
    kept; a pruned array's value 0 stays 0.
    """
    if not isinstance(q, CodebookArray):
        raise TypeError(f"q must be a CodebookArray (from kmeans_quantize), got {type(q).__name__}")
    if jnp.shape(grads) != q.shape:
        raise ValueError(f"grads must have q's shape {q.shape}, got {jnp.shape(grads)}")
    g = centroid_grads(grads, q.labels, 1 << q.bits)
    if q.pruned:
        g = g.at[0].set(0)
    return CodebookArray(q.labels, q.codebook - lr * g, bits=q.bits, shape=q.shape, dtype=q.dtype,
                         pruned=q.pruned)


def magnitude_prune(x, sparsity: float):
    """The mask keeping the largest-magnitude ``1 - sparsity`` of ``x`` (Deep Compression §2).

    Returns a boolean array like ``x``: True for kept weights. The threshold is the
    ``sparsity`` quantile of ``|x|``; ties at it are pruned.
    """
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    a = jnp.abs(jnp.asarray(x))
    if sparsity == 0 or a.size == 0:  # (no weights: an empty mask; a quantile of nothing is undefined)
        return jnp.ones(a.shape, bool)
    return a > jnp.quantile(a, sparsity)


def huffman_code_lengths(counts) -> np.ndarray:
    """Huffman code length of every symbol with the given counts (0 for unused symbols).

    Plain Python on the host (Huffman 1952): repeatedly merge the two least frequent
    trees; ties are broken by symbol order, so the result is deterministic. A single
    used symbol gets length 1.
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if np.any(counts < 0):
        raise ValueError("counts must be non-negative")
    lengths = np.zeros(counts.shape[0], dtype=np.int64)
    heap = [(int(c), i, (i,)) for i, c in enumerate(counts) if c > 0]
    if len(heap) == 1:
        lengths[heap[0][1]] = 1
        return lengths
    heapq.heapify(heap)
    order = counts.shape[0]
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, order, s1 + s2))
        order += 1
    return lengths


@dataclasses.dataclass(frozen=True)
class StorageReport:
    """Storage of a codebook-quantized tensor, Deep Compression style (bits per weight)."""

    n: int
    kept: int
    bits_before: float
    bits_fixed: float
    bits_huffman: float
    entropy_bits: float

    @property
    def ratio_fixed(self) -> float:
        return self.bits_before / self.bits_fixed

    @property
    def ratio_huffman(self) -> float:
        """The compression ratio of (prune +) quantize + Huffman."""
        return self.bits_before / self.bits_huffman


def storage_report(q: CodebookArray, *, bits_before: float = 32.0, codebook_bits: int = 32) -> StorageReport:
    """Bits per weight of ``q``: before, with fixed-width labels, with Huffman-coded labels.

    Every "after" figure includes the codebook (``2**bits`` values of ``codebook_bits``)
    spread over the weights; ``entropy_bits`` is the labels' empirical entropy (the bound
    Huffman coding comes within one bit of). Runs on the host.
    """
    if not isinstance(q, CodebookArray):
        raise TypeError(f"q must be a CodebookArray (from kmeans_quantize), got {type(q).__name__}")
    labels = np.asarray(q.labels).reshape(-1).astype(np.int64)
    n = labels.shape[0]
    k = 1 << q.bits
    counts = np.bincount(labels, minlength=k)
    overhead = k * codebook_bits / n
    huffman = float(np.sum(counts * huffman_code_lengths(counts))) / n
    p = counts[counts > 0] / n
    entropy = float(-np.sum(p * np.log2(p)))
    kept = n - int(counts[0]) if q.pruned else n
    return StorageReport(n=n, kept=kept, bits_before=float(bits_before), bits_fixed=q.bits + overhead,
                         bits_huffman=huffman + overhead, entropy_bits=entropy)
