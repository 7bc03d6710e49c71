"""Scaled quantization of a large array equals that of its pieces, bit for bit.

XLA compiles the same operation differently by size: on CPU, reductions of 4096
elements or more go to YNNPACK, whose float max drops NaN (docs/semantics.md,
"Backends"), and fusion and vectorization choices change with the shape. The exact
reference tests (tests/test_scaled_exact.py) use small arrays, so they see only the
small programs. Here a 512 x 256 array with zeros, -0, subnormals, NaN and inf is
quantized whole and in pieces that share no group (row chunks for groups along the
last axis, column chunks of 2048 elements for groups along axis 0): every group's
scale, codes and values must be the same either way.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from numfmt.scaled import quantize_scaled
from tests.bits import bit_view

ROWS, COLS = 512, 256

# (element format, keyword arguments, axis of the groups' pieces: 0 = row chunks, 1 = column chunks)
SCHEMES = {
    "mxfp8": ("e4m3", {"axis": 1, "block_size": 32, "scale_fmt": "e8m0"}, 0),
    "mxfp4": ("e2m1", {"axis": 1, "block_size": 32, "scale_fmt": "e8m0"}, 0),
    "e2m1 e4m3-scaled blocks of 16": ("e2m1", {"axis": 1, "block_size": 16, "scale_fmt": "e4m3"}, 0),
    "int8 per row": ("int8", {"axis": 1}, 0),
    "int8 per block": ("int8", {"axis": 1, "block_size": 64}, 0),
    "int8 per column": ("int8", {"axis": 0}, 1),
    "e4m3 column blocks": ("e4m3", {"axis": 0, "block_size": 32, "scale_fmt": "bf16"}, 1),
    "uint8 affine per row": ("uint8", {"axis": 1, "symmetric": False}, 0),
}


def _data(seed: int, specials: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((ROWS, COLS)) * 2.0 ** rng.integers(-20, 20, (ROWS, 1))
    pick = rng.random((ROWS, COLS))
    x = np.where(pick < 0.02, rng.integers(1, 1 << 23, (ROWS, COLS)).astype(np.uint32).view(np.float32), x)
    x = np.where((pick >= 0.02) & (pick < 0.04), 0.0, x).astype(np.float32)
    x[rng.integers(ROWS, size=8), rng.integers(COLS, size=8)] = -0.0
    x[rng.integers(ROWS), :] = 0.0  # a row of zeros: its groups get the zero scale
    kinds = np.array([np.nan, np.inf, -np.inf], np.float32)
    x[rng.integers(ROWS, size=specials), rng.integers(COLS, size=specials)] = rng.choice(kinds, specials)
    return x


@functools.cache
def _quantizer(fmt, items, rounding, nonfinite):
    kw = dict(items)
    return jax.jit(lambda a: _parts(quantize_scaled(a, fmt, rounding=rounding, nonfinite=nonfinite, **kw)))


def _parts(q):
    return q.codes, q.scale, q.dequantize(), (q.zero_point if q.zero_point is not None else jnp.zeros(()))


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scheme=st.sampled_from(sorted(SCHEMES)),
       rounding=st.sampled_from(["nearest_even", "up", "toward_zero"]),
       nonfinite=st.sampled_from(["propagate", "ignore"]), specials=st.sampled_from([0, 1, 40]))
@example(seed=1, scheme="int8 per column", rounding="nearest_even", nonfinite="propagate", specials=40)
@example(seed=2, scheme="e4m3 column blocks", rounding="up", nonfinite="ignore", specials=40)
@example(seed=3, scheme="mxfp8", rounding="nearest_even", nonfinite="propagate", specials=40)
@example(seed=4, scheme="e2m1 e4m3-scaled blocks of 16", rounding="up", nonfinite="ignore", specials=1)
def test_whole_array_equals_its_pieces(seed, scheme, rounding, nonfinite, specials):
    fmt, kw, piece_axis = SCHEMES[scheme]
    x = _data(seed, specials)
    run = _quantizer(fmt, tuple(sorted(kw.items())), rounding, nonfinite)
    whole = [np.asarray(v) for v in run(jnp.asarray(x))]
    step = 8 if piece_axis == 0 else 2048 // ROWS  # pieces of 2048 elements: below YNNPACK's 4096
    for start in range(0, x.shape[piece_axis], step):
        sl = (slice(start, start + step), slice(None)) if piece_axis == 0 else (slice(None), slice(start, start + step))
        piece = [np.asarray(v) for v in run(jnp.asarray(x[sl]))]
        for name, w, p in zip(("codes", "scale", "values", "zero_point"), whole, piece):
            if name == "zero_point" and w.ndim == 0:
                continue
            np.testing.assert_array_equal(bit_view(w[sl]), bit_view(p), err_msg=f"{name} of {sl}")
    # The data reached what the test is about: every kind of special, where asked for.
    if specials:
        assert np.isnan(x).any() or np.isinf(x).any()
