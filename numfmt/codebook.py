"""K-means codebook quantization and the Deep Compression storage pipeline.

Weight sharing as in Han, Mao & Dally, "Deep Compression: Compressing deep neural
networks with pruning, trained quantization and Huffman coding" (ICLR 2016):

* :func:`kmeans_quantize` clusters the values of a tensor into ``2**bits`` shared
  values (a codebook) with Lloyd's algorithm, run in JAX under ``jit`` from a
  deterministic initialisation: ``"linear"`` (evenly spaced between min and max, the
  paper's best choice) or ``"quantile"`` (the ``(i + 1/2) / k`` quantiles, "density"
  initialisation). In 1-D the clusters are intervals, so a value's label is found by
  binary search among the midpoints of the sorted centroids.
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
from numfmt.bitlayout import check_float_input

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


def _assign(x, centroids):
    """Index of the nearest centroid (sorted centroids; a tie goes to the lower one)."""
    mids = (centroids[1:] + centroids[:-1]) / 2
    return jnp.searchsorted(mids, x, side="left").astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("k", "init", "iters"))
def _lloyd(x, weight, *, k, init, iters):
    """Lloyd's iterations on flat ``x``, counting only values with ``weight`` 1."""
    big = jnp.finfo(x.dtype).max
    lo = jnp.min(jnp.where(weight > 0, x, big))
    hi = jnp.max(jnp.where(weight > 0, x, -big))
    if init == "linear":
        c = lo + (hi - lo) * jnp.arange(k, dtype=x.dtype) / max(k - 1, 1)
    else:
        kept = jnp.where(weight > 0, x, jnp.nan)
        c = jnp.nanquantile(kept, (jnp.arange(k, dtype=x.dtype) + 0.5) / k)

    def step(_, c):
        labels = _assign(x, c)
        sums = jax.ops.segment_sum(x * weight, labels, num_segments=k)
        counts = jax.ops.segment_sum(weight, labels, num_segments=k)
        # An empty cluster keeps its centroid (it lies in its own empty interval, so
        # the order of the centroids is kept); sorting guards the search anyway.
        return jnp.sort(jnp.where(counts > 0, sums / jnp.maximum(counts, 1), c))

    return lax.fori_loop(0, iters, step, c)


def kmeans_quantize(x, bits: int, *, init: str = "linear", iters: int = 30, mask=None) -> CodebookArray:
    """Cluster ``x`` into ``2**bits`` shared values with Lloyd's algorithm (Deep Compression §3).

    Args:
      x: a float array (non-finite values are not supported).
      bits: label width, 1 to 8.
      init: ``"linear"`` or ``"quantile"`` (deterministic; module doc).
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
    flat = x.reshape(-1).astype(jnp.float32)
    k = 1 << bits
    if mask is None:
        codebook = _lloyd(flat, jnp.ones_like(flat), k=k, init=init, iters=iters)
        labels = _assign(flat, codebook)
        pruned = False
    else:
        mask = jnp.asarray(mask)
        if mask.shape != x.shape:
            raise ValueError(f"mask must have the shape of x {x.shape}, got {mask.shape}")
        if bits < 2:
            raise ValueError("a mask reserves label 0 for pruned weights, so it needs bits >= 2")
        keep = mask.reshape(-1).astype(bool)
        c = _lloyd(flat, keep.astype(jnp.float32), k=k - 1, init=init, iters=iters)
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
    if sparsity == 0:
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
