"""Tests of numfmt.nearest: the short nearest-even quantize equals the generic engine's."""

import functools

import jax
import numpy as np
import pytest

import numfmt as nf
from numfmt.bitlayout import F32
from numfmt.decoder import decode_any
from numfmt.encoder import encode_any
from numfmt.nearest import nearest_ok

F32_ = np.float32


@functools.partial(jax.jit, static_argnames=("fmt", "saturate"))
def _generic(x, fmt, saturate):
    return decode_any(encode_any(x, fmt, "nearest_even", saturate, (None, None, "truncate")), fmt, x.dtype)


def _inputs():
    rng = np.random.default_rng(7)
    every_fp16 = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(F32_)
    random_bits = rng.integers(0, 2**32, size=1 << 18, dtype=np.uint64).astype(np.uint32).view(F32_)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, np.finfo(F32_).max,
                         np.finfo(F32_).tiny, np.finfo(F32_).smallest_subnormal], F32_)
    return np.concatenate([every_fp16, random_bits, specials])


X = _inputs()
CUSTOM = [nf.FloatFormat(f"e{e}m{m}_{s}", e, m, specials=s)
          for e, m in [(2, 0), (3, 1), (5, 4), (6, 2), (8, 0), (8, 5)] for s in ("ieee", "fn", "fnuz", "none")]
ELIGIBLE = [f for f in [nf.get(n) for n in nf.names()] + CUSTOM if nearest_ok(f, F32)]


def test_the_common_formats_take_the_short_path():
    for name in ("fp16", "bf16", "tf32", "e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "e3m2", "e2m3", "e2m1", "int8", "int4"):
        assert nearest_ok(nf.get(name), F32), name
    # unsigned, no zero, no subnormals, a codebook, too wide: the generic engine
    no_sub = nf.FloatFormat("e4m3_flush", 4, 3, specials="fn", subnormals=False)
    for fmt in (nf.E8M0, no_sub, nf.NF4, nf.INT32):
        assert not nearest_ok(fmt, F32), fmt


@pytest.mark.parametrize("saturate", [False, True])
@pytest.mark.parametrize("fmt", ELIGIBLE, ids=str)
def test_equals_the_generic_engine(fmt, saturate):
    got = np.asarray(nf.quantize(X, fmt, saturate=saturate)).view(np.uint32)
    want = np.asarray(_generic(X, fmt, saturate)).view(np.uint32)
    both_nan = np.isnan(got.view(F32_)) & np.isnan(want.view(F32_))
    bad = np.flatnonzero((got != want) & ~both_nan)
    assert bad.size == 0, (fmt, X[bad[:5]], got[bad[:5]].view(F32_), want[bad[:5]].view(F32_))


def test_ties_even_by_code_when_there_are_no_mantissa_bits():
    # e2m0 fnuz (bias 2): values 0.5, 1, 2 (codes 1, 2, 3). Ties go to the even code: 0.75
    # to 1.0 (code 2), 1.5 to 1.0 (code 2), and 3.0 to 4.0 past max (code 4): an overflow,
    # NaN. The float32 exponent parity would pick the other neighbour each time.
    fmt = nf.FloatFormat("e2m0_fnuz", 2, 0, specials="fnuz")
    got = np.asarray(nf.quantize(np.array([0.75, 1.5, 3.0, -0.75], F32_), fmt))
    assert got[0] == 1.0 and got[1] == 1.0 and np.isnan(got[2]) and got[3] == -1.0
